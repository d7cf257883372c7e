// File operations: open, create, read, write, flush, fsync, release, fallocate.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CurvineClient

extension FileSystemCore {
    /// Attaches a handle to the inode's open state (creating its writer for a writable
    /// handle) and registers it.
    func attachHandle(ino: UInt64, status: FileStatus, readable: Bool, writable: Bool,
                      created: FileStatus? = nil, fixedFh: UInt64? = nil) throws -> FileHandle {
        let holdsWriter = writable || created != nil
        let (open, keep): (OpenFile, Bool) = try table.lock.withLock {
            guard let n = table.nodeLocked(ino) else { throw FSError(ESTALE, "inode \(ino) is not known") }
            let o = n.open ?? OpenFile(ino: ino)
            n.open = o
            o.handles += 1
            if holdsWriter {
                o.writableHandles += 1
                if o.writer == nil {
                    let w = FileWriter(ino: ino, env: env, length: max(status.length, 0), owner: o)
                    if let c = created { w.adoptCreated(c) }
                    o.writer = w
                }
            }
            // KEEP_CACHE when the file looks as it did at the previous open.
            let snap = (status.mtimeMs, status.length)
            let keep = n.lastOpenSnapshot.map { $0 == snap } ?? false
            n.lastOpenSnapshot = snap
            return (o, keep)
        }
        let h = registerFile(fixed: fixedFh) { FileHandle(fh: $0, ino: ino, open: open, readable: readable, writable: writable,
                                          holdsWriter: holdsWriter, env: env) }
        h.keepCache = keep && !config.directIO
        return h
    }

    func opened(_ h: FileHandle) -> Opened {
        Opened(fh: h.fh, directIO: config.directIO, keepCache: h.keepCache, nonSeekable: config.nonSeekable)
    }

    public func open(ino: UInt64, flags: Int32, ctx: RequestContext) throws -> Opened {
        let acc = flags & O_ACCMODE
        let writable = acc == O_WRONLY || acc == O_RDWR
        let readable = acc == O_RDONLY || acc == O_RDWR
        let trunc = flags & O_TRUNC != 0
        if writable || trunc { try checkWritable() }
        let (path, s, _) = try statusOf(ino, fresh: true)
        switch s.kind {
        case .directory: throw FSError(EISDIR, "\(path) is a directory")
        case .fifo, .charDevice, .blockDevice, .socket:
            // Special files are metadata only (upstream): no data to open.
            throw FSError(writable || trunc ? EACCES : EOPNOTSUPP, "\(path) is a special file stored as metadata only")
        default: break
        }
        var mask: Int32 = 0
        if readable { mask |= accessR }
        if writable || trunc { mask |= accessW }
        try require(mask, s, ctx, "open \(path)")
        let pt = try admitPassthrough(ino: ino, path: path, status: s, writes: writable || trunc)
        let h: FileHandle
        do {
            h = try attachHandle(ino: ino, status: s, readable: readable, writable: writable)
        } catch {
            undoPassthrough(pt)
            throw error
        }
        bindPassthrough(pt, fh: h.fh)
        if trunc && (s.length > 0 || h.open.writer?.length ?? 0 > 0) {
            do {
                try resizeFile(ino: ino, path: path, open: h.open, to: 0, truncate: true)
            } catch {
                try? release(ino: ino, fh: h.fh)
                throw error
            }
            h.keepCache = false
        }
        return passthroughOpened(opened(h), pt)
    }

    public func create(parent: UInt64, name: String, mode: UInt32, flags: Int32, ctx: RequestContext) throws -> (Entry, Opened) {
        let (_, ps, path) = try prepareCreate(parent, name, ctx)
        if mode & UInt32(S_IFMT) != 0 && mode & UInt32(S_IFMT) != UInt32(S_IFREG) {
            throw FSError(EINVAL, "create: only regular files")
        }
        let (m, owner, group) = newInodeIdentity(ps, mode: mode, isDir: false, ctx)
        let opts = CreateOptions(mode: m, owner: owner, group: group, overwrite: false, createParent: false,
                                 kind: .file, blockSize: config.blockSize, replicas: config.replicas)
        let s: FileStatus
        do {
            s = try client.createFile(path, options: opts)
        } catch let e as CurvineError where e.errno == EEXIST {
            // Lost a race with another creator (or the kernel had no negative dentry):
            // O_CREAT without O_EXCL opens the existing file.
            if flags & O_EXCL != 0 { throw FSError(EEXIST, "\(path) exists") }
            let e = try lookup(parent: parent, name: name, ctx: ctx)
            if e.isNegative { throw FSError(ENOENT, "\(path) vanished") }
            do {
                return (e, try open(ino: e.ino, flags: flags & ~(O_CREAT | O_EXCL), ctx: ctx))
            } catch {
                forget(ino: e.ino, nlookup: 1)
                throw error
            }
        } catch {
            throw FSError(any: error)
        }
        let e = remembered(parent, name, s)
        let acc = flags & O_ACCMODE
        let h: FileHandle
        do {
            h = try attachHandle(ino: e.ino, status: s, readable: acc != O_WRONLY,
                                 writable: acc == O_WRONLY || acc == O_RDWR, created: s)
        } catch {
            forget(ino: e.ino, nlookup: 1)
            try? client.completeFile(path, length: 0, commit: [], onlyFlush: false, inodeId: s.id)
            throw error
        }
        h.keepCache = !config.directIO
        return (e, opened(h))
    }

    /// The READ hot path: no lock but the handle's own, no allocation and no
    /// retain/release in steady state (ReadAllocationTests).
    public func read(ino: UInt64, fh: UInt64, offset: Int64, size: Int, replier: ReadReplier) throws {
        try withFileHandle(fh, ino) { h in try h.reader.read(offset: offset, size: size, replier: replier) }
    }

    public func write(ino: UInt64, fh: UInt64, offset: Int64, data: UnsafeRawBufferPointer, ctx: RequestContext) throws -> Int {
        try checkWritable()
        let h = try fileHandle(fh, ino)
        guard h.writable, let w = h.open.writer else { throw FSError(EBADF, "handle \(fh) is not open for writing") }
        if offset < 0 { throw FSError(EINVAL, "negative offset") }
        if offset > Int64.max - Int64(data.count) { throw FSError(EFBIG, "write past the largest file offset") }
        let n = try w.write(offset: offset, data: data)
        if ctx.uid != 0, w.takeKillPriv() { dropSetIdBits(ino) }
        return n
    }

    /// A write by someone other than root drops setuid/setgid (as the kernel does for
    /// local files); done once per writer, from the cached status.
    func dropSetIdBits(_ ino: UInt64) {
        guard let s = table.anyStatus(ino), s.kind == .file,
              s.mode & UInt32(S_ISUID | S_ISGID) != 0 else { return }
        var m = s.mode & 0o7777 & ~UInt32(S_ISUID)
        if m & UInt32(S_IXGRP) != 0 { m &= ~UInt32(S_ISGID) }
        guard m != s.mode & 0o7777, let path = try? table.path(ino),
              let ns = try? client.setAttr(path, SetAttrOptions(mode: m)) else { return }
        table.lock.withLock { table.setStatusLocked(ino, ns, expiresNs: expiry(statusTTL)) }
    }

    public func flush(ino: UInt64, fh: UInt64) throws {
        let h = try fileHandle(fh, ino)
        guard h.holdsWriter, let w = h.open.writer else { return }
        try w.flush()
        table.invalidateStatus(ino)
    }

    public func fsync(ino: UInt64, fh: UInt64, datasync: Bool) throws {
        try flush(ino: ino, fh: fh)
    }

    public func release(ino: UInt64, fh: UInt64) throws {
        guard let h = takeFileHandle(fh) else { throw FSError(EBADF, "no open file handle \(fh)") }
        releasePassthrough(fh: fh)
        h.reader.close()
        let o = h.open
        var failure: Error?
        if h.holdsWriter {
            let (last, w): (Bool, FileWriter?) = table.lock.withLock {
                o.writableHandles -= 1
                return (o.writableHandles == 0, o.writer)
            }
            if last, let w {
                do { try w.commit() } catch {
                    failure = error
                    w.abandon()
                }
                table.lock.withLock { if o.writableHandles == 0 && o.writer === w { o.writer = nil } }
                table.invalidateStatus(ino)
            }
        }
        releaseLocks(ino: ino, fh: fh)  // flock/OFD locks of this open file description
        let deferredPath: String? = table.lock.withLock {
            o.handles -= 1
            guard o.handles == 0, let n = table.nodeLocked(ino), n.open === o else { return nil }
            let path = o.deferredDelete ? table.pathLocked(n) : nil
            n.open = nil
            if o.deferredDelete {
                table.unlinkNameLocked(n, parent: n.parent, name: n.name)
            }
            table.maybeRemoveLocked(n)
            return path
        }
        if let p = deferredPath {
            do { try fsTry { try client.delete(p, recursive: false) } } catch {
                if failure == nil { failure = error }
            }
        }
        if let f = failure { throw FSError(any: f) }
    }

    public func fallocate(ino: UInt64, fh: UInt64, mode: Int32, offset: Int64, length: Int64) throws {
        try checkWritable()
        if offset < 0 || length <= 0 { throw FSError(EINVAL, "fallocate: offset < 0 or length <= 0") }
        if mode == FALLOC_KEEP_SIZE { return }  // space is allocated lazily: nothing to do
        if mode != 0 { throw FSError(EOPNOTSUPP, "fallocate mode \(mode) (punch hole, zero/collapse/insert range) is not supported") }
        if offset > Int64.max - length { throw FSError(EFBIG, "fallocate past the largest file size") }
        let (path, s, open) = try statusOf(ino)
        if s.kind == .directory { throw FSError(EISDIR, "\(path) is a directory") }
        if s.kind != .file { throw FSError(ENODEV, "\(path) is not a regular file") }
        let newLen = offset + length
        let cur = open?.writer?.length ?? s.length
        if newLen <= cur { return }  // never shrinks
        try resizeFile(ino: ino, path: path, open: open, to: newLen, truncate: false)
    }
}
