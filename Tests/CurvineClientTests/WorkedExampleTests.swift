// PROTOCOL.md §8: every worked example decodes and re-encodes byte for byte, and
// the frames our own builders produce equal the documented bytes.
import CurvineClient
import CurvineProto
import Foundation
import XCTest

func hex(_ s: String) -> [UInt8] {
    let tokens: [Substring] = s.split(whereSeparator: { (c: Character) in c == " " || c == "\n" })
    return tokens.filter { $0.count == 2 }.map { (t: Substring) in UInt8(t, radix: 16)! }
}

/// Hex dump rows as in PROTOCOL.md ("0000  00 00 ..."), offsets stripped.
func dump(_ rows: String) -> [UInt8] {
    var out: [UInt8] = []
    for row in rows.split(separator: "\n") {
        let parts = row.trimmingCharacters(in: .whitespaces).split(separator: " ", maxSplits: 1)
        if parts.count > 1 { out += hex(String(parts[1])) }
    }
    return out
}

let exampleReqId: Int64 = 0x0123456789ABCDEF

final class WorkedExampleTests: XCTestCase {
    let mkdirRequest = dump("""
    0000  00 00 00 2d 00 00 00 1b 02 f1 01 23 45 67 89 ab
    0010  cd ef ff ff ff ff 0a 02 2f 61 12 15 08 00 10 ed
    0020  03 22 0a 08 04 10 00 18 00 20 00 28 01 2a 00 32
    0030  00
    """)
    let fileStatusRequest = dump("""
    0000  00 00 00 1c 00 00 00 0a 07 f1 01 23 45 67 89 ab
    0010  cd ef ff ff ff ff 0a 08 2f 61 2f 62 2e 74 78 74
    """)
    let fileStatusResponse = dump("""
    0000  00 00 00 67 00 00 00 55 07 01 01 23 45 67 89 ab
    0010  cd ef ff ff ff ff 0a 53 08 82 08 12 08 2f 61 2f
    0020  62 2e 74 78 74 1a 05 62 2e 74 78 74 20 00 28 80
    0030  f8 a5 f9 c1 32 30 80 f8 a5 f9 c1 32 38 00 40 01
    0040  48 05 50 01 58 80 80 80 40 60 01 72 0a 08 04 10
    0050  00 18 00 20 00 28 01 7a 04 72 6f 6f 74 82 01 04
    0060  72 6f 6f 74 88 01 a4 03 98 01 01
    """)
    let errorResponse = dump("""
    0000  00 00 00 35 00 00 00 00 07 11 01 23 45 67 89 ab
    0010  cd ef ff ff ff ff 00 00 00 08 00 00 00 17 46 69
    0020  6c 65 20 2f 61 2f 62 2e 74 78 74 20 6e 6f 74 20
    0030  66 6f 75 6e 64 00 00 00 00
    """)
    let readOpen = dump("""
    0000  00 00 00 2c 00 00 00 1a 51 f2 01 23 45 67 89 ab
    0010  cd ef 00 00 00 00 08 81 80 80 80 04 10 00 18 05
    0020  20 80 80 04 28 00 40 01 48 80 80 40 50 80 80 40
    """)
    let runningRequest = dump("""
    0000  00 00 00 12 00 00 00 00 51 f3 01 23 45 67 89 ab
    0010  cd ef 00 00 00 01
    """)
    let runningResponse = dump("""
    0000  00 00 00 17 00 00 00 00 51 03 01 23 45 67 89 ab
    0010  cd ef 00 00 00 01 68 65 6c 6c 6f
    """)
    let heartbeat = dump("""
    0000  00 00 00 12 00 00 00 00 00 f0 ff ff ff ff ff ff
    0010  ff ff ff ff ff ff
    """)

    func testDumpsHaveDocumentedLengths() {
        XCTAssertEqual(mkdirRequest.count, 49)
        XCTAssertEqual(fileStatusRequest.count, 32)
        XCTAssertEqual(fileStatusResponse.count, 107)
        XCTAssertEqual(errorResponse.count, 57)
        XCTAssertEqual(readOpen.count, 48)
        XCTAssertEqual(runningRequest.count, 22)
        XCTAssertEqual(runningResponse.count, 27)
        XCTAssertEqual(heartbeat.count, 22)
    }

    func testEveryExampleRoundTripsByteExact() throws {
        for bytes in [mkdirRequest, fileStatusRequest, fileStatusResponse, errorResponse, readOpen,
                      runningRequest, runningResponse, heartbeat] {
            let f = try FrameCodec.decodeExact(bytes)
            XCTAssertEqual(FrameCodec.encode(f), bytes)
        }
    }

    func testMkdirRequestFromOurBuilder() throws {
        let req = Requests.mkdir("/a", mode: 0o755, owner: "", group: "", createParent: false)
        let f = Frame(code: RpcCode.mkdir.rawValue, status: statusByte(.rpc, .undefined), reqId: exampleReqId,
                      seqId: -1, header: Wire.encode(req))
        XCTAssertEqual(FrameCodec.encode(f), mkdirRequest)
        let back = try Wire.decode(Proto_MkdirRequest.self, try FrameCodec.decodeExact(mkdirRequest).header)
        XCTAssertEqual(back.path, "/a")
        XCTAssertEqual(back.opts.mode, 0o755)
        XCTAssertEqual(back.opts.storagePolicy.storageType, .disk)
        XCTAssertEqual(back.opts.storagePolicy.state, .cv)
    }

    func testFileStatusRequestAndResponse() throws {
        let f = Frame(code: RpcCode.fileStatus.rawValue, status: 0xF1, reqId: exampleReqId, seqId: -1,
                      header: Wire.encode(Requests.fileStatus("/a/b.txt")))
        XCTAssertEqual(FrameCodec.encode(f), fileStatusRequest)

        let resp = try FrameCodec.decodeExact(fileStatusResponse)
        XCTAssertEqual(resp.requestStatus, .rpc)
        XCTAssertEqual(resp.responseStatus, .success)
        XCTAssertEqual(resp.reqId, exampleReqId)
        let st = FileStatus(proto: try Wire.decode(Proto_GetFileStatusResponse.self, resp.header).status)
        XCTAssertEqual(st.id, 1026)
        XCTAssertEqual(st.path, "/a/b.txt")
        XCTAssertEqual(st.name, "b.txt")
        XCTAssertEqual(st.kind, .file)
        XCTAssertEqual(st.mtimeMs, 1_735_689_600_000)
        XCTAssertEqual(st.length, 5)
        XCTAssertEqual(st.blockSize, 134_217_728)
        XCTAssertEqual(st.mode, 0o644)
        XCTAssertEqual(st.owner, "root")
        XCTAssertEqual(st.nlink, 1)
        XCTAssertEqual(st.ctimeMs, st.mtimeMs, "absent ctime falls back to mtime")

        // Our encoder of the same status yields the same header bytes.
        var r = Proto_GetFileStatusResponse()
        r.status = st.proto
        XCTAssertEqual(Wire.encode(r), resp.header)
    }

    func testErrorResponseMapsToENOENT() throws {
        let f = try FrameCodec.decodeExact(errorResponse)
        XCTAssertTrue(f.isError)
        XCTAssertEqual(f.status, 0x11)
        XCTAssertEqual(f.header.count, 0)
        let e = ErrorPayload.decode(f.data)
        XCTAssertEqual(e.kind, .fileNotFound)
        XCTAssertEqual(e.errno, ENOENT)
        XCTAssertEqual(e.message, "File /a/b.txt not found")
        XCTAssertEqual(ErrorPayload.encode(kind: .fileNotFound, message: "File /a/b.txt not found"), f.data)
    }

    func testBlockReadOpenFromOurBuilder() throws {
        let req = Requests.blockReadOpen(id: 1_073_741_825, off: 0, len: 5, chunkSize: 65536, shortCircuit: false,
                                         readAheadLen: 1_048_576, componentInfo: false)
        let f = Frame(code: RpcCode.readBlock.rawValue, status: statusByte(.open, .undefined), reqId: exampleReqId,
                      seqId: 0, header: Wire.encode(req))
        XCTAssertEqual(FrameCodec.encode(f), readOpen)
    }

    func testRunningFramesAndHeartbeat() throws {
        let req = Frame(code: RpcCode.readBlock.rawValue, status: statusByte(.running, .undefined), reqId: exampleReqId, seqId: 1)
        XCTAssertEqual(FrameCodec.encode(req), runningRequest)
        let resp = try FrameCodec.decodeExact(runningResponse)
        XCTAssertEqual(resp.status, statusByte(.running, .success))
        XCTAssertEqual(resp.data, Array("hello".utf8))
        XCTAssertEqual(FrameCodec.encode(Frame.heartbeat), heartbeat)
        XCTAssertTrue(try FrameCodec.decodeExact(heartbeat).isHeartbeat)
    }

    func testStatusBytesTable() {
        // §2.1's table of status bytes.
        XCTAssertEqual(statusByte(.rpc, .undefined), 0xF1)
        XCTAssertEqual(statusByte(.rpc, .success), 0x01)
        XCTAssertEqual(statusByte(.rpc, .error), 0x11)
        XCTAssertEqual(statusByte(.open, .error), 0x12)
        XCTAssertEqual(statusByte(.running, .error), 0x13)
        XCTAssertEqual(statusByte(.cancel, .success), 0x04)
        XCTAssertEqual(statusByte(.complete, .error), 0x15)
        XCTAssertEqual(statusByte(.heartbeat, .undefined), 0xF0)
        XCTAssertEqual(statusByte(.undefined, .undefined), 0xFF)
        XCTAssertEqual(ResponseStatus(statusByte: 0xF1), .undefined)
        XCTAssertEqual(RequestStatus(nibble: 0x0E), .undefined)
    }
}
