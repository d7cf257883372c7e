// Minimal reproductions of bugs the randomized tests found, kept as fast core-level tests.
import Foundation
import XCTest
import CurvineTestHarness
#if canImport(Glibc)
import Glibc
#endif
import CurvineClient
import CurvineFSCore

final class RegressionTests: XCTestCase {
    /// A model of the file next to the core's: every step is checked against it.
    struct Model {
        var bytes: [UInt8] = []
        mutating func write(_ off: Int, _ d: [UInt8]) {
            if bytes.count < off + d.count { bytes += [UInt8](repeating: 0, count: off + d.count - bytes.count) }
            bytes.replaceSubrange(off..<(off + d.count), with: d)
        }
        mutating func truncate(_ n: Int) {
            if n < bytes.count { bytes.removeLast(bytes.count - n) } else { bytes += [UInt8](repeating: 0, count: n - bytes.count) }
        }
    }

    func write(_ rig: CoreRig, _ ino: UInt64, _ off: Int, _ d: [UInt8]) throws {
        let o = try rig.core.open(ino: ino, flags: O_WRONLY, ctx: rig.root)
        do {
            _ = try d.withUnsafeBytes { try rig.core.write(ino: ino, fh: o.fh, offset: Int64(off), data: $0, ctx: rig.root) }
            try rig.core.flush(ino: ino, fh: o.fh)
        } catch {
            try? rig.core.release(ino: ino, fh: o.fh)
            throw error
        }
        try rig.core.release(ino: ino, fh: o.fh)
    }

    func truncate(_ rig: CoreRig, _ ino: UInt64, _ n: Int) throws {
        _ = try rig.core.setattr(ino: ino, changes: SetAttrChanges(size: UInt64(n)), ctx: rig.root)
    }

    /// Found by the differential test (seed 145816264): growing a file by truncate to a
    /// length that is not a block multiple, then writing past it, indexed the blocks of
    /// the session the hole rebuild had just replaced: the daemon crashed (index out of
    /// range in FileWriter.streamFor).
    func testWritePastAPartialTrailingHoleDoesNotCrash() throws {
        let rig = try CoreRig(tag: "hole1", blockSize: "64KB")
        defer { rig.stop() }
        var m = Model()
        let ino = try rig.writeFile("f", [])
        try truncate(rig, ino, 100_000); m.truncate(100_000)
        let d = patternBytes(4096, seed: 1)
        try within(20, "write past a trailing hole") { try self.write(rig, ino, 300_000, d) }
        m.write(300_000, d)
        XCTAssertTrue(try rig.readAll(ino) == m.bytes)
    }

    /// Found by the differential test (seed 1252765095): a full-length trailing hole block
    /// (truncate to a block multiple) was kept when blocks were appended after it, so a
    /// later write into it failed with EIO ("hole block followed by data").
    func testHoleFollowedByDataStaysWritable() throws {
        let rig = try CoreRig(tag: "hole2", blockSize: "64KB")
        defer { rig.stop() }
        var m = Model()
        let ino = try rig.writeFile("f", [])
        try truncate(rig, ino, 65_536); m.truncate(65_536)
        try write(rig, ino, 255_944, [7]); m.write(255_944, [7])
        let d = patternBytes(4096, seed: 2)
        try within(20, "write into the former hole") { try self.write(rig, ino, 0, d) }
        m.write(0, d)
        XCTAssertTrue(try rig.readAll(ino) == m.bytes)
        // Grow again to a multiple of the block size, append, then write at the front.
        try truncate(rig, ino, 4 * 65_536); m.truncate(4 * 65_536)
        try write(rig, ino, 5 * 65_536 + 10, d); m.write(5 * 65_536 + 10, d)
        try write(rig, ino, 3 * 65_536 + 5, d); m.write(3 * 65_536 + 5, d)
        XCTAssertTrue(try rig.readAll(ino) == m.bytes)
    }
}
