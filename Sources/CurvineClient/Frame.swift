// Curvine's frame: the unit of every message in both directions (PROTOCOL.md §2).
//
//   offset size type  field
//   0      4    i32   total_len   = 18 + header_len + data_len (bytes after this field)
//   4      4    i32   header_len  protobuf header section (0 = none)
//   8      1    i8    code        RPC code, echoed
//   9      1    i8    status      request nibble | response nibble << 4
//   10     8    i64   req_id      echoed
//   18     4    i32   seq_id      echoed
//   22     H          header      one protobuf message
//   22+H   D          data        raw payload (block bytes or the error payload)
//
// All integers big-endian. The decoder never allocates a buffer sized by an
// untrusted length before validating it against the limits below.

/// Bytes of the fixed prefix (`PROTOCOL_SIZE`).
public let framePrefixSize = 22
/// `total_len` counts these 18 bytes plus header and data (`HEAD_SIZE`).
public let frameHeadSize = 18
/// Largest data section a peer accepts (`MAX_DATE_SIZE` = 16 MiB, §2).
public let frameMaxDataSize = 16 * 1024 * 1024
/// Largest header section we accept: upstream bounds only data, but the tokio codec
/// path caps the whole frame at 16 MiB, so nothing larger can come from a real peer.
public let frameMaxHeaderSize = 16 * 1024 * 1024
/// Largest whole frame (after total_len) we send or accept: §10.11 advises keeping
/// frames under 16 MiB total so both of upstream's readers accept them.
public let frameMaxTotalSize = 16 * 1024 * 1024 + frameHeadSize

/// Low nibble of the status byte.
public enum RequestStatus: Int8, Sendable {
    case undefined = -1, heartbeat = 0, rpc = 1, open = 2, running = 3, cancel = 4, complete = 5

    /// Decodes `status & 0x0F`; any unknown value is Undefined (§2.1).
    public init(nibble: UInt8) {
        self = RequestStatus(rawValue: Int8(nibble & 0x0F)) ?? .undefined
    }
}

/// High nibble of the status byte, decoded with an arithmetic shift (§2.1).
public enum ResponseStatus: Int8, Sendable {
    case undefined = -1, success = 0, error = 1

    public init(statusByte: UInt8) {
        let v = Int8(bitPattern: statusByte) >> 4
        self = ResponseStatus(rawValue: v) ?? .undefined
    }
}

/// Builds a status byte: `(request & 0x0F) | (response << 4)`.
@inline(__always)
public func statusByte(_ req: RequestStatus, _ resp: ResponseStatus) -> UInt8 {
    UInt8(bitPattern: req.rawValue) & 0x0F | (UInt8(bitPattern: resp.rawValue) << 4)
}

/// `req_id` reserved for "no id" (heartbeats).
public let heartbeatReqId: Int64 = -1
/// `seq_id` of every unary RPC (`INIT_SEQ_ID`).
public let unarySeqId: Int32 = -1

/// One decoded frame. `header` and `data` are owned copies.
public struct Frame: Sendable, Equatable {
    public var code: Int8
    public var status: UInt8
    public var reqId: Int64
    public var seqId: Int32
    public var header: [UInt8]
    public var data: [UInt8]

    public init(code: Int8, status: UInt8, reqId: Int64, seqId: Int32,
                header: [UInt8] = [], data: [UInt8] = []) {
        self.code = code
        self.status = status
        self.reqId = reqId
        self.seqId = seqId
        self.header = header
        self.data = data
    }

    public var requestStatus: RequestStatus { RequestStatus(nibble: status) }
    public var responseStatus: ResponseStatus { ResponseStatus(statusByte: status) }
    public var isHeartbeat: Bool { requestStatus == .heartbeat }
    public var isError: Bool { responseStatus == .error }

    /// A heartbeat: code 0, status 0xF0, ids -1 (§8.7). Never answered.
    public static let heartbeat = Frame(code: 0, status: statusByte(.heartbeat, .undefined),
                                        reqId: heartbeatReqId, seqId: unarySeqId)
}

/// Why bytes could not be a frame. Every case names what was wrong.
public enum FrameError: Error, Equatable, CustomStringConvertible {
    /// total_len smaller than the 18 bytes it must count.
    case totalLengthTooSmall(Int32)
    /// total_len over the 16 MiB frame limit.
    case totalLengthTooLarge(Int32)
    case negativeHeaderLength(Int32)
    case headerTooLarge(Int32)
    /// header_len larger than what total_len leaves (data_len would be negative).
    case headerExceedsFrame(header: Int32, total: Int32)
    case dataTooLarge(Int)
    /// The stream ended inside a frame.
    case truncated(expected: Int, got: Int)

    public var description: String {
        switch self {
        case .totalLengthTooSmall(let t): return "frame total_len \(t) is below the 18-byte minimum"
        case .totalLengthTooLarge(let t): return "frame total_len \(t) exceeds the 16 MiB limit"
        case .negativeHeaderLength(let h): return "frame header_len \(h) is negative"
        case .headerTooLarge(let h): return "frame header_len \(h) exceeds the 16 MiB limit"
        case .headerExceedsFrame(let h, let t): return "frame header_len \(h) does not fit in total_len \(t)"
        case .dataTooLarge(let d): return "frame data_len \(d) exceeds the 16 MiB limit"
        case .truncated(let e, let g): return "frame truncated: expected \(e) bytes, got \(g)"
        }
    }
}

/// The validated lengths of a frame, from its 22-byte prefix.
public struct FramePrefix: Sendable, Equatable {
    public var headerLength: Int
    public var dataLength: Int
    public var code: Int8
    public var status: UInt8
    public var reqId: Int64
    public var seqId: Int32
    /// Bytes that follow the prefix.
    public var bodyLength: Int { headerLength + dataLength }
}

public enum FrameCodec {
    /// Parses and validates the 22-byte prefix. `p` must hold at least 22 bytes.
    public static func parsePrefix(_ p: UnsafeRawBufferPointer) throws -> FramePrefix {
        guard p.count >= framePrefixSize else {
            throw FrameError.truncated(expected: framePrefixSize, got: p.count)
        }
        let total = Int32(bitPattern: readBE32(p, 0))
        let headerLen = Int32(bitPattern: readBE32(p, 4))
        guard total >= Int32(frameHeadSize) else { throw FrameError.totalLengthTooSmall(total) }
        guard Int(total) <= frameMaxTotalSize else { throw FrameError.totalLengthTooLarge(total) }
        guard headerLen >= 0 else { throw FrameError.negativeHeaderLength(headerLen) }
        guard Int(headerLen) <= frameMaxHeaderSize else { throw FrameError.headerTooLarge(headerLen) }
        let dataLen = Int(total) - frameHeadSize - Int(headerLen)
        guard dataLen >= 0 else { throw FrameError.headerExceedsFrame(header: headerLen, total: total) }
        guard dataLen <= frameMaxDataSize else { throw FrameError.dataTooLarge(dataLen) }
        return FramePrefix(
            headerLength: Int(headerLen), dataLength: dataLen,
            code: Int8(bitPattern: p[8]), status: p[9],
            reqId: Int64(bitPattern: readBE64(p, 10)),
            seqId: Int32(bitPattern: readBE32(p, 18)))
    }

    /// Decodes one complete frame from the start of `bytes`. Returns the frame and
    /// the bytes consumed, or nil when more bytes are needed.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws -> (Frame, Int)? {
        guard bytes.count >= framePrefixSize else { return nil }
        let prefix = try parsePrefix(bytes)
        let end = framePrefixSize + prefix.bodyLength
        guard bytes.count >= end else { return nil }
        let h = framePrefixSize
        let header = Array(bytes[h..<(h + prefix.headerLength)])
        let data = Array(bytes[(h + prefix.headerLength)..<end])
        return (Frame(code: prefix.code, status: prefix.status, reqId: prefix.reqId,
                      seqId: prefix.seqId, header: header, data: data), end)
    }

    /// Decodes exactly one frame from `bytes`; extra or missing bytes are errors.
    public static func decodeExact(_ bytes: [UInt8]) throws -> Frame {
        try bytes.withUnsafeBytes { raw in
            guard raw.count >= framePrefixSize else {
                throw FrameError.truncated(expected: framePrefixSize, got: raw.count)
            }
            let prefix = try parsePrefix(raw)
            let end = framePrefixSize + prefix.bodyLength
            guard raw.count >= end else { throw FrameError.truncated(expected: end, got: raw.count) }
            guard let (f, _) = try decode(raw) else { throw FrameError.truncated(expected: end, got: raw.count) }
            return f
        }
    }

    /// Writes the 22-byte prefix for a frame with the given lengths into `out`.
    public static func writePrefix(into out: UnsafeMutableRawBufferPointer, code: Int8, status: UInt8,
                                   reqId: Int64, seqId: Int32, headerLength: Int, dataLength: Int) {
        precondition(out.count >= framePrefixSize)
        writeBE32(out, 0, UInt32(frameHeadSize + headerLength + dataLength))
        writeBE32(out, 4, UInt32(headerLength))
        out[8] = UInt8(bitPattern: code)
        out[9] = status
        writeBE64(out, 10, UInt64(bitPattern: reqId))
        writeBE32(out, 18, UInt32(bitPattern: seqId))
    }

    /// Encodes a whole frame into a new array (control path; the data path writes the
    /// prefix and the payload separately with writev).
    public static func encode(_ f: Frame) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: framePrefixSize + f.header.count + f.data.count)
        out.withUnsafeMutableBytes { raw in
            writePrefix(into: raw, code: f.code, status: f.status, reqId: f.reqId, seqId: f.seqId,
                        headerLength: f.header.count, dataLength: f.data.count)
            if !f.header.isEmpty {
                f.header.withUnsafeBytes { raw.baseAddress!.advanced(by: framePrefixSize).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            }
            if !f.data.isEmpty {
                f.data.withUnsafeBytes { raw.baseAddress!.advanced(by: framePrefixSize + f.header.count).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            }
        }
        return out
    }
}

@inline(__always) func readBE32(_ p: UnsafeRawBufferPointer, _ o: Int) -> UInt32 {
    UInt32(p[o]) << 24 | UInt32(p[o + 1]) << 16 | UInt32(p[o + 2]) << 8 | UInt32(p[o + 3])
}
@inline(__always) func readBE64(_ p: UnsafeRawBufferPointer, _ o: Int) -> UInt64 {
    UInt64(readBE32(p, o)) << 32 | UInt64(readBE32(p, o + 4))
}
@inline(__always) func writeBE32(_ p: UnsafeMutableRawBufferPointer, _ o: Int, _ v: UInt32) {
    p[o] = UInt8(truncatingIfNeeded: v >> 24); p[o + 1] = UInt8(truncatingIfNeeded: v >> 16)
    p[o + 2] = UInt8(truncatingIfNeeded: v >> 8); p[o + 3] = UInt8(truncatingIfNeeded: v)
}
@inline(__always) func writeBE64(_ p: UnsafeMutableRawBufferPointer, _ o: Int, _ v: UInt64) {
    writeBE32(p, o, UInt32(truncatingIfNeeded: v >> 32)); writeBE32(p, o + 4, UInt32(truncatingIfNeeded: v))
}
