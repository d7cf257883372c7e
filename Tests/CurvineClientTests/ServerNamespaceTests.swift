// Namespace behaviour that a client cannot observe directly: journal replay after a
// restart, snapshot compaction, torn journal tails, lock splitting and expiry, block
// release events. Round trips through the wire are tested elsewhere.
import CurvineClient
@testable import CurvineServer
import Foundation
import XCTest

final class ServerNamespaceTests: XCTestCase {
    private var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "server-ns-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    private func open(compactAt: Int = 64 << 20, sync: Bool = false, clock: (@Sendable () -> Int64)? = nil) throws -> Namespace {
        var o = Namespace.Options(journalDirectory: dir + "/master", syncJournal: sync)
        o.compactionThresholdBytes = compactAt
        if let c = clock { o.clock = c }
        let ns = try Namespace(options: o)
        ns.registerWorker(WorkerAddress(workerId: 7, hostname: "h", ipAddr: "127.0.0.1", rpcPort: 1),
                          stats: { WorkerStats(capacity: 1 << 30, available: 1 << 29, used: 0, blockCount: 0) })
        return ns
    }

    private func kind(_ body: () throws -> Void) -> ErrorKind? {
        do { try body(); return nil } catch let e as CurvineError { return e.kind } catch { return nil }
    }

    /// A workload touching every journaled record type.
    private func populate(_ ns: Namespace) throws {
        _ = try ns.mkdir("/a/b", mode: 0o750, owner: "u", group: "g", createParent: true)
        let f = try ns.createFile("/a/b/f", options: CreateOptions(mode: 0o640, blockSize: 4), flags: 0x41, clientName: "c1")
        let b1 = try ns.addBlock("/a/b/f", inodeId: f.id, commit: [], fileLength: 0)
        let b2 = try ns.addBlock("/a/b/f", inodeId: f.id, commit: [CommitBlock(blockId: b1.id, length: 4, workerIds: [7])],
                                 fileLength: 4)
        try ns.completeFile("/a/b/f", inodeId: f.id, length: 6, commit: [CommitBlock(blockId: b2.id, length: 2, workerIds: [7])],
                            clientName: "c1")
        try ns.symlink(target: "../x", link: "/a/s", mode: 0o777)
        try ns.link("/a/b/f", "/a/hard")
        _ = try ns.setAttr("/a/b/f", SetAttrOptions(mode: 0o600, mtimeMs: 1234, addXattrs: ["user.k": [1, 2, 3]]))
        _ = try ns.createFile("/a/gone", options: CreateOptions(), flags: 0x41, clientName: "c1")
        try ns.delete("/a/gone", recursive: false)
        _ = try ns.mkdir("/d", mode: 0o755)
        XCTAssertTrue(try ns.rename("/d", "/a/d2"))
        XCTAssertNil(try ns.setLock("/a/b/f", FileLock(clientId: "c1", ownerId: 9, pid: 1, type: .write, flavor: .posix,
                                                       start: 0, end: 99)))
    }

    private func snapshotOf(_ ns: Namespace) throws -> [String] {
        var out: [String] = []
        var stack = ["/"]
        while let p = stack.popLast() {
            let st = try ns.fileStatus(p)
            var line = "\(p) id=\(st.id) kind=\(st.kind) mode=\(String(st.mode, radix: 8)) len=\(st.length) nlink=\(st.nlink) "
                + "owner=\(st.owner):\(st.group) mtime=\(st.isDirectory ? 0 : st.mtimeMs) complete=\(st.isComplete) "
                + "target=\(st.target ?? "-") x=\(st.xattrs.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" })"
            if st.kind == .file {
                let fb = try ns.blockLocations(p)
                line += " blocks=\(fb.blocks.map { "\($0.id):\($0.length):\($0.locations.map(\.workerId))" })"
                line += " locks=\(try ns.locks(p).map { "\($0.clientId)/\($0.ownerId)/\($0.start)-\($0.end)/\($0.type)" })"
            }
            out.append(line)
            if st.isDirectory { stack += try ns.listStatus(p).map(\.path).reversed() }
        }
        return out
    }

    func testJournalReplayRestoresEverything() throws {
        let ns = try open()
        try populate(ns)
        let before = try snapshotOf(ns)
        ns.close()

        let again = try open()
        XCTAssertEqual(try snapshotOf(again), before)
        // Inode ids are never reused after a restart.
        let maxId = before.compactMap { $0.split(separator: " ").first { $0.hasPrefix("id=") } }
            .compactMap { Int64($0.dropFirst(3)) }.max()!
        XCTAssertGreaterThan(try again.mkdir("/new", mode: 0o755).id, maxId)
        // And the restored state keeps journaling.
        again.close()
        let third = try open()
        XCTAssertTrue(try third.exists("/new"))
    }

    func testGroupCommitMakesEveryAcknowledgedMutationDurable() throws {
        let ns = try open(sync: true)
        let threads = 8, perThread = 40
        let failures = ManagedAtomicCounter()
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            for i in 0..<perThread {
                do { _ = try ns.mkdir("/t\(t)-\(i)", mode: 0o755) } catch { failures.add() }
            }
        }
        XCTAssertEqual(failures.value, 0)
        let syncs = ns.journal!.syncs
        print("group commit: \(threads * perThread) mutations from \(threads) threads, \(syncs) fdatasyncs")
        XCTAssertGreaterThan(syncs, 0)
        XCTAssertLessThanOrEqual(syncs, UInt64(threads * perThread), "one sync per mutation at most")
        // Compaction in the middle of waiters and a close with frames pending both keep them.
        _ = try ns.mkdir("/last", mode: 0o755)
        try ns.compact()
        _ = try ns.mkdir("/after-compact", mode: 0o755)
        ns.close()
        let again = try open(sync: true)
        for t in 0..<threads { for i in 0..<perThread { XCTAssertTrue(try again.exists("/t\(t)-\(i)")) } }
        XCTAssertTrue(try again.exists("/last"))
        XCTAssertTrue(try again.exists("/after-compact"))
    }

    func testJournalTicketsAfterCloseAndCompaction() throws {
        let j = Journal(directory: dir + "/j", sync: true)
        _ = try j.open()
        let t1 = try j.append([1])
        let t2 = try j.append([2])
        XCTAssertEqual(t2, t1 + 1)
        try j.waitDurable(t2)
        XCTAssertEqual(j.syncs, 1, "one sync covers both frames")
        try j.waitDurable(t1)
        XCTAssertEqual(j.syncs, 1, "an earlier ticket is already durable")
        let t3 = try j.append([3])
        try j.compact(snapshot: [9])
        try j.waitDurable(t3)  // the snapshot holds it
        XCTAssertEqual(j.syncs, 1)
        let t4 = try j.append([4])
        j.close()
        try j.waitDurable(t4)  // close synced it
        XCTAssertThrowsError(try j.append([5]))
    }

    func testSnapshotCompactionThenReplay() throws {
        let ns = try open(compactAt: 1)  // every transaction triggers a snapshot
        try populate(ns)
        let before = try snapshotOf(ns)
        ns.close()
        XCTAssertEqual(FileManager.default.contents(atPath: dir + "/master/journal")?.count, 0)
        let again = try open()
        XCTAssertEqual(try snapshotOf(again), before)
    }

    func testJournalReplayedOverNewerSnapshotIsHarmless() throws {
        // A crash after the snapshot rename but before the journal truncation leaves a
        // journal whose transactions the snapshot already holds.
        let ns = try open()
        try populate(ns)
        let journal = FileManager.default.contents(atPath: dir + "/master/journal")!
        try ns.compact()
        let before = try snapshotOf(ns)
        ns.close()
        try journal.write(to: URL(fileURLWithPath: dir + "/master/journal"))
        XCTAssertEqual(try snapshotOf(try open()), before)
    }

    func testTornJournalTailIsDropped() throws {
        let ns = try open()
        try populate(ns)
        let before = try snapshotOf(ns)
        ns.close()
        let h = FileHandle(forWritingAtPath: dir + "/master/journal")!
        h.seekToEndOfFile()
        h.write(Data([200, 0, 0, 0, 1, 2, 3, 4, 5]))  // a frame cut short by a crash
        h.closeFile()
        let again = try open()
        XCTAssertEqual(try snapshotOf(again), before)
        _ = try again.mkdir("/after", mode: 0o755)
        again.close()
        XCTAssertTrue(try open().exists("/after"))
    }

    func testPosixLockSplittingAndConversion() throws {
        let ns = try open()
        _ = try ns.createFile("/f", options: CreateOptions(), flags: 0x41, clientName: "c")
        func lk(_ c: String, _ o: UInt64, _ t: LockType, _ s: UInt64, _ e: UInt64) -> FileLock {
            FileLock(clientId: c, ownerId: o, pid: 42, type: t, flavor: .posix, start: s, end: e)
        }
        XCTAssertNil(try ns.setLock("/f", lk("A", 1, .write, 0, 99)))
        XCTAssertNil(try ns.setLock("/f", lk("A", 1, .unlock, 40, 59)))
        XCTAssertEqual(try ns.locks("/f").map { [$0.start, $0.end] }, [[0, 39], [60, 99]])
        XCTAssertNil(try ns.getLock("/f", lk("B", 1, .write, 40, 59)))
        XCTAssertEqual(try ns.getLock("/f", lk("B", 1, .read, 30, 70))?.start, 0, "lowest start wins")
        XCTAssertEqual(try ns.setLock("/f", lk("B", 1, .write, 65, 65))?.start, 60)
        // Same client, other owner: a different owner, so it conflicts.
        XCTAssertNotNil(try ns.getLock("/f", lk("A", 2, .read, 10, 10)))
        // Owner A converts part of its write lock to read: B may now read there.
        XCTAssertNil(try ns.setLock("/f", lk("A", 1, .read, 10, 19)))
        XCTAssertEqual(try ns.locks("/f").map { [$0.start, $0.end] }, [[0, 9], [10, 19], [20, 39], [60, 99]])
        XCTAssertNil(try ns.getLock("/f", lk("B", 1, .read, 10, 19)))
        XCTAssertNotNil(try ns.getLock("/f", lk("B", 1, .write, 10, 19)))
        // UNLOCK of [0, max] drops everything of the owner; unlocking nothing is fine.
        XCTAssertNil(try ns.setLock("/f", lk("A", 1, .unlock, 0, .max)))
        XCTAssertNil(try ns.setLock("/f", lk("A", 1, .unlock, 0, .max)))
        XCTAssertEqual(try ns.locks("/f").count, 0)
        // An UNLOCK query never conflicts.
        XCTAssertNil(try ns.setLock("/f", lk("A", 1, .write, 0, .max)))
        XCTAssertNil(try ns.getLock("/f", lk("B", 1, .unlock, 0, .max)))
    }

    func testFlockReplaceAndSeparateFromPosix() throws {
        let ns = try open()
        _ = try ns.createFile("/f", options: CreateOptions(), flags: 0x41, clientName: "c")
        func fl(_ c: String, _ t: LockType) -> FileLock {
            FileLock(clientId: c, ownerId: 5, pid: 0, type: t, flavor: .flock, start: 0, end: .max)
        }
        XCTAssertNil(try ns.setLock("/f", fl("A", .read)))
        XCTAssertNil(try ns.setLock("/f", fl("B", .read)))
        XCTAssertEqual(try ns.setLock("/f", fl("B", .write))?.clientId, "A")
        XCTAssertEqual(try ns.setLock("/f", fl("A", .write))?.clientId, "B", "an upgrade waits for other readers")
        XCTAssertNil(try ns.setLock("/f", fl("B", .unlock)))
        XCTAssertNil(try ns.setLock("/f", fl("A", .write)), "alone, the owner's flock is replaced")
        XCTAssertEqual(try ns.locks("/f").map(\.type), [.write])
        // PLOCKs live in their own space.
        XCTAssertNil(try ns.setLock("/f", FileLock(clientId: "C", ownerId: 1, pid: 1, type: .write, flavor: .posix,
                                                   start: 0, end: .max)))
        XCTAssertEqual(try ns.setLock("/f", fl("B", .read))?.clientId, "A")
        XCTAssertNil(try ns.setLock("/f", fl("A", .unlock)))
        XCTAssertNil(try ns.setLock("/f", fl("B", .write)))
    }

    func testLocksExpire() throws {
        final class Clock: @unchecked Sendable { var ms: Int64 = 1_000_000 }
        let clock = Clock()
        let ns = try open(clock: { clock.ms })
        _ = try ns.createFile("/f", options: CreateOptions(), flags: 0x41, clientName: "c")
        let a = FileLock(clientId: "A", ownerId: 1, pid: 1, type: .write, flavor: .posix, start: 0, end: 10)
        let b = FileLock(clientId: "B", ownerId: 1, pid: 1, type: .write, flavor: .posix, start: 5, end: 5)
        XCTAssertNil(try ns.setLock("/f", a))
        XCTAssertEqual(try ns.locks("/f").first?.acquireTimeMs, 1_000_000, "the master stamps acquire_time")
        clock.ms += Int64(ns.options.lockExpireMs)
        XCTAssertNotNil(try ns.setLock("/f", b), "exactly at the expiry the lock still holds")
        clock.ms += 1
        XCTAssertNil(try ns.setLock("/f", b), "past the expiry it is dropped")
    }

    func testBlockEventsOnDeleteTruncateAndOverwrite() throws {
        let ns = try open()
        final class Sink: @unchecked Sendable { var events: [BlockEvents] = [] }
        let sink = Sink()
        ns.setBlockEventHandler { sink.events.append($0) }
        let f = try ns.createFile("/f", options: CreateOptions(blockSize: 10), flags: 0x41, clientName: "c")
        let b1 = try ns.addBlock("/f", commit: [], fileLength: 0)
        let b2 = try ns.addBlock("/f", commit: [CommitBlock(blockId: b1.id, length: 10, workerIds: [7])], fileLength: 10)
        try ns.completeFile("/f", inodeId: f.id, length: 15, commit: [CommitBlock(blockId: b2.id, length: 5, workerIds: [7])],
                            clientName: "c")
        XCTAssertEqual(b1.id, f.id << 24, "block ids embed the inode id")

        let shrunk = try ns.resize("/f", truncate: true, length: 4)
        XCTAssertEqual(shrunk.blocks.map(\.length), [4])
        XCTAssertEqual(sink.events.last, BlockEvents(deleted: [BlockRef(id: b2.id, length: 5, workers: [7])],
                                                     truncated: [BlockRef(id: b1.id, length: 4, workers: [7])]))
        let grown = try ns.resize("/f", truncate: true, length: 25)
        XCTAssertEqual(grown.blocks.map(\.length), [10, 10, 5])
        XCTAssertEqual(grown.blocks.map(\.isHole), [false, true, true])
        XCTAssertEqual(grown.status.length, 25)

        _ = try ns.createFile("/f", options: CreateOptions(overwrite: true, blockSize: 10), flags: 0x241, clientName: "c")
        XCTAssertEqual(sink.events.last?.deleted.map(\.id), [b1.id])
        XCTAssertEqual(try ns.fileStatus("/f").id, f.id, "O_TRUNC keeps the inode")
        XCTAssertEqual(try ns.fileStatus("/f").length, 0)
    }

    func testResolutionNeverFollowsSymlinks() throws {
        let ns = try open()
        _ = try ns.mkdir("/dir", mode: 0o755)
        _ = try ns.createFile("/dir/f", options: CreateOptions(), flags: 0x41, clientName: "c")
        try ns.symlink(target: "/dir", link: "/ln")
        XCTAssertEqual(try ns.fileStatus("/ln").kind, .symlink)
        XCTAssertEqual(try ns.fileStatus("/ln").length, 4)
        XCTAssertEqual(kind { _ = try ns.fileStatus("/ln/f") }, .fileNotFound)
        XCTAssertFalse(try ns.exists("/ln/f"))
        XCTAssertEqual(kind { _ = try ns.mkdir("/ln/x", mode: 0o755) }, .parentNotDir)
        XCTAssertEqual(kind { _ = try ns.mkdir("/dir/f/x", mode: 0o755, createParent: true) }, .parentNotDir)
        XCTAssertEqual(kind { _ = try ns.mkdir("/nope/x", mode: 0o755) }, .fileNotFound)
    }

    func testTreeErrors() throws {
        let ns = try open()
        _ = try ns.mkdir("/a/b", mode: 0o755, createParent: true)
        _ = try ns.createFile("/f", options: CreateOptions(), flags: 0x41, clientName: "c")
        XCTAssertEqual(kind { _ = try ns.mkdir("/a", mode: 0o755) }, .fileAlreadyExists)
        XCTAssertEqual(try ns.mkdir("/a", mode: 0o755, createParent: true).kind, .directory)
        XCTAssertEqual(kind { try ns.delete("/a", recursive: false) }, .dirNotEmpty)
        XCTAssertEqual(kind { _ = try ns.rename("/a", "/a/b/c") }, .invalidArgument)
        XCTAssertEqual(kind { _ = try ns.rename("/f", "/a") }, .isADirectory)
        XCTAssertEqual(kind { _ = try ns.rename("/a/b", "/f") }, .notADirectory)
        _ = try ns.mkdir("/e/x", mode: 0o755, createParent: true)
        XCTAssertEqual(kind { _ = try ns.rename("/a/b", "/e") }, .dirNotEmpty)
        XCTAssertEqual(kind { _ = try ns.rename("/f", "/a/b", flags: .noReplace) }, .fileAlreadyExists)
        XCTAssertEqual(kind { _ = try ns.rename("/nope", "/x") }, .fileNotFound)
        XCTAssertEqual(kind { _ = try ns.createFile("/a", options: CreateOptions(), flags: 0x41, clientName: "c") }, .isADirectory)
        XCTAssertEqual(kind { _ = try ns.createFile("/f", options: CreateOptions(), flags: 0xC1, clientName: "c") }, .fileAlreadyExists)
        XCTAssertEqual(kind { _ = try ns.listOptions("/a", startAfter: nil, limit: -1) }, .common)
        XCTAssertEqual(kind { _ = try ns.resize("/f", truncate: true, offset: 1, length: 0) }, .common)
        XCTAssertEqual(kind { _ = try ns.resize("/f", truncate: true, length: 1 << 51) }, .invalidFileSize)
        XCTAssertEqual(kind { _ = try ns.fileStatus("relative") }, .invalidPath)

        // Exchange swaps; rename over a file replaces it.
        _ = try ns.createFile("/g", options: CreateOptions(), flags: 0x41, clientName: "c")
        let (fid, gid) = (try ns.fileStatus("/f").id, try ns.fileStatus("/g").id)
        XCTAssertTrue(try ns.rename("/f", "/g", flags: .exchange))
        XCTAssertEqual([try ns.fileStatus("/f").id, try ns.fileStatus("/g").id], [gid, fid])
        XCTAssertTrue(try ns.rename("/f", "/g"))
        XCTAssertEqual(try ns.fileStatus("/g").id, gid)
        XCTAssertFalse(try ns.exists("/f"))
    }

    func testHardLinksAndPaging() throws {
        let ns = try open()
        _ = try ns.createFile("/f", options: CreateOptions(), flags: 0x41, clientName: "c")
        try ns.link("/f", "/sub/g")  // missing parents are created, as upstream
        XCTAssertEqual(try ns.fileStatus("/sub/g").nlink, 2)
        try ns.delete("/f", recursive: false)
        XCTAssertEqual(try ns.fileStatus("/sub/g").nlink, 1)

        for n in ["b", "a", "é", "e\u{301}", "Z", "c"] {
            _ = try ns.createFile("/sub/" + n, options: CreateOptions(), flags: 0x41, clientName: "c")
        }
        let all = try ns.listStatus("/sub").map(\.name)
        XCTAssertEqual(all.count, 7, "canonically equivalent names are distinct entries")
        XCTAssertEqual(all.map { Array($0.utf8) }, all.map { Array($0.utf8) }.sorted { $0.lexicographicallyPrecedes($1) })
        var paged: [String] = []
        var after: String?
        while true {
            let page = try ns.listOptions("/sub", startAfter: after, limit: 2).map(\.name)
            paged += page
            if page.count < 2 { break }
            after = page.last
        }
        XCTAssertEqual(paged, all)
        XCTAssertEqual(try ns.listOptions("/sub", startAfter: "b0", limit: nil).first?.name, "c")
        XCTAssertEqual(try ns.listOptions("/sub", startAfter: nil, limit: 0), [])
        XCTAssertEqual(try ns.listOptions("/sub/a", startAfter: nil, limit: nil).map(\.name), ["a"])

        // Upstream refuses glob characters in a ListOptions path; ListStatus is literal here.
        _ = try ns.mkdir("/g*", mode: 0o755)
        _ = try ns.mkdir("/h[", mode: 0o755)
        XCTAssertEqual(kind { _ = try ns.listOptions("/g*", startAfter: nil, limit: 10) }, .common)
        XCTAssertEqual(try ns.listOptions("/h[", startAfter: nil, limit: 10), [], "an unclosed [ is no pattern")
        XCTAssertEqual(try ns.listStatus("/g*"), [])
    }

    func testXattrsAddBeforeRemoveAndInternalKeysHidden() throws {
        let ns = try open()
        _ = try ns.mkdir("/d", mode: 0o755)
        let st = try ns.setAttr("/d", SetAttrOptions(addXattrs: ["user.a": [1], "\u{0}curvine.ctime": [9]],
                                                     removeXattrs: ["user.a", "user.missing"]))
        XCTAssertEqual(st.xattrs, [:])
        XCTAssertEqual(try ns.setAttr("/d", SetAttrOptions(addXattrs: ["user.b": [2]])).xattrs, ["user.b": [2]])
    }
}

/// A thread-safe counter for the concurrent test above.
private final class ManagedAtomicCounter: @unchecked Sendable {
    private let lock = Lock()
    private var n = 0
    func add() { lock.withLock { n += 1 } }
    var value: Int { lock.withLock { n } }
}
