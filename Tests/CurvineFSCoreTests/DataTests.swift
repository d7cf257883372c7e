// Read and write paths: blocks, overwrites, read-your-writes, truncate, fallocate,
// prefetch, short-circuit, durability points.
import XCTest
#if canImport(Glibc)
import Glibc
#endif
import CurvineClient
import CurvineServer
@testable import CurvineFSCore

final class DataTests: CoreTestCase {
    /// Small blocks so files cross block boundaries with a few MiB.
    override func defaultConfig() -> CoreConfig {
        var c = super.defaultConfig()
        c.blockSize = 1 << 20
        c.writeBufferSize = 256 << 10
        c.writeBuffersPerFile = 3
        return c
    }

    /// Reads `path` with a second client straight from the master and blocks.
    func readDirect(_ path: String) throws -> [UInt8] {
        let other = fs.sibling()
        let fb = try other.blockLocations(path)
        var out: [UInt8] = []
        for b in fb.blocks {
            let r = try other.openBlockReader(b, offset: 0)
            var buf = [UInt8](repeating: 0, count: Int(b.length))
            var got = 0
            while got < buf.count {
                let n = try buf.withUnsafeMutableBytes { try r.read(at: Int64(got), into: UnsafeMutableRawBufferPointer(rebasing: $0[got...])) }
                if n == 0 { break }
                got += n
            }
            r.close()
            out += buf
        }
        XCTAssertEqual(Int64(out.count), fb.status.length)
        return out
    }

    func testMultiBlockWriteThenReadBack() throws {
        // Sizes straddling chunk (128 KiB), buffer (256 KiB) and block (1 MiB) boundaries.
        for (i, size) in [0, 1, 131_071, 131_073, 1 << 20, (1 << 20) + 1, 3 * (1 << 20) + 12_345].enumerated() {
            let data = patternBytes(size, seed: UInt64(i + 10))
            let ino = try writeFile(1, "f\(i)", data, writeSize: 100_003)
            let back = try readAll(ino, readSize: 131_072)
            XCTAssertEqual(back.count, size)
            XCTAssertEqual(checksum(back), checksum(data), "size \(size)")
            XCTAssertEqual(checksum(try readDirect("/f\(i)")), checksum(data), "size \(size) as another client sees it")
            XCTAssertEqual(try core.getattr(ino: ino, fh: nil).0.size, UInt64(size))
            let st = try fs.fileStatus("/f\(i)")
            XCTAssertTrue(st.isComplete)
            XCTAssertEqual(st.blockSize, 1 << 20)
        }
    }

    func testUnalignedReadsAcrossBlocks() throws {
        let data = patternBytes(2_500_000, seed: 77)
        let ino = try writeFile(1, "f", data)
        let o = try core.open(ino: ino, flags: O_RDONLY, ctx: rootCtx)
        for (off, len) in [(0, 10), (1_048_570, 20), (1_048_576, 1), (2_000_000, 1_000_000), (2_499_999, 5), (3_000_000, 10)] {
            let got = try read(ino, o.fh, Int64(off), len)
            let want = off >= data.count ? [] : Array(data[off..<min(data.count, off + len)])
            XCTAssertEqual(got, want, "read \(len) at \(off)")
        }
        try core.release(ino: ino, fh: o.fh)
    }

    func testOverwriteAtOffsets() throws {
        var model = patternBytes(3 * (1 << 20), seed: 5)
        let ino = try writeFile(1, "f", model)
        let o = try core.open(ino: ino, flags: O_RDWR, ctx: rootCtx)
        // Inside a block, across a block boundary, at the start, extending past the end.
        let patches: [(Int, Int)] = [(100, 5000), ((1 << 20) - 3000, 9000), (0, 1), (2 * (1 << 20) + 777, 70_000),
                                     (3 * (1 << 20) - 10, 300_000)]
        for (k, (off, len)) in patches.enumerated() {
            let p = patternBytes(len, seed: UInt64(100 + k))
            try write(ino, o.fh, Int64(off), p)
            if off + len > model.count { model += [UInt8](repeating: 0, count: off + len - model.count) }
            model.replaceSubrange(off..<(off + len), with: p)
        }
        try core.release(ino: ino, fh: o.fh)
        XCTAssertEqual(checksum(try readAll(ino)), checksum(model))
        XCTAssertEqual(checksum(try readDirect("/f")), checksum(model))
    }

    func testSparseWritePastEndReadsZeros() throws {
        let (e, o) = try core.create(parent: 1, name: "sparse", mode: 0o644, flags: O_WRONLY, ctx: rootCtx)
        try write(e.ino, o.fh, 0, [1, 2, 3])
        try write(e.ino, o.fh, 2_600_000, [4, 5])  // skips a whole block
        try core.release(ino: e.ino, fh: o.fh)
        var model = [UInt8](repeating: 0, count: 2_600_002)
        model[0] = 1; model[1] = 2; model[2] = 3; model[2_600_000] = 4; model[2_600_001] = 5
        XCTAssertEqual(try readAll(e.ino), model)
        XCTAssertEqual(try readDirect("/sparse"), model)
    }

    func testReadYourWritesBeforeClose() throws {
        let (e, w) = try core.create(parent: 1, name: "f", mode: 0o644, flags: O_RDWR, ctx: rootCtx)
        let a = patternBytes(300_000, seed: 1)
        try write(e.ino, w.fh, 0, a)
        XCTAssertEqual(try core.getattr(ino: e.ino, fh: nil).0.size, 300_000, "stat sees the writer's size")
        // Same handle and a second read-only handle both see the bytes.
        XCTAssertEqual(try read(e.ino, w.fh, 0, 400_000), a)
        let r = try core.open(ino: e.ino, flags: O_RDONLY, ctx: rootCtx)
        XCTAssertEqual(try read(e.ino, r.fh, 1000, 10), Array(a[1000..<1010]))
        // More writes (overwrite + append) are visible to the open reader too.
        let b = patternBytes(50_000, seed: 2)
        try write(e.ino, w.fh, 290_000, b)
        XCTAssertEqual(try core.getattr(ino: e.ino, fh: nil).0.size, 340_000)
        XCTAssertEqual(try read(e.ino, r.fh, 290_000, 60_000), b)
        XCTAssertGreaterThan(core.stats.readYourWritesFlushes, 0)
        try core.release(ino: e.ino, fh: r.fh)
        try core.release(ino: e.ino, fh: w.fh)
    }

    func testFlushMakesDataVisibleToOtherClients() throws {
        let (e, o) = try core.create(parent: 1, name: "f", mode: 0o644, flags: O_WRONLY, ctx: rootCtx)
        let a = patternBytes(1_500_000, seed: 8)
        try write(e.ino, o.fh, 0, a)
        try core.flush(ino: e.ino, fh: o.fh)
        XCTAssertEqual(try readDirect("/f"), a, "visible after flush, before close")
        XCTAssertFalse(try fs.fileStatus("/f").isComplete, "still open for write")
        try write(e.ino, o.fh, Int64(a.count), [9, 9])
        try core.fsync(ino: e.ino, fh: o.fh, datasync: false)
        XCTAssertEqual(try readDirect("/f").count, a.count + 2)
        try core.release(ino: e.ino, fh: o.fh)
        XCTAssertTrue(try fs.fileStatus("/f").isComplete)
    }

    func testShutdownCommitsOpenWriters() throws {
        let (e, o) = try core.create(parent: 1, name: "f", mode: 0o644, flags: O_WRONLY, ctx: rootCtx)
        let a = patternBytes(700_000, seed: 12)
        try write(e.ino, o.fh, 0, a)
        core.shutdown()
        let st = try fs.fileStatus("/f")
        XCTAssertTrue(st.isComplete)
        XCTAssertEqual(try readDirect("/f"), a)
        _ = o
    }

    func testTruncateShrinkAndGrow() throws {
        let data = patternBytes(2_200_000, seed: 6)
        let ino = try writeFile(1, "f", data)
        // Shrink inside the second block, no handle open.
        var (a, _) = try core.setattr(ino: ino, changes: SetAttrChanges(size: 1_100_000), ctx: rootCtx)
        XCTAssertEqual(a.size, 1_100_000)
        XCTAssertEqual(try readAll(ino), Array(data[0..<1_100_000]))
        // Grow: zeros after the old end.
        (a, _) = try core.setattr(ino: ino, changes: SetAttrChanges(size: 3_000_000), ctx: rootCtx)
        XCTAssertEqual(a.size, 3_000_000)
        var model = Array(data[0..<1_100_000]) + [UInt8](repeating: 0, count: 1_900_000)
        XCTAssertEqual(checksum(try readAll(ino)), checksum(model))
        // Write into the grown (hole) region through a handle, then shrink with it open.
        let o = try core.open(ino: ino, flags: O_RDWR, ctx: rootCtx)
        let p = patternBytes(10_000, seed: 7)
        try write(ino, o.fh, 2_500_000, p)
        model.replaceSubrange(2_500_000..<2_510_000, with: p)
        XCTAssertEqual(checksum(try read(ino, o.fh, 0, 3_000_000)), checksum(model))
        _ = try core.setattr(ino: ino, changes: SetAttrChanges(size: 2_505_000, fh: o.fh), ctx: rootCtx)
        model = Array(model[0..<2_505_000])
        XCTAssertEqual(try core.getattr(ino: ino, fh: o.fh).0.size, 2_505_000)
        // Grow while the writer's session is open, then write past it.
        try write(ino, o.fh, 0, [42])
        model[0] = 42
        _ = try core.setattr(ino: ino, changes: SetAttrChanges(size: 2_600_000, fh: o.fh), ctx: rootCtx)
        model += [UInt8](repeating: 0, count: 95_000)
        XCTAssertEqual(try core.getattr(ino: ino, fh: o.fh).0.size, 2_600_000)
        try core.release(ino: ino, fh: o.fh)
        XCTAssertEqual(checksum(try readAll(ino)), checksum(model))
        XCTAssertEqual(checksum(try readDirect("/f")), checksum(model))
        // Shrink then re-extend by writing: the old bytes past the cut must not come back.
        _ = try core.setattr(ino: ino, changes: SetAttrChanges(size: 100), ctx: rootCtx)
        let o2 = try core.open(ino: ino, flags: O_WRONLY, ctx: rootCtx)
        try write(ino, o2.fh, 200, [1])
        try core.release(ino: ino, fh: o2.fh)
        XCTAssertEqual(try readAll(ino), Array(model[0..<100]) + [UInt8](repeating: 0, count: 100) + [1])
    }

    func testOpenWithTruncate() throws {
        let ino = try writeFile(1, "f", patternBytes(1_300_000, seed: 1))
        let o = try core.open(ino: ino, flags: O_WRONLY | O_TRUNC, ctx: rootCtx)
        XCTAssertEqual(try core.getattr(ino: ino, fh: o.fh).0.size, 0)
        try write(ino, o.fh, 0, [5, 6])
        try core.release(ino: ino, fh: o.fh)
        XCTAssertEqual(try readAll(ino), [5, 6])
        XCTAssertEqual(try fs.fileStatus("/f").length, 2)
    }

    func testConcurrentWritableHandlesShareOneWriter() throws {
        let (e, o1) = try core.create(parent: 1, name: "f", mode: 0o644, flags: O_WRONLY, ctx: rootCtx)
        let o2 = try core.open(ino: e.ino, flags: O_WRONLY, ctx: rootCtx)
        try write(e.ino, o1.fh, 0, [1, 1, 1])
        try write(e.ino, o2.fh, 3, [2, 2, 2])
        try core.release(ino: e.ino, fh: o1.fh)
        XCTAssertFalse(try fs.fileStatus("/f").isComplete, "second handle still open")
        try write(e.ino, o2.fh, 6, [3])
        try core.release(ino: e.ino, fh: o2.fh)
        XCTAssertTrue(try fs.fileStatus("/f").isComplete)
        XCTAssertEqual(try readAll(e.ino), [1, 1, 1, 2, 2, 2, 3])
    }

    func testCreateOnExistingWithoutExclOpensIt() throws {
        let ino = try writeFile(1, "f", [1, 2, 3])
        let (e, o) = try core.create(parent: 1, name: "f", mode: 0o644, flags: O_RDWR | O_CREAT, ctx: rootCtx)
        XCTAssertEqual(e.ino, ino)
        XCTAssertEqual(try read(ino, o.fh, 0, 10), [1, 2, 3])
        try core.release(ino: ino, fh: o.fh)
        assertErrno(EEXIST, try core.create(parent: 1, name: "f", mode: 0o644, flags: O_RDWR | O_CREAT | O_EXCL, ctx: rootCtx))
    }

    func testCreateReadOnlyStillCompletesTheFile() throws {
        let (e, o) = try core.create(parent: 1, name: "f", mode: 0o644, flags: O_RDONLY | O_CREAT, ctx: rootCtx)
        XCTAssertEqual(try read(e.ino, o.fh, 0, 10), [])
        try core.release(ino: e.ino, fh: o.fh)
        XCTAssertTrue(try fs.fileStatus("/f").isComplete)
    }

    func testFallocate() throws {
        let ino = try writeFile(1, "f", [1, 2, 3])
        let o = try core.open(ino: ino, flags: O_RDWR, ctx: rootCtx)
        assertErrno(EINVAL, try core.fallocate(ino: ino, fh: o.fh, mode: 0, offset: 0, length: 0))
        assertErrno(EOPNOTSUPP, try core.fallocate(ino: ino, fh: o.fh, mode: 2 | 1, offset: 0, length: 10))  // punch hole
        assertErrno(EOPNOTSUPP, try core.fallocate(ino: ino, fh: o.fh, mode: 16, offset: 0, length: 10))  // zero range
        try core.fallocate(ino: ino, fh: o.fh, mode: 1, offset: 0, length: 1 << 30)  // KEEP_SIZE: no-op
        XCTAssertEqual(try core.getattr(ino: ino, fh: o.fh).0.size, 3)
        try core.fallocate(ino: ino, fh: o.fh, mode: 0, offset: 1000, length: 1_500_000)
        XCTAssertEqual(try core.getattr(ino: ino, fh: o.fh).0.size, 1_501_000)
        try core.fallocate(ino: ino, fh: o.fh, mode: 0, offset: 0, length: 10)  // never shrinks
        XCTAssertEqual(try core.getattr(ino: ino, fh: o.fh).0.size, 1_501_000)
        // Writing into the allocated range works (fio lays files out like this).
        let p = patternBytes(200_000, seed: 3)
        try write(ino, o.fh, 1_200_000, p)
        try core.release(ino: ino, fh: o.fh)
        var model = [UInt8](repeating: 0, count: 1_501_000)
        model[0] = 1; model[1] = 2; model[2] = 3
        model.replaceSubrange(1_200_000..<1_400_000, with: p)
        XCTAssertEqual(checksum(try readAll(ino)), checksum(model))
        XCTAssertEqual(checksum(try readDirect("/f")), checksum(model))
    }

    func testFallocateWithoutHandleThenWrite() throws {
        let ino = try writeFile(1, "f", [])
        try core.fallocate(ino: ino, fh: 0, mode: 0, offset: 0, length: 2_500_000)
        XCTAssertEqual(try fs.fileStatus("/f").length, 2_500_000)
        let o = try core.open(ino: ino, flags: O_WRONLY, ctx: rootCtx)
        try write(ino, o.fh, 1_100_000, [7, 7])
        try core.release(ino: ino, fh: o.fh)
        var model = [UInt8](repeating: 0, count: 2_500_000)
        model[1_100_000] = 7; model[1_100_001] = 7
        XCTAssertEqual(checksum(try readAll(ino)), checksum(model))
    }

    func testShortCircuitRepliesWithFile() throws {
        let data = patternBytes(500_000, seed: 21)
        let ino = try writeFile(1, "f", data)
        let o = try core.open(ino: ino, flags: O_RDONLY, ctx: rootCtx)
        let r = CollectingReplier()
        try core.read(ino: ino, fh: o.fh, offset: 4096, size: 65536, replier: r)
        XCTAssertTrue(r.usedFile, "a local block is answered zero-copy")
        XCTAssertEqual(r.data, Array(data[4096..<(4096 + 65536)]))
        try core.release(ino: ino, fh: o.fh)
        XCTAssertGreaterThan(core.stats.shortCircuitBytes, 0)
    }

    func testSequentialReadPrefetchHits() throws {
        faults.hideLocalFiles = true  // remote path: the prefetcher is in play
        let size = 6 * (1 << 20) + 4321
        let data = patternBytes(size, seed: 31)
        let ino = try writeFile(1, "big", data)
        let before = core.stats
        let back = try readAll(ino, readSize: 128 << 10)
        XCTAssertEqual(checksum(back), checksum(data))
        let s = core.stats
        let hits = s.prefetchHitBytes - before.prefetchHitBytes
        XCTAssertGreaterThan(hits, UInt64(size / 2), "most of a sequential read comes from prefetched units")
        XCTAssertGreaterThan(s.prefetchedBytes, before.prefetchedBytes)
        XCTAssertEqual(s.shortCircuitBytes, before.shortCircuitBytes)
    }

    func testRandomReadsDoNotPrefetch() throws {
        faults.hideLocalFiles = true
        let data = patternBytes(4 << 20, seed: 41)
        let ino = try writeFile(1, "f", data)
        let o = try core.open(ino: ino, flags: O_RDONLY, ctx: rootCtx)
        let before = core.stats
        var x: UInt64 = 12345
        for _ in 0..<40 {
            x = x &* 6364136223846793005 &+ 1
            let off = Int(x >> 33) % (data.count - 5000)
            XCTAssertEqual(try read(ino, o.fh, Int64(off), 4096), Array(data[off..<(off + 4096)]))
        }
        let s = core.stats
        XCTAssertLessThan(s.prefetchedBytes - before.prefetchedBytes, UInt64(4 << 20), "random reads fetch about what they ask")
        try core.release(ino: ino, fh: o.fh)
    }

    func testOutOfOrderReadaheadStaysSequential() throws {
        faults.hideLocalFiles = true
        let data = patternBytes(8 << 20, seed: 51)
        let ino = try writeFile(1, "f", data)
        let o = try core.open(ino: ino, flags: O_RDONLY, ctx: rootCtx)
        let chunk = 128 << 10
        var off = 0
        // Pairs of reads arriving swapped, as async readahead does.
        while off + 2 * chunk <= data.count {
            XCTAssertEqual(try read(ino, o.fh, Int64(off + chunk), chunk), Array(data[(off + chunk)..<(off + 2 * chunk)]))
            XCTAssertEqual(try read(ino, o.fh, Int64(off), chunk), Array(data[off..<(off + chunk)]))
            off += 2 * chunk
        }
        let s = core.stats
        XCTAssertGreaterThan(s.prefetchHitBytes, UInt64(data.count / 2))
        try core.release(ino: ino, fh: o.fh)
    }

    func testConcurrentReadersAndWriters() throws {
        faults.hideLocalFiles = true
        let files = 6
        let size = 1_700_000
        let group = DispatchGroupLike()
        let errors = Locked<[String]>([])
        for i in 0..<files {
            group.run {
                do {
                    let data = patternBytes(size, seed: UInt64(1000 + i))
                    let ino = try self.writeFile(1, "c\(i)", data, writeSize: 65_536 + i)
                    for _ in 0..<2 {
                        let back = try self.readAll(ino, readSize: 131_072)
                        if checksum(back) != checksum(data) { errors.mutate { $0.append("file \(i) differs") } }
                    }
                } catch {
                    errors.mutate { $0.append("file \(i): \(error)") }
                }
            }
        }
        group.wait()
        XCTAssertEqual(errors.value, [])
        XCTAssertEqual(core.stats.fileHandles, 0)
    }

    func testReadBufferBudgetIsRespected() throws {
        faults.hideLocalFiles = true
        var c = defaultConfig()
        c.readBufferBudget = 4 << 20
        c.maxPrefetchWindow = 64 << 20
        try remount(c)
        let data = patternBytes(12 << 20, seed: 61)
        let ino = try writeFile(1, "f", data)
        XCTAssertEqual(checksum(try readAll(ino, readSize: 1 << 20)), checksum(data))
        // The pool may exceed the budget only by forced (demand/first-unit) buffers.
        XCTAssertLessThanOrEqual(core.stats.readPoolBytes, 4 << 20 + 4 << 20)
    }
}

/// Minimal thread group (no Dispatch in the core's tests' critical path).
final class DispatchGroupLike {
    private let cond = ConditionLock()
    private var pending = 0
    func run(_ body: @escaping () -> Void) {
        cond.withLock { pending += 1 }
        startThread(name: "test") { [self] in
            body()
            cond.withLock { pending -= 1; cond.broadcast() }
        }
    }
    func wait() {
        cond.lock()
        while pending > 0 { cond.wait() }
        cond.unlock()
    }
}

final class Locked<T> {
    private let lock = Lock()
    private var v: T
    init(_ v: T) { self.v = v }
    var value: T { lock.withLock { v } }
    func mutate(_ f: (inout T) -> Void) { lock.withLock { f(&v) } }
}
