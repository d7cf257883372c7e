// Cluster-wide locks through the kernel: two curvine-fuse mounts (two clients) of one
// embedded cluster exclude each other with flock(1) and fcntl locks (python3), a
// blocked flock returns once the holder lets go, and killing a blocked waiter, or
// stopping the daemon under one, leaves nothing wedged.
import Foundation
import XCTest
import CurvineTestHarness
#if canImport(Glibc)
import Glibc
#endif

/// A background command (not under `timeout`, so signals reach it directly); always
/// killed at teardown.
final class BackgroundCommand {
    let process = Process()

    init(_ exe: String, _ args: [String]) throws {
        process.executableURL = URL(fileURLWithPath: exe)
        process.arguments = args
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    var pid: pid_t { process.processIdentifier }

    /// Waits up to `seconds` for the exit; true when it exited.
    func waitExit(_ seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        return !process.isRunning
    }

    func kill() {
        if process.isRunning { Glibc.kill(pid, SIGKILL) }
        _ = waitExit(10)
    }
}

final class LockMountTests: MountTestCase {
    var background: [BackgroundCommand] = []

    override func tearDown() {
        for b in background { b.kill() }  // first: a live lock holder keeps its mount busy
        background.removeAll()
        super.tearDown()
    }

    func spawn(_ exe: String, _ args: [String]) throws -> BackgroundCommand {
        let b = try BackgroundCommand(exe, args)
        background.append(b)
        return b
    }

    /// `sh -c script` in the background.
    func spawnShell(_ script: String) throws -> BackgroundCommand { try spawn("/bin/sh", ["-c", script]) }

    func touch(_ path: String) { XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: nil), path) }

    func waitFor(_ path: String, _ seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if FileManager.default.fileExists(atPath: path) { return true }
            usleep(20_000)
        }
        return FileManager.default.fileExists(atPath: path)
    }

    /// Exit status of `script`, retried until it is `want` (a flock is released by the
    /// kernel's RELEASE, which trails close(2)) or `seconds` pass.
    func status(of script: String, becomes want: Int32, within seconds: Double) -> Int32 {
        let deadline = Date().addingTimeInterval(seconds)
        var s = sh(script, timeout: 20).status
        while s != want && Date() < deadline {
            usleep(100_000)
            s = sh(script, timeout: 20).status
        }
        return s
    }

    func twoMounts() throws -> (String, String) {
        _ = try startCluster()
        let a = try mount("a")
        let b = try mount("b")
        run("echo data > '\(a.mnt)/f' && cat '\(b.mnt)/f' >/dev/null")
        return (a.mnt, b.mnt)
    }

    func testFlockExcludesAcrossMountsAndABlockedFlockReturnsAfterRelease() throws {
        let (a, b) = try twoMounts()
        let t = tmp
        // Mount A holds an exclusive flock until told to let go.
        let holder = try spawnShell("exec flock -n '\(a)/f' sh -c 'touch \(t)/held; until [ -e \(t)/release ]; do sleep 0.05; done'")
        XCTAssertTrue(waitFor("\(t)/held", 15), "holder did not get the lock")
        XCTAssertEqual(sh("flock -n '\(b)/f' true").status, 1, "mount B must not get the lock")
        XCTAssertEqual(sh("flock -n -s '\(b)/f' true").status, 1, "not even a shared one")
        XCTAssertEqual(sh("flock -n '\(a)/f' true").status, 1, "another process on mount A neither")

        // A blocking flock on B waits ...
        let waiter = try spawnShell("exec flock '\(b)/f' touch \(t)/gotB")
        XCTAssertFalse(waitFor("\(t)/gotB", 1.5), "blocked flock returned while A holds the lock")
        XCTAssertTrue(waiter.process.isRunning)
        // ... and returns once A lets go (a poll of at most 1 s after A's RELEASE).
        touch("\(t)/release")
        XCTAssertTrue(holder.waitExit(10))
        XCTAssertTrue(waitFor("\(t)/gotB", 10), "blocked flock did not return after release")
        XCTAssertTrue(waiter.waitExit(10))
        XCTAssertEqual(waiter.process.terminationStatus, 0)
        // Now free on both mounts.
        XCTAssertEqual(status(of: "flock -n '\(b)/f' true", becomes: 0, within: 5), 0)
        XCTAssertEqual(status(of: "flock -n '\(a)/f' true", becomes: 0, within: 5), 0)
    }

    /// More blocked waiters than FUSE worker threads, all on the holder's own mount: the
    /// holder's release must still be read (the loop adds a worker rather than let every
    /// one wait), and then every waiter gets the lock in turn.
    func testMoreWaitersThanWorkersDoNotStarveTheRelease() throws {
        _ = try startCluster()
        let m = try mount("a", extraArgs: ["--worker-threads", "2"])
        let t = tmp
        run("echo data > '\(m.mnt)/f'")
        let holder = try spawnShell("exec flock -n '\(m.mnt)/f' sh -c 'touch \(t)/held; until [ -e \(t)/release ]; do sleep 0.05; done'")
        XCTAssertTrue(waitFor("\(t)/held", 15), "holder did not get the lock")
        var waiters: [BackgroundCommand] = []
        for i in 0..<4 {
            waiters.append(try spawnShell("exec flock '\(m.mnt)/f' touch \(t)/got\(i)"))
        }
        // All four wait now (their first poll found the holder); on a loaded machine the
        // shells may take a while to get there, so poll for the loop's log line.
        let deadline = Date().addingTimeInterval(20)
        while !m.child.log.contains("workers wait for locks") && Date() < deadline { usleep(50_000) }
        XCTAssertTrue(m.child.log.contains("workers wait for locks"), "the loop should have added workers: \(m.child.log.suffix(1500))")
        // Another request on the mount is still served while the waiters wait.
        XCTAssertEqual(sh("ls '\(m.mnt)' >/dev/null", timeout: 10).status, 0, "the mount stopped answering")
        touch("\(t)/release")
        XCTAssertTrue(holder.waitExit(10), "the holder's close was not served")
        for i in 0..<4 {
            XCTAssertTrue(waitFor("\(t)/got\(i)", 30), "waiter \(i) never got the lock")
            XCTAssertTrue(waiters[i].waitExit(10))
        }
    }

    func testFcntlLocksExcludeAcrossMounts() throws {
        let (a, b) = try twoMounts()
        let t = tmp
        // Holder on A: a POSIX write lock on the whole file via lockf; closing a *second*
        // descriptor of the file drops it (POSIX close semantics, FLUSH with its lock owner).
        let holder = try spawn("/usr/bin/env", ["python3", "-c", """
            import fcntl, os, time
            fd = os.open('\(a)/f', os.O_RDWR)
            fcntl.lockf(fd, fcntl.LOCK_EX)
            open('\(t)/held', 'w').close()
            while not os.path.exists('\(t)/close-other'): time.sleep(0.05)
            os.close(os.open('\(a)/f', os.O_RDONLY))
            open('\(t)/closed', 'w').close()
            while not os.path.exists('\(t)/release'): time.sleep(0.05)
            """])
        XCTAssertTrue(waitFor("\(t)/held", 15), "holder did not get the lock")
        let probe = """
            import fcntl, os, struct, sys
            fd = os.open('\(b)/f', os.O_RDWR)
            r = fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack('hhqqi4x', fcntl.F_RDLCK, 0, 10, 5, 0))
            t, _, s, l, _ = struct.unpack('hhqqi4x', r)
            print(t, s, l)
            try:
                fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, 5, 10)
            except OSError:
                sys.exit(1)
            """
        let held = sh("python3 -c \"\(probe)\"")
        XCTAssertEqual(held.status, 1, "mount B got a lock A holds: \(held.stdout) \(held.stderr)")
        // F_GETLK on B reports A's lock: F_WRLCK (1) from 0 to EOF (l_len 0).
        XCTAssertEqual(held.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "1 0 0")
        touch("\(t)/close-other")
        XCTAssertTrue(waitFor("\(t)/closed", 10))
        // FLUSH is synchronous with close(2): B gets the lock at once.
        let free = sh("python3 -c \"\(probe)\"")
        XCTAssertEqual(free.status, 0, "\(free.stdout) \(free.stderr)")
        // F_GETLK answers F_UNLCK (2) and leaves the asked range as it was.
        XCTAssertEqual(free.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "2 10 5")
        touch("\(t)/release")
        XCTAssertTrue(holder.waitExit(10))
        XCTAssertEqual(holder.process.terminationStatus, 0)

        // Byte ranges: A locks [0, 10), B may lock [10, 20) but not [5, 15).
        let ranges = try spawn("/usr/bin/env", ["python3", "-c", """
            import fcntl, os, time
            fd = os.open('\(a)/f', os.O_RDWR)
            fcntl.lockf(fd, fcntl.LOCK_EX, 10, 0)
            open('\(t)/held2', 'w').close()
            while not os.path.exists('\(t)/release2'): time.sleep(0.05)
            """])
        XCTAssertTrue(waitFor("\(t)/held2", 15))
        let tryRange = { (start: Int, len: Int) -> Int32 in
            sh("python3 -c \"import fcntl, os, sys\nfd = os.open('\(b)/f', os.O_RDWR)\ntry: fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, \(len), \(start))\nexcept OSError: sys.exit(1)\"").status
        }
        XCTAssertEqual(tryRange(10, 10), 0)
        XCTAssertEqual(tryRange(5, 10), 1)
        touch("\(t)/release2")
        XCTAssertTrue(ranges.waitExit(10))
        XCTAssertEqual(tryRange(5, 10), 0)
    }

    func testKillingABlockedWaiterDoesNotWedgeTheMount() throws {
        let (a, b) = try twoMounts()
        let t = tmp
        // A holds a flock and a POSIX lock (separate lock spaces) on f.
        let holder = try spawn("/usr/bin/env", ["python3", "-c", """
            import fcntl, os, time
            fd = os.open('\(a)/f', os.O_RDWR)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            open('\(t)/held', 'w').close()
            while not os.path.exists('\(t)/release'): time.sleep(0.05)
            """])
        XCTAssertTrue(waitFor("\(t)/held", 15))
        for sig in [SIGINT, SIGKILL] {
            // The waiter is flock itself (no shell in between), so the signal hits the
            // process blocked in flock(2) on mount B; the kernel then sends FUSE_INTERRUPT.
            let waiter = try spawn("/usr/bin/flock", ["\(b)/f", "true"])
            XCTAssertFalse(waiter.waitExit(1.5), "flock returned while A holds the lock")
            let t0 = Date()
            kill(waiter.pid, sig)
            XCTAssertTrue(waiter.waitExit(5), "signal \(sig) did not end the blocked flock")
            XCTAssertLessThan(Date().timeIntervalSince(t0), 3)
            XCTAssertEqual(waiter.process.terminationReason, .uncaughtSignal)
        }
        // A POSIX waiter too (F_SETLKW via lockf), killed with SIGTERM.
        let posix = try spawn("/usr/bin/env", ["python3", "-c", """
            import fcntl, os
            fd = os.open('\(b)/f', os.O_RDWR)
            fcntl.lockf(fd, fcntl.LOCK_EX)
            """])
        XCTAssertFalse(posix.waitExit(1.5))
        kill(posix.pid, SIGTERM)
        XCTAssertTrue(posix.waitExit(5), "SIGTERM did not end the blocked lockf")

        // Mount B still answers, the lock is still A's, and B gets it once A lets go.
        run("ls '\(b)' >/dev/null && cat '\(b)/f' >/dev/null && echo more >> '\(b)/g' && cat '\(b)/g'", timeout: 20)
        XCTAssertEqual(sh("flock -n '\(b)/f' true").status, 1)
        touch("\(t)/release")
        XCTAssertTrue(holder.waitExit(10))
        XCTAssertEqual(status(of: "flock -n '\(b)/f' true", becomes: 0, within: 5), 0)
        XCTAssertEqual(status(of: "flock -n '\(a)/f' true", becomes: 0, within: 5), 0)
    }

    func testStoppingTheDaemonEndsABlockedWaiter() throws {
        _ = try startCluster()
        let a = try mount("a")
        let b = try mount("b")
        run("echo data > '\(a.mnt)/f' && cat '\(b.mnt)/f' >/dev/null")
        let t = tmp
        let holder = try spawnShell("exec flock -n '\(a.mnt)/f' sh -c 'touch \(t)/held; until [ -e \(t)/release ]; do sleep 0.05; done'")
        XCTAssertTrue(waitFor("\(t)/held", 15))
        let waiter = try spawn("/usr/bin/flock", ["\(b.mnt)/f", "true"])
        XCTAssertFalse(waiter.waitExit(1.5))
        // SIGTERM to mount B's daemon: its worker must not stay in the wait loop.
        let t0 = Date()
        kill(b.child.process.processIdentifier, SIGTERM)
        XCTAssertTrue(waiter.waitExit(5), "the blocked flock outlived its daemon")
        XCTAssertNotEqual(waiter.process.terminationStatus, 0)
        let deadline = Date().addingTimeInterval(5)
        while b.child.process.isRunning && Date() < deadline { usleep(20_000) }
        XCTAssertFalse(b.child.process.isRunning, "daemon B did not exit: \(b.child.log.suffix(2000))")
        XCTAssertLessThan(Date().timeIntervalSince(t0), 5)
        b.stop()
        XCTAssertFalse(isMounted(b.mnt))
        // Mount A is unaffected.
        XCTAssertEqual(sh("flock -n '\(a.mnt)/f' true").status, 1)
        touch("\(t)/release")
        XCTAssertTrue(holder.waitExit(10))
        XCTAssertEqual(status(of: "flock -n '\(a.mnt)/f' true", becomes: 0, within: 5), 0)
    }
}
