// Dataset options `client.<k>` and `fuse.<k>` → typed TOML keys (CONTRACT §3.1).

import Foundation

enum FluidPassThrough {
    /// The two TOML sections a Dataset may add keys to.
    enum Section: String, CaseIterable { case client, fuse }

    /// Old spellings kept working: upstream's docs used these names.
    static let aliases: [String: String] = [
        "fuse.enable_write_back": "fuse.write_back_cache",
        "fuse.meta_cache_ttl": "fuse.meta_cache_timeout",
    ]

    /// Keys the translator writes itself from first-class settings; letting a Dataset
    /// option set them would silently fight `master-endpoints`, the thread knobs or the
    /// mount paths.
    static let reserved: Set<String> = [
        "client.master_addrs", "fuse.debug", "fuse.io_threads", "fuse.worker_threads",
        "fuse.mnt_path", "fuse.fs_path",
    ]

    /// The typed keys of each section, sorted by key. Options without a `client.`/`fuse.`
    /// prefix are not looked at here.
    static func collect(_ options: [String: FluidOptionValue]) throws -> [Section: [(key: String, value: FluidTOMLValue)]] {
        var found: [String: (spelling: String, value: FluidTOMLValue)] = [:]
        for optionKey in options.keys.sorted() {
            guard let value = options[optionKey], !value.isEmpty,
                  let parts = try split(optionKey) else { continue }
            let (section, name) = parts
            let dotted = aliases["\(section.rawValue).\(name)"] ?? "\(section.rawValue).\(name)"
            if reserved.contains(dotted) {
                throw FluidConfigError.reservedPassThroughKey(key: optionKey, canonical: dotted)
            }
            if let earlier = found[dotted] {
                throw FluidConfigError.duplicatePassThroughKey(canonical: dotted, spellings: [earlier.spelling, optionKey])
            }
            found[dotted] = (optionKey, try typed(value, key: optionKey))
        }
        var sections: [Section: [(key: String, value: FluidTOMLValue)]] = [:]
        for section in Section.allCases {
            let prefix = section.rawValue + "."
            sections[section] = found.keys.filter { $0.hasPrefix(prefix) }.sorted().map { dotted in
                (key: String(dotted.dropFirst(prefix.count)), value: found[dotted]!.value)
            }
        }
        return sections
    }

    /// `fuse. x ` → (.fuse, "x"); nil for keys of no section; an error for an empty key or
    /// a nested one (`fuse.a.b`), which the flat `[fuse]` table cannot hold.
    static func split(_ optionKey: String) throws -> (Section, String)? {
        let key = optionKey.trimmingCharacters(in: .whitespaces)
        guard let section = Section.allCases.first(where: { key.hasPrefix($0.rawValue + ".") }) else { return nil }
        let name = key.dropFirst(section.rawValue.count + 1).trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty, !name.contains(".") else { throw FluidConfigError.invalidPassThroughKey(key: key) }
        return (section, name)
    }

    /// JSON bool → bool; JSON number → integer or float; the strings `true`/`false` (any
    /// case) → bool; sign + digits without a leading zero → integer; the same with
    /// `.digits` → float; anything else (`12h`, `08`) → string.
    static func typed(_ value: FluidOptionValue, key: String) throws -> FluidTOMLValue {
        switch value {
        case .bool(let flag): return .bool(flag)
        case .number(let literal):
            if let integer = integerLiteral(literal) { return .integer(integer) }
            return .float(Double(literal) ?? 0)
        case .list:
            throw FluidConfigError.invalidOptionType(key: key, found: value.typeName)
        case .string(let text):
            switch text.lowercased() {
            case "true": return .bool(true)
            case "false": return .bool(false)
            default: break
            }
            if let integer = integerLiteral(text) { return .integer(integer) }
            if isFloatLiteral(text), let number = Double(text) { return .float(number) }
            return .string(text)
        }
    }

    /// `[+-]?(0|[1-9][0-9]*)` that fits a TOML (64-bit) integer.
    static func integerLiteral(_ text: String) -> Int64? {
        guard unsignedDigits(text) != nil else { return nil }
        return Int64(text)
    }

    /// `[+-]?(0|[1-9][0-9]*)\.[0-9]+`.
    static func isFloatLiteral(_ text: String) -> Bool {
        guard let dot = text.firstIndex(of: ".") else { return false }
        let whole = String(text[..<dot])
        let fraction = text[text.index(after: dot)...]
        guard unsignedDigits(whole) != nil else { return false }
        return !fraction.isEmpty && fraction.allSatisfy { $0.isASCII && $0.isNumber }
    }

    private static func signLength(_ text: String) -> Int {
        text.hasPrefix("+") || text.hasPrefix("-") ? 1 : 0
    }

    /// The digits after an optional sign when they form `0` or `[1-9][0-9]*`.
    private static func unsignedDigits(_ text: String) -> Substring? {
        let digits = text.dropFirst(signLength(text))
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        guard digits == "0" || !digits.hasPrefix("0") else { return nil }
        return digits
    }
}
