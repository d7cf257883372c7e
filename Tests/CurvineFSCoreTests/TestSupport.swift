// Test fixtures for the file-system core: an InProcessFileSystem in a temp directory,
// a fault-injecting wrapper, and repliers that collect what the core answers.
import XCTest
#if canImport(Glibc)
import Glibc
#endif
import CurvineClient
import CurvineServer
@testable import CurvineFSCore
// patternBytes, checksum (and the mount harness) for every file of this target.
@_exported import CurvineTestHarness

/// Wraps any CurvineFileSystem and fails chosen calls with a chosen CurvineError.
/// Operations are named after the protocol methods ("fileStatus", "addBlock", ...,
/// and "blockWrite"/"blockRead"/"blockCommit"/"blockFlush" for stream calls).
final class FaultInjectingFileSystem: CurvineFileSystem, @unchecked Sendable {
    let inner: CurvineFileSystem
    private let lock = Lock()
    private var faults: [String: (error: CurvineError, remaining: Int, skip: Int)] = [:]
    private var counts: [String: Int] = [:]
    /// Hide short-circuit fds so reads take the remote (copying, prefetching) path.
    var hideLocalFiles = false

    init(_ inner: CurvineFileSystem) { self.inner = inner }

    /// Fails `times` calls of `op` (-1 = until cleared) after letting `skip` calls through.
    func fail(_ op: String, with error: CurvineError, times: Int = -1, skip: Int = 0) {
        lock.withLock { faults[op] = (error, times, skip) }
    }

    func clear() { lock.withLock { faults.removeAll() } }

    func calls(_ op: String) -> Int { lock.withLock { counts[op] ?? 0 } }
    func resetCounts() { lock.withLock { counts.removeAll() } }

    func check(_ op: String) throws {
        let e: CurvineError? = lock.withLock {
            counts[op, default: 0] += 1
            guard let f = faults[op] else { return nil }
            if f.skip > 0 { faults[op] = (f.error, f.remaining, f.skip - 1); return nil }
            if f.remaining == 0 { return nil }
            if f.remaining > 0 { faults[op] = (f.error, f.remaining - 1, 0) }
            return f.error
        }
        if let e { throw e }
    }

    var clientName: String { inner.clientName }
    func fileStatus(_ path: String) throws -> FileStatus { try check("fileStatus"); return try inner.fileStatus(path) }
    func exists(_ path: String) throws -> Bool { try check("exists"); return try inner.exists(path) }
    func listPage(_ path: String, startAfter: String?, limit: Int) throws -> [FileStatus] {
        try check("listPage"); return try inner.listPage(path, startAfter: startAfter, limit: limit)
    }
    func mkdir(_ path: String, mode: UInt32, owner: String, group: String, createParent: Bool) throws -> FileStatus {
        try check("mkdir"); return try inner.mkdir(path, mode: mode, owner: owner, group: group, createParent: createParent)
    }
    func createFile(_ path: String, options: CreateOptions) throws -> FileStatus {
        try check("createFile"); return try inner.createFile(path, options: options)
    }
    func openForWrite(_ path: String, append: Bool) throws -> FileBlocks {
        try check("openForWrite"); return try inner.openForWrite(path, append: append)
    }
    func blockLocations(_ path: String) throws -> FileBlocks { try check("blockLocations"); return try inner.blockLocations(path) }
    func delete(_ path: String, recursive: Bool) throws { try check("delete"); try inner.delete(path, recursive: recursive) }
    func rename(_ src: String, to dst: String, flags: RenameFlags) throws { try check("rename"); try inner.rename(src, to: dst, flags: flags) }
    func setAttr(_ path: String, _ options: SetAttrOptions) throws -> FileStatus { try check("setAttr"); return try inner.setAttr(path, options) }
    func symlink(target: String, link: String, mode: UInt32, owner: String?, group: String?) throws {
        try check("symlink"); try inner.symlink(target: target, link: link, mode: mode, owner: owner, group: group)
    }
    func link(_ src: String, to dst: String) throws { try check("link"); try inner.link(src, to: dst) }
    func resize(_ path: String, length: Int64, truncate: Bool, mode: Int32) throws -> FileBlocks {
        try check("resize"); return try inner.resize(path, length: length, truncate: truncate, mode: mode)
    }
    func addBlock(_ path: String, commit: [CommitBlock], fileLength: Int64, inodeId: Int64, excludeWorkers: [UInt32]) throws -> LocatedBlock {
        try check("addBlock")
        return try inner.addBlock(path, commit: commit, fileLength: fileLength, inodeId: inodeId, excludeWorkers: excludeWorkers)
    }
    func completeFile(_ path: String, length: Int64, commit: [CommitBlock], onlyFlush: Bool, inodeId: Int64) throws {
        try check(onlyFlush ? "completeFile.flush" : "completeFile")
        try inner.completeFile(path, length: length, commit: commit, onlyFlush: onlyFlush, inodeId: inodeId)
    }
    func filesystemInfo() throws -> FilesystemInfo { try check("filesystemInfo"); return try inner.filesystemInfo() }
    func getLock(_ path: String, _ lock: FileLock) throws -> FileLock? { try check("getLock"); return try inner.getLock(path, lock) }
    func setLock(_ path: String, _ lock: FileLock) throws -> FileLock? { try check("setLock"); return try inner.setLock(path, lock) }

    func openBlockReader(_ block: LocatedBlock, offset: Int64) throws -> BlockReader {
        try check("openBlockReader")
        return FaultyReader(try inner.openBlockReader(block, offset: offset), self)
    }
    func openBlockWriter(_ block: LocatedBlock, offset: Int64, capacity: Int64) throws -> BlockWriter {
        try check("openBlockWriter")
        return FaultyWriter(try inner.openBlockWriter(block, offset: offset, capacity: capacity), self)
    }

    final class FaultyReader: BlockReader {
        let inner: BlockReader
        let fs: FaultInjectingFileSystem
        init(_ i: BlockReader, _ f: FaultInjectingFileSystem) { inner = i; fs = f }
        var length: Int64 { inner.length }
        var localFileDescriptor: Int32? { fs.hideLocalFiles ? nil : inner.localFileDescriptor }
        var localPath: String? { fs.hideLocalFiles ? nil : inner.localPath }
        func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
            try fs.check("blockRead"); return try inner.read(at: offset, into: buffer)
        }
        func close() { inner.close() }
    }

    final class FaultyWriter: BlockWriter {
        let inner: BlockWriter
        let fs: FaultInjectingFileSystem
        init(_ i: BlockWriter, _ f: FaultInjectingFileSystem) { inner = i; fs = f }
        func write(at offset: Int64, _ bytes: UnsafeRawBufferPointer) throws { try fs.check("blockWrite"); try inner.write(at: offset, bytes) }
        func flush() throws { try fs.check("blockFlush"); try inner.flush() }
        func commit(length: Int64) throws -> CommitBlock { try fs.check("blockCommit"); return try inner.commit(length: length) }
        func cancel() { inner.cancel() }
    }
}

/// Collects one read reply; replyFile is read back with pread.
final class CollectingReplier: ReadReplier {
    var data: [UInt8] = []
    var calls = 0
    var usedFile = false

    func replyBytes(_ bytes: UnsafeRawBufferPointer) {
        calls += 1
        data = Array(bytes)
    }

    func replyFile(fd: Int32, offset: Int64, count: Int) {
        calls += 1
        usedFile = true
        var buf = [UInt8](repeating: 0, count: count)
        let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
        data = Array(buf[0..<max(0, n)])
    }
}

struct DirEntryRecord: Equatable {
    var name: String
    var ino: UInt64
    var mode: UInt32
    var nextOffset: Int64
    var hasEntry: Bool
}

/// A directory replier with room for `capacity` entries per call.
struct CollectingDirReplier: DirectoryReplier {
    var capacity: Int
    var entries: [DirEntryRecord] = []
    var entryObjects: [Entry] = []

    init(capacity: Int = .max) { self.capacity = capacity }

    mutating func add(name: String, ino: UInt64, mode: UInt32, nextOffset: Int64, entry: Entry?) -> Bool {
        if entries.count >= capacity { return false }
        entries.append(DirEntryRecord(name: name, ino: ino, mode: mode, nextOffset: nextOffset, hasEntry: entry != nil))
        if let e = entry { entryObjects.append(e) }
        return true
    }
}

let rootCtx = RequestContext.root
let userCtx = RequestContext(uid: 1000, gid: 1000, pid: 0, umask: 0o022, groups: [])

/// A core over a fresh InProcessFileSystem (wrapped in the fault injector).
class CoreTestCase: XCTestCase {
    var dir: String = ""
    var fs: InProcessFileSystem!
    var faults: FaultInjectingFileSystem!
    var core: FileSystemCore!

    func defaultConfig() -> CoreConfig {
        var c = CoreConfig()
        c.ioThreads = 4
        c.readBufferBudget = 64 << 20
        c.writeBufferBudget = 32 << 20
        c.defaultUid = 0
        c.defaultGid = 0
        return c
    }

    override func setUpWithError() throws {
        var t = Array("/tmp/fscore-XXXXXX".utf8CString)
        guard let p = mkdtemp(&t) else { throw FSError(errno, "mkdtemp") }
        dir = String(cString: p)
        fs = try InProcessFileSystem(directory: dir)
        faults = FaultInjectingFileSystem(fs)
        core = try FileSystemCore(client: faults, config: defaultConfig())
    }

    override func tearDownWithError() throws {
        core?.shutdown()
        core = nil
        fs?.close()
        _ = dir.withCString { system("rm -rf '\(String(cString: $0))'") }
    }

    /// Replaces the core with one built from `config` (same file system).
    func remount(_ config: CoreConfig) throws {
        core.shutdown()
        core = try FileSystemCore(client: faults, config: config)
    }

    // MARK: helpers

    @discardableResult
    func mkdir(_ parent: UInt64, _ name: String, mode: UInt32 = 0o755, ctx: RequestContext = rootCtx) throws -> Entry {
        try core.mkdir(parent: parent, name: name, mode: mode, ctx: ctx)
    }

    func writeFile(_ parent: UInt64, _ name: String, _ data: [UInt8], writeSize: Int = 128 << 10,
                   ctx: RequestContext = rootCtx, mode: UInt32 = 0o644) throws -> UInt64 {
        let (e, o) = try core.create(parent: parent, name: name, mode: mode, flags: O_WRONLY | O_CREAT, ctx: ctx)
        var off = 0
        while off < data.count {
            let n = min(writeSize, data.count - off)
            let w = try data[off..<(off + n)].withUnsafeBytes {
                try core.write(ino: e.ino, fh: o.fh, offset: Int64(off), data: $0, ctx: ctx)
            }
            XCTAssertEqual(w, n)
            off += n
        }
        try core.flush(ino: e.ino, fh: o.fh)
        try core.release(ino: e.ino, fh: o.fh)
        return e.ino
    }

    func write(_ ino: UInt64, _ fh: UInt64, _ off: Int64, _ data: [UInt8]) throws {
        let n = try data.withUnsafeBytes { try core.write(ino: ino, fh: fh, offset: off, data: $0, ctx: rootCtx) }
        XCTAssertEqual(n, data.count)
    }

    func read(_ ino: UInt64, _ fh: UInt64, _ off: Int64, _ size: Int) throws -> [UInt8] {
        let r = CollectingReplier()
        try core.read(ino: ino, fh: fh, offset: off, size: size, replier: r)
        XCTAssertEqual(r.calls, 1, "exactly one reply per read")
        return r.data
    }

    func readAll(_ ino: UInt64, readSize: Int = 128 << 10, ctx: RequestContext = rootCtx) throws -> [UInt8] {
        let o = try core.open(ino: ino, flags: O_RDONLY, ctx: ctx)
        defer { try? core.release(ino: ino, fh: o.fh) }
        var out: [UInt8] = []
        while true {
            let chunk = try read(ino, o.fh, Int64(out.count), readSize)
            if chunk.isEmpty { break }
            out += chunk
            if chunk.count < readSize { break }
        }
        return out
    }

    func assertErrno<T>(_ expected: Int32, _ body: @autoclosure () throws -> T, file: StaticString = #filePath,
                        line: UInt = #line) {
        do {
            _ = try body()
            XCTFail("expected \(errnoName(expected)), got success", file: file, line: line)
        } catch let e as FSError {
            XCTAssertEqual(e.errno, expected, "expected \(errnoName(expected)), got \(e)", file: file, line: line)
        } catch {
            XCTFail("expected FSError \(errnoName(expected)), got \(error)", file: file, line: line)
        }
    }

    func listNames(_ ino: UInt64, plus: Bool = false) throws -> [String] {
        let o = try core.opendir(ino: ino, ctx: rootCtx)
        defer { core.releasedir(ino: ino, fh: o.fh) }
        var names: [String] = []
        var off: Int64 = 0
        while true {
            var r = CollectingDirReplier(capacity: 50)
            try core.readdir(ino: ino, fh: o.fh, offset: off, plus: plus, replier: &r)
            if r.entries.isEmpty { break }
            names += r.entries.map(\.name)
            off = r.entries.last!.nextOffset
        }
        return names.filter { $0 != "." && $0 != ".." }
    }
}
