// One multiplexed connection to a master (PROTOCOL.md §3.1).
//
// Many requests may be in flight: a caller registers a waiter under its req_id,
// writes its frame under the write lock, and sleeps until the reader thread hands
// it the response with the same req_id (responses with an unknown req_id are
// dropped, as upstream does). Any transport failure or a response whose seq_id does
// not match fails every waiter and marks the connection dead; the next call opens
// a new one. A call that times out also kills the connection (upstream drops it),
// because a late reply would otherwise linger and the peer may be wedged.
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

    final class Waiter {
        let sem = DispatchSemaphore(value: 0)
        let seqId: Int32
        var result: Result<Frame, CurvineError>?
        init(seqId: Int32) { self.seqId = seqId }
    }

    init(peer: HostPort, connectTimeoutMs: Int) throws {
        self.peer = peer
        self.socket = try TCPSocket.connect(peer, timeoutMs: connectTimeoutMs)
        let s = self
        startThread(name: "cv-rpc-rd") { s.readLoop() }
    }

    var isAlive: Bool { stateLock.withLock { deadError == nil } }

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
        let now = monotonicNs()
        let waitNs = deadlineNs > now ? deadlineNs - now : 0
        if w.sem.wait(timeout: .now() + .nanoseconds(Int(clamping: waitNs))) == .timedOut {
            let e = CurvineError.timeout("no answer from master \(peer) to \(RpcCode(rawValue: frame.code).map { "\($0)" } ?? "code \(frame.code)") within the timeout")
            fail(e)
            // The reader may have delivered just now; prefer its answer.
            if let r = stateLock.withLock({ w.result }), case .success(let f) = r { return f }
            throw e
        }
        switch stateLock.withLock({ w.result })! {
        case .success(let f): return f
        case .failure(let e): throw e
        }
    }

    /// Closes the connection, failing every waiter with `error`.
    func fail(_ error: CurvineError) {
        let pending: [Waiter] = stateLock.withLock {
            if deadError == nil { deadError = error }
            let p = Array(waiters.values)
            waiters.removeAll()
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

    private func readLoop() {
        while true {
            let frame: Frame?
            do {
                frame = try socket.readFrame(deadlineNs: 0)
            } catch let e as CurvineError {
                fail(e)
                return
            } catch {
                fail(.transport("bad frame from \(peer): \(error)"))
                return
            }
            guard let f = frame else {
                fail(.transport("master \(peer) closed the connection"))
                return
            }
            let peer = self.peer
            let (w, ok): (Waiter?, Bool) = stateLock.withLock {
                guard let w = waiters.removeValue(forKey: f.reqId) else { return (nil, true) }
                if f.seqId != w.seqId {
                    w.result = .failure(.protocolViolation("master \(peer) answered req \(f.reqId) with seq \(f.seqId), expected \(w.seqId)"))
                    return (w, false)
                }
                w.result = .success(f)
                return (w, true)
            }
            w?.sem.signal()  // unknown req_id: w is nil and the frame is dropped (§3.1)
            if !ok {
                fail(.protocolViolation("mismatched seq_id from \(peer)"))
                return
            }
        }
    }

    deinit { socket.close() }
}
