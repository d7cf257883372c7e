// Faults injected through the embedded cluster (fault hooks, stopWorker) and a TCP
// proxy, against a FileSystemCore over a real CurvineClient: every core call returns
// data (retried elsewhere) or a clear errno within the configured bound, and the core
// keeps serving afterwards. Timeouts come from a TOML (Support.swift: connect 0.5 s,
// rpc 1 s, retry budget 3 s, data 1 s).
import Foundation
import XCTest
import CurvineTestHarness
#if canImport(Glibc)
import Glibc
#endif
import CurvineClient
import CurvineFSCore
import CurvineServer

/// Faults tried and survived, printed at the end of each test (the report's figures).
let faultLog = FaultLog()

final class FaultLog: @unchecked Sendable {
    private let lock = Lock()
    private var lines: [String] = []
    func note(_ s: String) {
        lock.withLock { lines.append(s) }
        print("fault: \(s)")
    }
}

private let readCode = RpcCode.readBlock.rawValue
private let writeCode = RpcCode.writeBlock.rawValue

/// A hook that applies `fault` to the first `times` frames matching `match` (-1: all).
func hook(_ fault: ServerFault, times: Int = -1, _ match: @escaping @Sendable (Frame) -> Bool = { _ in true })
    -> @Sendable (Frame) -> ServerFault {
    let left = Counter()
    left.add(times)
    return { f in
        guard match(f) else { return .proceed }
        if times < 0 { return fault }
        if left.value <= 0 { return .proceed }
        left.add(-1)
        return fault
    }
}

final class WorkerFaultTests: XCTestCase {
    /// The data-path bound of one read/write when the worker dies or hangs: connect +
    /// data timeout per replica tried.
    func dataBound(replicas: Int) -> Double {
        Double(replicas) * Double(Timeouts.connectMs + Timeouts.dataMs) / 1000 + Timeouts.slack
    }

    func testWorkerKilledMidReadFailsOverToTheOtherReplica() throws {
        let rig = try CoreRig(tag: "rd2", workers: 2, replicas: 2)
        defer { rig.stop() }
        let data = patternBytes(6 << 20, seed: 1)
        let ino = try rig.writeFile("f", data)
        let blocks = try rig.client.blockLocations("/f").blocks
        XCTAssertTrue(blocks.allSatisfy { $0.locations.count == 2 }, "every block on both workers")
        let o = try rig.core.open(ino: ino, flags: O_RDONLY, ctx: rig.root)
        var got = try rig.read(ino, fh: o.fh, offset: 0, size: 1 << 20)
        let victim = Int(blocks[0].locations[0].workerId) - 1
        rig.cluster.stopWorker(victim)
        let start = monotonicNs()
        while got.count < data.count {
            let off = Int64(got.count)
            let chunk = try within(dataBound(replicas: 2), "read after worker kill") {
                try rig.read(ino, fh: o.fh, offset: off, size: 1 << 20)
            }
            XCTAssertFalse(chunk.isEmpty)
            if chunk.isEmpty { break }
            got += chunk
        }
        XCTAssertEqual(got.count, data.count)
        XCTAssertTrue(got == data, "data read across the worker kill differs")
        try rig.core.release(ino: ino, fh: o.fh)
        faultLog.note("worker killed mid-read, 2 replicas: read completed from the other replica, rest of the file in \(String(format: "%.2f", seconds(since: start))) s")
        // Keeps serving: a new file lands on the surviving worker and reads back.
        let d2 = patternBytes(3 << 20, seed: 2)
        let i2 = try rig.writeFile("g", d2)
        XCTAssertTrue(try rig.readAll(i2) == d2)
        XCTAssertTrue(try rig.readAll(ino) == data)
    }

    func testWorkerKilledMidReadSingleReplicaFailsThenRecovers() throws {
        let rig = try CoreRig(tag: "rd1", workers: 1, replicas: 1)
        defer { rig.stop() }
        let data = patternBytes(8 << 20, seed: 3)
        let ino = try rig.writeFile("f", data)
        let o = try rig.core.open(ino: ino, flags: O_RDONLY, ctx: rig.root)
        XCTAssertEqual(try rig.read(ino, fh: o.fh, offset: 0, size: 1 << 20), Array(data[0..<(1 << 20)]))
        rig.cluster.stopWorker(0)
        let took = expectFailure([EIO, ETIMEDOUT], within: dataBound(replicas: 1), "read with the only worker dead") {
            _ = try rig.read(ino, fh: o.fh, offset: 7 << 20, size: 1 << 20)
        }
        faultLog.note("worker killed mid-read, 1 replica: EIO after \(String(format: "%.3f", took)) s")
        try rig.cluster.startWorker(0)
        // The same handle and a new one read again.
        let back = try within(dataBound(replicas: 1), "read after worker restart") {
            try rig.read(ino, fh: o.fh, offset: 7 << 20, size: 1 << 20)
        }
        XCTAssertTrue(back == Array(data[(7 << 20)...]))
        try rig.core.release(ino: ino, fh: o.fh)
        XCTAssertTrue(try rig.readAll(ino) == data)
    }

    func testWorkerKilledMidWriteKeepsTheSurvivingReplica() throws {
        let rig = try CoreRig(tag: "wr2", workers: 2, replicas: 2)
        defer { rig.stop() }
        let data = patternBytes(4 << 20 + 12345, seed: 4)
        let (e, o) = try rig.core.create(parent: 1, name: "f", mode: 0o644, flags: O_WRONLY | O_CREAT, ctx: rig.root)
        let chunk = 256 << 10
        var off = 0
        var killed = false
        let start = monotonicNs()
        while off < data.count {
            let n = min(chunk, data.count - off)
            let o0 = off
            _ = try within(dataBound(replicas: 2), "write across worker kill") {
                try data[o0..<(o0 + n)].withUnsafeBytes { try rig.core.write(ino: e.ino, fh: o.fh, offset: Int64(o0), data: $0, ctx: rig.root) }
            }
            off += n
            if !killed && off >= (3 << 19) {
                // Mid-block, with a stream open on both workers.
                try rig.core.flush(ino: e.ino, fh: o.fh)
                rig.cluster.stopWorker(0)
                killed = true
            }
        }
        try within(dataBound(replicas: 2), "flush after worker kill") { try rig.core.flush(ino: e.ino, fh: o.fh) }
        try within(dataBound(replicas: 2), "release after worker kill") { try rig.core.release(ino: e.ino, fh: o.fh) }
        faultLog.note("worker killed mid-write, 2 replicas: write, flush and close succeeded in \(String(format: "%.2f", seconds(since: start))) s on the surviving replica")
        XCTAssertTrue(try rig.readAll(e.ino) == data, "file written across a worker kill reads back wrong")
        let live = UInt32(2)
        for b in try rig.client.blockLocations("/f").blocks {
            XCTAssertTrue(b.locations.contains { $0.workerId == live }, "block \(b.id) lacks the surviving worker")
        }
    }

    func testWorkerKilledMidWriteSingleReplicaReportsErrnoThenServes() throws {
        let rig = try CoreRig(tag: "wr1", workers: 2, replicas: 1)
        defer { rig.stop() }
        let (e, o) = try rig.core.create(parent: 1, name: "f", mode: 0o644, flags: O_WRONLY | O_CREAT, ctx: rig.root)
        let part = patternBytes(512 << 10, seed: 5)
        try part.withUnsafeBytes { _ = try rig.core.write(ino: e.ino, fh: o.fh, offset: 0, data: $0, ctx: rig.root) }
        try rig.core.flush(ino: e.ino, fh: o.fh)
        let victim = Int(try rig.client.blockLocations("/f").blocks[0].locations[0].workerId) - 1
        rig.cluster.stopWorker(victim)
        // The block's only replica is gone: one of write/flush/release reports it.
        let start = monotonicNs()
        var failure: Int32?
        let more = patternBytes(256 << 10, seed: 6)
        for step in 0..<3 where failure == nil {
            let r = watchdog(dataBound(replicas: 1) + 5, "write path after worker kill") { () throws -> Void in
                switch step {
                case 0: _ = try more.withUnsafeBytes { try rig.core.write(ino: e.ino, fh: o.fh, offset: 512 << 10, data: $0, ctx: rig.root) }
                case 1: try rig.core.flush(ino: e.ino, fh: o.fh)
                default: try rig.core.release(ino: e.ino, fh: o.fh)
                }
            }
            if case .failure(let err)? = r { failure = errnoOf(err) ?? -1 }
        }
        if failure != nil { try? rig.core.release(ino: e.ino, fh: o.fh) }
        let took = seconds(since: start)
        XCTAssertTrue(failure == EIO || failure == ETIMEDOUT, "expected EIO or ETIMEDOUT, got \(failure.map(errnoName) ?? "success")")
        XCTAssertLessThanOrEqual(took, dataBound(replicas: 1) * 2)
        faultLog.note("worker killed mid-write, 1 replica: \(failure.map(errnoName) ?? "none") after \(String(format: "%.3f", took)) s")
        // Keeps serving: new blocks go to the live worker.
        let d = patternBytes(2 << 20, seed: 7)
        let i2 = try within(10, "write after worker kill") { try rig.writeFile("g", d) }
        XCTAssertTrue(try rig.readAll(i2) == d)
    }

    func testSlowAndHungWorker() throws {
        let rig = try CoreRig(tag: "slow", workers: 1)
        defer { rig.stop() }
        let data = patternBytes(4 << 20, seed: 8)
        let ino = try rig.writeFile("f", data)
        let w = rig.cluster.workers[0]!
        // Slower than usual but inside data_timeout: data.
        w.setFaultHook(hook(.delay(ms: 150)) { $0.code == readCode })
        var start = monotonicNs()
        let o0 = try rig.core.open(ino: ino, flags: O_RDONLY, ctx: rig.root)
        XCTAssertTrue(try within(10, "slow read") { try rig.read(ino, fh: o0.fh, offset: 1 << 20, size: 512 << 10) }
            == Array(data[(1 << 20)..<(3 << 19)]))
        try rig.core.release(ino: ino, fh: o0.fh)
        faultLog.note("slow worker (150 ms per reply < data timeout): data in \(String(format: "%.2f", seconds(since: start))) s")
        // Longer than data_timeout: a clear errno within the bound.
        w.setFaultHook(hook(.delay(ms: 3_000)) { $0.code == readCode && $0.requestStatus == .running })
        let o = try rig.core.open(ino: ino, flags: O_RDONLY, ctx: rig.root)
        let took = expectFailure([ETIMEDOUT, EIO], within: dataBound(replicas: 1), "read from a hung worker") {
            _ = try rig.read(ino, fh: o.fh, offset: 3 << 20, size: 1 << 20)
        }
        faultLog.note("hung worker (reply after 3 s > data timeout 1 s): ETIMEDOUT after \(String(format: "%.3f", took)) s")
        // Swallowed reply (worker alive, never answers).
        w.setFaultHook(hook(.swallowReply) { $0.code == readCode && $0.requestStatus == .running })
        let took2 = expectFailure([ETIMEDOUT, EIO], within: dataBound(replicas: 1), "read, reply swallowed") {
            _ = try rig.read(ino, fh: o.fh, offset: 2 << 20, size: 1 << 20)
        }
        faultLog.note("worker swallows the reply: ETIMEDOUT after \(String(format: "%.3f", took2)) s")
        w.setFaultHook(nil)
        start = monotonicNs()
        XCTAssertTrue(try within(10, "read after recovery") { try rig.read(ino, fh: o.fh, offset: 2 << 20, size: 1 << 20) }
            == Array(data[(2 << 20)..<(3 << 20)]))
        try rig.core.release(ino: ino, fh: o.fh)
        XCTAssertTrue(try rig.readAll(ino) == data)
        // Slow writes inside the timeout succeed.
        w.setFaultHook(hook(.delay(ms: 100)) { $0.code == writeCode })
        let d = patternBytes(1 << 20, seed: 9)
        let i2 = try within(20, "slow write") { try rig.writeFile("g", d) }
        w.setFaultHook(nil)
        XCTAssertTrue(try rig.readAll(i2) == d)
    }

    func testDroppedWorkerConnectionsAreRetried() throws {
        let rig = try CoreRig(tag: "wdrop", workers: 1)
        defer { rig.stop() }
        let data = patternBytes(4 << 20, seed: 10)
        let ino = try rig.writeFile("f", data)
        let w = rig.cluster.workers[0]!
        let o = try rig.core.open(ino: ino, flags: O_RDONLY, ctx: rig.root)
        var got = try rig.read(ino, fh: o.fh, offset: 0, size: 1 << 20)
        // Connection closed before the worker answers (once), then all connections reset.
        w.setFaultHook(hook(.dropBeforeExecute, times: 1) { $0.code == readCode && $0.requestStatus == .running })
        got += try within(10, "read, connection dropped") { try rig.read(ino, fh: o.fh, offset: 1 << 20, size: 1 << 20) }
        w.dropConnections()
        got += try within(10, "read after reset") { try rig.read(ino, fh: o.fh, offset: 2 << 20, size: 1 << 20) }
        w.setFaultHook(hook(.dropAfterExecute, times: 1) { $0.code == readCode && $0.requestStatus == .running })
        got += try within(10, "read, reply lost") { try rig.read(ino, fh: o.fh, offset: 3 << 20, size: 1 << 20) }
        XCTAssertTrue(got == data)
        try rig.core.release(ino: ino, fh: o.fh)
        faultLog.note("worker connection dropped before/after executing and reset mid-read: data, no error")
        // A write stream whose connection drops at Open is retried on a fresh connection.
        w.setFaultHook(hook(.dropBeforeExecute, times: 1) { $0.code == writeCode && $0.requestStatus == .open })
        let d = patternBytes(1 << 20, seed: 11)
        let i2 = try within(10, "write, connection dropped at open") { try rig.writeFile("g", d) }
        w.setFaultHook(nil)
        XCTAssertTrue(try rig.readAll(i2) == d)
    }

    func testWrongLengthRepliesFromAWorker() throws {
        // Two replicas: a stream whose reply cannot be a frame is dropped and the read
        // retried on the other replica (or, after a transport error, the same worker).
        let rig = try CoreRig(tag: "wlen", workers: 2, replicas: 2)
        defer { rig.stop() }
        let data = patternBytes(4 << 20, seed: 12)
        let ino = try rig.writeFile("f", data)
        let ws = [rig.cluster.workers[0]!, rig.cluster.workers[1]!]
        func setHook(_ h: (@Sendable (Frame) -> ServerFault)?) { ws.forEach { $0.setFaultHook(h) } }
        let o = try rig.core.open(ino: ino, flags: O_RDONLY, ctx: rig.root)
        var got: [UInt8] = []
        // Once each: too long (we wait for bytes that never come), too short (we read the
        // tail as the next frame), absurd (a negative length).
        for (i, delta) in [Int32(40), -7, -200_000].enumerated() {
            setHook(hook(.corruptLength(delta: delta), times: 1) { $0.code == readCode && $0.requestStatus == .running })
            let start = monotonicNs()
            let off = Int64(i) << 20
            got += try within(dataBound(replicas: 2), "read, reply length off by \(delta)") {
                try rig.read(ino, fh: o.fh, offset: off, size: 1 << 20)
            }
            faultLog.note("worker reply with length off by \(delta): data after \(String(format: "%.3f", seconds(since: start))) s (stream reopened)")
        }
        // Every reply malformed: a clear errno within the bound.
        setHook(hook(.corruptLength(delta: 40)) { $0.code == readCode && $0.requestStatus == .running })
        // A fresh handle and a random read: nothing prefetched to hide the fault.
        let o2 = try rig.core.open(ino: ino, flags: O_RDONLY, ctx: rig.root)
        let took = expectFailure([EIO, ETIMEDOUT, EPROTO], within: dataBound(replicas: 2), "read, every reply malformed") {
            _ = try rig.read(ino, fh: o2.fh, offset: (7 << 19) + 4096, size: 64 << 10)
        }
        try rig.core.release(ino: ino, fh: o2.fh)
        faultLog.note("workers always send a wrong length: \(errnoName(ETIMEDOUT)) after \(String(format: "%.3f", took)) s")
        setHook(nil)
        got += try within(10, "read after recovery") { try rig.read(ino, fh: o.fh, offset: 3 << 20, size: 1 << 20) }
        XCTAssertTrue(got == data)
        try rig.core.release(ino: ino, fh: o.fh)
    }
}

final class MasterFaultTests: XCTestCase {
    func testMasterStopsAnswering() throws {
        let rig = try CoreRig(tag: "mhang")
        defer { rig.stop() }
        let data = patternBytes(2 << 20, seed: 20)
        let ino = try rig.writeFile("f", data)
        let o = try rig.core.open(ino: ino, flags: O_RDONLY, ctx: rig.root)
        _ = try rig.read(ino, fh: o.fh, offset: 0, size: 4096)  // layout cached
        let m = rig.cluster.masters[0]
        m.setFaultHook(hook(.swallowReply))
        let took = expectFailure([ETIMEDOUT, EIO], within: Timeouts.callBound, "lookup with the master silent") {
            _ = try rig.lookup("missing")
        }
        faultLog.note("master stops answering: lookup ETIMEDOUT after \(String(format: "%.3f", took)) s (bound max(budget, rpc) = \(Timeouts.budgetMs) ms)")
        expectFailure([ETIMEDOUT, EIO], within: Timeouts.callBound, "mkdir with the master silent") {
            _ = try rig.core.mkdir(parent: 1, name: "d", mode: 0o755, ctx: rig.root)
        }
        // Data already located keeps flowing from the worker.
        XCTAssertTrue(try within(5, "read while the master is silent") { try rig.read(ino, fh: o.fh, offset: 1 << 20, size: 1 << 20) }
            == Array(data[(1 << 20)...]))
        m.setFaultHook(nil)
        let start = monotonicNs()
        _ = try within(Timeouts.callBound, "mkdir after the master is back") { try rig.core.mkdir(parent: 1, name: "d2", mode: 0o755, ctx: rig.root) }
        XCTAssertLessThan(seconds(since: start), 1.0)
        try rig.core.release(ino: ino, fh: o.fh)
        let i2 = try rig.writeFile("g", data)
        XCTAssertTrue(try rig.readAll(i2) == data)
    }

    func testSlowMasterReplies() throws {
        let rig = try CoreRig(tag: "mslow")
        defer { rig.stop() }
        let m = rig.cluster.masters[0]
        m.setFaultHook(hook(.delay(ms: 300)))
        var start = monotonicNs()
        _ = try within(10, "mkdir, slow master") { try rig.core.mkdir(parent: 1, name: "a", mode: 0o755, ctx: rig.root) }
        let slowOk = seconds(since: start)
        XCTAssertGreaterThanOrEqual(slowOk, 0.3)
        faultLog.note("slow master (300 ms < rpc timeout): mkdir succeeded in \(String(format: "%.3f", slowOk)) s")
        m.setFaultHook(hook(.delay(ms: 2_500)))
        let took = expectFailure([ETIMEDOUT, EIO], within: Timeouts.callBound, "mkdir, master slower than rpc timeout") {
            _ = try rig.core.mkdir(parent: 1, name: "b", mode: 0o755, ctx: rig.root)
        }
        faultLog.note("slow master (2.5 s > rpc timeout 1 s): ETIMEDOUT after \(String(format: "%.3f", took)) s")
        m.setFaultHook(nil)
        start = monotonicNs()
        // "b" may or may not exist now (the slow attempts may have executed); the mount is consistent either way.
        _ = try within(Timeouts.callBound, "mkdir after recovery") { try rig.core.mkdir(parent: 1, name: "c", mode: 0o755, ctx: rig.root) }
        let names = try rig.list()
        XCTAssertTrue(names.contains("a") && names.contains("c"), "\(names)")
    }

    func testDroppedMasterConnectionsAreRetried() throws {
        let rig = try CoreRig(tag: "mdrop")
        defer { rig.stop() }
        let m = rig.cluster.masters[0]
        let mk = RpcCode.mkdir.rawValue, create = RpcCode.createFile.rawValue
        m.setFaultHook(hook(.dropBeforeExecute, times: 2) { $0.code == mk })
        _ = try within(Timeouts.callBound, "mkdir, connection dropped twice") { try rig.core.mkdir(parent: 1, name: "a", mode: 0o755, ctx: rig.root) }
        // The reply is lost after the master executed: the retry (same req_id) is answered
        // from the retry cache, not with EEXIST.
        m.setFaultHook(hook(.dropAfterExecute, times: 1) { $0.code == create })
        let d = patternBytes(100_000, seed: 21)
        let ino = try within(Timeouts.callBound + 5, "create, reply lost") { try rig.writeFile("f", d) }
        m.setFaultHook(hook(.dropAfterExecute, times: 1) { $0.code == mk })
        _ = try within(Timeouts.callBound, "mkdir, reply lost") { try rig.core.mkdir(parent: 1, name: "b", mode: 0o755, ctx: rig.root) }
        m.setFaultHook(nil)
        m.dropConnections()
        XCTAssertTrue(try within(10, "read after master reset") { try rig.readAll(ino) } == d)
        XCTAssertEqual(Set(try rig.list()), ["a", "b", "f"])
        faultLog.note("master connection dropped before executing (x2), reply lost after executing (create, mkdir), all connections reset: every call succeeded once")
    }

    func testHalfOpenMasterConnection() throws {
        let dir = tempDir("half")
        defer { removeTree(dir) }
        let cluster = try EmbeddedCluster.start(dataDir: dir, syncWrites: false)
        defer { cluster.stop() }
        let proxy = try FaultProxy(upstream: cluster.masterAddress)
        defer { proxy.stop() }
        let client = try makeClient(clientToml([proxy.address]))
        defer { client.close() }
        var cfg = CoreConfig()
        cfg.ioThreads = 2
        cfg.blockSize = 1 << 20
        let core = try FileSystemCore(client: client, config: cfg)
        defer { core.shutdown() }
        _ = try core.mkdir(parent: 1, name: "a", mode: 0o755, ctx: .root)
        proxy.mode = .blackhole
        let took = expectFailure([ETIMEDOUT, EIO], within: Timeouts.callBound, "lookup over a half-open connection") {
            _ = try core.lookup(parent: 1, name: "nope", ctx: .root)
        }
        faultLog.note("half-open master connection: ETIMEDOUT after \(String(format: "%.3f", took)) s")
        proxy.mode = .pass
        _ = try within(Timeouts.callBound, "mkdir after the path heals") { try core.mkdir(parent: 1, name: "b", mode: 0o755, ctx: .root) }
        proxy.resetAll()
        _ = try within(Timeouts.callBound, "mkdir after RST") { try core.mkdir(parent: 1, name: "c", mode: 0o755, ctx: .root) }
        faultLog.note("master connections reset (RST): next call retried and succeeded")

        // A master address that accepts and never answers, listed first: calls move on
        // after one rpc timeout, and the live master is remembered.
        let hole = try FaultProxy(upstream: nil)
        defer { hole.stop() }
        let c2 = try makeClient(clientToml([hole.address, cluster.masterAddress]))
        defer { c2.close() }
        var start = monotonicNs()
        XCTAssertTrue(try within(Timeouts.callBound, "first call past a blackhole master") { try c2.exists("/a") })
        let first = seconds(since: start)
        XCTAssertLessThanOrEqual(first, Double(Timeouts.rpcMs) / 1000 + Timeouts.slack)
        start = monotonicNs()
        for _ in 0..<20 { _ = try c2.exists("/a") }
        let next20 = seconds(since: start)
        XCTAssertLessThan(next20, 1.0, "the live master was not remembered")
        faultLog.note("blackhole master listed first: first call \(String(format: "%.3f", first)) s, next 20 calls \(String(format: "%.3f", next20)) s")
    }

    func testWrongLengthRepliesFromTheMaster() throws {
        let rig = try CoreRig(tag: "mlen")
        defer { rig.stop() }
        let m = rig.cluster.masters[0]
        let mk = RpcCode.mkdir.rawValue
        for (i, delta) in [Int32(64), -3, -100_000, Int32.max / 2].enumerated() {
            m.setFaultHook(hook(.corruptLength(delta: delta), times: 1) { $0.code == mk })
            let start = monotonicNs()
            _ = try within(Timeouts.callBound, "mkdir, reply length off by \(delta)") {
                try rig.core.mkdir(parent: 1, name: "d\(i)", mode: 0o755, ctx: rig.root)
            }
            faultLog.note("master reply with length off by \(delta): mkdir succeeded after \(String(format: "%.3f", seconds(since: start))) s (retried on a new connection)")
        }
        m.setFaultHook(hook(.corruptLength(delta: 64)))
        let took = expectFailure([ETIMEDOUT, EIO], within: Timeouts.callBound, "lookup, every reply malformed") {
            _ = try rig.lookup("nope")
        }
        faultLog.note("master always sends a wrong length: clear errno after \(String(format: "%.3f", took)) s")
        m.setFaultHook(nil)
        _ = try within(Timeouts.callBound, "mkdir after recovery") { try rig.core.mkdir(parent: 1, name: "e", mode: 0o755, ctx: rig.root) }
        XCTAssertEqual(Set(try rig.list()), ["d0", "d1", "d2", "d3", "e"])
    }
}
