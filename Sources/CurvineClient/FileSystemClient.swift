// The client as the file-system core sees it. The real implementation is
// CurvineClient (master + workers over the wire); tests use a mock and a
// fault-injecting wrapper. Every method throws CurvineError, which carries its errno.
// Paths are absolute Curvine paths ("/a/b"). Calls are synchronous and thread-safe:
// callers run them on their own threads (FUSE workers, io threads).

public protocol CurvineFileSystem: AnyObject, Sendable {
    /// This client's identity (lease holder, lock client id).
    var clientName: String { get }

    func fileStatus(_ path: String) throws -> FileStatus
    func exists(_ path: String) throws -> Bool
    /// One page of a directory in byte-wise name order, strictly after `startAfter`.
    func listPage(_ path: String, startAfter: String?, limit: Int) throws -> [FileStatus]
    func mkdir(_ path: String, mode: UInt32, owner: String, group: String, createParent: Bool) throws -> FileStatus
    func createFile(_ path: String, options: CreateOptions) throws -> FileStatus
    /// Opens an existing file for writing (takes the lease) and returns its blocks.
    func openForWrite(_ path: String, append: Bool) throws -> FileBlocks
    func blockLocations(_ path: String) throws -> FileBlocks
    func delete(_ path: String, recursive: Bool) throws
    func rename(_ src: String, to dst: String, flags: RenameFlags) throws
    func setAttr(_ path: String, _ options: SetAttrOptions) throws -> FileStatus
    func symlink(target: String, link: String, mode: UInt32, owner: String?, group: String?) throws
    func link(_ src: String, to dst: String) throws
    /// truncate (truncate=true) or fallocate (mode: KEEP_SIZE=1) to `length`.
    func resize(_ path: String, length: Int64, truncate: Bool, mode: Int32) throws -> FileBlocks
    func addBlock(_ path: String, commit: [CommitBlock], fileLength: Int64, inodeId: Int64,
                  excludeWorkers: [UInt32]) throws -> LocatedBlock
    func completeFile(_ path: String, length: Int64, commit: [CommitBlock], onlyFlush: Bool, inodeId: Int64) throws
    func filesystemInfo() throws -> FilesystemInfo
    func getLock(_ path: String, _ lock: FileLock) throws -> FileLock?
    /// Returns the conflicting lock, or nil when granted.
    func setLock(_ path: String, _ lock: FileLock) throws -> FileLock?

    /// A read stream over one block, positioned at `offset` within it.
    func openBlockReader(_ block: LocatedBlock, offset: Int64) throws -> BlockReader
    /// A write stream into one block (capacity = the file's block size), at `offset`.
    func openBlockWriter(_ block: LocatedBlock, offset: Int64, capacity: Int64) throws -> BlockWriter
}

/// Reads one block. Not thread-safe: one user at a time.
public protocol BlockReader: AnyObject {
    /// Logical length of the block.
    var length: Int64 { get }
    /// When short-circuit was granted: an fd open on the local block file (offsets 1:1
    /// with the block), owned by the reader; the caller may pread/splice from it.
    var localFileDescriptor: Int32? { get }
    /// Path of the local block file, when short-circuit was granted.
    var localPath: String? { get }
    /// Reads up to `buffer.count` bytes starting at `offset` within the block; returns
    /// the bytes read (0 only at or past the end of the block).
    func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    func close()
}

/// Writes one block. Not thread-safe: one user at a time.
public protocol BlockWriter: AnyObject {
    /// Writes at `offset` within the block (seeking when it differs from the position).
    func write(at offset: Int64, _ bytes: UnsafeRawBufferPointer) throws
    /// Pushes buffered bytes to the worker (durable on the worker when it returns).
    func flush() throws
    /// Commits the block with its final length; the writer is finished afterwards.
    func commit(length: Int64) throws -> CommitBlock
    /// Aborts the stream; the writer is finished afterwards.
    func cancel()
}
