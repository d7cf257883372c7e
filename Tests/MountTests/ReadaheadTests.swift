// The mount's kernel readahead (Readahead.swift): the BDI's read_ahead_kb is written
// once the session serves — 512 KiB by default, [fuse] max_readahead_kb when set — and
// sequential reads then reach the daemon in READs of that size.
import Foundation
import XCTest
import CurvineTestHarness
#if canImport(Glibc)
import Glibc
#endif

final class ReadaheadTests: MountTestCase {
    /// /sys/class/bdi/<major:minor>/read_ahead_kb of the mount at `mnt` (from mountinfo).
    func bdiReadahead(_ mnt: String) -> Int? {
        guard let t = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return nil }
        for l in t.split(separator: "\n") {
            let f = l.split(separator: " ")
            if f.count > 4, f[4] == mnt {
                let s = try? String(contentsOfFile: "/sys/class/bdi/\(f[2])/read_ahead_kb", encoding: .utf8)
                return s.flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            }
        }
        return nil
    }

    /// Waits for the daemon's "readahead:" log line (written after INIT).
    func waitForReadaheadLog(_ m: MountProcess) -> String? {
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            if let l = m.child.log.split(separator: "\n").first(where: { $0.contains("readahead:") }) { return String(l) }
            _ = sh("ls \(m.mnt) > /dev/null", timeout: 10)
            usleep(50_000)
        }
        return nil
    }

    func testDefaultAndConfiguredReadahead() throws {
        _ = try startCluster()
        guard FileManager.default.isWritableFile(atPath: "/sys/class/bdi") || getuid() == 0 else {
            throw XCTSkip("needs a writable /sys")
        }
        let a = try mount("a")
        let line = waitForReadaheadLog(a)
        XCTAssertNotNil(line, a.child.log)
        if let l = line, l.contains("cannot set") { throw XCTSkip("read_ahead_kb not writable here: \(l)") }
        XCTAssertEqual(bdiReadahead(a.mnt), 512, line ?? "")

        let conf = tmp + "/ra.toml"
        try "[fuse]\nmax_readahead_kb = 2048\n".write(toFile: conf, atomically: true, encoding: .utf8)
        let b = try mount("b", conf: conf)
        let lineB = waitForReadaheadLog(b)
        XCTAssertNotNil(lineB, b.child.log)
        XCTAssertEqual(bdiReadahead(b.mnt), 2048, lineB ?? "")
        XCTAssertTrue(lineB?.contains("-> 2048 KiB") ?? false, lineB ?? "")
    }
}
