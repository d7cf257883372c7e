// InProcessFileSystem: the mock client over a Namespace and local block files. Checks
// the write/read path, sparse tails, persistence across reopen and that errors carry
// the master's kinds (and so the same errno as over the wire).
import CurvineClient
@testable import CurvineServer
import Foundation
import XCTest

final class ServerInProcessTests: XCTestCase {
    private var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "server-inproc-\(UUID().uuidString)"
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    private func write(_ fs: CurvineFileSystem, _ path: String, _ data: [UInt8], blockSize: Int64) throws {
        let st = try fs.createFile(path, options: CreateOptions(blockSize: blockSize))
        var commits: [CommitBlock] = []
        var off = 0
        while off < data.count {
            let b = try fs.addBlock(path, commit: commits, fileLength: Int64(off), inodeId: st.id, excludeWorkers: [])
            let n = min(Int(blockSize), data.count - off)
            let w = try fs.openBlockWriter(b, offset: 0, capacity: blockSize)
            try data[off..<(off + n)].withUnsafeBytes { try w.write(at: 0, $0) }
            commits = [try w.commit(length: Int64(n))]
            off += n
        }
        try fs.completeFile(path, length: Int64(data.count), commit: commits, onlyFlush: false, inodeId: st.id)
    }

    private func read(_ fs: CurvineFileSystem, _ path: String) throws -> [UInt8] {
        let fb = try fs.blockLocations(path)
        var out: [UInt8] = []
        for b in fb.blocks {
            let r = try fs.openBlockReader(b, offset: 0)
            var buf = [UInt8](repeating: 0xEE, count: Int(b.length) + 3)
            let n = try buf.withUnsafeMutableBytes { try r.read(at: 0, into: $0) }
            XCTAssertEqual(n, Int(b.length))
            out += buf[0..<n]
            r.close()
        }
        return out
    }

    func testWriteReadAcrossBlocksAndReopen() throws {
        let data = (0..<25).map { UInt8($0) }
        do {
            let fs = try InProcessFileSystem(directory: dir, persistent: true)
            try write(fs, "/f", data, blockSize: 10)
            XCTAssertEqual(try read(fs, "/f"), data)
            let st = try fs.fileStatus("/f")
            XCTAssertTrue(st.isComplete)
            XCTAssertEqual(st.length, 25)
            let r = try fs.openBlockReader(try fs.blockLocations("/f").blocks[0], offset: 0)
            XCTAssertNotNil(r.localFileDescriptor, "a fully written block offers short-circuit")
            r.close()
            fs.close()
        }
        let fs = try InProcessFileSystem(directory: dir, persistent: true)
        XCTAssertEqual(try read(fs, "/f"), data)
        // Truncate, then grow: the cut bytes come back as zeros, never stale data.
        _ = try fs.resize("/f", length: 5, truncate: true, mode: 0)
        XCTAssertEqual(try read(fs, "/f"), Array(data[0..<5]))
        _ = try fs.resize("/f", length: 12, truncate: true, mode: 0)
        XCTAssertEqual(try read(fs, "/f"), Array(data[0..<5]) + [UInt8](repeating: 0, count: 7))
        let r = try fs.openBlockReader(try fs.blockLocations("/f").blocks[0], offset: 0)
        XCTAssertNil(r.localFileDescriptor, "a sparse tail is not short-circuited")
        r.close()
        // Deleting releases the block files.
        try fs.delete("/f", recursive: false)
        XCTAssertEqual(fs.store.blockIds(), [])
    }

    func testErrorsCarryMasterKindsAndErrno() throws {
        let fs = try InProcessFileSystem(directory: dir)
        _ = try fs.mkdir("/d", mode: 0o755, owner: "", group: "", createParent: false)
        _ = try fs.createFile("/d/f", options: CreateOptions())
        func errno(_ body: () throws -> Void) -> Int32? {
            do { try body(); return nil } catch let e as CurvineError { return e.errno } catch { return nil }
        }
        XCTAssertEqual(errno { _ = try fs.fileStatus("/nope") }, ENOENT)
        XCTAssertEqual(errno { _ = try fs.createFile("/d/f", options: CreateOptions()) }, EEXIST)
        XCTAssertEqual(errno { try fs.delete("/d", recursive: false) }, ENOTEMPTY)
        XCTAssertEqual(errno { _ = try fs.mkdir("/d/f/x", mode: 0o755, owner: "", group: "", createParent: false) }, ENOTDIR)
        XCTAssertEqual(errno { try fs.rename("/d/f", to: "/d/f", flags: []) }, EIO, "result=false is refused like CurvineClient")
        XCTAssertEqual(errno { _ = try fs.blockLocations("/d") }, EISDIR)
        // A second client: the lease is per client, locks conflict across clients.
        let other = fs.sibling()
        let lock = FileLock(clientId: fs.clientName, ownerId: 1, pid: 1, type: .write, flavor: .flock, start: 0, end: .max)
        XCTAssertNil(try fs.setLock("/d/f", lock))
        var theirs = lock
        theirs.clientId = other.clientName
        XCTAssertEqual(try other.setLock("/d/f", theirs)?.clientId, fs.clientName)
        XCTAssertFalse(try fs.fileStatus("/d/f").isComplete)
        try other.completeFile("/d/f", length: 0, commit: [], onlyFlush: false, inodeId: 0)
        XCTAssertFalse(try fs.fileStatus("/d/f").isComplete, "only the lease holder completes it")
        try fs.completeFile("/d/f", length: 0, commit: [], onlyFlush: false, inodeId: 0)
        XCTAssertTrue(try fs.fileStatus("/d/f").isComplete)
    }
}
