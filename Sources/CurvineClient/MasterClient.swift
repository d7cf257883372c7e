// Unary RPCs to the active master, with timeouts, same-req_id retries and failover
// across several master addresses (PROTOCOL.md §3.1, §7).
//
// Routing: a cached leader gets the request. A transport failure, a timeout or a
// NotLeaderMaster answer is retryable: the leader is forgotten and the SAME frame
// (same req_id, so the master's retry cache de-duplicates it) goes to each master
// in turn — §7's "simpler client" probe, which avoids fanning a mutation out to every
// master at once. The first master that answers with success or a non-retryable
// error becomes the leader. Rounds repeat with backoff until the retry budget
// (`rpc_retry_max_duration_ms`) is spent; then the last error is returned.
//
// Bound: a call returns within max(retry budget, rpc timeout) of its start (plus
// scheduling noise). Every attempt's connect and reply deadlines are cut to that
// end, no attempt starts after it, and the backoff sleep never crosses it. So a
// syscall on a dead or hung cluster answers in 20 s with the defaults, not
// budget + masters × rpc timeout.
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

public struct MasterClientOptions: Sendable {
    /// Connect timeout per attempt.
    public var connectTimeoutMs: Int
    /// Deadline of one attempt (request to response).
    public var rpcTimeoutMs: Int
    /// Total time spent retrying one call across masters before giving up.
    public var retryBudgetMs: Int
    /// First and longest sleep between failover rounds.
    public var retryMinSleepMs: Int
    public var retryMaxSleepMs: Int
    /// Connections per master; requests are spread over them.
    public var connectionsPerMaster: Int

    public init(connectTimeoutMs: Int = 3_000, rpcTimeoutMs: Int = 10_000, retryBudgetMs: Int = 20_000,
                retryMinSleepMs: Int = 100, retryMaxSleepMs: Int = 1_000, connectionsPerMaster: Int = 3) {
        self.connectTimeoutMs = connectTimeoutMs
        self.rpcTimeoutMs = rpcTimeoutMs
        self.retryBudgetMs = retryBudgetMs
        self.retryMinSleepMs = retryMinSleepMs
        self.retryMaxSleepMs = retryMaxSleepMs
        self.connectionsPerMaster = max(1, connectionsPerMaster)
    }
}

public final class MasterClient: @unchecked Sendable {
    public let addresses: [HostPort]
    public let options: MasterClientOptions
    private let lock = Lock()
    private var leader: Int?
    private var pools: [[RpcConnection?]]
    private var nextSlot = 0

    public init(addresses: [HostPort], options: MasterClientOptions = MasterClientOptions()) throws {
        guard !addresses.isEmpty else {
            throw CurvineError.local(EINVAL, "no master address configured: set [client] master_addrs in the config or pass --master-addrs host:port")
        }
        self.addresses = addresses
        self.options = options
        self.pools = Array(repeating: Array(repeating: nil, count: options.connectionsPerMaster), count: addresses.count)
    }

    /// The address currently believed to be the leader.
    public var currentLeader: HostPort? { lock.withLock { leader.map { addresses[$0] } } }

    private static let requestIdKey = UInt64.random(in: UInt64.min...UInt64.max)
    private static let requestIdCounter = Atomic<UInt64>(0)

    /// Fresh request id, never -1 (reserved for heartbeats, §2.2): a process-wide counter
    /// plus a random per-process key, through the SplitMix64 finalizer. That mix is a
    /// bijection, so ids never repeat within a process, and across processes they are as
    /// unlikely to collide as independent random ids (which is what the master's retry
    /// cache needs), without a getrandom(2) call per request.
    public static func newRequestId() -> Int64 {
        while true {
            var z = requestIdCounter.wrappingAdd(1, ordering: .relaxed).newValue &+ requestIdKey
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            z ^= z >> 31
            let id = Int64(bitPattern: z)
            if id != heartbeatReqId { return id }
        }
    }

    /// Process-wide count of master RPCs sent (calls, not attempts), by RpcCode raw value
    /// (0...127): for /metrics and for counting the round trips of one operation.
    private static let callCounts: UnsafeMutablePointer<Atomic<UInt64>> = {
        let p = UnsafeMutablePointer<Atomic<UInt64>>.allocate(capacity: 128)
        for i in 0..<128 { (p + i).initialize(to: Atomic<UInt64>(0)) }
        return p
    }()

    /// Master RPCs sent by this process so far, by code (codes never sent are left out).
    public static func rpcCounts() -> [(code: RpcCode, count: UInt64)] {
        RpcCode.allCases.compactMap { c in
            guard c.rawValue >= 0 else { return nil }
            let n = callCounts[Int(c.rawValue)].load(ordering: .relaxed)
            return n > 0 ? (c, n) : nil
        }
    }

    /// Sends a unary request and returns the success response frame.
    /// Throws the server's error (CurvineError.remote) or the last transport error.
    public func call(_ code: RpcCode, header: [UInt8], reqId: Int64 = MasterClient.newRequestId()) throws -> Frame {
        if code.rawValue >= 0 { Self.callCounts[Int(code.rawValue)].wrappingAdd(1, ordering: .relaxed) }
        let frame = Frame(code: code.rawValue, status: statusByte(.rpc, .undefined), reqId: reqId,
                          seqId: unarySeqId, header: header)
        let start = monotonicNs()
        let endNs = start &+ msToNs(max(options.retryBudgetMs, options.rpcTimeoutMs, 1))
        var sleepMs = max(1, options.retryMinSleepMs)
        var lastError: CurvineError = .transport("no master reachable")
        var attempts = 0
        // An attempt whose frame went out but got no answer may have run on the master:
        // a later error may then be the echo of our own first attempt (see withRetryNote).
        var unanswered = false
        rounds: while true {
            // 1. The cached leader first, then every master in order.
            let order: [Int] = lock.withLock {
                var o = Array(addresses.indices)
                if let l = leader { o.removeAll { $0 == l }; o.insert(l, at: 0) }
                return o
            }
            for idx in order {
                if attempts > 0 && monotonicNs() >= endNs { break rounds }
                attempts += 1
                var sent = false
                do {
                    let reply = try attempt(frame, at: idx, endNs: endNs, sent: &sent)
                    if reply.isError {
                        let err = ErrorPayload.decode(reply.data)
                        if err.isRetryableOnMasters {
                            lastError = err
                            forgetLeader(idx)
                            continue
                        }
                        if err.kind == .inProgress && unanswered && MasterClient.markOnlyCodes.contains(code) {
                            // SetAttr/Symlink/Link only mark their req_id: a re-send gets
                            // InProgress forever, so waiting cannot change the answer. The
                            // caller reads it as "probably applied" and re-stats (§3.1).
                            setLeader(idx)
                            throw InProgressAware(error: err, unanswered: true)
                        }
                        if err.kind == .inProgress {
                            // Our own earlier attempt with this req_id still runs: wait and re-send.
                            lastError = err
                            setLeader(idx)
                            break
                        }
                        setLeader(idx)
                        throw InProgressAware(error: err, unanswered: unanswered)
                    }
                    setLeader(idx)
                    return reply
                } catch let e as InProgressAware {
                    throw e.error.withRetryNote(e.unanswered)
                } catch let e as CurvineError {
                    lastError = e
                    if sent { unanswered = true }
                    forgetLeader(idx)
                }
            }
            let now = monotonicNs()
            if now >= endNs { break }
            let left = (endNs - now) / 1_000_000
            usleep(UInt32(clamping: min(UInt64(sleepMs), left) * 1000))
            sleepMs = min(max(1, options.retryMaxSleepMs), sleepMs * 2)
            if monotonicNs() >= endNs { break }
        }
        throw lastError.withRetryNote(unanswered)
    }

    private struct InProgressAware: Error { let error: CurvineError; let unanswered: Bool }

    /// Codes whose re-send the master answers InProgress even after success (§3.1).
    static let markOnlyCodes: Set<RpcCode> = [.setAttr, .symlink, .link]

    private func attempt(_ frame: Frame, at idx: Int, endNs: UInt64, sent: inout Bool) throws -> Frame {
        let now = monotonicNs()
        let leftMs = endNs > now ? Int(clamping: (endNs - now + 999_999) / 1_000_000) : 1
        let conn = try connection(idx, timeoutMs: min(options.connectTimeoutMs, leftMs))
        let deadline = min(monotonicNs() &+ msToNs(options.rpcTimeoutMs), max(endNs, monotonicNs() &+ 1_000_000))
        sent = true
        let reply = try conn.call(frame, deadlineNs: deadline)
        guard reply.code == frame.code else {
            conn.fail(.protocolViolation("master answered code \(reply.code) to code \(frame.code)"))
            throw CurvineError.protocolViolation("master \(addresses[idx]) answered code \(reply.code) to a request with code \(frame.code)")
        }
        return reply
    }

    private func connection(_ idx: Int, timeoutMs: Int) throws -> RpcConnection {
        // An idle live connection first (its caller then reads its own reply, see
        // RpcConnection), else the next slot in turn.
        let now = monotonicNs()
        let (slot, idle): (Int, RpcConnection?) = lock.withLock {
            let n = options.connectionsPerMaster
            for k in 0..<n {
                let i = (nextSlot + 1 + k) % n
                if let c = pools[idx][i], c.inFlight == 0, c.isAlive { nextSlot = i; return (i, c) }
            }
            nextSlot = (nextSlot + 1) % n
            return (nextSlot, nil)
        }
        if let c = idle, c.usableForCall(now: now) { return c }
        if idle == nil, let c = lock.withLock({ pools[idx][slot] }), c.isAlive { return c }
        let c = try RpcConnection(peer: addresses[idx], connectTimeoutMs: max(1, timeoutMs))
        // Another caller may have refilled the slot meanwhile: keep the live one and close
        // the spare (closing a dead one ends nothing in flight; leaving either open would
        // leak its socket and reader thread).
        let (use, spare): (RpcConnection, RpcConnection?) = lock.withLock {
            if let o = pools[idx][slot], o.isAlive { return (o, c) }
            let o = pools[idx][slot]
            pools[idx][slot] = c
            return (c, o)
        }
        spare?.close()
        return use
    }

    private func setLeader(_ idx: Int) { lock.withLock { leader = idx } }
    private func forgetLeader(_ idx: Int) { lock.withLock { if leader == idx { leader = nil } } }

    public func close() {
        let all: [RpcConnection] = lock.withLock { pools.flatMap { $0.compactMap { $0 } } }
        for c in all { c.close() }
        lock.withLock { pools = pools.map { $0.map { _ in nil } } }
    }
}

extension CurvineError {
    /// Marks an error as seen after a retry of an attempt that went out unanswered (lost
    /// reply, timeout), so the master may have run it: InProgress on SetAttr/Symlink/Link
    /// then reads as "probably applied" (§3.1), EEXIST on Mkdir as "ours". Retries after
    /// NotLeaderMaster or a failed connect (nothing ran) are not marked.
    func withRetryNote(_ retried: Bool) -> CurvineError {
        guard retried else { return self }
        var e = self
        if !e.message.hasSuffix("(after retry)") { e.message += " (after retry)" }
        return e
    }

    /// The call was re-sent after an attempt that went out unanswered (see `withRetryNote`).
    public var wasRetried: Bool { message.hasSuffix("(after retry)") }
}

/// Milliseconds to nanoseconds, saturating (configs may hold huge values).
func msToNs(_ ms: Int) -> UInt64 {
    let m = UInt64(max(0, ms))
    let (r, o) = m.multipliedReportingOverflow(by: 1_000_000)
    return o ? UInt64.max / 2 : r
}
