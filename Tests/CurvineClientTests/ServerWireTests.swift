// The embedded master and worker at the frame level: things a well-behaved client
// never does or cannot see (heartbeats, unknown codes, bad headers and frames, the
// retry cache keyed by req_id, standby answers, raw stream checks).
import CurvineClient
import CurvineProto
@testable import CurvineServer
import Foundation
import SwiftProtobuf
import XCTest

final class ServerWireTests: XCTestCase {
    private var dir = ""
    private var cluster: EmbeddedCluster!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "server-wire-\(UUID().uuidString)"
        cluster = try EmbeddedCluster.start(dataDir: dir, workers: 1, standbyMasters: 1, syncWrites: false)
    }

    override func tearDownWithError() throws {
        cluster.stop()
        try? FileManager.default.removeItem(atPath: dir)
    }

    private func connect(_ hp: HostPort) throws -> TCPSocket { try TCPSocket.connect(hp, timeoutMs: 2000) }

    private func send(_ s: TCPSocket, _ code: RpcCode, _ header: [UInt8], reqId: Int64,
                      status: RequestStatus = .rpc, seq: Int32 = -1, data: [UInt8] = []) throws {
        try s.writeFrame(Frame(code: code.rawValue, status: statusByte(status, .undefined), reqId: reqId, seqId: seq,
                               header: header, data: data))
    }

    private func recv(_ s: TCPSocket) throws -> Frame? { try s.readFrame(deadlineNs: monotonicNs() + 5_000_000_000) }

    private func call(_ s: TCPSocket, _ code: RpcCode, _ msg: some SwiftProtobuf.Message, reqId: Int64 = .random(in: 1...(.max)),
                      status: RequestStatus = .rpc, seq: Int32 = -1, data: [UInt8] = []) throws -> Frame {
        try send(s, code, Wire.encode(msg), reqId: reqId, status: status, seq: seq, data: data)
        let f = try XCTUnwrap(try recv(s))
        XCTAssertEqual(f.reqId, reqId)
        XCTAssertEqual(f.seqId, seq)
        XCTAssertEqual(f.code, code.rawValue)
        XCTAssertEqual(f.requestStatus, status)
        return f
    }

    private func errorOf(_ f: Frame) -> CurvineError? { f.isError ? ErrorPayload.decode(f.data) : nil }

    private func status(_ path: String) -> Proto_GetFileStatusRequest {
        var r = Proto_GetFileStatusRequest()
        r.path = path
        return r
    }

    private func readOpen(_ id: Int64, len: Int64, shortCircuit: Bool) -> Proto_BlockReadRequest {
        var r = Proto_BlockReadRequest()
        r.id = id; r.off = 0; r.len = len; r.chunkSize = 4; r.shortCircuit = shortCircuit
        r.enableReadAhead = true; r.readAheadLen = 1 << 20; r.dropCacheLen = 1 << 20
        return r
    }

    private func create(_ path: String, flags: UInt32 = 0x41, blockSize: Int64 = 64) -> Proto_CreateFileRequest {
        var r = Proto_CreateFileRequest()
        r.path = path
        var o = Proto_CreateFileOptsProto()
        o.createFlag = 0; o.createParent = false; o.fileType = .file; o.replicas = 1; o.blockSize = blockSize
        o.storagePolicy = Wire.defaultStoragePolicy(); o.clientName = "wire-test"; o.mode = 0o644
        o.owner = ""; o.group = ""; o.syncUfsMeta = false; o.ufsLen = 0
        r.opts = o
        r.flags = flags
        return r
    }

    func testHeartbeatsSkippedRepliesInOrder() throws {
        let s = try connect(cluster.masterAddress)
        try s.writeFrame(.heartbeat)
        try send(s, .fileStatus, Wire.encode(status("/")), reqId: 11)
        try s.writeFrame(.heartbeat)
        try send(s, .exists, Wire.encode({ var r = Proto_ExistsRequest(); r.path = "/nope"; return r }()), reqId: 12)
        let a = try XCTUnwrap(try recv(s)), b = try XCTUnwrap(try recv(s))
        XCTAssertEqual([a.reqId, b.reqId], [11, 12])
        XCTAssertEqual([a.status, b.status], [0x01, 0x01])
        XCTAssertEqual(try Wire.decode(Proto_GetFileStatusResponse.self, a.header).status.id, Namespace.rootId)
        XCTAssertFalse(try Wire.decode(Proto_ExistsResponse.self, b.header).exists)
    }

    func testUnknownCodeBadHeaderAndBadFrame() throws {
        let s = try connect(cluster.masterAddress)
        try s.writeFrame(Frame(code: 99, status: 0xF1, reqId: 1, seqId: -1))
        let u = try XCTUnwrap(try recv(s))
        XCTAssertEqual(u.status, 0x11)
        XCTAssertEqual(errorOf(u)?.kind, .common)
        XCTAssertEqual(errorOf(u)?.message, "Unsupported operation")
        try send(s, .fileStatus, [0xFF, 0xFF, 0xFF], reqId: 2)
        XCTAssertEqual(errorOf(try XCTUnwrap(try recv(s)))?.kind, .common, "an undecodable header is a Common error")
        // The connection is still usable; then a malformed prefix closes it.
        XCTAssertFalse(try call(s, .fileStatus, status("/")).isError)
        var bad = [UInt8](repeating: 0, count: 22)
        bad[3] = 5  // total_len 5 < 18
        try bad.withUnsafeBytes { try s.writeAll([$0]) }
        XCTAssertThrowsError(try { if try recv(s) == nil { throw CurvineError.transport("closed") } }())
    }

    func testRetryCacheByRequestId() throws {
        let s = try connect(cluster.masterAddress)
        // CreateFile: a re-send after success answers the current status, not EEXIST.
        let c1 = try call(s, .createFile, create("/f"), reqId: 100)
        let again = try call(s, .createFile, create("/f"), reqId: 100)
        XCTAssertNil(errorOf(again))
        XCTAssertEqual(try Wire.decode(Proto_CreateFileResponse.self, again.header).fileStatus.id,
                       try Wire.decode(Proto_CreateFileResponse.self, c1.header).fileStatus.id)
        XCTAssertEqual(errorOf(try call(s, .createFile, create("/f"), reqId: 101))?.kind, .fileAlreadyExists)
        // Rename: the re-send is "true" although the source is gone.
        var rn = Proto_RenameRequest(); rn.src = "/f"; rn.dst = "/g"; rn.flags = 0
        XCTAssertTrue(try Wire.decode(Proto_RenameResponse.self, try call(s, .rename, rn, reqId: 200).header).result)
        XCTAssertTrue(try Wire.decode(Proto_RenameResponse.self, try call(s, .rename, rn, reqId: 200).header).result)
        XCTAssertEqual(errorOf(try call(s, .rename, rn, reqId: 201))?.kind, .fileNotFound)
        // Delete: a failed attempt runs again on re-send.
        var del = Proto_DeleteRequest(); del.path = "/h"; del.recursive = false
        XCTAssertEqual(errorOf(try call(s, .delete, del, reqId: 300))?.kind, .fileNotFound)
        _ = try call(s, .createFile, create("/h"), reqId: 301)
        XCTAssertNil(errorOf(try call(s, .delete, del, reqId: 300)))
        XCTAssertNil(errorOf(try call(s, .delete, del, reqId: 300)), "and a succeeded one answers empty")
        // SetAttr only marks: any re-send is InProgress, even after success.
        var sa = Proto_SetAttrRequest(); sa.path = "/g"; sa.opts = SetAttrOptions(mode: 0o600).proto
        XCTAssertNil(errorOf(try call(s, .setAttr, sa, reqId: 400)))
        XCTAssertEqual(errorOf(try call(s, .setAttr, sa, reqId: 400))?.kind, .inProgress)
        // While the first attempt executes, a re-send is InProgress.
        let cache = cluster.masters[0].retryCache
        XCTAssertFalse(try cache.begin(500))
        XCTAssertThrowsError(try cache.begin(500)) { XCTAssertEqual(($0 as? CurvineError)?.kind, .inProgress) }
        cache.finish(500, success: true)
        XCTAssertTrue(try cache.begin(500))
        // A reply lost after execution: the client's re-send gets the success-ish answer.
        cluster.masters[0].setFaultHook { f in f.reqId == 600 && f.code == RpcCode.createFile.rawValue ? .dropAfterExecute : .proceed }
        try send(s, .createFile, Wire.encode(create("/lost")), reqId: 600)
        XCTAssertNil(try? recv(s), "connection dropped instead of the reply")
        cluster.masters[0].setFaultHook(nil)
        let s3 = try connect(cluster.masterAddress)
        XCTAssertNil(errorOf(try call(s3, .createFile, create("/lost"), reqId: 600)))
    }

    func testStandbyAnswersNotLeaderAndFailover() throws {
        let standby = cluster.masters[1]
        let s = try connect(standby.address)
        let e = try XCTUnwrap(errorOf(try call(s, .getFilesystemInfo, Proto_GetFilesystemInfoRequest())))
        XCTAssertEqual(e.kind, .notLeaderMaster)
        XCTAssertTrue(e.message.hasPrefix("Not a leader master, code=GetFilesystemInfo, client_ip=127.0.0.1"), e.message)
        XCTAssertEqual(errorOf(try call(s, .fileStatus, status("/")))?.kind, .notLeaderMaster)

        cluster.failover(to: 1)
        let info = try Wire.decode(Proto_GetFilesystemInfoResponse.self,
                                   try call(s, .getFilesystemInfo, Proto_GetFilesystemInfoRequest()).header)
        XCTAssertEqual(info.activeMaster, standby.address.description)
        XCTAssertEqual(info.liveWorkers.map(\.address.rpcPort), [UInt32(cluster.workerAddresses[0].port)])
        let old = try connect(cluster.masters[0].address)
        XCTAssertEqual(errorOf(try call(old, .fileStatus, status("/")))?.kind, .notLeaderMaster)
    }

    func testAddBlockAndRawBlockStreams() throws {
        let s = try connect(cluster.masterAddress)
        let st = try Wire.decode(Proto_CreateFileResponse.self, try call(s, .createFile, create("/data", blockSize: 64)).header).fileStatus
        var ab = Proto_AddBlockRequest()
        ab.path = "/data"; ab.located = true; ab.fileLen = 0; ab.inodeID = st.id
        var ca = Proto_ClientAddressProto(); ca.clientName = "wire-test"; ca.hostname = "elsewhere"; ca.ipAddr = "127.0.0.1"; ca.port = 0
        ab.clientAddress = ca
        let lb = try Wire.decode(Proto_LocatedBlockProto.self, try call(s, .addBlock, ab).header)  // bare, not wrapped
        XCTAssertEqual(lb.offset, 0)
        XCTAssertEqual(lb.block.blockSize, 0)
        XCTAssertEqual(lb.locs.first?.ipAddr, "127.0.0.1")
        XCTAssertEqual(lb.locs.first?.rpcPort, UInt32(cluster.workerAddresses[0].port))
        XCTAssertEqual(lb.locs.first?.hostname, localHostname())

        let w = try connect(cluster.workerAddresses[0])
        var open = Proto_BlockWriteRequest()
        open.block = lb.block; open.off = 0; open.blockSize = 64; open.shortCircuit = false
        open.clientName = "wire-test"; open.chunkSize = 4
        XCTAssertEqual(errorOf(try call(w, .writeBlock, { var o = open; o.off = 65; return o }(), reqId: 9, status: .open, seq: 0))?.kind,
                       .common, "off > block_size")
        let resp = try Wire.decode(Proto_BlockWriteResponse.self, try call(w, .writeBlock, open, reqId: 9, status: .open, seq: 0).header)
        XCTAssertFalse(resp.hasPath)
        XCTAssertEqual(resp.blockSize, 64)
        XCTAssertNil(errorOf(try call(w, .writeBlock, Proto_DataHeaderProto(), reqId: 9, status: .running, seq: 1,
                                      data: Array("hello".utf8))))
        var seek = Proto_DataHeaderProto(); seek.offset = 10; seek.flush = false; seek.isLast = false
        XCTAssertNil(errorOf(try call(w, .writeBlock, seek, reqId: 9, status: .running, seq: 2, data: Array("world".utf8))))
        XCTAssertEqual(errorOf(try call(w, .writeBlock, seek, reqId: 8, status: .running, seq: 3))?.message,
                       "Request id mismatch, expected 9, actual 8")
        var flush = Proto_DataHeaderProto(); flush.offset = 15; flush.flush = true; flush.isLast = false
        XCTAssertNil(errorOf(try call(w, .writeBlock, flush, reqId: 9, status: .running, seq: 4)))
        var commit = open; commit.block.blockSize = 15; commit.off = 15
        XCTAssertNil(errorOf(try call(w, .writeBlock, commit, reqId: 9, status: .complete, seq: 5)))

        var cf = Proto_CompleteFileRequest()
        cf.path = "/data"; cf.len = 15; cf.clientName = "wire-test"; cf.onlyFlush = false; cf.inodeID = st.id
        var cb = Proto_CommitBlockProto(); cb.blockID = lb.block.id; cb.blockLen = 15
        var bl = Proto_BlockLocationProto(); bl.workerID = lb.locs[0].workerID; bl.storageType = .disk
        cb.locations = [bl]
        cf.commitBlocks = [cb]
        XCTAssertTrue(try Wire.decode(Proto_CompleteFileResponse.self, try call(s, .completeFile, cf).header).result)

        // Read it back: chunks of 4, the gap reads as zeros, a Running past the end fails.
        let r = try connect(cluster.workerAddresses[0])
        let ropen = readOpen(lb.block.id, len: 15, shortCircuit: false)
        XCTAssertEqual(try Wire.decode(Proto_BlockReadResponse.self, try call(r, .readBlock, ropen, reqId: 5, status: .open, seq: 0).header).len, 15)
        var got: [UInt8] = []
        for seq in 1...4 { got += try call(r, .readBlock, Proto_DataHeaderProto(), reqId: 5, status: .running, seq: Int32(seq)).data }
        XCTAssertEqual(got, Array("hello".utf8) + [0, 0, 0, 0, 0] + Array("world".utf8))
        XCTAssertEqual(errorOf(try call(r, .readBlock, Proto_DataHeaderProto(), reqId: 5, status: .running, seq: 5))?.kind, .common)
        var back = Proto_DataHeaderProto(); back.offset = 12; back.flush = false; back.isLast = false
        XCTAssertEqual(try call(r, .readBlock, back, reqId: 5, status: .running, seq: 6).data, Array("rld".utf8))
        XCTAssertEqual(errorOf(try call(r, .readBlock, ropen, reqId: 5, status: .cancel, seq: 7))?.message, "Unsupported request type")
        XCTAssertNil(errorOf(try call(r, .readBlock, ropen, reqId: 5, status: .complete, seq: 8)))
        // Short-circuit: the block file's path; a missing block is BlockNotFound (29).
        let sc = readOpen(lb.block.id, len: 15, shortCircuit: true)
        let path = try Wire.decode(Proto_BlockReadResponse.self, try call(r, .readBlock, sc, reqId: 6, status: .open, seq: 0).header).path
        XCTAssertEqual(FileManager.default.contents(atPath: path).map { [UInt8]($0) }, Optional(got))
        let missing = readOpen(12345, len: 1, shortCircuit: false)
        XCTAssertEqual(errorOf(try call(r, .readBlock, missing, reqId: 7, status: .open, seq: 0))?.kind, .blockNotFound)

        // Deleting the file releases its block on the worker.
        var del = Proto_DeleteRequest(); del.path = "/data"; del.recursive = false
        XCTAssertNil(errorOf(try call(s, .delete, del)))
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
    }

    func testRestartMasterReplaysAndKeepsPorts() throws {
        let s = try connect(cluster.masterAddress)
        let id = try Wire.decode(Proto_CreateFileResponse.self, try call(s, .createFile, create("/kept")).header).fileStatus.id
        let ports = cluster.masterAddresses
        try cluster.restartMaster()
        XCTAssertEqual(cluster.masterAddresses, ports)
        XCTAssertNil(try? recv(s), "old connections are closed")
        let s2 = try connect(cluster.masterAddress)
        XCTAssertEqual(try Wire.decode(Proto_GetFileStatusResponse.self, try call(s2, .fileStatus, status("/kept")).header).status.id, id)
    }
}
