// The embedded master's network side: a TCPServer whose connections read frames one at
// a time and answer each before reading the next (PROTOCOL.md §3.1), dispatching to a
// Namespace through MasterHandlers.swift.
//
// * Heartbeats are skipped by the frame reader and never answered.
// * A frame that cannot be a frame (bad lengths, EOF inside it) or an idle connection
//   (10 min, upstream master io_timeout with close_idle) closes the connection.
// * An undecodable header gets a Common error reply; an unknown code gets Common
//   "Unsupported operation". Nothing a peer sends can crash the server.
// * Role: `.active` serves; `.standby` answers every RPC (GetFilesystemInfo included)
//   with NotLeaderMaster "Not a leader master, code=<Code>, client_ip=<ip>" (§7).
//   `role` can be switched at any time for failover tests.
// * Fault hook: called for every request before it runs; it can delay, fail, swallow
//   the reply or send it with a wrong length, or drop the connection before or after
//   executing (a lost reply), for reliability tests of the client's retry and failover.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CurvineClient

public enum MasterRole: Sendable, Equatable {
    case active
    case standby
}

/// What the fault hook wants done with one request.
public enum ServerFault: Sendable, Equatable {
    /// Serve normally.
    case proceed
    /// Wait this long, then serve.
    case delay(ms: Int)
    /// Answer with this error instead of executing.
    case fail(ErrorKind, String)
    /// Close the connection without executing.
    case dropBeforeExecute
    /// Execute, then close the connection instead of replying (a lost reply).
    case dropAfterExecute
    /// Execute and send nothing, keep the connection (the client times out).
    case swallowReply
    /// Execute, then send the reply with its total-length field off by `delta` bytes (a
    /// malformed frame): longer leaves the peer waiting for bytes that never come,
    /// shorter makes it read the reply's tail as the start of the next frame.
    case corruptLength(delta: Int32)
}

/// Sends `reply` with its big-endian total length (bytes 0..<4) changed by `delta`.
func writeCorrupted(_ sock: TCPSocket, _ reply: Frame, delta: Int32) throws {
    var bytes = FrameCodec.encode(reply)
    let total = (Int32(bytes[0]) << 24) | (Int32(bytes[1]) << 16) | (Int32(bytes[2]) << 8) | Int32(bytes[3])
    let bad = UInt32(bitPattern: total &+ delta)
    bytes[0] = UInt8(truncatingIfNeeded: bad >> 24); bytes[1] = UInt8(truncatingIfNeeded: bad >> 16)
    bytes[2] = UInt8(truncatingIfNeeded: bad >> 8); bytes[3] = UInt8(truncatingIfNeeded: bad)
    try bytes.withUnsafeBytes { try sock.writeAll([$0]) }
}

public final class MasterServer: @unchecked Sendable {
    public struct Options: Sendable {
        public var host = "127.0.0.1"
        public var port: UInt16 = 0
        /// A connection idle this long is closed (upstream master io_timeout 10m, close_idle).
        public var idleTimeoutMs: Int = 10 * 60 * 1000
        /// Retry cache TTL and size (upstream retry_cache_ttl 10m, retry_cache_size 100 000).
        public var retryCacheTtlMs: Int64 = 10 * 60 * 1000
        public var retryCacheCapacity = 100_000
        public init(port: UInt16 = 0) { self.port = port }
    }

    public let namespace: Namespace
    public let options: Options
    let retryCache: RetryCache
    private let server: TCPServer
    private let lock = Lock()
    private var currentRole: MasterRole
    private var fault: (@Sendable (Frame) -> ServerFault)?
    private var leaderAddress: String

    /// Binds the port (0 = ephemeral); call start() to accept connections.
    public init(namespace: Namespace, options: Options = Options(), role: MasterRole = .active) throws {
        self.namespace = namespace
        self.options = options
        self.currentRole = role
        self.retryCache = RetryCache(ttlMs: options.retryCacheTtlMs, capacity: options.retryCacheCapacity)
        var serveBox: ((TCPSocket) -> Void)?
        server = try TCPServer(name: "master", host: options.host, port: options.port) { sock in serveBox?(sock) }
        leaderAddress = "\(options.host):\(server.port)"
        serveBox = { [weak self] sock in self?.serve(sock) }
    }

    public var address: HostPort { server.address }
    public var port: UInt16 { server.port }

    public func start() { server.start() }

    /// Closes the listener and every connection; the port is free again on return.
    public func stop() { server.stop() }

    public var role: MasterRole {
        get { lock.withLock { currentRole } }
        set { lock.withLock { currentRole = newValue } }
    }

    /// The "host:port" GetFilesystemInfo reports as active_master (this master's own
    /// address by default; the cluster keeps it pointing at the current leader).
    public var activeMasterAddress: String {
        get { lock.withLock { leaderAddress } }
        set { lock.withLock { leaderAddress = newValue } }
    }

    /// Installs (or with nil removes) the fault hook.
    public func setFaultHook(_ hook: (@Sendable (Frame) -> ServerFault)?) {
        lock.withLock { fault = hook }
    }

    /// Closes every client connection now; the listener stays up.
    public func dropConnections() { server.dropConnections() }

    public var connectionCount: Int { server.connectionCount }

    private func serve(_ sock: TCPSocket) {
        let idleNs = UInt64(max(1, options.idleTimeoutMs)) * 1_000_000
        while true {
            let frame: Frame
            do {
                guard let f = try sock.readFrame(deadlineNs: monotonicNs() + idleNs) else { return }
                frame = f
            } catch {
                return  // bad frame, idle timeout or reset: close
            }
            let after: ServerFault
            switch applyFaultBeforeExecute(lock.withLock({ fault })?(frame) ?? .proceed, frame, sock) {
            case .close: return
            case .answered: continue
            case .execute(let a): after = a
            }
            let reply = handle(frame, clientIp: sock.peer.host)
            if after == .dropAfterExecute { return }
            if after == .swallowReply { continue }
            if case .corruptLength(let d) = after {
                do { try writeCorrupted(sock, reply, delta: d) } catch { return }
                continue
            }
            do { try sock.writeFrame(reply) } catch { return }
        }
    }

    /// Answers one request frame (no I/O): the dispatch MasterHandlers.swift implements,
    /// behind the role check.
    func handle(_ frame: Frame, clientIp: String) -> Frame {
        let code = RpcCode(rawValue: frame.code)
        if role == .standby {
            return errorReply(frame, .notLeaderMaster,
                              "Not a leader master, code=\(rpcName(code)), client_ip=\(clientIp)")
        }
        do {
            let header = try dispatch(code, frame)
            return Frame(code: frame.code, status: replyStatus(frame, .success), reqId: frame.reqId,
                         seqId: frame.seqId, header: header)
        } catch {
            let (k, m) = wireError(error)
            return errorReply(frame, k, m)
        }
    }
}

/// The response status byte: the request's nibble echoed, the response nibble set.
func replyStatus(_ request: Frame, _ r: ResponseStatus) -> UInt8 {
    (request.status & 0x0F) | (UInt8(bitPattern: r.rawValue) << 4)
}

/// What a connection loop does with a request after its fault hook spoke.
enum FaultStep { case close, answered, execute(after: ServerFault) }

/// The part of a fault that acts before the request runs (shared by master and
/// worker loops): delay, answer with an error, or drop the connection. Returns what
/// is left to apply after executing (.dropAfterExecute, .swallowReply, .corruptLength).
func applyFaultBeforeExecute(_ f: ServerFault, _ frame: Frame, _ sock: TCPSocket) -> FaultStep {
    switch f {
    case .proceed: return .execute(after: .proceed)
    case .delay(let ms): sleepMs(ms); return .execute(after: .proceed)
    case .fail(let kind, let msg):
        return (try? sock.writeFrame(errorReply(frame, kind, msg))) == nil ? .close : .answered
    case .dropBeforeExecute: return .close
    case .dropAfterExecute, .swallowReply, .corruptLength: return .execute(after: f)
    }
}

func errorReply(_ request: Frame, _ kind: ErrorKind, _ message: String) -> Frame {
    Frame(code: request.code, status: replyStatus(request, .error), reqId: request.reqId, seqId: request.seqId,
          data: ErrorPayload.encode(kind: kind, message: message))
}

/// Upstream's Debug name of an RpcCode ("Mkdir", "CreateFile"; unknown -> "Undefined").
func rpcName(_ code: RpcCode?) -> String {
    guard let c = code else { return "Undefined" }
    let s = "\(c)"
    return s.prefix(1).uppercased() + s.dropFirst()
}

func sleepMs(_ ms: Int) {
    guard ms > 0 else { return }
    var ts = timespec(tv_sec: ms / 1000, tv_nsec: (ms % 1000) * 1_000_000)
    var rem = timespec()
    while nanosleep(&ts, &rem) != 0 && errno == EINTR { ts = rem }
}
