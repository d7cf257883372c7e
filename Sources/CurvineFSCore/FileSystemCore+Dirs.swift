// Directory streams (see DirectoryHandle.swift for the paging and cookie design).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CurvineClient

extension FileSystemCore {
    public func opendir(ino: UInt64, ctx: RequestContext) throws -> Opened {
        let (s, _) = try cachedStatus(ino)
        guard s.kind == .directory else { throw FSError(ENOTDIR, "\(s.path) is not a directory") }
        try require(accessR, s, ctx, "list \(s.path)")
        return Opened(fh: registerDir(ino), directIO: false, keepCache: false, nonSeekable: false)
    }

    public func releasedir(ino: UInt64, fh: UInt64) {
        _ = takeDirHandle(fh)
    }

    /// Fills `replier` from cookie `offset` until it is full or the directory ends.
    /// readdirplus (`plus`) returns entries and takes one kernel reference per entry the
    /// replier accepted ("." and ".." excepted). A page that fails to load after some
    /// entries were added ends the call normally (the kernel gets those entries and asks
    /// again from the next cookie); with nothing added the error is thrown.
    public func readdir(ino: UInt64, fh: UInt64, offset: Int64, plus: Bool, replier: inout some DirectoryReplier) throws {
        guard let d = dirHandle(fh), d.ino == ino else { throw FSError(EBADF, "no open directory handle \(fh)") }
        if offset < 0 { throw FSError(EINVAL, "negative directory offset") }
        let dirMode = UInt32(S_IFDIR) | (0o777 & ~config.umask)
        var added = 0
        if offset == 0 {
            guard replier.add(name: ".", ino: ino, mode: dirMode, nextOffset: 1, entry: nil) else { return }
            added += 1
        }
        if offset <= 1 {
            let parentIno = ino == InodeTable.rootIno ? InodeTable.rootIno
                : table.lock.withLock { table.nodeLocked(ino)?.parent ?? InodeTable.rootIno }
            guard replier.add(name: "..", ino: parentIno, mode: dirMode, nextOffset: 2, entry: nil) else { return }
            added += 1
        }
        var c = max(0, Int(offset) - 2)
        d.lock.lock()
        defer { d.lock.unlock() }
        let path = try table.path(ino)
        do {
            if !d.started || c < d.pageStart {
                try d.restart(client: client, path: path, limit: config.listLimit)
                refreshKnown(d.page)
            }
        } catch {
            if added > 0 { return }
            throw error
        }
        while true {
            while c >= d.pageStart + d.page.count {
                if d.exhausted { return }
                do {
                    try d.advance(client: client, path: path, limit: config.listLimit)
                } catch {
                    if added > 0 { return }
                    throw error
                }
                refreshKnown(d.page)
            }
            let s = d.page[c - d.pageStart]
            let next = Int64(c + 3)
            if plus {
                let (cino, o): (UInt64, OpenFile?) = table.lock.withLock {
                    let n = table.rememberLocked(parent: ino, name: s.name, status: s, lookups: 1,
                                                 statusExpiresNs: expiry(statusTTL), entryExpiresNs: expiry(entryTTL))
                    return (n.ino, n.open)
                }
                let e = entry(s, ino: cino, open: o)
                if !replier.add(name: s.name, ino: cino, mode: e.attr.mode, nextOffset: next, entry: e) {
                    table.forget(cino, 1)
                    return
                }
            } else {
                let cino = table.ino(forId: s.id)
                let mode = Self.typeBits(s.kind) | (s.mode & 0o7777)
                if !replier.add(name: s.name, ino: cino, mode: mode, nextOffset: next, entry: nil) { return }
            }
            c += 1
            added += 1
        }
    }

    /// A listing page carries full statuses: refresh the inodes the table already has.
    private func refreshKnown(_ page: [FileStatus]) {
        guard !page.isEmpty else { return }
        let exp = expiry(statusTTL)
        table.lock.withLock {
            for s in page {
                let i = table.inoLocked(forId: s.id)
                if let n = table.nodeLocked(i), n.id == s.id {
                    n.status = s
                    n.statusExpiresNs = exp
                }
            }
        }
    }
}
