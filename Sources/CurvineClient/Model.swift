// Plain value types the rest of the program uses; the protobuf types stay inside
// this module's conversion code (ProtoConvert.swift).

public enum FileKind: Int32, Sendable {
    case directory = 0, file = 1, symlink = 2, stream = 3, agg = 4, object = 5
    case fifo = 6, charDevice = 7, blockDevice = 8, socket = 9
}

/// One inode's status as the master reports it (FileStatusProto).
public struct FileStatus: Sendable, Equatable {
    public var id: Int64
    public var path: String
    public var name: String
    public var kind: FileKind
    public var isComplete: Bool
    /// Bytes; for a symlink the target's length.
    public var length: Int64
    public var mtimeMs: Int64
    public var atimeMs: Int64
    /// Absent on most masters: falls back to mtime.
    public var ctimeMs: Int64
    /// Permission bits (no type bits).
    public var mode: UInt32
    public var owner: String
    public var group: String
    public var nlink: UInt32
    public var target: String?
    public var blockSize: Int64
    public var replicas: Int32
    public var childrenCount: Int32
    /// User-visible extended attributes (keys starting with NUL are master-internal and removed).
    public var xattrs: [String: [UInt8]]

    public init(id: Int64, path: String, name: String, kind: FileKind, isComplete: Bool = true,
                length: Int64 = 0, mtimeMs: Int64 = 0, atimeMs: Int64 = 0, ctimeMs: Int64 = 0,
                mode: UInt32 = 0o644, owner: String = "root", group: String = "root", nlink: UInt32 = 1,
                target: String? = nil, blockSize: Int64 = 128 << 20, replicas: Int32 = 1,
                childrenCount: Int32 = 0, xattrs: [String: [UInt8]] = [:]) {
        self.id = id; self.path = path; self.name = name; self.kind = kind
        self.isComplete = isComplete; self.length = length
        self.mtimeMs = mtimeMs; self.atimeMs = atimeMs; self.ctimeMs = ctimeMs
        self.mode = mode; self.owner = owner; self.group = group; self.nlink = nlink
        self.target = target; self.blockSize = blockSize; self.replicas = replicas
        self.childrenCount = childrenCount; self.xattrs = xattrs
    }

    public var isDirectory: Bool { kind == .directory }
}

public enum StorageType: Int32, Sendable {
    case mem = 0, ssd = 1, hdd = 2, ufs = 3, disk = 4, spdkDisk = 5
}

public struct WorkerAddress: Sendable, Equatable, Hashable {
    public var workerId: UInt32
    public var hostname: String
    public var ipAddr: String
    public var rpcPort: UInt32
    public var webPort: UInt32

    public init(workerId: UInt32, hostname: String, ipAddr: String, rpcPort: UInt32, webPort: UInt32 = 0) {
        self.workerId = workerId; self.hostname = hostname; self.ipAddr = ipAddr
        self.rpcPort = rpcPort; self.webPort = webPort
    }
}

/// A block of a file and where its replicas live.
public struct LocatedBlock: Sendable, Equatable {
    public var id: Int64
    /// Current length in bytes (ExtendedBlockProto.block_size).
    public var length: Int64
    public var storageType: StorageType
    public var locations: [WorkerAddress]
    /// A block made by resize/fallocate with no replica: reads as zeros (§6.1).
    public var isHole: Bool
    /// SPDK blocks are never short-circuited.
    public var hasSpdk: Bool

    public init(id: Int64, length: Int64, storageType: StorageType = .disk, locations: [WorkerAddress],
                isHole: Bool = false, hasSpdk: Bool = false) {
        self.id = id; self.length = length; self.storageType = storageType
        self.locations = locations; self.isHole = isHole; self.hasSpdk = hasSpdk
    }
}

/// A file's status and its blocks in file order. A block's file offset is the sum of
/// the lengths of the blocks before it (LocatedBlockProto.offset is always 0 on the wire).
public struct FileBlocks: Sendable, Equatable {
    public var status: FileStatus
    public var blocks: [LocatedBlock]

    public init(status: FileStatus, blocks: [LocatedBlock]) {
        self.status = status; self.blocks = blocks
    }
}

/// A finished block reported to the master in AddBlock/CompleteFile.
public struct CommitBlock: Sendable, Equatable {
    public var blockId: Int64
    public var length: Int64
    public var workerIds: [UInt32]
    public var storageType: StorageType

    public init(blockId: Int64, length: Int64, workerIds: [UInt32], storageType: StorageType = .disk) {
        self.blockId = blockId; self.length = length; self.workerIds = workerIds; self.storageType = storageType
    }
}

/// What to create: CreateFile options that matter to a client.
public struct CreateOptions: Sendable {
    public var mode: UInt32
    public var owner: String
    public var group: String
    /// O_TRUNC semantics: replace an existing file.
    public var overwrite: Bool
    public var createParent: Bool
    public var kind: FileKind
    public var blockSize: Int64
    public var replicas: Int32

    public init(mode: UInt32 = 0o644, owner: String = "", group: String = "", overwrite: Bool = false,
                createParent: Bool = false, kind: FileKind = .file, blockSize: Int64 = 128 << 20,
                replicas: Int32 = 1) {
        self.mode = mode; self.owner = owner; self.group = group; self.overwrite = overwrite
        self.createParent = createParent; self.kind = kind; self.blockSize = blockSize; self.replicas = replicas
    }
}

/// SetAttr: only the fields that are set change.
public struct SetAttrOptions: Sendable, Equatable {
    public var owner: String?
    public var group: String?
    public var mode: UInt32?
    public var atimeMs: Int64?
    public var mtimeMs: Int64?
    public var addXattrs: [String: [UInt8]]
    public var removeXattrs: [String]
    public var recursive: Bool

    public init(owner: String? = nil, group: String? = nil, mode: UInt32? = nil, atimeMs: Int64? = nil,
                mtimeMs: Int64? = nil, addXattrs: [String: [UInt8]] = [:], removeXattrs: [String] = [],
                recursive: Bool = false) {
        self.owner = owner; self.group = group; self.mode = mode; self.atimeMs = atimeMs
        self.mtimeMs = mtimeMs; self.addXattrs = addXattrs; self.removeXattrs = removeXattrs
        self.recursive = recursive
    }
}

/// renameat2 flags as Curvine's RenameFlags carries them.
public struct RenameFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let noReplace = RenameFlags(rawValue: 0x1)
    public static let exchange = RenameFlags(rawValue: 0x2)
}

public struct FilesystemInfo: Sendable, Equatable {
    public var activeMaster: String
    public var capacity: Int64
    public var available: Int64
    public var used: Int64
    public var fileCount: Int64
    public var dirCount: Int64
    public var liveWorkers: [WorkerAddress]

    public init(activeMaster: String = "", capacity: Int64 = 0, available: Int64 = 0, used: Int64 = 0,
                fileCount: Int64 = 0, dirCount: Int64 = 0, liveWorkers: [WorkerAddress] = []) {
        self.activeMaster = activeMaster; self.capacity = capacity; self.available = available
        self.used = used; self.fileCount = fileCount; self.dirCount = dirCount; self.liveWorkers = liveWorkers
    }
}

public enum LockType: Int32, Sendable { case read = 0, write = 1, unlock = 2 }
public enum LockFlavor: Int32, Sendable { case posix = 0, flock = 1 }

/// A lock as the master stores it; ranges inclusive, `end == UInt64.max` = to EOF.
public struct FileLock: Sendable, Equatable {
    public var clientId: String
    public var ownerId: UInt64
    public var pid: UInt32
    public var acquireTimeMs: UInt64
    public var type: LockType
    public var flavor: LockFlavor
    public var start: UInt64
    public var end: UInt64

    public init(clientId: String, ownerId: UInt64, pid: UInt32, acquireTimeMs: UInt64 = 0, type: LockType,
                flavor: LockFlavor, start: UInt64, end: UInt64) {
        self.clientId = clientId; self.ownerId = ownerId; self.pid = pid; self.acquireTimeMs = acquireTimeMs
        self.type = type; self.flavor = flavor; self.start = start; self.end = end
    }
}
