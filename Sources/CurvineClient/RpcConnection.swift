// One multiplexed connection to a master (PROTOCOL.md §3.1).
//
// Many requests may be in flight: a caller registers a waiter under its req_id, writes
// its frame under the write lock, and then waits for the response with the same req_id
// (responses with an unknown req_id are dropped, as upstream does). Any transport
// failure or a response whose seq_id does not match fails every waiter and marks the
// connection dead; the next call opens a new one. A call that times out also kills the
// connection (upstream drops it), because a late reply would otherwise linger and the
// peer may be wedged.
//
// Reading is done by the callers themselves (leader/follower), not by a reader thread:
// one waiting caller at a time holds the reader role and reads frames, handing each
// to its waiter, until its own response arrives; it then passes the role on to another
// waiter, if any. With one call in flight (the common case: MasterClient picks an idle
// connection) the caller reads its own reply, so a round trip costs one wake-up of the
// calling thread instead of two thread hand-offs (reader thread, then caller through a
// semaphore), which on a 2-CPU machine was a large part of a loopback RPC.
//
// Nobody reads an idle connection, so a peer's close is seen at the next use:
// `usableForCall` peeks (non-blocking) at a connection idle for more than a second, so
// a connection the master closed while idle is replaced before a request is sent on
// it rather than costing a failed attempt and a retry round.
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

final class RpcConnection: @unchecked Sendable {
    let peer: HostPort
    private let socket: TCPSocket
    private let writeLock = Lock()
    private let stateLock = Lock()
    private var waiters: [Int64: Waiter] = [:]
    private var deadError: CurvineError?
    /// A caller holds the reader role (guarded by stateLock).
    private var reading = false
    /// Monotonic ns of the last reply read (guarded by stateLock).
    private var lastActivityNs: UInt64

    /// An idle connection older than this is checked for a peer close before use.
    private static let idleCheckNs: UInt64 = 1_000_000_000

    final class Waiter {
        let sem = DispatchSemaphore(value: 0)
        let seqId: Int32
        var result: Result<Frame, CurvineError>?
        init(seqId: Int32) { self.seqId = seqId }
    }

    init(peer: HostPort, connectTimeoutMs: Int) throws {
        self.peer = peer
        self.socket = try TCPSocket.connect(peer, timeoutMs: connectTimeoutMs)
        self.lastActivityNs = monotonicNs()
    }

    var isAlive: Bool { stateLock.withLock { deadError == nil } }

    /// Calls waiting for a reply on this connection.
    var inFlight: Int { stateLock.withLock { waiters.count } }

    /// Alive, and (when idle for a while) not closed by the peer meanwhile.
    func usableForCall(now: UInt64) -> Bool {
        let check: Bool = stateLock.withLock {
            guard deadError == nil else { return false }
            return waiters.isEmpty && now &- lastActivityNs > Self.idleCheckNs
        }
        guard check else { return isAlive }
        var b: UInt8 = 0
        let n = recv(socket.fd, &b, 1, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT))
        if n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            fail(.transport("master \(peer) closed the connection"))
            return false
        }
        return isAlive
    }

    /// Sends `frame` and waits for its response until `deadlineNs`.
    func call(_ frame: Frame, deadlineNs: UInt64) throws -> Frame {
        let w = Waiter(seqId: frame.seqId)
        try stateLock.withLock {
            if let e = deadError { throw e }
            waiters[frame.reqId] = w
        }
        do {
            try writeLock.withLock { try socket.writeFrame(frame, deadlineNs: deadlineNs) }
        } catch let e as CurvineError {
            fail(e)
            throw e
        }
        while true {
            let (done, lead): (Result<Frame, CurvineError>?, Bool) = stateLock.withLock {
                if let r = w.result { return (r, false) }
                if !reading && deadError == nil { reading = true; return (nil, true) }
                return (nil, false)
            }
            if let r = done { return try r.get() }
            if lead {
                readReplies(until: w, frame: frame, deadlineNs: deadlineNs)
                continue
            }
            let now = monotonicNs()
            let waitNs = deadlineNs > now ? deadlineNs - now : 0
            if w.sem.wait(timeout: .now() + .nanoseconds(Int(clamping: waitNs))) == .timedOut {
                let e = timeoutError(frame)
                fail(e)
                // The reader may have delivered just now; prefer its answer.
                if let r = stateLock.withLock({ w.result }), case .success(let f) = r { return f }
                throw e
            }
            // Woken: either the reply arrived or the reader role was handed to us.
        }
    }

    private func timeoutError(_ frame: Frame) -> CurvineError {
        .timeout("no answer from master \(peer) to \(RpcCode(rawValue: frame.code).map { "\($0)" } ?? "code \(frame.code)") within the timeout")
    }

    /// Holding the reader role: reads frames and delivers them until `own` has a result
    /// (its reply, or the connection's failure), then hands the role to another waiter.
    private func readReplies(until own: Waiter, frame: Frame, deadlineNs: UInt64) {
        while true {
            let f: Frame?
            do {
                f = try socket.readFrame(deadlineNs: max(deadlineNs, 1))
            } catch let e as CurvineError {
                if e.source == .timeout { fail(timeoutError(frame)) } else { fail(e) }
                return
            } catch {
                fail(.transport("bad frame from \(peer): \(error)"))
                return
            }
            guard let f else {
                fail(.transport("master \(peer) closed the connection"))
                return
            }
            let peer = self.peer
            let (w, ok, finished, next): (Waiter?, Bool, Bool, Waiter?) = stateLock.withLock {
                lastActivityNs = monotonicNs()
                guard let w = waiters.removeValue(forKey: f.reqId) else { return (nil, true, false, nil) }
                if f.seqId != w.seqId {
                    w.result = .failure(.protocolViolation("master \(peer) answered req \(f.reqId) with seq \(f.seqId), expected \(w.seqId)"))
                    return (w, false, false, nil)
                }
                w.result = .success(f)
                guard w === own else { return (w, true, false, nil) }
                // Our own reply: give up the role; wake one waiter to take it over.
                reading = false
                return (nil, true, true, waiters.values.first)
            }
            w?.sem.signal()  // unknown req_id: w is nil and the frame is dropped (§3.1)
            if !ok {
                fail(.protocolViolation("mismatched seq_id from \(peer)"))
                return
            }
            if finished {
                next?.sem.signal()
                return
            }
        }
    }

    /// Closes the connection, failing every waiter with `error`.
    func fail(_ error: CurvineError) {
        let pending: [Waiter] = stateLock.withLock {
            if deadError == nil { deadError = error }
            let p = Array(waiters.values)
            waiters.removeAll()
            reading = false
            return p
        }
        socket.shutdownBoth()
        let toWake: [Waiter] = stateLock.withLock {
            pending.filter { w in
                guard w.result == nil else { return false }
                w.result = .failure(error)
                return true
            }
        }
        for w in toWake { w.sem.signal() }
    }

    func close() { fail(.transport("connection to \(peer) closed by the client")) }

    deinit { socket.close() }
}
