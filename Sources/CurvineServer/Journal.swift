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
// Durability (group commit): `append` writes one frame (no fsync) under the
// namespace lock and returns its ticket; the caller then releases the namespace lock
// and calls `waitDurable(ticket)`, which returns once an fdatasync that began after
// the frame was written has completed. The master replies only after that
// (PROTOCOL.md's "journaled" state survives a crash). One waiter at a time runs the
// fdatasync (the leader) for every frame written so far; the others wait for it, so
// concurrent mutations share one sync instead of queueing one sync each behind the
// namespace lock. Frames are written in order, so a durable ticket implies every
// earlier frame is durable too: an acknowledged mutation never depends on one a
// crash could drop. A frame that is cut short or fails its CRC at the end of the
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

final class Journal: @unchecked Sendable {
    let directory: String
    let sync: Bool
    /// Guards `fd` against close during a sync, and the group-commit state below.
    private let state = ConditionLock()
    private var fd: Int32 = -1
    /// Bytes in the journal file (namespace lock).
    private(set) var size: Int = 0
    /// Tickets: frames written so far, and those known durable (state lock).
    private var written: UInt64 = 0
    private var durable: UInt64 = 0
    /// A leader is in fdatasync (state lock).
    private var syncing = false
    /// The first failed fdatasync: every later wait fails (state lock).
    private var syncError: CurvineError?
    /// Group-commit fdatasyncs run so far (tests; state lock).
    private var syncCount: UInt64 = 0
    var syncs: UInt64 { state.withLock { syncCount } }

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

    /// Writes one transaction (namespace lock held) and returns its ticket for
    /// `waitDurable`. Not durable yet.
    func append(_ payload: [UInt8]) throws -> UInt64 {
        var w = ByteWriter()
        w.u32(UInt32(payload.count))
        w.u32(CRC32.checksum(payload))
        w.bytes.append(contentsOf: payload)
        let fd = state.withLock { self.fd }
        guard fd >= 0 else { throw ServerError.io("journal \(journalPath) is closed") }
        try FileUtil.writeAll(fd, w.bytes, path: journalPath)
        size += w.bytes.count
        return state.withLock {
            written += 1
            return written
        }
    }

    /// Returns once the frame of `ticket` is durable (at once when `sync` is off). Call
    /// without the namespace lock. Throws when the fdatasync failed (then every later
    /// wait fails too: the journal's tail is in doubt).
    func waitDurable(_ ticket: UInt64) throws {
        guard sync else { return }
        state.lock()
        defer { state.unlock() }
        while true {
            if let e = syncError { throw e }
            if durable >= ticket { return }
            if syncing {
                state.wait()
                continue
            }
            // Leader: one fdatasync for every frame written so far.
            syncing = true
            let target = written
            let fd = self.fd
            state.unlock()
            let ok = fd >= 0 && fdatasync(fd) == 0
            let err = errno
            state.lock()
            syncing = false
            syncCount += 1
            if ok {
                if target > durable { durable = target }
            } else if fd >= 0 {
                syncError = ServerError.io("fsync \(journalPath): \(String(cString: strerror(err)))")
            } else if durable < ticket {
                syncError = ServerError.io("journal \(journalPath) is closed")
            }
            state.broadcast()
        }
    }

    /// Replaces snapshot + journal with a snapshot of `payload` and an empty journal.
    func compact(snapshot payload: [UInt8]) throws {
        var w = ByteWriter()
        w.bytes = Self.snapshotMagic
        w.u32(CRC32.checksum(payload))
        w.u64(UInt64(payload.count))
        w.bytes.append(contentsOf: payload)
        try FileUtil.writeAtomically(snapshotPath, w.bytes, sync: sync)
        // The snapshot holds every frame written so far: all of them are durable now.
        let fd = state.withLock { () -> Int32 in
            if written > durable { durable = written }
            state.broadcast()
            return self.fd
        }
        if ftruncate(fd, 0) != 0 { throw FileUtil.ioError("truncate", journalPath) }
        if sync { _ = fsync(fd) }
        size = 0
    }

    /// Closes the file once no sync runs; frames written before are made durable first,
    /// so their waiters succeed.
    func close() {
        state.withLock {
            while syncing { state.wait() }
            guard fd >= 0 else { return }
            if sync && written > durable {
                if fdatasync(fd) == 0 { durable = written }
            }
            _ = Glibc.close(fd)
            fd = -1
            state.broadcast()
        }
    }
}
