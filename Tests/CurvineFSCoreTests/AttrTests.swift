// setattr rules, permissions, xattrs, read-only mounts and error paths.
import XCTest
#if canImport(Glibc)
import Glibc
#endif
import CurvineClient
import CurvineServer
@testable import CurvineFSCore

final class AttrTests: CoreTestCase {
    let alice = RequestContext(uid: 1000, gid: 1000, pid: 0, umask: 0, groups: [2000])
    let bob = RequestContext(uid: 1001, gid: 1001, pid: 0, umask: 0, groups: [])

    /// A world-writable directory with a file owned by alice.
    func aliceFile(mode: UInt32 = 0o644) throws -> (dir: UInt64, file: UInt64) {
        let d = try mkdir(1, "shared", mode: 0o777)
        _ = try core.setattr(ino: d.ino, changes: SetAttrChanges(mode: 0o777), ctx: rootCtx)
        let f = try writeFile(d.ino, "f", [1, 2, 3], ctx: alice, mode: mode)
        return (d.ino, f)
    }

    func testOwnerFromCaller() throws {
        let (_, f) = try aliceFile()
        let (a, _) = try core.getattr(ino: f, fh: nil)
        XCTAssertEqual(a.uid, 1000)
        XCTAssertEqual(a.gid, 1000)
        XCTAssertEqual(a.mode & 0o777, 0o644)
    }

    func testChmodRules() throws {
        let (_, f) = try aliceFile()
        assertErrno(EPERM, try core.setattr(ino: f, changes: SetAttrChanges(mode: 0o600), ctx: bob))
        var (a, _) = try core.setattr(ino: f, changes: SetAttrChanges(mode: 0o600), ctx: alice)
        XCTAssertEqual(a.mode & 0o7777, 0o600)
        // Owner not in the file's group: setgid is dropped.
        _ = try core.setattr(ino: f, changes: SetAttrChanges(gid: 3000), ctx: rootCtx)
        (a, _) = try core.setattr(ino: f, changes: SetAttrChanges(mode: 0o2755), ctx: alice)
        XCTAssertEqual(a.mode & 0o7777, 0o755)
        // Root keeps it.
        (a, _) = try core.setattr(ino: f, changes: SetAttrChanges(mode: 0o2755), ctx: rootCtx)
        XCTAssertEqual(a.mode & 0o7777, 0o2755)
    }

    func testChownRules() throws {
        let (_, f) = try aliceFile()
        assertErrno(EPERM, try core.setattr(ino: f, changes: SetAttrChanges(uid: 1001), ctx: alice))
        assertErrno(EPERM, try core.setattr(ino: f, changes: SetAttrChanges(gid: 1001), ctx: bob))
        assertErrno(EPERM, try core.setattr(ino: f, changes: SetAttrChanges(gid: 3000), ctx: alice))  // not a member
        var (a, _) = try core.setattr(ino: f, changes: SetAttrChanges(gid: 2000), ctx: alice)
        XCTAssertEqual(a.gid, 2000, "owner may chgrp to a supplementary group")
        (a, _) = try core.setattr(ino: f, changes: SetAttrChanges(uid: 1001), ctx: rootCtx)
        XCTAssertEqual(a.uid, 1001)
        // chown drops setuid, and setgid when group-executable.
        _ = try core.setattr(ino: f, changes: SetAttrChanges(mode: 0o6755), ctx: rootCtx)
        (a, _) = try core.setattr(ino: f, changes: SetAttrChanges(gid: 2000), ctx: rootCtx)
        XCTAssertEqual(a.mode & 0o7777, 0o755)
        _ = try core.setattr(ino: f, changes: SetAttrChanges(mode: 0o6745), ctx: rootCtx)
        (a, _) = try core.setattr(ino: f, changes: SetAttrChanges(uid: 1000), ctx: rootCtx)
        XCTAssertEqual(a.mode & 0o7777, 0o2745, "setgid without g+x is kept")
    }

    func testUtimesRules() throws {
        let (_, f) = try aliceFile(mode: 0o666)
        assertErrno(EPERM, try core.setattr(ino: f, changes: SetAttrChanges(mtime: .at(sec: 1000, nsec: 0)), ctx: bob))
        // UTIME_NOW needs only write permission.
        XCTAssertNoThrow(try core.setattr(ino: f, changes: SetAttrChanges(atime: .now, mtime: .now), ctx: bob))
        let (a, _) = try core.setattr(ino: f, changes: SetAttrChanges(atime: .at(sec: 1_600_000_000, nsec: 250_000_000),
                                                                      mtime: .at(sec: 1_500_000_000, nsec: 0)), ctx: alice)
        XCTAssertEqual(a.mtimeSec, 1_500_000_000)
        XCTAssertEqual(a.atimeSec, 1_600_000_000)
        XCTAssertEqual(a.atimeNsec, 250_000_000)
        _ = try core.setattr(ino: f, changes: SetAttrChanges(mode: 0o644), ctx: alice)
        assertErrno(EACCES, try core.setattr(ino: f, changes: SetAttrChanges(mtime: .now), ctx: bob))
    }

    func testPermissionChecks() throws {
        let (d, f) = try aliceFile(mode: 0o640)
        // bob: no read, no write (other bits 0).
        assertErrno(EACCES, try core.open(ino: f, flags: O_RDONLY, ctx: bob))
        assertErrno(EACCES, try core.open(ino: f, flags: O_WRONLY, ctx: bob))
        assertErrno(EACCES, try core.access(ino: f, mask: 4, ctx: bob))
        XCTAssertNoThrow(try core.access(ino: f, mask: 0, ctx: bob))
        // Group member reads.
        let grp = RequestContext(uid: 1002, gid: 1000, pid: 0, umask: 0, groups: [])
        let o = try core.open(ino: f, flags: O_RDONLY, ctx: grp)
        try core.release(ino: f, fh: o.fh)
        assertErrno(EACCES, try core.open(ino: f, flags: O_WRONLY, ctx: grp))
        // Root bypasses R/W but needs an x bit for X.
        XCTAssertNoThrow(try core.access(ino: f, mask: 6, ctx: rootCtx))
        assertErrno(EACCES, try core.access(ino: f, mask: 1, ctx: rootCtx))
        // Search permission on the directory.
        _ = try core.setattr(ino: d, changes: SetAttrChanges(mode: 0o700, uid: 1000), ctx: rootCtx)
        assertErrno(EACCES, try core.lookup(parent: d, name: "f", ctx: bob))
        assertErrno(EACCES, try core.create(parent: d, name: "g", mode: 0o644, flags: O_WRONLY, ctx: bob))
        assertErrno(EACCES, try core.opendir(ino: d, ctx: bob))
        XCTAssertNoThrow(try core.lookup(parent: d, name: "f", ctx: alice))
        // Sticky directory: bob may not remove alice's file.
        _ = try core.setattr(ino: d, changes: SetAttrChanges(mode: 0o1777), ctx: rootCtx)
        assertErrno(EPERM, try core.unlink(parent: d, name: "f", ctx: bob))
        XCTAssertNoThrow(try core.unlink(parent: d, name: "f", ctx: alice))
    }

    func testPermissionChecksCanBeOff() throws {
        var c = defaultConfig()
        c.checkPermission = false
        try remount(c)
        let (_, f) = try aliceFile(mode: 0o600)
        let o = try core.open(ino: f, flags: O_RDWR, ctx: bob)
        try core.release(ino: f, fh: o.fh)
    }

    func testXattrs() throws {
        let (_, f) = try aliceFile()
        assertErrno(ENODATA, try core.getxattr(ino: f, name: "user.k"))
        try [UInt8]("v1".utf8).withUnsafeBytes { try core.setxattr(ino: f, name: "user.k", value: $0, flags: 0, ctx: alice) }
        XCTAssertEqual(try core.getxattr(ino: f, name: "user.k"), Array("v1".utf8))
        // XATTR_CREATE on an existing name, XATTR_REPLACE on a missing one.
        assertErrno(EEXIST, try [UInt8]("x".utf8).withUnsafeBytes { try core.setxattr(ino: f, name: "user.k", value: $0, flags: 1, ctx: alice) })
        assertErrno(ENODATA, try [UInt8]("x".utf8).withUnsafeBytes { try core.setxattr(ino: f, name: "user.none", value: $0, flags: 2, ctx: alice) })
        try [UInt8]("v2".utf8).withUnsafeBytes { try core.setxattr(ino: f, name: "user.k", value: $0, flags: 2, ctx: alice) }
        try [UInt8]().withUnsafeBytes { try core.setxattr(ino: f, name: "user.empty", value: $0, flags: 1, ctx: alice) }
        XCTAssertEqual(try core.getxattr(ino: f, name: "user.k"), Array("v2".utf8))
        XCTAssertEqual(try core.getxattr(ino: f, name: "user.empty"), [])
        XCTAssertEqual(try core.listxattr(ino: f), Array("user.empty\0user.k\0".utf8))
        // Other namespaces.
        assertErrno(ENODATA, try core.getxattr(ino: f, name: "security.capability"))
        assertErrno(ENODATA, try core.getxattr(ino: f, name: "system.posix_acl_access"))
        assertErrno(EOPNOTSUPP, try [UInt8]("x".utf8).withUnsafeBytes { try core.setxattr(ino: f, name: "security.selinux", value: $0, flags: 0, ctx: rootCtx) })
        assertErrno(EOPNOTSUPP, try [UInt8]("x".utf8).withUnsafeBytes { try core.setxattr(ino: f, name: "trusted.x", value: $0, flags: 0, ctx: rootCtx) })
        // Permission: bob cannot write alice's 0644 file's xattrs.
        assertErrno(EACCES, try [UInt8]("x".utf8).withUnsafeBytes { try core.setxattr(ino: f, name: "user.b", value: $0, flags: 0, ctx: bob) })
        // Remove.
        try core.removexattr(ino: f, name: "user.k", ctx: alice)
        assertErrno(ENODATA, try core.removexattr(ino: f, name: "user.k", ctx: alice))
        assertErrno(ENODATA, try core.getxattr(ino: f, name: "user.k"))
        // Persisted on the master.
        XCTAssertEqual(try fs.fileStatus("/shared/f").xattrs["user.empty"], [])
        // Not on symlinks.
        let l = try core.symlink(target: "f", parent: 1, name: "l", ctx: rootCtx)
        assertErrno(EPERM, try [UInt8]("x".utf8).withUnsafeBytes { try core.setxattr(ino: l.ino, name: "user.k", value: $0, flags: 0, ctx: rootCtx) })
        assertErrno(ENODATA, try core.getxattr(ino: l.ino, name: "user.k"))
    }

    func testReadonlyMountRefusesEveryMutation() throws {
        let d = try mkdir(1, "d")
        let f = try writeFile(1, "f", [1, 2, 3])
        var c = defaultConfig()
        c.readonly = true
        try remount(c)
        let d2 = try core.lookup(parent: 1, name: "d", ctx: rootCtx)
        XCTAssertEqual(d2.ino, d.ino)
        _ = try core.lookup(parent: 1, name: "f", ctx: rootCtx)
        assertErrno(EROFS, try core.mkdir(parent: 1, name: "x", mode: 0o755, ctx: rootCtx))
        assertErrno(EROFS, try core.mknod(parent: 1, name: "x", mode: UInt32(S_IFREG) | 0o644, rdev: 0, ctx: rootCtx))
        assertErrno(EROFS, try core.create(parent: 1, name: "x", mode: 0o644, flags: O_WRONLY, ctx: rootCtx))
        assertErrno(EROFS, try core.symlink(target: "f", parent: 1, name: "x", ctx: rootCtx))
        assertErrno(EROFS, try core.link(ino: f, newParent: 1, newName: "x", ctx: rootCtx))
        assertErrno(EROFS, try core.unlink(parent: 1, name: "f", ctx: rootCtx))
        assertErrno(EROFS, try core.rmdir(parent: 1, name: "d", ctx: rootCtx))
        assertErrno(EROFS, try core.rename(parent: 1, name: "f", newParent: 1, newName: "g", flags: 0, ctx: rootCtx))
        assertErrno(EROFS, try core.open(ino: f, flags: O_WRONLY, ctx: rootCtx))
        assertErrno(EROFS, try core.open(ino: f, flags: O_RDONLY | O_TRUNC, ctx: rootCtx))
        assertErrno(EROFS, try core.setattr(ino: f, changes: SetAttrChanges(mode: 0o600), ctx: rootCtx))
        assertErrno(EROFS, try core.setattr(ino: f, changes: SetAttrChanges(size: 0), ctx: rootCtx))
        assertErrno(EROFS, try [UInt8]("x".utf8).withUnsafeBytes { try core.setxattr(ino: f, name: "user.a", value: $0, flags: 0, ctx: rootCtx) })
        assertErrno(EROFS, try core.removexattr(ino: f, name: "user.a", ctx: rootCtx))
        assertErrno(EROFS, try core.fallocate(ino: f, fh: 0, mode: 0, offset: 0, length: 10))
        assertErrno(EROFS, try core.access(ino: f, mask: 2, ctx: rootCtx))
        let o = try core.open(ino: f, flags: O_RDONLY, ctx: rootCtx)
        assertErrno(EROFS, try [UInt8]("x".utf8).withUnsafeBytes { try core.write(ino: f, fh: o.fh, offset: 0, data: $0, ctx: rootCtx) })
        XCTAssertEqual(try read(f, o.fh, 0, 10), [1, 2, 3])
        try core.release(ino: f, fh: o.fh)
        XCTAssertEqual(try fs.fileStatus("/f").length, 3)
    }

    // MARK: error paths through the fault injector

    func testClientErrorsKeepTheirErrno() throws {
        let f = try writeFile(1, "f", [1])
        var c = defaultConfig()
        c.attrTimeout = 0
        c.entryTimeout = 0
        try remount(c)
        _ = try core.lookup(parent: 1, name: "f", ctx: rootCtx)
        faults.fail("fileStatus", with: .timeout("master did not answer"), times: 1)
        assertErrno(ETIMEDOUT, try core.getattr(ino: f, fh: nil))
        XCTAssertNoThrow(try core.getattr(ino: f, fh: nil))
        faults.fail("mkdir", with: .remote(.diskOutOfSpace, "full"), times: 1)
        assertErrno(ENOSPC, try core.mkdir(parent: 1, name: "x", mode: 0o755, ctx: rootCtx))
        faults.fail("listPage", with: .transport("connection reset"), times: 2)
        let o = try core.opendir(ino: 1, ctx: rootCtx)
        var r = CollectingDirReplier(capacity: 100)
        // "." and ".." went out before the page failed: a short listing, not an error.
        try core.readdir(ino: 1, fh: o.fh, offset: 0, plus: false, replier: &r)
        XCTAssertEqual(r.entries.map(\.name), [".", ".."])
        var r1 = CollectingDirReplier(capacity: 100)
        assertErrno(EIO, try core.readdir(ino: 1, fh: o.fh, offset: 2, plus: false, replier: &r1))
        var r2 = CollectingDirReplier(capacity: 100)
        try core.readdir(ino: 1, fh: o.fh, offset: 2, plus: false, replier: &r2)
        XCTAssertEqual(r2.entries.map(\.name), ["f"])
        core.releasedir(ino: 1, fh: o.fh)
        faults.fail("filesystemInfo", with: .remote(.notLeaderMaster, "no leader"), times: 1)
        assertErrno(EAGAIN, try core.statfs())
    }

    func testWriteErrorsSurfaceAtFlushAndRelease() throws {
        let (e, o) = try core.create(parent: 1, name: "f", mode: 0o644, flags: O_WRONLY, ctx: rootCtx)
        faults.fail("addBlock", with: .remote(.noAvailableWorker, "no worker"))
        // write() buffers and succeeds; the failure comes at the durability point.
        let data = patternBytes(64 << 10, seed: 1)
        _ = try? data.withUnsafeBytes { try core.write(ino: e.ino, fh: o.fh, offset: 0, data: $0, ctx: rootCtx) }
        assertErrno(ENOSPC, try core.flush(ino: e.ino, fh: o.fh))
        assertErrno(ENOSPC, try data.withUnsafeBytes { try core.write(ino: e.ino, fh: o.fh, offset: 65536, data: $0, ctx: rootCtx) })
        faults.clear()
        assertErrno(ENOSPC, try core.release(ino: e.ino, fh: o.fh))
        // The lease was released anyway: another open for write works.
        XCTAssertTrue(try fs.fileStatus("/f").isComplete)
        XCTAssertEqual(core.stats.fileHandles, 0)
    }

    func testCompleteFailureAtReleaseIsReported() throws {
        let (e, o) = try core.create(parent: 1, name: "f", mode: 0o644, flags: O_WRONLY, ctx: rootCtx)
        try write(e.ino, o.fh, 0, [1, 2, 3])
        faults.fail("completeFile", with: .remote(.io, "journal write failed"), times: 1)
        assertErrno(EIO, try core.release(ino: e.ino, fh: o.fh))
        XCTAssertEqual(core.stats.fileHandles, 0)
    }

    func testBlockReadFailureFailsTheReadNotTheHandle() throws {
        faults.hideLocalFiles = true
        let data = patternBytes(300_000, seed: 2)
        let ino = try writeFile(1, "f", data)
        let o = try core.open(ino: ino, flags: O_RDONLY, ctx: rootCtx)
        faults.fail("blockRead", with: .remote(.blockNotFound, "gone"), times: 1)
        assertErrno(EIO, try read(ino, o.fh, 0, 4096))
        XCTAssertEqual(try read(ino, o.fh, 0, 4096), Array(data[0..<4096]))
        try core.release(ino: ino, fh: o.fh)
    }

    func testLeaseConflictFailsTheFirstWrite() throws {
        let ino = try writeFile(1, "f", [1])
        // Another client holds the write lease... the in-process master allows several
        // holders, so emulate the conflict the real master reports.
        faults.fail("openForWrite", with: .remote(.lease, "file is being written by another client"), times: 1)
        let o = try core.open(ino: ino, flags: O_WRONLY, ctx: rootCtx)
        assertErrno(EBUSY, try [UInt8]([2]).withUnsafeBytes { try core.write(ino: ino, fh: o.fh, offset: 0, data: $0, ctx: rootCtx) })
        try write(ino, o.fh, 0, [3])
        try core.release(ino: ino, fh: o.fh)
        XCTAssertEqual(try readAll(ino), [3])
    }

    func testUnknownHandles() throws {
        assertErrno(EBADF, try read(1, 999, 0, 10))
        assertErrno(EBADF, try core.release(ino: 1, fh: 999))
        var r = CollectingDirReplier()
        assertErrno(EBADF, try core.readdir(ino: 1, fh: 999, offset: 0, plus: false, replier: &r))
    }

    func testWorkerWriteFailureIsReportedAndSticky() throws {
        let (e, o) = try core.create(parent: 1, name: "f", mode: 0o644, flags: O_WRONLY, ctx: rootCtx)
        faults.fail("blockWrite", with: .transport("worker connection reset"), times: 1)
        try write(e.ino, o.fh, 0, patternBytes(10_000, seed: 1))
        assertErrno(EIO, try core.fsync(ino: e.ino, fh: o.fh, datasync: true))
        assertErrno(EIO, try core.flush(ino: e.ino, fh: o.fh))  // stays failed: the data is gone
        assertErrno(EIO, try core.release(ino: e.ino, fh: o.fh))
        XCTAssertTrue(try fs.fileStatus("/f").isComplete, "the lease is released anyway")
    }

    func testFlushFailureOfCompleteFileIsReported() throws {
        let (e, o) = try core.create(parent: 1, name: "f", mode: 0o644, flags: O_WRONLY, ctx: rootCtx)
        try write(e.ino, o.fh, 0, [1, 2, 3])
        faults.fail("completeFile.flush", with: .remote(.diskOutOfSpace, "full"), times: 1)
        assertErrno(ENOSPC, try core.flush(ino: e.ino, fh: o.fh))
        // A retry succeeds (nothing was lost: the data is on the worker).
        try core.flush(ino: e.ino, fh: o.fh)
        try core.release(ino: e.ino, fh: o.fh)
        XCTAssertEqual(try readAll(e.ino), [1, 2, 3])
    }
}
