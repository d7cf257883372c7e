// The one errno table, row by row.
import CurvineClient
import XCTest

final class ErrnoTableTests: XCTestCase {
    func testKindsMapToDocumentedErrno() {
        let expected: [(ErrorKind, Int32)] = [
            (.io, EIO), (.notLeaderMaster, EAGAIN), (.raft, EIO), (.timeout, ETIMEDOUT), (.pbDecode, EPROTO),
            (.pbEncode, EPROTO), (.fileAlreadyExists, EEXIST), (.fileNotFound, ENOENT), (.invalidFileSize, EFBIG),
            (.parentNotDir, ENOTDIR), (.dirNotEmpty, ENOTEMPTY), (.abnormalData, EIO), (.blockIsWriting, EBUSY),
            (.blockInfo, EIO), (.lease, EBUSY), (.invalidPath, EINVAL), (.diskOutOfSpace, ENOSPC),
            (.inProgress, EBUSY), (.unsupported, ENOSYS), (.ufs, EIO), (.expired, ENOENT),
            (.unsupportedUfsRead, EOPNOTSUPP), (.jobNotFound, ENOENT), (.pipeline, EIO), (.minReplicasNotMet, EIO),
            (.isADirectory, EISDIR), (.notADirectory, ENOTDIR), (.invalidArgument, EINVAL), (.blockNotFound, EIO),
            (.readOnly, EROFS), (.noAvailableWorker, ENOSPC), (.noLocalPath, EIO), (.common, EIO),
        ]
        for (k, e) in expected {
            XCTAssertEqual(ErrnoTable.errno(for: k, message: "x"), e, "\(k)")
        }
        XCTAssertEqual(ErrnoTable.errno(for: .common, message: "open: Permission denied (os error 13)"), EACCES)
        XCTAssertEqual(ErrnoTable.errno(for: .common, message: "Unsupported operation"), ENOSYS)
        XCTAssertEqual(ErrorKind(wire: 9999), .common)
    }

    func testTransportAndTimeoutErrno() {
        XCTAssertEqual(CurvineError.timeout("x").errno, ETIMEDOUT)
        XCTAssertEqual(CurvineError.transport("x").errno, EIO)
        XCTAssertTrue(CurvineError.transport("x").isRetryableOnMasters)
        XCTAssertTrue(CurvineError.remote(.notLeaderMaster, "x").isRetryableOnMasters)
        XCTAssertFalse(CurvineError.remote(.fileNotFound, "x").isRetryableOnMasters)
    }
}
