// Directory streams: readdir in pages of `listLimit` (ListOptions), holding one page.
//
// Offsets are index cookies: "." is entry 0, ".." entry 1, the i-th child entry 2 + i;
// an entry's `nextOffset` is its index + 1. A handle keeps only the current page, its
// first index and the last name the master returned (the `start_after` of the next
// page), so a million-entry directory lists in O(listLimit) memory. A read at an offset
// inside the current page continues from it (the kernel's buffer filled up mid-page);
// one past it fetches the next page; one before it (rewinddir, seekdir back) restarts
// the listing and pages forward. Entries created or removed between pages may be
// missed or show up once, never twice (ListOptions' own guarantee), as with any
// directory that changes during readdir.
import CurvineClient

/// Names this mount gives to files unlinked while open (see FileSystemCore.unlink).
let hiddenNamePrefix = ".curvine-fuse-hidden."

final class DirHandle {
    let ino: UInt64
    /// Serialises this stream's pages; the only lock held across a network call (see
    /// the lock order in InodeTable.swift).
    let lock = Lock()
    var page: [FileStatus] = []
    var pageStart = 0
    var lastRawName: String?
    var exhausted = false
    var started = false

    init(ino: UInt64) { self.ino = ino }

    /// Starts over from the first child (fetches the first page).
    func restart(client: CurvineFileSystem, path: String, limit: Int) throws {
        let (raw, filtered) = try fetch(client: client, path: path, after: nil, limit: limit)
        pageStart = 0
        apply(raw, filtered, limit: limit)
        started = true
    }

    /// Moves to the page after the current one. On failure nothing changes, so the same
    /// offset can be retried.
    func advance(client: CurvineFileSystem, path: String, limit: Int) throws {
        let (raw, filtered) = try fetch(client: client, path: path, after: lastRawName, limit: limit)
        pageStart += page.count
        apply(raw, filtered, limit: limit)
    }

    private func fetch(client: CurvineFileSystem, path: String, after: String?, limit: Int) throws -> ([FileStatus], [FileStatus]) {
        let raw = try fsTry { try client.listPage(path, startAfter: after, limit: max(1, limit)) }
        return (raw, raw.filter { !$0.name.hasPrefix(hiddenNamePrefix) })
    }

    private func apply(_ raw: [FileStatus], _ filtered: [FileStatus], limit: Int) {
        exhausted = raw.count < max(1, limit)
        if let last = raw.last { lastRawName = last.name }
        page = filtered
    }
}
