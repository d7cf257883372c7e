// Namespace operations on the tree: mkdir, delete, rename, symlink, hard link,
// setattr/xattrs, free. See Namespace.swift for the model and the error rules.
import CurvineClient

extension Namespace {
    /// Mkdir (2). Existing path: FileAlreadyExists, except with `createParent` on an
    /// existing directory (mkdir -p), which returns its status.
    public func mkdir(_ path: String, mode: UInt32, owner: String = "", group: String = "",
                      createParent: Bool = false, xattrs: [String: [UInt8]] = [:]) throws -> FileStatus {
        let p = try parsePath(path)
        try checkCreatePathLimits(p)
        return try mutate { txn in
            // Deviation: upstream answers Common "Not allowed to create existing root path";
            // FileAlreadyExists is what mkdir(2) reports.
            if p.isRoot { throw ServerError.fileExists("/") }
            let r = resolve(p)
            if let last = r.last {
                if createParent && last.isDir { return last.status(path: p.text, name: p.name) }
                throw ServerError.fileExists(p.text)
            }
            let o = self.owner(owner), g = self.group(group)
            let parent = try creationParent(r, createParent: createParent, mode: mode, owner: o, group: g, &txn)
            let d = makeDirectory(in: parent, mode: mode, owner: o, group: g)
            d.xattrs = userXattrs(xattrs)
            attach(parent, p.name, d, &txn)
            return d.status(path: p.text, name: p.name)
        }
    }

    /// Delete (3). A file with other names only loses this one (nlink - 1).
    @discardableResult
    public func delete(_ path: String, recursive: Bool) throws -> DeleteResult {
        let p = try parsePath(path)
        return try mutate { txn in
            if p.isRoot { throw ServerError.common("The root is not allowed to be deleted") }
            let (r, i) = try lookup(p)
            if i.isDir && !i.children.isEmpty && !recursive { throw ServerError.dirNotEmpty(p.text) }
            let parent = r.inodes[p.components.count - 1]
            detach(parent, p.name, &txn)
            touchDir(parent, &txn)
            return release(i, &txn)
        }
    }

    /// Drops one name of `i` (already detached): a directory goes with its subtree, a
    /// file when its last name goes.
    func release(_ i: Inode, _ txn: inout Txn) -> DeleteResult {
        var result = DeleteResult()
        var stack = [i]
        let t = now
        while let cur = stack.popLast() {
            if cur.isDir {
                for id in cur.children.values { if let c = inodes[id] { stack.append(c) } }
                drop(cur, &txn)
                result.inodes += 1
            } else if cur.nlink > 1 {
                cur.nlink -= 1
                cur.ctime = t
                txn.put(cur)
            } else {
                drop(cur, &txn)
                result.inodes += 1
                result.bytes += cur.length
            }
        }
        return result
    }

    /// Rename (10). Replaces an existing destination of the same type (a directory only
    /// when empty); NO_REPLACE refuses any existing destination; EXCHANGE swaps two
    /// existing entries. Returns false when src == dst (upstream: nothing happens).
    public func rename(_ src: String, _ dst: String, flags: RenameFlags = []) throws -> Bool {
        let sp = try parsePath(src)
        let dp = try parsePath(dst)
        let exchange = flags.contains(.exchange)
        return try mutate { txn in
            if sp.isRoot { throw ServerError.common("Cannot rename root path") }
            if sp.text == dp.text { return false }
            if dp.text.hasPrefix(sp.text + "/") {
                throw ServerError.invalidArgument("cannot rename \(sp.text) to \(dp.text): destination is under source")
            }
            if exchange && flags.contains(.noReplace) {
                throw ServerError.invalidArgument("RENAME_EXCHANGE cannot be combined with RENAME_NOREPLACE")
            }
            if exchange && sp.text.hasPrefix(dp.text + "/") {
                throw ServerError.invalidArgument("cannot exchange \(sp.text) with \(dp.text): source is under destination")
            }
            // Deviation: upstream fails deep inside with Common; the root is never a target.
            if dp.isRoot { throw ServerError.common("Cannot rename onto the root path") }
            let sr = resolve(sp)
            guard let s = sr.last else { throw ServerError.fileNotFound(sp.text) }
            let sParent = sr.inodes[sp.components.count - 1]
            let dr = resolve(dp)
            let t = now
            if exchange {
                guard let d = dr.last else { throw ServerError.fileNotFound(dp.text) }
                let dParent = dr.inodes[dp.components.count - 1]
                if s === d { return true }
                detach(sParent, sp.name, &txn)
                detach(dParent, dp.name, &txn)
                attach(sParent, sp.name, d, &txn)
                attach(dParent, dp.name, s, &txn)
                s.ctime = t
                d.ctime = t
                touchDir(sParent, &txn)
                touchDir(dParent, &txn)
                return true
            }
            guard let dParent = dr.parent else {
                if dr.inodes.count >= dp.components.count || !dr.inodes.last!.isDir {
                    throw ServerError.parentNotDir(dp.prefix(dr.inodes.count - 1))
                }
                throw ServerError.fileNotFound(dp.parentText)
            }
            if let d = dr.last {
                if flags.contains(.noReplace) { throw ServerError.fileExists(dp.text) }
                // Two names of one file: POSIX rename does nothing.
                if s === d { return true }
                if !s.isDir && d.isDir { throw ServerError.isADirectory(dp.text) }
                if s.isDir && !d.isDir { throw ServerError.notADirectory(dp.text) }
                if d.isDir && !d.children.isEmpty { throw ServerError.dirNotEmpty(dp.text) }
                detach(dParent, dp.name, &txn)
                _ = release(d, &txn)
            }
            detach(sParent, sp.name, &txn)
            attach(dParent, dp.name, s, &txn)
            s.ctime = t
            touchDir(sParent, &txn)
            touchDir(dParent, &txn)
            return true
        }
    }

    /// Symlink (16). `target` is stored verbatim and never resolved. An existing entry
    /// is FileAlreadyExists unless it is a symlink and `force` is set (then replaced).
    public func symlink(target: String, link: String, force: Bool = false, mode: UInt32 = 0o777,
                        owner: String? = nil, group: String? = nil) throws {
        let p = try parsePath(link)
        try checkCreatePathLimits(p)
        try mutate { txn in
            if p.isRoot { throw ServerError.fileExists("/") }
            let r = resolve(p)
            let old = r.last
            if let o = old, !(o.kind == .symlink && force) { throw ServerError.fileExists(p.text) }
            let parent = try creationParent(r, createParent: false, mode: 0, owner: "", group: "", &txn)
            let l = Inode(id: newInodeId(), kind: .symlink, mode: mode, owner: self.owner(owner),
                          group: self.group(group), time: now)
            l.target = target
            if let o = old {
                detach(parent, p.name, &txn)
                _ = release(o, &txn)
            }
            attach(parent, p.name, l, &txn)
            touchDir(parent, &txn)
        }
    }

    /// Link (17): a new name for an existing file or symlink. Missing parents of `dst`
    /// are created, as upstream does.
    public func link(_ src: String, _ dst: String) throws {
        let sp = try parsePath(src)
        let dp = try parsePath(dst)
        try checkCreatePathLimits(dp)
        try mutate { txn in
            let (_, s) = try lookup(sp)
            if s.isDir { throw ServerError.common("Cannot create link to directory") }
            if s.kind != .file && s.kind != .symlink {
                throw ServerError.common("Cannot create link to non-regular file")
            }
            if dp.isRoot { throw ServerError.fileExists("/") }
            let dr = resolve(dp)
            if dr.last != nil { throw ServerError.fileExists(dp.text) }
            let parent = try creationParent(dr, createParent: true, mode: 0o755, owner: options.defaultOwner,
                                            group: options.defaultGroup, &txn)
            s.nlink += 1
            s.ctime = now
            attach(parent, dp.name, s, &txn)
            touchDir(parent, &txn)
        }
    }

    /// SetAttr (15): only the given fields change; xattr adds before removes (removing
    /// a missing name is fine). With `recursive` on a directory, descendants get only
    /// owner/group/mode/replicas. Keys starting with NUL are master-internal and ignored.
    public func setAttr(_ path: String, _ o: SetAttrOptions, replicas: Int32? = nil) throws -> FileStatus {
        let p = try parsePath(path)
        return try mutate { txn in
            let (_, i) = try lookup(p)
            let t = now
            func apply(_ x: Inode, top: Bool) {
                if let v = o.owner { x.owner = v }
                if let v = o.group { x.group = v }
                if let v = o.mode { x.mode = v }
                if let v = replicas, !x.isDir { x.replicas = v }
                if top {
                    if let v = o.atimeMs { x.atime = v }
                    if let v = o.mtimeMs { x.mtime = v }
                    for (k, v) in o.addXattrs where !isInternalXattr(k) { x.xattrs[k] = v }
                    for k in o.removeXattrs { x.xattrs[k] = nil }
                }
                x.ctime = t
                txn.put(x)
            }
            apply(i, top: true)
            if o.recursive && i.isDir {
                var stack = Array(i.children.values)
                while let id = stack.popLast() {
                    guard let c = inodes[id] else { continue }
                    apply(c, top: false)
                    if c.isDir { stack.append(contentsOf: c.children.values) }
                }
            }
            return i.status(path: p.text, name: p.name)
        }
    }

    /// Free (26): evicts cached copies of UFS-backed data. Nothing here has a UFS copy,
    /// so nothing is freed (upstream frees only files whose data also lives in a UFS).
    public func free(_ path: String, recursive: Bool) throws -> DeleteResult {
        let p = try parsePath(path)
        return try lock.withLock {
            if p.isRoot { throw ServerError.common("The root is not allowed to be free") }
            _ = try lookup(p)
            return DeleteResult()
        }
    }
}

/// Keys starting with NUL are master-internal ("\0curvine.ctime"); never stored or shown.
func isInternalXattr(_ k: String) -> Bool { k.utf8.first == 0 }

func userXattrs(_ x: [String: [UInt8]]) -> [String: [UInt8]] {
    x.filter { !isInternalXattr($0.key) }
}
