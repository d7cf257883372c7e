// The errors the embedded master and worker send, with upstream's message texts
// (PROTOCOL.md §4.3 "Typical messages"), so a client's errno mapping sees exactly what
// a real Curvine cluster would send. Everything the server reports is a
// CurvineError.remote(kind, message): over the wire it becomes the §4.2 error payload,
// and InProcessFileSystem throws it as is, so both paths map to the same errno.
import CurvineClient

enum ServerError {
    static func fileNotFound(_ path: String) -> CurvineError {
        .remote(.fileNotFound, "File \(path) not found")
    }
    /// Two spaces before "already": upstream's exact text.
    static func fileExists(_ path: String) -> CurvineError {
        .remote(.fileAlreadyExists, "\(path)  already exists")
    }
    static func parentNotDir(_ path: String) -> CurvineError {
        .remote(.parentNotDir, "\(path) is not a directory")
    }
    static func dirNotEmpty(_ path: String) -> CurvineError {
        .remote(.dirNotEmpty, "\(path) is not empty")
    }
    static func isADirectory(_ path: String) -> CurvineError {
        .remote(.isADirectory, "\(path) is a directory")
    }
    static func notADirectory(_ path: String) -> CurvineError {
        .remote(.notADirectory, "\(path) is not a directory")
    }
    /// Upstream's `as_file_ref` error on a directory: Common "Not a file" (the client's
    /// Common heuristic maps "not a file" to EISDIR).
    static func notAFile(_ path: String) -> CurvineError {
        .remote(.common, "Not a file: \(path)")
    }
    static func invalidPath(_ path: String, _ why: String) -> CurvineError {
        .remote(.invalidPath, "Path \(path) is invalid, \(why)")
    }
    static func invalidArgument(_ message: String) -> CurvineError {
        .remote(.invalidArgument, message)
    }
    static func common(_ message: String) -> CurvineError {
        .remote(.common, message)
    }
    static func io(_ message: String) -> CurvineError {
        .remote(.io, message)
    }
    static func blockNotFound(_ id: Int64) -> CurvineError {
        .remote(.blockNotFound, "Block \(id) not found")
    }
    static func inProgress(_ reqId: Int64) -> CurvineError {
        .remote(.inProgress, "Request \(reqId) in progress")
    }
    static func noAvailableWorker(_ message: String) -> CurvineError {
        .remote(.noAvailableWorker, message)
    }
    static func fileTooLarge(_ len: Int64) -> CurvineError {
        .remote(.invalidFileSize, "file size \(len) exceeds maximum supported size \(maxFileSize)")
    }
    static func diskOutOfSpace(_ message: String) -> CurvineError {
        .remote(.diskOutOfSpace, message)
    }
}

/// Upstream's MAX_FILE_SIZE (curvine-error lib.rs: 1 << 50 bytes).
let maxFileSize: Int64 = 1 << 50

/// Any error as the kind + message the wire carries: CurvineErrors keep theirs, anything
/// else (a Swift error from a library) becomes Common with its description.
func wireError(_ error: Error) -> (ErrorKind, String) {
    if let e = error as? CurvineError {
        if let k = e.kind { return (k, e.message) }
        return (.common, e.message)
    }
    return (.common, "\(error)")
}
