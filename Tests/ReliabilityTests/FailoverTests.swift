// Master failover during a workload: two masters; the active one starts answering
// NotLeaderMaster (failover), dies, hangs, or the whole master restarts from its journal.
// Calls move to the other master within a measured time (printed), and every file whose
// write + close returned success is there afterwards, byte for byte.
import Foundation
import XCTest
import CurvineTestHarness
#if canImport(Glibc)
import Glibc
#endif
import CurvineClient
import CurvineFSCore
import CurvineServer

/// Writers creating small files in a loop; records what was acknowledged and when.
final class Workload: @unchecked Sendable {
    struct Ack { var name: String; var seed: UInt64; var size: Int; var startNs: UInt64; var atNs: UInt64 }
    private let lock = Lock()
    private(set) var acks: [Ack] = []
    private(set) var failures: [(String, String, UInt64)] = []
    private(set) var maxLatency: Double = 0
    private var running = true
    private let done = DispatchGroup()

    init(rig: CoreRig, threads: Int, tag: String) {
        for t in 0..<threads {
            done.enter()
            let th = Thread { [self] in
                var i = 0
                while lock.withLock({ running }) {
                    let name = "\(tag)-\(t)-\(i)"
                    let seed = UInt64(t * 1_000_000 + i)
                    let size = 1_000 + (i * 7919) % 300_000
                    let start = monotonicNs()
                    do {
                        try rig.writeFile(name, patternBytes(size, seed: seed), chunk: 64 << 10)
                        let now = monotonicNs()
                        lock.withLock {
                            acks.append(Ack(name: name, seed: seed, size: size, startNs: start, atNs: now))
                            maxLatency = max(maxLatency, Double(now - start) / 1e9)
                        }
                    } catch {
                        lock.withLock { failures.append((name, "\(error)", monotonicNs())) }
                    }
                    // Reads and listings against the master too.
                    _ = try? rig.core.getattr(ino: 1, fh: nil)
                    i += 1
                }
                done.leave()
            }
            th.start()
        }
    }

    /// Time from `eventNs` to the first acknowledged write that started after it (all
    /// its master calls happened after the event).
    func firstAck(after eventNs: UInt64) -> Double? {
        lock.withLock { acks.first { $0.startNs > eventNs }.map { Double($0.atNs - eventNs) / 1e9 } }
    }

    func waitForAck(after eventNs: UInt64, limit: Double) -> Double? {
        let end = monotonicNs() + UInt64(limit * 1e9)
        while monotonicNs() < end {
            if let t = firstAck(after: eventNs) { return t }
            usleep(5_000)
        }
        return nil
    }

    func stop() -> Bool {
        lock.withLock { running = false }
        return done.wait(timeout: .now() + 30) == .success
    }

    var snapshot: ([Ack], [(String, String, UInt64)]) { lock.withLock { (acks, failures) } }
}

/// Checks every acknowledged file through a fresh client and core.
func verifyAcknowledged(_ rig: CoreRig, _ acks: [Workload.Ack], file: StaticString = #filePath, line: UInt = #line) throws {
    let client = try makeClient(clientToml(rig.cluster.masterAddresses))
    defer { client.close() }
    var cfg = CoreConfig()
    cfg.blockSize = 1 << 20
    let core = try FileSystemCore(client: client, config: cfg)
    defer { core.shutdown() }
    var bad = 0
    for a in acks {
        do {
            let e = try core.lookup(parent: 1, name: a.name, ctx: .root)
            let o = try core.open(ino: e.ino, flags: O_RDONLY, ctx: .root)
            let r = ByteReplier()
            try core.read(ino: e.ino, fh: o.fh, offset: 0, size: a.size + 10, replier: r)
            try core.release(ino: e.ino, fh: o.fh)
            if r.data != patternBytes(a.size, seed: a.seed) { bad += 1; XCTFail("\(a.name): content differs", file: file, line: line) }
        } catch {
            bad += 1
            XCTFail("acknowledged file \(a.name) lost: \(error)", file: file, line: line)
        }
        if bad > 5 { break }
    }
}

final class FailoverTests: XCTestCase {
    func testFailoverDeathHangAndRestartDuringAWorkload() throws {
        let rig = try CoreRig(tag: "ha", workers: 1, standbyMasters: 1, syncWrites: true)
        defer { rig.stop() }
        let load = Workload(rig: rig, threads: 2, tag: "w")
        var figures: [String] = []
        func settle() { usleep(400_000) }
        settle()

        // 1. Leadership moves: the old leader answers NotLeaderMaster.
        var t = monotonicNs()
        rig.cluster.failover(to: 1)
        let notLeader = load.waitForAck(after: t, limit: Timeouts.callBound + 5)
        XCTAssertNotNil(notLeader, "no write succeeded after failover to master 1")
        figures.append("NotLeaderMaster failover: first acknowledged write \(ms(notLeader)) after the switch")
        settle()

        // 2. The active master dies; a new leader is elected 300 ms later.
        t = monotonicNs()
        rig.cluster.masters[1].stop()
        usleep(300_000)
        rig.cluster.failover(to: 0)
        let death = load.waitForAck(after: t, limit: Timeouts.callBound + 5)
        XCTAssertNotNil(death)
        figures.append("active master killed, election after 300 ms: first acknowledged write \(ms(death)) after the kill")
        settle()

        // 3. The whole master restarts from its journal (both ports come back).
        t = monotonicNs()
        try rig.cluster.restartMaster()
        let restart = load.waitForAck(after: t, limit: Timeouts.callBound + 5)
        XCTAssertNotNil(restart)
        figures.append("master restart (journal replay): first acknowledged write \(ms(restart)) after the restart")
        settle()

        // 4. The active master hangs (accepts, never answers) and leadership moves away.
        t = monotonicNs()
        rig.cluster.masters[0].setFaultHook(hook(.swallowReply))
        rig.cluster.failover(to: 1)
        let hang = load.waitForAck(after: t, limit: Timeouts.callBound + 5)
        XCTAssertNotNil(hang)
        figures.append("active master hung + failover: first acknowledged write \(ms(hang)) after the hang (bound: one rpc_timeout_ms = \(Timeouts.rpcMs) ms)")
        settle()

        XCTAssertTrue(load.stop(), "workload threads did not stop")
        rig.cluster.masters[0].setFaultHook(nil)
        let (acks, failures) = load.snapshot
        for f in failures.prefix(5) { print("failover: failed op \(f.0): \(f.1)") }
        XCTAssertTrue(failures.isEmpty, "\(failures.count) writes failed across failovers (budget \(Timeouts.budgetMs) ms should cover them)")
        XCTAssertGreaterThan(acks.count, 20)
        try verifyAcknowledged(rig, acks)
        for f in figures { print("failover: \(f)") }
        print("failover: \(acks.count) acknowledged writes verified after 4 master events, \(failures.count) failed, slowest write \(String(format: "%.3f", load.maxLatency)) s")
        faultLog.note("master failover x4 (NotLeader, death, restart, hang): \(acks.count) acknowledged writes, none lost")
    }

    func testRestartMasterRepeatedlyLosesNoAcknowledgedWrite() throws {
        let rig = try CoreRig(tag: "rst", workers: 1, syncWrites: true)
        defer { rig.stop() }
        let load = Workload(rig: rig, threads: 3, tag: "r")
        let rounds = RelEnv.long ? 20 : 4
        var gaps: [Double] = []
        for _ in 0..<rounds {
            usleep(250_000)
            let t = monotonicNs()
            try rig.cluster.restartMaster()
            if let g = load.waitForAck(after: t, limit: Timeouts.callBound + 5) { gaps.append(g) } else { XCTFail("no write after restart") }
        }
        usleep(200_000)
        XCTAssertTrue(load.stop())
        let (acks, failures) = load.snapshot
        for f in failures.prefix(5) { print("restart: failed op \(f.0): \(f.1)") }
        XCTAssertTrue(failures.isEmpty, "\(failures.count) writes failed across master restarts")
        try verifyAcknowledged(rig, acks)
        print("failover: \(rounds) master restarts, \(acks.count) acknowledged writes all present; first write after a restart: max \(String(format: "%.0f", (gaps.max() ?? 0) * 1000)) ms, mean \(String(format: "%.0f", gaps.reduce(0, +) / Double(max(1, gaps.count)) * 1000)) ms")
    }
}

final class LostReplyTests: XCTestCase {
    /// Replies lost after the master executed (1 in 12 requests of every kind), and
    /// connections dropped before executing (1 in 25), while writers create files: every
    /// call is retried with its req_id, and no acknowledged write is lost or corrupted.
    func testLostRepliesOnEveryRpcKindDuringAWorkload() throws {
        let seed = RelEnv.seed()
        print("lost replies: seed \(seed)")
        fflush(stdout)
        let rig = try CoreRig(tag: "lost", workers: 1)
        defer { rig.stop() }
        final class State: @unchecked Sendable {
            let lock = Lock()
            var rng: SeededRNG
            var byCode: [Int8: Int] = [:]
            init(_ seed: UInt64) { rng = SeededRNG(seed: seed) }
        }
        let st = State(seed)
        let dropped = Counter(), lost = Counter()
        rig.cluster.masters[0].setFaultHook { f in
            st.lock.withLock {
                let r = Int.random(in: 0..<300, using: &st.rng)
                if r < 25 { lost.add(); st.byCode[f.code, default: 0] += 1; return .dropAfterExecute }
                if r < 37 { dropped.add(); return .dropBeforeExecute }
                return .proceed
            }
        }
        let load = Workload(rig: rig, threads: 2, tag: "l")
        // Namespace mutations of every other kind, each checked: mkdir, rename, chmod,
        // symlink, link, unlink, rmdir.
        let nsErrors = ResultBox<[String]>()
        nsErrors.r = .success([])
        let nsDone = DispatchSemaphore(value: 0)
        let running = Counter()
        running.add()
        let nsOps = Counter()
        Thread {
            var i = 0
            let root = RequestContext.root
            while running.value > 0 {
                do {
                    let d = try rig.core.mkdir(parent: 1, name: "nd\(i)", mode: 0o755, ctx: root)
                    let f = try rig.writeFile("nf\(i)", patternBytes(100, seed: UInt64(i)), parent: d.ino)
                    try rig.core.rename(parent: d.ino, name: "nf\(i)", newParent: d.ino, newName: "mv\(i)", flags: 0, ctx: root)
                    _ = try rig.core.setattr(ino: f, changes: SetAttrChanges(mode: 0o600), ctx: root)
                    _ = try rig.core.symlink(target: "mv\(i)", parent: d.ino, name: "sl\(i)", ctx: root)
                    _ = try rig.core.link(ino: f, newParent: d.ino, newName: "hl\(i)", ctx: root)
                    try rig.core.unlink(parent: d.ino, name: "hl\(i)", ctx: root)
                    try rig.core.unlink(parent: d.ino, name: "sl\(i)", ctx: root)
                    try rig.core.unlink(parent: d.ino, name: "mv\(i)", ctx: root)
                    try rig.core.rmdir(parent: 1, name: "nd\(i)", ctx: root)
                    nsOps.add(10)
                } catch {
                    if case .success(var l)? = nsErrors.r { l.append("round \(i): \(error)"); nsErrors.r = .success(l) }
                }
                i += 1
            }
            nsDone.signal()
        }.start()
        usleep(RelEnv.long ? 20_000_000 : 2_500_000)
        running.add(-1)
        XCTAssertEqual(nsDone.wait(timeout: .now() + 30), .success)
        XCTAssertTrue(load.stop())
        let nsErr = (try? nsErrors.r?.get()) ?? []
        for e in nsErr.prefix(5) { print("lost replies: namespace op failed: \(e)") }
        XCTAssertTrue(nsErr.isEmpty, "\(nsErr.count) namespace rounds failed with lost replies (seed \(seed))")
        XCTAssertTrue(try rig.list().allSatisfy { !$0.hasPrefix("nd") }, "a directory of a completed round is left")
        rig.cluster.masters[0].setFaultHook(nil)
        let (acks, failures) = load.snapshot
        for f in failures.prefix(8) { print("lost replies: failed op \(f.0): \(f.1)") }
        XCTAssertTrue(failures.isEmpty, "\(failures.count) of \(acks.count + failures.count) writes failed with lost replies (seed \(seed))")
        XCTAssertGreaterThan(acks.count, 10)
        try verifyAcknowledged(rig, acks)
        let kinds = st.lock.withLock { st.byCode.keys.compactMap { RpcCode(rawValue: $0).map { "\($0)" } }.sorted() }
        print("lost replies: \(lost.value) replies lost after executing (\(kinds.joined(separator: ","))) and \(dropped.value) connections dropped before executing; \(acks.count) acknowledged writes verified, \(failures.count) failed; \(nsOps.value) namespace ops, \(nsErr.count) failed rounds")
        faultLog.note("lost replies / dropped connections on every master RPC kind: \(lost.value + dropped.value) faults, \(acks.count) writes intact")
    }
}

func ms(_ s: Double?) -> String { s.map { String(format: "%.0f ms", $0 * 1000) } ?? "never" }

/// A namespace change whose reply is lost and whose re-send reaches a new leader (its
/// retry cache never saw the request, PROTOCOL.md §3.1): the re-send runs again against
/// the changed namespace and fails, but the core reports what happened, not that failure.
final class LostReplyOnANewLeaderCoreTests: XCTestCase {
    var rig: CoreRig!

    override func setUpWithError() throws { rig = try CoreRig(tag: "lrnl", standbyMasters: 1) }
    override func tearDown() { rig?.stop() }

    func testRenameUnlinkMkdirAndCreateAcrossALeaderChange() throws {
        let core = rig.core, root = rig.root, cluster = rig.cluster
        let data = patternBytes(1000, seed: 3)
        // rename: ENOENT from the re-send; the source's id under the destination says done.
        let f = try rig.writeFile("r1", data)
        cluster.loseNextReplyThenFailover(.rename)
        XCTAssertNoThrow(try core.rename(parent: 1, name: "r1", newParent: 1, newName: "r2", flags: 0, ctx: root))
        XCTAssertEqual(try rig.lookup("r2"), f)
        XCTAssertEqual(try rig.client.fileStatus("/r2").length, 1000)
        XCTAssertFalse(try rig.client.exists("/r1"))
        // RENAME_NOREPLACE: the re-send finds the destination.
        cluster.loseNextReplyThenFailover(.rename)
        XCTAssertNoThrow(try core.rename(parent: 1, name: "r2", newParent: 1, newName: "r3", flags: 1, ctx: root))
        XCTAssertEqual(try rig.lookup("r3"), f)
        // A rename that really fails still fails, with its own errno.
        _ = try rig.writeFile("other", data)
        cluster.loseNextReplyThenFailover(.rename)
        XCTAssertThrowsError(try core.rename(parent: 1, name: "r3", newParent: 1, newName: "other", flags: 1, ctx: root)) {
            XCTAssertEqual(($0 as? FSError)?.errno, EEXIST)
        }
        XCTAssertTrue(try rig.client.exists("/r3"))
        // unlink: the re-send finds nothing; the name is gone, as asked.
        cluster.loseNextReplyThenFailover(.delete)
        XCTAssertNoThrow(try core.unlink(parent: 1, name: "r3", ctx: root))
        XCTAssertFalse(try rig.client.exists("/r3"))
        // unlink of an open file: its rename to a hidden name crosses the leader change.
        let (e, o) = try core.create(parent: 1, name: "open", mode: 0o644, flags: O_RDWR | O_CREAT, ctx: root)
        _ = try data.withUnsafeBytes { try core.write(ino: e.ino, fh: o.fh, offset: 0, data: $0, ctx: root) }
        try core.flush(ino: e.ino, fh: o.fh)
        cluster.loseNextReplyThenFailover(.rename)
        XCTAssertNoThrow(try core.unlink(parent: 1, name: "open", ctx: root))
        XCTAssertFalse(try rig.client.exists("/open"))
        try core.release(ino: e.ino, fh: o.fh)
        let names = try rig.client.listStatus("/").map(\.name)
        XCTAssertFalse(names.contains { $0.hasPrefix(".curvine") || $0.contains("open") },
                       "the hidden name is deleted at the last release: \(names)")
        // mkdir: the re-send finds the directory it made.
        cluster.loseNextReplyThenFailover(.mkdir)
        XCTAssertNoThrow(try core.mkdir(parent: 1, name: "d", mode: 0o755, ctx: root))
        // create without O_EXCL: the re-send's EEXIST opens the file the first attempt made.
        cluster.loseNextReplyThenFailover(.createFile)
        let (c1, h1) = try core.create(parent: 1, name: "c1", mode: 0o644, flags: O_WRONLY | O_CREAT, ctx: root)
        try core.release(ino: c1.ino, fh: h1.fh)
        XCTAssertTrue(try rig.client.exists("/c1"))
        // O_EXCL keeps its exclusivity: EEXIST, and the file is there (SEMANTICS.md).
        cluster.loseNextReplyThenFailover(.createFile)
        XCTAssertThrowsError(try core.create(parent: 1, name: "c2", mode: 0o644, flags: O_WRONLY | O_CREAT | O_EXCL, ctx: root)) {
            XCTAssertEqual(($0 as? FSError)?.errno, EEXIST)
        }
        XCTAssertTrue(try rig.client.exists("/c2"))
        faultLog.note("lost reply + leader change on rename, rename NOREPLACE, unlink, unlink of an open file, mkdir, create: each reported what happened")
    }
}
