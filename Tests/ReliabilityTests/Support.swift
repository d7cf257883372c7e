// Shared fixtures of the reliability tests: environment switches, small timeouts from a
// TOML, a watchdog that turns a hang into a failure, and a file-system core over an
// in-process EmbeddedCluster (real TCP, fault hooks) for fault tests without a kernel.
//
// Environment:
//   CURVINE_LONG=1      long mode (more ops, more fuzz inputs, bigger directories)
//   CURVINE_SEED=N      seed of the randomized tests (printed by every run, so a failure replays)
//   CURVINE_BIN_DIR=D   where curvine-fuse and curvine-cluster are (default <package>/.build/debug)
import Foundation
import XCTest
import CurvineTestHarness
#if canImport(Glibc)
import Glibc
#endif
import CurvineClient
import CurvineFSCore
import CurvineServer

enum RelEnv {
    static var env: [String: String] { ProcessInfo.processInfo.environment }
    static var long: Bool { env["CURVINE_LONG"] == "1" }

    /// CURVINE_SEED, else a fresh random seed.
    static func seed() -> UInt64 {
        if let s = env["CURVINE_SEED"], let v = UInt64(s) { return v }
        return UInt64.random(in: 1...UInt64(UInt32.max))
    }

    /// The binaries under test (CurvineTestHarness: $CURVINE_BIN_DIR, else .build/debug).
    static var binDir: String { TestBinaries.binDir }
    static func binary(_ name: String) -> String { CurvineTestHarness.binary(name) }
}

/// Small timeouts of the fault tests (ms). Each test asserts its bound from these.
enum Timeouts {
    static let connectMs = 500
    static let rpcMs = 1_000
    static let budgetMs = 3_000
    static let dataMs = 1_000
    /// Scheduling slack on a shared 2-core machine.
    static let slack = 1.5

    /// The documented bound of one master call: max(retry budget, rpc timeout).
    static var callBound: Double { Double(max(budgetMs, rpcMs)) / 1000 + slack }
}

/// The [client] section the fault tests use, as a TOML users would write.
func clientToml(_ masters: [HostPort], shortCircuit: Bool = false, blockSize: String = "1MB", replicas: Int = 1,
                connectMs: Int = Timeouts.connectMs, rpcMs: Int = Timeouts.rpcMs, budgetMs: Int = Timeouts.budgetMs,
                dataMs: Int = Timeouts.dataMs) -> String {
    """
    [client]
    master_addrs = [\(masters.map { "{ hostname = \"\($0.host)\", port = \($0.port) }" }.joined(separator: ", "))]
    short_circuit = \(shortCircuit)
    block_size = "\(blockSize)"
    replicas = \(replicas)
    conn_timeout_ms = \(connectMs)
    rpc_timeout_ms = \(rpcMs)
    rpc_retry_max_duration_ms = \(budgetMs)
    data_timeout_ms = \(dataMs)
    """
}

func makeClient(_ toml: String) throws -> CurvineClient {
    let conf = try ClusterConfig.parse(text: toml, source: "test.toml")
    return try CurvineClient(options: conf.clientOptions())
}

func seconds(since ns: UInt64) -> Double { Double(monotonicNs() - ns) / 1e9 }

/// The errno of an error thrown by the core or the client (nil for anything else).
func errnoOf(_ error: Error) -> Int32? {
    switch error {
    case let e as FSError: return e.errno
    case let e as CurvineError: return e.errno
    default: return nil
    }
}

/// Runs `body` on its own thread and waits at most `limit` seconds: a hang fails the test
/// instead of hanging the runner (the stuck thread is abandoned; teardown stops the
/// servers, which wakes it). Returns nil on a hang.
func watchdog<T>(_ limit: Double, _ what: String, file: StaticString = #filePath, line: UInt = #line,
                 _ body: @escaping () throws -> T) -> Result<T, Error>? {
    let box = ResultBox<T>()
    let sem = DispatchSemaphore(value: 0)
    let t = Thread {
        box.r = Result { try body() }
        sem.signal()
    }
    t.stackSize = 4 << 20
    t.start()
    if sem.wait(timeout: .now() + limit) == .timedOut {
        XCTFail("\(what): no answer within \(limit) s (hung)", file: file, line: line)
        return nil
    }
    return box.r
}

/// Asserts that `body` fails with one of `errnos` within `bound` seconds; returns the time.
@discardableResult
func expectFailure(_ errnos: Set<Int32>, within bound: Double, _ what: String, file: StaticString = #filePath,
                   line: UInt = #line, _ body: @escaping () throws -> Void) -> Double {
    let start = monotonicNs()
    guard let r = watchdog(bound + 10, what, file: file, line: line, body) else { return seconds(since: start) }
    let took = seconds(since: start)
    switch r {
    case .success:
        XCTFail("\(what): succeeded, expected \(errnos.map(errnoName).sorted())", file: file, line: line)
    case .failure(let e):
        let n = errnoOf(e)
        XCTAssertTrue(n.map { errnos.contains($0) } ?? false,
                      "\(what): got \(e), expected \(errnos.map(errnoName).sorted())", file: file, line: line)
    }
    XCTAssertLessThanOrEqual(took, bound, "\(what): took \(took) s, bound \(bound) s", file: file, line: line)
    return took
}

/// Runs `body` under the watchdog and returns its value; a hang or an error fails the test.
func within<T>(_ limit: Double, _ what: String, file: StaticString = #filePath, line: UInt = #line,
               _ body: @escaping () throws -> T) throws -> T {
    guard let r = watchdog(limit, what, file: file, line: line, body) else {
        throw FSError(ETIMEDOUT, "\(what) hung")
    }
    return try r.get()
}

final class Counter: @unchecked Sendable {
    private let lock = Lock()
    private var n = 0
    func add(_ k: Int = 1) { lock.withLock { n += k } }
    var value: Int { lock.withLock { n } }
}

// MARK: - A core over an in-process cluster

final class ByteReplier: ReadReplier {
    var data: [UInt8] = []
    func replyBytes(_ bytes: UnsafeRawBufferPointer) { data = Array(bytes) }
    func replyFile(fd: Int32, offset: Int64, count: Int) {
        var buf = [UInt8](repeating: 0, count: count)
        let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
        data = Array(buf[0..<max(0, n)])
    }
}

struct NameCollector: DirectoryReplier {
    var names: [String] = []
    var last: Int64 = 0
    var capacity = 200
    mutating func add(name: String, ino: UInt64, mode: UInt32, nextOffset: Int64, entry: Entry?) -> Bool {
        if names.count >= capacity { return false }
        names.append(name)
        last = nextOffset
        return true
    }
}

/// An EmbeddedCluster and a FileSystemCore over a real CurvineClient talking TCP to it.
final class CoreRig {
    let dir: String
    let cluster: EmbeddedCluster
    let client: CurvineClient
    let core: FileSystemCore
    let root = RequestContext.root

    init(tag: String, workers: Int = 1, standbyMasters: Int = 0, replicas: Int = 1, blockSize: String = "1MB",
         shortCircuit: Bool = false, syncWrites: Bool = false, budgetMs: Int = Timeouts.budgetMs,
         rpcMs: Int = Timeouts.rpcMs, configure: (inout CoreConfig) -> Void = { _ in }) throws {
        dir = tempDir(tag)
        cluster = try EmbeddedCluster.start(dataDir: dir, workers: workers, standbyMasters: standbyMasters,
                                            syncWrites: syncWrites)
        do {
            client = try makeClient(clientToml(cluster.masterAddresses, shortCircuit: shortCircuit, blockSize: blockSize,
                                               replicas: replicas, rpcMs: rpcMs, budgetMs: budgetMs))
            var c = CoreConfig()
            c.ioThreads = 4
            c.readBufferBudget = 64 << 20
            c.writeBufferBudget = 32 << 20
            c.blockSize = Int64(parseByteSize(blockSize)!)
            c.replicas = Int32(replicas)
            // Far above the client's bounds: only a real hang in the core trips it.
            c.ioTimeout = 30
            configure(&c)
            core = try FileSystemCore(client: client, config: c)
        } catch {
            cluster.stop()
            removeTree(dir)
            throw error
        }
    }

    func stop() {
        core.shutdown()
        client.close()
        cluster.stop()
        removeTree(dir)
    }

    func lookup(_ name: String, parent: UInt64 = 1) throws -> UInt64 {
        try core.lookup(parent: parent, name: name, ctx: root).ino
    }

    /// Creates (or replaces) `name` in the mount root with `data`, in `chunk`-sized writes.
    @discardableResult
    func writeFile(_ name: String, _ data: [UInt8], chunk: Int = 256 << 10, parent: UInt64 = 1) throws -> UInt64 {
        let (e, o) = try core.create(parent: parent, name: name, mode: 0o644, flags: O_WRONLY | O_CREAT, ctx: root)
        do {
            var off = 0
            while off < data.count {
                let n = min(chunk, data.count - off)
                _ = try data[off..<(off + n)].withUnsafeBytes {
                    try core.write(ino: e.ino, fh: o.fh, offset: Int64(off), data: $0, ctx: root)
                }
                off += n
            }
            try core.flush(ino: e.ino, fh: o.fh)
        } catch {
            try? core.release(ino: e.ino, fh: o.fh)
            throw error
        }
        try core.release(ino: e.ino, fh: o.fh)
        return e.ino
    }

    func read(_ ino: UInt64, fh: UInt64, offset: Int64, size: Int) throws -> [UInt8] {
        let r = ByteReplier()
        try core.read(ino: ino, fh: fh, offset: offset, size: size, replier: r)
        return r.data
    }

    func readAll(_ ino: UInt64, chunk: Int = 128 << 10) throws -> [UInt8] {
        let o = try core.open(ino: ino, flags: O_RDONLY, ctx: root)
        defer { try? core.release(ino: ino, fh: o.fh) }
        var out: [UInt8] = []
        while true {
            let c = try read(ino, fh: o.fh, offset: Int64(out.count), size: chunk)
            out += c
            if c.count < chunk { break }
        }
        return out
    }

    func list(_ ino: UInt64 = 1) throws -> [String] {
        let o = try core.opendir(ino: ino, ctx: root)
        defer { core.releasedir(ino: ino, fh: o.fh) }
        var names: [String] = []
        var off: Int64 = 0
        while true {
            var r = NameCollector()
            try core.readdir(ino: ino, fh: o.fh, offset: off, plus: false, replier: &r)
            if r.names.isEmpty { break }
            names += r.names
            off = r.last
        }
        return names.filter { $0 != "." && $0 != ".." }
    }
}
