// Restart without unmount (SIGUSR1, docs/SEMANTICS.md "Restart without unmount"): the
// daemon re-executes itself and the new image takes the /dev/fuse fd and the open
// handles over. These tests keep reading (and writing, and listing) through descriptors
// opened before the hand-over while it happens, twice, and check every byte.
import Foundation
import XCTest
import CurvineTestHarness
#if canImport(Glibc)
import Glibc
#endif

/// Readers that re-read one file through one descriptor opened before the hand-over,
/// dropping its page cache first on every pass so the reads reach the daemon.
private final class ReaderStats: @unchecked Sendable {
    let lock = NSLock()
    var stop = false
    var errors: [String] = []
    var reads = 0
    var maxLatency = 0.0

    func record(_ body: (ReaderStats) -> Void) { lock.lock(); body(self); lock.unlock() }
    var stopped: Bool { lock.lock(); defer { lock.unlock() }; return stop }
}

final class HandoverTests: MountTestCase {
    /// Where the daemon writes its state ([fuse] state_dir unset: $TMPDIR, else /tmp).
    func stateFile(pid: Int32) -> String {
        let dir = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        return (dir as NSString).appendingPathComponent("curvine_fuse_state_\(pid).data")
    }

    func count(_ m: MountProcess, _ needle: String) -> Int {
        m.child.log.components(separatedBy: needle).count - 1
    }

    /// Sends SIGUSR1 and waits (bounded) for the new image to serve `m` again.
    func handOver(_ m: MountProcess, expectServed n: Int, file: StaticString = #filePath, line: UInt = #line) {
        kill(m.child.process.processIdentifier, SIGUSR1)
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline && count(m, "hand-over: serving \(m.mnt) again") < n && m.child.process.isRunning {
            usleep(20_000)
        }
        XCTAssertEqual(count(m, "hand-over: serving \(m.mnt) again"), n, "hand-over \(n) did not finish: \(m.child.log.suffix(3000))",
                       file: file, line: line)
    }

    func testReadsWritesAndListingsContinueAcrossTwoHandovers() throws {
        _ = try startCluster()
        // --passthrough off: every read of the data file reaches the daemon (a passthrough
        // open would be served by the kernel alone and prove less).
        let m = try mount("m", extraArgs: ["--passthrough", "off"])
        let pid = m.child.process.processIdentifier

        var expected = [UInt8](repeating: 0, count: 8 << 20)
        for i in expected.indices { expected[i] = UInt8(truncatingIfNeeded: (i &* 2_654_435_761) >> 13) }
        let dataPath = m.mnt + "/data.bin"
        XCTAssertTrue(FileManager.default.createFile(atPath: dataPath, contents: Data(expected)))
        run("mkdir '\(m.mnt)/d' && for i in $(seq 1 40); do echo $i > '\(m.mnt)/d/f'$i; done")

        // A writer, a directory stream and two readers, all opened before the hand-over.
        let wfd = open(m.mnt + "/written.bin", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        XCTAssertGreaterThanOrEqual(wfd, 0)
        defer { if wfd >= 0 { close(wfd) } }
        let partA = [UInt8](repeating: 0x41, count: 1 << 20)
        XCTAssertEqual(partA.withUnsafeBytes { write(wfd, $0.baseAddress, $0.count) }, partA.count)

        guard let dir = opendir(m.mnt + "/d") else { return XCTFail("opendir: \(errno)") }
        defer { closedir(dir) }
        var names = Set<String>()
        func readEntries(_ n: Int) -> Int {
            var got = 0
            while got < n, let e = readdir(dir) {
                let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if name != "." && name != ".." { names.insert(name) }
                got += 1
            }
            return got
        }
        _ = readEntries(5)

        let stats = ReaderStats()
        let chunk = 128 << 10
        let expectedCopy = expected
        var threads: [Thread] = []
        var fds: [Int32] = []
        for _ in 0..<2 {
            let fd = open(dataPath, O_RDONLY)
            XCTAssertGreaterThanOrEqual(fd, 0)
            fds.append(fd)
            let t = Thread {
                var buf = [UInt8](repeating: 0, count: chunk)
                while !stats.stopped {
                    _ = posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_DONTNEED))
                    var off = 0
                    while off < expectedCopy.count && !stats.stopped {
                        let t0 = Date()
                        let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, chunk, off_t(off)) }
                        let dt = Date().timeIntervalSince(t0)
                        if n <= 0 {
                            let e = errno
                            stats.record { $0.errors.append("pread at \(off): \(n) errno \(e)") }
                            break
                        }
                        let ok = buf[0..<n].elementsEqual(expectedCopy[off..<(off + n)])
                        stats.record { s in
                            s.reads += 1
                            s.maxLatency = max(s.maxLatency, dt)
                            if !ok { s.errors.append("wrong bytes at \(off)") }
                        }
                        off += n
                    }
                }
            }
            t.start()
            threads.append(t)
        }
        defer { for fd in fds { close(fd) } }

        func reads() -> Int { stats.lock.withLock { stats.reads } }
        /// Waits (bounded) until the readers completed `n` more reads.
        func readsGo(on n: Int, _ what: String) {
            let start = reads(), deadline = Date().addingTimeInterval(20)
            while reads() < start + n && Date() < deadline { usleep(10_000) }
            XCTAssertGreaterThanOrEqual(reads(), start + n, "readers stalled \(what)")
        }
        readsGo(on: 20, "before the hand-over")
        let r0 = reads()
        handOver(m, expectServed: 1)
        _ = readEntries(10)
        readsGo(on: 20, "after the first hand-over")
        let r1 = reads()
        handOver(m, expectServed: 2)
        readsGo(on: 20, "after the second hand-over")
        print("handover: reads before/after 1st/after 2nd: \(r0) / \(r1) / \(reads())")
        stats.record { $0.stop = true }
        while threads.contains(where: { $0.isExecuting }) { usleep(10_000) }

        let (errors, reads, worst) = stats.lock.withLock { (stats.errors, stats.reads, stats.maxLatency) }
        XCTAssertEqual(errors, [], "readers failed across the hand-over")
        XCTAssertLessThan(worst, 10, "a read waited \(worst) s during a hand-over")
        print("handover: \(reads) reads of 128 KiB across 2 hand-overs, worst read latency \(String(format: "%.3f", worst)) s")

        // Same process (exec in place), state file gone, same mount.
        XCTAssertTrue(m.child.process.isRunning)
        XCTAssertEqual(m.child.process.processIdentifier, pid)
        XCTAssertFalse(FileManager.default.fileExists(atPath: stateFile(pid: pid)))
        XCTAssertEqual(count(m, "re-executing"), 2)

        // The directory stream resumes where it was.
        _ = readEntries(1000)
        XCTAssertEqual(names, Set((1...40).map { "f\($0)" }))

        // The writer goes on; the file holds both parts after close.
        let partB = [UInt8](repeating: 0x42, count: 1 << 20)
        XCTAssertEqual(partB.withUnsafeBytes { write(wfd, $0.baseAddress, $0.count) }, partB.count)
        XCTAssertEqual(close(wfd), 0)
        let written = FileManager.default.contents(atPath: m.mnt + "/written.bin").map { [UInt8]($0) }
        XCTAssertEqual(written?.count, 2 << 20)
        XCTAssertTrue(written.map { $0 == partA + partB } ?? false, "written.bin lost data across the hand-over")

        // New work on the mount, then a clean SIGTERM unmount.
        run("echo fresh > '\(m.mnt)/new.txt' && test \"$(cat '\(m.mnt)/new.txt')\" = fresh && ls '\(m.mnt)' | grep -q data.bin")
        XCTAssertEqual(m.stop(), 0)
        XCTAssertFalse(isMounted(m.mnt))
    }

    func testLocksStayHeldAcrossHandover() throws {
        _ = try startCluster()
        let a = try mount("a")
        let b = try mount("b")
        run("echo x > '\(a.mnt)/lock'")
        // flock held by a process on mount a across the hand-over; mount b must still see it.
        // One process holds it (flock(1) would pass the fd to a child that outlives a kill).
        let holder = try BackgroundCommand("/bin/sh", ["-c", "exec 9<'\(a.mnt)/lock'; flock -x 9; exec sleep 60"])
        defer { holder.kill() }
        var held = false
        for _ in 0..<100 where !held {
            held = sh("flock -n -x '\(b.mnt)/lock' true").status != 0
            if !held { usleep(50_000) }
        }
        XCTAssertTrue(held, "the flock never showed on the other mount")
        handOver(a, expectServed: 1)
        XCTAssertNotEqual(sh("flock -n -x '\(b.mnt)/lock' true").status, 0, "the lock was lost in the hand-over")
        holder.kill()
        var freed = false
        for _ in 0..<100 where !freed {
            freed = sh("flock -n -x '\(b.mnt)/lock' true").status == 0
            if !freed { usleep(50_000) }
        }
        XCTAssertTrue(freed, "the lock was not released after the holder exited on the new image")
    }

    func testFailedExecKeepsServing() throws {
        _ = try startCluster()
        // Run a copy of the binary and delete it: the re-exec fails with ENOENT.
        let exe = tmp + "/curvine-fuse-copy"
        try FileManager.default.copyItem(atPath: binary("curvine-fuse"), toPath: exe)
        let m = try mount("m", exe: exe)
        run("echo before > '\(m.mnt)/f'")
        let fd = open(m.mnt + "/f", O_RDONLY)
        defer { if fd >= 0 { close(fd) } }
        try FileManager.default.removeItem(atPath: exe)
        kill(m.child.process.processIdentifier, SIGUSR1)
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline && count(m, "this image serves on") == 0 { usleep(20_000) }
        XCTAssertEqual(count(m, "this image serves on"), 1, m.child.log.suffix(2000).description)
        var buf = [UInt8](repeating: 0, count: 16)
        XCTAssertEqual(buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 16, 0) }, 7)
        run("echo after > '\(m.mnt)/g' && cat '\(m.mnt)/f' '\(m.mnt)/g'")
        XCTAssertFalse(FileManager.default.fileExists(atPath: stateFile(pid: m.child.process.processIdentifier)))
        XCTAssertEqual(m.stop(), 0)
        XCTAssertFalse(isMounted(m.mnt))
    }

    /// --mnt-number 2: one process, two sessions, both handed over (and a SIGUSR2 wake-up
    /// of one session's workers must not kill the process while the other is paused).
    func testTwoMountsOfOneProcessAreBothHandedOver() throws {
        let c = try startCluster()
        let base = tmp + "/multi"
        let mnts = [base + "/mnt-0", base + "/mnt-1"]
        let child = try Child(binary("curvine-fuse"), ["--mnt-path", base, "--mnt-number", "2", "--master-addrs", c.master,
                                                      "--web-port", "0"], log: tmp + "/multi.log")
        defer {
            child.stop(grace: 5)
            for m in mnts where isMounted(m) { sh("umount -l '\(m)'", timeout: 10) }
        }
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline && !mnts.allSatisfy(isMounted) && child.process.isRunning { usleep(50_000) }
        XCTAssertTrue(mnts.allSatisfy(isMounted), child.log)
        run("echo zero > '\(mnts[0])/a' && echo one > '\(mnts[1])/b'")
        let fd0 = open(mnts[0] + "/a", O_RDONLY), fd1 = open(mnts[1] + "/b", O_RDONLY)
        defer { close(fd0); close(fd1) }
        kill(child.process.processIdentifier, SIGUSR1)
        let until = Date().addingTimeInterval(20)
        while Date() < until && child.log.components(separatedBy: "hand-over: serving").count - 1 < 2 && child.process.isRunning {
            usleep(20_000)
        }
        XCTAssertTrue(child.process.isRunning, child.log)
        XCTAssertEqual(child.log.components(separatedBy: "hand-over: serving").count - 1, 2, child.log)
        var buf = [UInt8](repeating: 0, count: 8)
        XCTAssertEqual(buf.withUnsafeMutableBytes { pread(fd0, $0.baseAddress, 8, 0) }, 5)
        XCTAssertEqual(buf.withUnsafeMutableBytes { pread(fd1, $0.baseAddress, 8, 0) }, 4)
        XCTAssertEqual(child.stop(grace: 5), 0)
        XCTAssertFalse(mnts.contains(where: isMounted))
    }

    func testUnusableStateStartsAfresh() throws {
        _ = try startCluster()
        let bad = tmp + "/bad-state.data"
        try Data("not json".utf8).write(to: URL(fileURLWithPath: bad))
        let m = try mount("m", env: ["CURVINE_FUSE_STATE_PATH": bad])
        run("echo ok > '\(m.mnt)/f' && cat '\(m.mnt)/f'")
        XCTAssertTrue(m.child.log.contains("starting afresh"), m.child.log)
        XCTAssertFalse(FileManager.default.fileExists(atPath: bad), "the state file should be consumed")
        XCTAssertEqual(m.stop(), 0)
    }
}
