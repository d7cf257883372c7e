// BlockReader / BlockWriter over a BlockStore's files, for InProcessFileSystem: the
// same semantics a client gets from a worker stream, without the network.
//
// Reader: bytes at and past the logical length do not exist (read returns 0); bytes
// below it but past the file's end are zeros (sparse tail). Like the worker (upstream
// ReadHandler::can_short_circuit), the local fd/path are offered only when the file
// covers the whole logical length, so a caller that preads the fd never sees a short file.
//
// Writer: pwrite at any offset below the capacity; flush fdatasyncs (when the store
// syncs); commit sets the file to exactly the committed length and reports the block
// as held by this worker; cancel removes a block file the writer created.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CurvineClient

final class LocalBlockReader: BlockReader {
    let length: Int64
    private var fd: Int32
    private let path: String
    private let covered: Bool

    init(store: BlockStore, block: LocatedBlock) throws {
        length = block.length
        fd = try store.openForRead(block.id)
        path = store.path(of: block.id)
        covered = (FileUtil.size(fd: fd) ?? 0) >= block.length
    }

    deinit { close() }

    var localFileDescriptor: Int32? { covered && fd >= 0 ? fd : nil }
    var localPath: String? { covered ? path : nil }

    func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard fd >= 0 else { throw CurvineError.local(EBADF, "block reader for \(path) is closed") }
        guard offset >= 0 else { throw CurvineError.local(EINVAL, "negative offset \(offset) in block \(path)") }
        guard offset < length, buffer.count > 0 else { return 0 }
        let want = Int(min(Int64(buffer.count), length - offset))
        let target = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want])
        let got = try FileUtil.preadFull(fd, target, at: offset, path: path)
        if got < want { (target.baseAddress! + got).initializeMemory(as: UInt8.self, repeating: 0, count: want - got) }
        return want
    }

    func close() {
        if fd >= 0 { Glibc.close(fd); fd = -1 }
    }
}

final class LocalBlockWriter: BlockWriter {
    private let store: BlockStore
    private let block: LocatedBlock
    private let capacity: Int64
    private let workerId: UInt32
    private var fd: Int32
    private let created: Bool
    private let path: String

    init(store: BlockStore, block: LocatedBlock, offset: Int64, capacity: Int64, workerId: UInt32) throws {
        guard offset >= 0 && offset <= capacity else {
            throw ServerError.common("Invalid write offset: \(offset), block size: \(capacity)")
        }
        self.store = store
        self.block = block
        self.capacity = capacity
        self.workerId = workerId
        (fd, created) = try store.openForWrite(block.id)
        path = store.path(of: block.id)
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    private func open() throws -> Int32 {
        guard fd >= 0 else { throw CurvineError.local(EBADF, "block writer for \(path) is finished") }
        return fd
    }

    func write(at offset: Int64, _ bytes: UnsafeRawBufferPointer) throws {
        let fd = try open()
        guard offset >= 0, offset <= capacity, Int64(bytes.count) <= capacity - offset else {
            throw ServerError.common("Write of \(bytes.count) bytes at \(offset) exceeds block size \(capacity)")
        }
        if bytes.count > 0 { try FileUtil.pwriteAll(fd, bytes, at: offset, path: path) }
    }

    func flush() throws {
        try store.sync(fd: try open(), id: block.id)
    }

    func commit(length: Int64) throws -> CommitBlock {
        let fd = try open()
        guard length >= 0 && length <= capacity else {
            throw ServerError.common("Invalid block length: \(length), block size: \(capacity)")
        }
        try store.setLength(fd: fd, id: block.id, length: length)
        Glibc.close(fd)
        self.fd = -1
        return CommitBlock(blockId: block.id, length: length, workerIds: [workerId], storageType: block.storageType)
    }

    func cancel() {
        guard fd >= 0 else { return }
        Glibc.close(fd)
        fd = -1
        if created { store.delete([block.id]) }
    }
}
