// Test data shared by the test targets: deterministic bytes and a checksum to compare
// large buffers in failure messages.

/// Deterministic pseudo-random bytes (xorshift64 from `seed`).
public func patternBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var x = seed &* 6364136223846793005 &+ 1442695040888963407
    var out = [UInt8](repeating: 0, count: count)
    for i in 0..<count {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17
        out[i] = UInt8(truncatingIfNeeded: x)
    }
    return out
}

/// FNV-1a over bytes: a checksum for comparing large buffers in failure messages.
public func checksum(_ b: [UInt8]) -> UInt64 {
    var h: UInt64 = 0xcbf29ce484222325
    for x in b { h ^= UInt64(x); h = h &* 0x100000001b3 }
    return h
}
