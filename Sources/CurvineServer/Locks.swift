// Byte-range (POSIX/OFD, "PLOCK") and whole-file (BSD flock) locks of one inode, with
// upstream's semantics (PROTOCOL.md §6.2 "Locks"; curvine-master meta/lock_meta.rs):
//
// * Owner = (client_id, owner_id). Locks of the same owner never conflict.
// * Conflict: different owners, at least one WRITE, and for PLOCK overlapping inclusive
//   ranges. PLOCK and FLOCK are separate lock spaces (they never conflict with each
//   other, as on Linux).
// * GetLock returns the conflicting PLOCK with the lowest start (or any conflicting
//   FLOCK); an UNLOCK query never conflicts.
// * SetLock READ/WRITE: on conflict nothing changes and the conflict is returned.
//   Otherwise PLOCK cuts the owner's overlapping ranges out first (POSIX splitting, so
//   WRITE over the owner's READ converts it) and adds the new range; FLOCK replaces the
//   owner's flock. acquire_time is set to "now" on every grant.
// * SetLock UNLOCK: PLOCK subtracts the range from the owner's ranges (splitting);
//   [0, u64::MAX] drops all of them. FLOCK drops the owner's flock.
// * Expiry: a lock older than the expiry (or with acquire_time 0) is dropped lazily the
//   next time the inode's locks are checked. Ranges of one owner are not coalesced
//   (upstream does not either).
import CurvineClient

struct LockOwner: Hashable {
    var clientId: String
    var ownerId: UInt64
    init(_ l: FileLock) { clientId = l.clientId; ownerId = l.ownerId }
}

struct InodeLocks: Equatable {
    /// PLOCK ranges per owner, in insertion order.
    private(set) var posix: [LockOwner: [FileLock]] = [:]
    private(set) var flocks: [LockOwner: FileLock] = [:]

    init() {}

    init(_ all: [FileLock]) {
        for l in all {
            switch l.flavor {
            case .posix: posix[LockOwner(l), default: []].append(l)
            case .flock: flocks[LockOwner(l)] = l
            }
        }
    }

    var isEmpty: Bool { posix.isEmpty && flocks.isEmpty }
    var count: Int { posix.values.reduce(0) { $0 + $1.count } + flocks.count }

    /// Every lock, PLOCKs first, in a stable order (owner, then start): used by the journal.
    var all: [FileLock] {
        let p = posix.values.flatMap { $0 }.sorted(by: lockOrder)
        let f = flocks.values.sorted(by: lockOrder)
        return p + f
    }

    private static func expired(_ l: FileLock, now: UInt64, expireMs: UInt64) -> Bool {
        l.acquireTimeMs == 0 || (now > l.acquireTimeMs && now - l.acquireTimeMs > expireMs)
    }

    private static func overlap(_ aS: UInt64, _ aE: UInt64, _ bS: UInt64, _ bE: UInt64) -> Bool {
        aS <= bE && bS <= aE
    }

    private static func typesConflict(_ a: LockType, _ b: LockType) -> Bool {
        a == .write || b == .write
    }

    /// Ranges of [rs, re] left after removing [xs, xe].
    private static func subtract(_ rs: UInt64, _ re: UInt64, _ xs: UInt64, _ xe: UInt64) -> [(UInt64, UInt64)] {
        if !overlap(rs, re, xs, xe) { return [(rs, re)] }
        var out: [(UInt64, UInt64)] = []
        if rs < xs { out.append((rs, xs - 1)) }
        if re > xe { out.append((xe + 1, re)) }
        return out
    }

    /// Drops expired locks; true when something was dropped.
    @discardableResult
    mutating func purgeExpired(now: UInt64, expireMs: UInt64) -> Bool {
        let before = count
        for (k, ls) in posix {
            let kept = ls.filter { !Self.expired($0, now: now, expireMs: expireMs) }
            posix[k] = kept.isEmpty ? nil : kept
        }
        for (k, l) in flocks where Self.expired(l, now: now, expireMs: expireMs) { flocks[k] = nil }
        return count != before
    }

    /// F_GETLK: the lock that would block `lock`, if any. Purges expired locks.
    mutating func conflict(for lock: FileLock, now: UInt64, expireMs: UInt64) -> FileLock? {
        if lock.type == .unlock { return nil }
        purgeExpired(now: now, expireMs: expireMs)
        let me = LockOwner(lock)
        switch lock.flavor {
        case .posix:
            var best: FileLock?
            for (owner, ls) in posix where owner != me {
                for l in ls where Self.typesConflict(lock.type, l.type)
                    && Self.overlap(lock.start, lock.end, l.start, l.end) {
                    if best == nil || l.start < best!.start { best = l }
                }
            }
            return best
        case .flock:
            for (owner, l) in flocks.sorted(by: { lockOrder($0.value, $1.value) })
                where owner != me && Self.typesConflict(lock.type, l.type) {
                return l
            }
            return nil
        }
    }

    /// F_SETLK / flock: returns (conflict, changed). `changed` says whether the stored
    /// state differs afterwards (the namespace journals only then).
    mutating func set(_ lock: FileLock, now: UInt64, expireMs: UInt64) -> (FileLock?, Bool) {
        let me = LockOwner(lock)
        let before = self
        if lock.type == .unlock {
            purgeExpired(now: now, expireMs: expireMs)
            switch lock.flavor {
            case .posix:
                if lock.start == 0 && lock.end == UInt64.max {
                    posix[me] = nil
                } else if let mine = posix[me] {
                    let rest = mine.flatMap { l in
                        Self.subtract(l.start, l.end, lock.start, lock.end).map { r -> FileLock in
                            var c = l; c.start = r.0; c.end = r.1; return c
                        }
                    }
                    posix[me] = rest.isEmpty ? nil : rest
                }
            case .flock:
                flocks[me] = nil
            }
            return (nil, self != before)
        }
        if let c = conflict(for: lock, now: now, expireMs: expireMs) {
            return (c, self != before)
        }
        var granted = lock
        granted.acquireTimeMs = now
        switch lock.flavor {
        case .posix:
            var mine = (posix[me] ?? []).flatMap { l in
                Self.subtract(l.start, l.end, lock.start, lock.end).map { r -> FileLock in
                    var c = l; c.start = r.0; c.end = r.1; return c
                }
            }
            mine.append(granted)
            posix[me] = mine
        case .flock:
            flocks[me] = granted
        }
        return (nil, true)
    }
}

private func lockOrder(_ a: FileLock, _ b: FileLock) -> Bool {
    if a.clientId != b.clientId { return nameLess(nameKey(a.clientId), nameKey(b.clientId)) }
    if a.ownerId != b.ownerId { return a.ownerId < b.ownerId }
    if a.start != b.start { return a.start < b.start }
    return a.end < b.end
}
