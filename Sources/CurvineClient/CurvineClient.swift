// The real client: master RPCs through MasterClient, block data through worker
// streams, short-circuit when a replica lives on this host.
import CurvineProto
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public struct ClientOptions: Sendable {
    public var masters: [HostPort]
    public var master: MasterClientOptions
    /// Identity used for leases and locks; a random UUID per process, as upstream.
    public var clientName: String
    /// Our host name for locality (CURVINE_CLIENT_HOSTNAME overrides gethostname()).
    public var hostname: String
    /// Read local blocks straight from the worker's block file (§3.4).
    public var shortCircuit: Bool
    /// Bytes per Running response of a read stream (upstream read_chunk_size 128 KiB).
    public var readChunkSize: Int
    /// Bytes per Running frame of a write stream (upstream write_chunk_size 128 KiB).
    public var writeChunkSize: Int
    /// Deadline of one block-stream exchange.
    public var dataTimeoutMs: Int
    /// Defaults for new files.
    public var blockSize: Int64
    public var replicas: Int32
    /// Running frames a block stream sends ahead of their replies (reads: chunk requests;
    /// writes: data chunks). 1 is strict stop-and-wait, as upstream's Rust client; the
    /// worker answers a connection's frames in order either way (PROTOCOL.md §3.2, §3.3).
    public var streamPipelineDepth: Int = 8

    public init(masters: [HostPort], master: MasterClientOptions = MasterClientOptions(),
                clientName: String = UUID().uuidString.lowercased(),
                hostname: String = ClientOptions.defaultHostname(), shortCircuit: Bool = true,
                readChunkSize: Int = 128 * 1024, writeChunkSize: Int = 128 * 1024, dataTimeoutMs: Int = 10_000,
                blockSize: Int64 = 128 << 20, replicas: Int32 = 1) {
        self.masters = masters; self.master = master; self.clientName = clientName
        self.hostname = hostname; self.shortCircuit = shortCircuit
        self.readChunkSize = readChunkSize; self.writeChunkSize = writeChunkSize
        self.dataTimeoutMs = dataTimeoutMs; self.blockSize = blockSize; self.replicas = replicas
    }

    public static func defaultHostname() -> String {
        if let h = ProcessInfo.processInfo.environment["CURVINE_CLIENT_HOSTNAME"], !h.isEmpty { return h }
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, 255)
        return String(cString: buf)
    }
}

public final class CurvineClient: CurvineFileSystem, @unchecked Sendable {
    public let options: ClientOptions
    public let master: MasterClient
    private let pool: WorkerConnectionPool
    private let settings: StreamSettings

    public var clientName: String { options.clientName }

    public init(options: ClientOptions) throws {
        self.options = options
        self.master = try MasterClient(addresses: options.masters, options: options.master)
        self.pool = WorkerConnectionPool(connectTimeoutMs: options.master.connectTimeoutMs)
        self.settings = StreamSettings(clientName: options.clientName, localHostname: options.hostname,
                                       shortCircuit: options.shortCircuit, readChunkSize: options.readChunkSize,
                                       writeChunkSize: options.writeChunkSize, dataTimeoutMs: options.dataTimeoutMs,
                                       readPipelineDepth: max(1, options.streamPipelineDepth),
                                       writePipelineDepth: max(1, options.streamPipelineDepth))
    }

    public func close() {
        master.close()
        pool.closeAll()
    }

    // MARK: plumbing

    private func rpc<Resp: SwiftProtobuf.Message>(_ code: RpcCode, _ req: some SwiftProtobuf.Message, _ type: Resp.Type) throws -> Resp {
        let reply = try master.call(code, header: Wire.encode(req))
        return try Wire.decode(type, reply.header)
    }

    private func createOpts(_ o: CreateOptions) -> Proto_CreateFileOptsProto {
        var p = Proto_CreateFileOptsProto()
        p.createFlag = 0  // unused by the master; upstream's client sends 0
        p.createParent = o.createParent
        p.fileType = Proto_FileTypeProto(rawValue: Int(o.kind.rawValue)) ?? .file
        p.replicas = o.replicas
        p.blockSize = o.blockSize
        p.storagePolicy = Wire.defaultStoragePolicy()
        p.clientName = options.clientName
        p.mode = o.mode
        p.owner = o.owner
        p.group = o.group
        p.syncUfsMeta = false
        p.ufsLen = 0
        return p
    }

    // MARK: metadata

    public func fileStatus(_ path: String) throws -> FileStatus {
        FileStatus(proto: try rpc(.fileStatus, Requests.fileStatus(path), Proto_GetFileStatusResponse.self).status)
    }

    public func exists(_ path: String) throws -> Bool {
        var r = Proto_ExistsRequest()
        r.path = path
        return try rpc(.exists, r, Proto_ExistsResponse.self).exists
    }

    public func listPage(_ path: String, startAfter: String?, limit: Int) throws -> [FileStatus] {
        var r = Proto_ListOptionsRequest()
        r.path = path
        var o = Proto_ListOptionsProto()
        o.limit = Int32(clamping: limit)
        if let s = startAfter { o.startAfter = s }
        r.options = o
        return try rpc(.listOptions, r, Proto_ListOptionsResponse.self).statuses.map(FileStatus.init(proto:))
    }

    /// The whole directory in one response (ListStatus, code 8).
    public func listStatus(_ path: String) throws -> [FileStatus] {
        var r = Proto_ListStatusRequest()
        r.path = path
        r.needLocation = false
        return try rpc(.listStatus, r, Proto_ListStatusResponse.self).statuses.map(FileStatus.init(proto:))
    }

    public func mkdir(_ path: String, mode: UInt32, owner: String, group: String, createParent: Bool) throws -> FileStatus {
        let r = Requests.mkdir(path, mode: mode, owner: owner, group: group, createParent: createParent)
        let resp: Proto_MkdirResponse
        do {
            resp = try rpc(.mkdir, r, Proto_MkdirResponse.self)
        } catch let e as CurvineError where e.kind == .fileAlreadyExists && e.wasRetried {
            // Mkdir is not in the master's retry cache (§3.1): when our first attempt ran
            // but its reply was lost, the re-send finds the directory. A directory there
            // now is our mkdir's result (a concurrent creator is indistinguishable, as
            // with mkdir -p); anything else is a real EEXIST.
            let st = try fileStatus(path)
            guard st.kind == .directory else { throw e }
            return st
        }
        if resp.hasStatus { return FileStatus(proto: resp.status) }
        return try fileStatus(path)
    }

    public func createFile(_ path: String, options o: CreateOptions) throws -> FileStatus {
        var r = Proto_CreateFileRequest()
        r.path = path
        r.opts = createOpts(o)
        // WRONLY|CREAT, plus TRUNC to overwrite, as upstream's create does (§6.2).
        r.flags = UInt32(0x1 | 0x40 | (o.overwrite ? 0x200 : 0x80))
        return FileStatus(proto: try rpc(.createFile, r, Proto_CreateFileResponse.self).fileStatus)
    }

    public func openForWrite(_ path: String, append: Bool) throws -> FileBlocks {
        var r = Proto_OpenFileRequest()
        r.path = path
        r.opts = createOpts(CreateOptions(blockSize: options.blockSize, replicas: options.replicas))
        r.flags = UInt32(0x2 | (append ? 0x400 : 0))  // RDWR (+APPEND)
        return FileBlocks(proto: try rpc(.openFile, r, Proto_OpenFileResponse.self).fileBlocks)
    }

    public func blockLocations(_ path: String) throws -> FileBlocks {
        var r = Proto_GetBlockLocationsRequest()
        r.path = path
        return FileBlocks(proto: try rpc(.getBlockLocations, r, Proto_GetBlockLocationsResponse.self).blocks)
    }

    public func delete(_ path: String, recursive: Bool) throws {
        var r = Proto_DeleteRequest()
        r.path = path
        r.recursive = recursive
        do {
            _ = try rpc(.delete, r, Proto_DeleteResponse.self)
        } catch let e as CurvineError where e.kind == .fileNotFound && e.wasRetried {
            // Our first attempt went out unanswered and the re-send found nothing: the
            // delete ran on a master whose retry cache the re-send did not reach (a new
            // leader, or the same master restarted; the cache is per master and in
            // memory, §3.1). The name is gone, which is what was asked; a concurrent
            // delete by another client is indistinguishable and has the same result.
            return
        }
    }

    public func rename(_ src: String, to dst: String, flags: RenameFlags) throws {
        var r = Proto_RenameRequest()
        r.src = src
        r.dst = dst
        r.flags = flags.rawValue
        let resp = try rpc(.rename, r, Proto_RenameResponse.self)
        if !resp.result {
            throw CurvineError.remote(.common, "rename \(src) -> \(dst) was refused by the master")
        }
    }

    public func setAttr(_ path: String, _ o: SetAttrOptions) throws -> FileStatus {
        var r = Proto_SetAttrRequest()
        r.path = path
        r.opts = o.proto
        do {
            let resp = try rpc(.setAttr, r, Proto_SetAttrResponse.self)
            return resp.hasStatus ? FileStatus(proto: resp.status) : try fileStatus(path)
        } catch let e as CurvineError where e.kind == .inProgress && e.wasRetried {
            // SetAttr only marks its req_id (§3.1): after a retry, InProgress means
            // "probably applied". Re-stat to return the current state.
            return try fileStatus(path)
        }
    }

    public func symlink(target: String, link: String, mode: UInt32, owner: String?, group: String?) throws {
        var r = Proto_SymlinkRequest()
        r.target = target
        r.link = link
        r.force = false
        r.mode = mode
        if let o = owner { r.owner = o }
        if let g = group { r.group = g }
        do {
            _ = try rpc(.symlink, r, Proto_SymlinkResponse.self)
        } catch let e as CurvineError where e.kind == .inProgress && e.wasRetried {
            let st = try fileStatus(link)  // confirm it was applied (§3.1)
            guard st.kind == .symlink, st.target == target else { throw e }
        }
    }

    public func link(_ src: String, to dst: String) throws {
        var r = Proto_LinkRequest()
        r.srcPath = src
        r.dstPath = dst
        do {
            _ = try rpc(.link, r, Proto_LinkResponse.self)
        } catch let e as CurvineError where e.kind == .inProgress && e.wasRetried {
            let a = try fileStatus(src), b = try fileStatus(dst)
            guard a.id == b.id else { throw e }
        }
    }

    public func resize(_ path: String, length: Int64, truncate: Bool, mode: Int32) throws -> FileBlocks {
        var o = Proto_FileAllocOptsProto()
        o.truncate = truncate
        o.off = 0  // the master accepts only 0 (§6.2 ResizeFile)
        o.len = length
        o.mode = truncate ? 0 : mode
        var r = Proto_FileResizeRequest()
        r.path = path
        r.opts = o
        return FileBlocks(proto: try rpc(.resizeFile, r, Proto_FileResizeResponse.self).fileBlocks)
    }

    public func addBlock(_ path: String, commit: [CommitBlock], fileLength: Int64, inodeId: Int64,
                         excludeWorkers: [UInt32]) throws -> LocatedBlock {
        var r = Proto_AddBlockRequest()
        r.path = path
        r.commitBlocks = commit.map(\.proto)
        r.excludeWorkers = excludeWorkers
        r.located = true
        var a = Proto_ClientAddressProto()
        a.clientName = options.clientName
        a.hostname = options.hostname
        a.ipAddr = "127.0.0.1"
        a.port = 0
        r.clientAddress = a
        r.fileLen = fileLength
        r.inodeID = inodeId
        return LocatedBlock(proto: try rpc(.addBlock, r, Proto_LocatedBlockProto.self))
    }

    public func completeFile(_ path: String, length: Int64, commit: [CommitBlock], onlyFlush: Bool, inodeId: Int64) throws {
        var r = Proto_CompleteFileRequest()
        r.path = path
        r.len = length
        r.clientName = options.clientName
        r.commitBlocks = commit.map(\.proto)
        r.onlyFlush = onlyFlush
        r.inodeID = inodeId
        r.returnFileBlocks = false
        _ = try rpc(.completeFile, r, Proto_CompleteFileResponse.self)
    }

    public func filesystemInfo() throws -> FilesystemInfo {
        var r = Proto_GetFilesystemInfoRequest()
        r.componentInfo = Wire.componentInfo()
        let p = try rpc(.getFilesystemInfo, r, Proto_GetFilesystemInfoResponse.self)
        return FilesystemInfo(activeMaster: p.activeMaster,
                              capacity: p.hasAllocatableCapacity ? p.allocatableCapacity : p.capacity,
                              available: p.hasAllocatableAvailable ? p.allocatableAvailable : p.available,
                              used: p.fsUsed, fileCount: p.inodeFileNum, dirCount: p.inodeDirNum,
                              liveWorkers: p.liveWorkers.map { WorkerAddress(proto: $0.address) })
    }

    public func getLock(_ path: String, _ lock: FileLock) throws -> FileLock? {
        var r = Proto_GetLockRequest()
        r.path = path
        r.lock = lock.proto
        let resp = try rpc(.getLock, r, Proto_GetLockResponse.self)
        return resp.hasConflict ? FileLock(proto: resp.conflict) : nil
    }

    public func setLock(_ path: String, _ lock: FileLock) throws -> FileLock? {
        var r = Proto_SetLockRequest()
        r.path = path
        r.lock = lock.proto
        let resp = try rpc(.setLock, r, Proto_SetLockResponse.self)
        return resp.hasConflict ? FileLock(proto: resp.conflict) : nil
    }

    // MARK: data

    /// Local replicas first, then the others in the master's order; a failed replica
    /// (BlockNotFound, transport) falls through to the next (§3.3, §7), at open and
    /// when a stream breaks mid-read (RemoteBlockReader).
    public func openBlockReader(_ block: LocatedBlock, offset: Int64) throws -> BlockReader {
        if block.isHole || block.locations.isEmpty { return HoleBlockReader(length: block.length) }
        let ordered = block.locations.filter { $0.hostname == options.hostname }
            + block.locations.filter { $0.hostname != options.hostname }
        return try RemoteBlockReader(block: block, workers: ordered, offset: offset, settings: settings, pool: pool)
    }

    public func openBlockWriter(_ block: LocatedBlock, offset: Int64, capacity: Int64) throws -> BlockWriter {
        try RemoteBlockWriter(block: block, offset: offset, capacity: capacity, settings: settings, pool: pool)
    }
}

/// A hole block (no replica, made by resize/fallocate): reads as zeros (§6.1).
public final class HoleBlockReader: BlockReader {
    public let length: Int64
    public var localFileDescriptor: Int32? { nil }
    public var localPath: String? { nil }
    public init(length: Int64) { self.length = length }
    public func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard offset < length else { return 0 }
        let n = Int(min(Int64(buffer.count), length - offset))
        buffer.baseAddress!.initializeMemory(as: UInt8.self, repeating: 0, count: n)
        return n
    }
    public func close() {}
}

import SwiftProtobuf

/// Request builders whose bytes the codec tests pin against PROTOCOL.md §8.
public enum Requests {
    public static func fileStatus(_ path: String) -> Proto_GetFileStatusRequest {
        var r = Proto_GetFileStatusRequest()
        r.path = path
        return r
    }

    public static func mkdir(_ path: String, mode: UInt32, owner: String, group: String, createParent: Bool) -> Proto_MkdirRequest {
        var o = Proto_MkdirOptsProto()
        o.createParent = createParent
        o.mode = mode
        o.storagePolicy = Wire.defaultStoragePolicy()
        o.owner = owner
        o.group = group
        var r = Proto_MkdirRequest()
        r.path = path
        r.opts = o
        return r
    }

    /// ReadBlock Open header (§3.3); `componentInfo` false gives §8.5's bytes.
    public static func blockReadOpen(id: Int64, off: Int64, len: Int64, chunkSize: Int32, shortCircuit: Bool,
                                     readAheadLen: Int64, componentInfo: Bool = true) -> Proto_BlockReadRequest {
        var req = Proto_BlockReadRequest()
        req.id = id
        req.off = off
        req.len = len
        req.chunkSize = chunkSize
        req.shortCircuit = shortCircuit
        req.enableReadAhead = true
        req.readAheadLen = readAheadLen
        req.dropCacheLen = 1024 * 1024  // upstream's default page-cache drop hint
        if componentInfo { req.componentInfo = Wire.componentInfo() }
        return req
    }
}
