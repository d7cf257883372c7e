// The read path: one FileReader per open file handle, with a prefetcher.
//
// # Design
//
// A read is answered, in order of preference, from:
//   1. a prefetched unit that covers it entirely: the reply points into the unit's
//      pooled buffer (no copy in user space);
//   2. a short-circuit block file: when the block's worker is on this host the
//      BlockReader hands out an fd and the reply is `replyFile(fd:offset:count:)`, which
//      the adapter splices (zero copy; the kernel page cache of the block file does the
//      caching, so local blocks are never prefetched into memory);
//   3. otherwise a pooled scratch buffer filled from prefetched units where they exist
//      and from worker streams on the request's own thread where they do not ("demand"
//      reads). Holes (blocks without replicas, the tail past the last block) are zeros.
//
// # Sequential detection and the window
//
// A handle becomes "sequential" when a read starts exactly where the previous one ended
// or ends exactly where it started (a swapped pair), or the first read starts at 0. While sequential, every read schedules the units (`prefetchUnit` bytes,
// aligned) between its end and `end + window` that are not already present; io threads
// fetch them into buffers from the shared read pool. The window starts at
// `initialPrefetchWindow` (1 MiB) and doubles each time a read is served from
// prefetched data, up to `maxPrefetchWindow` (64 MiB): a short sequential read costs at
// most 1 MiB of extra transfer, while a long one reaches full speed within ~6 reads.
//
// Kernel readahead sends reads out of order (async readahead overlaps the synchronous
// read, and the requests of one window are served by several worker threads), so
// staying sequential is a band, not a point: a read that ends no more than
// `maxBackwardSeek` (1 MiB; the mount raises it to 2 × read_ahead_kb + 1 MiB) before the
// furthest byte read so far, or starts anywhere inside the current window (or that
// distance) ahead of it, keeps the stream sequential. A read outside the band
// is a seek: the window resets to its initial size, units that are no longer useful are
// dropped (queued ones never fetched, running ones discarded when they finish), and
// prefetch resumes only when reads look sequential again — so random reads (LMDB,
// shuffled records in a shard) cost exactly what they ask for, no amplification.
//
// # Memory
//
// All units of all handles come from one BufferPool whose budget is
// `readBufferBudget` (1 GiB). A handle's first unit ahead of its reader is always
// granted (every sequential stream makes progress, as mountpoint-s3's minimum
// reservation); further units are taken only while the budget allows, so under memory
// pressure windows simply stop growing. A unit is freed as soon as all its bytes were
// read once, when the reader moves more than `maxBackwardSeek` past it, on a seek,
// on close, and when the file changes in this mount (writer flush, truncate).
// Demand reads use a pooled scratch buffer (forced: they must progress, and there are
// at most as many as request threads). Buffers and unit objects are recycled, so a
// steady stream of reads does not allocate — ReadAllocationTests counts mallocs around
// 10,000 reads of each path and expects zero, in debug builds too. That rules out on
// this path: closures that escape (a prefetch task is the FileReader itself, an
// IOTask, not a closure), String formatting, Array/Data temporaries, and the generic
// Collection algorithms (first(where:), contains(where:), for-in over `units`): in
// unoptimized builds they go through Array's `read` coroutine, which mallocs its frame
// per element, so the unit and stream lists are searched with index loops.
//
// # Concurrency
//
// One ConditionLock per handle guards the layout (block list), units and stream cache;
// it is never held across the network. A unit is `queued` (in the io pool), `running`
// (an io thread or a request thread fetches it), `ready` or `failed`. Each queued unit
// has one task in the io pool; a task fetches the first unit of its handle still
// queued (there may be none left: no-op). A request that
// needs a queued unit claims it and fetches it itself rather than wait behind other
// files' tasks; one that needs a running unit waits for it, at most `ioTimeout`.
// Worker streams (BlockReader, one user at a time) are checked out per use and
// cached per block (`maxStreamsPerHandle` idle at most).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CurvineClient

final class FileReader: IOTask, @unchecked Sendable {
    /// An immutable snapshot of the file's blocks.
    final class Layout {
        let blocks: [LocatedBlock]
        let starts: [Int64]
        let length: Int64
        let generation: UInt64
        let fetchedNs: UInt64

        init(_ fb: FileBlocks, generation: UInt64) {
            blocks = fb.blocks
            var s: [Int64] = []
            s.reserveCapacity(fb.blocks.count)
            var acc: Int64 = 0
            for b in fb.blocks { s.append(acc); acc += b.length }
            starts = s
            length = max(fb.status.length, 0)
            self.generation = generation
            fetchedNs = monotonicNs()
        }

        /// Index of the block holding byte `off`, or nil past the last block.
        func blockIndex(_ off: Int64) -> Int? {
            var lo = 0, hi = blocks.count - 1
            while lo <= hi {
                let mid = (lo + hi) / 2
                if starts[mid] + blocks[mid].length <= off { lo = mid + 1 } else if starts[mid] > off { hi = mid - 1 } else { return mid }
            }
            return nil
        }
    }

    final class Unit {
        enum State { case queued, running, ready, failed, cancelled }
        var index: Int64 = 0
        var offset: Int64 = 0
        var length = 0
        var buf: PooledBuffer?
        var state = State.cancelled
        var error: FSError?
        var pins = 0
        var served = 0
        var generation: UInt64 = 0
        /// Removed from `units`; recycle when unpinned and not running.
        var detached = false
    }

    private struct Stream {
        let block: Int
        let layoutGen: UInt64
        let reader: BlockReader
    }

    let ino: UInt64
    private let env: CoreEnv
    private let open: OpenFile
    private let cond = ConditionLock()

    // Guarded by cond.
    private var layout: Layout?
    private var layoutVersion: UInt64 = 0
    private var layoutGen: UInt64 = 0
    private var refreshing = false
    private var units: [Unit] = []
    private var spareUnits: [Unit] = []
    private var window: Int
    private var lastEnd: Int64 = -1
    private var lastStart: Int64 = -1
    private var sequential = false
    private var idle: [Stream] = []
    private var localBlocks: Set<Int> = []
    private var closed = false

    init(ino: UInt64, env: CoreEnv, open: OpenFile) {
        self.ino = ino
        self.env = env
        self.open = open
        self.window = max(env.config.initialPrefetchWindow, 0)
        // A full window of units plus stragglers, so the list never grows mid-stream.
        units.reserveCapacity(max(env.config.maxPrefetchWindow, 0) / max(4096, env.config.prefetchUnit) + 8)
        idle.reserveCapacity(max(1, env.config.maxStreamsPerHandle) + 1)
    }

    private var unitSize: Int { max(4096, env.config.prefetchUnit) }

    // MARK: read

    func read(offset: Int64, size: Int, replier: ReadReplier) throws {
        guard offset >= 0 else { throw FSError(EINVAL, "negative read offset") }
        if let w = open.writer, w.isDirty {
            // Read-your-writes: make this mount's buffered writes visible to the read.
            try w.flush()
            env.count { $0.readYourWritesFlushes += 1 }
        }
        var lay = try currentLayout()
        if size > 0, offset + Int64(size) > lay.length,
           monotonicNs() - lay.fetchedNs > UInt64(max(env.config.attrTimeout, 0.001) * 1e9) {
            // Past our idea of EOF with an old layout: another client may have appended.
            lay = try currentLayout(force: true)
        }
        guard size > 0, offset < lay.length else {
            replier.replyBytes(UnsafeRawBufferPointer(start: nil, count: 0))
            return
        }
        let n = Int(min(Int64(size), lay.length - offset))
        let end = offset + Int64(n)

        cond.lock()
        noteAccessLocked(offset: offset, end: end)
        // 1. One ready (or fetchable) unit covers the whole read: reply from its buffer.
        let ui = offset / Int64(unitSize)
        if (end - 1) / Int64(unitSize) == ui, let u = obtainUnitLocked(ui, lay) {
            let start = Int(offset - u.offset)
            u.pins += 1
            cond.unlock()
            replier.replyBytes(UnsafeRawBufferPointer(start: u.buf!.base + start, count: n))
            cond.lock()
            unpinLocked(u, consumed: n)
            growWindowLocked()
            scheduleLocked(lay, from: end)
            cond.unlock()
            env.count { $0.prefetchHitBytes += UInt64(n) }
            return
        }
        let seq = sequential
        cond.unlock()

        // 2. Short-circuit: the read lies in one local block.
        if let bi = lay.blockIndex(offset), lay.starts[bi] + lay.blocks[bi].length >= end,
           !lay.blocks[bi].isHole, !lay.blocks[bi].locations.isEmpty {
            let inner = offset - lay.starts[bi]
            let s = try checkout(lay, bi, at: inner)
            if let fd = s.reader.localFileDescriptor {
                replier.replyFile(fd: fd, offset: inner, count: n)
                checkin(s)
                env.count { $0.shortCircuitBytes += UInt64(n) }
                if seq { cond.withLock { scheduleLocked(lay, from: end) } }
                return
            }
            checkin(s)
        }

        // 3. Scratch buffer from units and demand reads.
        guard let scratch = env.readPool.acquire(n, force: true) else { throw FSError(ENOMEM, "no read buffer") }
        defer { env.readPool.release(scratch) }
        var pos = 0
        var hit = 0
        while pos < n {
            let off = offset + Int64(pos)
            let idx = off / Int64(unitSize)
            let pieceEnd = min(end, (idx + 1) * Int64(unitSize))
            let len = Int(pieceEnd - off)
            let dest = UnsafeMutableRawBufferPointer(start: scratch.base + pos, count: len)
            cond.lock()
            if let u = obtainUnitLocked(idx, lay) {
                u.pins += 1
                cond.unlock()
                dest.copyMemory(from: UnsafeRawBufferPointer(start: u.buf!.base + Int(off - u.offset), count: len))
                cond.lock()
                unpinLocked(u, consumed: len)
                cond.unlock()
                hit += len
            } else {
                cond.unlock()
                try readRange(lay, offset: off, into: dest)
            }
            pos += len
        }
        replier.replyBytes(UnsafeRawBufferPointer(start: scratch.base, count: n))
        cond.withLock {
            if hit > 0 { growWindowLocked() }
            scheduleLocked(lay, from: end)
        }
        env.count {
            $0.prefetchHitBytes += UInt64(hit)
            $0.demandReadBytes += UInt64(n - hit)
        }
    }

    /// Closes the handle's streams and drops its units.
    func close() {
        var streams: [Stream] = []
        cond.withLock {
            closed = true
            dropUnitsLocked { _ in true }
            streams = idle
            idle.removeAll()
        }
        for s in streams { s.reader.close() }
    }

    // MARK: layout

    private func currentLayout(force: Bool = false) throws -> Layout {
        cond.lock()
        let deadline = env.ioDeadline()
        while true {
            let v = open.dataVersion
            if !force, let l = layout, layoutVersion == v {
                cond.unlock()
                return l
            }
            if refreshing {
                if !cond.wait(untilNs: deadline) {
                    cond.unlock()
                    throw FSError(ETIMEDOUT, "inode \(ino): timed out waiting for block locations")
                }
                if force, layout != nil { cond.unlock(); return layout! }
                continue
            }
            refreshing = true
            cond.unlock()
            let fetched: FileBlocks
            do {
                let path = try env.table.path(ino)
                fetched = try fsTry { try env.client.blockLocations(path) }
            } catch {
                cond.withLock { refreshing = false; cond.broadcast() }
                throw error
            }
            cond.lock()
            refreshing = false
            layoutGen &+= 1
            let l = Layout(fetched, generation: layoutGen)
            layout = l
            layoutVersion = v
            localBlocks.removeAll()
            dropUnitsLocked { _ in true }
            var stale: [Stream] = []
            swap(&stale, &idle)
            cond.broadcast()
            cond.unlock()
            for s in stale { s.reader.close() }
            return l
        }
    }

    // MARK: units (cond held)

    private func noteAccessLocked(offset: Int64, end: Int64) {
        let near: Bool
        if sequential {
            // Stay sequential inside the band: a little behind (reordered readahead: the
            // read ends at most maxBackwardSeek before the furthest byte, so one whole
            // request may overtake another of any size) or ahead within the window or
            // the reorder distance (readahead running ahead of the application).
            let reorder = Int64(env.config.maxBackwardSeek)
            near = end >= lastEnd - reorder
                && offset <= lastEnd + max(Int64(max(window, unitSize)), reorder)
        } else {
            // Become sequential only on an exact continuation (or a first read at 0), so
            // random reads that happen to land close together never start prefetching.
            // A read that ends where the previous one started is the same run arriving
            // swapped (async readahead overtaking the synchronous read).
            near = offset == lastEnd || end == lastStart || (lastEnd < 0 && offset == 0)
        }
        lastStart = offset
        if near {
            sequential = true
            lastEnd = max(lastEnd, end)
        } else {
            // A seek: restart the window, keep only units that serve this read.
            sequential = false
            window = max(env.config.initialPrefetchWindow, 0)
            let us = Int64(unitSize)
            let lo = offset / us, hi = (end - 1) / us
            dropUnitsLocked { $0.index < lo || $0.index > hi }
            lastEnd = end
        }
        // Units far behind the reader are done with.
        let behind = lastEnd - Int64(env.config.maxBackwardSeek)
        dropUnitsLocked { $0.offset + Int64($0.length) <= behind && $0.offset + Int64($0.length) <= offset }
    }

    private func growWindowLocked() {
        window = min(max(window, unitSize) * 2, max(env.config.maxPrefetchWindow, unitSize))
    }

    /// A ready unit covering index `idx` (fetching or waiting for it), or nil when there
    /// is none, it failed (the caller reads on demand, which retries), or it did not
    /// finish within ioTimeout.
    private func obtainUnitLocked(_ idx: Int64, _ lay: Layout) -> Unit? {
        let deadline = env.ioDeadline()
        while true {
            guard let i = unitIndexLocked(idx) else { return nil }
            let u = units[i]
            guard u.generation == lay.generation else { return nil }
            switch u.state {
            case .ready:
                return u
            case .queued:
                // Claim it: fetching here beats waiting behind other files' tasks.
                u.state = .running
                let job = (u.offset, u.buf!.base, u.length)
                cond.unlock()
                fetch(u, lay, job)
                cond.lock()
            case .running:
                if !cond.wait(untilNs: deadline) { return nil }
            case .failed, .cancelled:
                detachLocked(u)
                return nil
            }
        }
    }

    private func unpinLocked(_ u: Unit, consumed n: Int) {
        u.pins -= 1
        u.served += n
        if u.detached { recycleLocked(u) } else if u.served >= u.length { detachLocked(u) }
    }

    private func detachLocked(_ u: Unit) {
        var i = 0
        while i < units.count {
            if units[i] === u { units.remove(at: i); break }
            i += 1
        }
        u.detached = true
        if u.state == .queued { u.state = .cancelled }
        if u.state == .ready, u.served < u.length {
            let wasted = UInt64(u.length - u.served)
            env.count { $0.prefetchWastedBytes += wasted }
        }
        if u.state != .running { u.state = .cancelled }
        recycleLocked(u)
    }

    private func recycleLocked(_ u: Unit) {
        guard u.detached, u.pins == 0, u.state != .running else { return }
        if let b = u.buf { u.buf = nil; env.readPool.release(b) }
        u.detached = false
        u.error = nil
        if spareUnits.count < 64 { spareUnits.append(u) }
    }

    private func dropUnitsLocked(_ which: (Unit) -> Bool) {
        var i = 0
        while i < units.count {
            let u = units[i]
            if which(u) { detachLocked(u) } else { i += 1 }  // detachLocked removes units[i]
        }
    }

    /// Index in `units` of the unit numbered `idx` (an index loop: see "Memory").
    private func unitIndexLocked(_ idx: Int64) -> Int? {
        var i = 0
        while i < units.count {
            if units[i].index == idx { return i }
            i += 1
        }
        return nil
    }

    /// Queues the units in [from, from + window) that are missing.
    private func scheduleLocked(_ lay: Layout, from: Int64) {
        guard sequential, !closed, lay.generation == layout?.generation, window > 0 else { return }
        let us = Int64(unitSize)
        let target = min(lay.length, from + Int64(window))
        var idx = from / us
        var ahead = false
        var i = 0
        while i < units.count {
            if units[i].offset >= from { ahead = true; break }
            i += 1
        }
        while idx * us < target {
            defer { idx += 1 }
            if unitIndexLocked(idx) != nil { continue }
            let off = idx * us
            if let bi = lay.blockIndex(off), localBlocks.contains(bi),
               lay.starts[bi] + lay.blocks[bi].length >= min(off + us, lay.length) { continue }
            let len = Int(min(us, lay.length - off))
            guard let buf = env.readPool.acquire(len, force: !ahead) else { break }
            ahead = true
            let u = spareUnits.popLast() ?? Unit()
            u.index = idx; u.offset = off; u.length = len; u.buf = buf
            u.state = .queued; u.error = nil; u.pins = 0; u.served = 0
            u.generation = lay.generation; u.detached = false
            units.append(u)
            env.io.submit(task: self)
        }
    }

    /// io thread: fetch the first unit still queued (one task per queued unit; a request
    /// may have claimed it or a seek dropped it meanwhile, then there is nothing to do).
    func runIOTask() {
        cond.lock()
        var i = 0
        while i < units.count, units[i].state != .queued { i += 1 }
        guard i < units.count, let lay = layout, units[i].generation == lay.generation else {
            cond.unlock()
            return
        }
        let u = units[i]
        u.state = .running
        let job = (u.offset, u.buf!.base, u.length)
        cond.unlock()
        fetch(u, lay, job)
    }

    /// Fetches a unit marked running (no lock held on entry or exit). `job` is the unit's
    /// offset, buffer and length, read under the lock when it was claimed: a running unit
    /// is never recycled, but its fields are only touched under the lock.
    private func fetch(_ u: Unit, _ lay: Layout, _ job: (Int64, UnsafeMutableRawPointer, Int)) {
        let (offset, base, length) = job
        var err: FSError?
        do {
            try readRange(lay, offset: offset, into: UnsafeMutableRawBufferPointer(start: base, count: length))
        } catch {
            err = FSError(any: error)
        }
        cond.lock()
        if let e = err { u.state = .failed; u.error = e } else { u.state = .ready }
        if u.detached {
            u.state = .cancelled
            recycleLocked(u)
        }
        cond.broadcast()
        cond.unlock()
        if err == nil { env.count { $0.prefetchedBytes += UInt64(length) } }
    }

    // MARK: streams

    /// Reads `[offset, offset + into.count)` of the file from its blocks; holes and bytes
    /// past the last block are zeros.
    private func readRange(_ lay: Layout, offset: Int64, into: UnsafeMutableRawBufferPointer) throws {
        var pos = 0
        while pos < into.count {
            let off = offset + Int64(pos)
            guard let bi = lay.blockIndex(off) else {
                (into.baseAddress! + pos).initializeMemory(as: UInt8.self, repeating: 0, count: into.count - pos)
                return
            }
            let blk = lay.blocks[bi]
            let inner = off - lay.starts[bi]
            let n = Int(min(Int64(into.count - pos), blk.length - inner))
            if blk.isHole || blk.locations.isEmpty {
                (into.baseAddress! + pos).initializeMemory(as: UInt8.self, repeating: 0, count: n)
            } else {
                let s = try checkout(lay, bi, at: inner)
                var got = 0
                do {
                    while got < n {
                        let r = try fsTry {
                            try s.reader.read(at: inner + Int64(got),
                                              into: UnsafeMutableRawBufferPointer(start: into.baseAddress! + pos + got, count: n - got))
                        }
                        if r <= 0 {
                            (into.baseAddress! + pos + got).initializeMemory(as: UInt8.self, repeating: 0, count: n - got)
                            got = n
                        } else {
                            got += r
                        }
                    }
                } catch {
                    s.reader.close()  // a failed stream is not reused
                    throw error
                }
                checkin(s)
            }
            pos += n
        }
    }

    private func checkout(_ lay: Layout, _ bi: Int, at inner: Int64) throws -> Stream {
        let found: Stream? = cond.withLock {
            var i = idle.count - 1  // an index loop: see "Memory"
            while i >= 0 {
                if idle[i].block == bi && idle[i].layoutGen == lay.generation { return idle.remove(at: i) }
                i -= 1
            }
            return nil
        }
        if let s = found { return s }
        let r = try fsTry { try env.client.openBlockReader(lay.blocks[bi], offset: inner) }
        if r.localFileDescriptor != nil { cond.withLock { if lay.generation == layoutGen { localBlocks.insert(bi) } } }
        return Stream(block: bi, layoutGen: lay.generation, reader: r)
    }

    private func checkin(_ s: Stream) {
        var evict: [Stream] = []
        cond.withLock {
            if closed || s.layoutGen != layoutGen {
                evict.append(s)
                return
            }
            idle.append(s)
            let cap = max(1, env.config.maxStreamsPerHandle)
            while idle.count > cap { evict.append(idle.removeFirst()) }
        }
        for e in evict { e.reader.close() }
    }
}
