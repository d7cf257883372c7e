// Real mounts over the embedded cluster: the everyday workload of a dataset mount.
import Foundation
import XCTest
import CurvineTestHarness
#if canImport(Glibc)
import Glibc
#endif

final class MountWorkloadTests: MountTestCase {
    /// A config with 16 MiB blocks so that a 64 MiB file spans several blocks.
    func smallBlockConf() throws -> String {
        let p = tmp + "/small-blocks.toml"
        try """
        [client]
        block_size = "16MB"
        write_chunk_size = "128KB"
        read_chunk_size = "128KB"
        """.write(toFile: p, atomically: true, encoding: .utf8)
        return p
    }

    func testShowsAsCurvinefsWithAllowOther() throws {
        _ = try startCluster()
        let m = try mount("mnt")
        let t = mountType(m.mnt) ?? ""
        XCTAssertTrue(t.hasPrefix("fuse.curvinefs "), t)
        XCTAssertTrue(t.contains("allow_other"), t)
    }

    func testEverydayWorkload() throws {
        _ = try startCluster()
        let m = try mount("mnt", conf: try smallBlockConf())
        let d = m.mnt
        let src = tmp + "/src"
        // Sizes straddle chunk (128 KiB) and block (16 MiB) boundaries; the largest is ≥ 64 MiB.
        run("""
        mkdir -p \(src) && cd \(src) &&
        head -c 67108865 /dev/urandom > big &&
        head -c 16777215 /dev/urandom > under_block &&
        head -c 16777217 /dev/urandom > over_block &&
        head -c 131073 /dev/urandom > chunk_plus &&
        printf 'hello curvine\\n' > small
        """, timeout: 120)
        run("mkdir -p \(d)/data/sub && ls \(d)/data | grep -qx sub")
        run("cp \(src)/* \(d)/data/", timeout: 300)
        run("cd \(src) && for f in *; do cmp $f \(d)/data/$f || exit 1; done", timeout: 300)
        run("cd \(src) && sha256sum * > /tmp/cvsum.$$ && cd \(d)/data && sha256sum -c --quiet /tmp/cvsum.$$; r=$?; rm -f /tmp/cvsum.$$; exit $r", timeout: 300)
        XCTAssertEqual(run("cat \(d)/data/small"), "hello curvine\n")
        XCTAssertEqual(run("stat -c %s \(d)/data/big").trimmingCharacters(in: .whitespacesAndNewlines), "67108865")
        // rename, symlink, truncate, chmod, utime, unlink, rmdir
        run("mv \(d)/data/small \(d)/data/sub/renamed && test ! -e \(d)/data/small && test -f \(d)/data/sub/renamed")
        run("ln -s sub/renamed \(d)/data/link && test \"$(readlink \(d)/data/link)\" = sub/renamed && cat \(d)/data/link | grep -q curvine")
        run("truncate -s 5 \(d)/data/sub/renamed && test \"$(cat \(d)/data/sub/renamed)\" = hello")
        run("truncate -s 1000 \(d)/data/sub/renamed && test $(stat -c %s \(d)/data/sub/renamed) = 1000 && test \"$(tail -c 995 \(d)/data/sub/renamed | tr -d '\\0' | wc -c)\" = 0")
        run("chmod 0600 \(d)/data/sub/renamed && test $(stat -c %a \(d)/data/sub/renamed) = 600")
        run("touch -m -d '2020-01-02 03:04:05 UTC' \(d)/data/sub/renamed && test $(stat -c %Y \(d)/data/sub/renamed) = 1577934245")
        run("rm \(d)/data/link \(d)/data/sub/renamed && test ! -e \(d)/data/sub/renamed")
        run("rmdir \(d)/data/sub && test ! -e \(d)/data/sub")
        // Overwrite in place and append.
        run("printf 'XYZ' | dd of=\(d)/data/chunk_plus bs=1 seek=131070 conv=notrunc status=none && test $(stat -c %s \(d)/data/chunk_plus) = 131073")
        run("printf 'tail' >> \(d)/data/chunk_plus && test $(stat -c %s \(d)/data/chunk_plus) = 131077 && test \"$(tail -c 7 \(d)/data/chunk_plus)\" = XYZtail")
    }

    func testErrorsSurfaceAsErrno() throws {
        _ = try startCluster()
        let m = try mount("mnt")
        let d = m.mnt
        let r = sh("ls \(d)/missing")
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("No such file or directory"), r.stderr)
        run("mkdir \(d)/a && touch \(d)/a/f")
        XCTAssertTrue(sh("mkdir \(d)/a").stderr.contains("File exists"))
        XCTAssertTrue(sh("rmdir \(d)/a").stderr.contains("Directory not empty"))
        XCTAssertTrue(sh("cat \(d)/a").stderr.contains("Is a directory"))
        XCTAssertTrue(sh("touch \(d)/a/f/x").stderr.contains("Not a directory"))
        XCTAssertTrue(sh("rm \(d)/nope").stderr.contains("No such file or directory"))
    }

    func testTwoMountsSeeEachOthersClosedFiles() throws {
        _ = try startCluster()
        let a = try mount("a")
        let b = try mount("b")
        run("head -c 3000000 /dev/urandom > \(tmp)/f && cp \(tmp)/f \(a.mnt)/shared")
        run("cmp \(tmp)/f \(b.mnt)/shared")
        run("echo from-b > \(b.mnt)/other")
        run("sleep 1.2; test \"$(cat \(a.mnt)/other)\" = from-b")
    }

    func testEightConcurrentReaders() throws {
        _ = try startCluster()
        let m = try mount("mnt", conf: try smallBlockConf())
        run("head -c 40000000 /dev/urandom > \(tmp)/f && cp \(tmp)/f \(m.mnt)/f", timeout: 120)
        run("echo 3 > /proc/sys/vm/drop_caches || true")
        run("for i in 1 2 3 4 5 6 7 8; do (cmp \(tmp)/f \(m.mnt)/f > \(tmp)/r$i 2>&1; echo $? >> \(tmp)/r$i) & done; wait; cat \(tmp)/r* | sort | uniq -c | grep -q ' 8 0$'", timeout: 300)
    }

    func testSigtermUnmountsAndExitsZero() throws {
        _ = try startCluster()
        let m = try mount("mnt")
        run("echo data > \(m.mnt)/kept")
        let start = Date()
        kill(m.child.process.processIdentifier, SIGTERM)
        while m.child.process.isRunning && Date().timeIntervalSince(start) < 5 { usleep(20_000) }
        XCTAssertFalse(m.child.process.isRunning, "daemon still running 5 s after SIGTERM")
        XCTAssertLessThan(Date().timeIntervalSince(start), 2.5, "unmount took longer than the 2 s Fluid allows")
        XCTAssertEqual(m.child.process.terminationStatus, 0)
        XCTAssertFalse(isMounted(m.mnt))
        let again = try mount("mnt2")
        XCTAssertEqual(run("cat \(again.mnt)/kept"), "data\n")
    }
}
