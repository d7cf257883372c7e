// The client <-> cluster round trips, one body run against the embedded cluster
// (ClientClusterTests) and against a real Curvine cluster (RealClusterTests, when
// CURVINE_TEST_MASTERS is set). Everything happens under `root`.
import CurvineClient
import XCTest
#if canImport(Glibc)
import Glibc
#endif

func expectErrno(_ e: Int32, _ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) {
    do {
        try body()
        XCTFail("expected errno \(e), got success", file: file, line: line)
    } catch let c as CurvineError {
        XCTAssertEqual(c.errno, e, "\(c)", file: file, line: line)
    } catch {
        XCTFail("unexpected error \(error)", file: file, line: line)
    }
}

func pattern(_ n: Int, seed: UInt8 = 7) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: n)
    var x = UInt32(seed) &* 2654435761
    for i in 0..<n { x = x &* 1103515245 &+ 12345; out[i] = UInt8(truncatingIfNeeded: x >> 16) }
    return out
}

/// Every RPC of the FUSE subset, with the errno of each typical failure.
func runRoundTrips(_ c: CurvineFileSystem, root: String, blockSize: Int64) throws {
    // Mkdir (2), FileStatus (7), Exists (9)
    let d = try c.mkdir(root + "/dir", mode: 0o750, owner: "", group: "", createParent: true)
    XCTAssertEqual(d.kind, .directory)
    XCTAssertEqual(d.mode & 0o777, 0o750)
    XCTAssertTrue(try c.exists(root + "/dir"))
    XCTAssertFalse(try c.exists(root + "/nope"))
    expectErrno(EEXIST) { _ = try c.mkdir(root + "/dir", mode: 0o755, owner: "", group: "", createParent: false) }
    expectErrno(ENOENT) { _ = try c.mkdir(root + "/x/y", mode: 0o755, owner: "", group: "", createParent: false) }
    expectErrno(ENOENT) { _ = try c.fileStatus(root + "/nope") }

    // CreateFile (4), AddBlock (11), WriteBlock (80), CompleteFile (12), GetBlockLocations (13), ReadBlock (81)
    let data = pattern(Int(blockSize) * 2 + 12345)
    let opts = CreateOptions(mode: 0o640, blockSize: blockSize)
    try c.writeWholeFile(root + "/dir/f", bytes: data, options: opts)
    let st = try c.fileStatus(root + "/dir/f")
    XCTAssertEqual(st.length, Int64(data.count))
    XCTAssertTrue(st.isComplete)
    XCTAssertEqual(st.mode & 0o777, 0o640)
    let fb = try c.blockLocations(root + "/dir/f")
    XCTAssertEqual(fb.blocks.count, 3)
    XCTAssertEqual(fb.blocks.map(\.length).reduce(0, +), Int64(data.count))
    XCTAssertEqual(try c.readWholeFile(root + "/dir/f"), data)
    expectErrno(EEXIST) { _ = try c.createFile(root + "/dir/f", options: opts) }
    expectErrno(ENOTDIR) { _ = try c.createFile(root + "/dir/f/under", options: opts) }

    // Random reads inside a block, through a seek.
    let r = try c.openBlockReader(fb.blocks[1], offset: 0)
    var buf = [UInt8](repeating: 0, count: 5000)
    let n = try buf.withUnsafeMutableBytes { try r.read(at: 777, into: $0) }
    XCTAssertEqual(n, 5000)
    XCTAssertEqual(buf, Array(data[Int(blockSize) + 777 ..< Int(blockSize) + 5777]))
    let n2 = try buf.withUnsafeMutableBytes { try r.read(at: 10, into: $0) }
    XCTAssertEqual(n2, 5000)
    XCTAssertEqual(buf, Array(data[Int(blockSize) + 10 ..< Int(blockSize) + 5010]))
    r.close()

    // OpenFile (5) for write: overwrite a range inside the first block, then complete.
    let ob = try c.openForWrite(root + "/dir/f", append: false)
    XCTAssertEqual(ob.blocks.count, 3)
    let w = try c.openBlockWriter(ob.blocks[0], offset: 100, capacity: blockSize)
    let patch = [UInt8](repeating: 0xAB, count: 300)
    try patch.withUnsafeBytes { try w.write(at: 100, $0) }
    try w.flush()
    let cb = try w.commit(length: ob.blocks[0].length)
    try c.completeFile(root + "/dir/f", length: Int64(data.count), commit: [cb], onlyFlush: false, inodeId: ob.status.id)
    var expect = data
    expect.replaceSubrange(100..<400, with: patch)
    XCTAssertEqual(try c.readWholeFile(root + "/dir/f"), expect)

    // ListStatus (8) and ListOptions (27) paging
    for i in 0..<25 { try c.writeWholeFile(root + "/dir/e\(String(format: "%02d", i))", bytes: [UInt8(i)]) }
    var names: [String] = []
    var after: String? = nil
    while true {
        let page = try c.listPage(root + "/dir", startAfter: after, limit: 7)
        names += page.map(\.name)
        if page.count < 7 { break }
        after = page.last!.name
    }
    XCTAssertEqual(names.count, 26)
    XCTAssertEqual(names, names.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) })
    XCTAssertEqual(Set(names).count, 26)
    if let cc = c as? CurvineClient {
        XCTAssertEqual(try cc.listStatus(root + "/dir").map(\.name), names)
    }
    XCTAssertEqual(try c.listPage(root + "/dir", startAfter: nil, limit: 0).count, 0)

    // Rename (10): plain, over an existing file, NOREPLACE, EXCHANGE, onto a non-empty dir
    try c.rename(root + "/dir/e00", to: root + "/dir/r00", flags: [])
    XCTAssertFalse(try c.exists(root + "/dir/e00"))
    try c.rename(root + "/dir/e01", to: root + "/dir/r00", flags: [])
    XCTAssertEqual(try c.readWholeFile(root + "/dir/r00"), [1])
    expectErrno(EEXIST) { try c.rename(root + "/dir/e02", to: root + "/dir/e03", flags: .noReplace) }
    try c.rename(root + "/dir/e02", to: root + "/dir/e03", flags: .exchange)
    XCTAssertEqual(try c.readWholeFile(root + "/dir/e03"), [2])
    XCTAssertEqual(try c.readWholeFile(root + "/dir/e02"), [3])
    _ = try c.mkdir(root + "/d2/sub", mode: 0o755, owner: "", group: "", createParent: true)
    _ = try c.mkdir(root + "/d3", mode: 0o755, owner: "", group: "", createParent: true)
    try c.writeWholeFile(root + "/d3/x", bytes: [1])
    expectErrno(ENOTEMPTY) { try c.rename(root + "/d2", to: root + "/d3", flags: []) }

    // SetAttr (15): mode, times, xattrs
    let sa = try c.setAttr(root + "/dir/r00", SetAttrOptions(mode: 0o600, mtimeMs: 1_577_934_245_000,
                                                             addXattrs: ["user.k": Array("v".utf8)]))
    XCTAssertEqual(sa.mode & 0o777, 0o600)
    let sst = try c.fileStatus(root + "/dir/r00")
    XCTAssertEqual(sst.mtimeMs, 1_577_934_245_000)
    XCTAssertEqual(sst.xattrs["user.k"], Array("v".utf8))
    _ = try c.setAttr(root + "/dir/r00", SetAttrOptions(removeXattrs: ["user.k"]))
    XCTAssertNil(try c.fileStatus(root + "/dir/r00").xattrs["user.k"])

    // Symlink (16): the master never follows links
    try c.symlink(target: "dir/r00", link: root + "/lnk", mode: 0o777, owner: nil, group: nil)
    let ls = try c.fileStatus(root + "/lnk")
    XCTAssertEqual(ls.kind, .symlink)
    XCTAssertEqual(ls.target, "dir/r00")
    expectErrno(EEXIST) { try c.symlink(target: "x", link: root + "/lnk", mode: 0o777, owner: nil, group: nil) }

    // Link (17): one inode, two names
    try c.link(root + "/dir/r00", to: root + "/hard")
    let h = try c.fileStatus(root + "/hard")
    XCTAssertEqual(h.id, try c.fileStatus(root + "/dir/r00").id)
    XCTAssertEqual(h.nlink, 2)

    // ResizeFile (18): shrink, grow (hole reads as zeros)
    let shrunk = try c.resize(root + "/dir/f", length: 1000, truncate: true, mode: 0)
    XCTAssertEqual(shrunk.status.length, 1000)
    XCTAssertEqual(try c.readWholeFile(root + "/dir/f"), Array(expect[0..<1000]))
    _ = try c.resize(root + "/dir/f", length: 3000, truncate: true, mode: 0)
    let grown = try c.readWholeFile(root + "/dir/f")
    XCTAssertEqual(grown.count, 3000)
    XCTAssertEqual(Array(grown[0..<1000]), Array(expect[0..<1000]))
    XCTAssertTrue(grown[1000...].allSatisfy { $0 == 0 })

    // GetLock (20) / SetLock (21): conflicts between owners
    let l1 = FileLock(clientId: c.clientName, ownerId: 1, pid: 10, type: .write, flavor: .posix, start: 0, end: 99)
    XCTAssertNil(try c.setLock(root + "/dir/r00", l1))
    let l2 = FileLock(clientId: c.clientName, ownerId: 2, pid: 11, type: .read, flavor: .posix, start: 50, end: 60)
    XCTAssertEqual(try c.getLock(root + "/dir/r00", l2)?.ownerId, 1)
    XCTAssertEqual(try c.setLock(root + "/dir/r00", l2)?.ownerId, 1)
    var un = l1
    un.type = .unlock
    XCTAssertNil(try c.setLock(root + "/dir/r00", un))
    XCTAssertNil(try c.setLock(root + "/dir/r00", l2))

    // GetFilesystemInfo (14)
    let info = try c.filesystemInfo()
    XCTAssertGreaterThan(info.capacity, 0)
    XCTAssertFalse(info.liveWorkers.isEmpty)

    // Delete (3)
    expectErrno(ENOTEMPTY) { try c.delete(root + "/dir", recursive: false) }
    try c.delete(root + "/hard", recursive: false)
    XCTAssertEqual(try c.fileStatus(root + "/dir/r00").nlink, 1)
    expectErrno(ENOENT) { try c.delete(root + "/missing", recursive: false) }
    expectErrno(EISDIR) { _ = try c.readWholeFile(root + "/dir") }
    try c.delete(root, recursive: true)
    XCTAssertFalse(try c.exists(root))
}

final class RealClusterTests: XCTestCase {
    func testRoundTripsAgainstARealCluster() throws {
        guard let m = ProcessInfo.processInfo.environment["CURVINE_TEST_MASTERS"], !m.isEmpty else {
            throw XCTSkip("set CURVINE_TEST_MASTERS=host:port[,host:port] to run against a real Curvine cluster")
        }
        let masters = try m.split(separator: ",").map { try HostPort.parse(String($0)) }
        let c = try CurvineClient(options: ClientOptions(masters: masters))
        defer { c.close() }
        let root = "/curvine-fuse-swift-interop-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? c.delete(root, recursive: true) }
        // 1 MiB blocks keep the test small while still spanning several blocks.
        try runRoundTrips(c, root: root, blockSize: 1 << 20)
    }
}
