// Kernel FUSE passthrough for local single-block files: the core's half.
//
// Linux >= 6.9 (CONFIG_FUSE_PASSTHROUGH) can serve a FUSE file's reads, splice and
// mmap straight from a "backing" file the daemon registered, without one READ request.
// The backing file must hold the FUSE file's bytes at the same offsets and end where it
// ends. A Curvine file is such a file exactly when it is complete and has one block,
// and that block's replica is on this host: the worker's block file (short-circuit fd)
// is then the file, byte for byte. Everything else keeps the normal read path.
//
// What decides (in `admitPassthrough`, at open):
//   - a backend is set (`--passthrough auto`, writeback cache off) and the kernel took
//     passthrough at INIT (`PassthroughBackend.isAvailable`);
//   - the open is read-only (no O_WRONLY/O_RDWR/O_TRUNC): a passthrough open that may
//     write would write the worker's block file behind the master's back;
//   - the file is a regular Curvine file, complete on the master, not written through
//     this mount right now (no writer, no writable handle), `0 < length <= blockSize`;
//   - its block list has exactly one block, not a hole, of the file's length, and the
//     block reader hands out a local fd (short-circuit) whose file is exactly that long;
//   - the inode has no normal open right now (the kernel refuses to mix the two modes).
// The first such open registers the block file (BACKING_OPEN) and keeps the id for the
// inode; later opens of the inode reuse it (the kernel refuses a second backing file
// for one inode); the last release closes it. While an inode has passthrough opens:
//   - every further read-only open of it is a passthrough open too (whatever changed),
//   - a write open, O_TRUNC open or truncate of it waits up to `passthroughDrainWait`
//     for them to go (a just-closed file's RELEASE may still be on its way), then
//     fails with EBUSY (docs/SEMANTICS.md, "Kernel passthrough").
// An inode with normal opens gets normal opens until they are all released.
//
// The daemon's counts can only be ahead of the kernel's: an open is counted before
// its reply and dropped at RELEASE, which the kernel sends after it dropped the open
// itself (an OPEN whose reply never arrived is released by the adapter). So the daemon
// never hands the kernel a mix it would refuse.
//
// Verdicts that only change when the file does (several blocks, remote block, block
// file of another length) are remembered per inode with the file's (mtime, length)
// for `ineligibleTTL`, so reopening such a file costs no extra master/worker round trip.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CurvineClient

/// The kernel side of passthrough, provided by the FUSE adapter (libfuse shim).
public protocol PassthroughBackend: AnyObject {
    /// The kernel accepted passthrough at INIT and no BACKING_OPEN failed with EPERM since.
    var isAvailable: Bool { get }
    /// Registers an open regular file as a backing file (FUSE_DEV_IOC_BACKING_OPEN); returns
    /// the backing id (> 0). The kernel keeps its own reference, so `fd` may be closed after.
    /// Throws FSError with the errno on failure.
    func openBacking(fd: Int32) throws -> Int32
    /// FUSE_DEV_IOC_BACKING_CLOSE. Opens made with the id keep working.
    func closeBacking(id: Int32)
}

/// Passthrough counters since mount (tests, /details).
public struct PassthroughStats: Sendable, Equatable {
    /// Opens answered with FOPEN_PASSTHROUGH.
    public var passthroughOpens: UInt64 = 0
    /// Read-only opens that were considered and got the normal read path.
    public var normalReadOpens: UInt64 = 0
    /// BACKING_OPEN calls that succeeded (first passthrough open of an inode).
    public var backingOpens: UInt64 = 0
    /// BACKING_OPEN calls that failed (the open got the normal path).
    public var backingFailures: UInt64 = 0
    /// Write/truncate opens and truncates refused with EBUSY.
    public var refusedWrites: UInt64 = 0
    /// Inodes holding a backing id now.
    public var backingIds: Int = 0
    public init() {}
}

/// Per-core passthrough bookkeeping. One leaf lock; BACKING_OPEN/CLOSE (local ioctls)
/// run under it so that an inode's mode and id change atomically with its counts.
final class PassthroughState: @unchecked Sendable {
    struct Modes {
        var normal = 0
        var passthrough = 0
        var backingId: Int32 = 0
    }

    struct Handle {
        let ino: UInt64
        let passthrough: Bool
        let reason: String
    }

    struct Ineligible {
        let mtimeMs: Int64
        let length: Int64
        let untilNs: UInt64
        let reason: String
    }

    let lock = Lock()
    var backend: PassthroughBackend?
    var inodes: [UInt64: Modes] = [:]
    var handles: [UInt64: Handle] = [:]
    var ineligible: [UInt64: Ineligible] = [:]
    var stats = PassthroughStats()

    /// How long a remembered "cannot" verdict holds (a block may become local later).
    static let ineligibleTTLNs: UInt64 = 30_000_000_000
    static let ineligibleCap = 65_536
    /// How long a write open waits for passthrough opens of the inode to be released.
    static let drainWaitNs: UInt64 = 200_000_000
}

/// The outcome of an open's passthrough check; bound to the handle once it exists.
enum PassthroughAdmission {
    /// No bookkeeping (no backend, or passthrough unavailable and the inode has no
    /// passthrough opens).
    case untracked
    case normal(ino: UInt64, reason: String)
    case passthrough(ino: UInt64, backingId: Int32)
}

extension FileSystemCore {
    /// Enables passthrough decisions (nil disables them). Set before the session starts.
    public func setPassthroughBackend(_ backend: PassthroughBackend?) {
        passthroughState.lock.withLock { passthroughState.backend = backend }
    }

    public var passthroughStats: PassthroughStats { passthroughState.lock.withLock { passthroughState.stats } }

    /// The backing id the open reply of handle `fh` must carry (0: a normal open).
    public func passthroughBackingId(fh: UInt64) -> Int32 {
        let st = passthroughState
        return st.lock.withLock {
            guard let h = st.handles[fh], h.passthrough else { return 0 }
            return st.inodes[h.ino]?.backingId ?? 0
        }
    }

    /// How handle `fh` reads, in words (debug log): "passthrough (backing id N)" or why not.
    public func passthroughDecision(fh: UInt64) -> String? {
        let st = passthroughState
        return st.lock.withLock {
            guard let h = st.handles[fh] else { return nil }
            if h.passthrough { return "passthrough (backing id \(st.inodes[h.ino]?.backingId ?? 0))" }
            return "normal reads: \(h.reason)"
        }
    }

    // MARK: open / release (called from FileSystemCore+Files.swift)

    /// Decides how an open of `ino` reads. Counts it at once (see the file header), so
    /// the caller must `bindPassthrough` it to the new handle or `undoPassthrough` it.
    /// Throws EBUSY for a writing open while the inode has passthrough opens.
    func admitPassthrough(ino: UInt64, path: String, status s: FileStatus, writes: Bool) throws -> PassthroughAdmission {
        let st = passthroughState
        enum Quick { case done(PassthroughAdmission), check(PassthroughBackend) }
        let quick: Quick = st.lock.withLock {
            guard let backend = st.backend else { return .done(.untracked) }
            var m = st.inodes[ino] ?? PassthroughState.Modes()
            if m.passthrough > 0 {
                if writes { return .check(backend) }  // waits for them below
                m.passthrough += 1
                st.inodes[ino] = m
                st.stats.passthroughOpens += 1
                return .done(.passthrough(ino: ino, backingId: m.backingId))
            }
            // Unavailable (kernel without it, or EPERM): no passthrough open can appear
            // from now on, so nothing needs counting.
            guard backend.isAvailable else { return .done(.untracked) }
            if writes {
                m.normal += 1
                st.inodes[ino] = m
                return .done(.normal(ino: ino, reason: "open for writing"))
            }
            if m.normal > 0 {
                m.normal += 1
                st.inodes[ino] = m
                st.stats.normalReadOpens += 1
                return .done(.normal(ino: ino, reason: "the file has other normal opens"))
            }
            return .check(backend)
        }
        switch quick {
        case .done(let a):
            return a
        case .check(let backend):
            if writes { return try admitWriterAfterDrain(ino: ino, path: path) }
            return admitReader(ino: ino, path: path, status: s, backend: backend)
        }
    }

    /// A writing open of an inode with passthrough opens: waits briefly for them to be
    /// released, then counts it as a normal open or fails with EBUSY.
    private func admitWriterAfterDrain(ino: UInt64, path: String) throws -> PassthroughAdmission {
        try waitForNoPassthrough(ino: ino, path: path, what: "open for writing") { m in m.normal += 1 }
        return .normal(ino: ino, reason: "open for writing")
    }

    /// Truncate of `ino` (setattr size, fallocate): refused with EBUSY while the kernel
    /// reads it from a backing file, which this mount's resize would not change.
    func checkResizeAllowedUnderPassthrough(ino: UInt64, path: String) throws {
        guard passthroughState.lock.withLock({ passthroughState.backend != nil }) else { return }
        try waitForNoPassthrough(ino: ino, path: path, what: "truncate") { _ in }
    }

    /// Waits up to drainWaitNs for `ino` to have no passthrough opens, then runs `then`
    /// on its counts under the lock; EBUSY when they stay.
    private func waitForNoPassthrough(ino: UInt64, path: String, what: String,
                                      then: (inout PassthroughState.Modes) -> Void) throws {
        let st = passthroughState
        let deadline = monotonicNs() + PassthroughState.drainWaitNs
        while true {
            let ok: Bool = st.lock.withLock {
                var m = st.inodes[ino] ?? PassthroughState.Modes()
                guard m.passthrough == 0 else { return false }
                then(&m)
                if m.normal > 0 { st.inodes[ino] = m }
                return true
            }
            if ok { return }
            if monotonicNs() >= deadline {
                st.lock.withLock { st.stats.refusedWrites += 1 }
                throw FSError(EBUSY, "\(what) \(path): the file is open for kernel passthrough reads; "
                    + "retry after they close, or mount with --passthrough off")
            }
            usleep(2_000)
        }
    }

    /// A read-only open of an inode with no opens: checks it (no lock held; may ask the
    /// master and the worker) and registers the block file on success.
    private func admitReader(ino: UInt64, path: String, status s: FileStatus,
                             backend: PassthroughBackend) -> PassthroughAdmission {
        let st = passthroughState
        let verdict = passthroughCandidate(ino: ino, path: path, status: s)
        var reader: BlockReader?
        defer { reader?.close() }  // the kernel holds the backing file by its own reference
        return st.lock.withLock {
            var m = st.inodes[ino] ?? PassthroughState.Modes()
            defer { st.inodes[ino] = m }
            // Someone else opened the inode meanwhile: follow its mode.
            if m.passthrough > 0 {
                if case .eligible(let r) = verdict { reader = r }
                m.passthrough += 1
                st.stats.passthroughOpens += 1
                return .passthrough(ino: ino, backingId: m.backingId)
            }
            var reason: String
            switch verdict {
            case .ineligible(let why, let remember):
                reason = why
                if remember {
                    if st.ineligible.count >= PassthroughState.ineligibleCap { st.ineligible.removeAll() }
                    st.ineligible[ino] = PassthroughState.Ineligible(
                        mtimeMs: s.mtimeMs, length: s.length,
                        untilNs: monotonicNs() + PassthroughState.ineligibleTTLNs, reason: why)
                }
            case .eligible(let r):
                reader = r
                if m.normal > 0 {
                    reason = "the file has other normal opens"
                } else if !backend.isAvailable {
                    reason = "passthrough is off for this mount"
                } else if let fd = r.localFileDescriptor {
                    do {
                        let id = try backend.openBacking(fd: fd)
                        m.passthrough = 1
                        m.backingId = id
                        st.stats.backingOpens += 1
                        st.stats.passthroughOpens += 1
                        st.stats.backingIds += 1
                        return .passthrough(ino: ino, backingId: id)
                    } catch {
                        st.stats.backingFailures += 1
                        reason = "BACKING_OPEN failed: \(FSError(any: error).description)"
                    }
                } else {
                    reason = "the block has no local file"
                }
            }
            m.normal += 1
            st.stats.normalReadOpens += 1
            return .normal(ino: ino, reason: reason)
        }
    }

    enum PassthroughVerdict {
        /// A reader whose localFileDescriptor is the whole file (the caller closes it).
        case eligible(BlockReader)
        /// Why not; `remember`: only a change of the file (or time) can change it.
        case ineligible(String, remember: Bool)
    }

    /// Whether `ino` can be read from one local block file.
    func passthroughCandidate(ino: UInt64, path: String, status s: FileStatus) -> PassthroughVerdict {
        guard s.kind == .file else { return .ineligible("not a plain Curvine file", remember: false) }
        guard s.isComplete else { return .ineligible("the file is being written (incomplete on the master)", remember: false) }
        guard s.length > 0 else { return .ineligible("empty file", remember: false) }
        guard s.length <= s.blockSize else { return .ineligible("more than one block", remember: false) }
        guard !config.nonSeekable else { return .ineligible("non-seekable opens", remember: false) }
        let writing: Bool = table.lock.withLock {
            guard let o = table.nodeLocked(ino)?.open else { return false }
            return o.writer != nil || o.writableHandles > 0
        }
        if writing { return .ineligible("the file is being written through this mount", remember: false) }
        let now = monotonicNs()
        let remembered: String? = passthroughState.lock.withLock {
            guard let v = passthroughState.ineligible[ino] else { return nil }
            if v.untilNs > now && v.mtimeMs == s.mtimeMs && v.length == s.length { return v.reason }
            passthroughState.ineligible.removeValue(forKey: ino)
            return nil
        }
        if let r = remembered { return .ineligible(r, remember: false) }

        let fb: FileBlocks
        do { fb = try client.blockLocations(path) } catch {
            return .ineligible("block locations: \(FSError(any: error).description)", remember: false)
        }
        guard fb.status.isComplete, fb.status.length == s.length else {
            return .ineligible("the file changed on the master", remember: false)
        }
        guard fb.blocks.count == 1, let b = fb.blocks.first else {
            return .ineligible("\(fb.blocks.count) blocks (passthrough needs exactly one)", remember: true)
        }
        guard !b.isHole, !b.locations.isEmpty, b.length == s.length else {
            return .ineligible("the block is a hole or shorter than the file", remember: true)
        }
        let r: BlockReader
        do { r = try client.openBlockReader(b, offset: 0) } catch {
            return .ineligible("block reader: \(FSError(any: error).description)", remember: false)
        }
        guard let fd = r.localFileDescriptor else {
            r.close()
            return .ineligible("the block is not on this host (or short-circuit is off)", remember: true)
        }
        var sb = stat()
        guard fstat(fd, &sb) == 0, sb.st_mode & UInt32(S_IFMT) == UInt32(S_IFREG), Int64(sb.st_size) == s.length else {
            r.close()
            return .ineligible("the block file's size differs from the file's", remember: true)
        }
        return .eligible(r)
    }

    /// Ties an admission to the handle it was made for.
    func bindPassthrough(_ a: PassthroughAdmission, fh: UInt64) {
        let h: PassthroughState.Handle
        switch a {
        case .untracked: return
        case .normal(let ino, let reason): h = PassthroughState.Handle(ino: ino, passthrough: false, reason: reason)
        case .passthrough(let ino, _): h = PassthroughState.Handle(ino: ino, passthrough: true, reason: "")
        }
        passthroughState.lock.withLock { passthroughState.handles[fh] = h }
    }

    /// Takes back an admission whose open failed before a handle existed.
    func undoPassthrough(_ a: PassthroughAdmission) {
        switch a {
        case .untracked: return
        case .normal(let ino, _): dropPassthroughCount(ino: ino, passthrough: false)
        case .passthrough(let ino, _): dropPassthroughCount(ino: ino, passthrough: true)
        }
    }

    /// RELEASE of handle `fh` (any handle; untracked ones are ignored).
    func releasePassthrough(fh: UInt64) {
        let st = passthroughState
        guard let h = st.lock.withLock({ st.handles.removeValue(forKey: fh) }) else { return }
        dropPassthroughCount(ino: h.ino, passthrough: h.passthrough)
    }

    private func dropPassthroughCount(ino: UInt64, passthrough: Bool) {
        let st = passthroughState
        st.lock.withLock {
            guard var m = st.inodes[ino] else { return }
            if passthrough {
                m.passthrough -= 1
                if m.passthrough == 0 && m.backingId > 0 {
                    st.backend?.closeBacking(id: m.backingId)
                    m.backingId = 0
                    st.stats.backingIds -= 1
                }
            } else {
                m.normal -= 1
            }
            if m.normal <= 0 && m.passthrough <= 0 { st.inodes.removeValue(forKey: ino) } else { st.inodes[ino] = m }
        }
    }

    /// The open reply's flags for a passthrough handle: the kernel refuses KEEP_CACHE and
    /// NONSEEKABLE next to FOPEN_PASSTHROUGH, and DIRECT_IO would send its reads back to
    /// the daemon; the FUSE page cache is not used by passthrough reads anyway.
    func passthroughOpened(_ o: Opened, _ a: PassthroughAdmission) -> Opened {
        guard case .passthrough = a else { return o }
        var r = o
        r.directIO = false
        r.keepCache = false
        r.nonSeekable = false
        return r
    }
}
