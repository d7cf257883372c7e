// InProcessFileSystem must behave like CurvineClient talking to the embedded cluster:
// the same script of calls runs against both and must give the same results and the
// same errors (kind, message, errno). Ids and times are left out of the comparison.
import CurvineClient
@testable import CurvineServer
import Foundation
import XCTest

final class ServerParityTests: XCTestCase {
    private func describe(_ st: FileStatus) -> String {
        "\(st.path)|\(st.name)|\(st.kind)|\(st.length)|\(String(st.mode, radix: 8))|\(st.nlink)|\(st.isComplete)|"
            + "\(st.target ?? "-")|\(st.childrenCount)|\(st.blockSize)|\(st.xattrs.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" })"
    }

    private func script(_ fs: CurvineFileSystem) -> [String] {
        var out: [String] = []
        func step(_ name: String, _ body: () throws -> String) {
            do { out.append("\(name): \(try body())") } catch let e as CurvineError {
                out.append("\(name): error \(e.kind.map { "\($0)" } ?? "-") errno=\(e.errno) \(e.message)")
            } catch { out.append("\(name): other \(error)") }
        }
        let data = (0..<50).map { UInt8($0) }
        step("mkdir") { describe(try fs.mkdir("/a", mode: 0o755, owner: "", group: "", createParent: false)) }
        step("mkdir again") { describe(try fs.mkdir("/a", mode: 0o755, owner: "", group: "", createParent: false)) }
        step("mkdir -p") { describe(try fs.mkdir("/a/b/c", mode: 0o700, owner: "", group: "", createParent: true)) }
        step("mkdir no parent") { describe(try fs.mkdir("/x/y", mode: 0o700, owner: "", group: "", createParent: false)) }
        step("write") { "\(try fs.writeWholeFile("/a/f", bytes: data, options: CreateOptions(blockSize: 16)))" }
        step("read") { "\(try fs.readWholeFile("/a/f") == data)" }
        step("stat") { describe(try fs.fileStatus("/a/f")) }
        step("create exists") { describe(try fs.createFile("/a/f", options: CreateOptions())) }
        step("create over dir") { describe(try fs.createFile("/a/b", options: CreateOptions())) }
        step("overwrite") { describe(try fs.createFile("/a/f", options: CreateOptions(overwrite: true, blockSize: 16))) }
        step("rewrite") { "\(try fs.writeWholeFile("/a/g", bytes: data, options: CreateOptions(blockSize: 16)))" }
        step("append open") { let fb = try fs.openForWrite("/a/g", append: true); return "\(fb.blocks.map(\.length)) \(describe(fb.status))" }
        step("complete") { try fs.completeFile("/a/g", length: 50, commit: [], onlyFlush: false, inodeId: 0); return describe(try fs.fileStatus("/a/g")) }
        step("symlink") { try fs.symlink(target: "g", link: "/a/s", mode: 0o777, owner: nil, group: nil); return describe(try fs.fileStatus("/a/s")) }
        step("symlink exists") { try fs.symlink(target: "g", link: "/a/s", mode: 0o777, owner: nil, group: nil); return "" }
        step("through symlink") { describe(try fs.fileStatus("/a/s/x")) }
        step("link") { try fs.link("/a/g", to: "/a/h"); return describe(try fs.fileStatus("/a/h")) }
        step("link dir") { try fs.link("/a/b", to: "/a/bb"); return "" }
        step("setattr") { describe(try fs.setAttr("/a/g", SetAttrOptions(mode: 0o600, addXattrs: ["user.x": [1]], removeXattrs: ["user.none"]))) }
        step("list") { try fs.listPage("/a", startAfter: nil, limit: 100).map(\.name).joined(separator: ",") }
        step("list after") { try fs.listPage("/a", startAfter: "f", limit: 2).map(\.name).joined(separator: ",") }
        step("list zero") { "\(try fs.listPage("/a", startAfter: nil, limit: 0).count)" }
        step("list negative") { "\(try fs.listPage("/a", startAfter: nil, limit: -1).count)" }
        step("list missing") { "\(try fs.listPage("/nope", startAfter: nil, limit: 10).count)" }
        step("truncate") { let fb = try fs.resize("/a/g", length: 20, truncate: true, mode: 0); return "\(fb.blocks.map(\.length)) \(fb.status.length)" }
        step("grow") { let fb = try fs.resize("/a/g", length: 40, truncate: true, mode: 0); return "\(fb.blocks.map { "\($0.length)/\($0.isHole)" })" }
        step("read grown") { "\(try fs.readWholeFile("/a/g") == Array(data[0..<20]) + [UInt8](repeating: 0, count: 20))" }
        step("resize dir") { "\(try fs.resize("/a", length: 1, truncate: true, mode: 0).status.length)" }
        step("fallocate bad mode") { "\(try fs.resize("/a/g", length: 100, truncate: false, mode: 2).status.length)" }
        let mine = FileLock(clientId: fs.clientName, ownerId: 1, pid: 9, type: .write, flavor: .posix, start: 0, end: 9)
        let theirs = FileLock(clientId: "other", ownerId: 1, pid: 8, type: .read, flavor: .posix, start: 5, end: 5)
        step("lock") { "\(try fs.setLock("/a/g", mine) == nil)" }
        step("lock conflict") { try fs.getLock("/a/g", theirs).map { "\($0.start)-\($0.end) pid \($0.pid)" } ?? "none" }
        step("lock missing") { "\(try fs.setLock("/a/zz", mine) == nil)" }
        step("rename noreplace") { try fs.rename("/a/g", to: "/a/h", flags: .noReplace); return "" }
        step("rename same") { try fs.rename("/a/g", to: "/a/g", flags: []); return "" }
        step("rename into self") { try fs.rename("/a", to: "/a/b/z", flags: []); return "" }
        step("rename dir over nonempty") { try fs.rename("/a/b/c", to: "/a", flags: []); return "" }
        step("exchange") { try fs.rename("/a/f", to: "/a/h", flags: .exchange); return describe(try fs.fileStatus("/a/f")) }
        step("rename over") { try fs.rename("/a/f", to: "/a/h", flags: []); return "\(try fs.exists("/a/f")) \(describe(try fs.fileStatus("/a/h")))" }
        step("delete nonempty") { try fs.delete("/a", recursive: false); return "" }
        step("delete root") { try fs.delete("/", recursive: true); return "" }
        step("delete") { try fs.delete("/a", recursive: true); return "\(try fs.exists("/a"))" }
        step("delete missing") { try fs.delete("/a", recursive: true); return "" }
        step("relative") { describe(try fs.fileStatus("a")) }
        return out
    }

    func testInProcessMatchesTheWire() throws {
        let base = NSTemporaryDirectory() + "server-parity-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: base) }
        let local = try InProcessFileSystem(directory: base + "/inproc")
        let cluster = try EmbeddedCluster.start(dataDir: base + "/cluster", syncWrites: false)
        defer { cluster.stop() }
        let remote = try CurvineClient(options: ClientOptions(masters: [cluster.masterAddress], readChunkSize: 7,
                                                              writeChunkSize: 5, blockSize: 16))
        defer { remote.close() }
        let a = script(local), b = script(remote)
        XCTAssertEqual(a.count, b.count)
        for (x, y) in zip(a, b) where x != y { XCTFail("in-process: \(x)\n       wire: \(y)") }
    }
}
