// Negative stat-ahead (AbsentRange.swift): a listing page answers lookups of names it
// proves missing, so a run of creates in name order needs no FileStatus per new name.
import XCTest
#if canImport(Glibc)
import Glibc
#endif
import CurvineClient
@testable import CurvineFSCore

final class AbsentRangeTests: CoreTestCase {
    func config(ttl: Double = 5, page: Int = 1000, negatives: Bool = true) -> CoreConfig {
        var c = defaultConfig()
        c.attrTimeout = ttl
        c.entryTimeout = ttl
        c.statAheadPage = page
        c.statAheadNegatives = negatives
        return c
    }

    /// LOOKUP (missing) + CREATE + RELEASE of `name`, as the kernel does for open(O_CREAT).
    func createNew(_ parent: UInt64, _ name: String) throws {
        assertErrno(ENOENT, try core.lookup(parent: parent, name: name, ctx: rootCtx))
        let (e, o) = try core.create(parent: parent, name: name, mode: 0o644, flags: O_WRONLY | O_CREAT | O_EXCL, ctx: rootCtx)
        try core.flush(ino: e.ino, fh: o.fh)
        try core.release(ino: e.ino, fh: o.fh)
    }

    /// Waits for at least `listings` background listings to have been asked for and for
    /// every listing started so far to be applied (under the table lock, after the call
    /// returns). Polls rather than sleeps a fixed time: a loaded CI machine may take far
    /// longer than a quiet one; 10 s is the give-up bound.
    func settle(listings: Int = 0) {
        for _ in 0..<2000 {
            if faults.calls("listPage") >= listings && core.table.listingsPending == 0 { return }
            usleep(5_000)
        }
        XCTFail("listings did not settle: \(faults.calls("listPage")) asked for, \(core.table.listingsPending) pending")
    }

    func testCreateRunInNameOrderNeedsNoFileStatus() throws {
        try remount(config())
        let d = try mkdir(1, "d")
        faults.resetCounts()
        for i in 0..<4 { try createNew(d.ino, String(format: "f%03d", i)) }
        XCTAssertEqual(faults.calls("fileStatus"), 4, "the first misses ask the master")
        settle(listings: 1)
        faults.resetCounts()
        for i in 4..<40 { try createNew(d.ino, String(format: "f%03d", i)) }
        XCTAssertEqual(faults.calls("fileStatus"), 0, "later misses are answered from the listing")
        XCTAssertEqual(faults.calls("createFile"), 36)
        // Names this mount created are found (dentries), and stay found after their
        // dentries are forgotten: a local change always beats the listing.
        let e = try core.lookup(parent: d.ino, name: "f010", ctx: rootCtx)
        XCTAssertNotEqual(e.ino, 0)
        core.forget(ino: e.ino, nlookup: 2)
        XCTAssertNotEqual(try core.lookup(parent: d.ino, name: "f010", ctx: rootCtx).ino, 0)
    }

    func testInterleavedCreateRunsEachGetTheirListing() throws {
        try remount(config(page: 4))
        let d = try mkdir(1, "d")
        // Four "threads", each creating its own slice in order, their lookups interleaved.
        // Pages of 4 names: a listing after one slice's name ends inside the next slice,
        // so each slice needs a listing of its own.
        for i in 0..<12 {
            for t in 0..<4 { try createNew(d.ino, "t\(t)-\(String(format: "%03d", i))") }
            settle()  // the listings this round started are applied before the next round
        }
        settle(listings: 4)
        faults.resetCounts()
        for i in 12..<20 {
            for t in 0..<4 { try createNew(d.ino, "t\(t)-\(String(format: "%03d", i))") }
        }
        XCTAssertEqual(faults.calls("fileStatus"), 0, "every slice is covered by a listing")
    }

    func testLocalChangesAndListedNamesAreNotAnsweredFromTheRange() throws {
        try remount(config())
        let d = try mkdir(1, "d")
        // Another client's name that exists when the listing runs.
        _ = try fs.mkdir("/d/g5", mode: 0o755, owner: "", group: "", createParent: false)
        for i in 0..<4 { try createNew(d.ino, "f\(i)") }
        settle(listings: 1)
        faults.resetCounts()
        XCTAssertNotEqual(try core.lookup(parent: d.ino, name: "g5", ctx: rootCtx).ino, 0, "listed: exists")
        // Created and removed by this mount; then another client creates it: the range
        // no longer speaks for the name, the master is asked.
        try createNew(d.ino, "h1")
        try core.unlink(parent: d.ino, name: "h1", ctx: rootCtx)
        _ = try fs.mkdir("/d/h1", mode: 0o755, owner: "", group: "", createParent: false)
        XCTAssertNotEqual(try core.lookup(parent: d.ino, name: "h1", ctx: rootCtx).ino, 0)
        // Renamed by this mount: both names leave the range.
        try createNew(d.ino, "r1")
        try core.rename(parent: d.ino, name: "r1", newParent: d.ino, newName: "r2", flags: 0, ctx: rootCtx)
        _ = try fs.mkdir("/d/r1", mode: 0o755, owner: "", group: "", createParent: false)
        XCTAssertNotEqual(try core.lookup(parent: d.ino, name: "r1", ctx: rootCtx).ino, 0)
        XCTAssertNotEqual(try core.lookup(parent: d.ino, name: "r2", ctx: rootCtx).ino, 0)
        // Within the TTL a name another client made after the listing is still reported
        // missing (the documented staleness, as for positive stat-ahead answers).
        _ = try fs.mkdir("/d/z9", mode: 0o755, owner: "", group: "", createParent: false)
        assertErrno(ENOENT, try core.lookup(parent: d.ino, name: "z9", ctx: rootCtx))
    }

    func testAFailedCreateLeavesTheNameToTheMaster() throws {
        try remount(config())
        let d = try mkdir(1, "d")
        for i in 0..<4 { try createNew(d.ino, "f\(i)") }
        settle(listings: 1)
        // The create's reply is lost (the master may have made the file): the name is
        // no longer answered from the listing.
        assertErrno(ENOENT, try core.lookup(parent: d.ino, name: "x1", ctx: rootCtx))
        faults.fail("createFile", with: .transport("connection reset"), times: 1)
        XCTAssertThrowsError(try core.create(parent: d.ino, name: "x1", mode: 0o644, flags: O_WRONLY | O_CREAT, ctx: rootCtx))
        _ = try fs.mkdir("/d/x1", mode: 0o755, owner: "", group: "", createParent: false)
        XCTAssertNotEqual(try core.lookup(parent: d.ino, name: "x1", ctx: rootCtx).ino, 0)
    }

    func testFullPageCoversOnlyUpToItsLastName() throws {
        try remount(config(page: 3))
        let d = try mkdir(1, "d")
        for n in ["m1", "m2", "m3", "m4", "m5"] {
            _ = try fs.mkdir("/d/\(n)", mode: 0o755, owner: "", group: "", createParent: false)
        }
        for i in 0..<4 { assertErrno(ENOENT, try core.lookup(parent: d.ino, name: "a\(i)", ctx: rootCtx)) }
        settle(listings: 1)  // the page after "a3": m1, m2, m3 (full) -> ("a3", "m3"]
        faults.resetCounts()
        assertErrno(ENOENT, try core.lookup(parent: d.ino, name: "b", ctx: rootCtx))
        assertErrno(ENOENT, try core.lookup(parent: d.ino, name: "m25", ctx: rootCtx))
        XCTAssertEqual(faults.calls("fileStatus"), 0)
        assertErrno(ENOENT, try core.lookup(parent: d.ino, name: "a2", ctx: rootCtx))  // not after "a3"
        XCTAssertEqual(faults.calls("fileStatus"), 1)
        assertErrno(ENOENT, try core.lookup(parent: d.ino, name: "m35", ctx: rootCtx))  // past "m3"
        XCTAssertEqual(faults.calls("fileStatus"), 2)
        XCTAssertNotEqual(try core.lookup(parent: d.ino, name: "m4", ctx: rootCtx).ino, 0)
    }

    func testRangeExpiresWithTheStatusTTL() throws {
        try remount(config(ttl: 1))
        let d = try mkdir(1, "d")
        for i in 0..<4 { try createNew(d.ino, "f\(i)") }
        settle(listings: 1)
        faults.resetCounts()
        try createNew(d.ino, "f5")
        XCTAssertEqual(faults.calls("fileStatus"), 0)
        XCTAssertEqual(core.table.absentCounts.ranges, 1)
        XCTAssertGreaterThan(core.table.absentCounts.names, 0, "f5 was created after the listing")
        usleep(1_050_000)
        assertErrno(ENOENT, try core.lookup(parent: d.ino, name: "f6", ctx: rootCtx))
        XCTAssertEqual(faults.calls("fileStatus"), 1, "an expired range proves nothing")
        XCTAssertEqual(core.table.absentCounts.ranges, 0, "and is dropped with its names")
        XCTAssertEqual(core.table.absentCounts.names, 0)
    }

    func testOffAsksTheMasterForEveryMiss() throws {
        try remount(config(negatives: false))
        let d = try mkdir(1, "d")
        for i in 0..<4 { try createNew(d.ino, "f\(i)") }
        settle()
        faults.resetCounts()
        for i in 4..<10 { try createNew(d.ino, "f\(i)") }
        XCTAssertEqual(faults.calls("fileStatus"), 6)
        XCTAssertEqual(faults.calls("listPage"), 0)
    }
}
