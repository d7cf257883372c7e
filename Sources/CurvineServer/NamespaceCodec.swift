// What a namespace mutation writes to the journal, and the snapshot layout
// (Journal.swift frames them). The journal is a physical redo log: a transaction
// carries the resulting state of every inode it touched ("put"), the directory-entry
// changes in order ("link"/"unlink") and the inodes it removed ("delete"). Replay
// applies puts, then entry changes in order, then deletes; every record is idempotent,
// so replaying it on a state that already contains it changes nothing. This keeps
// replay independent of the operation logic (clock, worker choice, validation).
//
// Transaction payload (little-endian, BinaryCodec.swift):
//   u8 version(1) | u64 seq | i64 nextInodeId
//   u32 n | n × inode
//   u32 n | n × (u8 op: 1 link | 2 unlink, i64 parent, blob name, [i64 child if link])
//   u32 n | n × i64 deleted inode id
// Snapshot payload:
//   u8 version(1) | u64 seq | i64 nextInodeId | u32 n | n × inode
//   u32 n | n × (i64 parent, blob name, i64 child)
// Inode:
//   i64 id | u8 kind | u32 mode | str owner | str group | i64 mtime | i64 atime | i64 ctime
//   u32 n × (str key, blob value) xattrs | u32 n × lock | i64 parentId | u32 nlink
//   i64 length | i64 blockSize | i32 replicas | i64 nextBlockSeq | u32 n × str writers
//   u8 hasTarget [str target] | u32 n × (i64 id, i64 length, u8 allocated, u32 n × u32 worker)
// Lock:
//   str clientId | u64 ownerId | u32 pid | u64 acquireTime | u8 type | u8 flavor | u64 start | u64 end
import CurvineClient

/// Format version of payloads written by this code.
let namespaceFormatVersion: UInt8 = 1

enum EdgeOp {
    case link(parent: Int64, name: NameKey, child: Int64)
    case unlink(parent: Int64, name: NameKey)
}

/// Blocks a mutation released or shortened: the block store deletes / truncates them.
public struct BlockRef: Sendable, Equatable {
    public var id: Int64
    /// New length for a truncation; the released length for a deletion.
    public var length: Int64
    public var workers: [UInt32]
}

public struct BlockEvents: Sendable, Equatable {
    public var deleted: [BlockRef] = []
    public var truncated: [BlockRef] = []
    public var isEmpty: Bool { deleted.isEmpty && truncated.isEmpty }
}

/// The records of one mutation, collected while it runs.
struct Txn {
    private(set) var puts: [Int64: Inode] = [:]
    private(set) var putOrder: [Int64] = []
    private(set) var edges: [EdgeOp] = []
    private(set) var deletes: [Int64] = []
    var events = BlockEvents()

    var isEmpty: Bool { puts.isEmpty && edges.isEmpty && deletes.isEmpty }

    mutating func put(_ i: Inode) {
        if puts.updateValue(i, forKey: i.id) == nil { putOrder.append(i.id) }
    }
    mutating func link(_ parent: Int64, _ name: NameKey, _ child: Int64) {
        edges.append(.link(parent: parent, name: name, child: child))
    }
    mutating func unlink(_ parent: Int64, _ name: NameKey) {
        edges.append(.unlink(parent: parent, name: name))
    }
    mutating func delete(_ id: Int64) {
        deletes.append(id)
    }

    func encode(seq: UInt64, nextInodeId: Int64) -> [UInt8] {
        var w = ByteWriter()
        w.u8(namespaceFormatVersion)
        w.u64(seq)
        w.i64(nextInodeId)
        let deleted = Set(deletes)
        let live = putOrder.filter { !deleted.contains($0) }
        w.u32(UInt32(live.count))
        for id in live { NamespaceCodec.encode(puts[id]!, &w) }
        w.u32(UInt32(edges.count))
        for e in edges {
            switch e {
            case .link(let p, let n, let c): w.u8(1); w.i64(p); w.blob(n); w.i64(c)
            case .unlink(let p, let n): w.u8(2); w.i64(p); w.blob(n)
            }
        }
        w.u32(UInt32(deletes.count))
        for d in deletes { w.i64(d) }
        return w.bytes
    }
}

/// A decoded transaction, ready to replay.
struct DecodedTxn {
    var seq: UInt64
    var nextInodeId: Int64
    var puts: [Inode]
    var edges: [EdgeOp]
    var deletes: [Int64]
}

struct DecodedSnapshot {
    var seq: UInt64
    var nextInodeId: Int64
    var inodes: [Inode]
    var edges: [(parent: Int64, name: NameKey, child: Int64)]
}

enum NamespaceCodec {
    static func encode(_ i: Inode, _ w: inout ByteWriter) {
        w.i64(i.id)
        w.u8(UInt8(truncatingIfNeeded: i.kind.rawValue))
        w.u32(i.mode)
        w.string(i.owner)
        w.string(i.group)
        w.i64(i.mtime); w.i64(i.atime); w.i64(i.ctime)
        let keys = i.xattrs.keys.sorted { nameLess(nameKey($0), nameKey($1)) }
        w.u32(UInt32(keys.count))
        for k in keys { w.string(k); w.blob(i.xattrs[k]!) }
        let locks = i.locks.all
        w.u32(UInt32(locks.count))
        for l in locks {
            w.string(l.clientId); w.u64(l.ownerId); w.u32(l.pid); w.u64(l.acquireTimeMs)
            w.u8(UInt8(truncatingIfNeeded: l.type.rawValue)); w.u8(UInt8(truncatingIfNeeded: l.flavor.rawValue))
            w.u64(l.start); w.u64(l.end)
        }
        w.i64(i.parentId)
        w.u32(i.nlink)
        w.i64(i.length); w.i64(i.blockSize); w.i32(i.replicas); w.i64(i.nextBlockSeq)
        w.u32(UInt32(i.writers.count))
        for c in i.writers { w.string(c) }
        if let t = i.target { w.bool(true); w.string(t) } else { w.bool(false) }
        w.u32(UInt32(i.blocks.count))
        for b in i.blocks {
            w.i64(b.id); w.i64(b.length); w.bool(b.allocated)
            w.u32(UInt32(b.workers.count))
            for x in b.workers { w.u32(x) }
        }
    }

    static func decodeInode(_ r: inout ByteReader) throws -> Inode {
        let id = try r.i64()
        let kindRaw = try r.u8()
        guard let kind = FileKind(rawValue: Int32(kindRaw)) else {
            throw DecodeError(description: "inode \(id) has unknown kind \(kindRaw)")
        }
        let mode = try r.u32()
        let owner = try r.string()
        let group = try r.string()
        let mtime = try r.i64(), atime = try r.i64(), ctime = try r.i64()
        let i = Inode(id: id, kind: kind, mode: mode, owner: owner, group: group, time: mtime)
        i.atime = atime
        i.ctime = ctime
        for _ in 0..<(try r.count()) {
            let k = try r.string()
            i.xattrs[k] = try r.blob()
        }
        var locks: [FileLock] = []
        for _ in 0..<(try r.count()) {
            let client = try r.string(), owner = try r.u64(), pid = try r.u32(), at = try r.u64()
            let t = try r.u8(), f = try r.u8(), s = try r.u64(), e = try r.u64()
            guard let type = LockType(rawValue: Int32(t)), let flavor = LockFlavor(rawValue: Int32(f)) else {
                throw DecodeError(description: "inode \(id) has a lock of unknown type \(t)/\(f)")
            }
            locks.append(FileLock(clientId: client, ownerId: owner, pid: pid, acquireTimeMs: at,
                                  type: type, flavor: flavor, start: s, end: e))
        }
        i.locks = InodeLocks(locks)
        i.parentId = try r.i64()
        i.nlink = try r.u32()
        i.length = try r.i64()
        i.blockSize = try r.i64()
        i.replicas = try r.i32()
        i.nextBlockSeq = try r.i64()
        for _ in 0..<(try r.count()) { i.writers.append(try r.string()) }
        if try r.bool() { i.target = try r.string() }
        for _ in 0..<(try r.count()) {
            let bid = try r.i64(), len = try r.i64(), alloc = try r.bool()
            var ws: [UInt32] = []
            for _ in 0..<(try r.count()) { ws.append(try r.u32()) }
            i.blocks.append(BlockMeta(id: bid, length: len, workers: ws, allocated: alloc))
        }
        return i
    }

    private static func checkVersion(_ r: inout ByteReader) throws {
        let v = try r.u8()
        guard v == namespaceFormatVersion else {
            throw DecodeError(description: "namespace format version \(v) is not supported (expected \(namespaceFormatVersion))")
        }
    }

    static func decodeTxn(_ bytes: [UInt8]) throws -> DecodedTxn {
        var r = ByteReader(bytes)
        try checkVersion(&r)
        let seq = try r.u64()
        let next = try r.i64()
        var puts: [Inode] = []
        for _ in 0..<(try r.count()) { puts.append(try decodeInode(&r)) }
        var edges: [EdgeOp] = []
        for _ in 0..<(try r.count()) {
            let op = try r.u8()
            let p = try r.i64()
            let n = try r.blob()
            switch op {
            case 1: edges.append(.link(parent: p, name: n, child: try r.i64()))
            case 2: edges.append(.unlink(parent: p, name: n))
            default: throw DecodeError(description: "unknown directory-entry op \(op)")
            }
        }
        var deletes: [Int64] = []
        for _ in 0..<(try r.count()) { deletes.append(try r.i64()) }
        return DecodedTxn(seq: seq, nextInodeId: next, puts: puts, edges: edges, deletes: deletes)
    }

    static func encodeSnapshot(seq: UInt64, nextInodeId: Int64, inodes: [Int64: Inode]) -> [UInt8] {
        var w = ByteWriter()
        w.u8(namespaceFormatVersion)
        w.u64(seq)
        w.i64(nextInodeId)
        let ids = inodes.keys.sorted()
        w.u32(UInt32(ids.count))
        for id in ids { encode(inodes[id]!, &w) }
        var n = 0
        var edges = ByteWriter()
        for id in ids {
            let dir = inodes[id]!
            guard dir.isDir else { continue }
            for k in dir.sortedKeys {
                edges.i64(id); edges.blob(k); edges.i64(dir.children[k]!)
                n += 1
            }
        }
        w.u32(UInt32(n))
        w.bytes.append(contentsOf: edges.bytes)
        return w.bytes
    }

    static func decodeSnapshot(_ bytes: [UInt8]) throws -> DecodedSnapshot {
        var r = ByteReader(bytes)
        try checkVersion(&r)
        let seq = try r.u64()
        let next = try r.i64()
        var inodes: [Inode] = []
        for _ in 0..<(try r.count()) { inodes.append(try decodeInode(&r)) }
        var edges: [(parent: Int64, name: NameKey, child: Int64)] = []
        for _ in 0..<(try r.count()) {
            let p = try r.i64(), n = try r.blob(), c = try r.i64()
            edges.append((p, n, c))
        }
        return DecodedSnapshot(seq: seq, nextInodeId: next, inodes: inodes, edges: edges)
    }
}
