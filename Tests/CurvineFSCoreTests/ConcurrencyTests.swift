// Many request threads at once, as libfuse's multithreaded loop calls the core.
import XCTest
#if canImport(Glibc)
import Glibc
#endif
import CurvineClient
import CurvineServer
@testable import CurvineFSCore

final class ConcurrencyTests: CoreTestCase {
    override func defaultConfig() -> CoreConfig {
        var c = super.defaultConfig()
        c.blockSize = 1 << 20
        c.listLimit = 16
        c.attrTimeout = 0.05
        c.entryTimeout = 0.05
        return c
    }

    func testMixedMetadataAndDataOpsFromManyThreads() throws {
        let threads = 8
        let rounds = 60
        let shared = try mkdir(1, "shared")
        let failures = Locked<[String]>([])
        let group = DispatchGroupLike()
        for t in 0..<threads {
            group.run {
                var rng = UInt64(t + 1) &* 0x9E3779B97F4A7C15
                func next(_ n: Int) -> Int { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return Int(rng % UInt64(n)) }
                do {
                    let mine = try self.core.mkdir(parent: shared.ino, name: "t\(t)", mode: 0o755, ctx: rootCtx)
                    for r in 0..<rounds {
                        let name = "f\(next(6))"
                        switch next(7) {
                        case 0, 1:
                            let data = patternBytes(1000 + next(300_000), seed: UInt64(t * 1000 + r))
                            let ino = try self.writeFile(mine.ino, "w\(r)", data, writeSize: 4096 + next(200_000))
                            let back = try self.readAll(ino)
                            if back != data { failures.mutate { $0.append("t\(t) r\(r): data differs") } }
                            self.core.forget(ino: ino, nlookup: 1)
                        case 2:
                            // Shared names: races on create/unlink/rename between threads.
                            if let (e, o) = try? self.core.create(parent: shared.ino, name: name, mode: 0o644,
                                                                  flags: O_WRONLY | O_CREAT, ctx: rootCtx) {
                                _ = try? [UInt8](repeating: UInt8(t), count: 100).withUnsafeBytes {
                                    try self.core.write(ino: e.ino, fh: o.fh, offset: 0, data: $0, ctx: rootCtx)
                                }
                                try? self.core.release(ino: e.ino, fh: o.fh)
                                self.core.forget(ino: e.ino, nlookup: 1)
                            }
                        case 3:
                            try? self.core.unlink(parent: shared.ino, name: name, ctx: rootCtx)
                        case 4:
                            try? self.core.rename(parent: shared.ino, name: name, newParent: shared.ino,
                                                  newName: "f\(next(6))", flags: UInt32(next(2)), ctx: rootCtx)
                        case 5:
                            if let e = try? self.core.lookup(parent: shared.ino, name: name, ctx: rootCtx) {
                                _ = try? self.core.getattr(ino: e.ino, fh: nil)
                                if let o = try? self.core.open(ino: e.ino, flags: O_RDONLY, ctx: rootCtx) {
                                    let r = CollectingReplier()
                                    try? self.core.read(ino: e.ino, fh: o.fh, offset: 0, size: 4096, replier: r)
                                    try? self.core.release(ino: e.ino, fh: o.fh)
                                }
                                self.core.forget(ino: e.ino, nlookup: 1)
                            }
                        default:
                            let o = try self.core.opendir(ino: shared.ino, ctx: rootCtx)
                            var off: Int64 = 0
                            while true {
                                var d = CollectingDirReplier(capacity: 4)
                                try self.core.readdir(ino: shared.ino, fh: o.fh, offset: off, plus: true, replier: &d)
                                if d.entries.isEmpty { break }
                                for e in d.entryObjects { self.core.forget(ino: e.ino, nlookup: 1) }
                                off = d.entries.last!.nextOffset
                            }
                            self.core.releasedir(ino: shared.ino, fh: o.fh)
                        }
                    }
                } catch {
                    failures.mutate { $0.append("thread \(t): \(error)") }
                }
            }
        }
        group.wait()
        XCTAssertEqual(failures.value, [])
        XCTAssertEqual(core.stats.fileHandles, 0)
        XCTAssertEqual(core.stats.dirHandles, 0)
        // Every shared file the master has is complete (no lease left behind).
        for s in try fs.listPage("/shared", startAfter: nil, limit: 1000) where s.kind == .file {
            XCTAssertTrue(s.isComplete, "\(s.name) left incomplete")
            XCTAssertFalse(s.name.hasPrefix(hiddenNamePrefix), "hidden file left behind")
        }
        // Nothing pinned once the kernel forgot everything: only root, "shared" and its
        // per-thread directories (one reference each from mkdir) remain.
        XCTAssertLessThanOrEqual(core.stats.inodes, 2 + threads)
    }

    func testParallelReadersOfOneHandle() throws {
        faults.hideLocalFiles = true
        let data = patternBytes(5 << 20, seed: 99)
        let ino = try writeFile(1, "f", data)
        let o = try core.open(ino: ino, flags: O_RDONLY, ctx: rootCtx)
        let failures = Locked<Int>(0)
        let group = DispatchGroupLike()
        // Four threads read interleaved 128 KiB pieces of one handle, like the kernel's
        // async readahead on a shared file description.
        for t in 0..<4 {
            group.run {
                var off = t * (128 << 10)
                while off < data.count {
                    let r = CollectingReplier()
                    do {
                        try self.core.read(ino: ino, fh: o.fh, offset: Int64(off), size: 128 << 10, replier: r)
                        if r.data != Array(data[off..<min(data.count, off + (128 << 10))]) { failures.mutate { $0 += 1 } }
                    } catch { failures.mutate { $0 += 1 } }
                    off += 4 * (128 << 10)
                }
            }
        }
        group.wait()
        XCTAssertEqual(failures.value, 0)
        try core.release(ino: ino, fh: o.fh)
    }

    func testLargeDirectoryListsCompletely() throws {
        var c = defaultConfig()
        c.listLimit = 1000
        try remount(c)
        let d = try mkdir(1, "big")
        let n = 5000
        for i in 0..<n { _ = try fs.createFile("/big/e\(i)", options: CreateOptions(kind: .fifo)) }
        faults.resetCounts()
        let names = try listNames(d.ino)
        XCTAssertEqual(names.count, n)
        XCTAssertEqual(Set(names).count, n)
        XCTAssertEqual(faults.calls("listPage"), 6)
    }
}
