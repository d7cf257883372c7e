// The write path: one FileWriter per inode open for writing in this mount, shared by
// all its writable handles (as upstream), so concurrent writers of one file see one
// length and one lease.
//
// Buffering. write() copies the bytes into a pooled write buffer and returns; a full
// buffer (or a non-contiguous write) is queued, and an io thread streams queued buffers
// to the workers in order. A writer may have `writeBuffersPerFile` buffers queued; past
// that, or past the process-wide write budget, write() waits for its own queue (it
// always gets one buffer, so it never waits on other files). The first write of a
// session takes the lease synchronously so a lease conflict fails that write, not a
// later close.
//
// Sessions (PROTOCOL.md §3.5). A session is the time the file is open for writing on the
// master: CreateFile (create) or OpenFile-for-write (first write after open) starts it,
// then for every block: AddBlock (reporting the blocks finished since the last call),
// a worker stream (BlockWriter), commit; CompleteFile ends it. Writes may land at any
// offset: a write into an existing block reopens that block's stream at the offset
// (overwrite); a write past the end adds blocks, committing skipped ones as sparse
// (their unwritten bytes read as zeros). A write into a gap of a block that existed
// before the session zero-fills the gap first, since a truncate may have left old bytes
// behind the block's logical end. A write into a hole block (made by resize/fallocate,
// no replica) cuts the hole suffix off with a truncate and rebuilds it from real blocks.
//
// Durability points:
//   flush/fsync   -> drain buffers, BlockWriter.flush, CompleteFile(only_flush=true):
//                    another client sees the data and length from then on.
//   last release  -> drain, commit the block, CompleteFile(only_flush=false): the file
//                    is complete and the lease released.
//   shutdown      -> the same for every writer.
// Errors from the background drain are sticky: the next write, flush, fsync or release
// returns them (close(2) sees the FLUSH error).
//
// The io token (`busy`) serialises everything that talks to the master or workers for
// this file: the background drain, flush, commit and truncate take it in turn; no lock
// is held while it is used.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CurvineClient

final class FileWriter: @unchecked Sendable {
    private struct WBlock {
        var located: LocatedBlock
        /// Logical length of the block as the master will know it.
        var length: Int64
        /// Existed before this session (its block file may hold bytes past `length`).
        var preexisting: Bool
        var isHole: Bool { located.isHole || located.locations.isEmpty }
    }

    private final class Session {
        let inodeId: Int64
        let blockSize: Int64
        var blocks: [WBlock]
        /// The open block stream: block index, writer, block length once committed.
        var cur: (index: Int, writer: BlockWriter, end: Int64)?
        /// Blocks committed since the last AddBlock/CompleteFile.
        var pending: [CommitBlock] = []
        /// Anything the master does not know yet.
        var unreported = false

        init(inodeId: Int64, blockSize: Int64, blocks: [WBlock]) {
            self.inodeId = inodeId; self.blockSize = blockSize; self.blocks = blocks
        }

        var extent: Int64 {
            var s: Int64 = 0
            for (i, b) in blocks.enumerated() { s += (cur?.index == i ? cur!.end : b.length) }
            return s
        }
    }

    let ino: UInt64
    private let env: CoreEnv
    private let cond = ConditionLock()
    /// The inode's open state (it owns this writer).
    weak var owner: OpenFile?

    // Guarded by cond.
    private var fill: PooledBuffer?
    private var fillOffset: Int64 = 0
    private var queue: [(offset: Int64, buf: PooledBuffer)] = []
    private var busy = false
    private var error: FSError?
    private var _length: Int64
    private var lengthChanged = false
    private var writeSeq: UInt64 = 0
    private var flushedSeq: UInt64 = 0
    private var lastWriteMs: Int64 = 0
    private var hasSession = false
    private var killPrivDone = false

    // Owned by the io token holder.
    private var session: Session?

    init(ino: UInt64, env: CoreEnv, length: Int64, owner: OpenFile) {
        self.ino = ino
        self.env = env
        self._length = length
        self.owner = owner
    }

    /// Starts the session of a file this mount just created (CreateFile took the lease).
    func adoptCreated(_ status: FileStatus) {
        cond.withLock {
            session = Session(inodeId: status.id, blockSize: status.blockSize > 0 ? status.blockSize : env.config.blockSize,
                              blocks: [])
            session!.unreported = true
            hasSession = true
            _length = 0
        }
    }

    /// Logical length (what stat shows while the file is being written).
    var length: Int64 { cond.withLock { _length } }
    /// Wall-clock ms of the last write, 0 if none.
    var lastWrite: Int64 { cond.withLock { lastWriteMs } }

    /// Data or length changes the master has not seen.
    var isDirty: Bool { cond.withLock { writeSeq != flushedSeq || lengthChanged || fill != nil || !queue.isEmpty } }

    /// Whether a session (lease) is open; for tests and shutdown.
    var sessionOpen: Bool { cond.withLock { hasSession } }

    /// Once per writer: whether setuid/setgid should be dropped (done by the caller).
    func takeKillPriv() -> Bool {
        cond.withLock { if killPrivDone { return false }; killPrivDone = true; return true }
    }

    // MARK: write (request threads)

    func write(offset: Int64, data: UnsafeRawBufferPointer) throws -> Int {
        guard offset >= 0 else { throw FSError(EINVAL, "negative write offset") }
        if data.isEmpty { return 0 }
        let needSession = cond.withLock { !hasSession }
        if needSession { try withToken(seal: false) { try ensureSession() } }
        cond.lock()
        defer { cond.unlock() }
        if let e = error { throw e }
        var off = offset
        var pos = 0
        while pos < data.count {
            if fill == nil || off != fillOffset + Int64(fill!.count) || fill!.count == fill!.capacity {
                sealLocked()
                try obtainFillLocked()
                fillOffset = off
            }
            let f = fill!
            let n = min(data.count - pos, f.capacity - f.count)
            (f.base + f.count).copyMemory(from: data.baseAddress! + pos, byteCount: n)
            f.count += n
            pos += n
            off += Int64(n)
        }
        _length = max(_length, offset + Int64(data.count))
        writeSeq &+= 1
        lastWriteMs = wallClockMs()
        if fill!.count == fill!.capacity { sealLocked() }
        if !queue.isEmpty && !busy { startDrainLocked() }
        return data.count
    }

    /// cond held. Moves the fill buffer to the queue.
    private func sealLocked() {
        if let f = fill {
            fill = nil
            if f.count > 0 { queue.append((fillOffset, f)) } else { env.writePool.release(f) }
        }
    }

    /// cond held. Gets a fill buffer, waiting for this writer's queue when over its limits.
    private func obtainFillLocked() throws {
        let deadline = env.ioDeadline()
        while true {
            if let e = error { throw e }
            if queue.count < env.config.writeBuffersPerFile {
                // The first buffer of a writer is unconditional; more need budget.
                if let b = env.writePool.acquire(env.config.writeBufferSize, force: queue.isEmpty) {
                    fill = b
                    return
                }
            }
            if !busy { startDrainLocked() }
            if !cond.wait(untilNs: deadline) {
                throw FSError(ETIMEDOUT, "write to inode \(ino): the worker did not take buffered data in time")
            }
        }
    }

    private func startDrainLocked() {
        busy = true
        env.io.submit { [self] in
            cond.lock()
            drainLocked()
            busy = false
            cond.broadcast()
            cond.unlock()
        }
    }

    /// cond held, token held. Streams queued buffers (dropping them after an error).
    private func drainLocked() {
        while !queue.isEmpty {
            let item = queue.removeFirst()
            if error == nil {
                cond.unlock()
                var failure: FSError?
                do { try applyData(offset: item.offset, item.buf.bytes) } catch { failure = FSError(any: error) }
                cond.lock()
                if let f = failure, error == nil { error = f }
            }
            env.writePool.release(item.buf)
            cond.broadcast()
        }
    }

    /// Runs `body` holding the io token with every buffer written before the call drained
    /// (`seal`: including the partly filled one). A sticky error fails the call before
    /// `body` runs unless `ignoreError`.
    private func withToken<T>(seal: Bool, ignoreError: Bool = false, _ body: () throws -> T) throws -> T {
        cond.lock()
        if seal { sealLocked() }
        let seq = writeSeq
        let deadline = env.ioDeadline()
        while busy {
            if !cond.wait(untilNs: deadline) {
                cond.unlock()
                throw FSError(ETIMEDOUT, "inode \(ino): timed out waiting for the file's writer")
            }
        }
        busy = true
        drainLocked()
        let err = ignoreError ? nil : error
        cond.unlock()
        var result: Result<T, Error>
        if let e = err { result = .failure(e) } else { result = Result { try body() } }
        cond.lock()
        if case .success = result, seal, error == nil, flushedSeq < seq { flushedSeq = seq }
        busy = false
        if !queue.isEmpty { startDrainLocked() }
        cond.broadcast()
        cond.unlock()
        return try result.get()
    }

    // MARK: durability (request threads)

    /// FLUSH/FSYNC: the data written so far becomes visible to other clients.
    func flush() throws {
        if !isDirty { return }
        try withToken(seal: true) {
            guard session != nil else { return }
            try extend(to: cond.withLock { _length })
            let s = session!  // after extend: it may have rebuilt the session
            if let c = s.cur { try fsTry { try c.writer.flush() } }
            if s.unreported || cond.withLock({ lengthChanged }) {
                var commits = s.pending
                if let c = s.cur {
                    let b = s.blocks[c.index].located
                    let cb = CommitBlock(blockId: b.id, length: c.end, workerIds: b.locations.map { $0.workerId },
                                         storageType: b.storageType)
                    commits.removeAll { $0.blockId == cb.blockId }
                    commits.append(cb)
                }
                let path = try env.table.path(ino)
                try fsTry { try env.client.completeFile(path, length: s.extent, commit: commits, onlyFlush: true,
                                                        inodeId: s.inodeId) }
                s.pending.removeAll()
                s.unreported = false
            }
            cond.withLock { lengthChanged = false }
            bumpVersion()
        }
    }

    /// Last release / shutdown: commit everything and close the session.
    func commit() throws {
        try withToken(seal: true) { try finishSession() }
    }

    /// Ends the session after an error: commits what was committed so the lease is
    /// released; buffered data is dropped (its error was or will be reported).
    func abandon() {
        _ = try? withToken(seal: true, ignoreError: true) { () -> Void in
            guard let s = session else { return }
            session = nil
            cond.withLock { hasSession = false; lengthChanged = false }
            var len: Int64 = 0
            for (i, b) in s.blocks.enumerated() where s.cur?.index != i { len += b.length }
            if let c = s.cur {
                len += s.blocks[c.index].length
                c.writer.cancel()
                s.cur = nil
            }
            if let path = try? env.table.path(ino) {
                try? env.client.completeFile(path, length: len, commit: s.pending, onlyFlush: false, inodeId: s.inodeId)
            }
            bumpVersion()
        }
    }

    /// The sticky error, if a background write failed.
    var failure: FSError? { cond.withLock { error } }

    /// truncate/ftruncate/O_TRUNC/fallocate-extend through the writer. Grows inside an open
    /// session are logical (materialised as sparse blocks at the next flush); shrinks end
    /// the session and use ResizeFile; without a session ResizeFile does it all.
    func resize(to size: Int64, truncate: Bool) throws {
        try withToken(seal: true) {
            let L = cond.withLock { _length }
            if session != nil && size >= L {
                cond.withLock { _length = size; if size != L { lengthChanged = true } }
                return
            }
            if session != nil { try finishSession(extendToLength: false) }
            let path = try env.table.path(ino)
            if size != L {
                _ = try fsTry { try env.client.resize(path, length: size, truncate: truncate || size < L, mode: 0) }
            }
            cond.withLock { _length = size; lengthChanged = false }
            bumpVersion()
        }
    }

    // MARK: token holder

    private func bumpVersion() { owner?.bumpDataVersion() }

    private func ensureSession() throws {
        if session != nil { return }
        let path = try env.table.path(ino)
        let fb = try fsTry { try env.client.openForWrite(path, append: false) }
        let bs = fb.status.blockSize > 0 ? fb.status.blockSize : env.config.blockSize
        session = Session(inodeId: fb.status.id, blockSize: bs,
                          blocks: fb.blocks.map { WBlock(located: $0, length: $0.length, preexisting: true) })
        let extent = session!.extent
        cond.withLock {
            hasSession = true
            _length = max(_length, extent)
        }
    }

    private func finishSession(extendToLength: Bool = true) throws {
        guard session != nil else { return }
        var firstError: Error?
        do {
            if extendToLength { try extend(to: cond.withLock { _length }) }
            try commitCurrent(session!)
        } catch {
            firstError = error
            session!.cur?.writer.cancel()
            session!.cur = nil
        }
        let s = session!
        let path = try env.table.path(ino)
        do {
            try fsTry { try env.client.completeFile(path, length: s.extent, commit: s.pending, onlyFlush: false,
                                                    inodeId: s.inodeId) }
        } catch {
            if firstError == nil { firstError = error }
        }
        session = nil
        cond.withLock { hasSession = false; lengthChanged = false }
        bumpVersion()
        if let e = firstError { throw FSError(any: e) }
    }

    private func commitCurrent(_ s: Session) throws {
        guard let c = s.cur else { return }
        s.cur = nil
        let cb = try fsTry { try c.writer.commit(length: c.end) }
        s.blocks[c.index].length = c.end
        s.pending.removeAll { $0.blockId == cb.blockId }
        s.pending.append(cb)
        s.unreported = true
    }

    /// Streams `bytes` to file offset `offset`.
    private func applyData(offset: Int64, _ bytes: UnsafeRawBufferPointer) throws {
        try ensureSession()
        var off = offset
        var pos = 0
        // One BlockWriter.write per block piece (a whole write buffer, usually): the
        // writer cuts it into wire chunks itself and pipelines them to the worker, and a
        // short-circuit writer makes one pwrite of it instead of one per chunk.
        while pos < bytes.count {
            let bs = session!.blockSize
            let b = Int(off / bs)
            let inner = off % bs
            let n = Int(min(Int64(bytes.count - pos), bs - inner))
            let w = try streamFor(session!, block: b, at: inner)
            // streamFor may have replaced the session (hole rebuild): use the current one.
            let s = session!
            try fsTry { try w.write(at: inner, UnsafeRawBufferPointer(rebasing: bytes[pos..<(pos + n)])) }
            s.cur!.end = max(s.cur!.end, inner + Int64(n))
            s.unreported = true
            pos += n
            off += Int64(n)
        }
    }

    /// Makes the file at least `L` bytes long on the master (sparse blocks, zero-filled
    /// gaps of old blocks).
    private func extend(to L: Int64) throws {
        guard let s = session, L > s.extent else { return }
        let b = Int((L - 1) / s.blockSize)
        let inner = L - Int64(b) * s.blockSize
        _ = try streamFor(s, block: b, at: inner)
        let cs = session!  // streamFor may have replaced the session (hole rebuild)
        cs.cur!.end = max(cs.cur!.end, inner)
        cs.unreported = true
    }

    /// The open stream of block `b` positioned for a write at `inner`, creating blocks,
    /// rebuilding holes and zero-filling stale gaps as needed.
    private func streamFor(_ s: Session, block b: Int, at inner: Int64) throws -> BlockWriter {
        if let c = s.cur, c.index == b {
            if s.blocks[b].preexisting && inner > c.end {
                try zeroFill(c.writer, from: c.end, to: inner)
                s.cur!.end = inner
            }
            return c.writer
        }
        try commitCurrent(s)
        if b < s.blocks.count && s.blocks[b].isHole {
            try rebuildHoles(s)
            return try streamFor(session!, block: b, at: inner)
        }
        try ensureBlocks(s, through: b)
        // ensureBlocks may have replaced the session (a trailing hole rebuilt): use the current one.
        let s = session!
        let blk = s.blocks[b]
        let startAt = blk.preexisting ? min(inner, blk.length) : inner
        let w = try fsTry { try env.client.openBlockWriter(blk.located, offset: startAt, capacity: s.blockSize) }
        s.cur = (b, w, blk.length)
        if blk.preexisting && inner > blk.length {
            do { try zeroFill(w, from: blk.length, to: inner) } catch { w.cancel(); s.cur = nil; throw error }
            s.cur!.end = inner
        }
        return w
    }

    private func zeroFill(_ w: BlockWriter, from: Int64, to: Int64) throws {
        var at = from
        let z = UnsafeRawBufferPointer(env.zeros)
        let chunk = min(z.count, max(4096, env.config.chunkSize))
        while at < to {
            let n = Int(min(Int64(chunk), to - at))
            try fsTry { try w.write(at: at, UnsafeRawBufferPointer(rebasing: z[0..<n])) }
            at += Int64(n)
        }
    }

    /// Adds blocks until index `b` exists; every block before a new one is made full
    /// (sparse where nothing was written).
    private func ensureBlocks(_ s: Session, through b: Int) throws {
        while s.blocks.count <= b {
            // A trailing hole (from resize/fallocate) is rebuilt before anything is
            // appended, full-length ones included: a hole followed by data could never
            // be written again (rebuildHoles refuses it).
            if let li = s.blocks.indices.last, s.blocks[li].isHole {
                try rebuildHoles(s)
                return try ensureBlocks(session!, through: b)
            }
            if let li = s.blocks.indices.last, s.blocks[li].length < s.blockSize {
                let last = s.blocks[li]
                let startAt = last.length
                let w = try fsTry { try env.client.openBlockWriter(last.located, offset: startAt, capacity: s.blockSize) }
                s.cur = (li, w, last.length)
                if last.preexisting {
                    do { try zeroFill(w, from: last.length, to: s.blockSize) } catch { w.cancel(); s.cur = nil; throw error }
                }
                s.cur!.end = s.blockSize
                try commitCurrent(s)
            }
            let path = try env.table.path(ino)
            let lb = try fsTry {
                try env.client.addBlock(path, commit: s.pending, fileLength: s.extent, inodeId: s.inodeId, excludeWorkers: [])
            }
            s.pending.removeAll()
            s.blocks.append(WBlock(located: lb, length: 0, preexisting: false))
            s.unreported = true
            if s.blocks.count <= b {
                // A block wholly skipped by a sparse write: full length, nothing written.
                let li = s.blocks.count - 1
                let w = try fsTry { try env.client.openBlockWriter(lb, offset: 0, capacity: s.blockSize) }
                s.cur = (li, w, s.blockSize)
                try commitCurrent(s)
            }
        }
    }

    /// Replaces the hole blocks at the end of the file (from resize/fallocate, no replica,
    /// cannot be written) by cutting them off; the caller re-adds real blocks and the
    /// logical length keeps the file's size.
    private func rebuildHoles(_ s: Session) throws {
        guard let h = s.blocks.firstIndex(where: { $0.isHole }) else { return }
        if s.blocks[h...].contains(where: { !$0.isHole }) {
            throw FSError(EIO, "inode \(ino): cannot write into a hole block that is followed by data")
        }
        var keep: Int64 = 0
        for i in 0..<h { keep += (s.cur?.index == i ? s.cur!.end : s.blocks[i].length) }
        let total = s.extent
        cond.withLock { _length = max(_length, total) }
        try finishSession(extendToLength: false)
        let path = try env.table.path(ino)
        _ = try fsTry { try env.client.resize(path, length: keep, truncate: true, mode: 0) }
        try ensureSession()
        cond.withLock { lengthChanged = true }
    }
}
