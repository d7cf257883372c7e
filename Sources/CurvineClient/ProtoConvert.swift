// Conversions between the wire (generated Proto_* types) and the plain model.
//
// proto2 `required` fields must always be emitted (PROTOCOL.md §6): swift-protobuf
// emits a field only when it was set, so every builder here sets each required
// field explicitly, even to its default. Decoding is lenient (partial: true), as
// upstream's prost decoders are: a missing required field takes its default.
import CurvineProto
import Foundation
import SwiftProtobuf

public enum Wire {
    /// Serialises a message (required fields are set by the builders below).
    public static func encode<M: SwiftProtobuf.Message>(_ m: M) -> [UInt8] {
        // partial: true so that a peer-supplied message we echo never throws; our own
        // builders set every required field, which the codec tests check byte for byte.
        (try? m.serializedBytes(partial: true)) ?? []
    }

    /// Parses a header; an empty header is the default instance (§2).
    public static func decode<M: SwiftProtobuf.Message>(_ type: M.Type, _ bytes: [UInt8]) throws -> M {
        if bytes.isEmpty { return M() }
        do {
            return try M(serializedBytes: bytes, partial: true)
        } catch {
            throw CurvineError.protocolViolation("cannot decode \(M.protoMessageName) header (\(bytes.count) bytes): \(error)")
        }
    }

    /// The storage policy upstream sends by default: DISK, no TTL, state CV.
    public static func defaultStoragePolicy() -> Proto_StoragePolicyProto {
        var p = Proto_StoragePolicyProto()
        p.storageType = .disk
        p.ttlMs = 0
        p.ttlAction = .none
        p.ufsMtime = 0
        p.state = .cv
        return p
    }

    /// The version info we advertise in field 1000 (§10.7: the safe choice).
    public static func componentInfo() -> Proto_ComponentInfoProto {
        var c = Proto_ComponentInfoProto()
        c.component = "client"
        c.releaseVersion = curvineFuseVersion
        c.protocolVersion = 1
        c.minProtocolVersion = 1
        return c
    }
}

/// Our release version, advertised in ComponentInfoProto.
public let curvineFuseVersion = "0.1.0-swift"

// MARK: - FileStatus

public extension FileStatus {
    init(proto p: Proto_FileStatusProto) {
        var xattrs: [String: [UInt8]] = [:]
        for (k, v) in p.xAttr where !k.hasPrefix("\u{0}") { xattrs[k] = [UInt8](v) }
        self.init(id: p.id, path: p.path, name: p.name,
                  kind: FileKind(rawValue: Int32(p.fileType.rawValue)) ?? (p.isDir ? .directory : .file),
                  isComplete: p.isComplete, length: p.len, mtimeMs: p.mtime, atimeMs: p.atime,
                  ctimeMs: p.hasCtime ? p.ctime : p.mtime, mode: p.mode & 0o7777,
                  owner: p.owner, group: p.group, nlink: p.nlink,
                  target: p.hasTarget ? p.target : nil, blockSize: p.blockSize, replicas: p.replicas,
                  childrenCount: p.childrenNum, xattrs: xattrs)
        if p.isDir { self.kind = .directory }
    }

    var proto: Proto_FileStatusProto {
        var p = Proto_FileStatusProto()
        p.id = id
        p.path = path
        p.name = name
        p.isDir = kind == .directory
        p.mtime = mtimeMs
        p.atime = atimeMs
        p.childrenNum = childrenCount
        p.isComplete = isComplete
        p.len = length
        p.replicas = replicas
        p.blockSize = blockSize
        p.fileType = Proto_FileTypeProto(rawValue: Int(kind.rawValue)) ?? .file
        for (k, v) in xattrs { p.xAttr[k] = Data(v) }
        p.storagePolicy = Wire.defaultStoragePolicy()
        p.owner = owner
        p.group = group
        p.mode = mode
        if let t = target { p.target = t }
        p.nlink = nlink
        if ctimeMs != mtimeMs { p.ctime = ctimeMs }
        return p
    }
}

// MARK: - Workers and blocks

public extension WorkerAddress {
    init(proto p: Proto_WorkerAddressProto) {
        self.init(workerId: p.workerID, hostname: p.hostname, ipAddr: p.ipAddr, rpcPort: p.rpcPort, webPort: p.webPort)
    }

    var proto: Proto_WorkerAddressProto {
        var p = Proto_WorkerAddressProto()
        p.workerID = workerId
        p.hostname = hostname
        p.ipAddr = ipAddr
        p.rpcPort = rpcPort
        p.webPort = webPort
        return p
    }
}

public extension LocatedBlock {
    init(proto p: Proto_LocatedBlockProto) {
        self.init(id: p.block.id, length: p.block.blockSize,
                  storageType: StorageType(rawValue: Int32(p.block.storageType.rawValue)) ?? .disk,
                  locations: p.locs.map(WorkerAddress.init(proto:)),
                  isHole: p.locs.isEmpty, hasSpdk: p.hasSpdk_p)
    }

    var proto: Proto_LocatedBlockProto {
        var p = Proto_LocatedBlockProto()
        p.block = extendedBlock(length: length)
        if isHole {
            var a = Proto_FileAllocOptsProto()
            a.truncate = false
            a.off = 0
            a.len = length
            a.mode = 0
            p.block.allocOpts = a
        }
        p.offset = 0  // always 0 on the wire (§6.1)
        p.locs = locations.map(\.proto)
        if hasSpdk { p.hasSpdk_p = true }
        return p
    }

    /// ExtendedBlockProto with block_size = `length` (current length, §3.2).
    func extendedBlock(length: Int64) -> Proto_ExtendedBlockProto {
        var b = Proto_ExtendedBlockProto()
        b.id = id
        b.blockSize = length
        b.storageType = Proto_StorageTypeProto(rawValue: Int(storageType.rawValue)) ?? .disk
        b.fileType = .file
        return b
    }
}

public extension FileBlocks {
    init(proto p: Proto_FileBlocksProto) {
        self.init(status: FileStatus(proto: p.status), blocks: p.blockLocs.map(LocatedBlock.init(proto:)))
    }

    var proto: Proto_FileBlocksProto {
        var p = Proto_FileBlocksProto()
        p.status = status.proto
        p.blockLocs = blocks.map(\.proto)
        return p
    }
}

public extension CommitBlock {
    init(proto p: Proto_CommitBlockProto) {
        self.init(blockId: p.blockID, length: p.blockLen, workerIds: p.locations.map(\.workerID),
                  storageType: StorageType(rawValue: Int32(p.locations.first?.storageType.rawValue ?? 4)) ?? .disk)
    }

    var proto: Proto_CommitBlockProto {
        var p = Proto_CommitBlockProto()
        p.blockID = blockId
        p.blockLen = length
        p.locations = workerIds.map { id in
            var l = Proto_BlockLocationProto()
            l.workerID = id
            l.storageType = Proto_StorageTypeProto(rawValue: Int(storageType.rawValue)) ?? .disk
            return l
        }
        return p
    }
}

public extension FileLock {
    init(proto p: Proto_FileLockProto) {
        self.init(clientId: p.clientID, ownerId: p.ownerID, pid: p.pid, acquireTimeMs: p.acquireTime,
                  type: LockType(rawValue: Int32(p.lockType.rawValue)) ?? .read,
                  flavor: LockFlavor(rawValue: Int32(p.lockFlags.rawValue)) ?? .posix,
                  start: p.start, end: p.end)
    }

    var proto: Proto_FileLockProto {
        var p = Proto_FileLockProto()
        p.clientID = clientId
        p.ownerID = ownerId
        p.pid = pid
        p.acquireTime = acquireTimeMs
        p.lockType = Proto_LockTypeProto(rawValue: Int(type.rawValue)) ?? .read
        p.lockFlags = Proto_LockFlagsProto(rawValue: Int(flavor.rawValue)) ?? .plock
        p.start = start
        p.end = end
        return p
    }
}

public extension SetAttrOptions {
    init(proto p: Proto_SetAttrOptsProto) {
        var add: [String: [UInt8]] = [:]
        for (k, v) in p.addXAttr { add[k] = [UInt8](v) }
        self.init(owner: p.hasOwner ? p.owner : nil, group: p.hasGroup ? p.group : nil,
                  mode: p.hasMode ? p.mode : nil, atimeMs: p.hasAtime ? p.atime : nil,
                  mtimeMs: p.hasMtime ? p.mtime : nil, addXattrs: add, removeXattrs: p.removeXAttr,
                  recursive: p.recursive)
    }

    var proto: Proto_SetAttrOptsProto {
        var p = Proto_SetAttrOptsProto()
        p.recursive = recursive
        if let o = owner { p.owner = o }
        if let g = group { p.group = g }
        if let m = mode { p.mode = m }
        if let a = atimeMs { p.atime = a }
        if let m = mtimeMs { p.mtime = m }
        for (k, v) in addXattrs { p.addXAttr[k] = Data(v) }
        p.removeXAttr = removeXattrs
        return p
    }
}
