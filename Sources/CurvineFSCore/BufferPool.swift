// Pooled, page-aligned buffers under one byte budget.
//
// Reads and writes never call malloc per request once the pool is warm: buffers come
// in power-of-two size classes starting at the chunk size, are handed out by
// `acquire` and come back through `release` to a per-class free list. `budget` caps the
// bytes alive (in use plus cached free). Optional work (prefetch, extra write buffers)
// asks with `force: false` and gets nil past the budget; work that must make progress
// (a demand read, a writer's first buffer) asks with `force: true` and may go over,
// which is bounded by the number of request threads. Free buffers beyond `maxIdleBytes`
// are returned to the system so a burst does not pin memory forever.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CurvineClient

/// A page-aligned buffer owned by a BufferPool. `count` is for the user (valid bytes).
final class PooledBuffer {
    let base: UnsafeMutableRawPointer
    let capacity: Int
    fileprivate let sizeClass: Int
    var count: Int = 0

    fileprivate init(capacity: Int, sizeClass: Int) {
        self.capacity = capacity
        self.sizeClass = sizeClass
        self.base = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 4096)
    }

    deinit { base.deallocate() }

    var raw: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: base, count: capacity) }
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
}

final class BufferPool: @unchecked Sendable {
    let name: String
    let budget: Int
    let minSize: Int
    let maxIdleBytes: Int
    private let lock = Lock()
    private var free: [[PooledBuffer]] = Array(repeating: [], count: 40)
    private var allocated = 0
    private var idle = 0

    init(name: String, budget: Int, minSize: Int, maxIdleBytes: Int? = nil) {
        self.name = name
        self.budget = max(budget, 0)
        var m = 4096
        while m < minSize { m <<= 1 }
        self.minSize = m
        self.maxIdleBytes = maxIdleBytes ?? min(self.budget, 64 << 20)
    }

    /// Bytes alive (in use + cached free).
    var allocatedBytes: Int { lock.withLock { allocated } }
    var idleBytes: Int { lock.withLock { idle } }

    private func sizeClass(for size: Int) -> (Int, Int) {
        var cls = 0
        var cap = minSize
        while cap < size { cap <<= 1; cls += 1 }
        return (cls, cap)
    }

    /// A buffer of at least `size` bytes, or nil when `force` is false and the budget is spent.
    func acquire(_ size: Int, force: Bool) -> PooledBuffer? {
        let (cls, cap) = sizeClass(for: size)
        lock.lock()
        if let b = free[cls].popLast() {
            idle -= b.capacity
            lock.unlock()
            b.count = 0
            return b
        }
        // Make room by dropping idle buffers of other classes.
        if allocated + cap > budget && idle > 0 {
            var victims: [PooledBuffer] = []
            for c in free.indices where !free[c].isEmpty {
                while allocated + cap > budget, let v = free[c].popLast() {
                    allocated -= v.capacity
                    idle -= v.capacity
                    victims.append(v)
                }
            }
            lock.unlock()
            victims.removeAll()  // deallocate outside the lock
            lock.lock()
        }
        guard force || allocated + cap <= budget else {
            lock.unlock()
            return nil
        }
        allocated += cap
        lock.unlock()
        return PooledBuffer(capacity: cap, sizeClass: cls)
    }

    /// `consuming`: the buffer moves into the free list (a borrowed one would be copied
    /// there, a retain on the read path).
    func release(_ b: consuming PooledBuffer) {
        let cap = b.capacity, cls = b.sizeClass
        lock.lock()
        if allocated > budget || idle + cap > maxIdleBytes {
            allocated -= cap
            lock.unlock()
            _ = consume b  // deallocated by ARC, outside the lock
            return
        }
        idle += cap
        free[cls].append(consume b)
        lock.unlock()
    }

    /// Drops all idle buffers (shutdown, tests).
    func trim() {
        let dropped: [[PooledBuffer]] = lock.withLock {
            let f = free
            for c in free.indices { for b in free[c] { allocated -= b.capacity } ; free[c].removeAll() }
            idle = 0
            return f
        }
        _ = dropped
    }
}
