// A worker's blocks on local disk: one file per block, `<root>/blocks/<block id>`.
// The file's bytes are the block's bytes at the same offsets; a block's logical length
// (from the master) may exceed the file's size after a resize grew it, and the missing
// tail reads as zeros (PROTOCOL.md §3.3 "sparse tail").
//
// Used by WorkerServer (remote and short-circuit streams) and by InProcessFileSystem
// (direct file I/O). The master's Namespace reports released and truncated blocks; the
// embedded cluster calls `delete`/`truncate` here right away. `garbageCollect` removes
// files no longer referenced (left behind by a crash between the master's commit and
// the deletion).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CurvineClient

public final class BlockStore: @unchecked Sendable {
    /// The worker's data directory; blocks live in `<root>/blocks`.
    public let root: String
    public let blocksDirectory: String
    /// fdatasync on a write stream's flush frame and at commit (BlockWriter.flush promises
    /// durability on the worker).
    public let syncWrites: Bool
    private let lock = Lock()
    private var usedCache: (atNs: UInt64, bytes: Int64, count: Int64)?
    /// How long a computed used-bytes figure is reused (statfs is called often; a
    /// directory scan per call would dominate it).
    private static let usedCacheNs: UInt64 = 1_000_000_000

    /// `root` is made absolute: block paths go to short-circuit clients in other processes.
    public init(root: String, syncWrites: Bool = true) throws {
        self.root = FileUtil.absolute(root)
        self.blocksDirectory = self.root + "/blocks"
        self.syncWrites = syncWrites
        try FileUtil.makeDirectories(blocksDirectory)
    }

    public func path(of id: Int64) -> String { "\(blocksDirectory)/\(id)" }

    public func exists(_ id: Int64) -> Bool { FileUtil.exists(path(of: id)) }

    /// Bytes physically in the block's file, or nil when the block is absent.
    public func physicalLength(_ id: Int64) -> Int64? { FileUtil.size(path(of: id)) }

    /// Opens (creating when absent) a block file for writing. `created` says whether
    /// this call made it (a cancelled stream then removes it again).
    public func openForWrite(_ id: Int64) throws -> (fd: Int32, created: Bool) {
        let p = path(of: id)
        var fd = open(p, O_RDWR | O_CLOEXEC)
        if fd >= 0 { return (fd, false) }
        fd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if fd >= 0 {
            invalidateUsage()
            return (fd, true)
        }
        if errno == EEXIST {  // lost a race with another creator: open theirs
            fd = open(p, O_RDWR | O_CLOEXEC)
            if fd >= 0 { return (fd, false) }
        }
        throw FileUtil.ioError("open block", p)
    }

    /// Opens an existing block for reading; BlockNotFound when absent.
    public func openForRead(_ id: Int64) throws -> Int32 {
        let p = path(of: id)
        let fd = open(p, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { throw ServerError.blockNotFound(id) }
            throw FileUtil.ioError("open block", p)
        }
        return fd
    }

    /// Makes the block's file exactly `length` bytes (commit): cuts stale bytes beyond a
    /// shorter final length, zero-extends a sparse one.
    public func setLength(fd: Int32, id: Int64, length: Int64) throws {
        if FileUtil.size(fd: fd) != length {
            if ftruncate(fd, off_t(length)) != 0 { throw FileUtil.ioError("truncate block", path(of: id)) }
            invalidateUsage()
        }
        if syncWrites && fdatasync(fd) != 0 { throw FileUtil.ioError("fsync block", path(of: id)) }
    }

    public func sync(fd: Int32, id: Int64) throws {
        if syncWrites && fdatasync(fd) != 0 { throw FileUtil.ioError("fsync block", path(of: id)) }
    }

    public func delete(_ ids: [Int64]) {
        for id in ids { _ = unlink(path(of: id)) }
        invalidateUsage()
    }

    /// Cuts a block file to `length` when it is longer (the master truncated the file).
    public func truncate(_ id: Int64, to length: Int64) {
        if let size = physicalLength(id), size > length {
            _ = Glibc.truncate(path(of: id), off_t(length))
            invalidateUsage()
        }
    }

    /// Applies the master's block events for this worker.
    public func apply(_ events: BlockEvents, worker: UInt32) {
        let gone = events.deleted.filter { $0.workers.contains(worker) }.map(\.id)
        if !gone.isEmpty { delete(gone) }
        for t in events.truncated where t.workers.contains(worker) { truncate(t.id, to: t.length) }
    }

    /// Block ids present on disk.
    public func blockIds() -> [Int64] {
        guard let d = opendir(blocksDirectory) else { return [] }
        defer { closedir(d) }
        var out: [Int64] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if let id = Int64(name) { out.append(id) }
        }
        return out
    }

    /// Deletes every block file not in `keep`; returns how many went.
    @discardableResult
    public func garbageCollect(keeping keep: Set<Int64>) -> Int {
        let orphans = blockIds().filter { !keep.contains($0) }
        delete(orphans)
        return orphans.count
    }

    private func invalidateUsage() { lock.withLock { usedCache = nil } }

    /// Capacity numbers of the disk holding the blocks (statvfs) and the bytes blocks use.
    public func stats() -> WorkerStats {
        var vfs = statvfs()
        var capacity: Int64 = 0, available: Int64 = 0
        if statvfs(blocksDirectory, &vfs) == 0 {
            capacity = Int64(vfs.f_blocks) * Int64(vfs.f_frsize)
            available = Int64(vfs.f_bavail) * Int64(vfs.f_frsize)
        }
        let now = monotonicNs()
        if let c = lock.withLock({ usedCache }), now - c.atNs < Self.usedCacheNs {
            return WorkerStats(capacity: capacity, available: available, used: c.bytes, blockCount: c.count)
        }
        var used: Int64 = 0
        let ids = blockIds()
        for id in ids { used += physicalLength(id) ?? 0 }
        lock.withLock { usedCache = (now, used, Int64(ids.count)) }
        return WorkerStats(capacity: capacity, available: available, used: used, blockCount: Int64(ids.count))
    }
}
