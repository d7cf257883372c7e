// Memory bound of a real mount (docs/CONFIGURATION.md, "Memory"): while a large file is
// written and streamed back, the daemon's resident set stays within
//     read_buffer_budget + write buffer budget + fixed overhead.
// The mount uses a small read budget (128 MiB) and no short-circuit (the cluster's
// worker is on this host; without it reads would be spliced from the block file and use
// no read buffers), so every byte goes through the prefetcher's pooled buffers. VmRSS of
// the daemon is sampled every 100 ms (per phase) and VmHWM gives the exact peak.
//
// Size: 2 GiB; 4 GiB with CURVINE_LONG=1; less (logged) when the disk holding the test
// directory cannot take it plus 1 GiB of room.
import Foundation
import XCTest
import CurvineTestHarness
#if canImport(Glibc)
import Glibc
#endif

/// Samples a process's VmRSS from /proc/<pid>/status.
final class RSSSampler: @unchecked Sendable {
    let pid: Int32
    private let lock = NSLock()
    private var phase = "start"
    private var peaks: [(String, Int)] = []  // phase -> peak kB, in order
    private var stopped = false
    private var done = false

    init(pid: Int32) { self.pid = pid }

    /// kB values of /proc/<pid>/status keys (VmRSS, VmHWM, RssAnon, ...).
    static func status(_ pid: Int32) -> [String: Int] {
        guard let t = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return [:] }
        var out: [String: Int] = [:]
        for l in t.split(separator: "\n") {
            let f = l.split(separator: ":", maxSplits: 1)
            guard f.count == 2 else { continue }
            let v = f[1].trimmingCharacters(in: .whitespaces)
            if v.hasSuffix(" kB"), let n = Int(v.dropLast(3)) { out[String(f[0])] = n }
            else if let n = Int(v) { out[String(f[0])] = n }
        }
        return out
    }

    func start() {
        let t = Thread { [self] in
            while true {
                let rss = Self.status(pid)["VmRSS"] ?? 0
                lock.lock()
                if stopped { done = true; lock.unlock(); return }
                if let last = peaks.last, last.0 == phase {
                    peaks[peaks.count - 1].1 = max(last.1, rss)
                } else {
                    peaks.append((phase, rss))
                }
                lock.unlock()
                usleep(100_000)
            }
        }
        t.start()
    }

    func enter(_ p: String) { lock.lock(); phase = p; lock.unlock() }

    /// Stops sampling; returns the peak VmRSS (kB) of each phase, in order.
    func stop() -> [(String, Int)] {
        lock.lock()
        stopped = true
        lock.unlock()
        while true {
            lock.lock()
            if done { let p = peaks; lock.unlock(); return p }
            lock.unlock()
            usleep(20_000)
        }
    }
}

final class MemoryTests: MountTestCase {
    static let readBudgetMiB = 128
    /// CoreConfig.writeBufferBudget (not a TOML key; the default).
    static let writeBudgetMiB = 256
    /// Fixed overhead, MiB: what the daemon holds besides the two buffer budgets. Measured
    /// (CONFIGURATION.md, "Memory"): ~25 MiB right after mount (binary, Swift runtime,
    /// libfuse, Foundation), plus what streaming adds besides pooled buffers — libfuse's
    /// 1 MiB + 4 KiB request buffer of each worker thread that received a WRITE (32 by
    /// default), demand-read scratch and first-unit buffers granted past the budget
    /// (forced, ≤ 1 MiB per request thread and per open file), thread stacks and malloc
    /// arenas. 150 MiB leaves room over the measured peak (docs), not over the budgets.
    static let fixedOverheadMiB = 150
    /// What reads may add past the read budget: buffers granted beyond it because a read
    /// must progress — a demand-read scratch buffer per request thread (≤ 1 MiB each,
    /// 32 threads) and the first unit ahead of each streaming handle (1 MiB, 4 here) —
    /// plus malloc arena slack.
    static let readSlackMiB = 48

    func testStreamingStaysWithinMemoryBudget() throws {
        _ = try startCluster()
        let long = ProcessInfo.processInfo.environment["CURVINE_LONG"] == "1"
        var sizeMiB = long ? 4096 : 2048
        var sv = statvfs()
        if statvfs(tmp, &sv) == 0 {
            let freeMiB = Int((UInt64(sv.f_bavail) * UInt64(sv.f_frsize)) >> 20)  // (>> binds tighter than *)
            if freeMiB - 1024 < sizeMiB {
                let scaled = max(0, (freeMiB - 1024) / 256 * 256)
                guard scaled >= 512 else { throw XCTSkip("only \(freeMiB) MiB free under \(tmp): need 1.5 GiB at least") }
                print("memory test: \(freeMiB) MiB free under \(tmp); streaming \(scaled) MiB instead of \(sizeMiB) MiB")
                sizeMiB = scaled
            }
        }
        let conf = tmp + "/memory.toml"
        try """
        [client]
        short_circuit = false
        [fuse]
        read_buffer_budget = "\(Self.readBudgetMiB)MB"
        passthrough = "off"
        """.write(toFile: conf, atomically: true, encoding: .utf8)
        let m = try mount("mnt", conf: conf)
        let pid = m.child.process.processIdentifier
        run("ls \(m.mnt) > /dev/null")
        usleep(500_000)
        let sampler = RSSSampler(pid: pid)
        sampler.start()
        sampler.enter("idle")
        usleep(300_000)

        sampler.enter("write")
        run("dd if=/dev/zero of=\(m.mnt)/big bs=1M count=\(sizeMiB) conv=fsync status=none", timeout: 1800)
        XCTAssertEqual(run("stat -c %s \(m.mnt)/big").trimmingCharacters(in: .whitespacesAndNewlines), "\(sizeMiB << 20)")

        // One sequential stream; content checked against /dev/zero.
        sh("echo 3 > /proc/sys/vm/drop_caches")
        let beforeReadMiB = (RSSSampler.status(pid)["VmRSS"] ?? 0) / 1024
        sampler.enter("read 1 stream")
        run("cmp -n \(sizeMiB << 20) \(m.mnt)/big /dev/zero", timeout: 1800)

        // Four concurrent streams over the four quarters: their windows together want
        // more than the budget, so the budget is what bounds them.
        sh("echo 3 > /proc/sys/vm/drop_caches")
        sampler.enter("read 4 streams")
        let q = sizeMiB / 4
        run("for i in 0 1 2 3; do dd if=\(m.mnt)/big of=/dev/null bs=1M skip=$((i * \(q))) count=\(q) status=none & done; wait",
            timeout: 1800)
        let peaks = sampler.stop()
        let st = RSSSampler.status(pid)
        let hwmMiB = (st["VmHWM"] ?? 0) / 1024
        let limitMiB = Self.readBudgetMiB + Self.writeBudgetMiB + Self.fixedOverheadMiB
        let report = peaks.map { "\($0.0): \($0.1 / 1024) MiB" }.joined(separator: ", ")
        print("memory test: \(sizeMiB) MiB file, read_buffer_budget \(Self.readBudgetMiB) MiB; peak VmRSS by phase: \(report); "
              + "VmHWM \(hwmMiB) MiB; now RssAnon \((st["RssAnon"] ?? 0) / 1024) MiB, RssFile \((st["RssFile"] ?? 0) / 1024) MiB; "
              + "threads \(st["Threads"] ?? 0); limit \(limitMiB) MiB")
        XCTAssertGreaterThan(hwmMiB, 0, "no VmHWM for pid \(pid)")
        XCTAssertLessThanOrEqual(hwmMiB, limitMiB,
                                 "peak RSS \(hwmMiB) MiB over read budget + write budget + fixed overhead (\(limitMiB) MiB); \(report)")
        // What streaming reads added on top of what the mount held before them: the read
        // budget, plus buffers forced past it.
        let readPeakMiB = (peaks.filter { $0.0.hasPrefix("read") }.map(\.1).max() ?? 0) / 1024
        print("memory test: reads added \(readPeakMiB - beforeReadMiB) MiB (from \(beforeReadMiB) MiB)")
        XCTAssertLessThanOrEqual(readPeakMiB - beforeReadMiB, Self.readBudgetMiB + Self.readSlackMiB,
                                 "streaming reads grew RSS from \(beforeReadMiB) to \(readPeakMiB) MiB; \(report)")
    }
}
