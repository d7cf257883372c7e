// The master's retry cache (PROTOCOL.md §3.1; upstream fs_retry_cache.rs), keyed by
// req_id. For CreateFile, OpenFile (write), Delete, Free and Rename:
//   first sight        -> recorded as running, the call executes
//   seen, running      -> InProgress (18)
//   seen, succeeded    -> the caller answers "success-ish" without executing again
//   seen, failed       -> the call executes again
// SetAttr, Symlink and Link only mark their req_id (begin without finish): any re-send
// within the TTL gets InProgress, even after success.
// Entries live `ttlMs` after their last change (upstream retry_cache_ttl "10m") and the
// oldest go first beyond `capacity` (upstream retry_cache_size 100 000).
import CurvineClient

final class RetryCache: @unchecked Sendable {
    enum State { case running, succeeded, failed }

    private let lock = Lock()
    private var entries: [Int64: (state: State, expiresNs: UInt64)] = [:]
    /// Insertion order with expiry, for sweeping; stale pairs are skipped.
    private var order: [(id: Int64, expiresNs: UInt64)] = []
    private var orderHead = 0
    private let ttlNs: UInt64
    private let capacity: Int

    init(ttlMs: Int64 = 10 * 60 * 1000, capacity: Int = 100_000) {
        self.ttlNs = UInt64(max(0, ttlMs)) * 1_000_000
        self.capacity = max(1, capacity)
    }

    /// True when an earlier attempt with this id succeeded (answer success-ish, do not
    /// execute); false when the call should execute now; throws InProgress while an
    /// earlier attempt runs.
    func begin(_ reqId: Int64) throws -> Bool {
        try lock.withLock {
            let now = monotonicNs()
            sweep(now)
            if let e = entries[reqId], e.expiresNs > now {
                switch e.state {
                case .running: throw ServerError.inProgress(reqId)
                case .succeeded: return true
                case .failed: break
                }
            }
            set(reqId, .running, now)
            return false
        }
    }

    func finish(_ reqId: Int64, success: Bool) {
        lock.withLock { set(reqId, success ? .succeeded : .failed, monotonicNs()) }
    }

    private func set(_ id: Int64, _ s: State, _ now: UInt64) {
        let exp = now + ttlNs
        entries[id] = (s, exp)
        order.append((id, exp))
        while entries.count > capacity, orderHead < order.count {
            let (old, e) = order[orderHead]
            orderHead += 1
            if entries[old]?.expiresNs == e { entries[old] = nil }
        }
        compact()
    }

    private func sweep(_ now: UInt64) {
        while orderHead < order.count, order[orderHead].expiresNs <= now {
            let (id, e) = order[orderHead]
            orderHead += 1
            if entries[id]?.expiresNs == e { entries[id] = nil }
        }
        compact()
    }

    /// Drops the consumed prefix of `order` once it dominates the array.
    private func compact() {
        if orderHead > 1024 && orderHead * 2 > order.count {
            order.removeFirst(orderHead)
            orderHead = 0
        }
    }

    var count: Int { lock.withLock { entries.count } }
}
