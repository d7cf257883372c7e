// The core's half of a SIGUSR1 hand-over without a kernel: prepareHandover in one core,
// the state through JSON (as the state file carries it), restoreHandover in a fresh core
// over the same cluster, then the old handle numbers, inode numbers and lookup counts
// must work there as they did.
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif
import CurvineClient
@testable import CurvineFSCore

final class HandoverStateTests: CoreTestCase {
    override func defaultConfig() -> CoreConfig {
        var c = super.defaultConfig()
        c.blockSize = 1 << 20
        return c
    }

    /// Exports `core`, round-trips the state through JSON and restores it into a new core
    /// (the old one is dropped without shutdown, as exec drops it).
    func handOver() throws -> [String] {
        let st = try core.prepareHandover()
        let json = try JSONEncoder().encode(st)
        let back = try JSONDecoder().decode(CoreHandoverState.self, from: json)
        core = try FileSystemCore(client: faults, config: defaultConfig())
        return try core.restoreHandover(back)
    }

    func testHandlesInodesAndWritersSurvive() throws {
        let d = try mkdir(1, "d")
        let data = patternBytes(2_500_000, seed: 5)
        let ino = try writeFile(d.ino, "r.bin", data)
        _ = try core.lookup(parent: d.ino, name: "r.bin", ctx: rootCtx)  // a second kernel reference
        let ro = try core.open(ino: ino, flags: O_RDONLY, ctx: rootCtx)
        XCTAssertEqual(try read(ino, ro.fh, 0, 1000), Array(data[0..<1000]))

        // A file being written: its first part must be durable and complete after the hand-over.
        let (we, wo) = try core.create(parent: d.ino, name: "w.bin", mode: 0o644, flags: O_WRONLY | O_CREAT, ctx: rootCtx)
        let partA = patternBytes(300_000, seed: 6)
        try write(we.ino, wo.fh, 0, partA)
        let dh = try core.opendir(ino: d.ino, ctx: rootCtx)
        let lookupsBefore = core.lookupCount(ino: ino)

        let warnings = try handOver()
        XCTAssertEqual(warnings, [])
        XCTAssertEqual(core.lookupCount(ino: ino), lookupsBefore, "kernel references must carry over")
        XCTAssertEqual(try fs.fileStatus("/d/w.bin").length, 300_000, "the writer was committed before the hand-over")
        XCTAssertTrue(try fs.fileStatus("/d/w.bin").isComplete)

        // The old read handle reads on, from the same ino and fh.
        XCTAssertEqual(try read(ino, ro.fh, 1_048_000, 100_000), Array(data[1_048_000..<1_148_000]))
        // The old write handle appends; the file holds both parts after release.
        let partB = patternBytes(200_000, seed: 7)
        try write(we.ino, wo.fh, 300_000, partB)
        try core.flush(ino: we.ino, fh: wo.fh)
        try core.release(ino: we.ino, fh: wo.fh)
        XCTAssertEqual(checksum(try readAll(we.ino)), checksum(partA + partB))
        // The directory stream lists from the start again.
        var r = CollectingDirReplier(capacity: 100)
        try core.readdir(ino: d.ino, fh: dh.fh, offset: 0, plus: false, replier: &r)
        XCTAssertEqual(Set(r.entries.map(\.name)), [".", "..", "r.bin", "w.bin"])
        core.releasedir(ino: d.ino, fh: dh.fh)
        try core.release(ino: ino, fh: ro.fh)
        // New handles get numbers the kernel has not seen.
        let again = try core.open(ino: ino, flags: O_RDONLY, ctx: rootCtx)
        XCTAssertGreaterThan(again.fh, max(ro.fh, wo.fh, dh.fh))
        try core.release(ino: ino, fh: again.fh)
    }

    func testUnlinkedOpenFileIsStillDeletedAtLastRelease() throws {
        let ino = try writeFile(1, "gone.bin", patternBytes(10_000, seed: 1))
        let o = try core.open(ino: ino, flags: O_RDONLY, ctx: rootCtx)
        try core.unlink(parent: 1, name: "gone.bin", ctx: rootCtx)
        XCTAssertEqual(try handOver(), [])
        XCTAssertEqual(try read(ino, o.fh, 0, 10), Array(patternBytes(10_000, seed: 1)[0..<10]))
        try core.release(ino: ino, fh: o.fh)
        XCTAssertEqual(try fs.listPage("/", startAfter: nil, limit: 100).map(\.name), [], "the hidden file must go at last release")
    }

    func testStateOfAnotherMountIsRefused() throws {
        let st = try core.prepareHandover()
        var other = CoreConfig()
        other.fsPath = "/elsewhere"
        core = try FileSystemCore(client: faults, config: other)
        XCTAssertThrowsError(try core.restoreHandover(st)) { e in
            XCTAssertEqual((e as? FSError)?.errno, EINVAL)
        }
    }
}
