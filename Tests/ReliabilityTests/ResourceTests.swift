// Bounded resources of the daemon (docs/CONFIGURATION.md, "Resource bounds"): 1,000
// open files, 64 concurrent readers and a 10,000-entry directory (100,000 with
// CURVINE_LONG=1), with its RSS (/proc/<pid>/status VmRSS), descriptors (/proc/<pid>/fd)
// and threads sampled while the load runs. The daemon runs with the common soft limit of
// 1,024 descriptors (hard limit unchanged), as under systemd or a container default.
import Foundation
import XCTest
import CurvineTestHarness
#if canImport(Glibc)
import Glibc
#endif

/// Samples a process's RSS, fd and thread counts in the background; keeps the peaks.
final class Sampler: @unchecked Sendable {
    private let lock = NSLock()
    private var running = true
    private(set) var peakRssKiB = 0
    private(set) var peakFds = 0
    private(set) var peakThreads = 0
    private let done = DispatchSemaphore(value: 0)

    init(pid: pid_t) {
        let t = Thread { [self] in
            while lock.withLock({ running }) {
                let r = rssKiB(pid) ?? 0, f = fdCount(pid) ?? 0, th = threadCount(pid) ?? 0
                lock.withLock {
                    peakRssKiB = max(peakRssKiB, r); peakFds = max(peakFds, f); peakThreads = max(peakThreads, th)
                }
                usleep(20_000)
            }
            done.signal()
        }
        t.start()
    }

    func stop() -> (rssMiB: Double, fds: Int, threads: Int) {
        lock.withLock { running = false }
        done.wait()
        return lock.withLock { (Double(peakRssKiB) / 1024, peakFds, peakThreads) }
    }
}

/// The documented bounds (CONFIGURATION.md "Resource bounds"), for the test's settings.
enum Bounds {
    /// RSS of an idle mount.
    static let idleRssMiB = 64.0
    /// RSS under any of the loads below.
    static let loadRssMiB = 512.0
    /// Descriptors: fixed ones + 1 per open file handle + streams/connections.
    /// A handle that writes and reads holds a worker connection and a block file for each
    /// direction: up to 4 per open file.
    static func fds(openFiles: Int) -> Int { 128 + 4 * openFiles }
    static let threads = 160
}

let openManyScript = #"""
import os, sys, time
d, n, ready, go = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
fds = []
t0 = time.time()
for i in range(n):
    fd = os.open(os.path.join(d, "f%04d" % i), os.O_RDWR | os.O_CREAT, 0o644)
    os.write(fd, b"x" * 100)
    fds.append(fd)
t1 = time.time()
for fd in fds:
    assert os.pread(fd, 100, 0) == b"x" * 100
t2 = time.time()
open(ready, "w").write("ok")
print("open+write %.1fs read %.1fs" % (t1 - t0, t2 - t1))
t = time.time() + 60
while not os.path.exists(go) and time.time() < t:
    time.sleep(0.02)
t3 = time.time()
for i, fd in enumerate(fds):
    os.close(fd)
# every file was closed with its data
for i in range(0, n, 37):
    assert open(os.path.join(d, "f%04d" % i), "rb").read() == b"x" * 100
print("held=%d close %.1fs" % (n, time.time() - t3))
"""#

let readersScript = #"""
import hashlib, os, sys, threading
d, n, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
want = {}
for i in range(files):
    want[i] = open(os.path.join(d, "sum%d" % i)).read().strip()
errors = []
def reader(t):
    try:
        for rep in range(2):
            h = hashlib.sha256()
            with open(os.path.join(d, "r%d" % ((t + rep) % files)), "rb") as f:
                while True:
                    b = f.read(1 << 20)
                    if not b: break
                    h.update(b)
            if h.hexdigest() != want[(t + rep) % files]:
                errors.append("reader %d: content differs" % t)
    except OSError as e:
        errors.append("reader %d: %s" % (t, e))
ts = [threading.Thread(target=reader, args=(i,)) for i in range(n)]
for t in ts: t.start()
for t in ts: t.join()
print("readers=%d errors=%d %s" % (n, len(errors), errors[:3]))
sys.exit(1 if errors else 0)
"""#

let bigDirScript = #"""
import os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
t0 = time.time()
for i in range(n):
    os.close(os.open(os.path.join(d, "e%06d" % i), os.O_WRONLY | os.O_CREAT, 0o644))
t1 = time.time()
names = set()
count = 0
with os.scandir(d) as it:
    for e in it:
        names.add(e.name)
        count += 1
        e.stat(follow_symlinks=False)
t2 = time.time()
assert count == n and len(names) == n, (count, len(names))
print("entries=%d create=%.1fs list+stat=%.1fs" % (n, t1 - t0, t2 - t1))
"""#

final class ResourceTests: MountTestCase {
    /// Starts a mount whose daemon has a soft descriptor limit of 1,024.
    func lowLimitMount() throws -> MountProcess {
        try startCluster()
        let conf = writeConf()
        return try mount("mnt", conf: conf, prefix: ["/usr/bin/prlimit", "--nofile=1024:20000", "--"])
    }

    func idleFigures(_ m: MountProcess) -> String {
        let r = Double(rssKiB(m.pid) ?? 0) / 1024
        XCTAssertLessThanOrEqual(r, Bounds.idleRssMiB, "idle RSS")
        return String(format: "idle RSS %.1f MiB, %d fds, %d threads", r, fdCount(m.pid) ?? -1, threadCount(m.pid) ?? -1)
    }

    func testThousandOpenFiles() throws {
        let m = try lowLimitMount()
        let idle = idleFigures(m)
        run("mkdir \(m.mnt)/many")
        let ready = tmp + "/ready", go = tmp + "/go"
        let s = Sampler(pid: m.pid)
        let p = tmp + "/open.py"
        _ = FileManager.default.createFile(atPath: p, contents: Data(openManyScript.utf8))
        let child = try Child("/usr/bin/timeout", ["-k", "5", "120", "python3", p, m.mnt + "/many", "1000", ready, go],
                              log: tmp + "/open.log")
        let deadline = Date().addingTimeInterval(100)
        while !FileManager.default.fileExists(atPath: ready) && child.process.isRunning && Date() < deadline { usleep(50_000) }
        let heldFds = fdCount(m.pid) ?? -1
        let heldRss = Double(rssKiB(m.pid) ?? 0) / 1024
        _ = FileManager.default.createFile(atPath: go, contents: nil)
        child.process.waitUntilExit()
        let peak = s.stop()
        XCTAssertEqual(child.process.terminationStatus, 0, child.log + m.child.log.suffix(3000))
        XCTAssertTrue(FileManager.default.fileExists(atPath: ready), "the 1,000 files were never all open: \(child.log)")
        XCTAssertLessThanOrEqual(peak.fds, Bounds.fds(openFiles: 1000))
        XCTAssertLessThanOrEqual(peak.rssMiB, Bounds.loadRssMiB)
        XCTAssertLessThanOrEqual(peak.threads, Bounds.threads)
        // RELEASE reaches the daemon after close returns: poll for the fds to go.
        var after = fdCount(m.pid) ?? -1
        let releaseDeadline = Date().addingTimeInterval(10)
        while after > Bounds.fds(openFiles: 0) && Date() < releaseDeadline {
            usleep(50_000)
            after = fdCount(m.pid) ?? -1
        }
        XCTAssertLessThanOrEqual(after, Bounds.fds(openFiles: 0), "descriptors not released after close")
        print(String(format: "resources: 1000 open files (%@): %@; held: %d fds, RSS %.1f MiB; peak %d fds, RSS %.1f MiB, %d threads; after close %d fds",
                     child.log.replacingOccurrences(of: "\n", with: " "), idle, heldFds, heldRss, peak.fds, peak.rssMiB, peak.threads, after))
    }

    func testSixtyFourConcurrentReaders() throws {
        let m = try lowLimitMount()
        let idle = idleFigures(m)
        let files = 8
        run("mkdir \(m.mnt)/r && for i in $(seq 0 \(files - 1)); do head -c 6M /dev/urandom > \(m.mnt)/r/r$i && sha256sum < \(m.mnt)/r/r$i | cut -d' ' -f1 > \(m.mnt)/r/sum$i; done", timeout: 120)
        // Drop the kernel's page cache of the mount so the reads reach the daemon.
        sh("sync; echo 1 > /proc/sys/vm/drop_caches", timeout: 20)
        let s = Sampler(pid: m.pid)
        let r = python(readersScript, [m.mnt + "/r", "64", String(files)], timeout: 180)
        let peak = s.stop()
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr + m.child.log.suffix(3000))
        XCTAssertLessThanOrEqual(peak.rssMiB, Bounds.loadRssMiB)
        XCTAssertLessThanOrEqual(peak.fds, Bounds.fds(openFiles: 64))
        XCTAssertLessThanOrEqual(peak.threads, Bounds.threads)
        print(String(format: "resources: 64 concurrent readers (%@): %@; peak %d fds, RSS %.1f MiB, %d threads",
                     r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), idle, peak.fds, peak.rssMiB, peak.threads))
    }

    func testLargeDirectory() throws {
        let n = RelEnv.long ? 100_000 : 10_000
        let m = try lowLimitMount()
        let idle = idleFigures(m)
        run("mkdir \(m.mnt)/big")
        let s = Sampler(pid: m.pid)
        let r = python(bigDirScript, [m.mnt + "/big", String(n)], timeout: RelEnv.long ? 1_800 : 240)
        // A second listing through ls (getdents) sees every entry once.
        let ls = sh("ls -f \(m.mnt)/big | grep -c '^e'", timeout: 240)
        let peak = s.stop()
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr + m.child.log.suffix(3000))
        XCTAssertEqual(ls.stdout.trimmingCharacters(in: .whitespacesAndNewlines), String(n))
        XCTAssertLessThanOrEqual(peak.rssMiB, Bounds.loadRssMiB)
        XCTAssertLessThanOrEqual(peak.fds, Bounds.fds(openFiles: 16))
        print(String(format: "resources: %d-entry directory (%@): %@; peak %d fds, RSS %.1f MiB, %d threads",
                     n, r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), idle, peak.fds, peak.rssMiB, peak.threads))
    }
}
