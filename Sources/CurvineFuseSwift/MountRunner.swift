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
        var sigs = sigset_t()
        sigemptyset(&sigs)
        for s in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&sigs, s) }
        pthread_sigmask(SIG_BLOCK, &sigs, nil)
        signal(SIGPIPE, SIG_IGN)
        raiseDescriptorLimit()

        let mounts = settings.mountPoints
        for m in mounts {
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
            let core: FileSystemCore
            do {
                core = try FileSystemCore(client: client, config: coreConfig())
            } catch {
                Log.error("cannot open \(f.fsPath) on the cluster: \(error). Check that the master at \(settings.cluster.client.masterAddrs.map(\.description).joined(separator: ",")) is reachable (cv info --master-addrs ...)")
                unmountAll(sessions)
                return 1
            }
            let ctx = FuseContext(core: core, initOptions: initOptions(), cacheReaddir: f.cacheReaddir)
            let opts: [String]
            do { opts = try settings.libfuseOptions() } catch { Log.error("\(error)"); return 1 }
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
                unmountAll(sessions)
                return 1
            }
            if passthroughPlan().useBackend { core.setPassthroughBackend(ShimPassthroughBackend(session: s)) }
            guard cvfuse_mount(s, m) == 0 else {
                Log.error("mount at \(m) failed (is /dev/fuse available and are we root? is \(m) already a mount?)")
                cvfuse_unmount_and_destroy(s)
                Unmanaged<FuseContext>.fromOpaque(userdata).release()
                unmountAll(sessions)
                return 1
            }
            Log.info("mounted \(f.fsPath) at \(m) (fuse.curvinefs, options \(opts.joined(separator: ",")))")
            Readahead.apply(mountPoint: m, kb: f.maxReadaheadKb ?? Readahead.defaultKb)  // BDI read_ahead_kb, once INIT is done
            sessions.append((s, ctx, m))
        }

        // /metrics and /healthz on the web port (a bind failure is a warning: the mount runs on).
        metrics.setCores(sessions.map(\.1.core))
        let health = MountHealth(mountPoints: sessions.map(\.2))
        let web = WebServer.start(port: f.webPort, metrics: { metrics.exposition() }, health: { health.problem() })

        let exitSessions = sessions.map(\.0)
        startThread(name: "cv-signals") {
            var set = sigs
            var sig: Int32 = 0
            sigwait(&set, &sig)
            Log.info("signal \(sig): unmounting")
            for s in exitSessions { cvfuse_exit(s) }
        }

        var loop = cvfuse_loop_config(worker_threads: Int32(settings.fuseLoopThreads), clone_fd: f.cloneFd ? 1 : 0,
                                      numa_pin: 1, debug: f.debug ? 1 : 0)
        var rc: Int32 = 0
        let group = DispatchGroup()
        for (s, _, m) in sessions {
            group.enter()
            let sp = s
            health.sessionStarted()
            startThread(name: "cv-session") {
                let r = withUnsafePointer(to: &loop) { cvfuse_run(sp, $0) }
                health.sessionEnded(m)
                if r != 0 { Log.warn("session at \(m) ended with \(r)"); rc = 1 }
                group.leave()
            }
        }
        group.wait()
        web?.stop()
        unmountAll(sessions)
        client.close()
        Log.info("unmounted; bye")
        return rc == 0 ? 0 : 1
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
