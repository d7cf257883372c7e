// Prefetch units (Prefetch.swift, "Memory") without reference counting.
//
// A unit's state lives in a `UnitState` struct at a fixed address in memory owned by its
// FileReader's `UnitStore`; the reader's lists (`units`, spares) hold `PrefetchUnit`
// values, which are just that address. Copying, appending, removing and comparing
// units is therefore plain pointer work: no swift_retain/swift_release per read or per
// prefetched unit (ReadAllocationTests counts them), where class instances in arrays
// cost a pair at every move. Units are recycled through the spare list and freed only
// with their store, so an address the read path or an io thread holds stays valid.
// Every field is guarded by the owning reader's lock, as before.

enum PrefetchUnitPhase { case queued, running, ready, failed, cancelled }

struct UnitState {
    var index: Int64 = 0
    var offset: Int64 = 0
    var length = 0
    var buf: PooledBuffer?
    /// `buf`'s memory (reading it through `buf` would cost a retain).
    var base: UnsafeMutableRawPointer?
    var state = PrefetchUnitPhase.cancelled
    var error: FSError?
    var pins = 0
    var served = 0
    var generation: UInt64 = 0
    /// Removed from `units`; recycle when unpinned and not running.
    var detached = false
}

/// A unit: the address of its state. Identity is the address.
struct PrefetchUnit {
    let p: UnsafeMutablePointer<UnitState>

    static func === (a: PrefetchUnit, b: PrefetchUnit) -> Bool { a.p == b.p }

    var index: Int64 { get { p.pointee.index } nonmutating set { p.pointee.index = newValue } }
    var offset: Int64 { get { p.pointee.offset } nonmutating set { p.pointee.offset = newValue } }
    var length: Int { get { p.pointee.length } nonmutating set { p.pointee.length = newValue } }
    var base: UnsafeMutableRawPointer? { get { p.pointee.base } nonmutating set { p.pointee.base = newValue } }
    var state: PrefetchUnitPhase { get { p.pointee.state } nonmutating set { p.pointee.state = newValue } }
    var error: FSError? { get { p.pointee.error } nonmutating set { p.pointee.error = newValue } }
    var pins: Int { get { p.pointee.pins } nonmutating set { p.pointee.pins = newValue } }
    var served: Int { get { p.pointee.served } nonmutating set { p.pointee.served = newValue } }
    var generation: UInt64 { get { p.pointee.generation } nonmutating set { p.pointee.generation = newValue } }
    var detached: Bool { get { p.pointee.detached } nonmutating set { p.pointee.detached = newValue } }

    /// Gives the unit its buffer (moved in, no retain).
    func attach(_ b: consuming PooledBuffer) {
        p.pointee.base = b.base
        p.pointee.buf = consume b
    }

    /// Takes the unit's buffer out (moved, no retain); nil when it has none.
    func detachBuffer() -> PooledBuffer? {
        p.pointee.base = nil
        return p.pointee.buf.take()
    }
}

/// Owns the memory of a reader's units: chunks that never move, freed at deinit.
final class UnitStore {
    /// Units per chunk: a 1 MiB unit's state is ~100 bytes, so 16 per allocation keeps
    /// the count of mallocs low while a window grows to its 64 units.
    private static let chunkSize = 16
    private var chunks: [UnsafeMutablePointer<UnitState>] = []
    private var usedInLast = UnitStore.chunkSize

    init() {}

    /// A fresh unit (the caller keeps it: there is no way back but the spare list).
    func make() -> PrefetchUnit {
        if usedInLast == Self.chunkSize {
            let c = UnsafeMutablePointer<UnitState>.allocate(capacity: Self.chunkSize)
            c.initialize(repeating: UnitState(), count: Self.chunkSize)
            chunks.append(c)
            usedInLast = 0
        }
        defer { usedInLast += 1 }
        return PrefetchUnit(p: chunks[chunks.count - 1] + usedInLast)
    }

    deinit {
        for c in chunks {
            c.deinitialize(count: Self.chunkSize)
            c.deallocate()
        }
    }
}
