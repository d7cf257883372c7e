// Kernel FUSE passthrough on a real mount (docs/SEMANTICS.md, "Kernel passthrough").
//
// How a test knows which path served a file: with --debug the daemon logs one line per
// OPEN with its decision ("OPEN ino=N fh=F: passthrough (backing id K)" or
// "... normal reads: <why>") and one line per READ it serves ("READ ino=N fh=..."). A
// passthrough file must have no READ line at all. One test also stops the daemon
// (SIGSTOP) and reads an already open passthrough file: the kernel answers without it.
//
// Needs a kernel with FUSE passthrough (Linux >= 6.9, CONFIG_FUSE_PASSTHROUGH) and
// root; on other kernels the tests that need it are skipped (the "no kernel support"
// test runs everywhere). Binaries come from $CURVINE_BIN_DIR (e.g. .build-pt/debug)
// or .build/debug.
import Foundation
import XCTest
import CurvineTestHarness
#if canImport(Glibc)
import Glibc
#endif

final class PassthroughTests: MountTestCase {
    /// Long kernel attribute/entry TTLs: a GETATTR (e.g. from fstat after the TTL) would
    /// otherwise reach the daemon while it is stopped.
    let quietKernel = ["--debug", "--attr-timeout-ms", "600000", "--entry-timeout-ms", "600000"]

    // MARK: helpers

    func inode(_ path: String) -> String {
        run("stat -c %i '\(path)'").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// READ requests the daemon served for `ino` (one debug line each).
    func servedReads(_ m: MountProcess, _ ino: String) -> Int {
        m.child.log.split(separator: "\n").filter { $0.contains("READ ino=\(ino) fh=") }.count
    }

    /// The daemon's OPEN decisions for `ino`, oldest first.
    func openDecisions(_ m: MountProcess, _ ino: String) -> [String] {
        m.child.log.split(separator: "\n").filter { $0.contains("OPEN ino=\(ino) fh=") }.map(String.init)
    }

    func backingId(_ line: String) -> String? {
        guard let r = line.range(of: "passthrough (backing id ") else { return nil }
        return String(line[r.upperBound...].prefix { $0.isNumber })
    }

    /// Reads `path` until an open of it is a passthrough open (the file completes when
    /// the writer's RELEASE has been processed, which trails close(2)).
    @discardableResult
    func waitForPassthrough(_ m: MountProcess, _ path: String, file: StaticString = #filePath, line: UInt = #line) -> Bool {
        let ino = inode(path)
        for _ in 0..<50 {
            run("cat '\(path)' > /dev/null", file: file, line: line)
            if let last = openDecisions(m, ino).last, backingId(last) != nil { return true }
            usleep(100_000)
        }
        XCTFail("\(path) never got a passthrough open: \(openDecisions(m, ino).suffix(3))", file: file, line: line)
        return false
    }

    /// The INIT decision line ("cvshim: passthrough: on|off: ..."): logged before the INIT
    /// reply is written, and any request on the mount waits for that reply.
    func initLog(_ m: MountProcess) -> String {
        run("stat '\(m.mnt)' > /dev/null")
        return m.child.log
    }

    /// Skips when this kernel (or this process) cannot do passthrough.
    func requirePassthrough(_ m: MountProcess) throws {
        let log = initLog(m)
        if log.contains("passthrough: off: the kernel does not offer FUSE_PASSTHROUGH") {
            throw XCTSkip("this kernel has no FUSE passthrough (needs Linux >= 6.9 with CONFIG_FUSE_PASSTHROUGH)")
        }
        if log.contains("passthrough: off: no CAP_SYS_ADMIN") { throw XCTSkip("no CAP_SYS_ADMIN") }
        XCTAssertTrue(log.contains("passthrough: on"), "INIT log: \(log.suffix(3000))")
    }

    /// Waits for the master to report `path` (a Curvine path) complete.
    func waitComplete(_ path: String) {
        let cv = binary("cv")
        run("for i in $(seq 100); do '\(cv)' stat --master-addrs \(cluster!.master) '\(path)' | grep -q 'complete: true' && exit 0; sleep 0.1; done; exit 1")
    }

    func makeSource(_ name: String, bytes: Int) -> String {
        let p = tmp + "/" + name
        run("head -c \(bytes) /dev/urandom > '\(p)'")
        return p
    }

    func conf(blockSize: String) throws -> String {
        let p = tmp + "/blocks-\(blockSize).toml"
        try """
        [client]
        block_size = "\(blockSize)"
        """.write(toFile: p, atomically: true, encoding: .utf8)
        return p
    }

    // MARK: tests

    /// A complete single-block file whose block is local is read by the kernel from the
    /// block file: same bytes (cmp, a random 4 KiB dd, mmap), no READ reaches the daemon,
    /// and reads of an open file work while the daemon is stopped.
    func testSingleBlockFileIsReadByTheKernel() throws {
        _ = try startCluster()
        let m = try mount("pt", extraArgs: quietKernel)
        try requirePassthrough(m)
        let src = makeSource("src", bytes: 12 * 1048576 + 123)
        let f = m.mnt + "/one-block"
        run("cp '\(src)' '\(f)'")
        waitComplete("/one-block")
        waitForPassthrough(m, f)
        let ino = inode(f)
        let readsBefore = servedReads(m, ino)

        run("cmp '\(src)' '\(f)'")
        run("""
        dd if='\(f)' of='\(tmp)/a' bs=4096 skip=1234 count=1 status=none &&
        dd if='\(src)' of='\(tmp)/b' bs=4096 skip=1234 count=1 status=none && cmp '\(tmp)/a' '\(tmp)/b' &&
        dd if='\(f)' of='\(tmp)/a' bs=4096 skip=3072 count=1 status=none &&
        dd if='\(src)' of='\(tmp)/b' bs=4096 skip=3072 count=1 status=none && cmp '\(tmp)/a' '\(tmp)/b' &&
        test $(stat -c %s '\(tmp)/a') = 123
        """)
        run("""
        python3 -c 'import mmap,sys,hashlib
        a=open(sys.argv[1],"rb"); b=open(sys.argv[2],"rb")
        ma=mmap.mmap(a.fileno(),0,prot=mmap.PROT_READ); mb=mmap.mmap(b.fileno(),0,prot=mmap.PROT_READ)
        sys.exit(0 if hashlib.sha256(ma).digest()==hashlib.sha256(mb).digest() else 1)' '\(f)' '\(src)'
        """)
        XCTAssertEqual(servedReads(m, ino), readsBefore, "the daemon served READs of a passthrough file")
        let decisions = openDecisions(m, ino).suffix(4)
        XCTAssertTrue(decisions.allSatisfy { backingId($0) != nil }, "\(decisions)")

        // The daemon stopped: an open passthrough file still reads (no request needed).
        let pid = m.child.process.processIdentifier
        defer { kill(pid, SIGCONT) }
        let script = tmp + "/stopped-read.py"
        try """
        import hashlib, os, sys, time
        path, ready, go, out, done = sys.argv[1:6]
        fd = os.open(path, os.O_RDONLY)
        open(ready, "w").close()
        while not os.path.exists(go): time.sleep(0.01)
        h = hashlib.sha256(); n = 0
        while True:
            b = os.read(fd, 1 << 20)
            if not b: break
            h.update(b); n += len(b)
        r = hashlib.sha256(os.pread(fd, 4096, 4096 * 1234)).hexdigest()
        with open(out + ".tmp", "w") as f: f.write("%s %d %s\\n" % (h.hexdigest(), n, r))
        os.rename(out + ".tmp", out)
        while not os.path.exists(done): time.sleep(0.01)
        os.close(fd)
        """.write(toFile: script, atomically: true, encoding: .utf8)
        let t = tmp
        let out = run("""
        python3 '\(script)' '\(f)' \(t)/ready \(t)/go \(t)/out \(t)/done & py=$!
        for i in $(seq 200); do [ -e \(t)/ready ] && break; sleep 0.05; done
        kill -STOP \(pid); touch \(t)/go
        for i in $(seq 300); do [ -e \(t)/out ] && break; sleep 0.05; done
        if [ -e \(t)/out ]; then when=while-stopped; else when=after-continue; fi
        kill -CONT \(pid); touch \(t)/done; wait $py
        echo "$when $(cat \(t)/out)"
        """, timeout: 60)
        let want = run("""
        echo "while-stopped $(sha256sum < '\(src)' | cut -d' ' -f1) \(12 * 1048576 + 123) $(dd if='\(src)' bs=4096 skip=1234 count=1 status=none | sha256sum | cut -d' ' -f1)"
        """)
        XCTAssertEqual(out, want, "reading an open passthrough file while the daemon is stopped")
        XCTAssertEqual(servedReads(m, ino), readsBefore)
    }

    /// A multi-block file takes the normal path (and is correct); a single-block file on
    /// the same mount still goes through the kernel.
    func testMultiBlockFileTakesTheNormalPath() throws {
        _ = try startCluster()
        let m = try mount("pt", conf: try conf(blockSize: "4MB"), extraArgs: quietKernel)
        try requirePassthrough(m)
        let big = makeSource("big", bytes: 10 * 1048576 + 5)
        let small = makeSource("small", bytes: 3 * 1048576)
        run("cp '\(big)' '\(m.mnt)/big' && cp '\(small)' '\(m.mnt)/small'")
        waitComplete("/big")
        waitComplete("/small")
        waitForPassthrough(m, m.mnt + "/small")
        let bigIno = inode(m.mnt + "/big")
        run("cmp '\(big)' '\(m.mnt)/big'")
        XCTAssertGreaterThan(servedReads(m, bigIno), 0, "a 3-block file is read through the daemon")
        let d = openDecisions(m, bigIno).last ?? ""
        XCTAssertTrue(d.contains("normal reads") && d.contains("block"), d)
        let smallIno = inode(m.mnt + "/small")
        let before = servedReads(m, smallIno)
        run("cmp '\(small)' '\(m.mnt)/small'")
        XCTAssertEqual(servedReads(m, smallIno), before)
    }

    /// --passthrough off: single-block files are read through the daemon, correctly.
    func testPassthroughOffTakesTheNormalPath() throws {
        _ = try startCluster()
        let m = try mount("off", extraArgs: quietKernel + ["--passthrough", "off"])
        let log = initLog(m)
        XCTAssertTrue(log.contains("passthrough: off: --passthrough off"), log.suffix(2000).description)
        XCTAssertTrue(log.contains("cvshim: passthrough: off: not enabled"), log.suffix(2000).description)
        let src = makeSource("src", bytes: 5 * 1048576 + 7)
        run("cp '\(src)' '\(m.mnt)/f'")
        waitComplete("/f")
        run("sleep 0.3; cmp '\(src)' '\(m.mnt)/f'")
        let ino = inode(m.mnt + "/f")
        XCTAssertGreaterThan(servedReads(m, ino), 0)
        XCTAssertFalse(m.child.log.contains("backing id"))
    }

    /// Two opens at once (plus a third holding the file open) share one backing file and
    /// both read the right bytes.
    func testConcurrentOpensShareOneBackingFile() throws {
        _ = try startCluster()
        let m = try mount("pt", extraArgs: quietKernel)
        try requirePassthrough(m)
        let src = makeSource("src", bytes: 20 * 1048576 + 1)
        let f = m.mnt + "/f"
        run("cp '\(src)' '\(f)'")
        waitComplete("/f")
        waitForPassthrough(m, f)
        let ino = inode(f)
        let seen = openDecisions(m, ino).count
        let reads = servedReads(m, ino)
        run("""
        exec 3<'\(f)'
        cmp '\(src)' '\(f)' & a=$!
        cmp '\(src)' '\(f)' & b=$!
        dd if='\(f)' bs=65536 skip=7 count=3 status=none > '\(tmp)/part' & c=$!
        wait $a && wait $b && wait $c || exit 1
        exec 3<&-
        dd if='\(src)' bs=65536 skip=7 count=3 status=none | cmp - '\(tmp)/part'
        """)
        let during = Array(openDecisions(m, ino).dropFirst(seen))
        XCTAssertEqual(during.count, 4, "\(during)")
        XCTAssertEqual(Set(during.compactMap(backingId)).count, 1, "one backing id per inode: \(during)")
        XCTAssertTrue(during.allSatisfy { backingId($0) != nil }, "\(during)")
        XCTAssertEqual(servedReads(m, ino), reads)
    }

    /// A write open (or truncate) while a passthrough open exists fails with EBUSY and
    /// changes nothing; right after the readers close it works (normal path), and the
    /// completed file is passed through again.
    func testWriteOpenWhilePassthroughOpenIsRefused() throws {
        _ = try startCluster()
        let m = try mount("pt", extraArgs: quietKernel)
        try requirePassthrough(m)
        let src = makeSource("src", bytes: 2 * 1048576 + 3)
        let f = m.mnt + "/f"
        run("cp '\(src)' '\(f)'")
        waitComplete("/f")
        waitForPassthrough(m, f)
        run("""
        exec 3<'\(f)'
        if sh -c "echo more >> '\(f)'" 2> '\(tmp)/err1'; then echo 'append succeeded'; exit 1; fi
        grep -q 'busy' '\(tmp)/err1' || { cat '\(tmp)/err1'; exit 1; }
        if truncate -s 0 '\(f)' 2> '\(tmp)/err2'; then echo 'truncate succeeded'; exit 1; fi
        grep -q 'busy' '\(tmp)/err2' || { cat '\(tmp)/err2'; exit 1; }
        cmp '\(src)' '\(f)' && cmp '\(src)' /dev/fd/3
        exec 3<&-
        echo more >> '\(f)'
        """)
        XCTAssertTrue(m.child.log.contains("open for writing /f: the file is open for kernel passthrough reads"))
        run("cp '\(src)' '\(tmp)/expected' && echo more >> '\(tmp)/expected' && cmp '\(tmp)/expected' '\(f)'")
        waitComplete("/f")
        waitForPassthrough(m, f)
        let ino = inode(f)
        let reads = servedReads(m, ino)
        run("cmp '\(tmp)/expected' '\(f)'")
        XCTAssertEqual(servedReads(m, ino), reads)
    }

    /// Data read back while the file is still open for writing goes the normal path
    /// (read-your-writes); once the writer closed and the file is complete, opens are
    /// passed through.
    func testDataIsReadNormallyUntilTheFileIsComplete() throws {
        _ = try startCluster()
        let m = try mount("pt", extraArgs: quietKernel)
        try requirePassthrough(m)
        let src = makeSource("src", bytes: 6 * 1048576 + 77)
        let f = m.mnt + "/w"
        run("""
        exec 3>'\(f)'
        cat '\(src)' >&3
        cmp '\(src)' '\(f)'
        exec 3>&-
        """)
        let ino = inode(f)
        let whileWriting = openDecisions(m, ino)
        XCTAssertTrue(whileWriting.contains { $0.contains("normal reads") && $0.contains("being written") }, "\(whileWriting)")
        XCTAssertGreaterThan(servedReads(m, ino), 0)
        waitComplete("/w")
        waitForPassthrough(m, f)
        let reads = servedReads(m, ino)
        run("cmp '\(src)' '\(f)'")
        XCTAssertEqual(servedReads(m, ino), reads)
    }

    /// A kernel without passthrough (simulated: the daemon does not see the offer) logs
    /// why at INIT and serves every read itself.
    func testKernelWithoutSupportUsesTheNormalPath() throws {
        _ = try startCluster()
        setenv("CVFUSE_TEST_PASSTHROUGH", "no-kernel-support", 1)
        let m: MountProcess
        do {
            defer { unsetenv("CVFUSE_TEST_PASSTHROUGH") }
            m = try mount("nokernel", extraArgs: quietKernel)
        }
        let log = initLog(m)
        XCTAssertTrue(log.contains("passthrough: off: the kernel does not offer FUSE_PASSTHROUGH"), log.suffix(2000).description)
        let src = makeSource("src", bytes: 3 * 1048576 + 9)
        run("cp '\(src)' '\(m.mnt)/f'")
        waitComplete("/f")
        run("sleep 0.3; cmp '\(src)' '\(m.mnt)/f' && exec 3<'\(m.mnt)/f' && cmp '\(src)' '\(m.mnt)/f' && echo x >> '\(m.mnt)/f'")
        XCTAssertGreaterThan(servedReads(m, inode(m.mnt + "/f")), 0)
        XCTAssertFalse(m.child.log.contains("backing id"))
    }

    /// BACKING_OPEN refused with EPERM (no CAP_SYS_ADMIN in the initial user namespace,
    /// simulated): logged once, passthrough off from then on, reads correct.
    func testBackingOpenEpermFallsBack() throws {
        _ = try startCluster()
        setenv("CVFUSE_TEST_PASSTHROUGH", "backing-eperm", 1)
        let m: MountProcess
        do {
            defer { unsetenv("CVFUSE_TEST_PASSTHROUGH") }
            m = try mount("eperm", extraArgs: quietKernel)
        }
        try requirePassthrough(m)
        let a = makeSource("a", bytes: 1048576 + 1)
        let b = makeSource("b", bytes: 2 * 1048576 + 2)
        run("cp '\(a)' '\(m.mnt)/a' && cp '\(b)' '\(m.mnt)/b'")
        waitComplete("/a")
        waitComplete("/b")
        run("sleep 0.3; cmp '\(a)' '\(m.mnt)/a' && cmp '\(b)' '\(m.mnt)/b' && cmp '\(a)' '\(m.mnt)/a'")
        let log = m.child.log
        XCTAssertEqual(log.components(separatedBy: "BACKING_OPEN: Operation not permitted: the daemon lacks CAP_SYS_ADMIN").count - 1, 1,
                       log.suffix(3000).description)
        XCTAssertGreaterThan(servedReads(m, inode(m.mnt + "/a")), 0)
        XCTAssertGreaterThan(servedReads(m, inode(m.mnt + "/b")), 0)
        XCTAssertFalse(log.contains("backing id"))
    }
}
