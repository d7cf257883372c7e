// Inode table, caches and namespace operations of the core, against InProcessFileSystem.
import XCTest
#if canImport(Glibc)
import Glibc
#endif
import CurvineClient
import CurvineServer
@testable import CurvineFSCore

final class NamespaceTests: CoreTestCase {
    func testRootIsInodeOneAndNeverForgotten() throws {
        let (a, _) = try core.getattr(ino: 1, fh: nil)
        XCTAssertEqual(a.ino, 1)
        XCTAssertTrue(a.isDirectory)
        core.forget(ino: 1, nlookup: 1000)
        XCTAssertNotNil(core.lookupCount(ino: 1))
        XCTAssertNoThrow(try core.getattr(ino: 1, fh: nil))
    }

    func testLookupCountsAndForget() throws {
        let d = try mkdir(1, "d")
        XCTAssertEqual(core.lookupCount(ino: d.ino), 1)
        let e1 = try core.lookup(parent: 1, name: "d", ctx: rootCtx)
        let e2 = try core.lookup(parent: 1, name: "d", ctx: rootCtx)
        XCTAssertEqual(e1.ino, d.ino)
        XCTAssertEqual(e2.ino, d.ino)
        XCTAssertEqual(core.lookupCount(ino: d.ino), 3)
        // A child pins its parent even when the parent's own count drops to 0.
        let f = try writeFile(d.ino, "f", [1, 2, 3])
        core.forget(ino: d.ino, nlookup: 3)
        XCTAssertNotNil(core.lookupCount(ino: d.ino), "parent of a known child stays")
        XCTAssertEqual(core.lookupCount(ino: d.ino), 0)
        core.forget(ino: f, nlookup: 1)
        XCTAssertNil(core.lookupCount(ino: f))
        XCTAssertNil(core.lookupCount(ino: d.ino), "parent goes with its last child")
        assertErrno(ESTALE, try core.getattr(ino: f, fh: nil))
        // Looked up again: same inode number (the Curvine id).
        let again = try core.lookup(parent: 1, name: "d", ctx: rootCtx)
        XCTAssertEqual(again.ino, d.ino)
    }

    func testInodeNumbersAreCurvineIds() throws {
        let d = try mkdir(1, "x")
        let s = try fs.fileStatus("/x")
        XCTAssertEqual(d.ino, UInt64(s.id))
        XCTAssertEqual(d.attr.ino, d.ino)
    }

    func testGetattrCacheHonoursTTL() throws {
        var c = defaultConfig()
        c.attrTimeout = 1
        c.entryTimeout = 1
        try remount(c)
        let ino = try writeFile(1, "f", [0])
        _ = try core.getattr(ino: ino, fh: nil)
        faults.resetCounts()
        // Changed behind the core's back (another client).
        _ = try fs.setAttr("/f", SetAttrOptions(mode: 0o600))
        let (a1, ttl) = try core.getattr(ino: ino, fh: nil)
        XCTAssertEqual(ttl, 1)
        XCTAssertEqual(a1.mode & 0o777, 0o644, "served from cache within the TTL")
        XCTAssertEqual(faults.calls("fileStatus"), 0)
        usleep(1_050_000)
        let (a2, _) = try core.getattr(ino: ino, fh: nil)
        XCTAssertEqual(a2.mode & 0o777, 0o600, "refetched after the TTL")
        XCTAssertEqual(faults.calls("fileStatus"), 1)
    }

    func testEntryCacheAvoidsRoundTrips() throws {
        var c = defaultConfig()
        c.entryTimeout = 5
        c.attrTimeout = 5
        try remount(c)
        _ = try writeFile(1, "f", [1])
        _ = try core.lookup(parent: 1, name: "f", ctx: rootCtx)
        faults.resetCounts()
        for _ in 0..<10 { _ = try core.lookup(parent: 1, name: "f", ctx: rootCtx) }
        XCTAssertEqual(faults.calls("fileStatus"), 0)
    }

    func testNegativeEntries() throws {
        // negative_timeout 0: ENOENT.
        assertErrno(ENOENT, try core.lookup(parent: 1, name: "missing", ctx: rootCtx))
        var c = defaultConfig()
        c.negativeTimeout = 1
        try remount(c)
        let e = try core.lookup(parent: 1, name: "missing", ctx: rootCtx)
        XCTAssertEqual(e.ino, 0)
        XCTAssertEqual(e.entryTimeout, 1)
        // Created by another client: still negative here until the TTL passes.
        _ = try fs.mkdir("/missing", mode: 0o755, owner: "", group: "", createParent: false)
        faults.resetCounts()
        XCTAssertEqual(try core.lookup(parent: 1, name: "missing", ctx: rootCtx).ino, 0)
        XCTAssertEqual(faults.calls("fileStatus"), 0)
        usleep(1_050_000)
        XCTAssertNotEqual(try core.lookup(parent: 1, name: "missing", ctx: rootCtx).ino, 0)
        // Our own create replaces a negative entry at once.
        XCTAssertEqual(try core.lookup(parent: 1, name: "new", ctx: rootCtx).ino, 0)
        let d = try mkdir(1, "new")
        XCTAssertEqual(try core.lookup(parent: 1, name: "new", ctx: rootCtx).ino, d.ino)
        // And unlink makes one.
        try core.rmdir(parent: 1, name: "new", ctx: rootCtx)
        XCTAssertEqual(try core.lookup(parent: 1, name: "new", ctx: rootCtx).ino, 0)
    }

    func testErrnos() throws {
        let d = try mkdir(1, "d")
        _ = try writeFile(d.ino, "f", [1])
        assertErrno(EEXIST, try mkdir(1, "d"))
        assertErrno(ENOTEMPTY, try core.rmdir(parent: 1, name: "d", ctx: rootCtx))
        assertErrno(EISDIR, try core.unlink(parent: 1, name: "d", ctx: rootCtx))
        assertErrno(ENOTDIR, try core.rmdir(parent: d.ino, name: "f", ctx: rootCtx))
        assertErrno(ENOENT, try core.unlink(parent: 1, name: "nope", ctx: rootCtx))
        assertErrno(ENOENT, try core.rmdir(parent: 1, name: "nope", ctx: rootCtx))
        assertErrno(ENOENT, try core.lookup(parent: 1, name: "nope", ctx: rootCtx))
        let f = try core.lookup(parent: d.ino, name: "f", ctx: rootCtx)
        assertErrno(ENOTDIR, try core.mkdir(parent: f.ino, name: "x", mode: 0o755, ctx: rootCtx))
        assertErrno(ENOTDIR, try core.lookup(parent: f.ino, name: "x", ctx: rootCtx))
        assertErrno(ENOTDIR, try core.opendir(ino: f.ino, ctx: rootCtx))
        assertErrno(EISDIR, try core.open(ino: d.ino, flags: O_RDONLY, ctx: rootCtx))
        let long = String(repeating: "x", count: 256)
        assertErrno(ENAMETOOLONG, try core.lookup(parent: 1, name: long, ctx: rootCtx))
        assertErrno(ENAMETOOLONG, try core.mkdir(parent: 1, name: long, mode: 0o755, ctx: rootCtx))
        assertErrno(ENAMETOOLONG, try core.create(parent: 1, name: long, mode: 0o644, flags: O_WRONLY, ctx: rootCtx))
        XCTAssertNoThrow(try core.mkdir(parent: 1, name: String(repeating: "y", count: 255), mode: 0o755, ctx: rootCtx))
        try core.unlink(parent: d.ino, name: "f", ctx: rootCtx)
        try core.rmdir(parent: 1, name: "d", ctx: rootCtx)
        assertErrno(ENOENT, try core.lookup(parent: 1, name: "d", ctx: rootCtx))
    }

    func testPagedReaddirEveryNameOnceAndResumes() throws {
        var c = defaultConfig()
        c.listLimit = 7
        try remount(c)
        let d = try mkdir(1, "big")
        var expected: [String] = []
        for i in 0..<100 {
            let name = String(format: "f%03d", i)
            expected.append(name)
            let (e, o) = try core.create(parent: d.ino, name: name, mode: 0o644, flags: O_WRONLY, ctx: rootCtx)
            try core.release(ino: e.ino, fh: o.fh)
        }
        faults.resetCounts()
        // Kernel buffers that hold 5 entries: every call stops mid-page.
        let o = try core.opendir(ino: d.ino, ctx: rootCtx)
        var seen: [DirEntryRecord] = []
        var off: Int64 = 0
        var calls = 0
        while true {
            var r = CollectingDirReplier(capacity: 5)
            try core.readdir(ino: d.ino, fh: o.fh, offset: off, plus: false, replier: &r)
            calls += 1
            if r.entries.isEmpty { break }
            seen += r.entries
            off = r.entries.last!.nextOffset
        }
        XCTAssertEqual(seen.prefix(2).map(\.name), [".", ".."])
        let names = seen.dropFirst(2).map(\.name)
        XCTAssertEqual(names, expected, "every name exactly once, in order")
        XCTAssertEqual(Set(seen.map(\.nextOffset)).count, seen.count, "cookies are unique")
        XCTAssertEqual(faults.calls("listPage"), 15, "100 entries in pages of 7 = 15 pages (last one short)")
        XCTAssertTrue(seen.dropFirst(2).allSatisfy { $0.mode & UInt32(S_IFMT) == UInt32(S_IFREG) && $0.ino > 1 })
        // Resume from an offset in the middle of a page, then seek back (restart).
        var r1 = CollectingDirReplier(capacity: 3)
        try core.readdir(ino: d.ino, fh: o.fh, offset: 2 + 50, plus: false, replier: &r1)
        XCTAssertEqual(r1.entries.map(\.name), ["f050", "f051", "f052"])
        var r2 = CollectingDirReplier(capacity: 3)
        try core.readdir(ino: d.ino, fh: o.fh, offset: 2 + 10, plus: false, replier: &r2)
        XCTAssertEqual(r2.entries.map(\.name), ["f010", "f011", "f012"])
        var r3 = CollectingDirReplier(capacity: 4)
        try core.readdir(ino: d.ino, fh: o.fh, offset: 0, plus: false, replier: &r3)
        XCTAssertEqual(r3.entries.map(\.name), [".", "..", "f000", "f001"])
        core.releasedir(ino: d.ino, fh: o.fh)
    }

    func testReaddirPlusTakesOneReferencePerAcceptedEntry() throws {
        var c = defaultConfig()
        c.listLimit = 4
        try remount(c)
        let d = try mkdir(1, "d")
        var inos: [String: UInt64] = [:]
        for i in 0..<10 {
            let (e, o) = try core.create(parent: d.ino, name: "n\(i)", mode: 0o644, flags: O_WRONLY, ctx: rootCtx)
            try core.release(ino: e.ino, fh: o.fh)
            core.forget(ino: e.ino, nlookup: 1)
            inos["n\(i)"] = e.ino
        }
        let o = try core.opendir(ino: d.ino, ctx: rootCtx)
        var off: Int64 = 0
        var all: [DirEntryRecord] = []
        while true {
            var r = CollectingDirReplier(capacity: 3)
            try core.readdir(ino: d.ino, fh: o.fh, offset: off, plus: true, replier: &r)
            if r.entries.isEmpty { break }
            all += r.entries
            XCTAssertEqual(r.entries.filter(\.hasEntry).count, r.entryObjects.count)
            for e in r.entryObjects { XCTAssertEqual(e.attr.ino, e.ino) }
            off = r.entries.last!.nextOffset
        }
        core.releasedir(ino: d.ino, fh: o.fh)
        XCTAssertEqual(all.count, 12)
        XCTAssertFalse(all[0].hasEntry)
        XCTAssertFalse(all[1].hasEntry)
        for (name, ino) in inos {
            XCTAssertEqual(core.lookupCount(ino: ino), 1, "\(name): one reference from readdirplus (rejected adds undone)")
            XCTAssertEqual(all.first { $0.name == name }?.ino, ino)
        }
    }

    func testReaddirHoldsOnlyOnePage() throws {
        var c = defaultConfig()
        c.listLimit = 10
        try remount(c)
        let d = try mkdir(1, "d")
        for i in 0..<95 { _ = try fs.mkdir("/d/e\(i)", mode: 0o755, owner: "", group: "", createParent: false) }
        let o = try core.opendir(ino: d.ino, ctx: rootCtx)
        var r = CollectingDirReplier(capacity: 60)
        try core.readdir(ino: d.ino, fh: o.fh, offset: 0, plus: false, replier: &r)
        let h = core.dirHandle(o.fh)!
        XCTAssertLessThanOrEqual(h.page.count, 10)
        core.releasedir(ino: d.ino, fh: o.fh)
        XCTAssertEqual(try listNames(d.ino).count, 95)
    }

    func testRenamePlainNoReplaceExchange() throws {
        let a = try writeFile(1, "a", [1])
        let b = try writeFile(1, "b", [2, 2])
        // Plain rename over an existing file replaces it.
        try core.rename(parent: 1, name: "a", newParent: 1, newName: "b", flags: 0, ctx: rootCtx)
        assertErrno(ENOENT, try core.lookup(parent: 1, name: "a", ctx: rootCtx))
        let nb = try core.lookup(parent: 1, name: "b", ctx: rootCtx)
        XCTAssertEqual(nb.ino, a)
        XCTAssertEqual(try readAll(nb.ino), [1])
        _ = b
        // NOREPLACE.
        _ = try writeFile(1, "c", [3, 3, 3])
        assertErrno(EEXIST, try core.rename(parent: 1, name: "b", newParent: 1, newName: "c", flags: 1, ctx: rootCtx))
        try core.rename(parent: 1, name: "b", newParent: 1, newName: "d", flags: 1, ctx: rootCtx)
        // EXCHANGE.
        let d1 = try mkdir(1, "dir1")
        _ = try writeFile(d1.ino, "inner", [9])
        try core.rename(parent: 1, name: "c", newParent: 1, newName: "dir1", flags: 2, ctx: rootCtx)
        let afterDir = try core.lookup(parent: 1, name: "c", ctx: rootCtx)
        XCTAssertTrue(afterDir.attr.isDirectory)
        XCTAssertEqual(afterDir.ino, d1.ino)
        XCTAssertEqual(try listNames(afterDir.ino), ["inner"])
        let afterFile = try core.lookup(parent: 1, name: "dir1", ctx: rootCtx)
        XCTAssertEqual(try readAll(afterFile.ino), [3, 3, 3])
        assertErrno(ENOENT, try core.rename(parent: 1, name: "d", newParent: 1, newName: "zz", flags: 2, ctx: rootCtx))
        // Flags that are not supported.
        assertErrno(EINVAL, try core.rename(parent: 1, name: "d", newParent: 1, newName: "e", flags: 4, ctx: rootCtx))
        assertErrno(EINVAL, try core.rename(parent: 1, name: "d", newParent: 1, newName: "e", flags: 3, ctx: rootCtx))
        // Type rules.
        assertErrno(EISDIR, try core.rename(parent: 1, name: "d", newParent: 1, newName: "c", flags: 0, ctx: rootCtx))
        assertErrno(ENOTDIR, try core.rename(parent: 1, name: "c", newParent: 1, newName: "d", flags: 0, ctx: rootCtx))
        let sub = try mkdir(afterDir.ino, "sub")
        assertErrno(EINVAL, try core.rename(parent: 1, name: "c", newParent: sub.ino, newName: "x", flags: 0, ctx: rootCtx))
        _ = try mkdir(1, "nonempty")
        _ = try writeFile(try core.lookup(parent: 1, name: "nonempty", ctx: rootCtx).ino, "x", [1])
        _ = try mkdir(1, "empty")
        assertErrno(ENOTEMPTY, try core.rename(parent: 1, name: "empty", newParent: 1, newName: "nonempty", flags: 0, ctx: rootCtx))
        try core.rename(parent: 1, name: "nonempty", newParent: 1, newName: "empty", flags: 0, ctx: rootCtx)
        // Moving a directory keeps paths of its children right.
        let moved = try core.lookup(parent: 1, name: "empty", ctx: rootCtx)
        let x = try core.lookup(parent: moved.ino, name: "x", ctx: rootCtx)
        XCTAssertEqual(try readAll(x.ino), [1])
        try core.rename(parent: 1, name: "empty", newParent: afterDir.ino, newName: "deeper", flags: 0, ctx: rootCtx)
        XCTAssertEqual(try readAll(x.ino), [1], "open-by-inode follows the rename")
        XCTAssertEqual(try fs.fileStatus("/c/deeper/x").length, 1)
    }

    func testHardLinksShareInodeAndNlink() throws {
        let data = patternBytes(5000, seed: 3)
        let f = try writeFile(1, "orig", data)
        let d = try mkdir(1, "d")
        let l = try core.link(ino: f, newParent: d.ino, newName: "alias", ctx: rootCtx)
        XCTAssertEqual(l.ino, f)
        XCTAssertEqual(l.attr.nlink, 2)
        XCTAssertEqual(try core.getattr(ino: f, fh: nil).0.nlink, 2)
        XCTAssertEqual(try readAll(l.ino), data)
        try core.unlink(parent: 1, name: "orig", ctx: rootCtx)
        // The inode lives on under its other name (the alias becomes its path).
        let (a, _) = try core.getattr(ino: f, fh: nil)
        XCTAssertEqual(a.nlink, 1)
        XCTAssertEqual(try readAll(f), data)
        assertErrno(EPERM, try core.link(ino: d.ino, newParent: 1, newName: "dirlink", ctx: rootCtx))
        assertErrno(EEXIST, try core.link(ino: f, newParent: 1, newName: "d", ctx: rootCtx))
    }

    func testSymlinkReadlink() throws {
        let e = try core.symlink(target: "../some/where", parent: 1, name: "ln", ctx: rootCtx)
        XCTAssertTrue(e.attr.isSymlink)
        XCTAssertEqual(e.attr.size, UInt64("../some/where".utf8.count))
        XCTAssertEqual(try core.readlink(ino: e.ino), "../some/where")
        let f = try writeFile(1, "plain", [1])
        assertErrno(EINVAL, try core.readlink(ino: f))
        assertErrno(EEXIST, try core.symlink(target: "x", parent: 1, name: "ln", ctx: rootCtx))
        let l = try core.lookup(parent: 1, name: "ln", ctx: rootCtx)
        XCTAssertEqual(l.ino, e.ino)
        try core.unlink(parent: 1, name: "ln", ctx: rootCtx)
        assertErrno(ENOENT, try core.lookup(parent: 1, name: "ln", ctx: rootCtx))
    }

    func testMknod() throws {
        let fifo = try core.mknod(parent: 1, name: "p", mode: UInt32(S_IFIFO) | 0o644, rdev: 0, ctx: rootCtx)
        XCTAssertEqual(fifo.attr.fileType, UInt32(S_IFIFO))
        let reg = try core.mknod(parent: 1, name: "r", mode: UInt32(S_IFREG) | 0o600, rdev: 0, ctx: rootCtx)
        XCTAssertTrue(reg.attr.isRegular)
        XCTAssertTrue(try fs.fileStatus("/r").isComplete)
        XCTAssertEqual(try readAll(reg.ino), [])
        let dir = try core.mknod(parent: 1, name: "dd", mode: UInt32(S_IFDIR) | 0o755, rdev: 0, ctx: rootCtx)
        XCTAssertTrue(dir.attr.isDirectory)
    }

    func testUmaskAndSetgidInheritance() throws {
        var ctx = rootCtx
        ctx.umask = 0o027
        let d = try core.mkdir(parent: 1, name: "d", mode: 0o777, ctx: ctx)
        XCTAssertEqual(d.attr.mode & 0o7777, 0o750)
        _ = try core.setattr(ino: d.ino, changes: SetAttrChanges(mode: 0o2775, gid: 4242), ctx: rootCtx)
        let sub = try core.mkdir(parent: d.ino, name: "s", mode: 0o755, ctx: rootCtx)
        XCTAssertEqual(sub.attr.gid, 4242, "group inherited from a setgid directory")
        XCTAssertEqual(sub.attr.mode & 0o2000, 0o2000, "setgid inherited by subdirectories")
        let (f, o) = try core.create(parent: d.ino, name: "f", mode: 0o644, flags: O_WRONLY, ctx: rootCtx)
        try core.release(ino: f.ino, fh: o.fh)
        XCTAssertEqual(f.attr.gid, 4242)
    }

    func testUnlinkOfOpenFileDefersDelete() throws {
        let data = patternBytes(200_000, seed: 9)
        let ino = try writeFile(1, "busy", data)
        let o = try core.open(ino: ino, flags: O_RDONLY, ctx: rootCtx)
        try core.unlink(parent: 1, name: "busy", ctx: rootCtx)
        assertErrno(ENOENT, try core.lookup(parent: 1, name: "busy", ctx: rootCtx))
        XCTAssertEqual(try listNames(1), [], "the hidden name is not listed")
        // The handle still reads everything.
        XCTAssertEqual(try read(ino, o.fh, 0, 300_000), data)
        XCTAssertEqual(try core.getattr(ino: ino, fh: o.fh).0.size, UInt64(data.count))
        // The name is free for a new file at once.
        let fresh = try writeFile(1, "busy", [7])
        XCTAssertNotEqual(fresh, ino)
        try core.release(ino: ino, fh: o.fh)
        // Deleted on the master at last release.
        let left = try fs.listPage("/", startAfter: nil, limit: 100).map(\.name)
        XCTAssertEqual(left, ["busy"])
        XCTAssertEqual(try readAll(fresh), [7])
    }

    func testRenameOverOpenFileKeepsItsData() throws {
        let old = patternBytes(10_000, seed: 4)
        let victim = try writeFile(1, "target", old)
        _ = try writeFile(1, "src", [1, 2, 3])
        let o = try core.open(ino: victim, flags: O_RDONLY, ctx: rootCtx)
        try core.rename(parent: 1, name: "src", newParent: 1, newName: "target", flags: 0, ctx: rootCtx)
        XCTAssertEqual(try read(victim, o.fh, 0, 20_000), old)
        let t = try core.lookup(parent: 1, name: "target", ctx: rootCtx)
        XCTAssertEqual(try readAll(t.ino), [1, 2, 3])
        try core.release(ino: victim, fh: o.fh)
        XCTAssertEqual(try fs.listPage("/", startAfter: nil, limit: 100).map(\.name), ["target"])
    }

    func testStatfs() throws {
        let s = try core.statfs()
        XCTAssertEqual(s.bsize, 4096)
        XCTAssertEqual(s.frsize, 4096)
        XCTAssertEqual(s.namelen, 255)
        XCTAssertGreaterThan(s.ffree, 0)
        XCTAssertLessThanOrEqual(s.bavail, s.blocks)
    }

    func testFsPathSubtreeIsCreatedAndRooted() throws {
        var c = defaultConfig()
        c.fsPath = "/datasets/imagenet/"
        try remount(c)
        XCTAssertTrue(try fs.fileStatus("/datasets/imagenet").isDirectory)
        _ = try writeFile(1, "x", [1])
        XCTAssertEqual(try fs.fileStatus("/datasets/imagenet/x").length, 1)
        XCTAssertEqual(try listNames(1), ["x"])
    }

    func testNamesAreBytes() throws {
        // NFC and NFD spellings of "é" are different names, as on Linux.
        let nfc = "caf\u{e9}", nfd = "cafe\u{301}"
        _ = try writeFile(1, nfc, [1])
        _ = try writeFile(1, nfd, [2, 2])
        XCTAssertEqual(try readAll(try core.lookup(parent: 1, name: nfc, ctx: rootCtx).ino), [1])
        XCTAssertEqual(try readAll(try core.lookup(parent: 1, name: nfd, ctx: rootCtx).ino), [2, 2])
        XCTAssertEqual(try listNames(1).count, 2)
    }

    func testFailedRenameOverOpenFileRestoresTheDestination() throws {
        let victim = try writeFile(1, "target", [5, 5])
        _ = try writeFile(1, "src", [1])
        let o = try core.open(ino: victim, flags: O_RDONLY, ctx: rootCtx)
        // The hiding rename goes through; the real one fails.
        faults.fail("rename", with: .remote(.io, "journal failure"), times: 1, skip: 1)
        assertErrno(EIO, try core.rename(parent: 1, name: "src", newParent: 1, newName: "target", flags: 0, ctx: rootCtx))
        try core.release(ino: victim, fh: o.fh)
        XCTAssertEqual(try fs.listPage("/", startAfter: nil, limit: 10).map(\.name), ["src", "target"])
        XCTAssertEqual(try readAll(try core.lookup(parent: 1, name: "target", ctx: rootCtx).ino), [5, 5])
    }

    func testExchangeDirectoriesKeepsChildPaths() throws {
        let a = try mkdir(1, "a")
        let b = try mkdir(1, "b")
        let fa = try writeFile(a.ino, "x", [1])
        let fb = try writeFile(b.ino, "y", [2])
        try core.rename(parent: 1, name: "a", newParent: 1, newName: "b", flags: 2, ctx: rootCtx)
        XCTAssertEqual(try core.lookup(parent: 1, name: "b", ctx: rootCtx).ino, a.ino)
        XCTAssertEqual(try readAll(fa), [1])
        XCTAssertEqual(try readAll(fb), [2])
        XCTAssertEqual(try fs.fileStatus("/b/x").length, 1)
        XCTAssertEqual(try fs.fileStatus("/a/y").length, 1)
        // Exchanging a name with itself is a no-op.
        try core.rename(parent: 1, name: "a", newParent: 1, newName: "a", flags: 2, ctx: rootCtx)
        try core.rename(parent: 1, name: "a", newParent: 1, newName: "a", flags: 0, ctx: rootCtx)
    }

    func testMetaCacheServesPastTheAttrTTL() throws {
        var c = defaultConfig()
        c.attrTimeout = 0.05
        c.entryTimeout = 0.05
        c.enableMetaCache = true
        c.metaCacheTTL = 30
        try remount(c)
        let f = try writeFile(1, "f", [1])
        _ = try core.lookup(parent: 1, name: "f", ctx: rootCtx)
        usleep(100_000)
        faults.resetCounts()
        let e = try core.lookup(parent: 1, name: "f", ctx: rootCtx)
        XCTAssertEqual(e.ino, f)
        XCTAssertEqual(e.entryTimeout, 0.05, "the kernel still gets the configured TTL")
        _ = try core.getattr(ino: f, fh: nil)
        XCTAssertEqual(faults.calls("fileStatus"), 0)
        // Local changes update the cache.
        _ = try core.setattr(ino: f, changes: SetAttrChanges(mode: 0o600), ctx: rootCtx)
        XCTAssertEqual(try core.getattr(ino: f, fh: nil).0.mode & 0o777, 0o600)
    }

    func testReaddirRetriesAfterAPageFailure() throws {
        var c = defaultConfig()
        c.listLimit = 7
        try remount(c)
        let d = try mkdir(1, "d")
        for i in 0..<30 { _ = try fs.mkdir(String(format: "/d/e%02d", i), mode: 0o755, owner: "", group: "", createParent: false) }
        let o = try core.opendir(ino: d.ino, ctx: rootCtx)
        var names: [String] = []
        var off: Int64 = 0
        // Fails the third page (at entry 14) and, the call after, the retry of it.
        faults.fail("listPage", with: .transport("reset"), times: 2, skip: 2)
        var failures = 0
        while true {
            var r = CollectingDirReplier(capacity: 5)
            do {
                try core.readdir(ino: d.ino, fh: o.fh, offset: off, plus: true, replier: &r)
            } catch {
                failures += 1
                XCTAssertEqual(r.entries.count, 0, "an error is thrown only when nothing was added")
                continue
            }
            if r.entries.isEmpty { break }
            names += r.entries.map(\.name)
            off = r.entries.last!.nextOffset
        }
        core.releasedir(ino: d.ino, fh: o.fh)
        XCTAssertEqual(failures, 1, "first failure ends a call short, the second is thrown")
        for i in 0..<30 {
            let e = try core.lookup(parent: d.ino, name: String(format: "e%02d", i), ctx: rootCtx)
            XCTAssertEqual(core.lookupCount(ino: e.ino), 2, "one reference from readdirplus, one from this lookup")
        }
        XCTAssertEqual(names.filter { $0 != "." && $0 != ".." }, (0..<30).map { String(format: "e%02d", $0) })
    }

    func testUnlinkOfOpenFileWhoseDentryWentStale() throws {
        var c = defaultConfig()
        c.entryTimeout = 0
        c.attrTimeout = 0
        try remount(c)
        let ino = try writeFile(1, "f", [1, 2, 3])
        let o = try core.open(ino: ino, flags: O_RDONLY, ctx: rootCtx)
        // Another client renames it; our lookup of the old name drops the cached dentry.
        try fs.rename("/f", to: "/g", flags: [])
        assertErrno(ENOENT, try core.lookup(parent: 1, name: "f", ctx: rootCtx))
        // Unlinking it under its new name still hides exactly this inode...
        try core.unlink(parent: 1, name: "g", ctx: rootCtx)
        XCTAssertEqual(try read(ino, o.fh, 0, 10), [1, 2, 3])
        // ...and the last release deletes the hidden name, nothing else.
        _ = try writeFile(1, "f", [9])
        try core.release(ino: ino, fh: o.fh)
        XCTAssertEqual(try fs.listPage("/", startAfter: nil, limit: 10).map(\.name), ["f"])
    }
}
