// Reading /proc/self/mountinfo to find what is mounted on the target (CONTRACT §6.4).

/// One line of mountinfo (proc(5)): only the fields the stale-mount check needs.
struct FluidMountEntry: Equatable {
    var mountPoint: String
    /// e.g. `fuse.curvinefs`.
    var fsType: String
    var source: String
}

enum FluidMountTable {
    /// Parses mountinfo text; malformed lines are skipped.
    static func parse(_ text: String) -> [FluidMountEntry] {
        text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            // id parent major:minor root mount-point options [optional...] - fstype source super-options
            guard fields.count >= 7, let dash = fields.firstIndex(of: "-"), dash >= 6, dash + 2 < fields.count else {
                return nil
            }
            return FluidMountEntry(mountPoint: unescape(fields[4]), fsType: unescape(fields[dash + 1]),
                                   source: unescape(fields[dash + 2]))
        }
    }

    /// Entries mounted exactly on `path` (several when mounts are stacked).
    static func entries(at path: String, in text: String) -> [FluidMountEntry] {
        parse(text).filter { $0.mountPoint == path }
    }

    /// The kernel writes space, tab, newline and backslash as `\ooo` octal escapes.
    static func unescape(_ field: Substring) -> String {
        var bytes: [UInt8] = []
        let raw = Array(field.utf8)
        var index = 0
        while index < raw.count {
            if raw[index] == UInt8(ascii: "\\"), index + 3 < raw.count,
               let value = octal(raw[(index + 1)..<(index + 4)]) {
                bytes.append(value)
                index += 4
            } else {
                bytes.append(raw[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func octal(_ digits: ArraySlice<UInt8>) -> UInt8? {
        guard digits.count == 3 else { return nil }
        var value: UInt32 = 0
        for digit in digits {
            guard digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "7") else { return nil }
            value = value * 8 + UInt32(digit - UInt8(ascii: "0"))
        }
        return value <= 0xFF ? UInt8(value) : nil
    }
}
