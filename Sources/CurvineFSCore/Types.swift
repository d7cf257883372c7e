// The file-system core's plain types: what the FUSE adapter passes in and gets back.
// Nothing here is a libfuse type; the adapter converts these to fuse_entry_param,
// struct stat, fuse_file_info and replies (mountpoint-s3's fs.rs shape: the core
// returns structs and takes replier protocols, so it is testable without a kernel).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CurvineClient

/// The caller of one request, as the kernel reports it (fuse_req_ctx).
public struct RequestContext: Sendable {
    public var uid: UInt32
    public var gid: UInt32
    public var pid: UInt32
    /// The caller's umask (FUSE passes it with FUSE_DONT_MASK; 0 when the kernel already applied it).
    public var umask: UInt32
    /// Supplementary groups of the caller. nil: the core reads them from /proc/<pid>/status
    /// when a group check needs them (the kernel does not send them).
    public var groups: [UInt32]?

    public init(uid: UInt32, gid: UInt32, pid: UInt32 = 0, umask: UInt32 = 0, groups: [UInt32]? = nil) {
        self.uid = uid; self.gid = gid; self.pid = pid; self.umask = umask; self.groups = groups
    }

    /// root, for internal calls and tests.
    public static let root = RequestContext(uid: 0, gid: 0, pid: 0, umask: 0, groups: [])
}

/// struct stat, as far as FUSE carries it.
public struct Attr: Sendable, Equatable {
    public var ino: UInt64
    public var size: UInt64
    /// 512-byte units.
    public var blocks: UInt64
    public var atimeSec: Int64
    public var atimeNsec: UInt32
    public var mtimeSec: Int64
    public var mtimeNsec: UInt32
    public var ctimeSec: Int64
    public var ctimeNsec: UInt32
    /// S_IFxxx | permission bits (incl. setuid/setgid/sticky).
    public var mode: UInt32
    public var nlink: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var rdev: UInt32
    public var blksize: UInt32

    public init(ino: UInt64 = 0, size: UInt64 = 0, blocks: UInt64 = 0, atimeSec: Int64 = 0, atimeNsec: UInt32 = 0,
                mtimeSec: Int64 = 0, mtimeNsec: UInt32 = 0, ctimeSec: Int64 = 0, ctimeNsec: UInt32 = 0,
                mode: UInt32 = 0, nlink: UInt32 = 1, uid: UInt32 = 0, gid: UInt32 = 0, rdev: UInt32 = 0,
                blksize: UInt32 = 4096) {
        self.ino = ino; self.size = size; self.blocks = blocks
        self.atimeSec = atimeSec; self.atimeNsec = atimeNsec; self.mtimeSec = mtimeSec; self.mtimeNsec = mtimeNsec
        self.ctimeSec = ctimeSec; self.ctimeNsec = ctimeNsec; self.mode = mode; self.nlink = nlink
        self.uid = uid; self.gid = gid; self.rdev = rdev; self.blksize = blksize
    }

    public var fileType: UInt32 { mode & UInt32(S_IFMT) }
    public var isDirectory: Bool { fileType == UInt32(S_IFDIR) }
    public var isRegular: Bool { fileType == UInt32(S_IFREG) }
    public var isSymlink: Bool { fileType == UInt32(S_IFLNK) }
}

/// fuse_entry_param. `ino == 0` is a negative entry (cache "does not exist" for `entryTimeout`).
public struct Entry: Sendable, Equatable {
    public var ino: UInt64
    public var generation: UInt64
    public var attr: Attr
    public var attrTimeout: Double
    public var entryTimeout: Double

    public init(ino: UInt64, generation: UInt64 = 0, attr: Attr, attrTimeout: Double, entryTimeout: Double) {
        self.ino = ino; self.generation = generation; self.attr = attr
        self.attrTimeout = attrTimeout; self.entryTimeout = entryTimeout
    }

    public var isNegative: Bool { ino == 0 }
}

/// The parts of fuse_file_info an open reply sets.
public struct Opened: Sendable, Equatable {
    public var fh: UInt64
    public var directIO: Bool
    public var keepCache: Bool
    public var nonSeekable: Bool

    public init(fh: UInt64, directIO: Bool = false, keepCache: Bool = false, nonSeekable: Bool = false) {
        self.fh = fh; self.directIO = directIO; self.keepCache = keepCache; self.nonSeekable = nonSeekable
    }
}

/// struct statvfs.
public struct StatFS: Sendable, Equatable {
    public var blocks: UInt64
    public var bfree: UInt64
    public var bavail: UInt64
    public var files: UInt64
    public var ffree: UInt64
    public var bsize: UInt32
    public var frsize: UInt32
    public var namelen: UInt32

    public init(blocks: UInt64, bfree: UInt64, bavail: UInt64, files: UInt64, ffree: UInt64,
                bsize: UInt32 = 4096, frsize: UInt32 = 4096, namelen: UInt32 = 255) {
        self.blocks = blocks; self.bfree = bfree; self.bavail = bavail; self.files = files
        self.ffree = ffree; self.bsize = bsize; self.frsize = frsize; self.namelen = namelen
    }
}

/// A time in setattr: UTIME_NOW or an explicit time.
public enum TimeChange: Sendable, Equatable {
    case now
    case at(sec: Int64, nsec: UInt32)
}

/// What a setattr changes; nil = unchanged. `fh` is set for ftruncate/fchmod/... (FATTR_FH).
public struct SetAttrChanges: Sendable, Equatable {
    public var mode: UInt32?
    public var uid: UInt32?
    public var gid: UInt32?
    public var size: UInt64?
    public var atime: TimeChange?
    public var mtime: TimeChange?
    public var fh: UInt64?

    public init(mode: UInt32? = nil, uid: UInt32? = nil, gid: UInt32? = nil, size: UInt64? = nil,
                atime: TimeChange? = nil, mtime: TimeChange? = nil, fh: UInt64? = nil) {
        self.mode = mode; self.uid = uid; self.gid = gid; self.size = size
        self.atime = atime; self.mtime = mtime; self.fh = fh
    }
}

/// How read() hands its data to the adapter. The core calls exactly one of these,
/// synchronously, before read() returns, and only when read() does not throw.
/// The memory or fd passed is valid only during the call (copy or splice it then).
/// A reply shorter than the request means end of file.
public protocol ReadReplier {
    func replyBytes(_ bytes: UnsafeRawBufferPointer)
    /// Zero copy: `count` bytes of `fd` at `offset` (fuse_reply_data with FUSE_BUF_IS_FD|FD_SEEK).
    func replyFile(fd: Int32, offset: Int64, count: Int)
}

/// Receives directory entries (fuse_add_direntry / fuse_add_direntry_plus).
public protocol DirectoryReplier {
    /// `nextOffset` is the cookie to resume after this entry. `entry` is set for readdirplus
    /// (nil for "." and "..": send a zeroed entry, the kernel takes no reference for them).
    /// Returns false when the buffer is full: the entry was NOT added (and, for
    /// readdirplus, the core undoes the lookup count it took for it).
    mutating func add(name: String, ino: UInt64, mode: UInt32, nextOffset: Int64, entry: Entry?) -> Bool
}

/// The one error type of the core. Every failure carries the errno the kernel gets.
/// CurvineError converts keeping its errno (its table lives in CurvineClient).
public struct FSError: Error, CustomStringConvertible, Sendable, Equatable {
    public var errno: Int32
    public var message: String

    public init(_ errno: Int32, _ message: String) {
        self.errno = errno
        self.message = message
    }

    public init(errno: Int32, message: String) {
        self.init(errno, message)
    }

    public init(_ e: CurvineError) {
        self.init(e.errno, e.description)
    }

    /// Any error: FSError as is, CurvineError with its errno, anything else EIO.
    public init(any e: Error) {
        if let f = e as? FSError { self = f; return }
        if let c = e as? CurvineError { self.init(c); return }
        self.init(EIO, "\(e)")
    }

    public var description: String { "\(message) (errno \(errno): \(errnoName(errno)))" }
}

/// Name of an errno for messages ("ENOENT").
public func errnoName(_ e: Int32) -> String {
    switch e {
    case EPERM: return "EPERM"
    case ENOENT: return "ENOENT"
    case EIO: return "EIO"
    case EBADF: return "EBADF"
    case EAGAIN: return "EAGAIN"
    case ENOMEM: return "ENOMEM"
    case EACCES: return "EACCES"
    case EBUSY: return "EBUSY"
    case EEXIST: return "EEXIST"
    case EXDEV: return "EXDEV"
    case ENOTDIR: return "ENOTDIR"
    case EISDIR: return "EISDIR"
    case EINVAL: return "EINVAL"
    case EFBIG: return "EFBIG"
    case ENOSPC: return "ENOSPC"
    case EROFS: return "EROFS"
    case EMLINK: return "EMLINK"
    case ERANGE: return "ERANGE"
    case ENAMETOOLONG: return "ENAMETOOLONG"
    case ENOSYS: return "ENOSYS"
    case ENOTEMPTY: return "ENOTEMPTY"
    case ENODATA: return "ENODATA"
    case EOPNOTSUPP: return "EOPNOTSUPP"
    case ETIMEDOUT: return "ETIMEDOUT"
    case ESTALE: return "ESTALE"
    case EPROTO: return "EPROTO"
    case E2BIG: return "E2BIG"
    default: return "errno \(e)"
    }
}

/// Runs `body`, converting any error into FSError.
@inline(__always)
func fsTry<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as FSError { throw e } catch { throw FSError(any: error) }
}

/// Counters for tests and metrics (monotonic since mount).
public struct CoreStats: Sendable, Equatable {
    /// Bytes of reads answered from prefetched buffers.
    public var prefetchHitBytes: UInt64 = 0
    /// Bytes of reads that had to go to a worker (or local file) on the request's thread.
    public var demandReadBytes: UInt64 = 0
    /// Bytes answered zero-copy from a short-circuit block file.
    public var shortCircuitBytes: UInt64 = 0
    /// Bytes fetched by background prefetch.
    public var prefetchedBytes: UInt64 = 0
    /// Prefetched bytes dropped unread (far seek, close, invalidation).
    public var prefetchWastedBytes: UInt64 = 0
    /// Writer flushes forced by a read of the same inode (read-your-writes).
    public var readYourWritesFlushes: UInt64 = 0
    public var inodes: Int = 0
    public var fileHandles: Int = 0
    public var dirHandles: Int = 0
    /// Bytes held by the read buffer pool (in use + cached free buffers).
    public var readPoolBytes: Int = 0
    public var writePoolBytes: Int = 0
    public init() {}
}
