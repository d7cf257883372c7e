// One curvine-fuse run: clean a stale mount, connect, mount, serve until a signal
// or an external unmount, then flush and unmount.
//
// Signals: SIGTERM/SIGINT/SIGHUP are blocked in every thread (the mask is set before
// any thread starts, so all inherit it) and taken by one sigwait thread, which asks
// each session to exit. The session loop then returns, open writers are committed
// (core.shutdown) and the mount is removed — well inside the 2 s Fluid allows.
import CFuse3
import CShim
import CurvineClient
import CurvineFSCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public struct MountRunner {
    public let settings: MountSettings

    public init(settings: MountSettings) { self.settings = settings }

    /// Runs in the foreground; returns the process exit code.
    public func run() -> Int32 {
        let f = settings.fuse
        Log.debugEnabled = f.debug
        Handover.captureExecutablePath()
        Handover.captureInheritedDescriptors()  // before the daemon opens anything itself
        var sigs = sigset_t()
        sigemptyset(&sigs)
        for s in [SIGTERM, SIGINT, SIGHUP, SIGUSR1] { sigaddset(&sigs, s) }
        pthread_sigmask(SIG_BLOCK, &sigs, nil)
        signal(SIGPIPE, SIG_IGN)
        raiseDescriptorLimit()

        // A restart by SIGUSR1 (Handover.swift): the previous image's mounts and fds.
        let mounts = settings.mountPoints
        var inherited: ProcessHandoverState?
        do {
            inherited = try Handover.takeFromEnvironment()
        } catch {
            Log.error("hand-over: \(error); starting afresh (files the previous process had open are lost)")
            Handover.closeInheritedFuseDescriptors()
        }
        if let st = inherited {
            Log.info("hand-over: taking over \(st.sessions.map(\.mountPoint).joined(separator: ",")) from the previous image (pid \(st.pid))")
            for s in st.sessions where !mounts.contains(s.mountPoint) {
                Log.warn("hand-over: \(s.mountPoint) is not configured any more: letting it go (it becomes a dead mount)")
                close(s.fd)
            }
        }
        func inheritedSession(_ m: String) -> ProcessHandoverState.Session? {
            inherited?.sessions.first { $0.mountPoint == m }
        }

        for m in mounts where inheritedSession(m) == nil {
            StaleMount.cleanUp(m)
            do { try FileManager.default.createDirectory(atPath: m, withIntermediateDirectories: true) } catch {
                Log.error("cannot create mount point \(m): \(error.localizedDescription); create it or pick another --mnt-path")
                return 1
            }
        }

        let client: CurvineClient
        do {
            var clientOptions = settings.cluster.clientOptions()
            UnstableEnv.apply(to: &clientOptions)  // UNSTABLE_CURVINE_STREAM_PIPELINE_DEPTH
            // The master knows this client's locks by its name: keep it across a hand-over.
            if let st = inherited { clientOptions.clientName = st.clientName }
            client = try CurvineClient(options: clientOptions)
        } catch {
            Log.error("\(error)")
            return 1
        }
        Log.info("masters \(settings.cluster.client.masterAddrs.map(\.description).joined(separator: ",")), fs_path \(f.fsPath), mounts \(mounts.joined(separator: ",")), worker threads \(settings.fuseLoopThreads), io threads \(f.ioThreads)")

        if let why = passthroughPlan().why { Log.info("passthrough: off: \(why)") }
        let metrics = Metrics(enabled: f.metricsEnabled)
        if !f.metricsEnabled { Log.info("metrics_enabled=false: per-request metrics are off (/metrics keeps the cache and handle series)") }
        var sessions: [(OpaquePointer, FuseContext, String)] = []
        for m in mounts {
            var started: (OpaquePointer, FuseContext)?
            if let inh = inheritedSession(m) {
                started = adoptMount(m, inh, client: client, metrics: metrics)
                if started == nil {
                    // Its fd is closed by now, so the mount is dead: clean it and mount afresh.
                    StaleMount.cleanUp(m)
                }
            }
            if started == nil { started = startMount(m, client: client, metrics: metrics) }
            guard let (s, ctx) = started else {
                unmountAll(sessions)
                return 1
            }
            sessions.append((s, ctx, m))
        }

        // /metrics and /healthz on the web port (a bind failure is a warning: the mount runs on).
        metrics.setCores(sessions.map(\.1.core))
        let health = MountHealth(mountPoints: sessions.map(\.2))
        let web = WebServer.start(port: f.webPort, metrics: { metrics.exposition() }, health: { health.problem() })

        // One thread takes the signals: SIGUSR1 pauses every session for a hand-over, the
        // others end them.
        let control = RunControl()
        let exitSessions = sessions.map(\.0)
        startThread(name: "cv-signals") {
            var set = sigs
            var sig: Int32 = 0
            while true {
                sigwait(&set, &sig)
                if sig == SIGUSR1 {
                    if control.requestHandover() {
                        Log.info("SIGUSR1: handing the mount over to a new image of \(Handover.executablePath ?? "?")")
                        for s in exitSessions { cvfuse_pause(s) }
                    }
                    continue
                }
                control.requestExit()
                Log.info("signal \(sig): unmounting")
                for s in exitSessions { cvfuse_exit(s) }
                return
            }
        }

        var rc: Int32 = 0
        while true {
            let results = serve(sessions, health: health)
            for (r, (_, _, m)) in zip(results, sessions) where r != 0 && r != CVFUSE_RUN_PAUSED {
                Log.warn("session at \(m) ended with \(r)")
                rc = 1
            }
            let allPaused = results.allSatisfy { $0 == CVFUSE_RUN_PAUSED }
            guard allPaused && !control.exitRequested else { break }
            let why = handOver(sessions, client: client)  // returns only when the hand-over failed
            Log.error("hand-over failed: \(why); this image serves on")
            for (s, _, _) in sessions { _ = cvfuse_prepare_rerun(s) }
            control.handoverFinished()
            if control.exitRequested { break }
        }
        web?.stop()
        unmountAll(sessions)
        client.close()
        Log.info("unmounted; bye")
        return rc
    }

    /// Runs every session's loop until all have returned; their results in order.
    private func serve(_ sessions: [(OpaquePointer, FuseContext, String)], health: MountHealth) -> [Int32] {
        let loop = cvfuse_loop_config(worker_threads: Int32(settings.fuseLoopThreads), clone_fd: settings.fuse.cloneFd ? 1 : 0,
                                      numa_pin: 1, debug: settings.fuse.debug ? 1 : 0)
        let results = ResultBox(count: sessions.count)
        let group = DispatchGroup()
        for (i, (s, _, m)) in sessions.enumerated() {
            group.enter()
            let sp = s
            health.sessionStarted()
            let cfg = loop
            startThread(name: "cv-session") {
                var c = cfg
                let r = withUnsafePointer(to: &c) { cvfuse_run(sp, $0) }
                if r == CVFUSE_RUN_PAUSED { health.sessionPaused() } else { health.sessionEnded(m) }
                results.set(i, r)
                group.leave()
            }
        }
        group.wait()
        return results.values
    }

    /// Mounts `m` afresh (nil after logging the reason).
    private func startMount(_ m: String, client: CurvineClient, metrics: Metrics) -> (OpaquePointer, FuseContext)? {
        let f = settings.fuse
        guard let (s, ctx, userdata) = newSession(client: client, metrics: metrics) else { return nil }
        guard cvfuse_mount(s, m) == 0 else {
            Log.error("mount at \(m) failed (is /dev/fuse available and are we root? is \(m) already a mount?)")
            cvfuse_unmount_and_destroy(s)
            Unmanaged<FuseContext>.fromOpaque(userdata).release()
            return nil
        }
        Log.info("mounted \(f.fsPath) at \(m) (fuse.curvinefs, options \((try? settings.libfuseOptions().joined(separator: ",")) ?? ""))")
        Readahead.apply(mountPoint: m, kb: f.maxReadaheadKb ?? Readahead.defaultKb)  // BDI read_ahead_kb, once INIT is done
        return (s, ctx)
    }

    /// Takes over `m` from the previous image: restores the core, adopts the fd. On failure
    /// the fd is closed (the mount is then dead and the caller mounts afresh) and nil returned.
    private func adoptMount(_ m: String, _ inh: ProcessHandoverState.Session, client: CurvineClient,
                            metrics: Metrics) -> (OpaquePointer, FuseContext)? {
        let t0 = monotonicNs()
        guard let (s, ctx, userdata) = newSession(client: client, metrics: metrics) else {
            close(inh.fd)
            return nil
        }
        func fail(_ why: String) -> (OpaquePointer, FuseContext)? {
            Log.error("hand-over of \(m) failed: \(why); mounting it afresh (files open there are lost)")
            // Once the session holds the fd, destroying it closes the fd (and unmounts lazily).
            let owned = cvfuse_session_fd(s) == inh.fd
            cvfuse_unmount_and_destroy(s)
            Unmanaged<FuseContext>.fromOpaque(userdata).release()
            if !owned { close(inh.fd) }
            return nil
        }
        let warnings: [String]
        do { warnings = try ctx.core.restoreHandover(inh.core) } catch { return fail("\(error)") }
        for w in warnings { Log.warn("hand-over: \(w)") }
        guard let bytes = Data(base64Encoded: inh.initRequest) else { return fail("the saved INIT request is not base64") }
        let rc = bytes.withUnsafeBytes { b in
            cvfuse_adopt(s, inh.fd, m, b.baseAddress, b.count, inh.passthroughActive ? 1 : 0)
        }
        guard rc == 0 else { return fail("adopting fd \(inh.fd): \(String(cString: strerror(-rc)))") }
        Log.info("hand-over: serving \(m) again (\(inh.core.summary)) after \((monotonicNs() - t0) / 1_000_000) ms of restore")
        return (s, ctx)
    }

    /// A libfuse session over a new core (not mounted yet); nil after logging the reason.
    private func newSession(client: CurvineClient, metrics: Metrics) -> (OpaquePointer, FuseContext, UnsafeMutableRawPointer)? {
        let f = settings.fuse
        let core: FileSystemCore
        do {
            core = try FileSystemCore(client: client, config: coreConfig())
        } catch {
            Log.error("cannot open \(f.fsPath) on the cluster: \(error). Check that the master at \(settings.cluster.client.masterAddrs.map(\.description).joined(separator: ",")) is reachable (cv info --master-addrs ...)")
            return nil
        }
        let ctx = FuseContext(core: core, initOptions: initOptions(), cacheReaddir: f.cacheReaddir)
        let opts: [String]
        do { opts = try settings.libfuseOptions() } catch { Log.error("\(error)"); return nil }
        var args = ["curvine-fuse", "-o", opts.joined(separator: ",")]
        if f.debug { args.append("-d") }
        var ops = metrics.instrument(FuseAdapter.makeOps())
        let userdata = Unmanaged.passRetained(ctx).toOpaque()
        let session: OpaquePointer? = withCStrings(args) { argv in
            cvfuse_new(Int32(args.count), argv, &ops, MemoryLayout<fuse_lowlevel_ops>.size, userdata)
        }
        guard let s = session else {
            Log.error("libfuse refused the session options \(opts.joined(separator: ","))")
            Unmanaged<FuseContext>.fromOpaque(userdata).release()
            return nil
        }
        if passthroughPlan().useBackend { core.setPassthroughBackend(ShimPassthroughBackend(session: s)) }
        return (s, ctx, userdata)
    }

    /// Saves every paused session's state and re-executes this binary. Returns only when
    /// that failed, with the reason (the sessions are still paused and intact).
    private func handOver(_ sessions: [(OpaquePointer, FuseContext, String)], client: CurvineClient) -> String {
        let t0 = monotonicNs()
        var states: [ProcessHandoverState.Session] = []
        for (s, ctx, m) in sessions {
            let core: CoreHandoverState
            do { core = try ctx.core.prepareHandover() } catch {
                return "committing the files open for writing on \(m) failed: \(error)"
            }
            var buf = [UInt8](repeating: 0, count: 256)  // > CVSHIM_INIT_REQ_MAX
            let n = cvfuse_init_request(s, &buf, buf.count)
            guard n > 0 && n <= buf.count else { return "the INIT request of \(m) was not recorded" }
            states.append(.init(mountPoint: m, fd: cvfuse_session_fd(s), initRequest: Data(buf[0..<n]).base64EncodedString(),
                                passthroughActive: cvfuse_passthrough_active(s) != 0, core: core))
        }
        let path = Handover.stateFilePath(stateDir: settings.fuse.stateDir)
        do {
            try Handover.write(ProcessHandoverState(pid: getpid(), clientName: client.clientName, sessions: states), to: path)
        } catch { return "\(error)" }
        Log.info("hand-over: \(states.map { "\($0.mountPoint): \($0.core.summary)" }.joined(separator: "; ")) saved to \(path) in \((monotonicNs() - t0) / 1_000_000) ms; re-executing")
        let why = Handover.exec(statePath: path, keepFds: states.map(\.fd))
        unlink(path)
        return why
    }

    private func unmountAll(_ sessions: [(OpaquePointer, FuseContext, String)]) {
        for (s, ctx, _) in sessions {
            ctx.core.shutdown()
            cvfuse_unmount_and_destroy(s)
        }
    }

    func coreConfig() -> CoreConfig {
        let f = settings.fuse
        var c = CoreConfig()
        c.fsPath = f.fsPath
        c.entryTimeout = Double(f.entryTimeoutMs) / 1000
        c.attrTimeout = Double(f.attrTimeoutMs) / 1000
        c.negativeTimeout = Double(f.negativeTimeoutMs) / 1000
        c.directIO = f.directIO
        c.readonly = f.readonly
        c.checkPermission = f.checkPermission
        c.listLimit = f.listLimit
        c.enableMetaCache = f.enableMetaCache
        c.metaCacheTTL = Double(f.metaCacheTimeoutMs) / 1000
        if let b = f.readBufferBudget { c.readBufferBudget = Int(b) }
        c.maxBackwardSeek = Readahead.reorderDistance(kb: f.maxReadaheadKb ?? Readahead.defaultKb)
        c.blockSize = settings.cluster.client.blockSize
        c.ioThreads = f.ioThreads
        c.umask = f.umask
        UnstableEnv.apply(to: &c)  // UNSTABLE_CURVINE_MAX_PREFETCH_WINDOW (tuning escape hatch)
        return c
    }

    func initOptions() -> cvfuse_init_options {
        let f = settings.fuse
        return cvfuse_init_options(
            max_write: 1 << 20,             // 1 MiB: FUSE_MAX_MAX_PAGES (256) × 4 KiB
            max_read: 1 << 20,
            max_readahead: UInt32((f.maxReadaheadKb ?? 0) * 1024),
            max_background: UInt32(f.maxBackground),
            congestion_threshold: UInt32(f.congestionThreshold),
            enable_splice: f.enableSplice ? 1 : 0,
            writeback_cache: f.writeBackCache ? 1 : 0,
            posix_locks: 1,                 // POSIX/OFD locks are cluster-wide, on the master (FuseAdapter+Locks.swift)
            flock_locks: 1,                 // so are flock locks
            time_gran_ns: 1_000_000,        // Curvine stores times in ms
            passthrough: passthroughPlan().offer ? 1 : 0)
    }
}

/// Signal state shared by the signal thread and the serving loop.
final class RunControl: @unchecked Sendable {
    private let lock = Lock()
    private var handingOver = false
    private var exiting = false

    /// True when a hand-over was not already under way (the caller pauses the sessions).
    func requestHandover() -> Bool {
        lock.withLock {
            if handingOver || exiting { return false }
            handingOver = true
            return true
        }
    }
    func handoverFinished() { lock.withLock { handingOver = false } }
    func requestExit() { lock.withLock { exiting = true } }
    var exitRequested: Bool { lock.withLock { exiting } }
}

/// Results of the session threads, written by each before it leaves the group.
final class ResultBox: @unchecked Sendable {
    private let lock = Lock()
    private var v: [Int32]
    init(count: Int) { v = Array(repeating: 0, count: count) }
    func set(_ i: Int, _ r: Int32) { lock.withLock { v[i] = r } }
    var values: [Int32] { lock.withLock { v } }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit. Every open file handle can hold a
/// worker connection and a local block file, so the common soft default of 1,024 ran
/// out near 500 open files (EMFILE surfaced as EIO); the hard limit is what the
/// administrator allows (CONFIGURATION.md, "Resource bounds").
func raiseDescriptorLimit() {
    var rl = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl) == 0, rl.rlim_cur < rl.rlim_max else { return }
    let old = rl.rlim_cur
    rl.rlim_cur = rl.rlim_max == rlim_t.max ? 1 << 20 : rl.rlim_max  // RLIM_INFINITY
    if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl) == 0 {
        Log.info("descriptor limit raised from \(old) to \(rl.rlim_cur)")
    } else {
        Log.warn("cannot raise the descriptor limit from \(old): \(String(cString: strerror(errno))); many open files may fail with EIO")
    }
}

/// Calls `body` with a NULL-terminated C argv built from `args`.
func withCStrings<R>(_ args: [String], _ body: (UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var cargs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) }
    cargs.append(nil)
    defer { for p in cargs { free(p) } }
    return cargs.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
}

/// A mount left by a daemon that died ("Transport endpoint is not connected").
enum StaleMount {
    static func isMounted(_ path: String) -> Bool {
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return false }
        let target = (path as NSString).standardizingPath
        return text.split(separator: "\n").contains { line in
            let fields = line.split(separator: " ")
            return fields.count > 4 && fields[4].replacingOccurrences(of: "\\040", with: " ") == target
        }
    }

    /// Unmounts `path` if it is a mount whose daemon is gone (stat fails with ENOTCONN)
    /// or, more generally, any FUSE mount left there: a running daemon would refuse a
    /// second mount anyway.
    static func cleanUp(_ path: String) {
        guard isMounted(path) else { return }
        var st = stat()
        let r = stat(path, &st)
        let dead = r != 0 && (errno == ENOTCONN || errno == ECONNABORTED || errno == EIO)
        if dead {
            Log.warn("\(path) is a dead mount (Transport endpoint is not connected): unmounting it")
        } else {
            Log.warn("\(path) is already mounted: unmounting the old mount")
        }
        if umount2(path, 0) != 0 && umount2(path, Int32(MNT_DETACH)) != 0 {
            Log.warn("cannot unmount \(path): \(String(cString: strerror(errno)))")
        }
    }
}
