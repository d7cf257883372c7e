// Curvine error kinds, their wire payload (PROTOCOL.md §4) and the one errno table.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Error kinds as numbered on the wire (`fs_error.rs`). Unknown kinds decode as `.common`.
public enum ErrorKind: Int32, Sendable, CaseIterable {
    case io = 1
    case notLeaderMaster = 2
    case raft = 3
    case timeout = 4
    case pbDecode = 5
    case pbEncode = 6
    case fileAlreadyExists = 7
    case fileNotFound = 8
    case invalidFileSize = 9
    case parentNotDir = 10
    case dirNotEmpty = 11
    case abnormalData = 12
    case blockIsWriting = 13
    case blockInfo = 14
    case lease = 15
    case invalidPath = 16
    case diskOutOfSpace = 17
    case inProgress = 18
    case unsupported = 19
    case ufs = 20
    case expired = 21
    case unsupportedUfsRead = 22
    case jobNotFound = 23
    case pipeline = 24
    case minReplicasNotMet = 25
    case isADirectory = 26
    case notADirectory = 27
    case invalidArgument = 28
    case blockNotFound = 29
    case readOnly = 30
    case noAvailableWorker = 31
    case noLocalPath = 32
    case transfer33 = 33
    case transfer34 = 34
    case transfer35 = 35
    case transfer36 = 36
    case common = 10000

    public init(wire: Int32) { self = ErrorKind(rawValue: wire) ?? .common }
}

/// The errno each kind surfaces as, with the reason for each row. This is the only
/// place a Curvine error becomes an errno (tested row by row in ErrnoTableTests).
public enum ErrnoTable {
    public static func errno(for kind: ErrorKind, message: String) -> Int32 {
        switch kind {
        case .io: return EIO                         // server-side I/O failure
        case .notLeaderMaster: return EAGAIN         // retried on other masters first (§7); only seen if all fail
        case .raft: return EIO                       // journal failure: nothing the caller can fix
        case .timeout: return ETIMEDOUT              // server gave up; upstream shows EIO, ETIMEDOUT is truthful
        case .pbDecode, .pbEncode: return EPROTO     // a peer could not parse us or itself: protocol error
        case .fileAlreadyExists: return EEXIST
        case .fileNotFound: return ENOENT
        case .invalidFileSize: return EFBIG          // length past MAX_FILE_SIZE
        case .parentNotDir: return ENOTDIR           // a path component is a file
        case .dirNotEmpty: return ENOTEMPTY
        case .abnormalData: return EIO               // inconsistent server state
        case .blockIsWriting: return EBUSY           // another writer holds the block
        case .blockInfo: return EIO
        case .lease: return EBUSY                    // another client holds the write lease
        case .invalidPath: return EINVAL
        case .diskOutOfSpace: return ENOSPC
        case .inProgress: return EBUSY               // same req_id still executing
        case .unsupported: return ENOSYS
        case .ufs: return EIO                        // under-file-system failure
        case .expired: return ENOENT                 // TTL removed the file: it is gone
        case .unsupportedUfsRead: return EOPNOTSUPP
        case .jobNotFound: return ENOENT
        case .pipeline, .minReplicasNotMet: return EIO  // replication failed
        case .isADirectory: return EISDIR
        case .notADirectory: return ENOTDIR
        case .invalidArgument: return EINVAL
        case .blockNotFound: return EIO              // after every replica was tried
        case .readOnly: return EROFS
        case .noAvailableWorker: return ENOSPC       // nowhere to put a block: the cluster is full or down
        case .noLocalPath: return EIO                // internal: we fall back to a remote stream before this
        case .transfer33, .transfer34, .transfer35, .transfer36: return EIO
        case .common:
            // Common carries free text; upstream's heuristics, kept (§4.3).
            let m = message.lowercased()
            if m.contains("permission denied") || m.contains("os error 13") { return EACCES }
            if m.contains("not implemented") || m.contains("unsupported") { return ENOSYS }
            if m.contains("not a file") { return EISDIR }
            return EIO
        }
    }
}

/// The one error type of the client. Carries its errno; `message` names the problem.
public struct CurvineError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Source: Sendable, Equatable {
        /// The server answered with an error payload of this kind.
        case remote(ErrorKind)
        /// Transport: connect, EOF, reset, bad frame.
        case transport
        /// No answer within the deadline.
        case timeout
        /// A reply we could not make sense of (bad header, mismatched ids).
        case protocolViolation
        /// A local argument or config problem.
        case local
    }

    public var source: Source
    public var errno: Int32
    public var message: String

    public init(source: Source, errno: Int32, message: String) {
        self.source = source
        self.errno = errno
        self.message = message
    }

    public static func remote(_ kind: ErrorKind, _ message: String) -> CurvineError {
        CurvineError(source: .remote(kind), errno: ErrnoTable.errno(for: kind, message: message), message: message)
    }
    public static func transport(_ message: String) -> CurvineError {
        CurvineError(source: .transport, errno: EIO, message: message)
    }
    public static func timeout(_ message: String) -> CurvineError {
        CurvineError(source: .timeout, errno: ETIMEDOUT, message: message)
    }
    public static func protocolViolation(_ message: String) -> CurvineError {
        CurvineError(source: .protocolViolation, errno: EPROTO, message: message)
    }
    public static func local(_ errno: Int32, _ message: String) -> CurvineError {
        CurvineError(source: .local, errno: errno, message: message)
    }

    public var kind: ErrorKind? {
        if case .remote(let k) = source { return k }
        return nil
    }

    /// Outcomes after which the same frame may go to another master (§7).
    public var isRetryableOnMasters: Bool {
        switch source {
        case .transport, .timeout: return true
        case .remote(let k): return k == .notLeaderMaster
        default: return false
        }
    }

    public var description: String {
        switch source {
        case .remote(let k): return "\(message) (curvine \(k), errno \(errno))"
        default: return "\(message) (errno \(errno))"
        }
    }
}

/// The error payload in a failed response's data section (§4.2), big-endian:
/// i32 kind, u32 msg_len, message, u32 extra_len, extra.
public enum ErrorPayload {
    public static func encode(kind: ErrorKind, message: String) -> [UInt8] {
        let msg = Array(message.utf8)
        var out = [UInt8](repeating: 0, count: 12 + msg.count)
        out.withUnsafeMutableBytes { p in
            writeBE32(p, 0, UInt32(bitPattern: kind.rawValue))
            writeBE32(p, 4, UInt32(msg.count))
            for (i, b) in msg.enumerated() { p[8 + i] = b }
            writeBE32(p, 8 + msg.count, 0)
        }
        return out
    }

    /// Tolerates a missing extra_len; a payload too short for kind + msg_len, or a
    /// msg_len past the end, is treated as a bare UTF-8 message (the CommonErrorExt form).
    public static func decode(_ data: [UInt8]) -> CurvineError {
        data.withUnsafeBytes { p -> CurvineError in
            if p.count >= 8 {
                let kind = Int32(bitPattern: readBE32(p, 0))
                let len = Int(readBE32(p, 4))
                if len <= p.count - 8 {
                    let msg = String(decoding: p[8..<(8 + len)], as: UTF8.self)
                    return .remote(ErrorKind(wire: kind), msg)
                }
            }
            return .remote(.common, String(decoding: p, as: UTF8.self))
        }
    }
}
