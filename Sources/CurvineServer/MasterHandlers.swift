// Master RPC dispatch: decode the request header, call the Namespace, encode the
// response header (PROTOCOL.md §5, §6.2). Only the FUSE subset is served (codes 2–5,
// 7–18, 20, 21, 26, 27, 34); every other code is Common "Unsupported operation", as
// upstream answers codes it does not dispatch.
//
// Retry cache (§3.1, RetryCache.swift): CreateFile, OpenFile in a write mode, Delete,
// Free and Rename record their outcome per req_id and answer a re-send of a succeeded
// call "success-ish" without running it again (CreateFile: current status; OpenFile:
// current blocks; Delete/Free: empty result; Rename: true). SetAttr, Symlink and Link
// only mark the req_id, so any re-send gets InProgress.
//
// AddBlock's response header is a bare LocatedBlockProto (not AddBlockResponse).
import CurvineClient
import CurvineProto
import Foundation
import SwiftProtobuf

extension MasterServer {
    func dispatch(_ code: RpcCode?, _ f: Frame) throws -> [UInt8] {
        let ns = namespace
        switch code {
        case .mkdir:
            let r = try Wire.decode(Proto_MkdirRequest.self, f.header)
            let st = try ns.mkdir(r.path, mode: r.opts.mode, owner: r.opts.owner, group: r.opts.group,
                                  createParent: r.opts.createParent, xattrs: bytesMap(r.opts.xAttr))
            var resp = Proto_MkdirResponse()
            resp.flag = false  // never set by upstream either (§10.10)
            resp.status = st.proto
            return Wire.encode(resp)

        case .delete:
            let r = try Wire.decode(Proto_DeleteRequest.self, f.header)
            let res = try cached(f.reqId, replay: DeleteResult()) { try ns.delete(r.path, recursive: r.recursive) }
            var resp = Proto_DeleteResponse()
            resp.res = freeResult(res)
            return Wire.encode(resp)

        case .createFile:
            let r = try Wire.decode(Proto_CreateFileRequest.self, f.header)
            let st = try cached(f.reqId, replay: { try ns.fileStatus(r.path) }) {
                try ns.createFile(r.path, options: createOptions(r.opts), flags: r.flags, clientName: r.opts.clientName,
                                  xattrs: bytesMap(r.opts.xAttr))
            }
            var resp = Proto_CreateFileResponse()
            resp.fileStatus = st.proto
            return Wire.encode(resp)

        case .openFile:
            let r = try Wire.decode(Proto_OpenFileRequest.self, f.header)
            let open = { try ns.openFile(r.path, flags: r.flags, options: createOptions(r.opts), clientName: r.opts.clientName) }
            let fb = r.flags & OpenFlags.accessMask == OpenFlags.readOnly
                ? try open()
                : try cached(f.reqId, replay: { try ns.blockLocations(r.path) }, open)
            var resp = Proto_OpenFileResponse()
            resp.fileBlocks = fb.proto
            return Wire.encode(resp)

        case .fileStatus:
            let r = try Wire.decode(Proto_GetFileStatusRequest.self, f.header)
            var resp = Proto_GetFileStatusResponse()
            resp.status = try ns.fileStatus(r.path).proto
            return Wire.encode(resp)

        case .listStatus:
            let r = try Wire.decode(Proto_ListStatusRequest.self, f.header)
            var resp = Proto_ListStatusResponse()
            resp.statuses = try ns.listStatus(r.path).map(\.proto)
            return Wire.encode(resp)

        case .exists:
            let r = try Wire.decode(Proto_ExistsRequest.self, f.header)
            var resp = Proto_ExistsResponse()
            resp.exists = try ns.exists(r.path)
            return Wire.encode(resp)

        case .rename:
            let r = try Wire.decode(Proto_RenameRequest.self, f.header)
            let ok = try cached(f.reqId, replay: true) {
                try ns.rename(r.src, r.dst, flags: RenameFlags(rawValue: r.flags))
            }
            var resp = Proto_RenameResponse()
            resp.result = ok
            return Wire.encode(resp)

        case .addBlock:
            let r = try Wire.decode(Proto_AddBlockRequest.self, f.header)
            let lb = try ns.addBlock(r.path, inodeId: r.hasInodeID ? r.inodeID : nil,
                                     commit: r.commitBlocks.map(CommitBlock.init(proto:)), fileLength: r.fileLen,
                                     excludeWorkers: r.excludeWorkers, lastBlockId: r.hasLastBlock ? r.lastBlock.id : nil,
                                     clientHostname: r.clientAddress.hostname)
            return Wire.encode(lb.proto)

        case .completeFile:
            let r = try Wire.decode(Proto_CompleteFileRequest.self, f.header)
            let fb = try ns.completeFile(r.path, inodeId: r.hasInodeID ? r.inodeID : nil, length: r.len,
                                         commit: r.commitBlocks.map(CommitBlock.init(proto:)), clientName: r.clientName,
                                         onlyFlush: r.onlyFlush,
                                         setAttr: r.hasSetAttrOpts ? SetAttrOptions(proto: r.setAttrOpts) : nil)
            var resp = Proto_CompleteFileResponse()
            resp.result = true
            // Upstream returns blocks only for a flush that asked for them (absent = true).
            if r.onlyFlush && (!r.hasReturnFileBlocks || r.returnFileBlocks) { resp.fileBlocks = fb.proto }
            return Wire.encode(resp)

        case .getBlockLocations:
            let r = try Wire.decode(Proto_GetBlockLocationsRequest.self, f.header)
            var resp = Proto_GetBlockLocationsResponse()
            resp.blocks = try ns.blockLocations(r.path).proto
            return Wire.encode(resp)

        case .getFilesystemInfo:
            _ = try Wire.decode(Proto_GetFilesystemInfoRequest.self, f.header)
            return Wire.encode(filesystemInfoResponse())

        case .setAttr:
            try markOnly(f.reqId)
            let r = try Wire.decode(Proto_SetAttrRequest.self, f.header)
            var resp = Proto_SetAttrResponse()
            resp.status = try ns.setAttr(r.path, SetAttrOptions(proto: r.opts),
                                         replicas: r.opts.hasReplicas ? r.opts.replicas : nil).proto
            return Wire.encode(resp)

        case .symlink:
            let r = try Wire.decode(Proto_SymlinkRequest.self, f.header)
            try markOnly(f.reqId)
            try ns.symlink(target: r.target, link: r.link, force: r.force, mode: r.mode,
                           owner: r.hasOwner ? r.owner : nil, group: r.hasGroup ? r.group : nil)
            return Wire.encode(Proto_SymlinkResponse())

        case .link:
            let r = try Wire.decode(Proto_LinkRequest.self, f.header)
            try markOnly(f.reqId)
            try ns.link(r.srcPath, r.dstPath)
            return Wire.encode(Proto_LinkResponse())

        case .resizeFile:
            let r = try Wire.decode(Proto_FileResizeRequest.self, f.header)
            var resp = Proto_FileResizeResponse()
            resp.fileBlocks = try ns.resize(r.path, truncate: r.opts.truncate, offset: r.opts.off, length: r.opts.len,
                                            mode: r.opts.mode).proto
            return Wire.encode(resp)

        case .getLock:
            let r = try Wire.decode(Proto_GetLockRequest.self, f.header)
            var resp = Proto_GetLockResponse()
            if let c = try ns.getLock(r.path, FileLock(proto: r.lock)) { resp.conflict = c.proto }
            return Wire.encode(resp)

        case .setLock:
            let r = try Wire.decode(Proto_SetLockRequest.self, f.header)
            var resp = Proto_SetLockResponse()
            if let c = try ns.setLock(r.path, FileLock(proto: r.lock)) { resp.conflict = c.proto }
            return Wire.encode(resp)

        case .free:
            let r = try Wire.decode(Proto_FreeRequest.self, f.header)
            let res = try cached(f.reqId, replay: DeleteResult()) { try ns.free(r.path, recursive: r.recursive) }
            var resp = Proto_FreeResponse()
            resp.res = freeResult(res)
            return Wire.encode(resp)

        case .listOptions:
            let r = try Wire.decode(Proto_ListOptionsRequest.self, f.header)
            let o = r.options
            var resp = Proto_ListOptionsResponse()
            resp.statuses = try ns.listOptions(r.path, startAfter: o.hasStartAfter ? o.startAfter : nil,
                                               limit: o.hasLimit ? Int(o.limit) : nil).map(\.proto)
            return Wire.encode(resp)

        case .getMountInfo:
            // No UFS mounts exist here: every path is plain Curvine data (field absent).
            _ = try Wire.decode(Proto_GetMountInfoRequest.self, f.header)
            return Wire.encode(Proto_GetMountInfoResponse())

        default:
            throw ServerError.common("Unsupported operation")
        }
    }

    /// Runs `body` behind the retry cache; a re-send of a succeeded call gets `replay`.
    private func cached<T>(_ reqId: Int64, replay: () throws -> T, _ body: () throws -> T) throws -> T {
        if try retryCache.begin(reqId) { return try replay() }
        do {
            let r = try body()
            retryCache.finish(reqId, success: true)
            return r
        } catch {
            retryCache.finish(reqId, success: false)
            throw error
        }
    }

    private func cached<T>(_ reqId: Int64, replay: T, _ body: () throws -> T) throws -> T {
        try cached(reqId, replay: { replay }, body)
    }

    /// SetAttr/Symlink/Link: mark the id; a second sight is InProgress.
    private func markOnly(_ reqId: Int64) throws {
        if try retryCache.begin(reqId) { throw ServerError.inProgress(reqId) }
    }

    private func filesystemInfoResponse() -> Proto_GetFilesystemInfoResponse {
        let info = namespace.filesystemInfo(activeMaster: activeMasterAddress)
        let reports = namespace.workerReports()
        var r = Proto_GetFilesystemInfoResponse()
        r.activeMaster = info.activeMaster
        r.journalNodes = []
        r.inodeDirNum = info.dirCount
        r.inodeFileNum = info.fileCount
        r.blockNum = namespace.blockCount
        r.capacity = reports.reduce(0) { $0 + $1.stats.capacity }
        r.available = reports.reduce(0) { $0 + $1.stats.available }
        r.fsUsed = reports.reduce(0) { $0 + $1.stats.used }
        r.nonFsUsed = 0
        r.reservedBytes = 0
        let now = UInt64(max(0, wallClockMs()))
        for w in reports {
            var p = Proto_WorkerInfoProto()
            p.address = w.address.proto
            p.capacity = w.stats.capacity
            p.available = w.stats.available
            p.fsUsed = w.stats.used
            p.nonFsUsed = 0
            p.lastUpdate = now
            p.reservedBytes = 0
            if w.live { r.liveWorkers.append(p) } else { r.lostWorkers.append(p) }
        }
        // Only live workers take new blocks: the allocatable view statfs prefers.
        r.allocatableCapacity = info.capacity
        r.allocatableAvailable = info.available
        var server = Proto_ComponentInfoProto()
        server.component = "master"
        server.releaseVersion = curvineFuseVersion
        server.protocolVersion = 1
        server.minProtocolVersion = 1
        var compat = Proto_ServerCompatibilityInfoProto()
        compat.server = server
        compat.compatibilityMode = .diagnose
        r.compatibility = compat
        return r
    }
}

private func bytesMap(_ m: [String: Data]) -> [String: [UInt8]] {
    m.mapValues { [UInt8]($0) }
}

private func freeResult(_ d: DeleteResult) -> Proto_FreeResultProto {
    var p = Proto_FreeResultProto()
    p.inodes = d.inodes
    p.bytes = d.bytes
    return p
}

/// CreateFileOptsProto -> the model. O_TRUNC travels in the flags, not here.
private func createOptions(_ o: Proto_CreateFileOptsProto) -> CreateOptions {
    CreateOptions(mode: o.mode, owner: o.owner, group: o.group, overwrite: false, createParent: o.createParent,
                  kind: FileKind(rawValue: Int32(o.fileType.rawValue)) ?? .file, blockSize: o.blockSize,
                  replicas: o.replicas)
}
