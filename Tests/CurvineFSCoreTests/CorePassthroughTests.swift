// The core's kernel-passthrough decisions (FileSystemCore+Passthrough.swift) with a fake
// backend: which opens qualify, one shared backing id per inode, never mixed modes, EBUSY
// for writers, fallbacks. The kernel side is covered by Tests/MountTests/PassthroughTests.
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif
import CurvineClient
import CurvineServer
@testable import CurvineFSCore

final class FakePassthroughBackend: PassthroughBackend {
    private let lock = Lock()
    private var _available = true
    var failWith: Int32?
    private(set) var opened: [Int32] = []
    private(set) var closed: [Int32] = []
    private var next: Int32 = 1

    var isAvailable: Bool {
        get { lock.withLock { _available } }
        set { lock.withLock { _available = newValue } }
    }
    var live: Set<Int32> { lock.withLock { Set(opened).subtracting(closed) } }

    func openBacking(fd: Int32) throws -> Int32 {
        try lock.withLock {
            XCTAssertGreaterThanOrEqual(fd, 0)
            if let e = failWith {
                if e == EPERM { _available = false }
                throw FSError(e, "fake BACKING_OPEN")
            }
            let id = next
            next += 1
            opened.append(id)
            return id
        }
    }

    func closeBacking(id: Int32) { lock.withLock { closed.append(id) } }
}

final class CorePassthroughTests: CoreTestCase {
    var backend: FakePassthroughBackend!

    override func setUpWithError() throws {
        try super.setUpWithError()
        backend = FakePassthroughBackend()
        core.setPassthroughBackend(backend)
    }

    override func remount(_ config: CoreConfig) throws {
        try super.remount(config)
        core.setPassthroughBackend(backend)
    }

    func openRO(_ ino: UInt64) throws -> Opened { try core.open(ino: ino, flags: O_RDONLY, ctx: rootCtx) }

    func testSingleBlockFileSharesOneBackingIdAcrossOpens() throws {
        let ino = try writeFile(1, "f", patternBytes(300_000, seed: 1))
        let a = try openRO(ino)
        let b = try openRO(ino)
        let id = core.passthroughBackingId(fh: a.fh)
        XCTAssertGreaterThan(id, 0)
        XCTAssertEqual(core.passthroughBackingId(fh: b.fh), id, "one backing id per inode")
        XCTAssertEqual(backend.opened, [id], "BACKING_OPEN once per inode")
        XCTAssertFalse(a.keepCache || b.keepCache || a.directIO || a.nonSeekable, "flags the kernel refuses with passthrough")
        XCTAssertEqual(core.passthroughDecision(fh: a.fh), "passthrough (backing id \(id))")
        try core.release(ino: ino, fh: a.fh)
        XCTAssertEqual(backend.live, [id], "still open through b")
        try core.release(ino: ino, fh: b.fh)
        XCTAssertEqual(backend.live, [], "last release closes the backing id")
        let s = core.passthroughStats
        XCTAssertEqual(s.passthroughOpens, 2)
        XCTAssertEqual(s.backingOpens, 1)
        XCTAssertEqual(s.backingIds, 0)
        // A later open registers the file again.
        let c = try openRO(ino)
        XCTAssertGreaterThan(core.passthroughBackingId(fh: c.fh), id)
        try core.release(ino: ino, fh: c.fh)
    }

    func testDirectIOMountStillDropsDirectIOForPassthroughOpens() throws {
        var c = defaultConfig()
        c.directIO = true
        try remount(c)
        let ino = try writeFile(1, "f", patternBytes(10_000, seed: 2))
        let o = try openRO(ino)
        XCTAssertGreaterThan(core.passthroughBackingId(fh: o.fh), 0)
        XCTAssertFalse(o.directIO, "DIRECT_IO would send the reads back to the daemon")
        try core.release(ino: ino, fh: o.fh)
    }

    func testMultiBlockAndEmptyFilesUseTheNormalPath() throws {
        var c = defaultConfig()
        c.blockSize = 1 << 20
        try remount(c)
        let ino = try writeFile(1, "big", patternBytes(2_500_000, seed: 3))
        let o = try openRO(ino)
        XCTAssertEqual(core.passthroughBackingId(fh: o.fh), 0)
        XCTAssertEqual(core.passthroughDecision(fh: o.fh), "normal reads: more than one block")
        XCTAssertEqual(try read(ino, o.fh, 1_000_000, 100_000), Array(patternBytes(2_500_000, seed: 3)[1_000_000..<1_100_000]))
        try core.release(ino: ino, fh: o.fh)
        let empty = try writeFile(1, "empty", [])
        let e = try openRO(empty)
        XCTAssertEqual(core.passthroughDecision(fh: e.fh), "normal reads: empty file")
        try core.release(ino: empty, fh: e.fh)
        XCTAssertEqual(backend.opened, [])
    }

    func testRemoteBlockVerdictIsRememberedAndNormalOpensAreNotMixed() throws {
        let data = patternBytes(200_000, seed: 4)
        let ino = try writeFile(1, "f", data)
        faults.hideLocalFiles = true   // the block reader offers no local fd: a remote block
        let a = try openRO(ino)
        XCTAssertEqual(core.passthroughBackingId(fh: a.fh), 0)
        XCTAssertTrue(core.passthroughDecision(fh: a.fh)?.contains("not on this host") ?? false)
        faults.hideLocalFiles = false
        // The inode has a normal open: the next open must be normal too.
        faults.resetCounts()
        let b = try openRO(ino)
        XCTAssertEqual(core.passthroughDecision(fh: b.fh), "normal reads: the file has other normal opens")
        XCTAssertEqual(faults.calls("blockLocations"), 0, "decided without asking the master")
        XCTAssertEqual(try read(ino, b.fh, 0, 1000), Array(data[0..<1000]))
        try core.release(ino: ino, fh: a.fh)
        try core.release(ino: ino, fh: b.fh)
        // "Not on this host" is remembered for the unchanged file: no second round trip.
        faults.resetCounts()
        let c = try openRO(ino)
        XCTAssertTrue(core.passthroughDecision(fh: c.fh)?.contains("not on this host") ?? false)
        XCTAssertEqual(faults.calls("blockLocations"), 0)
        try core.release(ino: ino, fh: c.fh)
        XCTAssertEqual(backend.opened, [])
    }

    func testWriteOpenAndTruncateWhilePassthroughOpenGetEBUSY() throws {
        let data = patternBytes(100_000, seed: 5)
        let ino = try writeFile(1, "f", data)
        let r = try openRO(ino)
        XCTAssertGreaterThan(core.passthroughBackingId(fh: r.fh), 0)
        let start = monotonicNs()
        for flags in [O_WRONLY, O_RDWR, O_RDONLY | O_TRUNC] {
            XCTAssertThrowsError(try core.open(ino: ino, flags: flags, ctx: rootCtx)) { e in
                XCTAssertEqual((e as? FSError)?.errno, EBUSY, "\(e)")
            }
        }
        XCTAssertGreaterThanOrEqual(monotonicNs() - start, 3 * 150_000_000, "each waits for the readers to go first")
        XCTAssertThrowsError(try core.setattr(ino: ino, changes: SetAttrChanges(size: 0), ctx: rootCtx)) { e in
            XCTAssertEqual((e as? FSError)?.errno, EBUSY, "\(e)")
        }
        XCTAssertEqual(core.passthroughStats.refusedWrites, 4)
        XCTAssertEqual(try core.getattr(ino: ino, fh: nil).0.size, 100_000, "nothing changed")
        // A writer that arrives just before the last reader's RELEASE waits for it and gets in.
        let c: FileSystemCore = core
        let done = DispatchSemaphore(value: 0)
        final class Box: @unchecked Sendable { var result: Result<Opened, Error>? }  // written before done.signal()
        let box = Box()
        let opener = Thread {
            box.result = Result { try c.open(ino: ino, flags: O_WRONLY, ctx: rootCtx) }
            done.signal()
        }
        opener.start()
        usleep(10_000)
        try core.release(ino: ino, fh: r.fh)
        done.wait()
        let w = try XCTUnwrap(box.result).get()
        XCTAssertEqual(core.passthroughDecision(fh: w.fh), "normal reads: open for writing")
        XCTAssertEqual(backend.live, [])
        // While it is open, readers get the normal path.
        let r2 = try openRO(ino)
        XCTAssertEqual(core.passthroughBackingId(fh: r2.fh), 0)
        try core.release(ino: ino, fh: r2.fh)
        try core.release(ino: ino, fh: w.fh)
    }

    func testFileBeingWrittenIsReadNormallyUntilComplete() throws {
        let data = patternBytes(400_000, seed: 6)
        let (e, w) = try core.create(parent: 1, name: "f", mode: 0o644, flags: O_WRONLY | O_CREAT, ctx: rootCtx)
        try write(e.ino, w.fh, 0, data)
        let r = try openRO(e.ino)
        XCTAssertEqual(core.passthroughBackingId(fh: r.fh), 0)
        XCTAssertTrue(core.passthroughDecision(fh: r.fh)?.contains("being written") ?? false, "\(String(describing: core.passthroughDecision(fh: r.fh)))")
        XCTAssertEqual(try read(e.ino, r.fh, 100, 1000), Array(data[100..<1100]), "read-your-writes")
        try core.release(ino: e.ino, fh: r.fh)
        try core.release(ino: e.ino, fh: w.fh)
        let r3 = try openRO(e.ino)
        XCTAssertGreaterThan(core.passthroughBackingId(fh: r3.fh), 0, "complete now")
        try core.release(ino: e.ino, fh: r3.fh)
    }

    func testBackingOpenFailureFallsBackAndEpermTurnsItOff() throws {
        let ino = try writeFile(1, "f", patternBytes(50_000, seed: 7))
        backend.failWith = EIO
        let a = try openRO(ino)
        XCTAssertEqual(core.passthroughBackingId(fh: a.fh), 0)
        XCTAssertTrue(core.passthroughDecision(fh: a.fh)?.contains("BACKING_OPEN failed") ?? false)
        try core.release(ino: ino, fh: a.fh)
        backend.failWith = EPERM
        let b = try openRO(ino)
        XCTAssertEqual(core.passthroughBackingId(fh: b.fh), 0)
        try core.release(ino: ino, fh: b.fh)
        XCTAssertFalse(backend.isAvailable)
        XCTAssertEqual(core.passthroughStats.backingFailures, 2)
        // Unavailable: no bookkeeping at all from now on.
        let c = try openRO(ino)
        XCTAssertNil(core.passthroughDecision(fh: c.fh))
        try core.release(ino: ino, fh: c.fh)
    }

    func testWithoutBackendNothingIsTracked() throws {
        core.setPassthroughBackend(nil)
        let ino = try writeFile(1, "f", patternBytes(50_000, seed: 8))
        let o = try openRO(ino)
        XCTAssertEqual(core.passthroughBackingId(fh: o.fh), 0)
        XCTAssertNil(core.passthroughDecision(fh: o.fh))
        try core.release(ino: ino, fh: o.fh)
    }

    func testConcurrentFirstOpensAgreeOnOneId() throws {
        let ino = try writeFile(1, "f", patternBytes(70_000, seed: 9))
        let n = 8
        var fhs = [UInt64](repeating: 0, count: n)
        let lock = Lock()
        DispatchQueue.concurrentPerform(iterations: n) { i in
            let o = try! self.openRO(ino)
            lock.withLock { fhs[i] = o.fh }
        }
        let ids = Set(fhs.map { core.passthroughBackingId(fh: $0) })
        XCTAssertEqual(ids.count, 1)
        XCTAssertGreaterThan(ids.first!, 0)
        XCTAssertEqual(backend.opened.count, 1)
        for fh in fhs { try core.release(ino: ino, fh: fh) }
        XCTAssertEqual(backend.live, [])
    }
}
