// Cluster-wide file locks: POSIX (fcntl F_SETLK/F_SETLKW/F_GETLK), OFD (F_OFD_*) and
// BSD flock, held on the master (GetLock/SetLock, PROTOCOL.md §6.2 "Locks") so that two
// mounts, on one host or on many, exclude each other.
//
// Owner identity is (client.clientName, kernel lock_owner): the kernel's lock_owner is
// the fd table for POSIX locks and the open file description for OFD and flock locks,
// so it already tells those apart; the client name tells mounts (processes) apart.
//
// What this file keeps locally, per inode (`LockState`):
//   * a mirror of every lock this client holds, per (owner, flavor), with the master's
//     splitting rules applied (so it equals the master's view of our locks). It answers
//     "does this owner hold anything here?" without a round trip — FLUSH only talks to
//     the master when the closing owner holds a POSIX lock (upstream #1227: an unlock on
//     every FLUSH was a SetLock + journal storm) — and it is what the lease refresher
//     re-issues.
//   * the handles (fh) each owner locked through: RELEASE of a handle drops the flock
//     and OFD locks of that open file description (and, as a safety net, POSIX owners
//     that locked through it and were never flushed).
//   * the wait-for graph of this mount's blocked POSIX waiters, for EDEADLK.
//
// Blocking waits (F_SETLKW, flock without LOCK_NB) are client-side: the master has no
// blocking RPC. A waiter re-issues SetLock, sleeping min(1000, 100 × attempt) ms between
// attempts; a local change (unlock, close, grant) or an interrupt wakes it at once. A
// waiter occupies the FUSE worker thread that received its request (the libfuse
// low-level API replies on that thread); the `interrupted` closure is polled every round
// and after every wake-up, so FUSE_INTERRUPT (a signal to the waiting process) ends the
// wait with EINTR within one round.
//
// Deadlock detection (EDEADLK) covers POSIX waiters of this mount: a waiter blocked by a
// POSIX lock of another owner of this client records the edge waiter -> blocker; if the
// blocker's chain of edges leads back to the waiter, the master is asked once more
// (the blocker may just have let go) and EDEADLK is returned if the cycle stands.
// Cycles through other clients cannot be seen (their waiters are not ours). OFD locks
// should be left out, as Linux leaves them out, but FUSE does not say whether an fcntl
// lock is POSIX or OFD: like upstream, a request pid of 0 or -1 is taken as OFD. Linux
// 6.x (seen on 6.18) sends the caller's tgid for OFD locks too, so there OFD waiters are
// checked like POSIX ones (an OFD cycle gets EDEADLK where Linux would wait), and a
// caller outside the daemon's pid namespace arrives with pid 0 and is not checked.
//
// Leases: the master drops a lock older than lock_expire_time (5 min) unless SetLock is
// re-issued. A background thread re-issues every held lock every `lockRefreshInterval`
// (60 s). A re-issue that meets a conflict means the lease had already lapsed and
// someone else took the range: the lock is dropped from the mirror and counted in
// `lockStats.lost`.
//
// LOCK ORDER (extends InodeTable.swift's): InodeLocks.rpc is held across the SetLock
// round trip of one inode (it serialises the master's lock state of that inode between
// user requests, close-time unlocks and the refresher, so a refresh can never re-grant
// a range that was just unlocked); under it InodeTable.lock and LockState.cond may be
// taken. LockState.cond is a leaf: nothing is taken under it. Waiters sleep holding
// neither.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CurvineClient

/// Counters of the lock layer (tests, diagnostics).
public struct LockStats: Sendable, Equatable {
    /// Locks this client holds now (POSIX ranges + flocks), per the local mirror.
    public var held = 0
    /// SETLKW/flock waits in progress.
    public var waiters = 0
    /// SetLock re-issues by the lease refresher.
    public var refreshed: UInt64 = 0
    /// Locks found taken by someone else at refresh (the lease had lapsed).
    public var lost: UInt64 = 0
    /// EDEADLK answers.
    public var deadlocks: UInt64 = 0
}

/// Where the lock layer reports what no request can report (lease refresh failures,
/// unlocks that failed at close). The adapter points it at its log.
public enum LockLog {
    nonisolated(unsafe) public static var warn: (@Sendable (String) -> Void)?
    static func warning(_ s: @autoclosure () -> String) { warn?(s()) }
}

final class LockState: @unchecked Sendable {
    struct Range: Equatable {
        var type: LockType
        var start: UInt64
        var end: UInt64
    }

    struct OwnerKey: Hashable {
        var owner: UInt64
        var flavor: LockFlavor
    }

    /// What one owner holds on one inode.
    final class Held {
        var ranges: [Range] = []
        var pid: UInt32 = 0
        var fhs: Set<UInt64> = []
    }

    /// One inode's locks held by this client.
    final class InodeLocks {
        /// Serialises this inode's SetLock round trips (see LOCK ORDER).
        let rpc = Lock()
        var owners: [OwnerKey: Held] = [:]
        /// Operations using this entry (it is dropped when unused and empty).
        var users = 0
        /// Bumped on every change of this inode's locks (a waiter re-asks the master).
        var generation: UInt64 = 0
    }

    let cond = ConditionLock()
    var inodes: [UInt64: InodeLocks] = [:]
    /// Bumped (and broadcast) by wake(): every waiter re-checks `interrupted`.
    var wakeups: UInt64 = 0
    /// POSIX waiters of this mount: waiter owner -> (blocking owner, waiter token).
    var waits: [UInt64: (blocker: UInt64, token: UInt64)] = [:]
    var nextToken: UInt64 = 0
    var waiters = 0
    var isShutDown = false
    var refresherRunning = false
    var refreshIntervalNs: UInt64 = 60_000_000_000
    var refreshed: UInt64 = 0
    var lost: UInt64 = 0
    var deadlocks: UInt64 = 0

    /// The backoff between attempts of a blocking wait (upstream sync_check_interval
    /// min/max: 100 ms × attempt, at most 1 s).
    static func backoffMs(attempt: Int) -> UInt64 { UInt64(min(1000, 100 * max(1, attempt))) }

    /// Upstream's heuristic: FUSE reports OFD locks with pid 0 or -1 (some kernels do;
    /// 6.x sends the tgid). OFD locks are not process locks: no deadlock detection.
    static func isOFD(pid: UInt32) -> Bool { pid == 0 || pid == UInt32.max }

    /// `r` minus [s, e] (0, 1 or 2 ranges).
    static func subtract(_ r: Range, _ s: UInt64, _ e: UInt64) -> [Range] {
        if r.start > e || s > r.end { return [r] }
        var out: [Range] = []
        if r.start < s { out.append(Range(type: r.type, start: r.start, end: s - 1)) }
        if r.end > e { out.append(Range(type: r.type, start: e + 1, end: r.end)) }
        return out
    }

    /// Applies a granted SetLock to the mirror, as the master applies it. Lock held.
    func applyLocked(_ e: InodeLocks, _ l: FileLock, fh: UInt64?) {
        let key = OwnerKey(owner: l.ownerId, flavor: l.flavor)
        let held = e.owners[key] ?? Held()
        switch l.flavor {
        case .posix:
            if l.type == .unlock && l.start == 0 && l.end == UInt64.max {
                held.ranges.removeAll()
            } else {
                held.ranges = held.ranges.flatMap { Self.subtract($0, l.start, l.end) }
                if l.type != .unlock { held.ranges.append(Range(type: l.type, start: l.start, end: l.end)) }
            }
        case .flock:
            held.ranges = l.type == .unlock ? [] : [Range(type: l.type, start: 0, end: UInt64.max)]
        }
        if l.type != .unlock {
            held.pid = l.pid
            if let fh { held.fhs.insert(fh) }
        }
        e.owners[key] = held.ranges.isEmpty ? nil : held
        e.generation &+= 1
        cond.broadcast()
    }

    func pin(_ ino: UInt64, create: Bool) -> InodeLocks? {
        cond.withLock {
            var e = inodes[ino]
            if e == nil && create {
                e = InodeLocks()
                inodes[ino] = e
            }
            e?.users += 1
            return e
        }
    }

    func unpin(_ ino: UInt64, _ e: InodeLocks) {
        cond.withLock {
            e.users -= 1
            if e.users == 0 && e.owners.isEmpty && inodes[ino] === e { inodes[ino] = nil }
        }
    }

    func wake() {
        cond.withLock {
            wakeups &+= 1
            cond.broadcast()
        }
    }
}

extension FileSystemCore {
    // MARK: public API (the adapter's getlk/setlk/flock/flush)

    /// F_GETLK: the lock that would block `type` on [start, end] for `owner`, or nil.
    /// `end == UInt64.max` means to EOF. The conflict's pid is kept only when it is a
    /// lock of this client (another client's pid means nothing on this host).
    public func getlk(ino: UInt64, fh: UInt64, owner: UInt64, type: LockType, start: UInt64, end: UInt64,
                      pid: UInt32) throws -> FileLock? {
        _ = try fileHandle(fh, ino)
        try checkRange(start, end)
        let path = try table.path(ino)
        let q = FileLock(clientId: client.clientName, ownerId: owner, pid: pid, type: type, flavor: .posix,
                         start: start, end: end)
        guard var c = try fsTry({ try client.getLock(path, q) }) else { return nil }
        if c.clientId != client.clientName { c.pid = 0 }
        return c
    }

    /// F_SETLK (`wait` false: a conflict is EAGAIN) and F_SETLKW (`wait` true: polls until
    /// granted; EINTR once `interrupted()` is true, EDEADLK for a local POSIX cycle).
    /// F_UNLCK never waits. `end == UInt64.max` means to EOF.
    public func setlk(ino: UInt64, fh: UInt64, owner: UInt64, type: LockType, start: UInt64, end: UInt64,
                      pid: UInt32, wait: Bool, interrupted: () -> Bool = { false }) throws {
        try checkRange(start, end)
        let l = FileLock(clientId: client.clientName, ownerId: owner, pid: pid, type: type, flavor: .posix,
                         start: start, end: end)
        try lockOp(ino: ino, fh: fh, l, wait: wait, detectDeadlock: wait && !LockState.isOFD(pid: pid),
                   interrupted: interrupted)
    }

    /// flock(2): `type` read = LOCK_SH, write = LOCK_EX, unlock = LOCK_UN; `wait` false
    /// for LOCK_NB (a conflict is EWOULDBLOCK).
    public func flock(ino: UInt64, fh: UInt64, owner: UInt64, type: LockType, pid: UInt32, wait: Bool,
                      interrupted: () -> Bool = { false }) throws {
        let l = FileLock(clientId: client.clientName, ownerId: owner, pid: pid, type: type, flavor: .flock,
                         start: 0, end: UInt64.max)
        try lockOp(ino: ino, fh: fh, l, wait: wait, detectDeadlock: false, interrupted: interrupted)
    }

    /// FLUSH (every close(2)): POSIX semantics drop all of `owner`'s POSIX locks on the
    /// file when it closes any descriptor of it. Talks to the master only when the owner
    /// holds one (upstream #1227). Buffered writes are flushed first, so whoever takes
    /// the lock next sees them. On an unlock error the lock is kept in the mirror (the
    /// RELEASE retries it) and the error is thrown.
    public func releaseLocksOnFlush(ino: UInt64, fh: UInt64, owner: UInt64) throws {
        let st = lockState
        let key = LockState.OwnerKey(owner: owner, flavor: .posix)
        guard st.cond.withLock({ st.inodes[ino]?.owners[key] != nil }),
              let e = st.pin(ino, create: false) else { return }
        defer { st.unpin(ino, e) }
        flushWriterForLocks(ino: ino, fh: fh)
        try e.rpc.withLock {
            guard st.cond.withLock({ e.owners[key] != nil }) else { return }
            let path = try table.path(ino)
            let u = FileLock(clientId: client.clientName, ownerId: owner, pid: 0, type: .unlock, flavor: .posix,
                             start: 0, end: UInt64.max)
            _ = try fsTry { try client.setLock(path, u) }
            st.cond.withLock { st.applyLocked(e, u, fh: nil) }
        }
    }

    /// Wakes every blocked waiter of this mount to re-check (the adapter's FUSE_INTERRUPT
    /// callback calls this).
    public func wakeLockWaiters() { lockState.wake() }

    /// Lease refresh period (default 60 s; the master's lease is 5 min).
    public var lockRefreshInterval: Double {
        get { Double(lockState.cond.withLock { lockState.refreshIntervalNs }) / 1e9 }
        set {
            let st = lockState
            st.cond.withLock {
                st.refreshIntervalNs = UInt64(max(0.01, newValue) * 1e9)
                st.cond.broadcast()
            }
        }
    }

    public var lockStats: LockStats {
        let st = lockState
        return st.cond.withLock {
            LockStats(held: st.inodes.values.reduce(0) { $0 + $1.owners.values.reduce(0) { $0 + $1.ranges.count } },
                      waiters: st.waiters, refreshed: st.refreshed, lost: st.lost, deadlocks: st.deadlocks)
        }
    }

    /// The locks this client holds on `ino` per the local mirror, ordered by owner, flavor
    /// and start.
    public func heldLocks(ino: UInt64) -> [FileLock] {
        let st = lockState
        let name = client.clientName
        return st.cond.withLock {
            guard let e = st.inodes[ino] else { return [] }
            return e.owners.flatMap { (k, h) in
                h.ranges.map { FileLock(clientId: name, ownerId: k.owner, pid: h.pid, type: $0.type, flavor: k.flavor,
                                        start: $0.start, end: $0.end) }
            }.sorted { ($0.ownerId, $0.flavor.rawValue, $0.start) < ($1.ownerId, $1.flavor.rawValue, $1.start) }
        }
    }

    // MARK: hooks (release, shutdown)

    /// RELEASE of handle `fh`: unlocks every owner that locked through it (flock and OFD
    /// owners are the open file description; a POSIX owner still here was never flushed).
    /// Errors are reported to LockLog only: the lock lapses on the master within one lease.
    func releaseLocks(ino: UInt64, fh: UInt64) {
        let st = lockState
        guard let e = st.pin(ino, create: false) else { return }
        defer { st.unpin(ino, e) }
        e.rpc.withLock {
            let victims = st.cond.withLock { e.owners.filter { $0.value.fhs.contains(fh) }.map(\.key) }
            guard !victims.isEmpty else { return }
            let path = try? table.path(ino)
            for k in victims {
                let u = FileLock(clientId: client.clientName, ownerId: k.owner, pid: 0, type: .unlock, flavor: k.flavor,
                                 start: 0, end: UInt64.max)
                if let path {
                    do { _ = try client.setLock(path, u) } catch {
                        LockLog.warning("unlock of \(path) (owner \(k.owner), \(k.flavor)) at close failed: \(error); the master drops it when its lease ends")
                    }
                }
                st.cond.withLock { st.applyLocked(e, u, fh: nil) }
            }
        }
    }

    /// Unmount: ends waiters and the refresher, and unlocks everything still held (best
    /// effort) so other mounts need not wait for the leases to lapse.
    func shutdownLocks() {
        let st = lockState
        let entries: [(UInt64, LockState.InodeLocks)] = st.cond.withLock {
            st.isShutDown = true
            st.wakeups &+= 1
            st.cond.broadcast()
            return st.inodes.map { ($0.key, $0.value) }
        }
        for (ino, e) in entries {
            e.rpc.withLock {
                let keys = st.cond.withLock { Array(e.owners.keys) }
                let path = try? table.path(ino)
                for k in keys {
                    let u = FileLock(clientId: client.clientName, ownerId: k.owner, pid: 0, type: .unlock,
                                     flavor: k.flavor, start: 0, end: UInt64.max)
                    if let path { _ = try? client.setLock(path, u) }
                    st.cond.withLock { st.applyLocked(e, u, fh: nil) }
                }
            }
        }
    }

    // MARK: internals

    func checkRange(_ start: UInt64, _ end: UInt64) throws {
        if end < start { throw FSError(EINVAL, "lock range ends (\(end)) before it starts (\(start))") }
    }

    /// Pushes the inode's buffered writes to the cluster before a lock changes hands
    /// (upstream: lock ops first flush the writer). Errors surface on the next
    /// flush/fsync/close as they would anyway.
    func flushWriterForLocks(ino: UInt64, fh: UInt64) {
        guard let h = try? fileHandle(fh, ino), let w = h.open.writer else { return }
        if (try? w.flush()) != nil { table.invalidateStatus(ino) }
    }

    /// One SetLock round trip under the inode's rpc lock; the mirror follows a grant, and
    /// a granted waiter (`token`) leaves the wait-for graph in the same step, so no other
    /// waiter can see it as still waiting once the master has granted it.
    func exchangeLock(ino: UInt64, _ e: LockState.InodeLocks, _ l: FileLock, fh: UInt64,
                      token: UInt64? = nil) throws -> FileLock? {
        try e.rpc.withLock {
            let path = try table.path(ino)
            let c = try fsTry { try client.setLock(path, l) }
            if c == nil {
                let st = lockState
                st.cond.withLock {
                    st.applyLocked(e, l, fh: fh)
                    if let token, let w = st.waits[l.ownerId], w.token == token { st.waits[l.ownerId] = nil }
                }
            }
            return c
        }
    }

    func lockOp(ino: UInt64, fh: UInt64, _ l: FileLock, wait: Bool, detectDeadlock: Bool,
                interrupted: () -> Bool) throws {
        _ = try fileHandle(fh, ino)
        let st = lockState
        if st.cond.withLock({ st.isShutDown }) { throw FSError(EIO, "the mount is shutting down") }
        flushWriterForLocks(ino: ino, fh: fh)
        guard let e = st.pin(ino, create: true) else { return }
        defer { st.unpin(ino, e) }

        if l.type == .unlock {
            _ = try exchangeLock(ino: ino, e, l, fh: fh)
            return
        }

        let token: UInt64 = st.cond.withLock {
            st.nextToken &+= 1
            return st.nextToken
        }
        var attempt = 0
        var counted = false
        defer {
            st.cond.withLock {
                if counted { st.waiters -= 1 }
                if let w = st.waits[l.ownerId], w.token == token { st.waits[l.ownerId] = nil }
            }
        }
        while true {
            // Sampled before asking: a change after the answer then ends the sleep at once.
            let (gen, woke) = st.cond.withLock { (e.generation, st.wakeups) }
            guard let c = try exchangeLock(ino: ino, e, l, fh: fh, token: token) else {
                startLockRefresher()
                table.invalidateStatus(ino)  // whoever held it may have changed the file
                return
            }
            if !wait {
                throw FSError(EAGAIN, "\(l.flavor == .flock ? "flock" : "lock") of inode \(ino) conflicts with owner \(c.ownerId) of \(c.clientId == client.clientName ? "this mount" : "client \(c.clientId)")")
            }
            if !counted {
                counted = true
                st.cond.withLock { st.waiters += 1 }
                // flock(2) converts SH <-> EX by dropping the old lock first (not
                // atomic, see flock(2)): two holders upgrading would otherwise wait on
                // each other for ever.
                if l.flavor == .flock,
                   st.cond.withLock({ e.owners[LockState.OwnerKey(owner: l.ownerId, flavor: .flock)] != nil }) {
                    var u = l
                    u.type = .unlock
                    _ = try exchangeLock(ino: ino, e, u, fh: fh)
                }
            }
            if detectDeadlock {
                if deadlocked(l, blocker: c, token: token) {
                    // Ask once more: the blocker may have let go in the meantime.
                    guard let c2 = try exchangeLock(ino: ino, e, l, fh: fh, token: token) else {
                        startLockRefresher()
                        table.invalidateStatus(ino)
                        return
                    }
                    if deadlocked(l, blocker: c2, token: token) {
                        st.cond.withLock { st.deadlocks += 1 }
                        throw FSError(EDEADLK, "lock of inode \(ino) by owner \(l.ownerId) would deadlock with owner \(c2.ownerId)")
                    }
                }
            }
            attempt += 1
            let deadline = monotonicNs() + LockState.backoffMs(attempt: attempt) * 1_000_000
            var seenWake = woke
            while true {
                if interrupted() { throw FSError(EINTR, "lock wait on inode \(ino) interrupted") }
                // Sleeps until the backoff ends, this inode's locks change here, or wake().
                let (stop, changed, due, w): (Bool, Bool, Bool, UInt64) = st.cond.withLock {
                    if !st.isShutDown && e.generation == gen && st.wakeups == seenWake && monotonicNs() < deadline {
                        _ = st.cond.wait(untilNs: deadline)
                    }
                    return (st.isShutDown, e.generation != gen, monotonicNs() >= deadline, st.wakeups)
                }
                if stop { throw FSError(EIO, "the mount is shutting down") }
                if changed || due { break }
                seenWake = w  // a wake-up: re-check `interrupted` and sleep on
            }
        }
    }

    /// Records the edge waiter -> blocker (local POSIX blockers only) and reports whether
    /// the blocker's chain of waits leads back to the waiter.
    func deadlocked(_ l: FileLock, blocker c: FileLock, token: UInt64) -> Bool {
        let st = lockState
        return st.cond.withLock {
            guard c.clientId == client.clientName, c.flavor == .posix, !LockState.isOFD(pid: c.pid) else {
                if let w = st.waits[l.ownerId], w.token == token { st.waits[l.ownerId] = nil }
                return false
            }
            var cur = c.ownerId
            var seen: Set<UInt64> = []
            while true {
                if cur == l.ownerId { return true }
                guard seen.insert(cur).inserted, let next = st.waits[cur] else { break }
                cur = next.blocker
            }
            st.waits[l.ownerId] = (c.ownerId, token)
            return false
        }
    }

    /// Starts the lease refresher once (on the first grant).
    func startLockRefresher() {
        let st = lockState
        let start: Bool = st.cond.withLock {
            if st.refresherRunning || st.isShutDown { return false }
            st.refresherRunning = true
            return true
        }
        guard start else { return }
        startThread(name: "cv-lock-refresh") { [weak self] in
            var next = monotonicNs() + st.cond.withLock { st.refreshIntervalNs }
            while true {
                let go: Bool = st.cond.withLock {
                    while !st.isShutDown && monotonicNs() < next {
                        // Re-read the interval: a shorter one set later takes effect now.
                        _ = st.cond.wait(untilNs: min(next, monotonicNs() + st.refreshIntervalNs))
                        next = min(next, monotonicNs() + st.refreshIntervalNs)
                    }
                    return !st.isShutDown
                }
                guard go, let core = self else { break }
                core.refreshLocks()
                next = monotonicNs() + st.cond.withLock { st.refreshIntervalNs }
            }
            st.cond.withLock { st.refresherRunning = false }
        }
    }

    /// Re-issues every held lock (a SetLock of the same owner and range re-grants it with a
    /// new acquire_time). A conflict means the lease lapsed and another owner took it.
    func refreshLocks() {
        let st = lockState
        let inos: [UInt64] = st.cond.withLock { st.inodes.filter { !$0.value.owners.isEmpty }.map(\.key) }
        for ino in inos {
            guard let e = st.pin(ino, create: false) else { continue }
            defer { st.unpin(ino, e) }
            e.rpc.withLock {
                let held: [(LockState.OwnerKey, [LockState.Range], UInt32)] = st.cond.withLock {
                    e.owners.map { ($0.key, $0.value.ranges, $0.value.pid) }
                }
                guard !held.isEmpty else { return }
                guard let path = try? table.path(ino) else {
                    LockLog.warning("inode \(ino) holds locks but has no path any more: forgetting them")
                    st.cond.withLock { for (k, _, _) in held { e.owners[k] = nil } }
                    return
                }
                for (k, ranges, pid) in held {
                    for r in ranges {
                        let l = FileLock(clientId: client.clientName, ownerId: k.owner, pid: pid, type: r.type,
                                         flavor: k.flavor, start: r.start, end: r.end)
                        do {
                            let c = try client.setLock(path, l)
                            st.cond.withLock {
                                st.refreshed += 1
                                guard let c else { return }
                                st.lost += 1
                                var u = l
                                u.type = .unlock
                                if k.flavor == .flock { u.start = 0; u.end = UInt64.max }
                                st.applyLocked(e, u, fh: nil)
                                LockLog.warning("lock on \(path) [\(r.start), \(r.end)] of owner \(k.owner) lapsed on the master and is now held by owner \(c.ownerId) of client \(c.clientId)")
                            }
                        } catch let err as CurvineError where err.errno == ENOENT {
                            LockLog.warning("\(path) is gone: dropping its locks")
                            st.cond.withLock { for (k, _, _) in held { e.owners[k] = nil } }
                            return
                        } catch {
                            LockLog.warning("lease refresh of the lock on \(path) failed: \(error); retrying in \(Int(lockRefreshInterval)) s")
                        }
                    }
                }
            }
        }
    }
}
