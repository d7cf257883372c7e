// Bad frames are typed errors: truncated, oversized, negative lengths, garbage.
// 100k random and mutated frames go through the decoder without a crash.
import CurvineClient
import XCTest

final class FrameDecoderTests: XCTestCase {
    func prefix(total: Int32, header: Int32) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 22)
        b[0] = UInt8(truncatingIfNeeded: total >> 24); b[1] = UInt8(truncatingIfNeeded: total >> 16)
        b[2] = UInt8(truncatingIfNeeded: total >> 8); b[3] = UInt8(truncatingIfNeeded: total)
        b[4] = UInt8(truncatingIfNeeded: header >> 24); b[5] = UInt8(truncatingIfNeeded: header >> 16)
        b[6] = UInt8(truncatingIfNeeded: header >> 8); b[7] = UInt8(truncatingIfNeeded: header)
        return b
    }

    func decodeError(_ bytes: [UInt8]) -> FrameError? {
        do { _ = try FrameCodec.decodeExact(bytes); return nil } catch let e as FrameError { return e } catch { return nil }
    }

    func testTypedErrors() {
        XCTAssertEqual(decodeError(prefix(total: 17, header: 0)), .totalLengthTooSmall(17))
        XCTAssertEqual(decodeError(prefix(total: -1, header: 0)), .totalLengthTooSmall(-1))
        XCTAssertEqual(decodeError(prefix(total: Int32.max, header: 0)), .totalLengthTooLarge(Int32.max))
        XCTAssertEqual(decodeError(prefix(total: 18, header: -5)), .negativeHeaderLength(-5))
        XCTAssertEqual(decodeError(prefix(total: 20, header: 10)), .headerExceedsFrame(header: 10, total: 20))
        XCTAssertEqual(decodeError(prefix(total: 28, header: 0)), .truncated(expected: 32, got: 22))
        XCTAssertEqual(decodeError([0, 0, 0]), .truncated(expected: 22, got: 3))
        XCTAssertEqual(decodeError([]), .truncated(expected: 22, got: 0))
    }

    func testLimitsAreInclusive() throws {
        // data_len of exactly 16 MiB passes the prefix check; one more byte fails.
        let max = Int32(18 + 16 * 1024 * 1024)
        let ok = prefix(total: max, header: 0)
        _ = try ok.withUnsafeBytes { try FrameCodec.parsePrefix($0) }
        XCTAssertEqual(decodeError(prefix(total: max + 1, header: 0)), .totalLengthTooLarge(max + 1))
    }

    func testIncrementalDecodeNeedsMoreBytes() throws {
        let f = Frame(code: 7, status: 0xF1, reqId: 42, seqId: -1, header: [1, 2, 3], data: [4, 5])
        let bytes = FrameCodec.encode(f)
        for cut in 0..<bytes.count {
            let r = try Array(bytes[0..<cut]).withUnsafeBytes { try FrameCodec.decode($0) }
            XCTAssertNil(r, "decoded from only \(cut) bytes")
        }
        let full = try bytes.withUnsafeBytes { try FrameCodec.decode($0) }
        XCTAssertEqual(full?.0, f)
        XCTAssertEqual(full?.1, bytes.count)
    }

    /// 100,000 inputs: random bytes, valid frames with random mutations, and random
    /// prefixes with huge lengths. The decoder must return or throw, never crash, and
    /// never allocate by an untrusted length (huge lengths are rejected first).
    func testFuzz100k() throws {
        var rng = SystemRandomNumberGenerator()
        let seedFrames: [[UInt8]] = [
            FrameCodec.encode(Frame(code: 2, status: 0xF1, reqId: 1, seqId: -1, header: Array(repeating: 7, count: 27))),
            FrameCodec.encode(Frame(code: 81, status: 0x03, reqId: -9, seqId: 3, data: Array("hello".utf8))),
            FrameCodec.encode(Frame.heartbeat),
            FrameCodec.encode(Frame(code: 7, status: 0x11, reqId: 5, seqId: -1,
                                    data: ErrorPayload.encode(kind: .fileNotFound, message: "x"))),
        ]
        var decoded = 0, rejected = 0
        for i in 0..<100_000 {
            var input: [UInt8]
            switch i % 4 {
            case 0:
                input = (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            case 1, 2:
                input = seedFrames[Int.random(in: 0..<seedFrames.count, using: &rng)]
                for _ in 0..<Int.random(in: 1...4, using: &rng) where !input.isEmpty {
                    switch Int.random(in: 0..<3, using: &rng) {
                    case 0: input[Int.random(in: 0..<input.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                    case 1: input.removeLast(Int.random(in: 0...min(5, input.count), using: &rng))
                    default: input.append(UInt8.random(in: 0...255, using: &rng))
                    }
                }
            default:
                input = prefix(total: Int32.random(in: Int32.min...Int32.max, using: &rng),
                               header: Int32.random(in: Int32.min...Int32.max, using: &rng))
            }
            do {
                let r = try input.withUnsafeBytes { try FrameCodec.decode($0) }
                if let (f, used) = r {
                    decoded += 1
                    XCTAssertLessThanOrEqual(used, input.count)
                    // Whatever decodes re-encodes to the bytes it came from.
                    XCTAssertEqual(FrameCodec.encode(f), Array(input[0..<used]))
                    // The error payload decoder is total too.
                    _ = ErrorPayload.decode(f.data)
                }
            } catch is FrameError {
                rejected += 1
            }
        }
        XCTAssertGreaterThan(decoded, 0)
        XCTAssertGreaterThan(rejected, 0)
        print("fuzz: 100000 inputs, \(decoded) decoded, \(rejected) rejected with a typed error")
    }

    func testErrorPayloadTolerance() {
        // Missing extra_len is fine; a short or garbage payload becomes a Common error.
        let noExtra: [UInt8] = [0, 0, 0, 7, 0, 0, 0, 2, 0x68, 0x69]
        XCTAssertEqual(ErrorPayload.decode(noExtra).kind, .fileAlreadyExists)
        XCTAssertEqual(ErrorPayload.decode(noExtra).message, "hi")
        XCTAssertEqual(ErrorPayload.decode([1, 2]).kind, .common)
        let lying: [UInt8] = [0, 0, 0, 8, 0x7f, 0xff, 0xff, 0xff]
        XCTAssertEqual(ErrorPayload.decode(lying).kind, .common)
        XCTAssertEqual(ErrorPayload.decode([0, 0, 0x30, 0x39, 0, 0, 0, 0]).kind, .common, "unknown kind decodes as Common")
    }
}
