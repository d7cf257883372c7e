// Negative stat-ahead: what one directory listing page proves about names that do NOT
// exist, so a lookup miss in a run of creates (`open(O_CREAT)` of new names in order:
// untar, cp -r, a job writing part-00000, part-00001, ...) is answered ENOENT without
// a master round trip. The kernel sends LOOKUP before every CREATE of a name it has
// no dentry for; without this each new file costs a FileStatus RPC that only says
// "not found".
//
// A ListOptions page fetched with start_after = A returns, in byte-wise name order,
// every child whose name sorts after A, up to `limit` of them (PROTOCOL.md §6.2
// ListOptions). So at listing time no name in (A, last listed name] is missing from
// the page, and when the page is short (fewer than `limit`) none in (A, +inf) is. A
// name in that range that is not in the page did not exist then.
//
// Freshness is the stat-ahead contract (InodeTable.swift, "stat-ahead"): the answer is
// used only until the status TTL after the listing began, the staleness the status
// cache already allows for positive answers. Within it, a name another client created
// after the listing is reported missing by this mount (a later CREATE of it then gets
// EEXIST from the master, as in any create race). Local changes always win: every
// name this mount changes in the directory (create, mkdir, unlink, rename, a lookup
// answered by the master) is added to `present`, and a present name is never
// answered from the range; names changed while the listing was in flight are added
// too (the page may or may not reflect them).
import CurvineClient

struct AbsentRange {
    /// Exclusive lower bound: the listing's start_after name.
    let after: String
    /// Inclusive upper bound: the last name of a full page; nil when the page was short
    /// (the listing reached the end of the directory).
    let through: String?
    /// Monotonic ns after which the range proves nothing.
    let expiresNs: UInt64
    /// Names the range says nothing about: listed ones, and every name this mount
    /// changed in the directory since the listing began.
    private(set) var present: Set<NameKey>

    /// Most names `present` may hold before the range is dropped (a long create run in
    /// one directory within one TTL). 65,536 names of ~20 bytes are ~3 MiB at most per
    /// directory, and a run that long re-lists after the TTL anyway.
    static let maxPresent = 65_536

    init(after: String, page: [FileStatus], complete: Bool, expiresNs: UInt64, changed: Set<NameKey>) {
        self.after = after
        self.through = complete ? nil : page.last?.name
        self.expiresNs = expiresNs
        var p = changed
        for s in page { p.insert(NameKey(s.name)) }
        self.present = p
    }

    /// Names in `present` (the range's memory).
    var size: Int { present.count }

    /// Whether `name` sorts inside the listed range.
    func covers(_ name: String) -> Bool {
        guard after.utf8.lexicographicallyPrecedes(name.utf8) else { return false }
        guard let t = through else { return true }
        return !t.utf8.lexicographicallyPrecedes(name.utf8)
    }

    /// True when the listing proves `key` absent (fresh, in range, not present).
    func provesAbsent(_ key: NameKey, now: UInt64) -> Bool {
        now < expiresNs && covers(key.s) && !present.contains(key)
    }

    /// This mount changed `key` in the directory. Returns false when the range grew too
    /// large to keep (the caller drops it).
    mutating func noteChanged(_ key: NameKey) -> Bool {
        if covers(key.s) { present.insert(key) }
        return present.count <= Self.maxPresent
    }
}
