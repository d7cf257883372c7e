// Locks with stable addresses. A pthread_mutex_t stored as a Swift property has no
// stable address (swift-nio NIOLock.swift), so each lives in its own allocation.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public final class Lock: @unchecked Sendable {
    let m: UnsafeMutablePointer<pthread_mutex_t>

    public init() {
        m = .allocate(capacity: 1)
        m.initialize(to: pthread_mutex_t())
        pthread_mutex_init(m, nil)
    }
    deinit {
        pthread_mutex_destroy(m)
        m.deallocate()
    }
    @inline(__always) public func lock() { pthread_mutex_lock(m) }
    @inline(__always) public func unlock() { pthread_mutex_unlock(m) }
    @inline(__always) public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(m)
        defer { pthread_mutex_unlock(m) }
        return try body()
    }
}

/// A mutex with a condition variable; waits take a deadline on CLOCK_MONOTONIC.
public final class ConditionLock: @unchecked Sendable {
    let m: UnsafeMutablePointer<pthread_mutex_t>
    let c: UnsafeMutablePointer<pthread_cond_t>

    public init() {
        m = .allocate(capacity: 1)
        m.initialize(to: pthread_mutex_t())
        pthread_mutex_init(m, nil)
        c = .allocate(capacity: 1)
        c.initialize(to: pthread_cond_t())
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(c, &attr)
        pthread_condattr_destroy(&attr)
    }
    deinit {
        pthread_cond_destroy(c); c.deallocate()
        pthread_mutex_destroy(m); m.deallocate()
    }
    @inline(__always) public func lock() { pthread_mutex_lock(m) }
    @inline(__always) public func unlock() { pthread_mutex_unlock(m) }
    public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(m)
        defer { pthread_mutex_unlock(m) }
        return try body()
    }
    public func signal() { pthread_cond_signal(c) }
    public func broadcast() { pthread_cond_broadcast(c) }
    /// Waits (lock held) until signalled or `deadlineNs` (monotonic) passes; false on timeout.
    public func wait(untilNs deadlineNs: UInt64) -> Bool {
        var ts = timespec(tv_sec: Int(deadlineNs / 1_000_000_000), tv_nsec: Int(deadlineNs % 1_000_000_000))
        return pthread_cond_timedwait(c, m, &ts) != ETIMEDOUT
    }
    public func wait() { pthread_cond_wait(c, m) }
}

/// Monotonic clock in nanoseconds.
@inline(__always) public func monotonicNs() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Wall clock in milliseconds since the epoch (Curvine's time unit).
@inline(__always) public func wallClockMs() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}

/// Starts a detached pthread running `body` (Foundation's Thread would also do; this
/// keeps the client free of Foundation on its threads and names the thread).
public func startThread(name: String, _ body: @escaping () -> Void) {
    final class Box { let body: () -> Void; let name: String; init(_ b: @escaping () -> Void, _ n: String) { body = b; name = n } }
    let box = Unmanaged.passRetained(Box(body, name)).toOpaque()
    var tid = pthread_t()
    let rc = pthread_create(&tid, nil, { arg in
        let b = Unmanaged<AnyObject>.fromOpaque(arg!).takeRetainedValue() as! Box
        b.body()
        return nil
    }, box)
    precondition(rc == 0, "pthread_create failed: \(rc)")
    pthread_detach(tid)
}
