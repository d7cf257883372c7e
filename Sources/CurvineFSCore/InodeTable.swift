// The inode table: FUSE inode numbers <-> Curvine inodes, kernel lookup counts, the
// dentry tree that turns an inode into a Curvine path, and the status/entry/negative
// caches.
//
// LOCK ORDER (acquire downwards only; never call out to the network holding 1–4):
//   1. InodeTable.lock           nodes, dentries, caches, ino mapping, OpenFile.handles
//   2. FileWriter.cond           one per inode open for writing: buffers, length, io token
//   3. FileReader.cond           one per open file handle: prefetch units, stream cache
//   4. leaf locks                FileSystemCore.handleLock, OpenFile.lock (writer pointer,
//                                data version), BufferPool, IOThreadPool, IdentityMap,
//                                CoreEnv stats — taken last, nothing taken under them
//   DirHandle.lock is taken with nothing else held and is the one lock held across a
//   network call (ListOptions): it serialises the pages of one directory stream, which
//   the kernel serialises anyway; no other thread ever waits on it.
//   The writer's "io token" (FileWriter.busy) is a flag, not a mutex: whoever holds it
//   talks to the master/workers for that file with no lock held.
//
// Inode numbers: the Curvine inode id *is* the FUSE ino (upstream does the same), so
// inode numbers are stable across lookups, forgets and remounts, hard links share one
// ino for free, and readdir can report real inos without creating table entries for
// a million-entry directory. The mount root (fs_path) is FUSE_ROOT_ID 1 whatever its
// id; ids that cannot be used directly (< 2, >= 2^62) get numbers from 2^62 up,
// remembered for the life of the mount.
//
// Paths: Curvine is path-addressed, so every node keeps its primary (parent, name); a
// path is built by walking parents to the root. A node stays in the table while the
// kernel has lookups on it, a handle is open on it, or a child node hangs below it
// (the kernel pins parents of cached dentries, so this is what it expects too). Hard
// links: a node reached under several names keeps the extra ones as aliases; if the
// primary name goes away, an alias takes its place.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CurvineClient

/// A directory entry name compared and hashed as bytes (Curvine, like Linux, treats two
/// canonically equivalent but differently spelled names as different entries; Swift's
/// String equality would merge them).
struct NameKey: Hashable {
    let s: String
    init(_ s: String) { self.s = s }
    static func == (a: NameKey, b: NameKey) -> Bool { a.s.utf8.elementsEqual(b.s.utf8) }
    func hash(into h: inout Hasher) {
        var u = s.utf8
        if let done: Void = u.withContiguousStorageIfAvailable({ h.combine(bytes: UnsafeRawBufferPointer($0)) }) {
            _ = done
        } else {
            u = s.utf8
            for b in u { h.combine(b) }
        }
        h.combine(s.utf8.count)
    }
}

struct ChildRef {
    var ino: UInt64
    /// Monotonic ns after which the kernel-facing entry is stale in user space too.
    var expiresNs: UInt64
}

/// Data state of an inode with open handles (shared by all handles of the inode).
final class OpenFile {
    let ino: UInt64
    /// Open file handles (all modes). Guarded by InodeTable.lock.
    var handles = 0
    /// Writable handles. Guarded by InodeTable.lock.
    var writableHandles = 0
    /// Unlinked while open: the name was renamed to a hidden one; delete it at last
    /// release. Guarded by InodeTable.lock.
    var deferredDelete = false
    /// A leaf lock for the two fields the read path checks on every request.
    private let lock = Lock()
    private var _writer: FileWriter?
    private var _dataVersion: UInt64 = 0

    init(ino: UInt64) { self.ino = ino }

    /// The shared per-inode writer (set with the first writable handle).
    var writer: FileWriter? {
        get { lock.withLock { _writer } }
        set { lock.withLock { _writer = newValue } }
    }

    /// Bumped whenever the file's data changes through this mount (writer flush/commit,
    /// truncate, fallocate): readers refresh their block list when it moves.
    var dataVersion: UInt64 { lock.withLock { _dataVersion } }
    func bumpDataVersion() { lock.withLock { _dataVersion &+= 1 } }
}

final class Node {
    let ino: UInt64
    var id: Int64
    /// Primary parent and name (root: itself and "").
    var parent: UInt64
    var name: String
    /// Other names of a hard-linked file known to the kernel.
    var aliases: [(parent: UInt64, name: String)] = []
    /// Kernel references (lookup/create/mkdir/readdirplus replies minus forgets).
    var lookups: UInt64 = 0
    /// Nodes whose primary or alias name lives in this directory.
    var childRefs = 0
    var status: FileStatus?
    var statusExpiresNs: UInt64 = 0
    /// Dentry cache of this directory: names the kernel looked up.
    var children: [NameKey: ChildRef] = [:]
    /// Negative dentry cache: name -> expiry.
    var negatives: [NameKey: UInt64] = [:]
    /// Set while handles are open.
    var open: OpenFile?
    /// (mtime, length) seen at the last open: KEEP_CACHE when unchanged.
    var lastOpenSnapshot: (Int64, Int64)?

    init(ino: UInt64, id: Int64, parent: UInt64, name: String) {
        self.ino = ino; self.id = id; self.parent = parent; self.name = name
    }
}

final class InodeTable: @unchecked Sendable {
    static let rootIno: UInt64 = 1
    private static let firstSyntheticIno: UInt64 = 1 << 62

    let lock = Lock()
    let rootPath: String
    private(set) var rootId: Int64
    var nodes: [UInt64: Node] = [:]  // internal: InodeTable+Handover.swift
    var syntheticInos: [Int64: UInt64] = [:]
    var nextSynthetic = InodeTable.firstSyntheticIno
    /// Stat-ahead state (see "stat-ahead" below).
    private var ahead: [UInt64: AheadDir] = [:]
    private var aheadById: [Int64: (parent: UInt64, key: NameKey)] = [:]
    private var aheadCount = 0
    /// Directories whose AheadDir holds an AbsentRange (skips the lookup when none do).
    private var absentRanges = 0
    /// Names held by all absent ranges' `present` sets (bounded by absentMaxNames).
    private var absentNames = 0
    private var listingsInFlight = 0
    private var changeSeq: UInt64 = 0
    private var changeLogFloor: UInt64 = 0
    private var changedNames: [(seq: UInt64, parent: UInt64, key: NameKey)] = []
    private var changedIds: [(seq: UInt64, id: Int64)] = []

    init(rootPath: String, rootStatus: FileStatus) {
        self.rootPath = rootPath
        self.rootId = rootStatus.id
        let root = Node(ino: Self.rootIno, id: rootStatus.id, parent: Self.rootIno, name: "")
        root.status = rootStatus
        root.lookups = 1
        nodes[Self.rootIno] = root
    }

    var count: Int { lock.withLock { nodes.count } }

    // MARK: ino mapping (lock held)

    func inoLocked(forId id: Int64) -> UInt64 {
        if id == rootId { return Self.rootIno }
        if id >= 2 && UInt64(id) < Self.firstSyntheticIno { return UInt64(id) }
        if let s = syntheticInos[id] { return s }
        let s = nextSynthetic
        nextSynthetic += 1
        syntheticInos[id] = s
        return s
    }

    func ino(forId id: Int64) -> UInt64 { lock.withLock { inoLocked(forId: id) } }

    // MARK: lookups of the table (lock held)

    func nodeLocked(_ ino: UInt64) -> Node? { nodes[ino] }

    func pathLocked(_ n: Node) -> String? {
        if n.ino == Self.rootIno { return rootPath }
        var comps: [String] = []
        var cur = n
        while cur.ino != Self.rootIno {
            comps.append(cur.name)
            guard let p = nodes[cur.parent], comps.count < 4096 else { return nil }
            cur = p
        }
        var s = rootPath == "/" ? "" : rootPath
        for c in comps.reversed() { s += "/"; s += c }
        return s
    }

    func childPath(_ parentPath: String, _ name: String) -> String {
        parentPath == "/" ? "/" + name : parentPath + "/" + name
    }

    /// The Curvine path of `ino`; ESTALE when the kernel names an inode we no longer know.
    func path(_ ino: UInt64) throws -> String {
        try lock.withLock {
            guard let n = nodes[ino] else { throw FSError(ESTALE, "inode \(ino) is not known (forgotten)") }
            guard let p = pathLocked(n) else { throw FSError(ESTALE, "inode \(ino) has no path") }
            return p
        }
    }

    /// Path of `name` in directory `parent`.
    func path(_ parent: UInt64, _ name: String) throws -> String {
        childPath(try path(parent), name)
    }

    /// Path and fresh cached status of `ino` (status nil when absent or expired).
    func pathAndStatus(_ ino: UInt64, now: UInt64) throws -> (String, FileStatus?, OpenFile?) {
        try lock.withLock {
            guard let n = nodes[ino] else { throw FSError(ESTALE, "inode \(ino) is not known (forgotten)") }
            guard let p = pathLocked(n) else { throw FSError(ESTALE, "inode \(ino) has no path") }
            let s = n.statusExpiresNs > now ? n.status : nil
            return (p, s, n.open)
        }
    }

    /// Cached status even when expired (for data paths that only need the kind/block size).
    func anyStatus(_ ino: UInt64) -> FileStatus? { lock.withLock { nodes[ino]?.status } }

    // MARK: cache updates

    /// Records that `name` in `parent` is `status`; creates or updates the node, points the
    /// dentry at it, clears a negative entry, and adds `lookups` kernel references.
    @discardableResult
    func rememberLocked(parent: UInt64, name: String, status: FileStatus, lookups: UInt64,
                        statusExpiresNs: UInt64, entryExpiresNs: UInt64) -> Node {
        let ino = inoLocked(forId: status.id)
        let key = NameKey(name)
        aheadNameChangedLocked(parent, key)
        let p = nodes[parent]
        p?.negatives.removeValue(forKey: key)
        // A different inode previously cached under this name: that dentry is gone.
        if let old = p?.children[key], old.ino != ino, let on = nodes[old.ino] {
            unlinkNameLocked(on, parent: parent, name: name)
        }
        let node: Node
        if let n = nodes[ino] {
            node = n
            if n.id != status.id { n.id = status.id }
            if ino != Self.rootIno {
                let isPrimary = n.parent == parent && NameKey(n.name) == key
                let isAlias = n.aliases.contains { $0.parent == parent && NameKey($0.name) == key }
                if !isPrimary && !isAlias {
                    if status.kind == .directory || n.children.count > 0 {
                        // A directory has one name: it moved (renamed by another client).
                        moveRefLocked(from: n.parent, to: parent)
                        n.parent = parent
                        n.name = name
                    } else if nodes[n.parent]?.children[NameKey(n.name)]?.ino != ino {
                        // The primary name is no longer ours: take over this one.
                        moveRefLocked(from: n.parent, to: parent)
                        n.parent = parent
                        n.name = name
                    } else {
                        n.aliases.append((parent, name))
                        nodes[parent]?.childRefs += 1
                    }
                }
            }
        } else {
            node = Node(ino: ino, id: status.id, parent: parent, name: name)
            nodes[ino] = node
            nodes[parent]?.childRefs += 1
        }
        node.status = status
        node.statusExpiresNs = statusExpiresNs
        node.lookups += lookups
        if ino != Self.rootIno { p?.children[key] = ChildRef(ino: ino, expiresNs: entryExpiresNs) }
        return node
    }

    private func moveRefLocked(from old: UInt64, to new: UInt64) {
        if old == new { return }
        nodes[new]?.childRefs += 1
        if let o = nodes[old] {
            o.childRefs -= 1
            maybeRemoveLocked(o)
        }
    }

    /// The dentry `name` in `parent` no longer names `n` (unlink, rename away, replaced).
    func unlinkNameLocked(_ n: Node, parent: UInt64, name: String) {
        let key = NameKey(name)
        aheadNameChangedLocked(parent, key)
        aheadIdChangedLocked(n.id)
        if let p = nodes[parent], p.children[key]?.ino == n.ino { p.children.removeValue(forKey: key) }
        if let i = n.aliases.firstIndex(where: { $0.parent == parent && NameKey($0.name) == key }) {
            n.aliases.remove(at: i)
            if let p = nodes[parent] { p.childRefs -= 1; maybeRemoveLocked(p) }
        } else if n.parent == parent && NameKey(n.name) == key, let a = n.aliases.first {
            n.aliases.removeFirst()
            n.parent = a.parent
            n.name = a.name
            if let p = nodes[parent] { p.childRefs -= 1; maybeRemoveLocked(p) }
        }
        // Otherwise the node keeps its (now dangling) primary name: the kernel may still
        // hold it; path ops on it find another inode or nothing and fail ESTALE/ENOENT.
    }

    func setStatusLocked(_ ino: UInt64, _ status: FileStatus, expiresNs: UInt64) {
        guard let n = nodes[ino] else { return }
        aheadIdChangedLocked(n.id)
        n.status = status
        n.statusExpiresNs = expiresNs
    }

    func invalidateStatus(_ ino: UInt64) {
        lock.withLock { invalidateStatusLocked(ino) }
    }

    func invalidateStatusLocked(_ ino: UInt64) {
        guard let n = nodes[ino] else { return }
        aheadIdChangedLocked(n.id)
        n.statusExpiresNs = 0
    }

    /// Fresh dentry + status for `name` in `parent`: (node, status) or nil.
    func cachedChildLocked(_ parent: UInt64, _ name: String, now: UInt64) -> Node? {
        guard let p = nodes[parent], let c = p.children[NameKey(name)], c.expiresNs > now,
              let n = nodes[c.ino], n.statusExpiresNs > now, n.status != nil else { return nil }
        return n
    }

    /// The node the dentry cache has for `name` in `parent`, fresh or not.
    func childNodeLocked(_ parent: UInt64, _ name: String) -> Node? {
        guard let c = nodes[parent]?.children[NameKey(name)] else { return nil }
        return nodes[c.ino]
    }

    func isNegativeLocked(_ parent: UInt64, _ name: String, now: UInt64) -> Bool {
        guard let p = nodes[parent], let e = p.negatives[NameKey(name)] else { return false }
        if e > now { return true }
        p.negatives.removeValue(forKey: NameKey(name))
        return false
    }

    func setNegativeLocked(_ parent: UInt64, _ name: String, expiresNs: UInt64) {
        let key = NameKey(name)
        aheadNameChangedLocked(parent, key)
        guard let p = nodes[parent] else { return }
        if let c = p.children[key], let n = nodes[c.ino] { unlinkNameLocked(n, parent: parent, name: name) }
        p.children.removeValue(forKey: key)
        if expiresNs > 0 {
            if p.negatives.count > 100_000 { p.negatives.removeAll(keepingCapacity: true) }
            p.negatives[key] = expiresNs
        } else {
            p.negatives.removeValue(forKey: key)
        }
    }

    func clearNegativeLocked(_ parent: UInt64, _ name: String) {
        nodes[parent]?.negatives.removeValue(forKey: NameKey(name))
    }

    /// Moves the dentry (parent, name) -> (newParent, newName) after a successful rename.
    /// Whatever the destination named before is unlinked. `ino` is the inode the caller
    /// knows was moved (from the master's status): it is retargeted even when the dentry
    /// cache no longer points at it (a concurrent negative lookup may have dropped it),
    /// so the node's path follows the rename.
    func renameLocked(_ parent: UInt64, _ name: String, _ newParent: UInt64, _ newName: String, now: UInt64,
                      entryExpiresNs: UInt64, ino: UInt64? = nil) {
        let key = NameKey(name), newKey = NameKey(newName)
        aheadNameChangedLocked(parent, key)
        aheadNameChangedLocked(newParent, newKey)
        let moving = ino.flatMap { nodes[$0] } ?? nodes[parent]?.children[key].flatMap { nodes[$0.ino] }
        if let m = moving { aheadIdChangedLocked(m.id) }
        if let dst = nodes[newParent]?.children[newKey], dst.ino != moving?.ino, let dn = nodes[dst.ino] {
            unlinkNameLocked(dn, parent: newParent, name: newName)
        }
        nodes[newParent]?.children.removeValue(forKey: newKey)
        nodes[newParent]?.negatives.removeValue(forKey: newKey)
        nodes[parent]?.children.removeValue(forKey: key)
        guard let n = moving, n.ino != Self.rootIno else { return }
        retargetLocked(n, from: parent, key, to: newParent, newName)
        nodes[newParent]?.children[newKey] = ChildRef(ino: n.ino, expiresNs: entryExpiresNs)
        n.statusExpiresNs = 0  // ctime changed
    }

    /// Renames the name (from, fromKey) of `n` to (to, toName). A node whose recorded
    /// names do not include the old one (stale record) takes the new one as primary: it
    /// is a valid path of the inode, which is all a path is used for.
    private func retargetLocked(_ n: Node, from: UInt64, _ fromKey: NameKey, to: UInt64, _ toName: String) {
        if let i = n.aliases.firstIndex(where: { $0.parent == from && NameKey($0.name) == fromKey }),
           !(n.parent == from && NameKey(n.name) == fromKey) {
            n.aliases[i] = (to, toName)
            moveRefLocked(from: from, to: to)
            return
        }
        let old = n.parent
        n.parent = to
        n.name = toName
        moveRefLocked(from: old, to: to)
    }

    /// RENAME_EXCHANGE: swaps the two dentries (`ino1`/`ino2`: the inodes the master had
    /// under them, retargeted even when the dentry cache lost track of them).
    func exchangeLocked(_ p1: UInt64, _ n1: String, _ p2: UInt64, _ n2: String, entryExpiresNs: UInt64,
                        ino1: UInt64? = nil, ino2: UInt64? = nil) {
        let k1 = NameKey(n1), k2 = NameKey(n2)
        aheadNameChangedLocked(p1, k1)
        aheadNameChangedLocked(p2, k2)
        let a = ino1.flatMap { nodes[$0] } ?? nodes[p1]?.children[k1].flatMap { nodes[$0.ino] }
        let b = ino2.flatMap { nodes[$0] } ?? nodes[p2]?.children[k2].flatMap { nodes[$0.ino] }
        if let a { aheadIdChangedLocked(a.id) }
        if let b { aheadIdChangedLocked(b.id) }
        nodes[p1]?.children.removeValue(forKey: k1)
        nodes[p2]?.children.removeValue(forKey: k2)
        // Pin both parents so neither goes away between the two moves.
        nodes[p1]?.childRefs += 1
        nodes[p2]?.childRefs += 1
        for (n, fp, fk, tp, tn) in [(a, p1, k1, p2, n2), (b, p2, k2, p1, n1)] {
            guard let n, n.ino != Self.rootIno else { continue }
            retargetLocked(n, from: fp, fk, to: tp, tn)
            nodes[tp]?.children[NameKey(tn)] = ChildRef(ino: n.ino, expiresNs: entryExpiresNs)
            n.statusExpiresNs = 0
        }
        for p in [p1, p2] {
            guard let pn = nodes[p] else { continue }
            pn.childRefs -= 1
            maybeRemoveLocked(pn)
        }
    }

    // MARK: stat-ahead
    //
    // A scan of a directory in name order (ls -l, find, rm -r, a loop over files in
    // order) costs one master round trip per lookup. When lookups in one directory miss
    // the caches in increasing name order, the core fetches the next page of the
    // directory listing (ListOptions, which carries full statuses) in the background and
    // keeps its entries here; a later lookup miss of one of those names is answered from
    // it instead of from FileStatus. An entry is exactly what a lookup at listing time
    // would have returned, and it is used only until the status TTL after the listing
    // (the staleness the status cache already allows), never for a negative answer.
    //
    // Local changes win: any change this mount makes to a name (create, unlink, rename,
    // a fresh lookup) or to an inode's status (setattr, write, flush, xattr, link) drops
    // its entry, and a page whose listing was in flight during such a change skips the
    // names and inodes changed meanwhile (a small change log kept only while a listing
    // runs; if it overflows, the page is dropped). Names with hard links (nlink > 1) are
    // never kept: a change under another name would not find them.

    final class AheadDir {
        var entries: [NameKey: (status: FileStatus, expiresNs: UInt64)] = [:]
        /// Scans in progress, least recently advanced first: the last miss of each run of
        /// misses in increasing name order, and the run's length. Several threads of one
        /// job each scanning (or creating) their own slice of names interleave their
        /// lookups; one cursor each keeps every slice a run.
        var cursors: [(name: String, streak: Int)] = []
        var inFlight = false
        /// What recent listings prove missing (AbsentRange.swift), oldest first.
        var absent: [AbsentRange] = []
    }

    /// Interleaved scans of one directory told apart (threads of one job); a further
    /// scan replaces the least recently advanced one.
    static let aheadMaxCursors = 8
    /// Absent ranges kept per directory (one per recent listing: one per scan, as above).
    static let absentMaxRanges = 8
    /// Names all absent ranges together may hold (~13 MiB at ~50 bytes each); a range
    /// that would pass it is dropped (its directory's misses ask the master again).
    static let absentMaxNames = 1 << 18

    /// Most stat-ahead entries kept at once (all directories); past it no page is fetched.
    static let aheadMaxEntries = 16_384
    /// Change-log length past which pages in flight are dropped instead of filtered.
    private static let changeLogMax = 16_384

    @inline(__always) private func aheadNameChangedLocked(_ parent: UInt64, _ key: NameKey) {
        if aheadCount > 0, let d = ahead[parent], let e = d.entries.removeValue(forKey: key) {
            aheadCount -= 1
            if let r = aheadById[e.status.id], r.parent == parent, r.key == key { aheadById.removeValue(forKey: e.status.id) }
        }
        if absentRanges > 0, let d = ahead[parent], !d.absent.isEmpty {
            let now = monotonicNs()
            for i in d.absent.indices.reversed() {
                // Expired ranges go rather than grow.
                if d.absent[i].expiresNs <= now {
                    removeAbsentLocked(d, at: i)
                    continue
                }
                let before = d.absent[i].size
                let keep = d.absent[i].noteChanged(key)
                absentNames += d.absent[i].size - before
                if !keep || absentNames > Self.absentMaxNames { removeAbsentLocked(d, at: i) }
            }
        }
        if listingsInFlight > 0 {
            changeSeq &+= 1
            changedNames.append((changeSeq, parent, key))
            trimChangeLogLocked()
        }
    }

    @inline(__always) private func aheadIdChangedLocked(_ id: Int64) {
        if aheadCount > 0, let r = aheadById.removeValue(forKey: id), let d = ahead[r.parent],
           d.entries.removeValue(forKey: r.key) != nil {
            aheadCount -= 1
        }
        if listingsInFlight > 0 {
            changeSeq &+= 1
            changedIds.append((changeSeq, id))
            trimChangeLogLocked()
        }
    }

    private func trimChangeLogLocked() {
        if changedNames.count + changedIds.count > Self.changeLogMax {
            changedNames.removeAll(keepingCapacity: true)
            changedIds.removeAll(keepingCapacity: true)
            changeLogFloor = changeSeq
        }
    }

    /// The stat-ahead status of `name` in `parent`, if one is kept and fresh (taken: the
    /// caller remembers it as a looked-up node).
    func takeAheadLocked(_ parent: UInt64, _ name: String, now: UInt64) -> FileStatus? {
        guard aheadCount > 0, let d = ahead[parent] else { return nil }
        let key = NameKey(name)
        guard let e = d.entries.removeValue(forKey: key) else { return nil }
        aheadCount -= 1
        if let r = aheadById[e.status.id], r.parent == parent, r.key == key { aheadById.removeValue(forKey: e.status.id) }
        return e.expiresNs > now ? e.status : nil
    }

    /// This mount is about to create `name` in `parent` (or rename onto it): whatever
    /// the outcome, stat-ahead must stop speaking for the name (a create whose reply
    /// is lost may still have happened on the master).
    func nameChanging(_ parent: UInt64, _ name: String) {
        lock.withLock { aheadNameChangedLocked(parent, NameKey(name)) }
    }

    /// True when the last listing of `parent` proves `name` missing (AbsentRange.swift);
    /// an expired range is dropped.
    func knownAbsentLocked(_ parent: UInt64, _ name: String, now: UInt64) -> Bool {
        guard absentRanges > 0, let d = ahead[parent], !d.absent.isEmpty else { return false }
        dropExpiredAbsentLocked(d, now: now)
        let key = NameKey(name)
        return d.absent.contains { $0.provesAbsent(key, now: now) }
    }

    /// Absent ranges kept and the names they hold (tests, memory checks).
    var absentCounts: (ranges: Int, names: Int) { lock.withLock { (absentRanges, absentNames) } }

    /// Stat-ahead listings started and not yet applied (tests wait for zero).
    var listingsPending: Int { lock.withLock { listingsInFlight } }

    private func dropExpiredAbsentLocked(_ d: AheadDir, now: UInt64) {
        for i in d.absent.indices.reversed() where d.absent[i].expiresNs <= now { removeAbsentLocked(d, at: i) }
    }

    private func removeAbsentLocked(_ d: AheadDir, at i: Int) {
        absentNames -= d.absent[i].size
        absentRanges -= 1
        d.absent.remove(at: i)
    }

    /// Notes a lookup miss of `name` in `parent`. Returns a token when the caller should
    /// fetch the listing page after `name` (then call `aheadFinishLocked` with it, also
    /// on failure): after `streak` misses in increasing name order (in one of up to
    /// `aheadMaxCursors` interleaved runs), none in flight for the directory, and room
    /// for more entries.
    func aheadNoteMissLocked(_ parent: UInt64, _ name: String, streak: Int) -> UInt64? {
        let d: AheadDir
        if let x = ahead[parent] {
            d = x
        } else {
            if ahead.count >= 1024 {  // forget idle directories
                for (k, v) in ahead where v.entries.isEmpty && !v.inFlight {
                    for i in v.absent.indices.reversed() { removeAbsentLocked(v, at: i) }
                    ahead.removeValue(forKey: k)
                }
                if ahead.count >= 1024 { return nil }
            }
            d = AheadDir()
            ahead[parent] = d
        }
        // The run this miss continues: the cursor with the largest name below it.
        var run = -1
        for (i, c) in d.cursors.enumerated() where c.name.utf8.lexicographicallyPrecedes(name.utf8) {
            if run < 0 || d.cursors[run].name.utf8.lexicographicallyPrecedes(c.name.utf8) { run = i }
        }
        var cur = (name: name, streak: 1)
        if run >= 0 {
            cur.streak = d.cursors.remove(at: run).streak + 1
        } else if d.cursors.count >= Self.aheadMaxCursors {
            d.cursors.removeFirst()
        }
        guard cur.streak >= streak, !d.inFlight, aheadCount < Self.aheadMaxEntries else {
            d.cursors.append(cur)
            return nil
        }
        cur.streak = 0
        d.cursors.append(cur)
        d.inFlight = true
        listingsInFlight += 1
        return changeSeq
    }

    /// Ends a listing started by `aheadNoteMissLocked` (`token`) of the names after
    /// `after`: keeps the entries of `page` (nil: the listing failed) that no local
    /// change touched meanwhile, and, when `negatives`, what the page proves missing
    /// (`complete`: the page was shorter than its limit, so it reached the end).
    func aheadFinishLocked(_ parent: UInt64, token: UInt64, after: String, page: [FileStatus]?, complete: Bool,
                           negatives: Bool, expiresNs: UInt64, now: UInt64) {
        listingsInFlight -= 1
        defer {
            if listingsInFlight == 0 {
                changedNames.removeAll(keepingCapacity: true)
                changedIds.removeAll(keepingCapacity: true)
                changeLogFloor = changeSeq
            }
        }
        guard let d = ahead[parent] else { return }
        d.inFlight = false
        guard let page, token >= changeLogFloor, nodes[parent] != nil else { return }
        var names = Set<NameKey>()
        var ids = Set<Int64>()
        for c in changedNames where c.seq > token && c.parent == parent { names.insert(c.key) }
        for c in changedIds where c.seq > token { ids.insert(c.id) }
        if negatives && expiresNs > now {
            dropExpiredAbsentLocked(d, now: now)
            if d.absent.count >= Self.absentMaxRanges { removeAbsentLocked(d, at: 0) }
            let r = AbsentRange(after: after, page: page, complete: complete, expiresNs: expiresNs, changed: names)
            if absentNames + r.size <= Self.absentMaxNames {
                d.absent.append(r)
                absentRanges += 1
                absentNames += r.size
            }
        }
        if page.isEmpty { return }
        // Expired entries of earlier pages make room first.
        if !d.entries.isEmpty {
            for (k, e) in d.entries where e.expiresNs <= now {
                d.entries.removeValue(forKey: k)
                aheadCount -= 1
                if let r = aheadById[e.status.id], r.parent == parent, r.key == k { aheadById.removeValue(forKey: e.status.id) }
            }
        }
        for s in page where aheadCount < Self.aheadMaxEntries {
            if s.nlink > 1 && s.kind != .directory { continue }
            if s.name.hasPrefix(hiddenNamePrefix) { continue }
            let key = NameKey(s.name)
            if names.contains(key) || ids.contains(s.id) { continue }
            // A name the table already holds fresh needs no entry (and must not get an older one).
            if let c = nodes[parent]?.children[key], c.expiresNs > now, let n = nodes[c.ino], n.statusExpiresNs > now { continue }
            if let old = d.entries.updateValue((s, expiresNs), forKey: key) {
                if let r = aheadById[old.status.id], r.parent == parent, r.key == key { aheadById.removeValue(forKey: old.status.id) }
            } else {
                aheadCount += 1
            }
            aheadById[s.id] = (parent, key)
        }
    }

    // MARK: reference counts

    func addLookupLocked(_ ino: UInt64, _ n: UInt64) { nodes[ino]?.lookups += n }

    /// FORGET: drops `n` kernel references; the node goes when nothing else pins it.
    func forget(_ ino: UInt64, _ n: UInt64) {
        lock.withLock {
            guard ino != Self.rootIno, let node = nodes[ino] else { return }
            node.lookups = node.lookups >= n ? node.lookups - n : 0
            maybeRemoveLocked(node)
        }
    }

    func maybeRemoveLocked(_ n: Node) {
        guard n.ino != Self.rootIno, n.lookups == 0, n.open == nil, n.childRefs <= 0,
              nodes[n.ino] === n else { return }
        nodes.removeValue(forKey: n.ino)
        let names = [(parent: n.parent, name: n.name)] + n.aliases
        n.aliases.removeAll()
        for a in names {
            guard let p = nodes[a.parent] else { continue }
            let k = NameKey(a.name)
            if p.children[k]?.ino == n.ino { p.children.removeValue(forKey: k) }
            p.childRefs -= 1
            maybeRemoveLocked(p)
        }
    }

    func lookupCount(_ ino: UInt64) -> UInt64? { lock.withLock { nodes[ino]?.lookups } }
    func contains(_ ino: UInt64) -> Bool { lock.withLock { nodes[ino] != nil } }

    // MARK: open state

    /// Attaches (or finds) the OpenFile of `ino` and counts one more handle.
    func attachOpen(_ ino: UInt64, writable: Bool) throws -> OpenFile {
        try lock.withLock {
            guard let n = nodes[ino] else { throw FSError(ESTALE, "inode \(ino) is not known") }
            let o = n.open ?? OpenFile(ino: ino)
            n.open = o
            o.handles += 1
            if writable { o.writableHandles += 1 }
            return o
        }
    }

    /// All OpenFiles (shutdown).
    func allOpen() -> [OpenFile] { lock.withLock { nodes.values.compactMap { $0.open } } }
}
