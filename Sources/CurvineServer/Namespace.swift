// The master's metadata: the directory tree, files and their blocks, symlinks, hard
// links, attributes, xattrs, locks and write leases, plus the registry of workers.
// Independent of networking: MasterServer decodes RPCs into calls on this class, and
// InProcessFileSystem calls it directly.
//
// Semantics follow upstream's master (curvine-master fs_dir.rs / master_filesystem.rs)
// and PROTOCOL.md §6.2; every failure is a CurvineError.remote(kind, message) with the
// kinds PROTOCOL.md lists. Deliberate differences are marked "Deviation:" at the code.
//
// Path resolution (PROTOCOL.md §6.2): walk from "/" and stop at the first missing
// component or the first non-directory; symlinks are never followed, so a path through
// a symlink (or a file) resolves as missing — FileNotFound for lookups, ParentNotDir
// for creations.
//
// Concurrency: one Lock guards everything; every public method takes it once. A
// mutation validates first, then changes the in-memory state while recording what it
// changed in a Txn, then appends the Txn to the journal; after releasing the lock it
// waits until the journal made the Txn durable (fsync'd when the options say so; one
// fsync serves every mutation waiting at the time, Journal.swift "group commit")
// before it returns, so a reply is sent only for state that survives a restart.
// If the journal cannot be written the namespace stops accepting mutations (IO error)
// rather than run ahead of its disk state.
//
// Persistence: Journal.swift + NamespaceCodec.swift (append-only redo journal and a
// snapshot written when the journal passes `compactionThresholdBytes`). With no
// journal directory the namespace lives in memory only.
//
// Blocks: a mutation that releases blocks (delete, overwrite, truncate, rename over a
// file) or shortens one (truncate) reports them through the block-event handler after
// it committed and released the lock; the embedded cluster wires that to each
// worker's BlockStore, which deletes or truncates the files at once (in process, no
// deletion list). Files orphaned by a crash between commit and deletion are swept by
// BlockStore.garbageCollect at the next start, against `referencedBlocks(onWorker:)`.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CurvineClient

/// Linux open(2) flags as CreateFile/OpenFile carry them (PROTOCOL.md §6.2).
public enum OpenFlags {
    public static let readOnly: UInt32 = 0x0
    public static let writeOnly: UInt32 = 0x1
    public static let readWrite: UInt32 = 0x2
    public static let accessMask: UInt32 = 0x3
    public static let create: UInt32 = 0x40
    public static let exclusive: UInt32 = 0x80
    public static let truncate: UInt32 = 0x200
    public static let append: UInt32 = 0x400
}

/// fallocate(2) mode bits the master accepts (PROTOCOL.md §6.2 ResizeFile).
public enum FallocateMode {
    public static let keepSize: Int32 = 1
    public static let zeroRange: Int32 = 16
}

/// Delete/Free outcome (FreeResultProto): inodes removed and bytes released.
public struct DeleteResult: Sendable, Equatable {
    public var inodes: Int64
    public var bytes: Int64
    public init(inodes: Int64 = 0, bytes: Int64 = 0) { self.inodes = inodes; self.bytes = bytes }
}

public final class Namespace: @unchecked Sendable {
    public struct Options: Sendable {
        /// Where journal and snapshot live; nil keeps everything in memory.
        public var journalDirectory: String?
        /// fsync every transaction before replying (off: survives a process restart but
        /// not a machine crash; for fast tests).
        public var syncJournal: Bool
        /// Journal size that triggers a snapshot (64 MiB: replay stays well under a
        /// second while snapshots stay rare).
        public var compactionThresholdBytes: Int = 64 << 20
        /// Lock lease (upstream master.lock_expire_time default "5m").
        public var lockExpireMs: UInt64 = 5 * 60 * 1000
        /// Smallest block size a file may have. Deviation: upstream's default is 1 MiB;
        /// 1 byte lets tests cross block boundaries with tiny files.
        public var minBlockSize: Int64 = 1
        /// Upstream master.max_block_size default (100 GiB); exclusive bound as upstream.
        public var maxBlockSize: Int64 = 100 << 30
        /// Upstream master.max_replication default (100); exclusive bound as upstream.
        public var maxReplicas: Int32 = 100
        /// Owner/group for requests that leave them empty (default: this process's user).
        public var defaultOwner: String
        public var defaultGroup: String
        /// Wall clock in ms (times, lock expiry); replaceable in tests.
        public var clock: @Sendable () -> Int64 = { wallClockMs() }

        public init(journalDirectory: String? = nil, syncJournal: Bool = true) {
            self.journalDirectory = journalDirectory
            self.syncJournal = syncJournal
            (defaultOwner, defaultGroup) = processUserAndGroup
        }
    }

    /// Root inode id (upstream ROOT_INODE_ID); new ids count up from it.
    public static let rootId: Int64 = 1000

    public let options: Options
    let lock = Lock()
    var inodes: [Int64: Inode] = [:]
    var root: Inode
    var nextInodeId: Int64 = Namespace.rootId + 1
    var seq: UInt64 = 0
    var journal: Journal?
    /// Set when the journal failed or the namespace was closed: every mutation fails.
    var failure: CurvineError?
    var workers = WorkerRegistry()
    var blockEventHandler: (@Sendable (BlockEvents) -> Void)?

    /// Opens (or creates) the namespace; with a journal directory, replays it.
    public init(options: Options = Options()) throws {
        self.options = options
        let now = options.clock()
        root = Inode(id: Namespace.rootId, kind: .directory, mode: 0o755, owner: options.defaultOwner,
                     group: options.defaultGroup, time: now)
        inodes[root.id] = root
        guard let dir = options.journalDirectory else { return }
        let j = Journal(directory: dir, sync: options.syncJournal)
        let contents = try j.open()
        if contents.droppedTailBytes > 0 {
            logServer("namespace journal in \(dir): dropped a torn tail of \(contents.droppedTailBytes) bytes")
        }
        do {
            var snapshotSeq: UInt64 = 0
            if let s = contents.snapshot {
                let snap = try NamespaceCodec.decodeSnapshot(s)
                try load(snap)
                snapshotSeq = snap.seq
            }
            for payload in contents.transactions {
                let t = try NamespaceCodec.decodeTxn(payload)
                guard t.seq > snapshotSeq else { continue }
                try replay(t)
            }
        } catch let e as DecodeError {
            throw ServerError.io("namespace journal in \(dir) is corrupt: \(e.description)")
        }
        journal = j
        if contents.snapshot == nil && contents.transactions.isEmpty {
            // A fresh data directory: record the root so its attributes are stable.
            try j.compact(snapshot: NamespaceCodec.encodeSnapshot(seq: seq, nextInodeId: nextInodeId, inodes: inodes))
        }
    }

    /// Closes the journal; later mutations fail. Reads keep working.
    public func close() {
        lock.withLock {
            journal?.close()
            journal = nil
            if failure == nil { failure = ServerError.io("namespace is closed") }
        }
    }

    /// Writes a snapshot and empties the journal now.
    public func compact() throws {
        try lock.withLock { try compactLocked() }
    }

    /// Called after every mutation that released or shortened blocks (outside the lock).
    public func setBlockEventHandler(_ h: (@Sendable (BlockEvents) -> Void)?) {
        lock.withLock { blockEventHandler = h }
    }

    // MARK: workers

    public func registerWorker(_ address: WorkerAddress, stats: @escaping @Sendable () -> WorkerStats) {
        lock.withLock { workers.register(address, stats: stats) }
    }

    /// A dead worker keeps its address for readers but gets no new blocks.
    public func setWorkerLive(_ id: UInt32, _ live: Bool) {
        lock.withLock { workers.setLive(id, live) }
    }

    public func unregisterWorker(_ id: UInt32) {
        lock.withLock { workers.remove(id) }
    }

    public var liveWorkers: [WorkerAddress] {
        lock.withLock { workers.live.map(\.address) }
    }

    /// Every block id the namespace places on `worker` (for orphan collection).
    public func referencedBlocks(onWorker worker: UInt32) -> Set<Int64> {
        lock.withLock {
            var out = Set<Int64>()
            for i in inodes.values { for b in i.blocks where b.workers.contains(worker) { out.insert(b.id) } }
            return out
        }
    }

    // MARK: loading

    private func load(_ s: DecodedSnapshot) throws {
        inodes = [:]
        for i in s.inodes { inodes[i.id] = i }
        guard let r = inodes[Namespace.rootId], r.isDir else {
            throw DecodeError(description: "snapshot has no root directory")
        }
        root = r
        for e in s.edges { try linkEdge(e.parent, e.name, e.child) }
        nextInodeId = max(nextInodeId, s.nextInodeId)
        seq = s.seq
    }

    private func replay(_ t: DecodedTxn) throws {
        for p in t.puts {
            if let existing = inodes[p.id] { existing.copyAttributes(from: p) } else { inodes[p.id] = p }
        }
        for e in t.edges {
            switch e {
            case .link(let p, let n, let c): try linkEdge(p, n, c)
            case .unlink(let p, let n): unlinkEdge(p, n)
            }
        }
        for d in t.deletes where d != Namespace.rootId { inodes[d] = nil }
        nextInodeId = max(nextInodeId, t.nextInodeId)
        seq = t.seq
    }

    // MARK: primitives shared by live mutations and replay

    /// Sets directory entry `name` of `parentId` to `childId`, keeping subdir counts.
    func linkEdge(_ parentId: Int64, _ name: NameKey, _ childId: Int64) throws {
        guard let parent = inodes[parentId], parent.isDir, let child = inodes[childId] else {
            throw DecodeError(description: "entry \(parentId)/\(String(decoding: name, as: UTF8.self)) -> \(childId) names a missing inode")
        }
        unlinkEdge(parentId, name)
        parent.setChild(name, childId)
        if child.isDir {
            parent.subdirCount += 1
            child.parentId = parentId
        }
    }

    func unlinkEdge(_ parentId: Int64, _ name: NameKey) {
        guard let parent = inodes[parentId], let old = parent.removeChild(name) else { return }
        if let o = inodes[old], o.isDir { parent.subdirCount -= 1 }
    }

    /// Live: adds an entry and records it.
    func attach(_ parent: Inode, _ name: String, _ child: Inode, _ txn: inout Txn) {
        if inodes[child.id] == nil { inodes[child.id] = child }
        let key = nameKey(name)
        try! linkEdge(parent.id, key, child.id)  // both inodes exist: cannot fail
        txn.put(child)
        txn.put(parent)
        txn.link(parent.id, key, child.id)
    }

    /// Live: removes an entry and records it.
    func detach(_ parent: Inode, _ name: String, _ txn: inout Txn) {
        let key = nameKey(name)
        unlinkEdge(parent.id, key)
        txn.put(parent)
        txn.unlink(parent.id, key)
    }

    /// Live: forgets an inode; releases a file's blocks.
    func drop(_ i: Inode, _ txn: inout Txn) {
        inodes[i.id] = nil
        txn.delete(i.id)
        for b in i.blocks where !b.workers.isEmpty {
            txn.events.deleted.append(BlockRef(id: b.id, length: b.length, workers: b.workers))
        }
    }

    func newInodeId() -> Int64 {
        defer { nextInodeId += 1 }
        return nextInodeId
    }

    var now: Int64 { options.clock() }

    func owner(_ s: String?) -> String { (s?.isEmpty ?? true) ? options.defaultOwner : s! }
    func group(_ s: String?) -> String { (s?.isEmpty ?? true) ? options.defaultGroup : s! }

    // MARK: transactions

    /// Runs a mutation under the lock, journals what it recorded, then reports block
    /// events outside the lock. If `body` throws after recording changes (it should
    /// validate first, so only on a bug), the recorded part is still journaled so disk
    /// and memory agree.
    /// Block events are reported only once the Txn is durable: files of blocks a
    /// crash could bring back must not be deleted before.
    func mutate<T>(_ body: (inout Txn) throws -> T) throws -> T {
        var events = BlockEvents()
        var handler: (@Sendable (BlockEvents) -> Void)?
        var ticket: (Journal, UInt64)?
        let result: Result<T, Error> = try lock.withLock {
            if let f = failure { throw f }
            var txn = Txn()
            let r = Result { try body(&txn) }
            if !txn.isEmpty { ticket = try commitLocked(txn) }
            events = txn.events
            handler = blockEventHandler
            return r
        }
        if let (j, t) = ticket {
            do { try j.waitDurable(t) } catch {
                let e = ServerError.io("journal sync failed, the master stops accepting changes: \(wireError(error).1)")
                lock.withLock { if failure == nil { failure = e } }
                throw e
            }
        }
        if !events.isEmpty, let h = handler { h(events) }
        return try result.get()
    }

    /// Journals `txn` (not yet durable): returns the journal and the ticket to wait for.
    private func commitLocked(_ txn: Txn) throws -> (Journal, UInt64)? {
        seq += 1
        guard let j = journal else { return nil }
        let ticket: UInt64
        do {
            ticket = try j.append(txn.encode(seq: seq, nextInodeId: nextInodeId))
        } catch {
            let e = ServerError.io("journal write failed, the master stops accepting changes: \(wireError(error).1)")
            failure = e
            throw e
        }
        if j.size > options.compactionThresholdBytes {
            do { try compactLocked() } catch {
                logServer("namespace snapshot failed (journal kept): \(wireError(error).1)")
            }
        }
        return (j, ticket)
    }

    private func compactLocked() throws {
        guard let j = journal else { return }
        try j.compact(snapshot: NamespaceCodec.encodeSnapshot(seq: seq, nextInodeId: nextInodeId, inodes: inodes))
    }

    // MARK: resolution

    struct Resolution {
        let path: ParsedPath
        /// Root first; stops after a missing component or at the first non-directory.
        var inodes: [Inode]

        var last: Inode? { inodes.count == path.components.count + 1 ? inodes.last : nil }

        /// Parent directory of the last component, when the walk reached it.
        var parent: Inode? {
            let n = path.components.count
            guard n > 0, inodes.count >= n, inodes[n - 1].isDir else { return nil }
            return inodes[n - 1]
        }
    }

    func resolve(_ p: ParsedPath) -> Resolution {
        var list = [root]
        var cur = root
        for c in p.components {
            guard cur.isDir, let id = cur.child(nameKey(c)), let next = inodes[id] else { break }
            list.append(next)
            cur = next
        }
        return Resolution(path: p, inodes: list)
    }

    /// The existing inode at `path`, or FileNotFound.
    func lookup(_ p: ParsedPath) throws -> (Resolution, Inode) {
        let r = resolve(p)
        guard let i = r.last else { throw ServerError.fileNotFound(p.text) }
        return (r, i)
    }

    /// The directory a new entry at `r.path` goes into. With `createParent`, missing
    /// directories are made (mode/owner/group given; upstream's parent_opts/dir_opts);
    /// without, a missing parent is FileNotFound. A file or symlink on the way is
    /// ParentNotDir either way.
    func creationParent(_ r: Resolution, createParent: Bool, mode: UInt32, owner: String, group: String,
                        _ txn: inout Txn) throws -> Inode {
        let p = r.path
        let end = r.inodes.last!
        if !end.isDir { throw ServerError.parentNotDir(p.prefix(r.inodes.count - 1)) }
        if r.inodes.count >= p.components.count { return end }
        if !createParent { throw ServerError.fileNotFound(p.parentText) }
        var parent = end
        for idx in (r.inodes.count - 1)..<(p.components.count - 1) {
            let d = makeDirectory(in: parent, mode: mode, owner: owner, group: group)
            attach(parent, p.components[idx], d, &txn)
            parent = d
        }
        return parent
    }

    /// A new directory inode under `parent` (not yet attached). A setgid parent passes
    /// its group and the setgid bit on (upstream setgid_parent_group).
    func makeDirectory(in parent: Inode, mode: UInt32, owner: String, group: String) -> Inode {
        let t = now
        let setgid = parent.mode & UInt32(S_ISGID) != 0
        let d = Inode(id: newInodeId(), kind: .directory, mode: setgid ? mode | UInt32(S_ISGID) : mode,
                      owner: owner, group: setgid ? parent.group : group, time: t)
        parent.mtime = t
        parent.ctime = t
        return d
    }

    func touchDir(_ d: Inode, _ txn: inout Txn) {
        let t = now
        d.mtime = t
        d.ctime = t
        txn.put(d)
    }

    // MARK: reads

    public func fileStatus(_ path: String) throws -> FileStatus {
        let p = try parsePath(path)
        return try lock.withLock {
            let (_, i) = try lookup(p)
            return i.status(path: p.text, name: p.name)
        }
    }

    public func exists(_ path: String) throws -> Bool {
        let p = try parsePath(path)
        return lock.withLock { resolve(p).last != nil }
    }

    /// Every child of a directory in byte-wise name order; a file lists as itself.
    /// Deviation: upstream expands a glob pattern in `path` (listing every match); here
    /// the path is always literal.
    public func listStatus(_ path: String) throws -> [FileStatus] {
        try list(path, startAfter: nil, limit: nil)
    }

    /// One page: children whose name sorts strictly after `startAfter`, at most `limit`
    /// (nil = all; 0 = empty page; negative = Common error, as upstream). A path with
    /// glob characters (* ? [ { \) is refused with Common, as upstream does.
    public func listOptions(_ path: String, startAfter: String?, limit: Int?) throws -> [FileStatus] {
        if let l = limit, l < 0 { throw ServerError.common("list options limit must be greater than 0") }
        if isGlobPattern(path) {
            throw ServerError.common("list_options does not support glob pattern, path \(path)")
        }
        return try list(path, startAfter: startAfter, limit: limit)
    }

    private func list(_ path: String, startAfter: String?, limit: Int?) throws -> [FileStatus] {
        let p = try parsePath(path)
        return try lock.withLock {
            let (_, i) = try lookup(p)
            if limit == 0 { return [] }
            guard i.isDir else {
                if let sa = startAfter, !nameLess(nameKey(sa), nameKey(p.name)) { return [] }
                return [i.status(path: p.text, name: p.name)]
            }
            let keys = i.sortedKeys
            var lo = 0
            if let sa = startAfter {
                let k = nameKey(sa)
                var hi = keys.count
                while lo < hi {
                    let mid = (lo + hi) / 2
                    if nameLess(k, keys[mid]) { hi = mid } else { lo = mid + 1 }
                }
            }
            let end = limit.map { min(keys.count, lo + $0) } ?? keys.count
            var out: [FileStatus] = []
            out.reserveCapacity(end - lo)
            for k in keys[lo..<end] {
                guard let c = inodes[i.children[k]!] else { continue }
                let name = String(decoding: k, as: UTF8.self)
                out.append(c.status(path: p.child(name), name: name))
            }
            return out
        }
    }

    /// The file's status and blocks (GetBlockLocations; OpenFile read-only).
    public func blockLocations(_ path: String) throws -> FileBlocks {
        let p = try parsePath(path)
        return try lock.withLock {
            let (_, i) = try lookup(p)
            if i.isDir { throw ServerError.notAFile(p.text) }
            return FileBlocks(status: i.status(path: p.text, name: p.name), blocks: try located(i, p.text))
        }
    }

    /// Blocks with worker addresses (hole blocks have none). A data block whose workers
    /// are all unknown is upstream's "block Lost" Common error.
    func located(_ f: Inode, _ path: String) throws -> [LocatedBlock] {
        try f.blocks.map { b in
            if b.isHole { return LocatedBlock(id: b.id, length: b.length, locations: [], isHole: true) }
            let locs = b.workers.compactMap { workers.address($0) }
            if locs.isEmpty {
                throw ServerError.common("File \(path), block \(b.id) Lost (no worker can read)")
            }
            return LocatedBlock(id: b.id, length: b.length, locations: locs)
        }
    }

    /// Cluster numbers for statfs (GetFilesystemInfo). Worker stats are gathered
    /// outside the lock (they stat the disk).
    public func filesystemInfo(activeMaster: String) -> FilesystemInfo {
        let (entries, files, dirs) = lock.withLock { () -> ([WorkerRegistry.Entry], Int64, Int64) in
            var f: Int64 = 0, d: Int64 = 0
            for i in inodes.values { if i.isDir { d += 1 } else { f += 1 } }
            return (workers.live, f, d)
        }
        var info = FilesystemInfo(activeMaster: activeMaster, fileCount: files, dirCount: dirs)
        for e in entries {
            let s = e.stats()
            info.capacity += s.capacity
            info.available += s.available
            info.used += s.used
            info.liveWorkers.append(e.address)
        }
        return info
    }

    /// Every registered worker with fresh stats.
    public func workerReports() -> [WorkerReport] {
        let entries = lock.withLock { workers.entries.keys.sorted().compactMap { workers.entries[$0] } }
        return entries.map { WorkerReport(address: $0.address, live: $0.live, stats: $0.stats()) }
    }

    /// Number of blocks the namespace tracks (GetFilesystemInfo.block_num).
    public var blockCount: Int64 {
        lock.withLock { inodes.values.reduce(0) { $0 + Int64($1.blocks.count) } }
    }
}

/// This process's user and group names (the default owner of new inodes). Looked up
/// once: getpwuid/getgrgid return static buffers, and a Swift global initialises once,
/// thread-safely.
let processUserAndGroup: (String, String) = {
    var user = "root", group = "root"
    if let pw = getpwuid(geteuid()), let n = pw.pointee.pw_name { user = String(cString: n) }
    if let gr = getgrgid(getegid()), let n = gr.pointee.gr_name { group = String(cString: n) }
    return (user, group)
}()

/// Diagnostics of the embedded servers go to stderr (stdout carries the CLI's ready line).
func logServer(_ message: String) {
    var line = "curvine-server: " + message + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}
