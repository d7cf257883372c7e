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
// at most as many as request threads). Buffers and units are recycled, so a steady
// stream of reads does not allocate — ReadAllocationTests counts mallocs around
// 10,000 reads of each path and expects zero, in debug builds too. Nor does it retain
// or release (counted in optimized builds): the handle comes from an unretained slot
// (FileHandleTable.swift), units are addresses in a UnitStore (PrefetchUnit.swift), the
// layout is borrowed unretained (a replaced one waits in `retiredLayouts` until no read
// is active), the pools are called through Unmanaged references, buffers and streams
// are moved (`consume`), never copied, and the io pool holds the reader unretained
// (`keepAlive`). That rules out on
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

    /// Units are plain addresses of state their store owns (PrefetchUnit.swift).
    typealias Unit = PrefetchUnit

    private struct Stream {
        let block: Int
        let layoutGen: UInt64
        let reader: BlockReader
        /// reader.localFileDescriptor when the stream was opened (asking the reader, an
        /// existential call, costs a retain/release per read). A reader that fails over
        /// to a local replica later still reads it, through `read`.
        let localFd: Int32?
    }

    let ino: UInt64
    private let env: CoreEnv
    /// env's pools, unretained (env, hence they, outlives the reader): a call through
    /// `env.readPool` (or an unowned(unsafe) copy) costs a retain and a release of the
    /// pool per call, since the optimizer does not borrow a `let` of a `let` across a
    /// call; `_withUnsafeGuaranteedRef` hands the call a +0 reference.
    private let readPoolRef: Unmanaged<BufferPool>
    private let ioRef: Unmanaged<IOThreadPool>
    @inline(__always) private func acquireBuffer(_ size: Int, force: Bool) -> PooledBuffer? {
        readPoolRef._withUnsafeGuaranteedRef { $0.acquire(size, force: force) }
    }
    @inline(__always) private func releaseBuffer(_ b: consuming PooledBuffer) {
        var moving: PooledBuffer? = consume b  // a closure cannot consume a capture; take() moves
        readPoolRef._withUnsafeGuaranteedRef { $0.release(moving.take()!) }
    }
    private let open: OpenFile
    private let cond = ConditionLock()

    // Guarded by cond.
    private var layout: Layout?
    private var layoutVersion: UInt64 = 0
    private var layoutGen: UInt64 = 0
    private var refreshing = false
    private var units: [Unit] = []
    private var spareUnits: [Unit] = []
    /// Memory of every unit this reader made (recycled, freed with the reader), so a
    /// unit held by the read path or an io thread stays valid, even detached.
    private let unitStore = UnitStore()
    /// Reads in progress (FileSystemCore.read holds the handle unretained; close() waits
    /// for them: FileHandleTable.swift).
    private var activeReads = 0
    /// Layouts replaced while reads were active (they may still use them, unretained);
    /// dropped when no read is active.
    private var retiredLayouts: [Layout] = []
    /// Prefetch tasks submitted and not yet run: the io pool holds us unretained.
    private var pendingTasks = 0
    /// Self while tasks may be pending (set at the first submit, cleared once closed with
    /// none pending): one retain per reader instead of one per submitted unit.
    private var keepAlive: FileReader?
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
        self.readPoolRef = Unmanaged.passUnretained(env.readPool)
        self.ioRef = Unmanaged.passUnretained(env.io)
        self.open = open
        self.window = max(env.config.initialPrefetchWindow, 0)
        // A full window of units plus stragglers, so the list never grows mid-stream.
        units.reserveCapacity(max(env.config.maxPrefetchWindow, 0) / max(4096, env.config.prefetchUnit) + 8)
        spareUnits.reserveCapacity(units.capacity)
        idle.reserveCapacity(max(1, env.config.maxStreamsPerHandle) + 1)
    }

    private var unitSize: Int { max(4096, env.config.prefetchUnit) }

    // MARK: read

    func read(offset: Int64, size: Int, replier: ReadReplier) throws {
        guard offset >= 0 else { throw FSError(EINVAL, "negative read offset") }
        cond.lock()
        activeReads += 1
        cond.unlock()
        defer { leaveRead() }  // declared first: runs last, after every other use of self
        if let w = open.writer, w.isDirty {
            // Read-your-writes: make this mount's buffered writes visible to the read.
            try w.flush()
            env.count { $0.readYourWritesFlushes += 1 }
        }
        var lu = try currentLayout()
        if size > 0, lu._withUnsafeGuaranteedRef({ offset + Int64(size) > $0.length
            && monotonicNs() - $0.fetchedNs > UInt64(max(env.config.attrTimeout, 0.001) * 1e9) }) {
            // Past our idea of EOF with an old layout: another client may have appended.
            lu = try currentLayout(force: true)
        }
        try lu._withUnsafeGuaranteedRef { lay in try read(lay, offset: offset, size: size, replier: replier) }
    }

    /// Ends a read (see `activeReads`): the last thing a read does with the reader.
    private func leaveRead() {
        cond.lock()
        activeReads -= 1
        if activeReads == 0 {
            if !retiredLayouts.isEmpty { retiredLayouts.removeAll() }
            if closed { cond.broadcast() }
        }
        cond.unlock()
    }

    private func read(_ lay: Layout, offset: Int64, size: Int, replier: ReadReplier) throws {
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
            replier.replyBytes(UnsafeRawBufferPointer(start: u.base! + start, count: n))
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
            if let fd = s.localFd {
                replier.replyFile(fd: fd, offset: inner, count: n)
                checkin(consume s)
                env.count { $0.shortCircuitBytes += UInt64(n) }
                if seq {
                    cond.lock()
                    scheduleLocked(lay, from: end)
                    cond.unlock()
                }
                return
            }
            checkin(consume s)
        }

        // 3. Scratch buffer from units and demand reads.
        // Held in an optional the defer takes it out of: handing a `let` to a consuming
        // parameter copies it (a retain).
        var scratchBuffer = acquireBuffer(n, force: true)
        guard let scratchBase = scratchBuffer?.base else { throw FSError(ENOMEM, "no read buffer") }
        defer { releaseBuffer(scratchBuffer.take()!) }
        var pos = 0
        var hit = 0
        while pos < n {
            let off = offset + Int64(pos)
            let idx = off / Int64(unitSize)
            let pieceEnd = min(end, (idx + 1) * Int64(unitSize))
            let len = Int(pieceEnd - off)
            let dest = UnsafeMutableRawBufferPointer(start: scratchBase + pos, count: len)
            cond.lock()
            if let u = obtainUnitLocked(idx, lay) {
                u.pins += 1
                cond.unlock()
                dest.copyMemory(from: UnsafeRawBufferPointer(start: u.base! + Int(off - u.offset), count: len))
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
        replier.replyBytes(UnsafeRawBufferPointer(start: scratchBase, count: n))
        cond.withLock {
            if hit > 0 { growWindowLocked() }
            scheduleLocked(lay, from: end)
        }
        env.count {
            $0.prefetchHitBytes += UInt64(hit)
            $0.demandReadBytes += UInt64(n - hit)
        }
    }

    /// Closes the handle's streams and drops its units. Returns once no read is in
    /// progress (a read may still be finishing after its reply when RELEASE comes).
    func close() {
        var streams: [Stream] = []
        var keep: FileReader?
        cond.lock()
        closed = true
        dropUnitsLocked { _ in true }
        streams = idle
        idle.removeAll()
        while activeReads > 0 { cond.wait() }
        if pendingTasks == 0 { swap(&keep, &keepAlive) }
        cond.unlock()
        for s in streams { s.reader.close() }
        withExtendedLifetime(keep) {}  // the last reference may go here, never under the lock
    }

    // MARK: layout

    /// The current layout, unretained: valid while this read is active (a replaced one
    /// waits in `retiredLayouts`). Called by reads only.
    private func currentLayout(force: Bool = false) throws -> Unmanaged<Layout> {
        cond.lock()
        let deadline = env.ioDeadline()
        while true {
            let v = open.dataVersion
            if !force, layoutVersion == v, let l = layout.map({ Unmanaged.passUnretained($0) }) {
                cond.unlock()
                return l
            }
            if refreshing {
                if !cond.wait(untilNs: deadline) {
                    cond.unlock()
                    throw FSError(ETIMEDOUT, "inode \(ino): timed out waiting for block locations")
                }
                if force, let l = layout.map({ Unmanaged.passUnretained($0) }) { cond.unlock(); return l }
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
            if let old = layout { retiredLayouts.append(old) }
            layout = l
            layoutVersion = v
            localBlocks.removeAll()
            dropUnitsLocked { _ in true }
            var stale: [Stream] = []
            swap(&stale, &idle)
            cond.broadcast()
            cond.unlock()
            for s in stale { s.reader.close() }
            return Unmanaged.passUnretained(l)  // `layout` keeps it
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
    /// Pin the unit before unlocking (it is recycled once unpinned and detached).
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
                let job = (u.offset, u.base!, u.length)
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
        if let b = u.detachBuffer() { releaseBuffer(b) }
        u.detached = false
        u.error = nil
        spareUnits.append(u)  // bounded: every unit of the store is in use or spare
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
            guard let buf = acquireBuffer(len, force: !ahead) else { break }
            ahead = true
            let u = spareUnits.popLast() ?? unitStore.make()
            u.attach(consume buf)
            u.index = idx; u.offset = off; u.length = len
            u.state = .queued; u.error = nil; u.pins = 0; u.served = 0
            u.generation = lay.generation; u.detached = false
            units.append(u)
            if keepAlive == nil { keepAlive = self }  // until close (see `keepAlive`)
            pendingTasks += 1
            ioRef._withUnsafeGuaranteedRef { $0.submit(task: self) }
        }
    }

    /// io thread: fetch the first unit still queued (one task per queued unit; a request
    /// may have claimed it or a seek dropped it meanwhile, then there is nothing to do).
    func runIOTask() {
        cond.lock()
        var i = 0
        while i < units.count, units[i].state != .queued { i += 1 }
        if i < units.count, let lay = layout, units[i].generation == lay.generation {
            let u = units[i]
            u.state = .running
            let job = (u.offset, u.base!, u.length)
            cond.unlock()
            fetch(u, lay, job)
            cond.lock()
        }
        // The pool holds us unretained: drop the self-reference after the last task of a
        // closed reader, outside the lock (it may be the last reference).
        pendingTasks -= 1
        var keep: FileReader?
        if pendingTasks == 0 && closed && activeReads == 0 { swap(&keep, &keepAlive) }
        cond.unlock()
        withExtendedLifetime(keep) {}
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
                checkin(consume s)
            }
            pos += n
        }
    }

    private func checkout(_ lay: Layout, _ bi: Int, at inner: Int64) throws -> Stream {
        // Explicit lock/unlock rather than withLock's closure: the closure's context costs
        // the read path retains.
        cond.lock()
        var i = idle.count - 1  // an index loop: see "Memory"
        while i >= 0 {
            if idle[i].block == bi && idle[i].layoutGen == lay.generation {
                let s = idle.remove(at: i)
                cond.unlock()
                return s
            }
            i -= 1
        }
        cond.unlock()
        let r = try fsTry { try env.client.openBlockReader(lay.blocks[bi], offset: inner) }
        let fd = r.localFileDescriptor
        if fd != nil { cond.withLock { if lay.generation == layoutGen { localBlocks.insert(bi) } } }
        return Stream(block: bi, layoutGen: lay.generation, reader: r, localFd: fd)
    }

    /// `consuming`: the stream moves into `idle` (a borrowed one would be copied: a retain).
    private func checkin(_ s: consuming Stream) {
        cond.lock()
        if closed || s.layoutGen != layoutGen {
            cond.unlock()
            s.reader.close()
            return
        }
        idle.append(s)
        let cap = max(1, env.config.maxStreamsPerHandle)
        if idle.count <= cap {
            cond.unlock()
            return
        }
        var evict: [Stream] = []
        while idle.count > cap { evict.append(idle.removeFirst()) }
        cond.unlock()
        for e in evict { e.reader.close() }
    }
}
