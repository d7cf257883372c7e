// Throughput of the core's data paths against the in-process file system (no kernel,
// no network): what the core itself costs. Skipped unless CURVINE_CORE_BENCH=1, e.g.
//   CURVINE_CORE_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter ThroughputTests
import XCTest
#if canImport(Glibc)
import Glibc
#endif
import CurvineClient
import CurvineServer
@testable import CurvineFSCore

/// Counts bytes without copying them (the adapter would hand them to the kernel).
final class CountingReplier: ReadReplier {
    var bytes = 0
    var first: UInt8 = 0
    func replyBytes(_ b: UnsafeRawBufferPointer) { bytes = b.count; if b.count > 0 { first = b[0] } }
    func replyFile(fd: Int32, offset: Int64, count: Int) { bytes = count }
}

final class ThroughputTests: CoreTestCase {
    override func setUpWithError() throws {
        guard getenv("CURVINE_CORE_BENCH") != nil else { throw XCTSkip("set CURVINE_CORE_BENCH=1 to run") }
        try super.setUpWithError()
    }

    override func defaultConfig() -> CoreConfig {
        var c = super.defaultConfig()
        c.readBufferBudget = 1 << 30
        c.writeBufferBudget = 256 << 20
        c.ioThreads = 8
        return c
    }

    func mibps(_ bytes: Int, _ ns: UInt64) -> String {
        String(format: "%.0f MiB/s", Double(bytes) / 1_048_576 / (Double(ns) / 1e9))
    }

    func testSequentialWriteAndRead() throws {
        let size = 512 << 20
        let chunk = patternBytes(1 << 20, seed: 1)
        var t0 = monotonicNs()
        let (e, o) = try core.create(parent: 1, name: "big", mode: 0o644, flags: O_WRONLY, ctx: rootCtx)
        var off = 0
        while off < size {
            try chunk.withUnsafeBytes { _ = try core.write(ino: e.ino, fh: o.fh, offset: Int64(off), data: $0, ctx: rootCtx) }
            off += chunk.count
        }
        try core.flush(ino: e.ino, fh: o.fh)
        try core.release(ino: e.ino, fh: o.fh)
        print("write 1 MiB requests:", mibps(size, monotonicNs() - t0))

        for (label, hide, req) in [("short-circuit 128 KiB", false, 128 << 10), ("short-circuit 1 MiB", false, 1 << 20),
                                   ("prefetch 128 KiB", true, 128 << 10), ("prefetch 1 MiB", true, 1 << 20)] {
            faults.hideLocalFiles = hide
            let h = try core.open(ino: e.ino, flags: O_RDONLY, ctx: rootCtx)
            let r = CountingReplier()
            var total = 0
            t0 = monotonicNs()
            while true {
                try core.read(ino: e.ino, fh: h.fh, offset: Int64(total), size: req, replier: r)
                if r.bytes == 0 { break }
                total += r.bytes
            }
            let dt = monotonicNs() - t0
            try core.release(ino: e.ino, fh: h.fh)
            XCTAssertEqual(total, size)
            print("read \(label):", mibps(total, dt))
        }
        let s = core.stats
        print("stats: hit \(s.prefetchHitBytes >> 20) MiB, demand \(s.demandReadBytes >> 20) MiB, short-circuit \(s.shortCircuitBytes >> 20) MiB, wasted \(s.prefetchWastedBytes >> 20) MiB, read pool \(s.readPoolBytes >> 20) MiB")
    }
}
