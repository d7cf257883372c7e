// Mount-level lifecycle: SIGTERM during heavy reads and writes unmounts within 2 s and
// loses no closed file; kill -9 leaves a dead mount that the next start removes by
// itself; a frozen cluster makes syscalls fail within the retry budget, not hang.
import Foundation
import XCTest
import CurvineTestHarness
#if canImport(Glibc)
import Glibc
#endif

/// Writers and readers working through a directory fd (so nothing lands in the
/// underlying directory once the mount is gone). Every file whose close() returned 0 is
/// logged with its SHA-256 before the next one starts.
let heavyIOScript = #"""
import hashlib, os, random, sys, threading, time
mnt, log_path, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
d = os.open(os.path.join(mnt, "work"), os.O_RDONLY | os.O_DIRECTORY)
log = open(log_path, "a")
lock = threading.Lock()
stop = time.time() + seconds
counts = {"closed": 0, "read_bytes": 0, "errors": 0}

def writer(t):
    i = 0
    rnd = random.Random(t)
    while time.time() < stop:
        name = "w%d-%d" % (t, i)
        data = rnd.randbytes(rnd.randint(1, 3 << 20))
        try:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=d)
            try:
                off = 0
                while off < len(data):
                    off += os.write(fd, data[off:off + (256 << 10)])
            finally:
                os.close(fd)
        except OSError as e:
            with lock:
                counts["errors"] += 1
            if e.errno in (107, 103, 19, 5, 2):  # ENOTCONN, ECONNABORTED, ENODEV, EIO, ENOENT: mount gone
                return
            continue
        with lock:
            log.write("%s %d %s\n" % (name, len(data), hashlib.sha256(data).hexdigest()))
            log.flush()
            os.fsync(log.fileno())
            counts["closed"] += 1
        i += 1

def reader(t):
    while time.time() < stop:
        try:
            fd = os.open("big", os.O_RDONLY, dir_fd=d)
            try:
                while True:
                    b = os.read(fd, 1 << 20)
                    if not b:
                        break
                    with lock:
                        counts["read_bytes"] += len(b)
            finally:
                os.close(fd)
        except OSError:
            with lock:
                counts["errors"] += 1
            return

ts = [threading.Thread(target=writer, args=(i,)) for i in range(4)] + [threading.Thread(target=reader, args=(i,)) for i in range(4)]
for t in ts: t.start()
for t in ts: t.join()
print("closed=%d read_bytes=%d errors=%d" % (counts["closed"], counts["read_bytes"], counts["errors"]))
"""#

/// Checks every logged file on a mount: size and SHA-256.
let verifyLogScript = #"""
import hashlib, os, sys
mnt, log_path = sys.argv[1], sys.argv[2]
bad = 0
n = 0
for line in open(log_path):
    name, size, digest = line.split()
    n += 1
    p = os.path.join(mnt, "work", name)
    try:
        data = open(p, "rb").read()
    except OSError as e:
        print("LOST %s: %s" % (name, e)); bad += 1; continue
    if len(data) != int(size) or hashlib.sha256(data).hexdigest() != digest:
        print("CORRUPT %s: %d bytes, want %s" % (name, len(data), size)); bad += 1
print("verified=%d bad=%d" % (n, bad))
sys.exit(1 if bad else 0)
"""#

final class ShutdownTests: MountTestCase {
    /// A background python3 under `timeout`.
    func spawnPython(_ script: String, _ args: [String], timeout: Int) throws -> Child {
        let p = tmp + "/bg-\(UInt32.random(in: 0...UInt32.max)).py"
        _ = FileManager.default.createFile(atPath: p, contents: Data(script.utf8))
        return try Child("/usr/bin/timeout", ["-k", "5", String(timeout), "python3", p] + args, log: p + ".log")
    }

    func testSigtermDuringHeavyReadsAndWritesUnmountsInTwoSecondsAndKeepsClosedFiles() throws {
        try startCluster()
        let conf = writeConf()
        let m = try mount("mnt", conf: conf)
        run("mkdir \(m.mnt)/work && head -c 24M /dev/urandom > \(m.mnt)/work/big", timeout: 60)
        let log = tmp + "/closed.log"
        let load = try spawnPython(heavyIOScript, [m.mnt, log, "20"], timeout: 40)
        // Let it get going: some closed files and reads in flight.
        let warm = Date().addingTimeInterval(15)
        while Date() < warm {
            if let t = try? String(contentsOfFile: log, encoding: .utf8), t.split(separator: "\n").count >= 8 { break }
            usleep(50_000)
        }
        let start = Date()
        kill(m.pid, SIGTERM)
        var unmountedAt: Double?
        while Date().timeIntervalSince(start) < 10 {
            if unmountedAt == nil && !isMounted(m.mnt) { unmountedAt = Date().timeIntervalSince(start) }
            if unmountedAt != nil && !m.child.process.isRunning { break }
            usleep(5_000)
        }
        let exitedAt = Date().timeIntervalSince(start)
        XCTAssertFalse(m.child.process.isRunning, "daemon still running \(exitedAt) s after SIGTERM")
        XCTAssertNotNil(unmountedAt, "mount still there after SIGTERM")
        XCTAssertLessThanOrEqual(unmountedAt ?? 99, 2.0, "unmount took longer than 2 s")
        XCTAssertLessThanOrEqual(exitedAt, 2.0, "daemon exit took longer than 2 s")
        XCTAssertEqual(m.child.process.terminationStatus, 0, m.child.log.suffix(2000).description)
        // No dead mount: the directory is an ordinary directory again.
        XCTAssertFalse(isMounted(m.mnt))
        XCTAssertEqual(sh("stat -t '\(m.mnt)' >/dev/null").status, 0)
        load.process.waitUntilExit()
        let loadOut = load.log.trimmingCharacters(in: .whitespacesAndNewlines)
        // Every file whose close() returned 0 is there, byte for byte, on a fresh mount.
        let again = try mount("mnt2", conf: conf)
        let r = python(verifyLogScript, [again.mnt, log], timeout: 120)
        XCTAssertEqual(r.status, 0, r.stdout.suffix(3000).description + r.stderr.suffix(2000))
        print("shutdown: SIGTERM under load (\(loadOut)): unmounted after \(String(format: "%.3f", unmountedAt ?? -1)) s, daemon exited after \(String(format: "%.3f", exitedAt)) s; \(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) closed files checked on a new mount")
    }

    func testKillMinus9LeavesADeadMountThatTheNextStartCleansUp() throws {
        try startCluster()
        let conf = writeConf()
        let m = try mount("mnt", conf: conf)
        run("echo survives > \(m.mnt)/kept")
        kill(m.pid, SIGKILL)
        m.child.process.waitUntilExit()
        XCTAssertTrue(isMounted(m.mnt), "kill -9 should leave the mount behind (nothing can unmount it)")
        let dead = sh("stat '\(m.mnt)' 2>&1", timeout: 10)
        XCTAssertNotEqual(dead.status, 0)
        XCTAssertTrue(dead.stdout.contains("Transport endpoint is not connected"), dead.stdout)
        // The next daemon on the same path removes the dead mount by itself.
        let start = Date()
        let next = try mount("mnt", conf: conf)
        let took = Date().timeIntervalSince(start)
        XCTAssertEqual(run("cat \(next.mnt)/kept"), "survives\n")
        let entries = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8))?
            .split(separator: "\n").filter { $0.split(separator: " ")[1] == next.mnt }.count
        XCTAssertEqual(entries, 1, "exactly one mount at \(next.mnt)")
        XCTAssertTrue(next.child.log.contains("dead mount"), next.child.log)
        print("shutdown: kill -9 left a dead mount; the next start cleaned it up and mounted in \(String(format: "%.2f", took)) s")
    }

    func testFrozenClusterFailsSyscallsWithinTheBudgetThenServes() throws {
        let c = try startCluster()
        let conf = writeConf(budgetMs: 3_000, rpcMs: 1_000)
        let m = try mount("mnt", conf: conf)
        run("echo x > \(m.mnt)/a && cat \(m.mnt)/a >/dev/null")
        kill(c.child.pid, SIGSTOP)
        defer { kill(c.child.pid, SIGCONT) }
        let start = Date()
        let r = sh("ls \(m.mnt)/never-seen 2>&1; mkdir \(m.mnt)/d 2>&1", timeout: 30)
        let took = Date().timeIntervalSince(start)
        XCTAssertTrue(r.stdout.contains("Input/output error") || r.stdout.contains("timed out"), r.stdout)
        // Two syscalls, each bounded by max(budget, rpc) = 3 s.
        XCTAssertLessThanOrEqual(took, 2 * Timeouts.callBound, "syscalls on a frozen cluster took \(took) s")
        kill(c.child.pid, SIGCONT)
        let back = Date()
        run("mkdir -p \(m.mnt)/d2 && echo y > \(m.mnt)/d2/b && cat \(m.mnt)/d2/b", timeout: 30)
        print("shutdown: frozen cluster (SIGSTOP): ls + mkdir failed with a clear errno in \(String(format: "%.2f", took)) s (\(r.stdout.split(separator: "\n").map { $0.split(separator: ":").last ?? "" }.joined(separator: ","))); served again \(String(format: "%.2f", Date().timeIntervalSince(back))) s after SIGCONT")
    }
}
