// The embedded worker: block write (WriteBlock 80) and read (ReadBlock 81) streams over
// TCP, exactly as PROTOCOL.md §3.2–3.4 describe, on a BlockStore.
//
// A connection carries one stream at a time; every frame gets one reply before the next
// is read. A request-level failure is an error reply and the connection stays usable;
// a frame that cannot be a frame closes it. Checks (upstream write_handler.rs /
// read_handler.rs):
//   write Open     0 <= off <= block_size
//   write Running  the stream's req_id; seek 0 <= offset < block_size; data must fit in
//                  block_size (an addition: upstream would let the file grow past it)
//   write Complete block.block_size (the length) <= block_size (capacity); the file is
//                  set to exactly that length (cuts stale bytes, zero-extends)
//   write Cancel   removes a block file this stream created
//   read Open      block exists (else BlockNotFound 29), 0 <= len <= 100 GiB,
//                  0 <= off <= len, 0 < chunk_size <= 16 MiB, read-ahead <= 16 MiB
//   read Running   seek 0 <= offset <= len; at or past len -> error; bytes past the
//                  file's end (sparse tail) are zeros
//   read Complete  the stream's req_id; Cancel is "Unsupported request type"
// Short-circuit: an Open with short_circuit=true gets `path`, the block file; a write
// stream then holds no file (Running frames fail), a read is granted only when the file
// covers the logical length (else no path and the stream stays remote).
// The worker does not keep idle connections from closing (upstream worker
// io_close_idle=false), so no idle timeout.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CurvineClient
import CurvineProto

public final class WorkerServer: @unchecked Sendable {
    public struct Options: Sendable {
        public var host = "127.0.0.1"
        public var port: UInt16 = 0
        public var workerId: UInt32
        /// WorkerAddressProto.hostname: clients compare it with their own host name to
        /// decide short-circuit (CURVINE_WORKER_HOSTNAME overrides gethostname()).
        public var hostname: String = localHostname()
        public init(workerId: UInt32, port: UInt16 = 0) { self.workerId = workerId; self.port = port }
    }

    public let store: BlockStore
    public let options: Options
    private let server: TCPServer
    private let lock = Lock()
    private var fault: (@Sendable (Frame) -> ServerFault)?

    /// Largest logical block length a read may advertise (upstream master.max_block_size).
    static let maxBlockSize: Int64 = 100 << 30
    /// Largest chunk / read-ahead a read may ask for (upstream ReadHandler::MAX_READ_AHEAD).
    static let maxChunk: Int64 = 16 << 20

    public init(store: BlockStore, options: Options) throws {
        self.store = store
        self.options = options
        var serveBox: ((TCPSocket) -> Void)?
        server = try TCPServer(name: "worker-\(options.workerId)", host: options.host, port: options.port) { s in serveBox?(s) }
        serveBox = { [weak self] sock in self?.serve(sock) }
    }

    /// What the master hands out in block locations.
    public var address: WorkerAddress {
        WorkerAddress(workerId: options.workerId, hostname: options.hostname, ipAddr: options.host,
                      rpcPort: UInt32(server.port))
    }
    public var hostPort: HostPort { server.address }
    public var port: UInt16 { server.port }

    public func start() { server.start() }
    public func stop() { server.stop() }
    public func dropConnections() { server.dropConnections() }
    public var connectionCount: Int { server.connectionCount }

    public func setFaultHook(_ hook: (@Sendable (Frame) -> ServerFault)?) {
        lock.withLock { fault = hook }
    }

    private func serve(_ sock: TCPSocket) {
        let conn = WorkerConnection(store: store)
        defer { conn.reset() }
        while true {
            let frame: Frame
            do {
                guard let f = try sock.readFrame(deadlineNs: 0) else { return }
                frame = f
            } catch {
                return
            }
            let after: ServerFault
            switch applyFaultBeforeExecute(lock.withLock({ self.fault })?(frame) ?? .proceed, frame, sock) {
            case .close: return
            case .answered: continue
            case .execute(let a): after = a
            }
            if after == .proceed, let c = conn.fileChunk(for: frame) {
                // A read chunk goes from the block file to the socket with sendfile(2):
                // no copy through user space on this side.
                if !sendChunk(sock, frame, c) { return }
                continue
            }
            let reply = conn.handle(frame)
            if after == .dropAfterExecute { return }
            if after == .swallowReply { continue }
            if case .corruptLength(let d) = after {
                do { try writeCorrupted(sock, reply, delta: d) } catch { return }
                continue
            }
            do { try sock.writeFrame(reply) } catch { return }
        }
    }
}

/// Sends the reply to read Running request `f`: its prefix (data length `c.count`), then
/// the bytes of the block file from `c.offset`. False when the connection must close.
private func sendChunk(_ sock: TCPSocket, _ f: Frame, _ c: (fd: Int32, offset: Int64, count: Int)) -> Bool {
    var prefix = (UInt64(0), UInt64(0), UInt32(0), UInt16(0))
    let sent: Bool = withUnsafeMutableBytes(of: &prefix) { raw in
        FrameCodec.writePrefix(into: raw, code: f.code, status: replyStatus(f, .success), reqId: f.reqId,
                               seqId: f.seqId, headerLength: 0, dataLength: c.count)
        var done = 0
        while done < framePrefixSize {
            let n = send(sock.fd, raw.baseAddress! + done, framePrefixSize - done, Int32(MSG_MORE) | Int32(MSG_NOSIGNAL))
            if n < 0 { if errno == EINTR { continue }; return false }
            done += n
        }
        return true
    }
    guard sent else { return false }
    var off = off_t(c.offset)
    var left = c.count
    while left > 0 {
        let n = sendfile(sock.fd, c.fd, &off, left)
        if n < 0 { if errno == EINTR || errno == EAGAIN { continue }; return false }
        if n == 0 { return false }  // the file shrank under us: the promised length cannot be sent
        left -= n
    }
    return true
}

/// The one stream of one worker connection.
final class WorkerConnection {
    private struct WriteStream {
        var reqId: Int64
        var blockId: Int64
        var capacity: Int64
        /// nil when short-circuit was granted (the client writes the file itself).
        var fd: Int32?
        var pos: Int64
        var created: Bool
    }

    private struct ReadStream {
        var reqId: Int64
        var blockId: Int64
        var length: Int64
        var chunk: Int
        /// nil when short-circuit was granted.
        var fd: Int32?
        var pos: Int64
    }

    private let store: BlockStore
    private var write: WriteStream?
    private var read: ReadStream?

    init(store: BlockStore) { self.store = store }

    /// Closes whatever stream is open (connection end or a new Open).
    func reset() {
        if let fd = write?.fd { close(fd) }
        if let fd = read?.fd { close(fd) }
        write = nil
        read = nil
    }

    func handle(_ f: Frame) -> Frame {
        do {
            let data: [UInt8]
            let header: [UInt8]
            switch RpcCode(rawValue: f.code) {
            case .writeBlock: (header, data) = (try handleWrite(f), [])
            case .readBlock: (header, data) = try handleRead(f)
            default: throw ServerError.common("Unsupported operation")
            }
            return Frame(code: f.code, status: replyStatus(f, .success), reqId: f.reqId, seqId: f.seqId,
                         header: header, data: data)
        } catch {
            let (k, m) = wireError(error)
            return errorReply(f, k, m)
        }
    }

    // MARK: write

    private func handleWrite(_ f: Frame) throws -> [UInt8] {
        switch f.requestStatus {
        case .open:
            let r = try Wire.decode(Proto_BlockWriteRequest.self, f.header)
            if r.off < 0 || r.off > r.blockSize {
                throw ServerError.common("Invalid write offset: \(r.off), block size: \(r.blockSize)")
            }
            reset()
            let (fd, created) = try store.openForWrite(r.block.id)
            var resp = Proto_BlockWriteResponse()
            resp.id = r.block.id
            resp.off = r.off
            resp.blockSize = r.blockSize
            resp.storageType = .disk
            var stream = WriteStream(reqId: f.reqId, blockId: r.block.id, capacity: r.blockSize, fd: fd, pos: r.off,
                                     created: created)
            if r.shortCircuit {
                resp.path = store.path(of: r.block.id)
                close(fd)
                stream.fd = nil
            }
            write = stream
            return Wire.encode(resp)

        case .running:
            guard var s = write else { throw ServerError.common("No write stream is open on this connection") }
            guard s.reqId == f.reqId else {
                throw ServerError.common("Request id mismatch, expected \(s.reqId), actual \(f.reqId)")
            }
            guard let fd = s.fd else {
                throw ServerError.common("Block \(s.blockId) is written through short-circuit: write the block file directly")
            }
            if !f.header.isEmpty {
                let h = try Wire.decode(Proto_DataHeaderProto.self, f.header)
                if h.flush {
                    try store.sync(fd: fd, id: s.blockId)
                } else {
                    if h.offset < 0 || h.offset >= s.capacity {
                        throw ServerError.common("Invalid seek offset: \(h.offset), block length: \(s.capacity)")
                    }
                    s.pos = h.offset
                }
            }
            if !f.data.isEmpty {
                guard Int64(f.data.count) <= s.capacity - s.pos else {
                    throw ServerError.common("Write of \(f.data.count) bytes at \(s.pos) exceeds block size \(s.capacity)")
                }
                try f.data.withUnsafeBytes { try FileUtil.pwriteAll(fd, $0, at: s.pos, path: store.path(of: s.blockId)) }
                s.pos += Int64(f.data.count)
            }
            write = s
            return []

        case .complete, .cancel:
            let commit = f.requestStatus == .complete
            let r = try Wire.decode(Proto_BlockWriteRequest.self, f.header)
            let s = write
            if let s = s, s.reqId != f.reqId {
                throw ServerError.common("Request id mismatch, expected \(s.reqId), actual \(f.reqId)")
            }
            write = nil
            let id = s?.blockId ?? r.block.id
            let length = r.block.blockSize
            let capacity = s?.capacity ?? r.blockSize
            var fd = s?.fd
            defer { if let d = fd { close(d) } }
            if !commit {
                if s?.created == true {
                    if let d = fd { close(d); fd = nil }
                    store.delete([id])
                }
                return []
            }
            if length < 0 || length > capacity {
                if s?.created == true { store.delete([id]) }
                throw ServerError.common("Invalid block length: \(length), block size: \(capacity)")
            }
            if fd == nil {
                // Short-circuit (or a Complete with no stream): finalize the file on disk.
                guard store.exists(id) else { throw ServerError.blockNotFound(id) }
                fd = try store.openForWrite(id).fd
            }
            try store.setLength(fd: fd!, id: id, length: length)
            return []

        default:
            throw ServerError.common("Unsupported request type")
        }
    }

    // MARK: read

    /// For a read Running request that the block file can answer as a whole (valid
    /// position, no sparse tail in the chunk): the chunk's file region, with the stream
    /// advanced past it. nil: `handle` answers it (errors included), nothing changed.
    func fileChunk(for f: Frame) -> (fd: Int32, offset: Int64, count: Int)? {
        guard f.code == RpcCode.readBlock.rawValue, f.requestStatus == .running, var s = read, let fd = s.fd else { return nil }
        if !f.header.isEmpty {
            guard let h = try? Wire.decode(Proto_DataHeaderProto.self, f.header), h.offset >= 0, h.offset <= s.length else { return nil }
            s.pos = h.offset
        }
        guard s.pos < s.length else { return nil }
        let n = Int(min(Int64(s.chunk), s.length - s.pos))
        var st = stat()
        guard fstat(fd, &st) == 0, Int64(st.st_size) >= s.pos + Int64(n) else { return nil }
        let at = s.pos
        s.pos += Int64(n)
        read = s
        return (fd, at, n)
    }

    private func handleRead(_ f: Frame) throws -> ([UInt8], [UInt8]) {
        switch f.requestStatus {
        case .open:
            let r = try Wire.decode(Proto_BlockReadRequest.self, f.header)
            reset()
            let fd = try store.openForRead(r.id)
            var keep = false
            defer { if !keep { close(fd) } }
            if r.len < 0 || r.len > WorkerServer.maxBlockSize {
                throw ServerError.common("Advertised block length \(r.len) is outside 0..=\(WorkerServer.maxBlockSize)")
            }
            if r.off < 0 { throw ServerError.common("Invalid read offset: \(r.off), block length: \(r.len)") }
            if r.off > r.len {
                throw ServerError.common("The length of the requested data exceeds the maximum length of the block file, request off \(r.off), file len \(r.len)")
            }
            if r.chunkSize <= 0 { throw ServerError.common("chunk_size must be greater than 0") }
            if Int64(r.chunkSize) > WorkerServer.maxChunk {
                throw ServerError.common("chunk_size \(r.chunkSize) exceeds maximum allowed value \(WorkerServer.maxChunk)")
            }
            if r.enableReadAhead && r.readAheadLen > WorkerServer.maxChunk {
                throw ServerError.common("The pre-read size exceeds the maximum value allowed by the system. The current value is \(r.readAheadLen). The maximum allowed value is: \(WorkerServer.maxChunk)")
            }
            var resp = Proto_BlockReadResponse()
            resp.id = r.id
            resp.len = r.len
            resp.storageType = .disk
            var stream = ReadStream(reqId: f.reqId, blockId: r.id, length: r.len, chunk: Int(r.chunkSize), fd: fd, pos: r.off)
            if r.shortCircuit, (FileUtil.size(fd: fd) ?? 0) >= r.len {
                resp.path = store.path(of: r.id)
                stream.fd = nil
            } else {
                keep = true
            }
            read = stream
            return (Wire.encode(resp), [])

        case .running:
            guard var s = read, let fd = s.fd else {
                throw ServerError.common("No remote read stream is open on this connection")
            }
            if !f.header.isEmpty {
                let h = try Wire.decode(Proto_DataHeaderProto.self, f.header)
                if h.offset < 0 || h.offset > s.length {
                    throw ServerError.common("Invalid seek offset: \(h.offset), block length: \(s.length)")
                }
                s.pos = h.offset
            }
            guard s.pos < s.length else {
                throw ServerError.common("Read offset \(s.pos) exceeds block length \(s.length)")
            }
            let n = Int(min(Int64(s.chunk), s.length - s.pos))
            let path = store.path(of: s.blockId)
            let at = s.pos
            let buf = try [UInt8](unsafeUninitializedCapacity: n) { b, count in
                let raw = UnsafeMutableRawBufferPointer(b)
                let got = try FileUtil.preadFull(fd, raw, at: at, path: path)
                if got < n { (raw.baseAddress! + got).initializeMemory(as: UInt8.self, repeating: 0, count: n - got) }  // sparse tail
                count = n
            }
            s.pos += Int64(n)
            read = s
            return ([], buf)

        case .complete:
            if let s = read, s.reqId != f.reqId {
                throw ServerError.common("Request id mismatch, expected \(s.reqId), actual \(f.reqId)")
            }
            reset()
            return ([], [])

        default:
            throw ServerError.common("Unsupported request type")
        }
    }
}
