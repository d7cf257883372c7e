// Durable storage of the master's namespace: an append-only journal of transactions
// plus a compacting snapshot, in one directory.
//
//   <dir>/snapshot   "CVNSNAP1" | u32 crc32(payload) | u64 payload length | payload
//   <dir>/journal    frames:  u32 payload length | u32 crc32(payload) | payload
//
// (integers little-endian). Payloads are opaque here; NamespaceCodec.swift defines
// them. Every transaction payload starts with its sequence number and the snapshot
// records the last sequence it contains, so replay = load the snapshot, then apply
// journal transactions with a larger sequence number.
//
// Durability: `append` writes one frame and, when `sync` is on, fsyncs before
// returning — the master replies only after that (PROTOCOL.md's "journaled" state
// survives a crash). A frame that is cut short or fails its CRC at the end of the
// journal is a torn write from a crash: it is dropped and the file truncated to the
// last good frame, so later appends follow valid data.
//
// Compaction: when the journal passes a size threshold the namespace writes a full
// snapshot; the snapshot is written to snapshot.tmp, fsynced, renamed over the old one
// (atomic), and only then is the journal truncated to zero. A crash between the two
// steps leaves an old journal whose sequence numbers are all covered by the new
// snapshot, so replay skips them.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CurvineClient

final class Journal {
    let directory: String
    let sync: Bool
    private var fd: Int32 = -1
    /// Bytes in the journal file.
    private(set) var size: Int = 0

    private var journalPath: String { directory + "/journal" }
    private var snapshotPath: String { directory + "/snapshot" }

    /// 8-byte magic at the start of a snapshot file (format version 1).
    private static let snapshotMagic: [UInt8] = Array("CVNSNAP1".utf8)
    /// Largest journal frame we accept when reading: one transaction carries at most
    /// a few inodes, so anything larger is corruption, not data.
    private static let maxFrame = 256 << 20

    struct Contents {
        var snapshot: [UInt8]?
        var transactions: [[UInt8]]
        /// Bytes of torn or corrupt tail dropped from the journal.
        var droppedTailBytes: Int
    }

    init(directory: String, sync: Bool) {
        self.directory = directory
        self.sync = sync
    }

    deinit { close() }

    /// Reads the snapshot and the journal, repairs a torn tail, and opens the journal
    /// for appending.
    func open() throws -> Contents {
        try FileUtil.makeDirectories(directory)
        var snapshot: [UInt8]?
        if let raw = try FileUtil.readAll(snapshotPath) {
            snapshot = try Self.unwrapSnapshot(raw, path: snapshotPath)
        }
        var txns: [[UInt8]] = []
        var good = 0
        var dropped = 0
        if let raw = try FileUtil.readAll(journalPath) {
            var pos = 0
            while raw.count - pos >= 8 {
                var r = ByteReader(Array(raw[pos..<(pos + 8)]))
                let len = Int(try r.u32())
                let crc = try r.u32()
                guard len <= Self.maxFrame, raw.count - pos - 8 >= len else { break }
                let payload = Array(raw[(pos + 8)..<(pos + 8 + len)])
                guard CRC32.checksum(payload) == crc else { break }
                txns.append(payload)
                pos += 8 + len
                good = pos
            }
            dropped = raw.count - good
        }
        fd = Glibc.open(journalPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        if fd < 0 { throw FileUtil.ioError("open", journalPath) }
        if dropped > 0 {
            if ftruncate(fd, off_t(good)) != 0 { throw FileUtil.ioError("truncate", journalPath) }
            if sync { _ = fsync(fd) }
        }
        size = good
        if sync { FileUtil.fsyncDirectory(directory) }
        return Contents(snapshot: snapshot, transactions: txns, droppedTailBytes: dropped)
    }

    private static func unwrapSnapshot(_ raw: [UInt8], path: String) throws -> [UInt8] {
        guard raw.count >= 20, Array(raw[0..<8]) == snapshotMagic else {
            throw ServerError.io("snapshot \(path) is not a namespace snapshot (bad magic)")
        }
        var r = ByteReader(Array(raw[8..<20]))
        let crc = try r.u32()
        let len = try r.u64()
        guard UInt64(raw.count - 20) == len else {
            throw ServerError.io("snapshot \(path) is truncated: \(raw.count - 20) of \(len) bytes")
        }
        let payload = Array(raw[20...])
        guard CRC32.checksum(payload) == crc else {
            throw ServerError.io("snapshot \(path) fails its checksum")
        }
        return payload
    }

    /// Appends one transaction; durable on return when `sync` is on.
    func append(_ payload: [UInt8]) throws {
        guard fd >= 0 else { throw ServerError.io("journal \(journalPath) is closed") }
        var w = ByteWriter()
        w.u32(UInt32(payload.count))
        w.u32(CRC32.checksum(payload))
        w.bytes.append(contentsOf: payload)
        try FileUtil.writeAll(fd, w.bytes, path: journalPath)
        if sync && fdatasync(fd) != 0 { throw FileUtil.ioError("fsync", journalPath) }
        size += w.bytes.count
    }

    /// Replaces snapshot + journal with a snapshot of `payload` and an empty journal.
    func compact(snapshot payload: [UInt8]) throws {
        var w = ByteWriter()
        w.bytes = Self.snapshotMagic
        w.u32(CRC32.checksum(payload))
        w.u64(UInt64(payload.count))
        w.bytes.append(contentsOf: payload)
        try FileUtil.writeAtomically(snapshotPath, w.bytes, sync: sync)
        if ftruncate(fd, 0) != 0 { throw FileUtil.ioError("truncate", journalPath) }
        if sync { _ = fsync(fd) }
        size = 0
    }

    func close() {
        if fd >= 0 { _ = Glibc.close(fd); fd = -1 }
    }
}
