// FileHandleMap/FileHandleSlots (FileHandleTable.swift): the READ path's lock-free,
// retain-free handle lookup stays in step with the map through every mutation.
import XCTest
@testable import CurvineFSCore

final class FileHandleTableTests: CoreTestCase {
    func testSlotsFollowTheMap() throws {
        let ino = try writeFile(InodeTable.rootIno, "f", [1, 2, 3], writeSize: 3)
        let a = try core.open(ino: ino, flags: O_RDONLY, ctx: rootCtx)
        let b = try core.open(ino: ino, flags: O_RDONLY, ctx: rootCtx)
        XCTAssertNotEqual(a.fh, b.fh)
        XCTAssertNotEqual(a.fh & FileHandleSlots.indexMask, 0, "a new handle gets a slot")
        let r = CollectingReplier()
        try core.read(ino: ino, fh: a.fh, offset: 0, size: 3, replier: r)
        XCTAssertEqual(r.data, [1, 2, 3])
        // A wrong inode, or an fh whose slot holds another handle (same index, other
        // generation), is EBADF, not someone else's file.
        XCTAssertThrowsError(try core.read(ino: ino + 1, fh: a.fh, offset: 0, size: 3, replier: r))
        let otherGeneration = a.fh &+ (1 << FileHandleSlots.slotBits)
        XCTAssertThrowsError(try core.read(ino: ino, fh: otherGeneration, offset: 0, size: 3, replier: r)) {
            XCTAssertEqual(($0 as? FSError)?.errno, EBADF)
        }
        try core.release(ino: ino, fh: a.fh)
        XCTAssertThrowsError(try core.read(ino: ino, fh: a.fh, offset: 0, size: 3, replier: r)) {
            XCTAssertEqual(($0 as? FSError)?.errno, EBADF)
        }
        // The freed slot is reused under a new fh; the old fh stays dead.
        let c = try core.open(ino: ino, flags: O_RDONLY, ctx: rootCtx)
        XCTAssertEqual(c.fh & FileHandleSlots.indexMask, a.fh & FileHandleSlots.indexMask)
        XCTAssertNotEqual(c.fh, a.fh)
        XCTAssertThrowsError(try core.read(ino: ino, fh: a.fh, offset: 0, size: 3, replier: r))
        try core.read(ino: ino, fh: c.fh, offset: 0, size: 3, replier: CollectingReplier())
        try core.release(ino: ino, fh: b.fh)
        try core.release(ino: ino, fh: c.fh)
        XCTAssertEqual(core.stats.fileHandles, 0)
    }

    /// Handles inserted with an fh from elsewhere (a handover restoring the previous
    /// process's handles) are found: in their slot when it is free, else through the map.
    func testForeignFileHandleNumbers() throws {
        let slots = FileHandleSlots()
        var map = FileHandleMap(slots: slots)
        let env = CoreEnv(client: fs, config: core.config, table: InodeTable(rootPath: "/", rootStatus: try fs.fileStatus("/")))
        defer { env.io.shutdown() }
        func handle(_ fh: UInt64) -> CurvineFSCore.FileHandle {
            CurvineFSCore.FileHandle(fh: fh, ino: 7, open: OpenFile(ino: 7), readable: true, writable: false, holdsWriter: false, env: env)
        }
        let h5 = handle(5)  // an old-style sequential fh: index 5, generation 0
        map[5] = h5
        XCTAssertTrue(slots.lookup(5)?.takeUnretainedValue() === h5)
        // Index 5 is skipped when new numbers are handed out while it is taken.
        var seen: [UInt64] = []
        for g in 1...8 {
            let fh = map.reserveFh(generation: UInt64(g))
            XCTAssertNotEqual(fh & FileHandleSlots.indexMask, 5)
            map[fh] = handle(fh)
            seen.append(fh)
        }
        // Same index, another fh: slow path only (the slot keeps the first).
        let clash = (99 << FileHandleSlots.slotBits) | (seen[0] & FileHandleSlots.indexMask)
        let hc = handle(clash)
        map[clash] = hc
        XCTAssertTrue(map[clash] === hc)
        XCTAssertFalse(slots.lookup(clash)?.takeUnretainedValue() === hc)
        map[clash] = nil
        XCTAssertNotNil(slots.lookup(seen[0]), "removing the clash leaves the slot's owner")
        map.removeValue(forKey: 5)
        XCTAssertNil(slots.lookup(5))
        map.removeAll()
        for fh in seen { XCTAssertNil(slots.lookup(fh)) }
        XCTAssertTrue(map.isEmpty)
    }
}

extension FileHandleTableTests {
    /// registerFile(fixed:) (a hand-over restoring handles): the fixed number is used and
    /// is found by READ; numbers handed out afterwards never collide with it.
    func testRegisterFixedNumbers() throws {
        let ino = try writeFile(InodeTable.rootIno, "g", [9, 8, 7], writeSize: 3)
        let o = try core.open(ino: ino, flags: O_RDONLY, ctx: rootCtx)
        let gen = o.fh >> FileHandleSlots.slotBits
        let fixed = ((gen + 5) << FileHandleSlots.slotBits) | 77
        let open = try core.fileHandle(o.fh, ino).open  // not inside `make`: it runs under handleLock
        let env = core.env
        let h = core.registerFile(fixed: fixed) { fh in
            CurvineFSCore.FileHandle(fh: fh, ino: ino, open: open, readable: true, writable: false,
                                     holdsWriter: false, env: env)
        }
        XCTAssertEqual(h.fh, fixed)
        let r = CollectingReplier()
        try core.read(ino: ino, fh: fixed, offset: 0, size: 3, replier: r)
        XCTAssertEqual(r.data, [9, 8, 7])
        let next = try core.open(ino: ino, flags: O_RDONLY, ctx: rootCtx)
        XCTAssertGreaterThan(next.fh >> FileHandleSlots.slotBits, gen + 5)
        h.reader.close()
        _ = core.takeFileHandle(fixed)
        try core.release(ino: ino, fh: next.fh)
        try core.release(ino: ino, fh: o.fh)
    }
}
