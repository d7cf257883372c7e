// The master's in-memory inode: one class for directories, files, symlinks and special
// files (FIFO, devices, sockets from mknod), like upstream's InodeView. Inodes are only
// touched under Namespace's lock.
//
// Identity: `id` is the FUSE inode number (FileStatusProto.id). Directories have one
// parent (`parentId`); files may have several names (hard links), counted by `nlink`,
// and know none of them: a name lives only as an edge in a directory's `children`.
//
// Block ids follow upstream's InodeId::create_block_id: (inode id << 24) | seq, so a
// block id names its file and ids are never reused (inode ids never are).
import CurvineClient

/// One block of a file, as the master tracks it.
struct BlockMeta: Equatable {
    var id: Int64
    /// Current logical length (ExtendedBlockProto.block_size).
    var length: Int64
    /// Workers holding a replica (the ones chosen at AddBlock, then the committed ones).
    var workers: [UInt32]
    /// Set when resize (truncate/fallocate) last shaped the block: a block with this and
    /// no workers is a hole that reads as zeros (PROTOCOL.md §6.1 hole blocks).
    var allocated: Bool

    var isHole: Bool { allocated && workers.isEmpty }
}

/// Bits of a block id below the inode id (upstream InodeId::SEQ_BYTES).
let blockSeqBits: Int64 = 24
/// Largest per-file block sequence number (upstream InodeId::SEQ_MASK).
let blockSeqMask: Int64 = (1 << blockSeqBits) - 1
/// Most blocks one file may have here: a truncate-grow with a tiny block size must not
/// make the master build millions of hole blocks (1 Mi blocks = 128 TiB at the default
/// 128 MiB block size, 4 GiB even at 4 KiB).
let maxBlocksPerFile = 1 << 20

final class Inode {
    let id: Int64
    var kind: FileKind
    var mode: UInt32
    var owner: String
    var group: String
    var mtime: Int64
    var atime: Int64
    var ctime: Int64
    /// User-visible extended attributes (never keys starting with NUL: those are
    /// master-internal upstream and stripped on the way in).
    var xattrs: [String: [UInt8]] = [:]
    var locks = InodeLocks()

    // Directories.
    var parentId: Int64 = 0
    var children: [NameKey: Int64] = [:]
    /// Number of children that are directories (nlink = 2 + this).
    var subdirCount = 0
    /// Children keys in byte order; rebuilt lazily after a change (listings sort once
    /// per change burst instead of keeping a sorted array up to date on every insert).
    private var sortedKeysCache: [NameKey]?

    // Files, symlinks, special files.
    var nlink: UInt32 = 1
    var length: Int64 = 0
    var blockSize: Int64 = 0
    var replicas: Int32 = 0
    var blocks: [BlockMeta] = []
    var nextBlockSeq: Int64 = 0
    /// Clients holding the write lease (created or opened it for writing and have not
    /// completed). Empty = complete.
    var writers: [String] = []
    var target: String?

    init(id: Int64, kind: FileKind, mode: UInt32, owner: String, group: String, time: Int64) {
        self.id = id
        self.kind = kind
        self.mode = mode
        self.owner = owner
        self.group = group
        self.mtime = time
        self.atime = time
        self.ctime = time
    }

    var isDir: Bool { kind == .directory }
    var isComplete: Bool { writers.isEmpty }

    // MARK: directory entries

    func child(_ key: NameKey) -> Int64? { children[key] }

    func setChild(_ key: NameKey, _ id: Int64) {
        children[key] = id
        sortedKeysCache = nil
    }

    @discardableResult
    func removeChild(_ key: NameKey) -> Int64? {
        let r = children.removeValue(forKey: key)
        if r != nil { sortedKeysCache = nil }
        return r
    }

    var sortedKeys: [NameKey] {
        if let c = sortedKeysCache { return c }
        let s = children.keys.sorted(by: nameLess)
        sortedKeysCache = s
        return s
    }

    // MARK: files

    func addWriter(_ client: String) {
        if !writers.contains(client) { writers.append(client) }
    }

    func removeWriter(_ client: String) {
        writers.removeAll { $0 == client }
    }

    func blockIndex(_ id: Int64) -> Int? { blocks.firstIndex { $0.id == id } }

    func allocateBlockId() throws -> Int64 {
        guard nextBlockSeq <= blockSeqMask else {
            throw ServerError.common("seq id exceeds maximum value \(blockSeqMask)")
        }
        let id = (self.id << blockSeqBits) | nextBlockSeq
        nextBlockSeq += 1
        return id
    }

    /// Sum of block lengths: what the file's length must equal once blocks are committed.
    var blocksLength: Int64 { blocks.reduce(0) { $0 + $1.length } }

    /// Copies every attribute except identity and directory entries (journal replay of a
    /// "put" onto an inode that already exists).
    func copyAttributes(from o: Inode) {
        kind = o.kind; mode = o.mode; owner = o.owner; group = o.group
        mtime = o.mtime; atime = o.atime; ctime = o.ctime
        xattrs = o.xattrs; locks = o.locks; parentId = o.parentId
        nlink = o.nlink; length = o.length; blockSize = o.blockSize; replicas = o.replicas
        blocks = o.blocks; nextBlockSeq = o.nextBlockSeq; writers = o.writers; target = o.target
    }

    /// The status record for this inode reached as `path` (PROTOCOL.md §6.1).
    func status(path: String, name: String) -> FileStatus {
        switch kind {
        case .directory:
            // Upstream: is_complete false, len = number of children, no blocks.
            return FileStatus(id: id, path: path, name: name, kind: .directory, isComplete: false,
                              length: Int64(children.count), mtimeMs: mtime, atimeMs: atime, ctimeMs: ctime,
                              mode: mode, owner: owner, group: group, nlink: UInt32(2 + subdirCount),
                              target: nil, blockSize: 0, replicas: 0, childrenCount: Int32(children.count),
                              xattrs: xattrs)
        case .symlink:
            // len = target length (PROTOCOL.md §6.1 FileStatusProto.len).
            return FileStatus(id: id, path: path, name: name, kind: .symlink, isComplete: true,
                              length: Int64(target?.utf8.count ?? 0), mtimeMs: mtime, atimeMs: atime,
                              ctimeMs: ctime, mode: mode, owner: owner, group: group, nlink: nlink,
                              target: target, blockSize: blockSize, replicas: replicas, childrenCount: 0,
                              xattrs: xattrs)
        default:
            return FileStatus(id: id, path: path, name: name, kind: kind, isComplete: isComplete,
                              length: length, mtimeMs: mtime, atimeMs: atime, ctimeMs: ctime,
                              mode: mode, owner: owner, group: group, nlink: nlink, target: nil,
                              blockSize: blockSize, replicas: replicas, childrenCount: 0, xattrs: xattrs)
        }
    }
}
