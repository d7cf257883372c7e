// Namespace operations: mknod, mkdir, symlink, link, unlink, rmdir, rename.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CurvineClient

extension FileSystemCore {
    /// Parent checks shared by every op that adds a name: writable mount, valid name,
    /// parent is a directory the caller may write and search.
    func prepareCreate(_ parent: UInt64, _ name: String, _ ctx: RequestContext) throws -> (parentPath: String, parentStatus: FileStatus, path: String) {
        try checkWritable()
        try checkName(name)
        if name == "." || name == ".." { throw FSError(EEXIST, "\(name) exists") }
        let (pp, ps) = try dirStatus(parent)
        try require(accessW | accessX, ps, ctx, "create in \(pp)")
        table.nameChanging(parent, name)
        return (pp, ps, table.childPath(pp, name))
    }

    /// Owner, group and mode of a new inode: the caller's umask applies; the group is the
    /// parent's when the parent is setgid (new directories inherit setgid); setgid on a
    /// new file is dropped when the caller is not in its group (unless root).
    func newInodeIdentity(_ ps: FileStatus, mode: UInt32, isDir: Bool, _ ctx: RequestContext) -> (UInt32, String, String) {
        var m = mode & 0o7777 & ~(ctx.umask & 0o777)
        var gid = ctx.gid
        var group = env.ids.groupName(ctx.gid)
        if ps.mode & UInt32(S_ISGID) != 0 {
            group = ps.group
            gid = env.ids.gid(ps.group)
            if isDir { m |= UInt32(S_ISGID) }
        }
        if !isDir, m & UInt32(S_ISGID) != 0, ctx.uid != 0, !env.ids.inGroup(ctx, gid) { m &= ~UInt32(S_ISGID) }
        return (m, env.ids.userName(ctx.uid), group)
    }

    /// Records a new name (one kernel reference) and returns its entry. `created`: the
    /// inode was made by this call (its mtime is the parent's new mtime on the master);
    /// otherwise (link) the parent's cached status is dropped instead of updated.
    func remembered(_ parent: UInt64, _ name: String, _ s: FileStatus, created: Bool = true) -> Entry {
        let (ino, o): (UInt64, OpenFile?) = table.lock.withLock {
            let n = table.rememberLocked(parent: parent, name: name, status: s, lookups: 1,
                                         statusExpiresNs: expiry(statusTTL), entryExpiresNs: expiry(entryTTL))
            if created {
                touchDirLocked(parent, entries: 1, subdirs: s.kind == .directory ? 1 : 0,
                               mtimeMs: s.ctimeMs > 0 ? max(s.mtimeMs, s.ctimeMs) : s.mtimeMs)
            } else {
                table.invalidateStatusLocked(parent)  // mtime, nlink
            }
            return (n.ino, n.open)
        }
        return entry(s, ino: ino, open: o)
    }

    /// This mount added (`entries` 1) or removed (-1) a name in directory `dir`: applies
    /// the change to its cached status the way the master applies it (mtime and ctime,
    /// size = number of entries, nlink = 2 + subdirectories; SEMANTICS.md, getattr),
    /// keeping the status's expiry. The kernel sends GETATTR for the directory after
    /// every create, mkdir, unlink and rmdir (it drops its own copy); this answers it
    /// without a master round trip. Changes by other clients still show once the
    /// attribute TTL ends, as before. Without a cached status there is nothing to do.
    func touchDirLocked(_ dir: UInt64, entries: Int64, subdirs: Int64, mtimeMs: Int64) {
        guard let n = table.nodeLocked(dir), var s = n.status, s.kind == .directory else { return }
        s.mtimeMs = max(s.mtimeMs, mtimeMs)
        if s.ctimeMs > 0 { s.ctimeMs = max(s.ctimeMs, mtimeMs) }
        s.length = max(0, s.length + entries)
        s.childrenCount = Int32(clamping: max(0, Int64(s.childrenCount) + entries))
        if subdirs != 0 && s.nlink >= 2 { s.nlink = UInt32(clamping: max(2, Int64(s.nlink) + subdirs)) }
        table.setStatusLocked(dir, s, expiresNs: n.statusExpiresNs)
    }

    public func mkdir(parent: UInt64, name: String, mode: UInt32, ctx: RequestContext) throws -> Entry {
        let (_, ps, path) = try prepareCreate(parent, name, ctx)
        let (m, owner, group) = newInodeIdentity(ps, mode: mode, isDir: true, ctx)
        let s = try fsTry { try client.mkdir(path, mode: m, owner: owner, group: group, createParent: false) }
        return remembered(parent, name, s)
    }

    public func mknod(parent: UInt64, name: String, mode: UInt32, rdev: UInt32, ctx: RequestContext) throws -> Entry {
        guard let kind = Self.kind(forMode: mode) else { throw FSError(EPERM, "mknod: unsupported file type \(String(mode, radix: 8))") }
        if kind == .directory { return try mkdir(parent: parent, name: name, mode: mode, ctx: ctx) }
        let (_, ps, path) = try prepareCreate(parent, name, ctx)
        let (m, owner, group) = newInodeIdentity(ps, mode: mode, isDir: false, ctx)
        let opts = CreateOptions(mode: m, owner: owner, group: group, overwrite: false, createParent: false,
                                 kind: kind, blockSize: config.blockSize, replicas: config.replicas)
        let s = try fsTry { try client.createFile(path, options: opts) }
        // Nothing will be written: complete it now so it is not left open on the master.
        try fsTry { try client.completeFile(path, length: 0, commit: [], onlyFlush: false, inodeId: s.id) }
        var done = s
        done.isComplete = true
        return remembered(parent, name, done)
    }

    public func symlink(target: String, parent: UInt64, name: String, ctx: RequestContext) throws -> Entry {
        let (_, _, path) = try prepareCreate(parent, name, ctx)
        if target.isEmpty { throw FSError(ENOENT, "empty symlink target") }
        if target.utf8.count > 4095 { throw FSError(ENAMETOOLONG, "symlink target longer than 4095 bytes") }
        try fsTry {
            try client.symlink(target: target, link: path, mode: 0o777, owner: env.ids.userName(ctx.uid),
                               group: env.ids.groupName(ctx.gid))
        }
        let s = try fsTry { try client.fileStatus(path) }
        return remembered(parent, name, s)
    }

    public func link(ino: UInt64, newParent: UInt64, newName: String, ctx: RequestContext) throws -> Entry {
        let (_, _, dst) = try prepareCreate(newParent, newName, ctx)
        let (src, s, open) = try statusOf(ino)
        if s.kind == .directory { throw FSError(EPERM, "hard links to directories are not allowed") }
        // The new name must see the data written so far.
        try open?.writer?.flush()
        try fsTry { try client.link(src, to: dst) }
        let ns = try fsTry { try client.fileStatus(dst) }
        let e = remembered(newParent, newName, ns, created: false)
        table.lock.withLock { table.setStatusLocked(ino, ns, expiresNs: expiry(statusTTL)) }
        return e
    }

    public func unlink(parent: UInt64, name: String, ctx: RequestContext) throws {
        try checkWritable()
        try checkName(name)
        let (pp, ps) = try dirStatus(parent)
        try require(accessW | accessX, ps, ctx, "unlink in \(pp)")
        guard let (path, s, _) = try childStatus(parent, pp, name) else { throw FSError(ENOENT, "\(name): no such file") }
        if s.kind == .directory { throw FSError(EISDIR, "\(path) is a directory") }
        try checkSticky(dir: ps, child: s, ctx)
        let ino = table.ino(forId: s.id)
        if try hideIfOpen(parent: parent, parentPath: pp, name: name, ino: ino) != nil { return }
        try fsTry { try client.delete(path, recursive: false) }
        forgetName(parent, name, ino: ino, removed: .file)
    }

    /// An inode with open handles loses its name by a rename to a hidden name in the same
    /// directory; the last release deletes it (its handles keep working meanwhile, and the
    /// name is free at once for a new file). Returns the hidden name, or nil when the
    /// inode is not open.
    func hideIfOpen(parent: UInt64, parentPath: String, name: String, ino: UInt64) throws -> String? {
        let node = table.lock.withLock { table.nodeLocked(ino).map { (open: $0.open, id: $0.id) } }
        guard let node, let o = node.open else { return nil }
        let hidden = nextHiddenName(ino)
        try renameOnMaster(table.childPath(parentPath, name), table.childPath(parentPath, hidden), .noReplace, srcId: node.id)
        let stillOpen: Bool = table.lock.withLock {
            table.renameLocked(parent, name, parent, hidden, now: monotonicNs(), entryExpiresNs: 0, ino: ino)
            table.invalidateStatusLocked(parent)
            let neg = negativeTTL
            if neg > 0 { table.setNegativeLocked(parent, name, expiresNs: expiry(neg)) }
            // The last handle may have gone while we renamed: then nobody will delete it.
            guard let n = table.nodeLocked(ino), n.open === o, o.handles > 0 else { return false }
            o.deferredDelete = true
            return true
        }
        if !stillOpen {
            try fsTry { try client.delete(table.childPath(parentPath, hidden), recursive: false) }
            forgetName(parent, hidden, ino: ino)
        }
        return hidden
    }

    /// Undoes hideIfOpen after the operation it made room for failed.
    func unhide(parent: UInt64, parentPath: String, hidden: String, name: String, ino: UInt64) {
        guard (try? client.rename(table.childPath(parentPath, hidden), to: table.childPath(parentPath, name),
                                  flags: .noReplace)) != nil else { return }
        table.lock.withLock {
            table.renameLocked(parent, hidden, parent, name, now: monotonicNs(), entryExpiresNs: 0, ino: ino)
            table.clearNegativeLocked(parent, name)
            if let o = table.nodeLocked(ino)?.open { o.deferredDelete = false }
        }
    }

    /// After a name was removed on the master. `removed`: what unlink/rmdir just deleted
    /// (the parent's cached status is then updated in place, see touchDirLocked); nil
    /// drops the parent's cached status instead.
    func forgetName(_ parent: UInt64, _ name: String, ino: UInt64, removed: FileKind? = nil) {
        table.lock.withLock {
            if let n = table.nodeLocked(ino) {
                table.unlinkNameLocked(n, parent: parent, name: name)
                n.statusExpiresNs = 0  // nlink, ctime
            }
            let neg = negativeTTL
            table.setNegativeLocked(parent, name, expiresNs: neg > 0 ? expiry(neg) : 0)
            if let k = removed {
                touchDirLocked(parent, entries: -1, subdirs: k == .directory ? -1 : 0, mtimeMs: wallClockMs())
            } else {
                table.invalidateStatusLocked(parent)
            }
        }
    }

    public func rmdir(parent: UInt64, name: String, ctx: RequestContext) throws {
        try checkWritable()
        try checkName(name)
        if name == "." { throw FSError(EINVAL, "rmdir of '.'") }
        if name == ".." { throw FSError(ENOTEMPTY, "rmdir of '..'") }
        let (pp, ps) = try dirStatus(parent)
        try require(accessW | accessX, ps, ctx, "rmdir in \(pp)")
        guard let (path, s, _) = try childStatus(parent, pp, name) else { throw FSError(ENOENT, "\(name): no such directory") }
        if s.kind != .directory { throw FSError(ENOTDIR, "\(path) is not a directory") }
        try checkSticky(dir: ps, child: s, ctx)
        let ino = table.ino(forId: s.id)
        if ino == InodeTable.rootIno { throw FSError(EBUSY, "the mount root cannot be removed") }
        try fsTry { try client.delete(path, recursive: false) }
        forgetName(parent, name, ino: ino, removed: .directory)
    }

    /// Rename on the master. A rename whose reply was lost and whose re-send reached a
    /// master without that attempt in its retry cache (a new leader, or the same master
    /// restarted: the cache is per master and in memory, PROTOCOL.md §3.1) runs again and
    /// fails, ENOENT (the source is gone) or EEXIST (NOREPLACE: the destination is there),
    /// although the first attempt did the rename. The source's inode id under the
    /// destination, and no source left, tell that case apart (2 RPCs, only then).
    /// RENAME_EXCHANGE cannot be checked this way (a re-sent exchange swaps back and
    /// succeeds); SEMANTICS.md lists it.
    func renameOnMaster(_ src: String, _ dst: String, _ flags: RenameFlags, srcId: Int64) throws {
        do {
            try client.rename(src, to: dst, flags: flags)
        } catch let e as CurvineError where e.wasRetried && (e.kind == .fileNotFound || e.kind == .fileAlreadyExists) {
            guard (try? client.fileStatus(dst))?.id == srcId, (try? client.exists(src)) == false else { throw FSError(e) }
        } catch {
            throw FSError(any: error)
        }
    }

    public func rename(parent: UInt64, name: String, newParent: UInt64, newName: String, flags: UInt32,
                       ctx: RequestContext) throws {
        let noReplace: UInt32 = 1, exchange: UInt32 = 2
        if flags & ~(noReplace | exchange) != 0 { throw FSError(EINVAL, "rename: unsupported flags \(flags) (RENAME_WHITEOUT is not supported)") }
        if flags == noReplace | exchange { throw FSError(EINVAL, "rename: RENAME_NOREPLACE with RENAME_EXCHANGE") }
        try checkWritable()
        try checkName(name)
        try checkName(newName)
        if name == "." || name == ".." || newName == "." || newName == ".." { throw FSError(EINVAL, "rename of '.' or '..'") }
        let (pp, ps) = try dirStatus(parent)
        let (np, nps) = parent == newParent ? (pp, ps) : try dirStatus(newParent)
        try require(accessW | accessX, ps, ctx, "rename from \(pp)")
        if newParent != parent { try require(accessW | accessX, nps, ctx, "rename into \(np)") }
        guard let (src, ss, _) = try childStatus(parent, pp, name) else { throw FSError(ENOENT, "\(name): no such file or directory") }
        let dstInfo = try childStatus(newParent, np, newName)
        let dst = table.childPath(np, newName)
        try checkSticky(dir: ps, child: ss, ctx)
        if let d = dstInfo { try checkSticky(dir: nps, child: d.status, ctx) }
        table.nameChanging(newParent, newName)
        let srcIno = table.ino(forId: ss.id)

        if flags & exchange != 0 {
            guard let d = dstInfo else { throw FSError(ENOENT, "\(newName): no such file or directory") }
            if d.status.id == ss.id { return }  // one inode under both names: nothing to swap
            if ss.kind == .directory || d.status.kind == .directory {
                try checkNotAncestor(srcIno, of: newParent)
                try checkNotAncestor(table.ino(forId: d.status.id), of: parent)
            }
            try fsTry { try client.rename(src, to: dst, flags: .exchange) }
            table.lock.withLock {
                table.exchangeLocked(parent, name, newParent, newName, entryExpiresNs: expiry(entryTTL),
                                     ino1: srcIno, ino2: table.inoLocked(forId: d.status.id))
                table.invalidateStatusLocked(parent)
                table.invalidateStatusLocked(newParent)
            }
            return
        }
        if let d = dstInfo {
            if flags & noReplace != 0 { throw FSError(EEXIST, "\(dst) exists") }
            if d.status.id == ss.id { return }  // same inode (hard links or same name): nothing to do
            if ss.kind == .directory && d.status.kind != .directory { throw FSError(ENOTDIR, "\(dst) is not a directory") }
            if ss.kind != .directory && d.status.kind == .directory { throw FSError(EISDIR, "\(dst) is a directory") }
        }
        if ss.kind == .directory {
            try checkNotAncestor(srcIno, of: newParent)
            // Moving a directory to another parent rewrites its "..": needs write on it.
            if newParent != parent { try require(accessW, ss, ctx, "move directory \(src)") }
        }
        var replacedIno: UInt64?
        var hidden: (name: String, ino: UInt64)?
        if let d = dstInfo {
            let dIno = table.ino(forId: d.status.id)
            replacedIno = dIno
            // An open destination keeps its data for its handles: hide it first.
            if d.status.kind != .directory,
               let h = try hideIfOpen(parent: newParent, parentPath: np, name: newName, ino: dIno) {
                replacedIno = nil
                hidden = (h, dIno)
            }
        }
        do {
            do {
                try renameOnMaster(src, dst, flags & noReplace != 0 ? .noReplace : [], srcId: ss.id)
            } catch let e as FSError where e.errno == EEXIST && flags & noReplace == 0 && dstInfo != nil && hidden == nil {
                // A master that refuses to replace: remove the destination, then move.
                try fsTry { try client.delete(dst, recursive: false) }
                try renameOnMaster(src, dst, [], srcId: ss.id)
            }
        } catch {
            if let h = hidden { unhide(parent: newParent, parentPath: np, hidden: h.name, name: newName, ino: h.ino) }
            throw error
        }
        table.lock.withLock {
            if let r = replacedIno, let n = table.nodeLocked(r) {
                table.unlinkNameLocked(n, parent: newParent, name: newName)
                n.statusExpiresNs = 0
            }
            table.renameLocked(parent, name, newParent, newName, now: monotonicNs(), entryExpiresNs: expiry(entryTTL),
                               ino: srcIno)
            table.invalidateStatusLocked(parent)
            table.invalidateStatusLocked(newParent)
            let neg = negativeTTL
            if neg > 0 { table.setNegativeLocked(parent, name, expiresNs: expiry(neg)) }
        }
    }

    /// EINVAL when `dir` is `target` or one of its ancestors (a directory into itself).
    func checkNotAncestor(_ dir: UInt64, of target: UInt64) throws {
        try table.lock.withLock {
            var cur = target
            var steps = 0
            while steps < 4096 {
                if cur == dir { throw FSError(EINVAL, "cannot move a directory into itself") }
                if cur == InodeTable.rootIno { return }
                guard let n = table.nodeLocked(cur) else { return }
                cur = n.parent
                steps += 1
            }
        }
    }
}
