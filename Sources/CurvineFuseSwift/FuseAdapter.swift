// The thin adapter: each libfuse low-level callback becomes one FileSystemCore call
// and one reply. No file-system logic lives here (mountpoint-s3's fuse.rs shape).
//
// The callbacks are static members of a nonisolated type in a library file: a C
// callback written as a closure in main.swift or @MainActor code is compiled with
// an isolation check that traps (SIGILL) on the first call from a libfuse thread.
// The core is reached through one process-wide pointer set before the session
// starts and cleared after it ends, so a callback does no lookup of its own.
import CFuse3
import CShim
import CurvineClient
import CurvineFSCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What the callbacks need: the core and the init options.
final class FuseContext {
    let core: FileSystemCore
    var initOptions: cvfuse_init_options
    let cacheReaddir: Bool

    init(core: FileSystemCore, initOptions: cvfuse_init_options, cacheReaddir: Bool) {
        self.core = core
        self.initOptions = initOptions
        self.cacheReaddir = cacheReaddir
    }
}

enum FuseAdapter {
    @inline(__always)
    static func ctx(_ req: fuse_req_t?) -> FuseContext {
        Unmanaged<FuseContext>.fromOpaque(fuse_req_userdata(req)!).takeUnretainedValue()
    }

    /// Runs `body` with the core at +0: no retain/release (the hot read path). Safe because
    /// MountRunner retains the FuseContext for the whole session (passRetained, released
    /// after the session is destroyed) and the context holds `core` in a `let`, so both
    /// outlive every callback. `ctx(req).core` instead costs a swift_retain and a
    /// swift_release of the core per call (atomic ops on one cache line shared by all
    /// worker threads).
    @inline(__always)
    static func withCore<R>(_ req: fuse_req_t?, _ body: (FileSystemCore) throws -> R) rethrows -> R {
        try Unmanaged<FuseContext>.fromOpaque(fuse_req_userdata(req)!)._withUnsafeGuaranteedRef { try body($0.core) }
    }

    @inline(__always)
    static func requestContext(_ req: fuse_req_t?) -> RequestContext {
        let c = fuse_req_ctx(req)!.pointee
        return RequestContext(uid: c.uid, gid: c.gid, pid: UInt32(bitPattern: c.pid), umask: UInt32(c.umask))
    }

    /// Replies with the errno of any error: FSError and CurvineError carry theirs.
    static func replyError(_ req: fuse_req_t?, _ error: Error, _ op: StaticString) {
        let e: Int32
        switch error {
        case let f as FSError: e = f.errno
        case let c as CurvineError: e = c.errno
        default: e = EIO
        }
        if e == EIO || e == ETIMEDOUT || e == EPROTO { Log.warn("\(op): \(error)") } else { Log.debug("\(op): \(error)") }
        Metrics.noteError(e)
        fuse_reply_err(req, e)
    }

    static func fillStat(_ a: Attr) -> stat {
        var st = stat()
        st.st_ino = UInt(a.ino)
        st.st_mode = a.mode
        st.st_nlink = UInt(a.nlink)
        st.st_uid = a.uid
        st.st_gid = a.gid
        st.st_rdev = UInt(a.rdev)
        st.st_size = Int(truncatingIfNeeded: a.size)
        st.st_blocks = Int(truncatingIfNeeded: a.blocks)
        st.st_blksize = Int(a.blksize)
        st.st_atim = timespec(tv_sec: Int(a.atimeSec), tv_nsec: Int(a.atimeNsec))
        st.st_mtim = timespec(tv_sec: Int(a.mtimeSec), tv_nsec: Int(a.mtimeNsec))
        st.st_ctim = timespec(tv_sec: Int(a.ctimeSec), tv_nsec: Int(a.ctimeNsec))
        return st
    }

    static func entryParam(_ e: Entry) -> fuse_entry_param {
        var p = fuse_entry_param()
        p.ino = e.ino
        p.generation = e.generation
        p.attr = fillStat(e.attr)
        p.attr_timeout = e.attrTimeout
        p.entry_timeout = e.entryTimeout
        return p
    }

    static func replyEntry(_ req: fuse_req_t?, _ e: Entry) {
        var p = entryParam(e)
        fuse_reply_entry(req, &p)
    }

    static func setOpenFlags(_ fi: UnsafeMutablePointer<fuse_file_info>?, _ o: Opened) {
        guard let fi else { return }
        fi.pointee.fh = o.fh
        fi.pointee.direct_io = o.directIO ? 1 : 0
        fi.pointee.keep_cache = o.keepCache ? 1 : 0
        fi.pointee.nonseekable = o.nonSeekable ? 1 : 0
    }

    static func name(_ p: UnsafePointer<CChar>?) -> String { String(cString: p!) }

    /// Sends an OPEN/CREATE reply (`send`) for handle `fh`. A handle the core admitted for
    /// kernel passthrough first has its reply marked with the backing id (the shim's
    /// writev hook adds FOPEN_PASSTHROUGH and the id). No FOPEN_NOFLUSH although such a
    /// handle is read-only: FLUSH carries the POSIX close rule of cluster locks. When the
    /// reply finds no request (ENOENT: the open was interrupted), the kernel never learned
    /// of the handle and will send no RELEASE, so it is released here (and the create's
    /// lookup forgotten).
    static func replyOpened(_ req: fuse_req_t?, _ core: FileSystemCore, ino: UInt64, fh: UInt64, created: Bool,
                            send: () -> Int32) {
        let backingId = core.passthroughBackingId(fh: fh)
        if backingId > 0 {
            let rc = cvfuse_open_passthrough(req, backingId)
            if rc != 0 {
                // Cannot happen on our loop (the op runs on the receiving worker); a normal
                // reply would mix modes on the inode, so fail this open instead.
                try? core.release(ino: ino, fh: fh)
                if created { core.forget(ino: ino, nlookup: 1) }
                replyError(req, FSError(EIO, "open of inode \(ino): cannot mark the reply for passthrough (\(errnoName(-rc)))"),
                           "open")
                return
            }
        }
        if Log.debugEnabled {
            Log.debug("\(created ? "CREATE" : "OPEN") ino=\(ino) fh=\(fh): \(core.passthroughDecision(fh: fh) ?? "normal reads")")
        }
        if send() == -ENOENT {
            try? core.release(ino: ino, fh: fh)
            if created { core.forget(ino: ino, nlookup: 1) }
        }
    }

    /// Read replies go straight to the shim (splice when negotiated). `replied` guards
    /// against a second reply if the core throws after replying.
    struct Replier: ReadReplier {
        let req: fuse_req_t?
        let replied: UnsafeMutablePointer<Bool>
        func replyBytes(_ bytes: UnsafeRawBufferPointer) {
            replied.pointee = true
            Metrics.addReadBytes(bytes.count)
            _ = cvfuse_reply_data_mem(req, bytes.baseAddress, bytes.count)
        }
        func replyFile(fd: Int32, offset: Int64, count: Int) {
            replied.pointee = true
            Metrics.addReadBytes(count)
            _ = cvfuse_reply_data_fd(req, fd, off_t(offset), count)
        }
    }

    /// Packs directory entries into the kernel's buffer.
    struct DirBuffer: DirectoryReplier {
        let req: fuse_req_t?
        let buf: UnsafeMutablePointer<CChar>
        let size: Int
        var used = 0
        let plus: Bool

        mutating func add(name: String, ino: UInt64, mode: UInt32, nextOffset: Int64, entry: Entry?) -> Bool {
            let room = size - used
            let n: Int = name.withCString { cname in
                if plus {
                    var p = entry.map { FuseAdapter.entryParam($0) } ?? fuse_entry_param()
                    if entry == nil { p.attr.st_ino = UInt(ino); p.attr.st_mode = mode }
                    return fuse_add_direntry_plus(req, buf + used, room, cname, &p, off_t(nextOffset))
                } else {
                    var st = stat()
                    st.st_ino = UInt(ino)
                    st.st_mode = mode
                    return fuse_add_direntry(req, buf + used, room, cname, &st, off_t(nextOffset))
                }
            }
            if n > room { return false }
            used += n
            return true
        }
    }

    static func readdirCommon(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ size: Int, _ off: off_t,
                              _ fi: UnsafeMutablePointer<fuse_file_info>?, plus: Bool) {
        let c = ctx(req)
        let buf = UnsafeMutablePointer<CChar>.allocate(capacity: max(size, 1))
        defer { buf.deallocate() }
        var d = DirBuffer(req: req, buf: buf, size: size, plus: plus)
        do {
            try c.core.readdir(ino: ino, fh: fi?.pointee.fh ?? 0, offset: Int64(off), plus: plus, replier: &d)
            fuse_reply_buf(req, buf, d.used)
        } catch {
            replyError(req, error, "readdir")
        }
    }

    /// The operations table. Ops left nil get ENOSYS from libfuse (listed in SEMANTICS.md).
    static func makeOps() -> fuse_lowlevel_ops {
        var ops = fuse_lowlevel_ops()
        ops.`init` = { userdata, conn in
            let c = Unmanaged<FuseContext>.fromOpaque(userdata!).takeUnretainedValue()
            withUnsafePointer(to: &c.initOptions) { cvfuse_negotiate(conn, $0) }
        }
        ops.destroy = { userdata in
            let c = Unmanaged<FuseContext>.fromOpaque(userdata!).takeUnretainedValue()
            c.core.shutdown()
        }
        // lookup and getattr answer most warm requests from the caches: the core at +0
        // (withCore: no retain/release of it per request, as on the read path).
        ops.lookup = { req, parent, name in
            do {
                let e = try FuseAdapter.withCore(req) {
                    try $0.lookup(parent: parent, name: FuseAdapter.name(name), ctx: FuseAdapter.requestContext(req))
                }
                FuseAdapter.replyEntry(req, e)
            } catch { FuseAdapter.replyError(req, error, "lookup") }
        }
        ops.forget = { req, ino, nlookup in
            FuseAdapter.ctx(req).core.forget(ino: ino, nlookup: nlookup)
            fuse_reply_none(req)
        }
        ops.forget_multi = { req, count, forgets in
            let c = FuseAdapter.ctx(req)
            for i in 0..<count { c.core.forget(ino: forgets![i].ino, nlookup: forgets![i].nlookup) }
            fuse_reply_none(req)
        }
        ops.getattr = { req, ino, fi in
            do {
                let (a, t) = try FuseAdapter.withCore(req) { try $0.getattr(ino: ino, fh: fi?.pointee.fh) }
                var st = FuseAdapter.fillStat(a)
                fuse_reply_attr(req, &st, t)
            } catch { FuseAdapter.replyError(req, error, "getattr") }
        }
        ops.setattr = { req, ino, attr, toSet, fi in
            let a = attr!.pointee
            var ch = SetAttrChanges()
            if toSet & FUSE_SET_ATTR_MODE != 0 { ch.mode = a.st_mode }
            if toSet & FUSE_SET_ATTR_UID != 0 { ch.uid = a.st_uid }
            if toSet & FUSE_SET_ATTR_GID != 0 { ch.gid = a.st_gid }
            if toSet & FUSE_SET_ATTR_SIZE != 0 { ch.size = UInt64(max(0, a.st_size)) }
            if toSet & FUSE_SET_ATTR_ATIME_NOW != 0 { ch.atime = .now }
            else if toSet & FUSE_SET_ATTR_ATIME != 0 { ch.atime = .at(sec: Int64(a.st_atim.tv_sec), nsec: UInt32(a.st_atim.tv_nsec)) }
            if toSet & FUSE_SET_ATTR_MTIME_NOW != 0 { ch.mtime = .now }
            else if toSet & FUSE_SET_ATTR_MTIME != 0 { ch.mtime = .at(sec: Int64(a.st_mtim.tv_sec), nsec: UInt32(a.st_mtim.tv_nsec)) }
            ch.fh = fi?.pointee.fh
            do {
                let (r, t) = try FuseAdapter.ctx(req).core.setattr(ino: ino, changes: ch, ctx: FuseAdapter.requestContext(req))
                var st = FuseAdapter.fillStat(r)
                fuse_reply_attr(req, &st, t)
            } catch { FuseAdapter.replyError(req, error, "setattr") }
        }
        ops.readlink = { req, ino in
            do {
                let t = try FuseAdapter.ctx(req).core.readlink(ino: ino)
                t.withCString { _ = fuse_reply_readlink(req, $0) }
            } catch { FuseAdapter.replyError(req, error, "readlink") }
        }
        ops.mknod = { req, parent, name, mode, rdev in
            do { FuseAdapter.replyEntry(req, try FuseAdapter.ctx(req).core.mknod(parent: parent, name: FuseAdapter.name(name), mode: mode, rdev: UInt32(truncatingIfNeeded: rdev), ctx: FuseAdapter.requestContext(req))) }
            catch { FuseAdapter.replyError(req, error, "mknod") }
        }
        ops.mkdir = { req, parent, name, mode in
            do { FuseAdapter.replyEntry(req, try FuseAdapter.ctx(req).core.mkdir(parent: parent, name: FuseAdapter.name(name), mode: mode, ctx: FuseAdapter.requestContext(req))) }
            catch { FuseAdapter.replyError(req, error, "mkdir") }
        }
        ops.unlink = { req, parent, name in
            do { try FuseAdapter.ctx(req).core.unlink(parent: parent, name: FuseAdapter.name(name), ctx: FuseAdapter.requestContext(req)); fuse_reply_err(req, 0) }
            catch { FuseAdapter.replyError(req, error, "unlink") }
        }
        ops.rmdir = { req, parent, name in
            do { try FuseAdapter.ctx(req).core.rmdir(parent: parent, name: FuseAdapter.name(name), ctx: FuseAdapter.requestContext(req)); fuse_reply_err(req, 0) }
            catch { FuseAdapter.replyError(req, error, "rmdir") }
        }
        ops.symlink = { req, link, parent, name in
            do { FuseAdapter.replyEntry(req, try FuseAdapter.ctx(req).core.symlink(target: FuseAdapter.name(link), parent: parent, name: FuseAdapter.name(name), ctx: FuseAdapter.requestContext(req))) }
            catch { FuseAdapter.replyError(req, error, "symlink") }
        }
        ops.rename = { req, parent, name, newparent, newname, flags in
            do {
                try FuseAdapter.ctx(req).core.rename(parent: parent, name: FuseAdapter.name(name), newParent: newparent,
                                         newName: FuseAdapter.name(newname), flags: flags, ctx: FuseAdapter.requestContext(req))
                fuse_reply_err(req, 0)
            } catch { FuseAdapter.replyError(req, error, "rename") }
        }
        ops.link = { req, ino, newparent, newname in
            do { FuseAdapter.replyEntry(req, try FuseAdapter.ctx(req).core.link(ino: ino, newParent: newparent, newName: FuseAdapter.name(newname), ctx: FuseAdapter.requestContext(req))) }
            catch { FuseAdapter.replyError(req, error, "link") }
        }
        ops.open = { req, ino, fi in
            do {
                let core = FuseAdapter.ctx(req).core
                let o = try core.open(ino: ino, flags: fi!.pointee.flags, ctx: FuseAdapter.requestContext(req))
                FuseAdapter.setOpenFlags(fi, o)
                FuseAdapter.replyOpened(req, core, ino: ino, fh: o.fh, created: false) { fuse_reply_open(req, fi) }
            } catch { FuseAdapter.replyError(req, error, "open") }
        }
        ops.create = { req, parent, name, mode, fi in
            do {
                let core = FuseAdapter.ctx(req).core
                let (e, o) = try core.create(parent: parent, name: FuseAdapter.name(name), mode: mode,
                                             flags: fi!.pointee.flags, ctx: FuseAdapter.requestContext(req))
                FuseAdapter.setOpenFlags(fi, o)
                var p = FuseAdapter.entryParam(e)
                FuseAdapter.replyOpened(req, core, ino: e.ino, fh: o.fh, created: true) { fuse_reply_create(req, &p, fi) }
            } catch { FuseAdapter.replyError(req, error, "create") }
        }
        // Hot read path: no allocation and no retain/release on success (core at +0
        // through withCore, a Replier of two pointers, replies straight into the shim).
        // Verified on the release build: `objdump -d .build/release/curvine-fuse` of
        // "closure #18 in static FuseAdapter.makeOps()" (this closure; find it with
        // `nm | swift-demangle`) calls fuse_req_userdata, FileSystemCore.read and, for an
        // empty read, fuse_reply_buf — no swift_retain/swift_release outside the
        // debug-log and error branches (before: one retain + one release of the core per
        // READ). The Replier witnesses and the metrics wrapper have none either.
        // ReadAllocationTests counts the core's allocations per read (zero) and, in
        // optimized builds, its retains/releases on the reading thread (zero as well).
        ops.read = { req, ino, size, off, fi in
            // One line per READ the daemon serves (tests count them: a passthrough file has none).
            if Log.debugEnabled { Log.debug("READ ino=\(ino) fh=\(fi!.pointee.fh) off=\(off) size=\(size)") }
            var replied = false
            withUnsafeMutablePointer(to: &replied) { flag in
                do {
                    try FuseAdapter.withCore(req) { core in
                        try core.read(ino: ino, fh: fi!.pointee.fh, offset: Int64(off), size: size,
                                      replier: FuseAdapter.Replier(req: req, replied: flag))
                    }
                    if !flag.pointee { fuse_reply_buf(req, nil, 0) }
                } catch {
                    if !flag.pointee { FuseAdapter.replyError(req, error, "read") }
                }
            }
        }
        ops.write = { req, ino, buf, size, off, fi in
            do {
                let n = try FuseAdapter.ctx(req).core.write(ino: ino, fh: fi!.pointee.fh, offset: Int64(off),
                                                data: UnsafeRawBufferPointer(start: buf, count: size), ctx: FuseAdapter.requestContext(req))
                fuse_reply_write(req, n)
            } catch { FuseAdapter.replyError(req, error, "write") }
        }
        ops.flush = { req, ino, fi in
            do { try FuseAdapter.ctx(req).core.flush(ino: ino, fh: fi!.pointee.fh); fuse_reply_err(req, 0) }
            catch { FuseAdapter.replyError(req, error, "flush") }
        }
        ops.release = { req, ino, fi in
            do { try FuseAdapter.ctx(req).core.release(ino: ino, fh: fi!.pointee.fh); fuse_reply_err(req, 0) }
            catch { FuseAdapter.replyError(req, error, "release") }
        }
        ops.fsync = { req, ino, datasync, fi in
            do { try FuseAdapter.ctx(req).core.fsync(ino: ino, fh: fi!.pointee.fh, datasync: datasync != 0); fuse_reply_err(req, 0) }
            catch { FuseAdapter.replyError(req, error, "fsync") }
        }
        ops.opendir = { req, ino, fi in
            do {
                let c = FuseAdapter.ctx(req)
                let o = try c.core.opendir(ino: ino, ctx: FuseAdapter.requestContext(req))
                fi!.pointee.fh = o.fh
                fi!.pointee.cache_readdir = c.cacheReaddir ? 1 : 0
                fuse_reply_open(req, fi)
            } catch { FuseAdapter.replyError(req, error, "opendir") }
        }
        ops.readdir = { req, ino, size, off, fi in FuseAdapter.readdirCommon(req, ino, size, off, fi, plus: false) }
        ops.readdirplus = { req, ino, size, off, fi in FuseAdapter.readdirCommon(req, ino, size, off, fi, plus: true) }
        ops.releasedir = { req, ino, fi in
            FuseAdapter.ctx(req).core.releasedir(ino: ino, fh: fi!.pointee.fh)
            fuse_reply_err(req, 0)
        }
        ops.fsyncdir = { req, _, _, _ in fuse_reply_err(req, 0) }  // directory changes are synchronous on the master
        ops.statfs = { req, _ in
            do {
                let s = try FuseAdapter.ctx(req).core.statfs()
                var v = statvfs()
                v.f_bsize = UInt(s.bsize)
                v.f_frsize = UInt(s.frsize)
                v.f_blocks = UInt(s.blocks)
                v.f_bfree = UInt(s.bfree)
                v.f_bavail = UInt(s.bavail)
                v.f_files = UInt(s.files)
                v.f_ffree = UInt(s.ffree)
                v.f_favail = UInt(s.ffree)
                v.f_namemax = UInt(s.namelen)
                fuse_reply_statfs(req, &v)
            } catch { FuseAdapter.replyError(req, error, "statfs") }
        }
        ops.setxattr = { req, ino, name, value, size, flags in
            do {
                try FuseAdapter.ctx(req).core.setxattr(ino: ino, name: FuseAdapter.name(name), value: UnsafeRawBufferPointer(start: value, count: size),
                                           flags: flags, ctx: FuseAdapter.requestContext(req))
                fuse_reply_err(req, 0)
            } catch { FuseAdapter.replyError(req, error, "setxattr") }
        }
        ops.getxattr = { req, ino, name, size in
            do {
                let v = try FuseAdapter.ctx(req).core.getxattr(ino: ino, name: FuseAdapter.name(name))
                if size == 0 { fuse_reply_xattr(req, v.count) }
                else if v.count > size { fuse_reply_err(req, ERANGE) }
                else { v.withUnsafeBytes { _ = fuse_reply_buf(req, $0.baseAddress?.assumingMemoryBound(to: CChar.self), v.count) } }
            } catch { FuseAdapter.replyError(req, error, "getxattr") }
        }
        ops.listxattr = { req, ino, size in
            do {
                let v = try FuseAdapter.ctx(req).core.listxattr(ino: ino)
                if size == 0 { fuse_reply_xattr(req, v.count) }
                else if v.count > size { fuse_reply_err(req, ERANGE) }
                else { v.withUnsafeBytes { _ = fuse_reply_buf(req, $0.baseAddress?.assumingMemoryBound(to: CChar.self), v.count) } }
            } catch { FuseAdapter.replyError(req, error, "listxattr") }
        }
        ops.removexattr = { req, ino, name in
            do { try FuseAdapter.ctx(req).core.removexattr(ino: ino, name: FuseAdapter.name(name), ctx: FuseAdapter.requestContext(req)); fuse_reply_err(req, 0) }
            catch { FuseAdapter.replyError(req, error, "removexattr") }
        }
        ops.access = { req, ino, mask in
            do { try FuseAdapter.ctx(req).core.access(ino: ino, mask: mask, ctx: FuseAdapter.requestContext(req)); fuse_reply_err(req, 0) }
            catch { FuseAdapter.replyError(req, error, "access") }
        }
        ops.fallocate = { req, ino, mode, offset, length, fi in
            do { try FuseAdapter.ctx(req).core.fallocate(ino: ino, fh: fi!.pointee.fh, mode: mode, offset: Int64(offset), length: Int64(length)); fuse_reply_err(req, 0) }
            catch { FuseAdapter.replyError(req, error, "fallocate") }
        }
        FuseAdapter.installLockOps(&ops)  // getlk, setlk, flock; FLUSH drops POSIX locks (FuseAdapter+Locks.swift)
        return ops
    }
}
