// Cluster-wide locks (FileSystemCore+Locks.swift) against InProcessFileSystem: two
// cores over one namespace are two mounts (two clients); owners inside one core are
// processes (POSIX) or open file descriptions (OFD, flock) of one mount.
import XCTest
#if canImport(Glibc)
import Glibc
#endif
import CurvineClient
import CurvineServer
@testable import CurvineFSCore

/// A wall clock the test can move forward (lock leases).
final class SkewedClock: @unchecked Sendable {
    private let lock = Lock()
    private var skewMs: Int64 = 0
    func now() -> Int64 { lock.withLock { wallClockMs() + skewMs } }
    func advance(ms: Int64) { lock.withLock { skewMs += ms } }
}

/// A flag another thread sets (the interrupt check of a waiter).
final class Flag: @unchecked Sendable {
    private let lock = Lock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}

/// Runs `body` on its own thread; `wait` returns its error (nil: success) or times out.
final class Background: @unchecked Sendable {
    private let cond = ConditionLock()
    private var result: Result<Void, Error>?
    let started = monotonicNs()
    private(set) var finishedNs: UInt64 = 0

    init(_ body: @escaping () throws -> Void) {
        startThread(name: "lock-test") { [self] in
            let r = Result { try body() }
            cond.withLock {
                result = r
                finishedNs = monotonicNs()
                cond.broadcast()
            }
        }
    }

    var isDone: Bool { cond.withLock { result != nil } }

    /// The outcome, or nil when still running after `seconds`.
    func wait(_ seconds: Double) -> Result<Void, Error>? {
        let deadline = monotonicNs() + UInt64(seconds * 1e9)
        return cond.withLock {
            while result == nil && monotonicNs() < deadline { _ = cond.wait(untilNs: deadline) }
            return result
        }
    }

    var elapsed: Double { Double(finishedNs - started) / 1e9 }
}

final class LockTests: CoreTestCase {
    var other: FileSystemCore!
    var extraDirs: [String] = []
    var extraCores: [FileSystemCore] = []
    var extraFS: [InProcessFileSystem] = []

    override func tearDownWithError() throws {
        other?.shutdown()
        other = nil
        for c in extraCores { c.shutdown() }
        extraCores.removeAll()
        for f in extraFS { f.close() }
        extraFS.removeAll()
        try super.tearDownWithError()
        for d in extraDirs { _ = system("rm -rf '\(d)'") }
    }

    /// A second mount: another client over the same namespace.
    func otherMount() throws -> FileSystemCore {
        if other == nil { other = try FileSystemCore(client: fs.sibling(clientName: "mount-b"), config: defaultConfig()) }
        return other
    }

    /// Creates /name and opens it read-write on `core` (looked up first on another core).
    func openFile(_ c: FileSystemCore, _ name: String) throws -> (ino: UInt64, fh: UInt64) {
        let root = InodeTable.rootIno
        if let e = try? c.lookup(parent: root, name: name, ctx: rootCtx), !e.isNegative {
            return (e.ino, try c.open(ino: e.ino, flags: O_RDWR, ctx: rootCtx).fh)
        }
        let (e, o) = try c.create(parent: root, name: name, mode: 0o644, flags: O_RDWR | O_CREAT, ctx: rootCtx)
        return (e.ino, o.fh)
    }

    func lockErrno(_ body: () throws -> Void) -> Int32 {
        do { try body(); return 0 } catch let e as FSError { return e.errno } catch { return -1 }
    }

    // MARK: conflicts between clients

    func testPosixLocksConflictBetweenTwoMounts() throws {
        let b = try otherMount()
        let fa = try openFile(core, "f")
        let fb = try openFile(b, "f")
        try core.setlk(ino: fa.ino, fh: fa.fh, owner: 1, type: .write, start: 0, end: 99, pid: 100, wait: false)
        // Overlapping write and read locks of mount B fail at once; a disjoint range is fine.
        XCTAssertEqual(lockErrno { try b.setlk(ino: fb.ino, fh: fb.fh, owner: 1, type: .write, start: 50, end: 60, pid: 200, wait: false) }, EAGAIN)
        XCTAssertEqual(lockErrno { try b.setlk(ino: fb.ino, fh: fb.fh, owner: 1, type: .read, start: 99, end: 99, pid: 200, wait: false) }, EAGAIN)
        try b.setlk(ino: fb.ino, fh: fb.fh, owner: 1, type: .read, start: 100, end: UInt64.max, pid: 200, wait: false)
        // Same owner id, other client: still another owner (identity is client + owner).
        XCTAssertEqual(lockErrno { try core.setlk(ino: fa.ino, fh: fa.fh, owner: 1, type: .write, start: 100, end: 100, pid: 100, wait: false) }, EAGAIN)
        // Read locks share.
        try core.setlk(ino: fa.ino, fh: fa.fh, owner: 1, type: .read, start: 200, end: 300, pid: 100, wait: false)
        // After A unlocks, B gets the range.
        try core.setlk(ino: fa.ino, fh: fa.fh, owner: 1, type: .unlock, start: 0, end: UInt64.max, pid: 0, wait: false)
        try b.setlk(ino: fb.ino, fh: fb.fh, owner: 1, type: .write, start: 0, end: 99, pid: 200, wait: false)
        XCTAssertEqual(b.heldLocks(ino: fb.ino).map { [$0.start, $0.end] }, [[0, 99], [100, UInt64.max]])
        XCTAssertEqual(core.heldLocks(ino: fa.ino), [])
    }

    func testFlockConflictsBetweenMountsAndIsSeparateFromPosix() throws {
        let b = try otherMount()
        let fa = try openFile(core, "g")
        let fb = try openFile(b, "g")
        try core.flock(ino: fa.ino, fh: fa.fh, owner: 11, type: .write, pid: 1, wait: false)
        XCTAssertEqual(lockErrno { try b.flock(ino: fb.ino, fh: fb.fh, owner: 21, type: .read, pid: 2, wait: false) }, EWOULDBLOCK)
        // flock and POSIX locks are separate lock spaces (as on Linux).
        try b.setlk(ino: fb.ino, fh: fb.fh, owner: 21, type: .write, start: 0, end: UInt64.max, pid: 2, wait: false)
        // Downgrade to shared: B may share it.
        try core.flock(ino: fa.ino, fh: fa.fh, owner: 11, type: .read, pid: 1, wait: false)
        try b.flock(ino: fb.ino, fh: fb.fh, owner: 21, type: .read, pid: 2, wait: false)
        XCTAssertEqual(lockErrno { try core.flock(ino: fa.ino, fh: fa.fh, owner: 11, type: .write, pid: 1, wait: false) }, EWOULDBLOCK)
        try b.flock(ino: fb.ino, fh: fb.fh, owner: 21, type: .unlock, pid: 2, wait: false)
        try core.flock(ino: fa.ino, fh: fa.fh, owner: 11, type: .write, pid: 1, wait: false)
    }

    func testGetlkReportsTheConflict() throws {
        let b = try otherMount()
        let fa = try openFile(core, "f")
        let fb = try openFile(b, "f")
        try core.setlk(ino: fa.ino, fh: fa.fh, owner: 5, type: .write, start: 10, end: 19, pid: 4242, wait: false)
        try core.setlk(ino: fa.ino, fh: fa.fh, owner: 5, type: .read, start: 30, end: UInt64.max, pid: 4242, wait: false)
        // Another mount: the conflict with the lowest start; its pid is meaningless here (0).
        let c = try XCTUnwrap(b.getlk(ino: fb.ino, fh: fb.fh, owner: 1, type: .write, start: 0, end: UInt64.max, pid: 7))
        XCTAssertEqual(c.type, .write)
        XCTAssertEqual([c.start, c.end], [10, 19])
        XCTAssertEqual(c.pid, 0)
        // A read query conflicts only with the write lock; past it only the read lock holds: no conflict.
        XCTAssertNil(try b.getlk(ino: fb.ino, fh: fb.fh, owner: 1, type: .read, start: 20, end: UInt64.max, pid: 7))
        let r = try XCTUnwrap(b.getlk(ino: fb.ino, fh: fb.fh, owner: 1, type: .write, start: 40, end: 40, pid: 7))
        XCTAssertEqual(r.type, .read)
        XCTAssertEqual([r.start, r.end], [30, UInt64.max])
        // The owner itself sees no conflict; another owner of the same mount sees its pid.
        XCTAssertNil(try core.getlk(ino: fa.ino, fh: fa.fh, owner: 5, type: .write, start: 0, end: UInt64.max, pid: 4242))
        let same = try XCTUnwrap(core.getlk(ino: fa.ino, fh: fa.fh, owner: 6, type: .read, start: 15, end: 15, pid: 1))
        XCTAssertEqual(same.pid, 4242)
        XCTAssertEqual(same.ownerId, 5)
        // GETLK changes nothing.
        XCTAssertEqual(core.heldLocks(ino: fa.ino).count, 2)
        assertErrno(EINVAL, try core.getlk(ino: fa.ino, fh: fa.fh, owner: 5, type: .write, start: 9, end: 8, pid: 1))
        assertErrno(EBADF, try core.getlk(ino: fa.ino, fh: 987_654, owner: 5, type: .write, start: 0, end: 1, pid: 1))
    }

    func testRangeSplittingAndConversion() throws {
        let b = try otherMount()
        let fa = try openFile(core, "f")
        let fb = try openFile(b, "f")
        try core.setlk(ino: fa.ino, fh: fa.fh, owner: 1, type: .write, start: 0, end: 99, pid: 1, wait: false)
        // Unlocking the middle splits the range in two.
        try core.setlk(ino: fa.ino, fh: fa.fh, owner: 1, type: .unlock, start: 40, end: 59, pid: 0, wait: false)
        XCTAssertEqual(core.heldLocks(ino: fa.ino).map { [$0.start, $0.end] }, [[0, 39], [60, 99]])
        try b.setlk(ino: fb.ino, fh: fb.fh, owner: 2, type: .write, start: 40, end: 59, pid: 2, wait: false)
        XCTAssertEqual(lockErrno { try b.setlk(ino: fb.ino, fh: fb.fh, owner: 2, type: .write, start: 39, end: 40, pid: 2, wait: false) }, EAGAIN)
        XCTAssertEqual(lockErrno { try b.setlk(ino: fb.ino, fh: fb.fh, owner: 2, type: .read, start: 60, end: 60, pid: 2, wait: false) }, EAGAIN)
        // Converting the middle of a write lock to read: three pieces, the middle shared.
        try core.setlk(ino: fa.ino, fh: fa.fh, owner: 1, type: .read, start: 70, end: 79, pid: 1, wait: false)
        XCTAssertEqual(core.heldLocks(ino: fa.ino).map { "\($0.type) \($0.start)-\($0.end)" },
                       ["write 0-39", "write 60-69", "read 70-79", "write 80-99"])
        try b.setlk(ino: fb.ino, fh: fb.fh, owner: 2, type: .read, start: 70, end: 79, pid: 2, wait: false)
        XCTAssertEqual(lockErrno { try b.setlk(ino: fb.ino, fh: fb.fh, owner: 2, type: .read, start: 69, end: 70, pid: 2, wait: false) }, EAGAIN)
        // The mirror matches the master: a full unlock from the master's point of view leaves nothing.
        try core.setlk(ino: fa.ino, fh: fa.fh, owner: 1, type: .unlock, start: 0, end: UInt64.max, pid: 0, wait: false)
        XCTAssertEqual(core.heldLocks(ino: fa.ino), [])
        try b.setlk(ino: fb.ino, fh: fb.fh, owner: 2, type: .write, start: 0, end: 39, pid: 2, wait: false)
        try b.setlk(ino: fb.ino, fh: fb.fh, owner: 2, type: .write, start: 60, end: 69, pid: 2, wait: false)
        try b.setlk(ino: fb.ino, fh: fb.fh, owner: 2, type: .write, start: 80, end: UInt64.max, pid: 2, wait: false)
    }

    // MARK: close

    func testReleaseUnlocksFlockAndOFDOwnersOfThatHandle() throws {
        let b = try otherMount()
        let fa = try openFile(core, "f")
        let fa2 = try core.open(ino: fa.ino, flags: O_RDONLY, ctx: rootCtx).fh
        let fb = try openFile(b, "f")
        try core.flock(ino: fa.ino, fh: fa.fh, owner: 0xAA, type: .write, pid: 1, wait: false)           // flock via fh 1
        try core.setlk(ino: fa.ino, fh: fa2, owner: 0xBB, type: .write, start: 0, end: 9, pid: 0, wait: false)  // OFD via fh 2
        XCTAssertEqual(lockErrno { try b.flock(ino: fb.ino, fh: fb.fh, owner: 1, type: .read, pid: 2, wait: false) }, EWOULDBLOCK)
        // RELEASE of fh 1 drops its flock only.
        try core.release(ino: fa.ino, fh: fa.fh)
        try b.flock(ino: fb.ino, fh: fb.fh, owner: 1, type: .read, pid: 2, wait: false)
        XCTAssertEqual(lockErrno { try b.setlk(ino: fb.ino, fh: fb.fh, owner: 1, type: .read, start: 5, end: 5, pid: 2, wait: false) }, EAGAIN)
        try core.release(ino: fa.ino, fh: fa2)
        try b.setlk(ino: fb.ino, fh: fb.fh, owner: 1, type: .write, start: 0, end: UInt64.max, pid: 2, wait: false)
        XCTAssertEqual(core.lockStats.held, 0)
    }

    func testFlushDropsOnlyTheClosingOwnersPosixLocksAndOnlyWhenHeld() throws {
        let b = try otherMount()
        let fa = try openFile(core, "f")
        let fb = try openFile(b, "f")
        // No lock held: FLUSH never talks to the master (upstream #1227 storm).
        faults.resetCounts()
        for _ in 0..<100 { try core.releaseLocksOnFlush(ino: fa.ino, fh: fa.fh, owner: 77) }
        XCTAssertEqual(faults.calls("setLock"), 0)
        try core.setlk(ino: fa.ino, fh: fa.fh, owner: 77, type: .write, start: 0, end: 9, pid: 1, wait: false)
        try core.setlk(ino: fa.ino, fh: fa.fh, owner: 78, type: .write, start: 10, end: 19, pid: 2, wait: false)
        try core.flock(ino: fa.ino, fh: fa.fh, owner: 77, type: .write, pid: 1, wait: false)
        faults.resetCounts()
        try core.releaseLocksOnFlush(ino: fa.ino, fh: fa.fh, owner: 99)  // another process closes
        XCTAssertEqual(faults.calls("setLock"), 0)
        try core.releaseLocksOnFlush(ino: fa.ino, fh: fa.fh, owner: 77)
        XCTAssertEqual(faults.calls("setLock"), 1)
        try b.setlk(ino: fb.ino, fh: fb.fh, owner: 1, type: .write, start: 0, end: 9, pid: 3, wait: false)
        XCTAssertEqual(lockErrno { try b.setlk(ino: fb.ino, fh: fb.fh, owner: 1, type: .write, start: 10, end: 10, pid: 3, wait: false) }, EAGAIN)
        // Its flock is not a POSIX lock: it stays until RELEASE.
        XCTAssertEqual(lockErrno { try b.flock(ino: fb.ino, fh: fb.fh, owner: 1, type: .read, pid: 3, wait: false) }, EWOULDBLOCK)
        // Dirty data is flushed before the lock changes hands.
        try write(fa.ino, fa.fh, 0, Array("locked data".utf8))
        try core.setlk(ino: fa.ino, fh: fa.fh, owner: 78, type: .unlock, start: 0, end: UInt64.max, pid: 0, wait: false)
        XCTAssertEqual(try fs.fileStatus("/f").length, 11)
    }

    // MARK: waiting

    func testSetlkwWaitsUntilTheOtherMountUnlocks() throws {
        let b = try otherMount()
        let fa = try openFile(core, "f")
        let fb = try openFile(b, "f")
        try core.setlk(ino: fa.ino, fh: fa.fh, owner: 1, type: .write, start: 0, end: UInt64.max, pid: 1, wait: false)
        let bb = b
        let waiter = Background {
            try bb.setlk(ino: fb.ino, fh: fb.fh, owner: 2, type: .write, start: 5, end: 5, pid: 2, wait: true)
        }
        XCTAssertNil(waiter.wait(0.5), "waiter must block while the lock is held")
        XCTAssertEqual(b.lockStats.waiters, 1)
        try core.setlk(ino: fa.ino, fh: fa.fh, owner: 1, type: .unlock, start: 0, end: UInt64.max, pid: 0, wait: false)
        // Another mount's unlock is seen at the next poll (<= 1 s backoff).
        let r = try XCTUnwrap(waiter.wait(3), "waiter did not get the lock")
        XCTAssertNoThrow(try r.get())
        XCTAssertEqual(b.heldLocks(ino: fb.ino).map { [$0.start, $0.end] }, [[5, 5]])
        XCTAssertEqual(b.lockStats.waiters, 0)
        XCTAssertEqual(lockErrno { try core.setlk(ino: fa.ino, fh: fa.fh, owner: 1, type: .read, start: 5, end: 5, pid: 1, wait: false) }, EAGAIN)
    }

    func testLocalUnlockWakesAWaiterAtOnce() throws {
        let f = try openFile(core, "f")
        try core.flock(ino: f.ino, fh: f.fh, owner: 1, type: .write, pid: 1, wait: false)
        let c = core!
        let waiter = Background { try c.flock(ino: f.ino, fh: f.fh, owner: 2, type: .write, pid: 2, wait: true) }
        // Let the waiter back off to its 400-500 ms sleeps.
        XCTAssertNil(waiter.wait(1.2))
        let t0 = monotonicNs()
        try core.flock(ino: f.ino, fh: f.fh, owner: 1, type: .unlock, pid: 1, wait: false)
        let r = try XCTUnwrap(waiter.wait(3))
        XCTAssertNoThrow(try r.get())
        XCTAssertLessThan(Double(waiter.finishedNs - t0) / 1e9, 0.25, "a local unlock wakes the waiter early")
    }

    func testInterruptEndsTheWaitWithEINTR() throws {
        let b = try otherMount()
        let fa = try openFile(core, "f")
        let fb = try openFile(b, "f")
        try core.flock(ino: fa.ino, fh: fa.fh, owner: 1, type: .write, pid: 1, wait: false)
        let flag = Flag()
        let bb = b
        let waiter = Background {
            try bb.flock(ino: fb.ino, fh: fb.fh, owner: 2, type: .read, pid: 2, wait: true, interrupted: { flag.isSet })
        }
        XCTAssertNil(waiter.wait(1.2))
        let t0 = monotonicNs()
        flag.set()
        b.wakeLockWaiters()  // what the FUSE_INTERRUPT callback does
        let r = try XCTUnwrap(waiter.wait(3))
        XCTAssertThrowsError(try r.get()) { XCTAssertEqual(($0 as? FSError)?.errno, EINTR) }
        XCTAssertLessThan(Double(waiter.finishedNs - t0) / 1e9, 0.25)
        XCTAssertEqual(b.lockStats.waiters, 0)
        XCTAssertEqual(b.lockStats.held, 0)
        // Without the wake-up call the next poll still notices (within one backoff).
        let flag2 = Flag()
        try core.setlk(ino: fa.ino, fh: fa.fh, owner: 1, type: .write, start: 0, end: 0, pid: 1, wait: false)
        let waiter2 = Background {
            try bb.setlk(ino: fb.ino, fh: fb.fh, owner: 3, type: .write, start: 0, end: 0, pid: 3, wait: true,
                         interrupted: { flag2.isSet })
        }
        XCTAssertNil(waiter2.wait(0.3))
        flag2.set()
        let r2 = try XCTUnwrap(waiter2.wait(2.5))
        XCTAssertThrowsError(try r2.get()) { XCTAssertEqual(($0 as? FSError)?.errno, EINTR) }
    }

    func testTwoOwnerCycleInOneMountIsEDEADLK() throws {
        let f = try openFile(core, "f")
        let c = core!
        try core.setlk(ino: f.ino, fh: f.fh, owner: 1, type: .write, start: 0, end: 9, pid: 101, wait: false)
        try core.setlk(ino: f.ino, fh: f.fh, owner: 2, type: .write, start: 10, end: 19, pid: 102, wait: false)
        // Owner 1 waits for owner 2's range...
        let waiter = Background { try c.setlk(ino: f.ino, fh: f.fh, owner: 1, type: .write, start: 10, end: 19, pid: 101, wait: true) }
        XCTAssertNil(waiter.wait(0.4))
        // ...so owner 2 waiting for owner 1's range would close the cycle.
        let t0 = monotonicNs()
        assertErrno(EDEADLK, try core.setlk(ino: f.ino, fh: f.fh, owner: 2, type: .write, start: 0, end: 9, pid: 102, wait: true))
        XCTAssertLessThan(Double(monotonicNs() - t0) / 1e9, 0.5, "EDEADLK is immediate")
        XCTAssertEqual(core.lockStats.deadlocks, 1)
        // A third owner waiting on owner 1 is no cycle: it waits (and is interrupted here).
        let flag = Flag()
        let third = Background {
            try c.setlk(ino: f.ino, fh: f.fh, owner: 3, type: .read, start: 0, end: 0, pid: 103, wait: true, interrupted: { flag.isSet })
        }
        XCTAssertNil(third.wait(0.4))
        flag.set()
        c.wakeLockWaiters()
        XCTAssertThrowsError(try XCTUnwrap(third.wait(2)).get())
        // Owner 2 gives up its range (as a process does after EDEADLK): owner 1 gets it.
        try core.setlk(ino: f.ino, fh: f.fh, owner: 2, type: .unlock, start: 0, end: UInt64.max, pid: 0, wait: false)
        XCTAssertNoThrow(try XCTUnwrap(waiter.wait(2)).get())
        XCTAssertEqual(core.heldLocks(ino: f.ino).map { [$0.ownerId, $0.start, $0.end] }, [[1, 0, 9], [1, 10, 19]])
    }

    func testOFDWaitersAreNotDeadlockChecked() throws {
        let f = try openFile(core, "f")
        let c = core!
        // pid 0: OFD locks (owned by open file descriptions, not processes).
        try core.setlk(ino: f.ino, fh: f.fh, owner: 1, type: .write, start: 0, end: 9, pid: 0, wait: false)
        try core.setlk(ino: f.ino, fh: f.fh, owner: 2, type: .write, start: 10, end: 19, pid: 0, wait: false)
        let w1 = Background { try c.setlk(ino: f.ino, fh: f.fh, owner: 1, type: .write, start: 10, end: 19, pid: 0, wait: true) }
        XCTAssertNil(w1.wait(0.3))
        let w2 = Background { try c.setlk(ino: f.ino, fh: f.fh, owner: 2, type: .write, start: 0, end: 9, pid: 0, wait: true) }
        XCTAssertNil(w2.wait(0.5), "an OFD cycle waits, as on Linux")
        try core.setlk(ino: f.ino, fh: f.fh, owner: 2, type: .unlock, start: 10, end: 19, pid: 0, wait: false)
        XCTAssertNoThrow(try XCTUnwrap(w1.wait(2)).get())
        try core.setlk(ino: f.ino, fh: f.fh, owner: 1, type: .unlock, start: 0, end: UInt64.max, pid: 0, wait: false)
        XCTAssertNoThrow(try XCTUnwrap(w2.wait(2)).get())
    }

    func testFlockUpgradeByTwoSharedHoldersDoesNotHang() throws {
        let f = try openFile(core, "f")
        let c = core!
        try core.flock(ino: f.ino, fh: f.fh, owner: 1, type: .read, pid: 1, wait: false)
        try core.flock(ino: f.ino, fh: f.fh, owner: 2, type: .read, pid: 2, wait: false)
        // Owner 1 upgrades: conflict with owner 2's shared lock, so (as flock(2) does) it
        // drops its shared lock and waits; owner 2's upgrade then succeeds.
        let w1 = Background { try c.flock(ino: f.ino, fh: f.fh, owner: 1, type: .write, pid: 1, wait: true) }
        XCTAssertNil(w1.wait(0.4))
        try core.flock(ino: f.ino, fh: f.fh, owner: 2, type: .write, pid: 2, wait: true)
        try core.flock(ino: f.ino, fh: f.fh, owner: 2, type: .unlock, pid: 2, wait: false)
        XCTAssertNoThrow(try XCTUnwrap(w1.wait(2)).get())
    }

    // MARK: leases

    /// A core over a file system whose clock the test controls.
    func skewedCores() throws -> (FileSystemCore, FileSystemCore, SkewedClock) {
        var t = Array("/tmp/fslock-XXXXXX".utf8CString)
        guard let p = mkdtemp(&t) else { throw FSError(errno, "mkdtemp") }
        let d = String(cString: p)
        extraDirs.append(d)
        let clock = SkewedClock()
        var o = Namespace.Options(journalDirectory: nil, syncJournal: false)
        o.clock = { clock.now() }
        let base = try InProcessFileSystem(directory: d, namespaceOptions: o)
        let a = try FileSystemCore(client: base, config: defaultConfig())
        let b = try FileSystemCore(client: base.sibling(clientName: "mount-b"), config: defaultConfig())
        extraCores += [a, b]
        extraFS.append(base)
        return (a, b, clock)
    }

    func waitUntil(_ seconds: Double, _ cond: () -> Bool) -> Bool {
        let deadline = monotonicNs() + UInt64(seconds * 1e9)
        while monotonicNs() < deadline {
            if cond() { return true }
            usleep(10_000)
        }
        return cond()
    }

    func testRefreshKeepsLocksPastTheMastersLease() throws {
        let (a, b, clock) = try skewedCores()
        a.lockRefreshInterval = 0.1
        let fa = try openFile(a, "f")
        let fb = try openFile(b, "f")
        try a.setlk(ino: fa.ino, fh: fa.fh, owner: 1, type: .write, start: 0, end: UInt64.max, pid: 1, wait: false)
        try a.flock(ino: fa.ino, fh: fa.fh, owner: 1, type: .write, pid: 1, wait: false)
        for _ in 0..<3 {
            clock.advance(ms: 4 * 60_000)  // 4 of the lease's 5 minutes
            let before = a.lockStats.refreshed
            // Two full rounds (both locks each): one surely started after the advance.
            XCTAssertTrue(waitUntil(3) { a.lockStats.refreshed >= before + 4 }, "refresher re-issues both locks")
        }
        // 12 "minutes" after the grant both locks are still held.
        XCTAssertEqual(lockErrno { try b.setlk(ino: fb.ino, fh: fb.fh, owner: 2, type: .read, start: 0, end: 0, pid: 2, wait: false) }, EAGAIN)
        XCTAssertEqual(lockErrno { try b.flock(ino: fb.ino, fh: fb.fh, owner: 2, type: .read, pid: 2, wait: false) }, EWOULDBLOCK)
        XCTAssertEqual(a.lockStats.lost, 0)
    }

    func testALapsedLeaseTakenByAnotherMountIsDroppedAtRefresh() throws {
        let (a, b, clock) = try skewedCores()
        a.lockRefreshInterval = 3600
        let fa = try openFile(a, "f")
        let fb = try openFile(b, "f")
        try a.setlk(ino: fa.ino, fh: fa.fh, owner: 1, type: .write, start: 0, end: 99, pid: 1, wait: false)
        clock.advance(ms: 6 * 60_000)  // no refresh: the lease lapses
        try b.setlk(ino: fb.ino, fh: fb.fh, owner: 2, type: .write, start: 50, end: 50, pid: 2, wait: false)
        a.lockRefreshInterval = 0.05
        XCTAssertTrue(waitUntil(3) { a.lockStats.lost == 1 })
        XCTAssertEqual(a.heldLocks(ino: fa.ino), [])
    }

    func testShutdownUnlocksEverything() throws {
        let b = try otherMount()
        let fa = try openFile(core, "f")
        let fb = try openFile(b, "f")
        try core.setlk(ino: fa.ino, fh: fa.fh, owner: 1, type: .write, start: 0, end: UInt64.max, pid: 1, wait: false)
        try core.flock(ino: fa.ino, fh: fa.fh, owner: 1, type: .write, pid: 1, wait: false)
        // A waiter of the shutting-down mount is ended, not left behind.
        let c = core!
        let waiter = Background { try c.flock(ino: fa.ino, fh: fa.fh, owner: 2, type: .write, pid: 2, wait: true) }
        XCTAssertNil(waiter.wait(0.3))
        core.shutdown()
        XCTAssertThrowsError(try XCTUnwrap(waiter.wait(2)).get())
        try b.setlk(ino: fb.ino, fh: fb.fh, owner: 2, type: .write, start: 0, end: UInt64.max, pid: 2, wait: false)
        try b.flock(ino: fb.ino, fh: fb.fh, owner: 2, type: .write, pid: 2, wait: false)
    }
}
