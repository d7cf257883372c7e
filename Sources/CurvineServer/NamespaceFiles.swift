// Namespace operations on file contents: create/open (write leases), AddBlock,
// CompleteFile, ResizeFile, and the lock RPCs. See Namespace.swift for the model.
//
// Lengths (upstream InodeFile::complete): committing blocks sets each block's length to
// max(current, committed); the file length becomes max(current, reported) and must then
// equal the sum of its block lengths, else Common "Complete len is not equal to file
// len". A committed block's replicas are the workers the client reports (the ones
// chosen at AddBlock when it reports none).
import CurvineClient

extension Namespace {
    /// CreateFile (4). `flags` must contain O_CREAT. An existing file is replaced in
    /// place (same inode id, blocks released) with O_TRUNC or `options.overwrite`;
    /// without, or with O_EXCL, it is FileAlreadyExists. The creator holds the lease
    /// (`clientName`) until CompleteFile; special files (FIFO, devices) are complete at once.
    public func createFile(_ path: String, options o: CreateOptions, flags: UInt32, clientName: String,
                           xattrs: [String: [UInt8]] = [:]) throws -> FileStatus {
        let p = try parsePath(path)
        try checkCreatePathLimits(p)
        return try mutate { txn in try createLocked(p, o, flags, clientName, xattrs, &txn) }
    }

    func createLocked(_ p: ParsedPath, _ o: CreateOptions, _ flags: UInt32, _ clientName: String,
                      _ xattrs: [String: [UInt8]], _ txn: inout Txn) throws -> FileStatus {
        if flags & OpenFlags.create == 0 { throw ServerError.common("create_with_opts requires O_CREAT flag") }
        if o.replicas < 1 || o.replicas >= options.maxReplicas {
            throw ServerError.common("The replica number \(o.replicas) needs to be between 1 and \(options.maxReplicas)")
        }
        if o.blockSize < options.minBlockSize || o.blockSize >= options.maxBlockSize {
            throw ServerError.common("Block size needs to be between \(options.minBlockSize) and \(options.maxBlockSize)")
        }
        if p.isRoot { throw ServerError.isADirectory("/") }
        let r = resolve(p)
        if let e = r.last {
            // Deviation: upstream answers Common "<p>  already exists as a dir"; open(2)
            // says EEXIST with O_EXCL and EISDIR otherwise.
            if e.isDir {
                throw flags & OpenFlags.exclusive != 0 ? ServerError.fileExists(p.text) : ServerError.isADirectory(p.text)
            }
            if flags & OpenFlags.exclusive != 0 { throw ServerError.fileExists(p.text) }
            guard o.overwrite || flags & OpenFlags.truncate != 0, e.kind == .file else {
                throw ServerError.fileExists(p.text)
            }
            overwrite(e, o, clientName, &txn)
            return e.status(path: p.text, name: p.name)
        }
        let own = owner(o.owner), grp = group(o.group)
        let parent = try creationParent(r, createParent: o.createParent, mode: o.mode, owner: own, group: grp, &txn)
        let f = Inode(id: newInodeId(), kind: o.kind == .directory ? .file : o.kind, mode: o.mode, owner: own,
                      group: parent.mode & 0o2000 != 0 ? parent.group : grp, time: now)
        f.blockSize = o.blockSize
        f.replicas = o.replicas
        f.xattrs = userXattrs(xattrs)
        if f.kind == .file { f.addWriter(clientName) }
        attach(parent, p.name, f, &txn)
        touchDir(parent, &txn)
        return f.status(path: p.text, name: p.name)
    }

    /// O_TRUNC on an existing file: same inode, no blocks, new lease holder.
    func overwrite(_ f: Inode, _ o: CreateOptions, _ clientName: String, _ txn: inout Txn) {
        for b in f.blocks where !b.workers.isEmpty {
            txn.events.deleted.append(BlockRef(id: b.id, length: b.length, workers: b.workers))
        }
        f.blocks = []
        f.length = 0
        f.replicas = o.replicas
        f.blockSize = o.blockSize
        let t = now
        f.mtime = t
        f.ctime = t
        f.addWriter(clientName)
        txn.put(f)
    }

    /// OpenFile (5). Read-only: the block locations (no lease). Write/append: takes the
    /// lease for `clientName` and returns the current blocks; O_CREAT creates a missing
    /// file, O_TRUNC empties it.
    public func openFile(_ path: String, flags: UInt32, options o: CreateOptions, clientName: String) throws -> FileBlocks {
        if flags & OpenFlags.accessMask == OpenFlags.readOnly {
            if flags & OpenFlags.truncate != 0 { throw ServerError.common("cannot combine O_RDONLY with O_TRUNC") }
            if flags & OpenFlags.create != 0 { throw ServerError.common("cannot combine O_RDONLY with O_CREAT") }
            return try blockLocations(path)
        }
        let p = try parsePath(path)
        return try mutate { txn in
            let r = resolve(p)
            guard let f = r.last else {
                if flags & OpenFlags.create == 0 { throw ServerError.fileNotFound(p.text) }
                try checkCreatePathLimits(p)
                return FileBlocks(status: try createLocked(p, o, flags, clientName, [:], &txn), blocks: [])
            }
            if f.isDir { throw ServerError.isADirectory(p.text) }
            if flags & OpenFlags.truncate != 0 {
                overwrite(f, o, clientName, &txn)
                return FileBlocks(status: f.status(path: p.text, name: p.name), blocks: [])
            }
            f.addWriter(clientName)
            txn.put(f)
            return FileBlocks(status: f.status(path: p.text, name: p.name), blocks: try located(f, p.text))
        }
    }

    /// The file a write-path RPC names: by inode id when given (> 0), else by path.
    func fileForWrite(_ p: ParsedPath, inodeId: Int64?) throws -> Inode {
        let f: Inode
        if let id = inodeId, id > 0 {
            guard let i = inodes[id] else { throw ServerError.fileNotFound(p.text) }
            f = i
        } else {
            f = try lookup(p).1
        }
        if f.isDir { throw ServerError.notAFile(p.text) }
        return f
    }

    /// Validates then applies committed blocks and the reported length.
    func commit(_ f: Inode, _ commits: [CommitBlock], length: Int64) throws {
        var blocks = f.blocks
        for c in commits {
            guard let idx = blocks.firstIndex(where: { $0.id == c.blockId }) else {
                throw ServerError.common("Not found block, block_id = \(c.blockId)")
            }
            if c.length < 0 || c.length > f.blockSize {
                throw ServerError.common("Invalid block length \(c.length) for block \(c.blockId), block size \(f.blockSize)")
            }
            blocks[idx].length = max(blocks[idx].length, c.length)
            if !c.workerIds.isEmpty { blocks[idx].workers = c.workerIds }
            blocks[idx].allocated = false
        }
        let newLength = max(f.length, length)
        let sum = blocks.reduce(Int64(0)) { $0 + $1.length }
        if sum != newLength {
            throw ServerError.common("Complete len is not equal to file len, complete_len = \(sum), file_len = \(newLength)")
        }
        f.blocks = blocks
        f.length = newLength
        let t = now
        f.mtime = t
        f.ctime = t
    }

    /// AddBlock (11): commits the blocks finished since the last call and allocates a new
    /// one (length 0) on live workers. With `lastBlockId` (AddBlockRequest.last_block)
    /// and a block already allocated after it, that block is returned again (a retried
    /// call). Deviation: without `lastBlockId` upstream returns the file's first block
    /// when it has any; here a new block is always allocated (the Swift client does not
    /// send last_block).
    public func addBlock(_ path: String, inodeId: Int64? = nil, commit commits: [CommitBlock], fileLength: Int64,
                         excludeWorkers: [UInt32] = [], lastBlockId: Int64? = nil,
                         clientHostname: String = "") throws -> LocatedBlock {
        let p = try parsePath(path)
        return try mutate { txn in
            let f = try fileForWrite(p, inodeId: inodeId)
            if let last = lastBlockId, let i = f.blockIndex(last), i + 1 < f.blocks.count {
                return try located(f, p.text)[i + 1]
            }
            if f.blocks.count >= maxBlocksPerFile {
                throw ServerError.common("File \(p.text) would have more than \(maxBlocksPerFile) blocks")
            }
            let chosen = try workers.choose(replicas: Int(f.replicas), exclude: Set(excludeWorkers),
                                            clientHost: clientHostname)
            try commit(f, commits, length: fileLength)
            let id = try f.allocateBlockId()
            f.blocks.append(BlockMeta(id: id, length: 0, workers: chosen.map(\.workerId), allocated: false))
            txn.put(f)
            return LocatedBlock(id: id, length: 0, locations: chosen)
        }
    }

    /// CompleteFile (12): commits the last blocks and the length; unless `onlyFlush`,
    /// releases `clientName`'s lease (the file is complete when no lease is left) and
    /// applies `setAttr`. Returns the file's status and blocks afterwards.
    @discardableResult
    public func completeFile(_ path: String, inodeId: Int64? = nil, length: Int64, commit commits: [CommitBlock],
                             clientName: String, onlyFlush: Bool = false,
                             setAttr: SetAttrOptions? = nil) throws -> FileBlocks {
        let p = try parsePath(path)
        return try mutate { txn in
            let f = try fileForWrite(p, inodeId: inodeId)
            try commit(f, commits, length: length)
            if !onlyFlush {
                f.removeWriter(clientName)
                if let o = setAttr {
                    if let v = o.owner { f.owner = v }
                    if let v = o.group { f.group = v }
                    if let v = o.mode { f.mode = v }
                    if let v = o.atimeMs { f.atime = v }
                    if let v = o.mtimeMs { f.mtime = v }
                    for (k, v) in o.addXattrs where !isInternalXattr(k) { f.xattrs[k] = v }
                    for k in o.removeXattrs { f.xattrs[k] = nil }
                }
            }
            txn.put(f)
            let blocks = (try? located(f, p.text)) ?? []
            return FileBlocks(status: f.status(path: p.text, name: p.name), blocks: blocks)
        }
    }

    /// ResizeFile (18): truncate(2) (`truncate`) or fallocate to `length`. `offset` must be
    /// 0. Shrinking drops whole blocks past the end and shortens the one across it
    /// (its file is cut too); growing lengthens the last block up to the block size and
    /// appends hole blocks (no workers, read as zeros). The length is set either way,
    /// even with KEEP_SIZE, as upstream. The lease is untouched.
    public func resize(_ path: String, truncate: Bool, offset: Int64 = 0, length: Int64, mode: Int32 = 0) throws -> FileBlocks {
        if offset != 0 { throw ServerError.common("off must be 0, got \(offset)") }
        if length < 0 { throw ServerError.common("len must be >= 0, got \(length)") }
        if length > maxFileSize { throw ServerError.fileTooLarge(length) }
        if !truncate && mode & ~(FallocateMode.keepSize | FallocateMode.zeroRange) != 0 {
            throw ServerError.common("mode must be DEFAULT (0) or ZERO_RANGE (16) for allocate operation, got \(mode)")
        }
        let p = try parsePath(path)
        let available: Int64? = truncate ? nil : lock.withLock { workers.live }.reduce(0) { $0 + $1.stats().available }
        return try mutate { txn in
            let (_, f) = try lookup(p)
            if f.isDir { throw ServerError.notAFile(p.text) }
            if let avail = available, length > f.length {
                let need = (length - f.length).multipliedReportingOverflow(by: Int64(max(1, f.replicas)))
                if need.overflow || need.partialValue > avail {
                    throw ServerError.diskOutOfSpace(
                        "fallocate requires \(length - f.length) bytes for \(f.replicas) replicas, but only \(avail) bytes are available")
                }
            }
            if length != f.length {
                if length < f.length { shrink(f, to: length, &txn) } else { try grow(f, to: length) }
                let t = now
                f.mtime = t
                f.ctime = t
                txn.put(f)
            }
            return FileBlocks(status: f.status(path: p.text, name: p.name), blocks: try located(f, p.text))
        }
    }

    private func shrink(_ f: Inode, to length: Int64, _ txn: inout Txn) {
        var start: Int64 = 0
        var keep = f.blocks.count
        for idx in f.blocks.indices {
            let end = start + f.blocks[idx].length
            if start >= length { keep = idx; break }
            if end > length {
                f.blocks[idx].length = length - start
                f.blocks[idx].allocated = true
                if !f.blocks[idx].workers.isEmpty {
                    txn.events.truncated.append(BlockRef(id: f.blocks[idx].id, length: length - start,
                                                         workers: f.blocks[idx].workers))
                }
                keep = idx + 1
                break
            }
            start = end
        }
        for b in f.blocks[keep...] where !b.workers.isEmpty {
            txn.events.deleted.append(BlockRef(id: b.id, length: b.length, workers: b.workers))
        }
        f.blocks.removeSubrange(keep...)
        f.length = length
    }

    private func grow(_ f: Inode, to length: Int64) throws {
        let bs = max(1, f.blockSize)
        var start = f.blocks.dropLast().reduce(Int64(0)) { $0 + $1.length }
        // Validate before changing anything: the number of blocks the new length needs.
        let firstNew = f.blocks.isEmpty ? start : start + bs
        let added = firstNew >= length ? 0 : (length - firstNew + bs - 1) / bs
        if Int64(f.blocks.count) + added > Int64(maxBlocksPerFile) || f.nextBlockSeq + added - 1 > blockSeqMask {
            throw ServerError.common("File would have more than \(maxBlocksPerFile) blocks at length \(length)")
        }
        if !f.blocks.isEmpty {
            f.blocks[f.blocks.count - 1].length = min(bs, length - start)
            start += bs
        }
        while start < length {
            let id = try f.allocateBlockId()
            f.blocks.append(BlockMeta(id: id, length: min(bs, length - start), workers: [], allocated: true))
            start += bs
        }
        f.length = length
    }

    // MARK: locks

    /// GetLock (20): the lock that conflicts with `lock`, or nil. Changes nothing.
    public func getLock(_ path: String, _ lock: FileLock) throws -> FileLock? {
        let p = try parsePath(path)
        let t = UInt64(max(0, now))
        return try self.lock.withLock {
            let (_, i) = try lookup(p)
            return i.locks.conflict(for: lock, now: t, expireMs: options.lockExpireMs)
        }
    }

    /// SetLock (21): nil when granted / unlocked, else the conflicting lock (nothing changed).
    public func setLock(_ path: String, _ lock: FileLock) throws -> FileLock? {
        let p = try parsePath(path)
        return try mutate { txn in
            let (_, i) = try lookup(p)
            let (conflict, changed) = i.locks.set(lock, now: UInt64(max(0, now)), expireMs: options.lockExpireMs)
            if changed { txn.put(i) }
            return conflict
        }
    }

    /// The locks held on `path` now (tests and diagnostics).
    public func locks(_ path: String) throws -> [FileLock] {
        let p = try parsePath(path)
        return try lock.withLock { try lookup(p).1.locks.all }
    }
}
