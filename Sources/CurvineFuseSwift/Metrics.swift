// /metrics: per-request counts, latencies, bytes and errors, plus the core's cache and
// prefetch counters, in the Prometheus text format (swift-prometheus renders it).
//
// Names follow upstream curvine-fuse (fuse_metrics.rs) where upstream has the metric;
// docs/CONFIGURATION.md ("Metrics") lists every one.
//
// Request path cost. Instrumentation is a wrapper around the libfuse operations table
// (`instrument`), so FuseAdapter's callbacks stay as they are. Per request the wrapper:
//   - reads the monotonic clock twice (vDSO, no syscall),
//   - does two relaxed atomic adds on its op's slot (started, finished); the slots are
//     pre-allocated, one 64-byte line per op, indexed by `FuseOp.rawValue` — no label
//     arrays, no dictionary, no allocation and no reference counting per request,
//   - records the latency into the op's pre-created histogram (one uncontended mutex
//     and 18 compares inside swift-prometheus),
//   - reads one thread-local word to learn whether `replyError` ran (errors are rare;
//     only they take a lock, to find or create the {op, errno} counter).
// Counters and the in-flight gauge are derived from the slots when /metrics is
// scraped, not on the request path. With metrics_enabled=false nothing is wrapped and
// the two hooks in FuseAdapter reduce to one predictable branch.
//
// The wrapper assumes what FuseAdapter does today: every callback replies before it
// returns, on the thread that received the request. A callback that replied later from
// another thread would still be counted, but its latency would stop at the return and
// its error would not be attributed.
import CFuse3
import CurvineClient
import CurvineFSCore
import Foundation
import Prometheus
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The operations we label: a closed list (bounded `op` cardinality), named as
/// libfuse's low-level operations.
enum FuseOp: Int, CaseIterable {
    case lookup, forget, getattr, setattr, readlink, mknod, mkdir, unlink, rmdir, symlink, rename, link
    case open, read, write, flush, release, fsync, opendir, readdir, releasedir, fsyncdir, statfs
    case setxattr, getxattr, listxattr, removexattr, access, create, getlk, setlk, bmap, ioctl, poll
    case writeBuf, retrieveReply, forgetMulti, flock, fallocate, readdirplus, copyFileRange, lseek

    var label: String {
        switch self {
        case .writeBuf: return "write_buf"
        case .retrieveReply: return "retrieve_reply"
        case .forgetMulti: return "forget_multi"
        case .copyFileRange: return "copy_file_range"
        default: return "\(self)"
        }
    }
}

/// Hot counters of one op, alone on a cache line. Lives in memory allocated once and
/// never freed, reached by index.
struct OpSlot: ~Copyable {
    let started = Atomic<UInt64>(0)
    let finished = Atomic<UInt64>(0)
    /// read: bytes replied; write/write_buf: bytes accepted.
    let bytes = Atomic<UInt64>(0)
    /// Set once by `instrument` before the session starts; read without retain.
    var histogram: Unmanaged<ValueHistogram>? = nil
    private let pad: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
}

public final class Metrics: @unchecked Sendable {
    /// Latency buckets in µs: upstream's REQUEST_DURATION_BUCKETS_US, so upstream's
    /// dashboards and recording rules apply unchanged. They span a request answered from
    /// our caches (10-50 µs including the FUSE round trip), a master RPC or a 1 MiB
    /// worker read (0.1-10 ms), slow cluster paths (10 ms-1 s) up to the 10 s data
    /// timeout; anything slower lands in +Inf, which is itself the signal.
    public static let durationBucketsUs: [Double] = [
        10, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000,
        250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
    ]

    // MARK: request path (static: the C callbacks capture nothing)

    static let slotCount = FuseOp.allCases.count
    static let slots: UnsafeMutablePointer<OpSlot> = {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: 64 * FuseOp.allCases.count, alignment: 64)
        let p = raw.bindMemory(to: OpSlot.self, capacity: FuseOp.allCases.count)
        precondition(MemoryLayout<OpSlot>.stride == 64, "OpSlot must fill one cache line")
        for i in 0..<FuseOp.allCases.count { (p + i).initialize(to: OpSlot()) }
        return p
    }()
    /// The operations table being wrapped (the wrappers call through it).
    static let inner: UnsafeMutablePointer<fuse_lowlevel_ops> = {
        let p = UnsafeMutablePointer<fuse_lowlevel_ops>.allocate(capacity: 1)
        p.initialize(to: fuse_lowlevel_ops())
        return p
    }()
    /// replyError's errno for the request running on this thread (0 = none).
    static let errnoKey: pthread_key_t = {
        var k = pthread_key_t()
        precondition(pthread_key_create(&k, nil) == 0, "pthread_key_create failed")
        return k
    }()
    /// True once `instrument` ran with metrics enabled.
    nonisolated(unsafe) static var recording = false
    /// The instance that owns the registry (errors are counted through it).
    nonisolated(unsafe) static var active: Metrics?

    /// FuseAdapter.replyError: remembers the errno for the wrapper to count.
    @inline(__always) static func noteError(_ e: Int32) {
        if recording && e != 0 { pthread_setspecific(errnoKey, UnsafeRawPointer(bitPattern: Int(e))) }
    }

    /// FuseAdapter's read replier: bytes sent to the kernel.
    @inline(__always) static func addReadBytes(_ n: Int) {
        if recording { slots[FuseOp.read.rawValue].bytes.wrappingAdd(UInt64(n), ordering: .relaxed) }
    }

    @inline(__always) static func begin(_ op: FuseOp) -> UInt64 {
        slots[op.rawValue].started.wrappingAdd(1, ordering: .relaxed)
        return monotonicNs()
    }

    /// Ends a request; true when it did not fail through replyError.
    @inline(__always) @discardableResult
    static func end(_ op: FuseOp, _ t0: UInt64) -> Bool {
        let us = Double(monotonicNs() &- t0) / 1000
        let s = slots + op.rawValue
        s.pointee.finished.wrappingAdd(1, ordering: .relaxed)
        s.pointee.histogram?._withUnsafeGuaranteedRef { $0.record(us) }
        guard let e = pthread_getspecific(errnoKey) else { return true }
        pthread_setspecific(errnoKey, nil)
        active?.countError(op, Int32(truncatingIfNeeded: Int(bitPattern: e)))
        return false
    }

    // MARK: instance: registry and scrape-time collection

    public let enabled: Bool
    public let registry = PrometheusCollectorRegistry()
    private let lock = Lock()
    private var requestCounters: [Counter?] = Array(repeating: nil, count: FuseOp.allCases.count)
    private var lastFinished: [UInt64] = Array(repeating: 0, count: FuseOp.allCases.count)
    private var errorCounters: [Int: Counter] = [:]
    private var mirrored: [String: UInt64] = [:]
    private var cores: [FileSystemCore] = []
    private var requestFamilies: (inflight: Gauge, readBytes: Counter, writeBytes: Counter)?
    private var lastBytes: (read: UInt64, write: UInt64) = (0, 0)
    private let gauges: [String: Gauge]
    private var rpcCounters: [Int8: (Counter, UInt64)] = [:]
    private let coreCounterSeries: [String: Counter]

    private static func d(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    /// The scrape-time gauges fed from the cores (name -> help).
    static let coreGauges: [(String, String)] = [
        ("curvine_fuse_inode_count", "Inodes the kernel holds references to (plus their ancestors)."),
        ("curvine_fuse_file_handle_count", "Open file handles."),
        ("curvine_fuse_dir_handle_count", "Open directory handles."),
        ("inode_num", "Legacy upstream name of curvine_fuse_inode_count."),
        ("file_handle_num", "Legacy upstream name of curvine_fuse_file_handle_count."),
        ("dir_handle_num", "Legacy upstream name of curvine_fuse_dir_handle_count."),
        ("curvine_fuse_read_buffer_bytes", "Bytes held by the read (prefetch) buffer pool."),
        ("curvine_fuse_write_buffer_bytes", "Bytes held by the write buffer pool."),
    ]

    /// The scrape-time counters fed from the cores (name -> help).
    static let coreCounters: [(String, String)] = [
        ("curvine_fuse_prefetch_hit_bytes_total", "Read bytes answered from prefetched buffers."),
        ("curvine_fuse_demand_read_bytes_total", "Read bytes fetched from a worker on the request's own thread (prefetch missed)."),
        ("curvine_fuse_short_circuit_read_bytes_total", "Read bytes answered from a local block file (short-circuit)."),
        ("curvine_fuse_prefetched_bytes_total", "Bytes fetched by background prefetch."),
        ("curvine_fuse_prefetch_wasted_bytes_total", "Prefetched bytes dropped unread (seek, close, invalidation)."),
        ("curvine_fuse_read_your_writes_flushes_total", "Buffered-write flushes forced by a read of the same file."),
    ]

    public init(enabled: Bool) {
        self.enabled = enabled
        var g: [String: Gauge] = [:]
        for (n, h) in Self.coreGauges { g[n] = registry.makeGauge(descriptor: Self.d(n, h)) }
        gauges = g
        var c: [String: Counter] = [:]
        for (n, h) in Self.coreCounters { c[n] = registry.makeCounter(descriptor: Self.d(n, h)) }
        let cache = Self.d("curvine_fuse_node_cache_total",
                           "Metadata cache outcomes: operation=lookup (dentries; status hit, negative, miss) and getattr (attributes; hit, miss).")
        for (op, st) in [("lookup", "hit"), ("lookup", "negative"), ("lookup", "miss"), ("getattr", "hit"), ("getattr", "miss")] {
            c["node_cache|\(op)|\(st)"] = registry.makeCounter(descriptor: cache, labels: [("operation", op), ("status", st)])
        }
        coreCounterSeries = c
        if enabled {
            let inflight = registry.makeGauge(descriptor: Self.d("curvine_fuse_requests_inflight",
                                                                 "FUSE requests being handled now (all ops)."))
            let io = Self.d("curvine_fuse_io_bytes_total", "Bytes read from (replied to the kernel) and written through the mount.")
            requestFamilies = (inflight, registry.makeCounter(descriptor: io, labels: [("io_type", "read")]),
                               registry.makeCounter(descriptor: io, labels: [("io_type", "write")]))
        }
    }

    /// The cores whose counters /metrics reports (one per mount).
    public func setCores(_ c: [FileSystemCore]) { lock.withLock { cores = c } }

    /// Returns `ops` with every non-nil operation wrapped by the request instrumentation,
    /// or `ops` unchanged when metrics are disabled. Call before the session starts.
    func instrument(_ ops: fuse_lowlevel_ops) -> fuse_lowlevel_ops {
        guard enabled else { return ops }
        Self.inner.pointee = ops
        var w = ops
        var used: [FuseOp] = []
        func on(_ present: Bool, _ op: FuseOp, _ install: () -> Void) {
            guard present else { return }
            used.append(op)
            install()
        }
        typealias M = Metrics
        on(ops.lookup != nil, .lookup) { w.lookup = { r, a, b in let t = M.begin(.lookup); M.inner.pointee.lookup!(r, a, b); M.end(.lookup, t) } }
        on(ops.forget != nil, .forget) { w.forget = { r, a, b in let t = M.begin(.forget); M.inner.pointee.forget!(r, a, b); M.end(.forget, t) } }
        on(ops.getattr != nil, .getattr) { w.getattr = { r, a, b in let t = M.begin(.getattr); M.inner.pointee.getattr!(r, a, b); M.end(.getattr, t) } }
        on(ops.setattr != nil, .setattr) { w.setattr = { r, a, b, c, d in let t = M.begin(.setattr); M.inner.pointee.setattr!(r, a, b, c, d); M.end(.setattr, t) } }
        on(ops.readlink != nil, .readlink) { w.readlink = { r, a in let t = M.begin(.readlink); M.inner.pointee.readlink!(r, a); M.end(.readlink, t) } }
        on(ops.mknod != nil, .mknod) { w.mknod = { r, a, b, c, d in let t = M.begin(.mknod); M.inner.pointee.mknod!(r, a, b, c, d); M.end(.mknod, t) } }
        on(ops.mkdir != nil, .mkdir) { w.mkdir = { r, a, b, c in let t = M.begin(.mkdir); M.inner.pointee.mkdir!(r, a, b, c); M.end(.mkdir, t) } }
        on(ops.unlink != nil, .unlink) { w.unlink = { r, a, b in let t = M.begin(.unlink); M.inner.pointee.unlink!(r, a, b); M.end(.unlink, t) } }
        on(ops.rmdir != nil, .rmdir) { w.rmdir = { r, a, b in let t = M.begin(.rmdir); M.inner.pointee.rmdir!(r, a, b); M.end(.rmdir, t) } }
        on(ops.symlink != nil, .symlink) { w.symlink = { r, a, b, c in let t = M.begin(.symlink); M.inner.pointee.symlink!(r, a, b, c); M.end(.symlink, t) } }
        on(ops.rename != nil, .rename) { w.rename = { r, a, b, c, d, e in let t = M.begin(.rename); M.inner.pointee.rename!(r, a, b, c, d, e); M.end(.rename, t) } }
        on(ops.link != nil, .link) { w.link = { r, a, b, c in let t = M.begin(.link); M.inner.pointee.link!(r, a, b, c); M.end(.link, t) } }
        on(ops.open != nil, .open) { w.open = { r, a, b in let t = M.begin(.open); M.inner.pointee.open!(r, a, b); M.end(.open, t) } }
        on(ops.read != nil, .read) { w.read = { r, a, b, c, d in let t = M.begin(.read); M.inner.pointee.read!(r, a, b, c, d); M.end(.read, t) } }
        on(ops.write != nil, .write) {
            w.write = { r, a, b, size, c, d in
                let t = M.begin(.write)
                M.inner.pointee.write!(r, a, b, size, c, d)
                if M.end(.write, t) { M.slots[FuseOp.write.rawValue].bytes.wrappingAdd(UInt64(size), ordering: .relaxed) }
            }
        }
        on(ops.flush != nil, .flush) { w.flush = { r, a, b in let t = M.begin(.flush); M.inner.pointee.flush!(r, a, b); M.end(.flush, t) } }
        on(ops.release != nil, .release) { w.release = { r, a, b in let t = M.begin(.release); M.inner.pointee.release!(r, a, b); M.end(.release, t) } }
        on(ops.fsync != nil, .fsync) { w.fsync = { r, a, b, c in let t = M.begin(.fsync); M.inner.pointee.fsync!(r, a, b, c); M.end(.fsync, t) } }
        on(ops.opendir != nil, .opendir) { w.opendir = { r, a, b in let t = M.begin(.opendir); M.inner.pointee.opendir!(r, a, b); M.end(.opendir, t) } }
        on(ops.readdir != nil, .readdir) { w.readdir = { r, a, b, c, d in let t = M.begin(.readdir); M.inner.pointee.readdir!(r, a, b, c, d); M.end(.readdir, t) } }
        on(ops.releasedir != nil, .releasedir) { w.releasedir = { r, a, b in let t = M.begin(.releasedir); M.inner.pointee.releasedir!(r, a, b); M.end(.releasedir, t) } }
        on(ops.fsyncdir != nil, .fsyncdir) { w.fsyncdir = { r, a, b, c in let t = M.begin(.fsyncdir); M.inner.pointee.fsyncdir!(r, a, b, c); M.end(.fsyncdir, t) } }
        on(ops.statfs != nil, .statfs) { w.statfs = { r, a in let t = M.begin(.statfs); M.inner.pointee.statfs!(r, a); M.end(.statfs, t) } }
        on(ops.setxattr != nil, .setxattr) { w.setxattr = { r, a, b, c, d, e in let t = M.begin(.setxattr); M.inner.pointee.setxattr!(r, a, b, c, d, e); M.end(.setxattr, t) } }
        on(ops.getxattr != nil, .getxattr) { w.getxattr = { r, a, b, c in let t = M.begin(.getxattr); M.inner.pointee.getxattr!(r, a, b, c); M.end(.getxattr, t) } }
        on(ops.listxattr != nil, .listxattr) { w.listxattr = { r, a, b in let t = M.begin(.listxattr); M.inner.pointee.listxattr!(r, a, b); M.end(.listxattr, t) } }
        on(ops.removexattr != nil, .removexattr) { w.removexattr = { r, a, b in let t = M.begin(.removexattr); M.inner.pointee.removexattr!(r, a, b); M.end(.removexattr, t) } }
        on(ops.access != nil, .access) { w.access = { r, a, b in let t = M.begin(.access); M.inner.pointee.access!(r, a, b); M.end(.access, t) } }
        on(ops.create != nil, .create) { w.create = { r, a, b, c, d in let t = M.begin(.create); M.inner.pointee.create!(r, a, b, c, d); M.end(.create, t) } }
        on(ops.getlk != nil, .getlk) { w.getlk = { r, a, b, c in let t = M.begin(.getlk); M.inner.pointee.getlk!(r, a, b, c); M.end(.getlk, t) } }
        on(ops.setlk != nil, .setlk) { w.setlk = { r, a, b, c, d in let t = M.begin(.setlk); M.inner.pointee.setlk!(r, a, b, c, d); M.end(.setlk, t) } }
        on(ops.bmap != nil, .bmap) { w.bmap = { r, a, b, c in let t = M.begin(.bmap); M.inner.pointee.bmap!(r, a, b, c); M.end(.bmap, t) } }
        on(ops.ioctl != nil, .ioctl) { w.ioctl = { r, a, b, c, d, e, f, g, h in let t = M.begin(.ioctl); M.inner.pointee.ioctl!(r, a, b, c, d, e, f, g, h); M.end(.ioctl, t) } }
        on(ops.poll != nil, .poll) { w.poll = { r, a, b, c in let t = M.begin(.poll); M.inner.pointee.poll!(r, a, b, c); M.end(.poll, t) } }
        on(ops.write_buf != nil, .writeBuf) {
            w.write_buf = { r, a, bufv, c, d in
                let t = M.begin(.writeBuf)
                let n = bufv.map { fuse_buf_size($0) } ?? 0
                M.inner.pointee.write_buf!(r, a, bufv, c, d)
                if M.end(.writeBuf, t) { M.slots[FuseOp.write.rawValue].bytes.wrappingAdd(UInt64(n), ordering: .relaxed) }
            }
        }
        on(ops.retrieve_reply != nil, .retrieveReply) { w.retrieve_reply = { r, a, b, c, d in let t = M.begin(.retrieveReply); M.inner.pointee.retrieve_reply!(r, a, b, c, d); M.end(.retrieveReply, t) } }
        on(ops.forget_multi != nil, .forgetMulti) { w.forget_multi = { r, a, b in let t = M.begin(.forgetMulti); M.inner.pointee.forget_multi!(r, a, b); M.end(.forgetMulti, t) } }
        on(ops.flock != nil, .flock) { w.flock = { r, a, b, c in let t = M.begin(.flock); M.inner.pointee.flock!(r, a, b, c); M.end(.flock, t) } }
        on(ops.fallocate != nil, .fallocate) { w.fallocate = { r, a, b, c, d, e in let t = M.begin(.fallocate); M.inner.pointee.fallocate!(r, a, b, c, d, e); M.end(.fallocate, t) } }
        on(ops.readdirplus != nil, .readdirplus) { w.readdirplus = { r, a, b, c, d in let t = M.begin(.readdirplus); M.inner.pointee.readdirplus!(r, a, b, c, d); M.end(.readdirplus, t) } }
        on(ops.copy_file_range != nil, .copyFileRange) { w.copy_file_range = { r, a, b, c, d, e, f, g, h in let t = M.begin(.copyFileRange); M.inner.pointee.copy_file_range!(r, a, b, c, d, e, f, g, h); M.end(.copyFileRange, t) } }
        on(ops.lseek != nil, .lseek) { w.lseek = { r, a, b, c, d in let t = M.begin(.lseek); M.inner.pointee.lseek!(r, a, b, c, d); M.end(.lseek, t) } }

        // One counter and one histogram per wrapped op, created now (never per request).
        let req = Self.d("curvine_fuse_requests_total", "FUSE requests handled, by operation.")
        let dur = Self.d("curvine_fuse_request_duration_us", "FUSE request latency in microseconds, from the callback's start to its reply.")
        lock.withLock {
            for op in used where requestCounters[op.rawValue] == nil {
                requestCounters[op.rawValue] = registry.makeCounter(descriptor: req, labels: [("op", op.label)])
                let h = registry.makeValueHistogram(descriptor: dur, labels: [("op", op.label)], buckets: Self.durationBucketsUs)
                // The registry keeps the histogram alive for the life of the process.
                Self.slots[op.rawValue].histogram = Unmanaged.passUnretained(h)
            }
        }
        _ = Self.errnoKey
        Self.active = self
        Self.recording = true
        return w
    }

    /// Counts one failed request (the error path only).
    func countError(_ op: FuseOp, _ e: Int32) {
        let key = op.rawValue << 16 | Int(UInt16(truncatingIfNeeded: e))
        let c: Counter = lock.withLock {
            if let c = errorCounters[key] { return c }
            let c = registry.makeCounter(
                descriptor: Self.d("curvine_fuse_errors_total", "FUSE requests that failed, by operation and errno (a number, as in errno.h)."),
                labels: [("op", op.label), ("errno", String(e))])
            errorCounters[key] = c
            return c
        }
        c.increment()
    }

    /// Brings the scrape-time series up to date (slots and cores -> registry).
    public func collect() {
        lock.withLock {
            if let fam = requestFamilies {
                var inflight: UInt64 = 0
                for op in FuseOp.allCases {
                    guard let c = requestCounters[op.rawValue] else { continue }
                    let s = Self.slots + op.rawValue
                    // finished first: started read afterwards is >= it, so the gauge never goes negative.
                    let fin = s.pointee.finished.load(ordering: .relaxed)
                    let st = s.pointee.started.load(ordering: .relaxed)
                    inflight &+= st &- fin
                    if fin > lastFinished[op.rawValue] {
                        c.increment(by: Int64(fin - lastFinished[op.rawValue]))
                        lastFinished[op.rawValue] = fin
                    }
                }
                fam.inflight.set(to: Double(inflight))
                let rb = Self.slots[FuseOp.read.rawValue].bytes.load(ordering: .relaxed)
                let wb = Self.slots[FuseOp.write.rawValue].bytes.load(ordering: .relaxed)
                if rb > lastBytes.read { fam.readBytes.increment(by: Int64(rb - lastBytes.read)) }
                if wb > lastBytes.write { fam.writeBytes.increment(by: Int64(wb - lastBytes.write)) }
                lastBytes = (max(rb, lastBytes.read), max(wb, lastBytes.write))
            }

            var s = CoreStats()
            var cs = CacheStatsSnapshot()
            for core in cores {
                let t = core.stats
                s.prefetchHitBytes += t.prefetchHitBytes
                s.demandReadBytes += t.demandReadBytes
                s.shortCircuitBytes += t.shortCircuitBytes
                s.prefetchedBytes += t.prefetchedBytes
                s.prefetchWastedBytes += t.prefetchWastedBytes
                s.readYourWritesFlushes += t.readYourWritesFlushes
                s.inodes += t.inodes
                s.fileHandles += t.fileHandles
                s.dirHandles += t.dirHandles
                s.readPoolBytes += t.readPoolBytes
                s.writePoolBytes += t.writePoolBytes
                let c = core.cacheStats
                cs.lookupHit += c.lookupHit
                cs.lookupNegative += c.lookupNegative
                cs.lookupMiss += c.lookupMiss
                cs.attrHit += c.attrHit
                cs.attrMiss += c.attrMiss
            }
            for (name, v) in [("curvine_fuse_inode_count", s.inodes), ("inode_num", s.inodes),
                              ("curvine_fuse_file_handle_count", s.fileHandles), ("file_handle_num", s.fileHandles),
                              ("curvine_fuse_dir_handle_count", s.dirHandles), ("dir_handle_num", s.dirHandles),
                              ("curvine_fuse_read_buffer_bytes", s.readPoolBytes),
                              ("curvine_fuse_write_buffer_bytes", s.writePoolBytes)] {
                gauges[name]?.set(to: Double(v))
            }
            let counters: [(String, UInt64)] = [
                ("curvine_fuse_prefetch_hit_bytes_total", s.prefetchHitBytes),
                ("curvine_fuse_demand_read_bytes_total", s.demandReadBytes),
                ("curvine_fuse_short_circuit_read_bytes_total", s.shortCircuitBytes),
                ("curvine_fuse_prefetched_bytes_total", s.prefetchedBytes),
                ("curvine_fuse_prefetch_wasted_bytes_total", s.prefetchWastedBytes),
                ("curvine_fuse_read_your_writes_flushes_total", s.readYourWritesFlushes),
                ("node_cache|lookup|hit", cs.lookupHit),
                ("node_cache|lookup|negative", cs.lookupNegative),
                ("node_cache|lookup|miss", cs.lookupMiss),
                ("node_cache|getattr|hit", cs.attrHit),
                ("node_cache|getattr|miss", cs.attrMiss),
            ]
            // Master RPCs by code (process-wide, MasterClient counts them).
            for (code, n) in MasterClient.rpcCounts() {
                let (c, last) = rpcCounters[code.rawValue] ?? (registry.makeCounter(
                    descriptor: Self.d("curvine_client_master_rpcs_total", "Master RPCs sent by this process, by RPC code name."),
                    labels: [("code", "\(code)")]), 0)
                if n > last { c.increment(by: Int64(n - last)) }
                rpcCounters[code.rawValue] = (c, max(n, last))
            }
            // The cores count since mount; the registry's counters only go up, so add the
            // difference since the last scrape.
            for (key, v) in counters {
                let last = mirrored[key] ?? 0
                guard v > last, let c = coreCounterSeries[key] else { continue }
                c.increment(by: Int64(v - last))
                mirrored[key] = v
            }
        }
    }

    /// The Prometheus text exposition (format 0.0.4), up to date.
    public func exposition() -> [UInt8] {
        collect()
        return registry.emitToBuffer()
    }
}
