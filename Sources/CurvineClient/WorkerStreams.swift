// Block streams to workers (PROTOCOL.md §3.2 write, §3.3 read, §3.4 short-circuit).
//
// A worker connection carries one stream at a time and every frame is answered
// before the next is sent (stop-and-wait). All frames of a stream share its req_id;
// seq_id is 0 for Open and counts up from 1. A stream that ends cleanly (Complete or
// Cancel answered) returns its connection to the per-worker idle pool; any error
// closes the connection.
import CurvineProto
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Idle worker connections, reused after clean stream ends.
final class WorkerConnectionPool: @unchecked Sendable {
    private let lock = Lock()
    private var idle: [HostPort: [TCPSocket]] = [:]
    /// Idle sockets kept per worker: enough for a few concurrent streams per file.
    private let maxIdlePerWorker = 16
    let connectTimeoutMs: Int

    init(connectTimeoutMs: Int) { self.connectTimeoutMs = connectTimeoutMs }

    /// An idle connection when one exists (`reused` true), else a new one.
    func take(_ hp: HostPort) throws -> (socket: TCPSocket, reused: Bool) {
        if let s = lock.withLock({ idle[hp]?.popLast() }) { return (s, true) }
        return (try TCPSocket.connect(hp, timeoutMs: connectTimeoutMs), false)
    }

    /// Runs `open` on a pooled connection; when the connection breaks before the Open is
    /// answered (an idle connection the worker closed since, or a drop mid-Open), retries
    /// once on a fresh one. Safe: a worker drops its stream handler with the connection,
    /// so the first Open left nothing behind.
    func openStream<T>(_ hp: HostPort, _ open: (TCPSocket) throws -> T) throws -> T {
        let (sock, _) = try take(hp)
        do {
            return try open(sock)
        } catch let e as CurvineError where e.source == .transport {
            sock.close()
            return try open(try TCPSocket.connect(hp, timeoutMs: connectTimeoutMs))
        } catch {
            sock.close()
            throw error
        }
    }

    func give(_ s: TCPSocket) {
        lock.withLock {
            var list = idle[s.peer] ?? []
            if list.count < maxIdlePerWorker { list.append(s); idle[s.peer] = list } else { s.close() }
        }
    }

    func closeAll() {
        lock.withLock { for (_, l) in idle { l.forEach { $0.close() } }; idle.removeAll() }
    }
}

/// Shared settings of block streams.
struct StreamSettings: Sendable {
    var clientName: String
    var localHostname: String
    var shortCircuit: Bool
    var readChunkSize: Int
    var writeChunkSize: Int
    var dataTimeoutMs: Int
    /// Running requests of a read stream sent ahead of their replies (1 = stop-and-wait).
    var readPipelineDepth: Int = 8
    /// Running frames of a write stream sent ahead of their acknowledgements.
    var writePipelineDepth: Int = 8
}

/// One request/response exchange on a stream connection.
struct StreamChannel {
    let socket: TCPSocket
    let code: RpcCode
    let reqId: Int64
    var seq: Int32 = 0
    let timeoutMs: Int

    mutating func exchange(_ req: RequestStatus, header: [UInt8], data: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) throws -> Frame {
        let mySeq = try send(req, header: header, data: data)
        return try receive(seq: mySeq)
    }

    /// Sends one frame of the stream without waiting for its reply; returns its seq_id.
    mutating func send(_ req: RequestStatus, header: [UInt8], data: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) throws -> Int32 {
        let mySeq = seq
        seq += 1
        let deadline = monotonicNs() &+ msToNs(timeoutMs)
        try socket.writeFrame(code: code.rawValue, status: statusByte(req, .undefined), reqId: reqId, seqId: mySeq,
                              header: header, data: data, deadlineNs: deadline)
        return mySeq
    }

    /// Reads the reply to frame `mySeq`; replies come in the order the frames were sent.
    func receive(seq mySeq: Int32) throws -> Frame {
        let deadline = monotonicNs() &+ msToNs(timeoutMs)
        guard let f = try socket.readFrame(deadlineNs: deadline) else {
            throw CurvineError.transport("worker \(socket.peer) closed the stream")
        }
        try check(f, seq: mySeq)
        return f
    }

    /// Sends a Running request and reads the reply's data straight into `into` when it fits.
    mutating func runningRead(header: [UInt8], into: UnsafeMutableRawBufferPointer, spill: inout [UInt8]) throws -> (direct: Int, spilled: Int) {
        let mySeq = try sendRunning(header: header)
        return try receiveRunning(seq: mySeq, into: into, spill: &spill)
    }

    /// Sends a Running request without waiting for its reply; returns its seq_id.
    /// Pipelining: the worker answers the frames of a connection one by one, in order,
    /// each with its own seq_id (§3.3), so several Running requests may be sent before
    /// their replies are read with `receiveRunning`, in the same order.
    mutating func sendRunning(header: [UInt8]) throws -> Int32 {
        try send(.running, header: header)
    }

    /// Reads the reply to the Running request `mySeq` (sent with `sendRunning`), its data
    /// straight into `into` when it fits; the rest goes to `spill`.
    func receiveRunning(seq mySeq: Int32, into: UnsafeMutableRawBufferPointer, spill: inout [UInt8]) throws -> (direct: Int, spilled: Int) {
        let deadline = monotonicNs() &+ msToNs(timeoutMs)
        var raw = (UInt64(0), UInt64(0), UInt32(0), UInt16(0))
        let p = try withUnsafeMutableBytes(of: &raw) { b -> FramePrefix in
            guard try socket.readExact(b.baseAddress!, framePrefixSize, deadlineNs: deadline) else {
                throw CurvineError.transport("worker \(socket.peer) closed the stream")
            }
            return try socket.parseFramePrefix(UnsafeRawBufferPointer(rebasing: b[0..<framePrefixSize]))
        }
        var hdr = [UInt8]()
        if p.headerLength > 0 {
            hdr = [UInt8](repeating: 0, count: p.headerLength)
            _ = try hdr.withUnsafeMutableBytes { try socket.readExact($0.baseAddress!, p.headerLength, deadlineNs: deadline) }
        }
        let f = Frame(code: p.code, status: p.status, reqId: p.reqId, seqId: p.seqId, header: hdr)
        if f.isError || p.dataLength > into.count {
            // Errors and oversize chunks go through an owned buffer.
            var data = [UInt8](repeating: 0, count: p.dataLength)
            if p.dataLength > 0 {
                _ = try data.withUnsafeMutableBytes { try socket.readExact($0.baseAddress!, p.dataLength, deadlineNs: deadline) }
            }
            var full = f
            full.data = data
            try check(full, seq: mySeq)
            let n = min(into.count, data.count)
            data.withUnsafeBytes { into.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: n) }
            spill = Array(data[n...])
            return (n, data.count - n)
        }
        try check(f, seq: mySeq)
        if p.dataLength > 0 {
            _ = try socket.readExact(into.baseAddress!, p.dataLength, deadlineNs: deadline)
        }
        return (p.dataLength, 0)
    }

    private func check(_ f: Frame, seq: Int32) throws {
        guard f.reqId == reqId, f.seqId == seq, f.code == code.rawValue else {
            throw CurvineError.protocolViolation("worker \(socket.peer) answered req \(f.reqId)/seq \(f.seqId), expected \(reqId)/\(seq)")
        }
        if f.isError { throw ErrorPayload.decode(f.data) }
    }
}

// MARK: - Read

/// A block read stream. It fails over: when the stream breaks mid-read (worker killed
/// or restarted, connection dropped, reply timed out or malformed), the read is retried
/// from its start on the next replica, each replica at most once per read. The worker
/// that just failed is retried last, and only after a transport error (a restarted
/// worker or a stale pooled connection), never after a timeout (a hung worker would
/// just time out again). Worst case for one read: (replicas) × (connect + data timeout).
final class RemoteBlockReader: BlockReader {
    let block: LocatedBlock
    let length: Int64
    private(set) var localFileDescriptor: Int32?
    private(set) var localPath: String?
    private var channel: StreamChannel?
    private let pool: WorkerConnectionPool
    private let settings: StreamSettings
    /// Replicas in preference order; `current` is the one the stream is open on.
    private let workers: [WorkerAddress]
    private var current = 0
    private var pos: Int64
    /// Bytes of a chunk that did not fit the caller's buffer, starting at `spillOffset`.
    private var spill: [UInt8] = []
    private var spillOffset: Int64 = 0
    private var closed = false

    /// Opens a stream on the first replica of `workers` that accepts it.
    init(block: LocatedBlock, workers: [WorkerAddress], offset: Int64, settings: StreamSettings, pool: WorkerConnectionPool) throws {
        self.block = block
        self.length = block.length
        self.pool = pool
        self.settings = settings
        self.workers = workers
        self.pos = offset
        var lastError: Error = CurvineError.local(EIO, "block \(block.id) has no replica")
        for i in workers.indices {
            do {
                try openStream(i, offset: offset)
                return
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    private func openStream(_ i: Int, offset: Int64, allowLocal: Bool = true) throws {
        let worker = workers[i]
        let hp = HostPort(host: worker.ipAddr, port: UInt16(truncatingIfNeeded: worker.rpcPort))
        let wantLocal = allowLocal && settings.shortCircuit && !block.hasSpdk && worker.hostname == settings.localHostname
        // read_ahead_len 4 MiB: the worker-side OS read-ahead hint, upstream's default.
        let req = Requests.blockReadOpen(id: block.id, off: offset, len: block.length,
                                         chunkSize: Int32(settings.readChunkSize), shortCircuit: wantLocal,
                                         readAheadLen: 4 * 1024 * 1024)
        let settings = self.settings
        let (ch, resp) = try pool.openStream(hp) { sock -> (StreamChannel, Proto_BlockReadResponse) in
            var ch = StreamChannel(socket: sock, code: .readBlock, reqId: MasterClient.newRequestId(), timeoutMs: settings.dataTimeoutMs)
            let reply = try ch.exchange(.open, header: Wire.encode(req))
            return (ch, try Wire.decode(Proto_BlockReadResponse.self, reply.header))
        }
        if wantLocal, resp.hasPath, !resp.path.isEmpty {
            let fd = open(resp.path, O_RDONLY | O_CLOEXEC)
            if fd < 0 {
                // Short-circuit was granted, so the worker keeps no remote stream for us,
                // but the file cannot be opened here (EMFILE, permissions, another mount
                // namespace): open a remote stream instead.
                ch.socket.close()
                return try openStream(i, offset: offset, allowLocal: false)
            }
            localFileDescriptor = fd
            localPath = resp.path
        }
        channel = ch
        current = i
        pos = offset
        spill.removeAll()
    }

    func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard offset < length, buffer.count > 0 else { return 0 }
        let want = Int(min(Int64(buffer.count), length - offset))
        if let fd = localFileDescriptor {
            var got = 0
            while got < want {
                let n = pread(fd, buffer.baseAddress! + got, want - got, off_t(offset) + off_t(got))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw CurvineError.local(EIO, "read of local block file \(localPath ?? "?") failed: \(String(cString: strerror(errno)))")
                }
                if n == 0 {
                    // Sparse tail of a block reads as zeros (§3.3).
                    (buffer.baseAddress! + got).initializeMemory(as: UInt8.self, repeating: 0, count: want - got)
                    got = want
                    break
                }
                got += n
            }
            return got
        }
        guard !closed else { throw CurvineError.local(EBADF, "block reader is closed") }
        var tried: Set<Int> = []
        var retriedSame = false
        while true {
            do {
                return try readRemote(at: offset, want: want, into: buffer)
            } catch let e as CurvineError where e.source != .local {
                // The stream is broken: drop it and reopen at `offset` on another replica.
                let failed = current
                tried.insert(failed)
                channel?.socket.close()
                channel = nil
                spill.removeAll()
                var order = workers.indices.filter { !tried.contains($0) }
                if e.source == .transport && !retriedSame { order.append(failed) }
                var lastError: Error = e
                var reopened = false
                for i in order {
                    if i == failed { retriedSame = true } else { tried.insert(i) }
                    do {
                        try openStream(i, offset: offset)
                        reopened = true
                        break
                    } catch {
                        lastError = error
                    }
                }
                guard reopened else { throw lastError }
                // A local replica answers from its block file.
                if localFileDescriptor != nil { return try read(at: offset, into: buffer) }
            }
        }
    }

    private func readRemote(at offset: Int64, want: Int, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var got = 0
        // Serve from the spill of the previous chunk first.
        if !spill.isEmpty, offset >= spillOffset, offset < spillOffset + Int64(spill.count) {
            let start = Int(offset - spillOffset)
            let n = min(want, spill.count - start)
            spill.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + start, byteCount: n) }
            got = n
            pos = offset + Int64(n)
            if start + n == spill.count { spill.removeAll(keepingCapacity: true) }
            if got == want { return got }
        } else {
            spill.removeAll(keepingCapacity: true)
        }
        guard var ch = channel else { throw CurvineError.transport("block \(block.id): no open stream") }
        defer { channel = ch }
        let cur = offset + Int64(got)
        var header: [UInt8] = []
        if cur != pos {
            var h = Proto_DataHeaderProto()
            h.offset = cur
            h.flush = false
            h.isLast = false
            header = Wire.encode(h)
            pos = cur
        }
        // Pipelined: the Running requests for every chunk the read needs go out up to
        // `readPipelineDepth` ahead of the replies, so a large read streams instead of
        // paying one round trip per chunk. Each request yields min(chunk, len - pos)
        // bytes, so exactly ceil(needed / chunk) requests cover the read, and none
        // starts at or past the block's end (which the worker answers with an error).
        // Any error breaks the stream (the caller closes it), so replies still in
        // flight never reach a later read.
        let chunk = max(1, settings.readChunkSize)
        let needed = want - got
        let total = (needed + chunk - 1) / chunk
        let depth = max(1, settings.readPipelineDepth)
        var sent = 0
        var seqs: [Int32] = []
        seqs.reserveCapacity(min(total, depth))
        var received = 0
        while got < want {
            while sent < total && sent - received < depth {
                seqs.append(try ch.sendRunning(header: header))
                header = []
                sent += 1
            }
            let dest = UnsafeMutableRawBufferPointer(rebasing: buffer[got..<want])
            var sp: [UInt8] = []
            let (direct, spilled) = try ch.receiveRunning(seq: seqs[received], into: dest, spill: &sp)
            received += 1
            if direct == 0 && spilled == 0 {
                throw CurvineError.protocolViolation("worker sent an empty chunk for block \(block.id) at \(pos)")
            }
            got += direct
            pos += Int64(direct)
            if spilled > 0 {
                spill = sp
                spillOffset = pos
                pos += Int64(spilled)
            }
            if got < want && received == sent && sent == total {
                // Short chunks (a worker with a smaller chunk than asked): ask for more.
                seqs.append(try ch.sendRunning(header: header))
                sent += 1
            }
        }
        if received < sent {
            // Replies we no longer need (a worker with larger chunks than asked): the
            // stream's position is unknown, so it cannot be reused.
            throw CurvineError.protocolViolation("worker sent larger chunks than asked for block \(block.id)")
        }
        return got
    }

    func close() {
        guard !closed else { return }
        closed = true
        if let fd = localFileDescriptor { Glibc.close(fd); localFileDescriptor = nil }
        guard var ch = channel else { return }
        channel = nil
        var req = Proto_BlockReadRequest()
        req.id = block.id
        req.off = 0
        req.len = 0
        req.chunkSize = 0
        req.shortCircuit = false
        req.enableReadAhead = true
        req.readAheadLen = 4 * 1024 * 1024
        req.dropCacheLen = 1024 * 1024
        do {
            _ = try ch.exchange(.complete, header: Wire.encode(req))
            pool.give(ch.socket)
        } catch {
            ch.socket.close()
        }
    }

    deinit { close() }
}

// MARK: - Write

final class RemoteBlockWriter: BlockWriter {
    let block: LocatedBlock
    let capacity: Int64
    private var channels: [(StreamChannel, WorkerAddress, Int32?)] = []  // (stream, worker, local fd)
    private let pool: WorkerConnectionPool
    private let settings: StreamSettings
    private var pos: Int64
    private var finished = false

    init(block: LocatedBlock, offset: Int64, capacity: Int64, settings: StreamSettings, pool: WorkerConnectionPool) throws {
        self.block = block
        self.capacity = capacity
        self.pool = pool
        self.settings = settings
        self.pos = offset
        guard !block.locations.isEmpty else {
            throw CurvineError.local(EIO, "block \(block.id) has no worker to write to")
        }
        do {
            for w in block.locations { try openStream(w, offset: offset) }
        } catch {
            cancel()
            throw error
        }
    }

    private func request(length: Int64, off: Int64, shortCircuit: Bool) -> Proto_BlockWriteRequest {
        var r = Proto_BlockWriteRequest()
        r.block = block.extendedBlock(length: length)
        r.off = off
        r.blockSize = capacity
        r.shortCircuit = shortCircuit
        r.clientName = settings.clientName
        r.chunkSize = Int32(settings.writeChunkSize)
        r.componentInfo = Wire.componentInfo()
        return r
    }

    private func openStream(_ w: WorkerAddress, offset: Int64, allowLocal: Bool = true) throws {
        let hp = HostPort(host: w.ipAddr, port: UInt16(truncatingIfNeeded: w.rpcPort))
        let wantLocal = allowLocal && settings.shortCircuit && !block.hasSpdk && w.hostname == settings.localHostname
        let header = Wire.encode(request(length: block.length, off: offset, shortCircuit: wantLocal))
        let (ch, resp) = try pool.openStream(hp) { sock -> (StreamChannel, Proto_BlockWriteResponse) in
            var ch = StreamChannel(socket: sock, code: .writeBlock, reqId: MasterClient.newRequestId(), timeoutMs: settings.dataTimeoutMs)
            let reply = try ch.exchange(.open, header: header)
            return (ch, try Wire.decode(Proto_BlockWriteResponse.self, reply.header))
        }
        if resp.blockSize != capacity {
            ch.socket.close()
            throw CurvineError.protocolViolation("worker \(hp) opened block \(block.id) with capacity \(resp.blockSize), asked \(capacity)")
        }
        var fd: Int32? = nil
        if wantLocal, resp.hasPath, !resp.path.isEmpty {
            let f = open(resp.path, O_WRONLY | O_CLOEXEC)
            if f < 0 {
                // Granted but not openable here: the worker's stream has no file for
                // Running frames, so reopen it as a remote stream.
                ch.socket.close()
                return try openStream(w, offset: offset, allowLocal: false)
            }
            fd = f
        }
        channels.append((ch, w, fd))
    }

    func write(at offset: Int64, _ bytes: UnsafeRawBufferPointer) throws {
        guard !finished else { throw CurvineError.local(EBADF, "block writer already finished") }
        guard offset >= 0, offset + Int64(bytes.count) <= capacity else {
            throw CurvineError.local(EFBIG, "write of \(bytes.count) bytes at \(offset) does not fit block capacity \(capacity)")
        }
        try eachReplica { i in
            if let fd = channels[i].2 {
                var done = 0
                while done < bytes.count {
                    let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw CurvineError.local(errno == ENOSPC ? ENOSPC : EIO, "write to local block file failed: \(String(cString: strerror(errno)))")
                    }
                    done += n
                }
                return
            }
            var seekHeader: [UInt8] = []
            if offset != pos {
                var h = Proto_DataHeaderProto()
                h.offset = offset
                h.flush = false
                h.isLast = false
                seekHeader = Wire.encode(h)
            }
            // Pipelined like reads: up to `writePipelineDepth` chunks go out before their
            // acknowledgements are read (the worker handles a connection's frames in
            // order and acknowledges each one). The acknowledgements are tiny, so the
            // worker never blocks on them while we send. The call returns once every
            // chunk is acknowledged, as before, so errors still belong to this write.
            let depth = max(1, settings.writePipelineDepth)
            var pending: [Int32] = []
            pending.reserveCapacity(depth)
            var done = 0
            while done < bytes.count {
                let n = min(settings.writeChunkSize, bytes.count - done)
                pending.append(try channels[i].0.send(.running, header: seekHeader,
                                                      data: UnsafeRawBufferPointer(rebasing: bytes[done..<(done + n)])))
                seekHeader = []
                done += n
                if pending.count >= depth { _ = try channels[i].0.receive(seq: pending.removeFirst()) }
            }
            for q in pending { _ = try channels[i].0.receive(seq: q) }
        }
        pos = offset + Int64(bytes.count)
    }

    func flush() throws {
        try eachReplica { i in
            if let fd = channels[i].2 {
                if fdatasync(fd) != 0 {
                    throw CurvineError.local(EIO, "fdatasync of local block file failed: \(String(cString: strerror(errno)))")
                }
                return
            }
            var h = Proto_DataHeaderProto()
            h.offset = pos
            h.flush = true
            h.isLast = false
            _ = try channels[i].0.exchange(.running, header: Wire.encode(h))
        }
    }

    /// Runs `body` for every replica stream. A replica that fails is dropped (its stream
    /// closed, it is left out of the commit) as long as another replica took the same
    /// bytes: a worker killed mid-write costs a replica, not the write. When every
    /// replica failed, the first error is thrown.
    private func eachReplica(_ body: (Int) throws -> Void) throws {
        var failed: [Int] = []
        var firstError: Error?
        for i in channels.indices {
            do { try body(i) } catch {
                failed.append(i)
                if firstError == nil { firstError = error }
            }
        }
        guard let e = firstError else { return }
        if failed.count == channels.count { throw e }
        for i in failed.reversed() {
            if let fd = channels[i].2 { Glibc.close(fd) }
            channels[i].0.socket.close()
            channels.remove(at: i)
        }
    }

    func commit(length: Int64) throws -> CommitBlock {
        guard !finished else { throw CurvineError.local(EBADF, "block writer already finished") }
        finished = true
        var ids: [UInt32] = []
        var firstError: Error?
        for i in channels.indices {
            if let fd = channels[i].2 { Glibc.close(fd); channels[i].2 = nil }
            do {
                _ = try channels[i].0.exchange(.complete, header: Wire.encode(request(length: length, off: pos, shortCircuit: false)))
                ids.append(channels[i].1.workerId)
                pool.give(channels[i].0.socket)
            } catch {
                channels[i].0.socket.close()
                if firstError == nil { firstError = error }
            }
        }
        channels.removeAll()
        if ids.isEmpty, let e = firstError { throw e }
        return CommitBlock(blockId: block.id, length: length, workerIds: ids, storageType: block.storageType)
    }

    func cancel() {
        guard !finished else { return }
        finished = true
        for i in channels.indices {
            if let fd = channels[i].2 { Glibc.close(fd) }
            do {
                _ = try channels[i].0.exchange(.cancel, header: Wire.encode(request(length: pos, off: pos, shortCircuit: false)))
                pool.give(channels[i].0.socket)
            } catch {
                channels[i].0.socket.close()
            }
        }
        channels.removeAll()
    }

    deinit { cancel() }
}
