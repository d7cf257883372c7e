// curvine-fuse's command line: upstream's flags and defaults (`mount_args.rs`),
// each an optional override of the TOML's [fuse] section.
import ArgumentParser
import CurvineClient
import CurvineFluid
import Foundation

public struct MountFlags: ParsableArguments {
    public init() {}

    @Option(name: .long, help: "Curvine cluster TOML (default: $CURVINE_CONF_FILE, else conf/curvine-cluster.toml; built-in defaults when neither exists).")
    public var conf: String?
    @Option(name: .long, help: "Mount point; must exist and be empty, or will be created. Default /curvine-fuse.")
    public var mntPath: String?
    @Option(name: .long, help: "Curvine sub-tree to mount (created if missing). Default /.")
    public var fsPath: String?
    @Option(name: .long, help: "Number of mounts; >1 mounts <mnt-path>/mnt-0..N-1. Default 1.")
    public var mntNumber: Int?
    @Flag(name: [.short, .long], help: "Log every request.")
    public var debug = false
    @Option(name: .long, help: "Threads for network work (prefetch, writes). Default 2 × CPUs within 4...32, or $CURVINE_IO_THREADS.")
    public var ioThreads: Int?
    @Option(name: .long, help: "Threads reading /dev/fuse, each with its own cloned fd. Default max(io-threads, 2×CPUs), or $CURVINE_WORKER_THREADS.")
    public var workerThreads: Int?
    @Option(name: .long, help: "Accepted for compatibility (receiver tasks per mount); the worker threads play this role.")
    public var tasksPerMnt: Int?
    @Option(name: .long, help: "Clone /dev/fuse per worker thread (FUSE_DEV_IOC_CLONE). Default true.")
    public var cloneFd: Bool?
    @Option(name: .long, help: "Accepted for compatibility (reply queue bound).")
    public var fuseChannelSize: Int?
    @Option(name: .long, help: "Accepted for compatibility (per-handle queue bound).")
    public var streamChannelSize: Int?
    @Option(name: .long, help: "Open every file with FOPEN_DIRECT_IO (no kernel page cache). Default false.")
    public var directIo: Bool?
    @Option(name: .long, help: "Let the kernel cache directory listings (FOPEN_CACHE_DIR). Default false.")
    public var cacheReaddir: Bool?
    @Option(name: .long, help: "Kernel dentry TTL in ms. Default 1000.")
    public var entryTimeoutMs: Int64?
    @Option(name: .long, help: "Kernel attribute TTL in ms. Default 1000.")
    public var attrTimeoutMs: Int64?
    @Option(name: .long, help: "Kernel negative-dentry TTL in ms (0 = off). Default 0.")
    public var negativeTimeoutMs: Int64?
    @Option(name: .long, help: "Kernel's max background requests (INIT). Default 256.")
    public var maxBackground: Int?
    @Option(name: .long, help: "Kernel congestion threshold (INIT). Default 192.")
    public var congestionThreshold: Int?
    @Option(name: .long, help: "Inode cache eviction age, e.g. 1h. Accepted for compatibility.")
    public var nodeCacheTimeout: String?
    @Option(name: .long, help: "Port of /metrics and /healthz. Default 9003.")
    public var webPort: Int?
    @Option(name: .long, help: "Master addresses host:port[,host:port]; replaces [client] master_addrs.")
    public var masterAddrs: String?
    @Option(name: [.short, .customLong("options")], help: "Mount options, comma-separated (replaces fuse_opts): ro, allow_other, default_permissions, noatime, nosuid, nodev, noexec, sync, dirsync.")
    public var options: [String] = []
    @Option(name: .long, help: "Mount read-only: every change gets EROFS. Default false.")
    public var readonly: Bool?
    @Option(name: .long, help: "Real inode numbers in readdir. Default true.")
    public var readDirFillIno: Bool?
    @Option(name: .long, help: "Kernel writeback cache (not with --direct-io; disables kernel passthrough). Default false.")
    public var writeBackCache: Bool?
    @Option(name: .long, help: "Open files non-seekable. Default false.")
    public var nonSeekable: Bool?
    @Option(name: .long, help: "Check permissions (adds default_permissions so the kernel enforces mode bits). Default true.")
    public var checkPermission: Bool?
    @Option(name: .long, help: "Emit per-request metrics. Default true.")
    public var metricsEnabled: Bool?
    @Option(name: .long, help: "Userspace metadata cache. Default false.")
    public var enableMetaCache: Bool?
    @Option(name: .long, help: "Userspace metadata cache TTL, e.g. 60s.")
    public var metaCacheTtl: String?
    @Option(name: .long, help: "Accepted for compatibility.")
    public var remember: Bool?
    @Option(name: .long, help: "Directory entries fetched from the master per page. Default 1000.")
    public var listLimit: Int?
    @Option(name: .long, help: "Read-buffer budget for prefetching, e.g. 1GB (see CONFIGURATION.md).")
    public var readBufferBudget: String?
    @Option(name: .long, help: "Kernel passthrough for local single-block files: auto or off. Default auto.")
    public var passthrough: String?

    /// Builds the effective settings: TOML, then env, then these flags.
    public func settings(environment env: [String: String] = ProcessInfo.processInfo.environment) throws -> MountSettings {
        var cfg: ClusterConfig
        let path = conf ?? env["CURVINE_CONF_FILE"] ?? "conf/curvine-cluster.toml"
        if conf != nil || FileManager.default.fileExists(atPath: path) {
            cfg = try ClusterConfig.load(path: path)
            for w in cfg.warnings { Log.warn(w) }
        } else {
            cfg = ClusterConfig()
            cfg.client.masterAddrs = [HostPort(host: "localhost", port: 8995)]
        }
        var f = cfg.fuse
        func envInt(_ name: String) throws -> Int? {
            guard let v = env[name], !v.isEmpty else { return nil }
            guard let n = Int(v.trimmingCharacters(in: .whitespaces)), n > 0 else {
                throw CurvineError.local(EINVAL, "\(name)=\(v) is not a positive integer: set it to a thread count such as 32")
            }
            return n
        }
        if let n = try envInt("CURVINE_IO_THREADS") { f.ioThreads = n }
        if let n = try envInt("CURVINE_WORKER_THREADS") { f.workerThreads = n }
        func positive(_ v: Int?, _ flag: String) throws -> Int? {
            guard let v else { return nil }
            guard v > 0 else { throw CurvineError.local(EINVAL, "--\(flag) \(v): must be a positive number") }
            return v
        }
        if let v = mntPath { f.mntPath = v }
        if let v = fsPath { f.fsPath = v }
        if let v = try positive(mntNumber, "mnt-number") { f.mntNumber = v }
        if debug { f.debug = true }
        if let v = try positive(ioThreads, "io-threads") { f.ioThreads = v }
        if let v = try positive(workerThreads, "worker-threads") { f.workerThreads = v }
        if let v = tasksPerMnt { f.tasksPerMnt = v }
        if let v = cloneFd { f.cloneFd = v }
        if let v = fuseChannelSize { f.fuseChannelSize = v }
        if let v = streamChannelSize { f.streamChannelSize = v }
        if let v = directIo { f.directIO = v }
        if let v = cacheReaddir { f.cacheReaddir = v }
        if let v = entryTimeoutMs { f.entryTimeoutMs = v }
        if let v = attrTimeoutMs { f.attrTimeoutMs = v }
        if let v = negativeTimeoutMs { f.negativeTimeoutMs = v }
        if let v = try positive(maxBackground, "max-background") { f.maxBackground = v }
        if let v = try positive(congestionThreshold, "congestion-threshold") { f.congestionThreshold = v }
        if let v = nodeCacheTimeout {
            guard let ms = parseDurationMs(v) else { throw CurvineError.local(EINVAL, "--node-cache-timeout \(v): use a duration like 1h or 600s") }
            f.nodeCacheTimeoutMs = ms
        }
        if let v = webPort {
            guard (0...65535).contains(v) else { throw CurvineError.local(EINVAL, "--web-port \(v): use 0..65535") }
            f.webPort = v
        }
        if !options.isEmpty {
            f.fuseOpts = options.flatMap { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }
                .filter { !$0.isEmpty }
        }
        if let v = readonly { f.readonly = v }
        if let v = readDirFillIno { f.readDirFillIno = v }
        if let v = writeBackCache { f.writeBackCache = v }
        if let v = nonSeekable { f.nonSeekable = v }
        if let v = checkPermission { f.checkPermission = v }
        if let v = metricsEnabled { f.metricsEnabled = v }
        if let v = enableMetaCache { f.enableMetaCache = v }
        if let v = metaCacheTtl {
            guard let ms = parseDurationMs(v) else { throw CurvineError.local(EINVAL, "--meta-cache-ttl \(v): use a duration like 60s") }
            f.metaCacheTimeoutMs = ms
        }
        if let v = remember { f.remember = v }
        if let v = try positive(listLimit, "list-limit") { f.listLimit = v }
        if let v = readBufferBudget {
            guard let n = parseByteSize(v), n > 0 else { throw CurvineError.local(EINVAL, "--read-buffer-budget \(v): use a size like 1GB") }
            f.readBufferBudget = n
        }
        if let v = passthrough {
            guard v == "auto" || v == "off" else { throw CurvineError.local(EINVAL, "--passthrough \(v): use auto or off") }
            f.passthrough = v
        }
        if f.directIO && f.writeBackCache {
            throw CurvineError.local(EINVAL, "--direct-io and --write-back-cache cannot both be on: pick one")
        }
        if let m = masterAddrs {
            cfg.client.masterAddrs = try m.split(separator: ",").map { try HostPort.parse(String($0)) }
        }
        cfg.fuse = f
        var s = MountSettings(cluster: cfg)
        _ = try s.libfuseOptions()  // validate early, before mounting
        if s.fuse.fsPath.isEmpty { s.fuse.fsPath = "/" }
        guard s.fuse.fsPath.hasPrefix("/") else {
            throw CurvineError.local(EINVAL, "--fs-path \(s.fuse.fsPath): must be an absolute Curvine path such as /data")
        }
        return s
    }
}

public struct MountCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "mount",
        abstract: "Mount a Curvine namespace (the default subcommand).",
        discussion: "Runs in the foreground; SIGTERM, SIGINT or SIGHUP unmount cleanly. Flags override the TOML's [fuse] section.")
    @OptionGroup public var flags: MountFlags
    public init() {}

    public func run() throws {
        let s: MountSettings
        do { s = try flags.settings() } catch {
            throw ValidationError("\(error)")
        }
        let code = MountRunner(settings: s).run()
        if code != 0 { throw ExitCode(code) }
    }
}

public struct ValidateConfigCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "validate-config",
        abstract: "Check a Curvine TOML: names every unknown key (warning) and every wrong value (error).")
    @Option(name: .long, help: "The TOML to check.") public var conf: String = "conf/curvine-cluster.toml"
    public init() {}

    public func run() throws {
        do {
            let c = try ClusterConfig.load(path: conf)
            for w in c.warnings { print("warning: \(w)") }
            print("ok: \(conf): masters \(c.client.masterAddrs.map(\.description).joined(separator: ",")), mnt_path \(c.fuse.mntPath), fs_path \(c.fuse.fsPath)")
        } catch let e as ConfigError {
            for p in e.problems { print("error: \(p)") }
            throw ExitCode(1)
        }
    }
}

public struct FluidCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "fluid-thin-runtime",
        abstract: "Fluid ThinRuntime entrypoint: config.json + CURVINE_* env -> TOML, then mount in the foreground (docs/FLUID.md).")
    @Argument(parsing: .allUnrecognized) public var rest: [String] = []
    public init() {}
    public func run() throws {
        let code = FluidEntrypoint.run(arguments: rest, environment: ProcessInfo.processInfo.environment)
        if code != 0 { throw ExitCode(code) }
    }
}

public struct CurvineFuseCLI: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "curvine-fuse",
        abstract: "FUSE client for the Curvine distributed cache (drop-in for upstream's curvine-fuse).",
        version: curvineFuseVersion,
        subcommands: [MountCommand.self, ValidateConfigCommand.self, FluidCommand.self],
        defaultSubcommand: MountCommand.self)
    public init() {}
}
