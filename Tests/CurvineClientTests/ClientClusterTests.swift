// The client against the embedded cluster over real TCP: every RPC of the subset,
// short-circuit on and off, failover across master addresses.
import CurvineClient
import CurvineServer
import XCTest
#if canImport(Glibc)
import Glibc
#endif

func tempDir(_ tag: String) -> String {
    let p = NSTemporaryDirectory() + "cv-\(tag)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try? FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
    return p
}

/// A loopback port with nothing listening (bound, then closed).
func deadPort() -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var a = sockaddr_in()
    a.sin_family = sa_family_t(AF_INET)
    a.sin_addr.s_addr = inet_addr("127.0.0.1")
    a.sin_port = 0
    _ = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    close(fd)
    return UInt16(bigEndian: a.sin_port)
}

/// Fast-failing options so that failure tests take seconds, not the 20 s default budget.
func quickOptions(_ masters: [HostPort], shortCircuit: Bool = true, budgetMs: Int = 5_000) -> ClientOptions {
    ClientOptions(masters: masters,
                  master: MasterClientOptions(connectTimeoutMs: 1_000, rpcTimeoutMs: 3_000, retryBudgetMs: budgetMs,
                                              retryMinSleepMs: 50, retryMaxSleepMs: 200),
                  shortCircuit: shortCircuit, dataTimeoutMs: 5_000)
}

final class ClientClusterTests: XCTestCase {
    var dir = ""
    var cluster: EmbeddedCluster?

    override func setUpWithError() throws {
        dir = tempDir("cc")
        cluster = try EmbeddedCluster.start(dataDir: dir, syncWrites: false)
    }

    override func tearDown() {
        cluster?.stop()
        try? FileManager.default.removeItem(atPath: dir)
    }

    func testEveryRpcRoundTripsShortCircuit() throws {
        let c = try CurvineClient(options: quickOptions([cluster!.masterAddress], shortCircuit: true))
        defer { c.close() }
        try runRoundTrips(c, root: "/rt", blockSize: 1 << 20)
    }

    func testEveryRpcRoundTripsOverWorkerTCP() throws {
        let c = try CurvineClient(options: quickOptions([cluster!.masterAddress], shortCircuit: false))
        defer { c.close() }
        try runRoundTrips(c, root: "/rt", blockSize: 1 << 20)
    }

    func testShortCircuitGivesALocalFile() throws {
        let c = try CurvineClient(options: quickOptions([cluster!.masterAddress], shortCircuit: true))
        defer { c.close() }
        try c.writeWholeFile("/sc", bytes: pattern(100_000))
        let b = try c.blockLocations("/sc").blocks[0]
        let r = try c.openBlockReader(b, offset: 0)
        defer { r.close() }
        XCTAssertNotNil(r.localFileDescriptor)
        XCTAssertNotNil(r.localPath)
    }

    func testWorkerRestartDoesNotBreakPooledConnections() throws {
        let c = try CurvineClient(options: quickOptions([cluster!.masterAddress], shortCircuit: false))
        defer { c.close() }
        let data = pattern(300_000)
        try c.writeWholeFile("/wr", bytes: data)
        XCTAssertEqual(try c.readWholeFile("/wr"), data)  // leaves an idle pooled connection
        cluster!.stopWorker(0)
        try cluster!.startWorker(0)
        XCTAssertEqual(try c.readWholeFile("/wr"), data)
        try c.writeWholeFile("/wr2", bytes: data)
        XCTAssertEqual(try c.readWholeFile("/wr2"), data)
    }

    func testFirstMasterDeadSecondAlive() throws {
        let dead = HostPort(host: "127.0.0.1", port: deadPort())
        let c = try CurvineClient(options: quickOptions([dead, cluster!.masterAddress]))
        defer { c.close() }
        _ = try c.mkdir("/fo", mode: 0o755, owner: "", group: "", createParent: false)
        XCTAssertTrue(try c.exists("/fo"))
        XCTAssertEqual(c.master.currentLeader, cluster!.masterAddress)
    }

    func testAllMastersDeadFailsWithinBudget() throws {
        let c = try CurvineClient(options: quickOptions([HostPort(host: "127.0.0.1", port: deadPort())], budgetMs: 1_000))
        defer { c.close() }
        let start = monotonicNs()
        expectErrno(EIO) { _ = try c.fileStatus("/") }
        XCTAssertLessThan(Double(monotonicNs() - start) / 1e9, 5.0)
    }

    func testUnknownCodeGetsCommonError() throws {
        let m = try MasterClient(addresses: [cluster!.masterAddress], options: MasterClientOptions(retryBudgetMs: 1000))
        defer { m.close() }
        // AppendFile (6) is defined but not dispatched by a master (§5).
        do {
            _ = try m.call(.appendFile, header: [])
            XCTFail("expected an error")
        } catch let e as CurvineError {
            XCTAssertEqual(e.kind, .common, "\(e)")
        }
    }
}

final class FailoverTests: XCTestCase {
    func testStandbyAnswersNotLeaderAndClientMovesOn() throws {
        let dir = tempDir("ha")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cluster = try EmbeddedCluster.start(dataDir: dir, standbyMasters: 1, syncWrites: false)
        defer { cluster.stop() }
        let addrs = cluster.masterAddresses
        XCTAssertEqual(addrs.count, 2)
        // The standby first in the list: its NotLeaderMaster answer must send us on.
        let ordered = [addrs[1], addrs[0]]
        let c = try CurvineClient(options: quickOptions(ordered))
        defer { c.close() }
        _ = try c.mkdir("/ha", mode: 0o755, owner: "", group: "", createParent: false)
        XCTAssertEqual(c.master.currentLeader, addrs[0])
        // Leadership moves: the client follows within the retry budget.
        cluster.failover(to: 1)
        let start = monotonicNs()
        XCTAssertTrue(try c.exists("/ha"))
        XCTAssertEqual(c.master.currentLeader, addrs[1])
        print("failover: next call answered after \(Double(monotonicNs() - start) / 1e6) ms")
    }
}

/// A mutation whose reply is lost, re-sent to a master whose retry cache never saw it:
/// a new leader, or the same master restarted (the cache is per master and in memory,
/// PROTOCOL.md §3.1). The re-send runs the mutation again against the changed namespace.
final class LostReplyOnANewLeaderTests: XCTestCase {
    var dir = ""
    var cluster: EmbeddedCluster!
    var c: CurvineClient!

    override func setUpWithError() throws {
        dir = tempDir("xm")
        cluster = try EmbeddedCluster.start(dataDir: dir, standbyMasters: 1, syncWrites: false)
        c = try CurvineClient(options: quickOptions(cluster.masterAddresses))
    }

    override func tearDown() {
        c?.close()
        cluster?.stop()
        try? FileManager.default.removeItem(atPath: dir)
    }

    func file(_ path: String) throws {
        let s = try c.createFile(path, options: CreateOptions(blockSize: 1 << 20, replicas: 1))
        try c.completeFile(path, length: 0, commit: [], onlyFlush: false, inodeId: s.id)
    }

    func testDeleteIsDoneNotENOENT() throws {
        try file("/a")
        cluster.loseNextReplyThenFailover(.delete)
        XCTAssertNoThrow(try c.delete("/a", recursive: false))
        XCTAssertFalse(try c.exists("/a"))
        // Without a lost reply a missing name is still ENOENT.
        XCTAssertThrowsError(try c.delete("/a", recursive: false)) {
            XCTAssertEqual(($0 as? CurvineError)?.errno, ENOENT)
        }
    }

    func testMkdirIsTheDirectory() throws {
        cluster.loseNextReplyThenFailover(.mkdir)
        let s = try c.mkdir("/m", mode: 0o755, owner: "", group: "", createParent: false)
        XCTAssertEqual(s.kind, .directory)
    }

    /// O_EXCL create keeps its exclusivity: the re-send's FileAlreadyExists cannot be told
    /// from another client's create, so it is reported (SEMANTICS.md); the file exists.
    func testExclusiveCreateReportsEEXISTAndTheFileExists() throws {
        cluster.loseNextReplyThenFailover(.createFile)
        XCTAssertThrowsError(try c.createFile("/x", options: CreateOptions(blockSize: 1 << 20, replicas: 1))) {
            XCTAssertEqual(($0 as? CurvineError)?.errno, EEXIST)
        }
        XCTAssertEqual(try c.fileStatus("/x").length, 0)
    }
}
