// Hit/miss counters of the metadata caches, for /metrics (curvine_fuse_node_cache_total).
//
// Kept apart from CoreStats (Types.swift), whose counters are bumped under a lock: these
// are bumped on every lookup and getattr, so they are relaxed atomics, one add each, no
// lock. Each counter sits on its own cache line so that lookups on one CPU and getattrs
// on another do not bounce a shared line.
import Synchronization

public final class CacheStats: @unchecked Sendable {
    /// lookup answered from a fresh cached dentry (no master round trip).
    let lookupHit = PaddedCounter()
    /// lookup answered ENOENT from a fresh negative entry.
    let lookupNegative = PaddedCounter()
    /// lookup that asked the master.
    let lookupMiss = PaddedCounter()
    /// Attribute check (getattr, access, readlink, a parent's search check) answered
    /// from fresh cached attributes.
    let attrHit = PaddedCounter()
    /// Attribute check that asked the master.
    let attrMiss = PaddedCounter()

    init() {}

    /// A consistent-enough copy (each value read once, relaxed).
    public var snapshot: CacheStatsSnapshot {
        CacheStatsSnapshot(lookupHit: lookupHit.value, lookupNegative: lookupNegative.value, lookupMiss: lookupMiss.value,
                           attrHit: attrHit.value, attrMiss: attrMiss.value)
    }
}

public struct CacheStatsSnapshot: Sendable, Equatable {
    public var lookupHit: UInt64 = 0
    public var lookupNegative: UInt64 = 0
    public var lookupMiss: UInt64 = 0
    public var attrHit: UInt64 = 0
    public var attrMiss: UInt64 = 0
    public init() {}
    public init(lookupHit: UInt64, lookupNegative: UInt64, lookupMiss: UInt64, attrHit: UInt64, attrMiss: UInt64) {
        self.lookupHit = lookupHit; self.lookupNegative = lookupNegative; self.lookupMiss = lookupMiss
        self.attrHit = attrHit; self.attrMiss = attrMiss
    }
}

/// One relaxed atomic counter alone on a 64-byte line (the padding keeps neighbours off it).
final class PaddedCounter: @unchecked Sendable {
    private let pad0: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0)
    private let a = Atomic<UInt64>(0)
    private let pad1: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0)

    @inline(__always) func add() { a.wrappingAdd(1, ordering: .relaxed) }
    var value: UInt64 { a.load(ordering: .relaxed) }
}

extension FileSystemCore {
    /// Metadata-cache hit/miss counters since mount.
    public var cacheStats: CacheStatsSnapshot { env.cacheStats.snapshot }
}
