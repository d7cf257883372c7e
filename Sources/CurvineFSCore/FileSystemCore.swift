// FUSE file-system operations over a Curvine client, not tied to libfuse.
//
// The adapter calls these methods from many FUSE worker threads at once; each returns
// plain structs or throws FSError (the errno the kernel gets). Nothing here blocks on a
// lock while talking to the network except where InodeTable.swift's lock order says so.
// Op semantics and every errno the core produces are listed in SEMANTICS-NOTES.md.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CurvineClient

let XATTR_CREATE_FLAG: Int32 = 1
let XATTR_REPLACE_FLAG: Int32 = 2
let FALLOC_KEEP_SIZE: Int32 = 1

final class FileHandle {
    let fh: UInt64
    let ino: UInt64
    let open: OpenFile
    let readable: Bool
    let writable: Bool
    /// Holds a writer reference for its whole life (writable, or created by this mount).
    let holdsWriter: Bool
    let reader: FileReader
    /// FOPEN_KEEP_CACHE decision of the open reply.
    var keepCache = false

    init(fh: UInt64, ino: UInt64, open: OpenFile, readable: Bool, writable: Bool, holdsWriter: Bool, env: CoreEnv) {
        self.fh = fh; self.ino = ino; self.open = open; self.readable = readable; self.writable = writable
        self.holdsWriter = holdsWriter
        self.reader = FileReader(ino: ino, env: env, open: open)
    }
}

public final class FileSystemCore: @unchecked Sendable {
    public let config: CoreConfig
    let env: CoreEnv
    var table: InodeTable { env.table }
    var client: CurvineFileSystem { env.client }

    let handleLock = Lock()  // the handle state below is internal for FileSystemCore+Handover.swift
    /// Open files (FileHandleTable.swift): a dictionary-like map under handleLock whose
    /// handles are also published in `handleSlots` for READ's lock-free lookup.
    var fileHandles: FileHandleMap
    /// The read path's view of `fileHandles` (no lock, no retain).
    private let handleSlots: FileHandleSlots
    /// Handles that were open at shutdown: kept alive, since a READ racing the unmount
    /// may still hold one unretained (FileHandleTable.swift).
    private var retiredHandles: [FileHandle] = []
    var dirHandles: [UInt64: DirHandle] = [:]
    /// Generation of the next file handle number (FileHandleTable.swift: fh = generation
    /// << 20 | slot index); dir handles take it as their number.
    var nextFh: UInt64 = 1
    var hiddenCounter: UInt64 = 0
    private var statfsCache: (StatFS, UInt64)?
    private var isShutDown = false
    /// Kernel passthrough bookkeeping (FileSystemCore+Passthrough.swift).
    let passthroughState = PassthroughState()
    /// Cluster-wide file locks held by this mount (FileSystemCore+Locks.swift).
    let lockState = LockState()

    /// Resolves `config.fsPath` (creating it, with parents, when missing, as upstream).
    public init(client: CurvineFileSystem, config: CoreConfig) throws {
        var cfg = config
        cfg.fsPath = FileSystemCore.normalize(config.fsPath)
        cfg.listLimit = max(1, cfg.listLimit)
        self.config = cfg
        let slots = FileHandleSlots()
        self.handleSlots = slots
        self.fileHandles = FileHandleMap(slots: slots)
        var root: FileStatus
        do {
            root = try client.fileStatus(cfg.fsPath)
        } catch let e as CurvineError where e.errno == ENOENT {
            root = try fsTry { try client.mkdir(cfg.fsPath, mode: 0o755, owner: "", group: "", createParent: true) }
        } catch {
            throw FSError(any: error)
        }
        guard root.kind == .directory else { throw FSError(ENOTDIR, "fs_path \(cfg.fsPath) is not a directory") }
        let table = InodeTable(rootPath: cfg.fsPath, rootStatus: root)
        self.env = CoreEnv(client: client, config: cfg, table: table)
        table.lock.withLock { table.setStatusLocked(InodeTable.rootIno, root, expiresNs: expiry(statusTTL)) }
    }

    static func normalize(_ p: String) -> String {
        let comps = p.split(separator: "/", omittingEmptySubsequences: true)
        return comps.isEmpty ? "/" : "/" + comps.joined(separator: "/")
    }

    /// Counters since mount.
    public var stats: CoreStats {
        var s = env.stats
        s.inodes = table.count
        handleLock.withLock { s.fileHandles = fileHandles.count; s.dirHandles = dirHandles.count }
        s.readPoolBytes = env.readPool.allocatedBytes
        s.writePoolBytes = env.writePool.allocatedBytes
        return s
    }

    /// Kernel lookup count of `ino` (nil when not in the table); for tests and /details.
    public func lookupCount(ino: UInt64) -> UInt64? { table.lookupCount(ino) }

    // MARK: TTLs

    var statusTTL: Double { config.enableMetaCache ? max(config.metaCacheTTL, config.attrTimeout) : config.attrTimeout }
    var entryTTL: Double { config.enableMetaCache ? max(config.metaCacheTTL, config.entryTimeout) : config.entryTimeout }
    var negativeTTL: Double { config.enableMetaCache ? max(config.metaCacheTTL, config.negativeTimeout) : config.negativeTimeout }

    func expiry(_ seconds: Double) -> UInt64 { seconds <= 0 ? 0 : monotonicNs() + UInt64(seconds * 1e9) }

    // MARK: conversions

    static func typeBits(_ k: FileKind) -> UInt32 {
        switch k {
        case .directory: return UInt32(S_IFDIR)
        case .symlink: return UInt32(S_IFLNK)
        case .fifo: return UInt32(S_IFIFO)
        case .charDevice: return UInt32(S_IFCHR)
        case .blockDevice: return UInt32(S_IFBLK)
        case .socket: return UInt32(S_IFSOCK)
        case .file, .stream, .agg, .object: return UInt32(S_IFREG)
        }
    }

    static func kind(forMode mode: UInt32) -> FileKind? {
        switch mode & UInt32(S_IFMT) {
        case 0, UInt32(S_IFREG): return .file
        case UInt32(S_IFDIR): return .directory
        case UInt32(S_IFIFO): return .fifo
        case UInt32(S_IFCHR): return .charDevice
        case UInt32(S_IFBLK): return .blockDevice
        case UInt32(S_IFSOCK): return .socket
        default: return nil
        }
    }

    func attr(_ s: FileStatus, ino: UInt64, open: OpenFile? = nil) -> Attr {
        var length = max(s.length, 0)
        var mtime = s.mtimeMs
        if s.kind == .symlink { length = Int64(s.target?.utf8.count ?? Int(s.length)) }
        if let w = open?.writer {
            length = w.length
            mtime = max(mtime, w.lastWrite)
        }
        let ctime = s.ctimeMs > 0 ? max(s.ctimeMs, mtime) : mtime
        func split(_ ms: Int64) -> (Int64, UInt32) {
            let sec = ms >= 0 ? ms / 1000 : (ms - 999) / 1000
            return (sec, UInt32((ms - sec * 1000) * 1_000_000))
        }
        let (as_, an) = split(s.atimeMs), (ms, mn) = split(mtime), (cs, cn) = split(ctime)
        return Attr(ino: ino, size: UInt64(length), blocks: (UInt64(length) + 511) / 512,
                    atimeSec: as_, atimeNsec: an, mtimeSec: ms, mtimeNsec: mn, ctimeSec: cs, ctimeNsec: cn,
                    mode: Self.typeBits(s.kind) | (s.mode & 0o7777), nlink: max(s.nlink, 1),
                    uid: env.ids.uid(s.owner), gid: env.ids.gid(s.group), rdev: 0, blksize: config.statBlockSize)
    }

    func entry(_ s: FileStatus, ino: UInt64, open: OpenFile? = nil) -> Entry {
        Entry(ino: ino, generation: 0, attr: attr(s, ino: ino, open: open),
              attrTimeout: config.attrTimeout, entryTimeout: config.entryTimeout)
    }

    func negativeEntryOrThrow(_ name: String) throws -> Entry {
        if config.negativeTimeout > 0 {
            return Entry(ino: 0, attr: Attr(), attrTimeout: 0, entryTimeout: config.negativeTimeout)
        }
        throw FSError(ENOENT, "\(name): no such file or directory")
    }

    // MARK: checks

    func checkName(_ name: String) throws {
        if name.utf8.count > 255 { throw FSError(ENAMETOOLONG, "name longer than 255 bytes") }
        if name.isEmpty || name.utf8.contains(UInt8(ascii: "/")) { throw FSError(EINVAL, "invalid name '\(name)'") }
    }

    func checkWritable() throws {
        if config.readonly { throw FSError(EROFS, "mounted read-only") }
    }

    func require(_ mask: Int32, _ s: FileStatus, _ ctx: RequestContext, _ what: @autoclosure () -> String) throws {
        guard config.checkPermission else { return }
        if !permits(mask, mode: s.mode, uid: env.ids.uid(s.owner), gid: env.ids.gid(s.group),
                    isDirectory: s.kind == .directory, ctx: ctx, ids: env.ids) {
            throw FSError(EACCES, "permission denied: \(what())")
        }
    }

    /// Sticky directories: only the owner of the entry or of the directory (or root) may
    /// remove or rename it.
    func checkSticky(dir: FileStatus, child: FileStatus, _ ctx: RequestContext) throws {
        guard config.checkPermission, dir.mode & UInt32(S_ISVTX) != 0, ctx.uid != 0 else { return }
        if ctx.uid != env.ids.uid(child.owner) && ctx.uid != env.ids.uid(dir.owner) {
            throw FSError(EPERM, "sticky directory: \(child.name) belongs to someone else")
        }
    }

    // MARK: status

    /// Path, status (cached while fresh, else from the master) and open state of `ino`.
    /// A path that now names another inode (replaced by another client) is ESTALE.
    func statusOf(_ ino: UInt64, fresh: Bool = false) throws -> (path: String, status: FileStatus, open: OpenFile?) {
        let (path, cached, open) = try table.pathAndStatus(ino, now: monotonicNs())
        if !fresh, let s = cached { env.cacheStats.attrHit.add(); return (path, s, open) }
        if !fresh { env.cacheStats.attrMiss.add() }
        let s = try fsTry { try client.fileStatus(path) }
        try table.lock.withLock {
            if ino != InodeTable.rootIno && table.inoLocked(forId: s.id) != ino {
                throw FSError(ESTALE, "\(path) now names another inode")
            }
            table.setStatusLocked(ino, s, expiresNs: expiry(statusTTL))
        }
        return (path, s, open)
    }

    /// Status and open state of `ino` without building its path when the cache answers
    /// (the hot path of getattr and of lookup's parent check).
    func cachedStatus(_ ino: UInt64) throws -> (status: FileStatus, open: OpenFile?) {
        let now = monotonicNs()
        let hit: (FileStatus, OpenFile?)? = try table.lock.withLock {
            guard let n = table.nodeLocked(ino) else { throw FSError(ESTALE, "inode \(ino) is not known (forgotten)") }
            if n.statusExpiresNs > now, let s = n.status { return (s, n.open) }
            return nil
        }
        if let h = hit { env.cacheStats.attrHit.add(); return h }
        env.cacheStats.attrMiss.add()
        let (_, s, o) = try statusOf(ino, fresh: true)
        return (s, o)
    }

    func dirStatus(_ ino: UInt64) throws -> (path: String, status: FileStatus) {
        let (p, s, _) = try statusOf(ino)
        guard s.kind == .directory else { throw FSError(ENOTDIR, "\(p) is not a directory") }
        return (p, s)
    }

    /// Status of `name` in `parent`: cached dentry while fresh, else the master.
    /// Returns nil when it does not exist.
    func childStatus(_ parent: UInt64, _ parentPath: String, _ name: String) throws -> (path: String, status: FileStatus, ino: UInt64?)? {
        let path = table.childPath(parentPath, name)
        if let n = table.lock.withLock({ table.cachedChildLocked(parent, name, now: monotonicNs()) }), let s = n.status {
            return (path, s, n.ino)
        }
        do {
            let s = try client.fileStatus(path)
            return (path, s, nil)
        } catch let e as CurvineError where e.errno == ENOENT {
            return nil
        } catch {
            throw FSError(any: error)
        }
    }

    // MARK: lookup / forget / getattr

    public func lookup(parent: UInt64, name: String, ctx: RequestContext) throws -> Entry {
        try checkName(name)
        if name == "." || name == ".." {
            let target: UInt64 = name == "." ? parent
                : table.lock.withLock { table.nodeLocked(parent)?.parent ?? InodeTable.rootIno }
            let (_, s, o) = try statusOf(target)
            table.lock.withLock { table.addLookupLocked(target, 1) }
            return entry(s, ino: target, open: o)
        }
        // The parent's last known status is good enough for the search check (the kernel
        // checks with its own cached attributes too): no round trip per lookup when the
        // attribute TTL is short.
        let ps = try table.anyStatus(parent) ?? cachedStatus(parent).status
        guard ps.kind == .directory else { throw FSError(ENOTDIR, "\(ps.path) is not a directory") }
        try require(accessX, ps, ctx, "search \(ps.path)")
        let now = monotonicNs()
        enum Cached { case hit(UInt64, FileStatus, OpenFile?), negative, ahead(FileStatus), miss(String, String) }
        let c: Cached = try table.lock.withLock {
            if let n = table.cachedChildLocked(parent, name, now: now), let s = n.status {
                n.lookups += 1
                return .hit(n.ino, s, n.open)
            }
            if table.isNegativeLocked(parent, name, now: now) { return .negative }
            if let s = table.takeAheadLocked(parent, name, now: now) { return .ahead(s) }
            if table.knownAbsentLocked(parent, name, now: now) { return .negative }
            guard let pn = table.nodeLocked(parent), let pp = table.pathLocked(pn) else {
                throw FSError(ESTALE, "inode \(parent) is not known")
            }
            return .miss(table.childPath(pp, name), pp)
        }
        let s: FileStatus
        switch c {
        case .hit(let ino, let s, let o):
            env.cacheStats.lookupHit.add()
            return entry(s, ino: ino, open: o)
        case .negative:
            env.cacheStats.lookupNegative.add()
            return try negativeEntryOrThrow(name)
        case .ahead(let a):
            env.cacheStats.lookupHit.add()
            s = a
        case .miss(let path, let parentPath):
            env.cacheStats.lookupMiss.add()
            do {
                s = try client.fileStatus(path)
            } catch let e as CurvineError where e.errno == ENOENT {
                let neg = negativeTTL
                // Missing names count towards a scan too: a run of creates in name order
                // gets a listing that answers its later lookups (AbsentRange.swift).
                let token: UInt64? = table.lock.withLock {
                    table.setNegativeLocked(parent, name, expiresNs: neg > 0 ? expiry(neg) : 0)
                    return statAheadNegatives && !name.hasPrefix(hiddenNamePrefix)
                        ? table.aheadNoteMissLocked(parent, name, streak: config.statAheadStreak) : nil
                }
                if let t = token { statAhead(parent: parent, parentPath: parentPath, after: name, token: t) }
                return try negativeEntryOrThrow(name)
            } catch {
                throw FSError(any: error)
            }
            // Only names that exist count towards a scan (a run of creates looks up
            // names that do not exist yet, in order too).
            let (ino, o, token): (UInt64, OpenFile?, UInt64?) = table.lock.withLock {
                let n = table.rememberLocked(parent: parent, name: name, status: s, lookups: 1,
                                             statusExpiresNs: expiry(statusTTL), entryExpiresNs: expiry(entryTTL))
                let t = config.statAheadPage > 0 && !name.hasPrefix(hiddenNamePrefix)
                    ? table.aheadNoteMissLocked(parent, name, streak: config.statAheadStreak) : nil
                return (n.ino, n.open, t)
            }
            if let t = token { statAhead(parent: parent, parentPath: parentPath, after: name, token: t) }
            return entry(s, ino: ino, open: o)
        }
        let (ino, o): (UInt64, OpenFile?) = table.lock.withLock {
            let n = table.rememberLocked(parent: parent, name: name, status: s, lookups: 1,
                                         statusExpiresNs: expiry(statusTTL), entryExpiresNs: expiry(entryTTL))
            return (n.ino, n.open)
        }
        return entry(s, ino: ino, open: o)
    }

    /// Negative stat-ahead (AbsentRange.swift) is on: stat-ahead is, and the status TTL
    /// lets cached answers live at all.
    var statAheadNegatives: Bool { config.statAheadPage > 0 && config.statAheadNegatives && statusTTL > 0 }

    /// Fetches, on an io thread, the listing page of `parentPath` after `after` for the
    /// stat-ahead cache (InodeTable, "stat-ahead"). Failures only cost the cache.
    func statAhead(parent: UInt64, parentPath: String, after: String, token: UInt64) {
        let ttl = statusTTL
        let limit = config.statAheadPage
        let negatives = statAheadNegatives
        env.io.submit { [self] in
            let start = monotonicNs()
            let page = try? client.listPage(parentPath, startAfter: after, limit: limit)
            let exp = ttl <= 0 ? 0 : start + UInt64(ttl * 1e9)
            table.lock.withLock {
                table.aheadFinishLocked(parent, token: token, after: after, page: page, complete: (page?.count ?? limit) < limit,
                                        negatives: negatives, expiresNs: exp, now: monotonicNs())
            }
        }
    }

    public func forget(ino: UInt64, nlookup: UInt64) {
        table.forget(ino, nlookup)
    }

    public func getattr(ino: UInt64, fh: UInt64?) throws -> (Attr, Double) {
        let (s, o) = try cachedStatus(ino)
        return (attr(s, ino: ino, open: o), config.attrTimeout)
    }

    public func readlink(ino: UInt64) throws -> String {
        let (s, _) = try cachedStatus(ino)
        guard s.kind == .symlink, let t = s.target else { throw FSError(EINVAL, "\(s.path) is not a symbolic link") }
        return t
    }

    public func access(ino: UInt64, mask: Int32, ctx: RequestContext) throws {
        let (s, _) = try cachedStatus(ino)
        if mask & accessW != 0 && config.readonly { throw FSError(EROFS, "mounted read-only") }
        try require(mask & 7, s, ctx, "access \(s.path)")
    }

    public func statfs() throws -> StatFS {
        let now = monotonicNs()
        if let (c, exp) = handleLock.withLock({ statfsCache }), exp > now { return c }
        let info = try fsTry { try client.filesystemInfo() }
        let bs: UInt64 = 4096
        let used = UInt64(max(info.fileCount, 0) + max(info.dirCount, 0))
        // Curvine has no inode limit: report 2^32 free so tools that check ffree proceed,
        // and files = used + free so `df -i` shows the real count in use.
        let free: UInt64 = 0xffff_ffff
        let r = StatFS(blocks: UInt64(max(info.capacity, 0)) / bs, bfree: UInt64(max(info.available, 0)) / bs,
                       bavail: UInt64(max(info.available, 0)) / bs, files: used + free, ffree: free,
                       bsize: UInt32(bs), frsize: UInt32(bs), namelen: 255)
        handleLock.withLock { statfsCache = (r, now + 1_000_000_000) }
        return r
    }

    // MARK: setattr

    static func ms(_ t: TimeChange) -> Int64 {
        switch t {
        case .now: return wallClockMs()
        case .at(let sec, let nsec): return sec * 1000 + Int64(nsec / 1_000_000)
        }
    }

    public func setattr(ino: UInt64, changes: SetAttrChanges, ctx: RequestContext) throws -> (Attr, Double) {
        try checkWritable()
        let (path, st, open) = try statusOf(ino)
        let ids = env.ids
        let fileUid = ids.uid(st.owner), fileGid = ids.gid(st.group)
        let check = config.checkPermission
        let root = ctx.uid == 0
        let owner = root || ctx.uid == fileUid
        var opts = SetAttrOptions()
        var mode = st.mode & 0o7777
        var newGid = fileGid

        if changes.uid != nil || changes.gid != nil {
            if let u = changes.uid, check, !root, !(u == fileUid && ctx.uid == fileUid) {
                throw FSError(EPERM, "only root may change the owner of \(path)")
            }
            if let g = changes.gid, check, !root, !(ctx.uid == fileUid && (g == fileGid || ids.inGroup(ctx, g))) {
                throw FSError(EPERM, "chgrp of \(path): caller is not the owner or not in group \(g)")
            }
            if let u = changes.uid, u != fileUid { opts.owner = ids.userName(u) }
            if let g = changes.gid {
                newGid = g
                if g != fileGid { opts.group = ids.groupName(g) }
            }
            // Linux: chown of a non-directory drops setuid, and setgid when group-executable
            // (the mandatory-locking marker S_ISGID without g+x is kept), for root too.
            if st.kind != .directory && changes.mode == nil {
                mode &= ~UInt32(S_ISUID)
                if mode & UInt32(S_IXGRP) != 0 { mode &= ~UInt32(S_ISGID) }
            }
        }
        if let m = changes.mode {
            if check && !owner { throw FSError(EPERM, "chmod of \(path): caller is not the owner") }
            var nm = m & 0o7777
            if check && !root && !ids.inGroup(ctx, newGid) { nm &= ~UInt32(S_ISGID) }
            mode = nm
        }
        for t in [changes.atime, changes.mtime] {
            guard let t, check, !owner else { continue }
            if case .at = t { throw FSError(EPERM, "utimes of \(path): caller is not the owner") }
            try require(accessW, st, ctx, "utimes \(path)")
        }
        if let a = changes.atime { opts.atimeMs = Self.ms(a) }
        if let m = changes.mtime { opts.mtimeMs = Self.ms(m) }
        if let size = changes.size {
            if st.kind == .directory { throw FSError(EISDIR, "\(path) is a directory") }
            if st.kind != .file { throw FSError(EINVAL, "\(path) is not a regular file") }
            if changes.fh == nil { try require(accessW, st, ctx, "truncate \(path)") }
            guard size <= UInt64(Int64.max) else { throw FSError(EFBIG, "size too large") }
            try resizeFile(ino: ino, path: path, open: open, to: Int64(size), truncate: true)
        }
        if mode != st.mode & 0o7777 { opts.mode = mode }
        var s = st
        if opts != SetAttrOptions() {
            s = try fsTry { try client.setAttr(path, opts) }
        } else if changes.size != nil {
            s = try fsTry { try client.fileStatus(path) }
        }
        table.lock.withLock { table.setStatusLocked(ino, s, expiresNs: expiry(statusTTL)) }
        return (attr(s, ino: ino, open: open), config.attrTimeout)
    }

    /// truncate/ftruncate/fallocate: through the inode's writer when it has one.
    func resizeFile(ino: UInt64, path: String, open: OpenFile?, to size: Int64, truncate: Bool) throws {
        try checkResizeAllowedUnderPassthrough(ino: ino, path: path)
        if let w = open?.writer {
            try w.resize(to: size, truncate: truncate)
        } else {
            _ = try fsTry { try client.resize(path, length: size, truncate: truncate, mode: 0) }
            open?.bumpDataVersion()
        }
        table.invalidateStatus(ino)
    }

    // MARK: handles

    /// Registers the handle `make` builds for a new fh (generation `nextFh` plus a slot
    /// index: FileHandleTable.swift), or under `fixed` (a handle restored after a
    /// hand-over keeps the number the kernel knows; later generations stay above its).
    func registerFile(fixed: UInt64? = nil, _ make: (UInt64) -> FileHandle) -> FileHandle {
        handleLock.withLock {
            let fh: UInt64
            if let f = fixed {
                fh = f
                nextFh = max(nextFh, (f >> FileHandleSlots.slotBits) + 1)
            } else {
                fh = fileHandles.reserveFh(generation: nextFh)
                nextFh += 1
            }
            let h = make(fh)
            fileHandles[fh] = h
            return h
        }
    }

    func fileHandle(_ fh: UInt64, _ ino: UInt64) throws -> FileHandle {
        guard let h = handleLock.withLock({ fileHandles[fh] }), h.ino == ino else {
            throw FSError(EBADF, "no open file handle \(fh) for inode \(ino)")
        }
        return h
    }

    /// Runs `body` with the open file `fh` of `ino` borrowed: from its slot without a lock
    /// or a retain when it has one (the READ hot path; why that is safe:
    /// FileHandleTable.swift), else from the map like `fileHandle(_:_:)`.
    @inline(__always)
    func withFileHandle<R>(_ fh: UInt64, _ ino: UInt64, _ body: (FileHandle) throws -> R) throws -> R {
        if let u = handleSlots.lookup(fh) {
            let hit = u._withUnsafeGuaranteedRef { $0.fh == fh && $0.ino == ino }
            if hit { return try u._withUnsafeGuaranteedRef(body) }
        }
        return try body(fileHandle(fh, ino))
    }

    func takeFileHandle(_ fh: UInt64) -> FileHandle? {
        handleLock.withLock { fileHandles.removeValue(forKey: fh) }
    }

    func registerDir(_ ino: UInt64) -> UInt64 {
        handleLock.withLock {
            let fh = nextFh
            nextFh += 1
            dirHandles[fh] = DirHandle(ino: ino)
            return fh
        }
    }

    func dirHandle(_ fh: UInt64) -> DirHandle? { handleLock.withLock { dirHandles[fh] } }
    func takeDirHandle(_ fh: UInt64) -> DirHandle? { handleLock.withLock { dirHandles.removeValue(forKey: fh) } }

    func nextHiddenName(_ ino: UInt64) -> String {
        let n = handleLock.withLock { () -> UInt64 in hiddenCounter += 1; return hiddenCounter }
        return "\(hiddenNamePrefix)\(ino).\(n)"
    }

    // MARK: shutdown

    /// Unmount/SIGTERM: commits every open writer (data becomes durable and complete),
    /// runs deferred deletes, closes streams and stops the io threads. Idempotent.
    public func shutdown() {
        let first = handleLock.withLock { () -> Bool in
            if isShutDown { return false }
            isShutDown = true
            return true
        }
        guard first else { return }
        let handles = handleLock.withLock { () -> [FileHandle] in
            let h = Array(fileHandles.values)
            fileHandles.removeAll()
            dirHandles.removeAll()
            retiredHandles.append(contentsOf: h)
            return h
        }
        for h in handles { h.reader.close() }
        var done = Set<ObjectIdentifier>()
        for o in table.allOpen() {
            if let w = o.writer, done.insert(ObjectIdentifier(w)).inserted {
                do { try w.commit() } catch { w.abandon() }
            }
            if o.deferredDelete, let p = try? table.path(o.ino) {
                try? client.delete(p, recursive: false)
            }
        }
        shutdownLocks()
        env.io.shutdown()
        env.readPool.trim()
        env.writePool.trim()
    }
}
