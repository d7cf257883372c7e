// Curvine's cluster TOML (conf/curvine-cluster.toml), the parts a FUSE client reads.
//
// Same keys and defaults as upstream (`cluster_conf.rs`, `client_conf.rs`,
// `fuse_conf.rs`), with three documented exceptions in the client's retry and
// timeout defaults (see ClientConf): upstream blocks a syscall for up to two minutes
// on a dead master; we give up in seconds (CONFIGURATION.md).
//
// Validation: a key we know with a value of the wrong type is an error naming the key
// and the file; an unknown key in a section we own ([client], [fuse], top level) is a
// warning. Sections we do not use ([worker], [journal], [log], ...) are skipped
// silently, except the keys we read from them.
import Foundation
import TOMLKit
#if canImport(Glibc)
import Glibc
#endif

public struct ConfigError: Error, CustomStringConvertible {
    public var problems: [String]
    public var description: String { problems.joined(separator: "\n") }
}

/// Size strings as upstream writes them: "128KB", "64MB", "1GB", "4096" (bytes).
public func parseByteSize(_ s: String) -> Int64? {
    let t = s.trimmingWhitespace().uppercased()
    let units: [(String, Int64)] = [("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10),
                                    ("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10), ("B", 1)]
    for (u, m) in units where t.hasSuffix(u) {
        guard let n = Int64(String(t.dropLast(u.count)).trimmingWhitespace()), n >= 0 else { return nil }
        return n.multipliedReportingOverflow(by: m).overflow ? nil : n * m
    }
    return Int64(t).flatMap { $0 >= 0 ? $0 : nil }
}

/// Durations as upstream writes them: "60s", "1h", "500ms", "10m", "2d"; a bare number is seconds.
public func parseDurationMs(_ s: String) -> Int64? {
    let t = s.trimmingWhitespace().lowercased()
    let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
    for (u, m) in units where t.hasSuffix(u) {
        guard let n = Int64(String(t.dropLast(u.count)).trimmingWhitespace()), n >= 0 else { return nil }
        let (r, o) = n.multipliedReportingOverflow(by: m)
        return o ? nil : r
    }
    guard let n = Int64(t), n >= 0 else { return nil }
    let (r, o) = n.multipliedReportingOverflow(by: 1000)
    return o ? nil : r
}

/// Typed reads from a TOML table, collecting problems instead of stopping at the first.
final class ConfigReader {
    let source: String
    var errors: [String] = []
    var warnings: [String] = []
    private let root: TOMLTable

    init(root: TOMLTable, source: String) {
        self.root = root
        self.source = source
    }

    func table(_ name: String) -> TOMLTable? {
        guard let v = root[name] else { return nil }
        guard let t = v.table else {
            errors.append("\(source): [\(name)] must be a table, found \(v.type)")
            return nil
        }
        return t
    }

    private func value(_ section: String?, _ key: String) -> TOMLValueConvertible? {
        if let s = section { return table(s)?[key] }
        return root[key]
    }

    private func name(_ section: String?, _ key: String) -> String { section.map { "\($0).\(key)" } ?? key }

    private func wrong(_ section: String?, _ key: String, _ want: String, _ v: TOMLValueConvertible) {
        errors.append("\(source): key '\(name(section, key))' must be \(want), found \(v.type) \(v)")
    }

    func bool(_ section: String?, _ key: String, _ def: Bool) -> Bool {
        guard let v = value(section, key) else { return def }
        if let b = v.bool { return b }
        wrong(section, key, "a boolean (true/false)", v)
        return def
    }

    func int(_ section: String?, _ key: String, _ def: Int, min: Int = Int.min, max: Int = Int.max) -> Int {
        guard let v = value(section, key) else { return def }
        guard let i = v.int else { wrong(section, key, "an integer", v); return def }
        guard i >= min && i <= max else {
            errors.append("\(source): key '\(name(section, key))' = \(i) is out of range \(min)...\(max)")
            return def
        }
        return i
    }

    func string(_ section: String?, _ key: String, _ def: String) -> String {
        guard let v = value(section, key) else { return def }
        if let s = v.string { return s }
        wrong(section, key, "a string", v)
        return def
    }

    /// A size: an integer (bytes) or a string like "128KB".
    func size(_ section: String?, _ key: String, _ def: Int64) -> Int64 {
        guard let v = value(section, key) else { return def }
        if let i = v.int, i >= 0 { return Int64(i) }
        if let s = v.string, let n = parseByteSize(s) { return n }
        wrong(section, key, "a size like \"128KB\" or a byte count", v)
        return def
    }

    /// A duration: an integer (milliseconds when the key ends in _ms, else seconds) or "60s".
    func durationMs(_ section: String?, _ key: String, _ defMs: Int64) -> Int64 {
        guard let v = value(section, key) else { return defMs }
        if let i = v.int, i >= 0 {
            if key.hasSuffix("_ms") { return Int64(i) }
            let (r, o) = Int64(i).multipliedReportingOverflow(by: 1000)
            if !o { return r }
        }
        if let s = v.string, let n = parseDurationMs(s) { return n }
        wrong(section, key, "a duration like \"60s\" or a number", v)
        return defMs
    }

    func stringArray(_ section: String?, _ key: String) -> [String]? {
        guard let v = value(section, key) else { return nil }
        guard let a = v.array else { wrong(section, key, "an array of strings", v); return nil }
        var out: [String] = []
        for e in a {
            guard let s = e.string else { wrong(section, key, "an array of strings", v); return nil }
            out.append(s)
        }
        return out
    }

    func warnUnknown(_ section: String?, known: Set<String>) {
        let t: TOMLTable? = section == nil ? root : (root[section!]?.table)
        guard let tab = t else { return }
        for k in tab.keys.sorted() where !known.contains(k) {
            warnings.append("\(source): unknown key '\(name(section, k))' is ignored")
        }
    }
}

/// [client]: master addresses, data-path sizes, timeouts.
public struct ClientConf: Sendable {
    public var masterAddrs: [HostPort] = []
    public var shortCircuit = true
    public var readChunkSize: Int64 = 128 * 1024
    public var writeChunkSize: Int64 = 128 * 1024
    public var blockSize: Int64 = 128 << 20
    public var replicas: Int32 = 1
    public var hostname: String?
    /// Upstream 30 s. Ours 3 s: loopback and in-cluster connects take milliseconds;
    /// a dead master should fail over, not stall a syscall.
    public var connTimeoutMs: Int64 = 3_000
    /// Upstream 120 s. Ours 10 s per attempt.
    public var rpcTimeoutMs: Int64 = 10_000
    /// Upstream 120 s. Ours 20 s: long enough to ride out a raft leader election
    /// (seconds), short enough that `ls` answers EIO instead of hanging two minutes.
    public var rpcRetryMaxDurationMs: Int64 = 20_000
    public var dataTimeoutMs: Int64 = 10_000
    public var masterConnPoolSize = 3

    static let keys: Set<String> = ["master_addrs", "short_circuit", "read_chunk_size", "write_chunk_size", "block_size",
                                    "replicas", "hostname", "conn_timeout_ms", "rpc_timeout_ms", "rpc_retry_max_duration_ms",
                                    "data_timeout_ms", "master_conn_pool_size",
                                    // upstream keys we accept and do not use (documented in CONFIGURATION.md)
                                    "io_threads", "worker_threads", "read_chunk_num", "write_chunk_num", "enable_read_ahead",
                                    "read_ahead_len", "read_parallel", "max_read_parallel", "enable_smart_prefetch",
                                    "sequential_read_threshold", "large_file_size", "max_cache_block_handles",
                                    "conn_retry_max_duration_ms", "conn_retry_min_sleep_ms", "conn_retry_max_sleep_ms",
                                    "rpc_retry_min_sleep_ms", "rpc_retry_max_sleep_ms", "rpc_close_idle",
                                    "failed_worker_ttl_ms", "storage_type", "ttl_ms", "ttl_action", "metric_report_enable",
                                    "close_timeout_secs", "max_sync_wait_timeout_ms", "enable_unified_fs",
                                    "enable_rust_read_ufs", "auto_cache", "drop_cache_len"]
}

/// [fuse]: upstream's keys and defaults (`fuse_conf.rs`).
public struct FuseConf: Sendable {
    public var debug = false
    public var auditLoggingEnabled = false
    public var metricsEnabled = true
    /// Upstream's default is 32. Ours is 2 × CPUs within 4...32 (32 from 16 CPUs up): on
    /// a 2-CPU node 32 io threads meant up to 32 block streams fetching at once, which
    /// thrashed the CPUs (TCP sequential reads ran at half the speed of 4 threads;
    /// perf/README.md, "Sweeps"); with pipelined streams a few threads keep the network busy.
    public var ioThreads = FuseConf.defaultIoThreads
    public static var defaultIoThreads: Int { min(32, max(4, 2 * ProcessInfo.processInfo.activeProcessorCount)) }
    /// Upstream: max(io_threads, 2 × CPUs).
    public var workerThreads: Int? = nil
    public var mntPath = "/curvine-fuse"
    public var fsPath = "/"
    public var mntNumber = 1
    public var tasksPerMnt = 0
    public var cloneFd = true
    public var fuseChannelSize = 0
    public var streamChannelSize = 0
    public var fuseOpts: [String] = []
    public var readonly = false
    public var umask: UInt32 = 0o022
    public var uid: UInt32?
    public var gid: UInt32?
    public var webPort = 9003
    public var readDirFillIno = true
    public var entryTimeoutMs: Int64 = 1000
    public var negativeTimeoutMs: Int64 = 0
    public var attrTimeoutMs: Int64 = 1000
    public var remember = false
    public var maxBackground = 256
    public var congestionThreshold = 192
    public var enableMetaCache = false
    public var metaCacheTimeoutMs: Int64 = 60_000
    public var nodeCacheTimeoutMs: Int64 = 3_600_000
    public var directIO = false
    public var openDirectOnStale = false
    public var writeBackCache = false
    public var cacheReaddir = false
    public var nonSeekable = false
    public var checkPermission = true
    public var stateDir: String?
    public var maxReadaheadKb: Int?
    public var listLimit = 1000
    public var enableSplice = true
    public var pathLockStripes = 1024

    public init() {}

    static let keys: Set<String> = ["debug", "audit_logging_enabled", "metrics_enabled", "io_threads", "worker_threads",
                                    "mnt_path", "fs_path", "mnt_number", "tasks_per_mnt", "mnt_per_task", "clone_fd",
                                    "fuse_channel_size", "stream_channel_size", "fuse_opts", "readonly", "umask", "uid",
                                    "gid", "web_port", "read_dir_fill_ino", "entry_timeout_ms", "negative_timeout_ms",
                                    "attr_timeout_ms", "remember", "max_background", "congestion_threshold",
                                    "enable_meta_cache", "meta_cache_timeout", "node_cache_timeout", "direct_io",
                                    "open_direct_on_stale", "write_back_cache", "cache_readdir", "non_seekable",
                                    "check_permission", "state_dir", "max_readahead_kb", "list_limit", "enable_splice",
                                    "path_lock_stripes", "log",
                                    // our own additions (CONFIGURATION.md)
                                    "read_buffer_budget", "passthrough"]
    /// Our own [fuse] additions.
    public var readBufferBudget: Int64? = nil
    public var passthrough = "auto"
}

public struct ClusterConfig: Sendable {
    public var source: String
    public var masterHostname = "localhost"
    public var masterRpcPort = 8995
    public var masterWebPort = 9001
    public var journalAddrs: [String] = []
    public var client = ClientConf()
    public var fuse = FuseConf()
    public var warnings: [String] = []

    public init(source: String = "<defaults>") { self.source = source }

    /// Reads a config file. Missing file, bad TOML and wrong types are errors that name the file.
    public static func load(path: String) throws -> ClusterConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            let why = FileManager.default.fileExists(atPath: path) ? "cannot be read (check permissions)" : "does not exist"
            throw ConfigError(problems: ["config file \(path) \(why): pass an existing Curvine TOML with --conf"])
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(problems: ["config file \(path) is not UTF-8 text"])
        }
        return try parse(text: text, source: path)
    }

    public static func parse(text: String, source: String) throws -> ClusterConfig {
        if let problem = TOMLPreflight.check(text) {
            throw ConfigError(problems: ["\(source): \(problem)"])
        }
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let e as TOMLParseError {
            throw ConfigError(problems: ["\(source): line \(e.source.begin.line), column \(e.source.begin.column): \(e.description)"])
        } catch {
            throw ConfigError(problems: ["\(source): not valid TOML: \(error)"])
        }
        let r = ConfigReader(root: root, source: source)
        var c = ClusterConfig(source: source)
        r.warnUnknown(nil, known: ["format_master", "format_worker", "testing", "cluster_id", "master", "client", "fuse",
                                   "worker", "journal", "log", "cli", "job", "s3_gateway", "master_log", "worker_log",
                                   "fuse_log", "ufs", "metrics", "transfer"])
        _ = r.bool(nil, "format_master", false)
        _ = r.bool(nil, "format_worker", false)
        _ = r.bool(nil, "testing", false)
        _ = r.string(nil, "cluster_id", "curvine")
        c.masterHostname = r.string("master", "hostname", c.masterHostname)
        c.masterRpcPort = r.int("master", "rpc_port", c.masterRpcPort, min: 1, max: 65535)
        c.masterWebPort = r.int("master", "web_port", c.masterWebPort, min: 0, max: 65535)
        c.journalAddrs = readJournalAddrs(r)

        // [client]
        var cl = ClientConf()
        if let t = r.table("client"), let v = t["master_addrs"] {
            cl.masterAddrs = readMasterAddrs(v, r)
        }
        cl.shortCircuit = r.bool("client", "short_circuit", cl.shortCircuit)
        cl.readChunkSize = r.size("client", "read_chunk_size", cl.readChunkSize)
        cl.writeChunkSize = r.size("client", "write_chunk_size", cl.writeChunkSize)
        cl.blockSize = r.size("client", "block_size", cl.blockSize)
        if cl.blockSize < 1 { r.errors.append("\(source): key 'client.block_size' must be at least 1 byte (upstream default 128MB)") }
        cl.replicas = Int32(r.int("client", "replicas", Int(cl.replicas), min: 1, max: 64))
        let h = r.string("client", "hostname", "")
        cl.hostname = h.isEmpty ? nil : h
        cl.connTimeoutMs = r.durationMs("client", "conn_timeout_ms", cl.connTimeoutMs)
        cl.rpcTimeoutMs = r.durationMs("client", "rpc_timeout_ms", cl.rpcTimeoutMs)
        cl.rpcRetryMaxDurationMs = r.durationMs("client", "rpc_retry_max_duration_ms", cl.rpcRetryMaxDurationMs)
        cl.dataTimeoutMs = r.durationMs("client", "data_timeout_ms", cl.dataTimeoutMs)
        cl.masterConnPoolSize = r.int("client", "master_conn_pool_size", cl.masterConnPoolSize, min: 1, max: 64)
        // Timeouts: at least 1 ms (0 would fail every call at once), at most one day (a
        // deadline that far is "never"; larger values would overflow deadline arithmetic).
        // The retry budget may be 0: one attempt per master, no retry rounds.
        let day: Int64 = 86_400_000
        for (k, v, lo) in [("conn_timeout_ms", cl.connTimeoutMs, Int64(1)), ("rpc_timeout_ms", cl.rpcTimeoutMs, 1),
                           ("rpc_retry_max_duration_ms", cl.rpcRetryMaxDurationMs, 0), ("data_timeout_ms", cl.dataTimeoutMs, 1)]
            where v < lo || v > day {
            r.errors.append("\(source): key 'client.\(k)' = \(v) ms must be between \(lo) ms and one day (\(day) ms)")
        }
        for (k, lo, hi) in [("read_chunk_size", Int64(1), Int64(frameMaxDataSize)), ("write_chunk_size", 1, Int64(frameMaxDataSize))] {
            let v = k == "read_chunk_size" ? cl.readChunkSize : cl.writeChunkSize
            if v < lo || v > hi { r.errors.append("\(source): key 'client.\(k)' = \(v) must be between 1 byte and 16MB (the frame limit)") }
        }
        r.warnUnknown("client", known: ClientConf.keys)
        c.client = cl
        if c.client.masterAddrs.isEmpty {
            // Upstream: derived from journal hosts with the master RPC port, else master.hostname.
            let hosts = c.journalAddrs.isEmpty ? [c.masterHostname] : c.journalAddrs
            c.client.masterAddrs = hosts.map { HostPort(host: $0, port: UInt16(c.masterRpcPort)) }
        }

        // [fuse]
        var f = FuseConf()
        f.debug = r.bool("fuse", "debug", f.debug)
        f.auditLoggingEnabled = r.bool("fuse", "audit_logging_enabled", f.auditLoggingEnabled)
        f.metricsEnabled = r.bool("fuse", "metrics_enabled", f.metricsEnabled)
        f.ioThreads = r.int("fuse", "io_threads", f.ioThreads, min: 1, max: 4096)
        if r.table("fuse")?["worker_threads"] != nil { f.workerThreads = r.int("fuse", "worker_threads", 0, min: 1, max: 4096) }
        f.mntPath = r.string("fuse", "mnt_path", f.mntPath)
        f.fsPath = r.string("fuse", "fs_path", f.fsPath)
        f.mntNumber = r.int("fuse", "mnt_number", f.mntNumber, min: 1, max: 64)
        f.tasksPerMnt = r.int("fuse", "tasks_per_mnt", r.int("fuse", "mnt_per_task", f.tasksPerMnt, min: 0), min: 0)
        f.cloneFd = r.bool("fuse", "clone_fd", f.cloneFd)
        f.fuseChannelSize = r.int("fuse", "fuse_channel_size", f.fuseChannelSize, min: 0)
        f.streamChannelSize = r.int("fuse", "stream_channel_size", f.streamChannelSize, min: 0)
        f.fuseOpts = r.stringArray("fuse", "fuse_opts") ?? f.fuseOpts
        f.readonly = r.bool("fuse", "readonly", f.readonly)
        f.umask = UInt32(r.int("fuse", "umask", Int(f.umask), min: 0, max: 0o777))
        if r.table("fuse")?["uid"] != nil { f.uid = UInt32(r.int("fuse", "uid", 0, min: 0, max: Int(UInt32.max))) }
        if r.table("fuse")?["gid"] != nil { f.gid = UInt32(r.int("fuse", "gid", 0, min: 0, max: Int(UInt32.max))) }
        f.webPort = r.int("fuse", "web_port", f.webPort, min: 0, max: 65535)
        f.readDirFillIno = r.bool("fuse", "read_dir_fill_ino", f.readDirFillIno)
        f.entryTimeoutMs = r.durationMs("fuse", "entry_timeout_ms", f.entryTimeoutMs)
        f.negativeTimeoutMs = r.durationMs("fuse", "negative_timeout_ms", f.negativeTimeoutMs)
        f.attrTimeoutMs = r.durationMs("fuse", "attr_timeout_ms", f.attrTimeoutMs)
        f.remember = r.bool("fuse", "remember", f.remember)
        f.maxBackground = r.int("fuse", "max_background", f.maxBackground, min: 1, max: 65535)
        f.congestionThreshold = r.int("fuse", "congestion_threshold", f.congestionThreshold, min: 1, max: 65535)
        f.enableMetaCache = r.bool("fuse", "enable_meta_cache", f.enableMetaCache)
        f.metaCacheTimeoutMs = r.durationMs("fuse", "meta_cache_timeout", f.metaCacheTimeoutMs)
        f.nodeCacheTimeoutMs = r.durationMs("fuse", "node_cache_timeout", f.nodeCacheTimeoutMs)
        f.directIO = r.bool("fuse", "direct_io", f.directIO)
        f.openDirectOnStale = r.bool("fuse", "open_direct_on_stale", f.openDirectOnStale)
        f.writeBackCache = r.bool("fuse", "write_back_cache", f.writeBackCache)
        f.cacheReaddir = r.bool("fuse", "cache_readdir", f.cacheReaddir)
        f.nonSeekable = r.bool("fuse", "non_seekable", f.nonSeekable)
        f.checkPermission = r.bool("fuse", "check_permission", f.checkPermission)
        let sd = r.string("fuse", "state_dir", "")
        f.stateDir = sd.isEmpty ? nil : sd
        if r.table("fuse")?["max_readahead_kb"] != nil { f.maxReadaheadKb = r.int("fuse", "max_readahead_kb", 0, min: 0, max: 1 << 20) }
        f.listLimit = r.int("fuse", "list_limit", f.listLimit, min: 1, max: 1_000_000)
        f.enableSplice = r.bool("fuse", "enable_splice", f.enableSplice)
        f.pathLockStripes = r.int("fuse", "path_lock_stripes", f.pathLockStripes, min: 1)
        if r.table("fuse")?["read_buffer_budget"] != nil { f.readBufferBudget = r.size("fuse", "read_buffer_budget", 0) }
        f.passthrough = r.string("fuse", "passthrough", f.passthrough)
        if f.passthrough != "auto" && f.passthrough != "off" {
            r.errors.append("\(source): key 'fuse.passthrough' = \"\(f.passthrough)\" must be \"auto\" or \"off\"")
        }
        if f.directIO && f.writeBackCache {
            r.errors.append("\(source): 'fuse.direct_io' and 'fuse.write_back_cache' cannot both be true: pick one")
        }
        r.warnUnknown("fuse", known: FuseConf.keys)
        c.fuse = f
        c.warnings = r.warnings
        if !r.errors.isEmpty { throw ConfigError(problems: r.errors) }
        return c
    }

    private static func readJournalAddrs(_ r: ConfigReader) -> [String] {
        guard let t = r.table("journal"), let v = t["journal_addrs"], let a = v.array else { return [] }
        return a.compactMap { $0.table?["hostname"]?.string }
    }

    /// `master_addrs` as upstream writes it ([[client.master_addrs]] tables of hostname/port),
    /// also accepting "host:port" strings.
    private static func readMasterAddrs(_ v: TOMLValueConvertible, _ r: ConfigReader) -> [HostPort] {
        guard let a = v.array else {
            r.errors.append("\(r.source): key 'client.master_addrs' must be an array of {hostname, port} tables")
            return []
        }
        var out: [HostPort] = []
        for (i, e) in a.enumerated() {
            if let s = e.string {
                do { out.append(try HostPort.parse(s)) } catch {
                    r.errors.append("\(r.source): client.master_addrs[\(i)]: \(error)")
                }
                continue
            }
            guard let t = e.table, let host = t["hostname"]?.string, let port = t["port"]?.int else {
                r.errors.append("\(r.source): client.master_addrs[\(i)] must have hostname (string) and port (integer)")
                continue
            }
            guard port >= 1 && port <= 65535 else {
                r.errors.append("\(r.source): client.master_addrs[\(i)].port = \(port) must be 1..65535")
                continue
            }
            out.append(HostPort(host: host, port: UInt16(port)))
        }
        return out
    }

    /// Client options for these settings.
    public func clientOptions() -> ClientOptions {
        let cl = client
        return ClientOptions(
            masters: cl.masterAddrs,
            master: MasterClientOptions(connectTimeoutMs: Int(cl.connTimeoutMs), rpcTimeoutMs: Int(cl.rpcTimeoutMs),
                                        retryBudgetMs: Int(cl.rpcRetryMaxDurationMs),
                                        connectionsPerMaster: cl.masterConnPoolSize),
            hostname: cl.hostname ?? ClientOptions.defaultHostname(),
            shortCircuit: cl.shortCircuit, readChunkSize: Int(cl.readChunkSize), writeChunkSize: Int(cl.writeChunkSize),
            dataTimeoutMs: Int(cl.dataTimeoutMs), blockSize: cl.blockSize, replicas: cl.replicas)
    }
}

/// Input the TOML parser (toml++ 3.4 inside TOMLKit) cannot take safely. Some malformed
/// input trips its internal assertions, which abort the process in debug builds and are
/// undefined behaviour (a false __builtin_assume) in release builds; the config fuzz test
/// found three: a table header '[' not followed by a key (e.g. "[" then a line break), a
/// date-time whose time part does not start with a digit, and an array element starting
/// with '}' or a Unicode line separator. So the document is scanned first, following
/// statements through strings, comments, arrays and inline tables as TOML tokenizes them,
/// and refused here (with a line number) when
///   * a table header does not start with a key (or ']', which toml++ reports itself),
///   * a bare value is not a boolean, inf/nan or a number: TOML dates and times (which
///     no Curvine key takes) never reach the parser,
///   * brackets and braces do not nest ('[' closed by '}' or the reverse), or
///   * U+0085, U+2028 or U+2029 (line separators TOML does not allow) appear outside a
///     quoted string.
enum TOMLPreflight {
    static func check(_ text: String) -> String? {
        let b = Array(text.utf8)
        var i = 0
        var line = 1
        func at(_ k: Int) -> UInt8 { k < b.count ? b[k] : 0 }
        func isKeyStart(_ c: UInt8) -> Bool {
            (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == 0x5F || c == 0x2D
                || c == 0x22 || c == 0x27
        }
        /// Ends a bare token (outside strings).
        func isDelimiter(_ c: UInt8) -> Bool {
            c == 0x20 || c == 0x09 || c == 0x0D || c == 0x0A || c == 0x2C || c == 0x5B || c == 0x5D || c == 0x7B
                || c == 0x7D || c == 0x23 || c == 0x3D || c == 0x22 || c == 0x27
        }
        /// Skips a string starting at i (a quote); multi-line forms span lines.
        func skipString() {
            let q = b[i]
            if at(i + 1) == q && at(i + 2) == q {
                i += 3
                while i < b.count {
                    if b[i] == 0x0A { line += 1 }
                    if q == 0x22 && b[i] == 0x5C { i += 2; continue }
                    if b[i] == q && at(i + 1) == q && at(i + 2) == q { i += 3; return }
                    i += 1
                }
                return
            }
            i += 1
            while i < b.count && b[i] != 0x0A {
                if q == 0x22 && b[i] == 0x5C { i += 2; continue }
                if b[i] == q { i += 1; return }
                i += 1
            }
        }
        /// U+0085 (C2 85), U+2028 (E2 80 A8), U+2029 (E2 80 A9) at i.
        func isUnicodeLineBreak(_ k: Int) -> Bool {
            (at(k) == 0xC2 && at(k + 1) == 0x85) || (at(k) == 0xE2 && at(k + 1) == 0x80 && (at(k + 2) == 0xA8 || at(k + 2) == 0xA9))
        }
        let separatorProblem = "a Unicode line separator (U+0085, U+2028, U+2029) is only allowed inside a quoted string"
        while i < b.count {
            let c = b[i]
            if isUnicodeLineBreak(i) { return "line \(line): \(separatorProblem)" }
            switch c {
            case 0x20, 0x09, 0x0D: i += 1
            case 0x0A: line += 1; i += 1
            case 0x23:  // comment
                while i < b.count && b[i] != 0x0A {
                    if isUnicodeLineBreak(i) { return "line \(line): \(separatorProblem)" }
                    i += 1
                }
            case 0x5B:  // table header
                i += 1
                while at(i) == 0x20 || at(i) == 0x09 { i += 1 }
                if at(i) == 0x5B { i += 1; while at(i) == 0x20 || at(i) == 0x09 { i += 1 } }
                if i < b.count && !isKeyStart(b[i]) && b[i] != 0x5D {
                    return "line \(line): a table header needs a name after '[' (write [section])"
                }
                while i < b.count && b[i] != 0x0A {
                    if isUnicodeLineBreak(i) { return "line \(line): \(separatorProblem)" }
                    if b[i] == 0x22 || b[i] == 0x27 { skipString() } else { i += 1 }
                }
            default:
                // key = value: the key up to '=', then the value, which may span lines
                // inside arrays, inline tables and multi-line strings.
                while i < b.count && b[i] != 0x3D && b[i] != 0x0A {
                    if isUnicodeLineBreak(i) { return "line \(line): \(separatorProblem)" }
                    if b[i] == 0x22 || b[i] == 0x27 { skipString() } else { i += 1 }
                }
                if at(i) != 0x3D { continue }
                i += 1
                var open: [UInt8] = []  // '[' and '{' not yet closed
                while i < b.count {
                    let v = b[i]
                    if isUnicodeLineBreak(i) { return "line \(line): \(separatorProblem)" }
                    if v == 0x22 || v == 0x27 { skipString(); continue }
                    if v == 0x23 {
                        while i < b.count && b[i] != 0x0A {
                            if isUnicodeLineBreak(i) { return "line \(line): \(separatorProblem)" }
                            i += 1
                        }
                        continue
                    }
                    if v == 0x0A {
                        if open.isEmpty { break }
                        line += 1
                        i += 1
                        continue
                    }
                    if v == 0x5B || v == 0x7B { open.append(v); i += 1; continue }
                    if v == 0x5D || v == 0x7D {
                        if let o = open.last, o != (v == 0x5D ? 0x5B : 0x7B) {
                            return "line \(line): '\(v == 0x5D ? "]" : "}")' closes a '\(o == 0x5B ? "[" : "{")'"
                        }
                        if !open.isEmpty { open.removeLast() }
                        i += 1
                        continue
                    }
                    if isDelimiter(v) { i += 1; continue }
                    // A bare token: a key inside an inline table (followed by '='), or a value.
                    let start = i
                    while i < b.count && !isDelimiter(b[i]) { i += 1 }
                    var k = i
                    while at(k) == 0x20 || at(k) == 0x09 { k += 1 }
                    if at(k) == 0x3D { continue }
                    if !isPlainScalar(b[start..<i]) {
                        let tok = String(decoding: b[start..<min(i, start + 40)], as: UTF8.self)
                        return "line \(line): value '\(tok)' is not a number, boolean or quoted string (TOML dates and times are not used by any key)"
                    }
                }
            }
        }
        return nil
    }

    /// true, false, [+-]inf, [+-]nan, or a number made of digits, '_', '.', an exponent
    /// with its sign, a leading sign and 0x/0o/0b prefixes. Anything else (dates, times,
    /// words) is refused; toml++ rejects the malformed numbers this lets through itself.
    static func isPlainScalar(_ t: ArraySlice<UInt8>) -> Bool {
        let s = String(decoding: t, as: UTF8.self)
        if ["true", "false", "inf", "+inf", "-inf", "nan", "+nan", "-nan"].contains(s) { return true }
        let a = Array(t)
        guard let first = a.first else { return false }
        var hex = false
        for (k, c) in a.enumerated() {
            switch c {
            case 0x30...0x39, 0x5F, 0x2E: continue  // digit _ .
            case 0x2B, 0x2D:  // + -
                if k == 0 { continue }
                if !hex && (a[k - 1] == 0x65 || a[k - 1] == 0x45) { continue }
                return false
            case 0x78, 0x6F, 0x62:  // x o b
                if k == 1 && first == 0x30 { hex = c == 0x78; continue }
                if hex && c == 0x62 { continue }
                return false
            case 0x61...0x66, 0x41...0x46:  // a-f A-F: hex digits or an exponent
                if hex || c == 0x65 || c == 0x45 { continue }
                return false
            default:
                return false
            }
        }
        return true
    }
}
