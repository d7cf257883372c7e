// Parsing of the numeric settings: thread counts, mount number and ports.

import Foundation

enum FluidNumbers {
    /// Thread counts and the mount number are passed to Curvine as `u32`-ish values; a
    /// larger value is a typo, so anything above Int32.max is rejected as not a number.
    static let maxCount = Int(Int32.max)
    /// TCP ports.
    static let portRange = 1...65535

    /// A decimal integer ≥ 1 (surrounding whitespace ignored); Curvine rejects
    /// `fuse.io_threads = 0`, so zero is an error too (CONTRACT §2.4).
    static func positiveInteger(_ sourced: FluidSourced<String>, setting: String, example: Int) throws -> Int {
        let text = sourced.value.trimmingCharacters(in: .whitespaces)
        guard let value = decimal(text), value >= 1, value <= maxCount else {
            throw FluidConfigError.invalidNumber(setting: setting, value: sourced.value, source: sourced.source,
                                                 expected: "a positive whole number", example: String(example))
        }
        return value
    }

    /// A decimal port 1–65535; leading zeros are accepted and dropped (`08995` → 8995, §4).
    static func port(_ text: String) -> Int? {
        guard let value = decimal(text), portRange.contains(value) else { return nil }
        return value
    }

    /// Non-empty and ASCII digits only.
    static func isDigits(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }

    /// ASCII digits only (no sign, no spaces); nil on overflow.
    static func decimal(_ text: String) -> Int? {
        guard isDigits(text) else { return nil }
        let significant = text.drop(while: { $0 == "0" })
        if significant.isEmpty { return 0 }
        // 10 significant digits already exceed Int32.max; longer strings would overflow Int.
        guard significant.count <= 18 else { return nil }
        return Int(significant)
    }
}
