// A minimal TOML writer: exactly what the Curvine cluster file needs (CONTRACT §3) —
// top-level keys, `[table]`s and `[[array.of.tables]]`, with string, integer, float and
// boolean values. Strings are always basic strings with every required escape.

/// One TOML value.
enum FluidTOMLValue: Equatable {
    case string(String)
    case integer(Int64)
    case float(Double)
    case bool(Bool)

    /// The value as it appears right of `=`.
    var rendered: String {
        switch self {
        case .string(let text): return FluidTOMLWriter.quote(text)
        case .integer(let number): return String(number)
        case .float(let number): return FluidTOMLWriter.renderFloat(number)
        case .bool(let flag): return flag ? "true" : "false"
        }
    }
}

/// A `[header]` or `[[header]]` section and its key/value lines, in order.
struct FluidTOMLSection: Equatable {
    enum Kind: Equatable { case table, arrayOfTables }
    var kind: Kind
    /// Dotted path of the header, e.g. ["client", "master_addrs"].
    var path: [String]
    var entries: [(key: String, value: FluidTOMLValue)]

    init(_ kind: Kind, _ path: [String], _ entries: [(key: String, value: FluidTOMLValue)]) {
        self.kind = kind
        self.path = path
        self.entries = entries
    }

    static func == (lhs: FluidTOMLSection, rhs: FluidTOMLSection) -> Bool {
        lhs.kind == rhs.kind && lhs.path == rhs.path
            && lhs.entries.map(\.key) == rhs.entries.map(\.key)
            && lhs.entries.map(\.value) == rhs.entries.map(\.value)
    }
}

/// A document: root keys first, then each section after a blank line.
struct FluidTOMLDocument: Equatable {
    var root: [(key: String, value: FluidTOMLValue)]
    var sections: [FluidTOMLSection]

    init(root: [(key: String, value: FluidTOMLValue)] = [], sections: [FluidTOMLSection] = []) {
        self.root = root
        self.sections = sections
    }

    func render() -> String { FluidTOMLWriter.render(self) }

    static func == (lhs: FluidTOMLDocument, rhs: FluidTOMLDocument) -> Bool {
        lhs.render() == rhs.render()
    }
}

enum FluidTOMLWriter {
    static func render(_ document: FluidTOMLDocument) -> String {
        var lines: [String] = document.root.map { line($0.key, $0.value) }
        for section in document.sections {
            if !lines.isEmpty { lines.append("") }
            let header = section.path.map(key).joined(separator: ".")
            lines.append(section.kind == .table ? "[\(header)]" : "[[\(header)]]")
            lines.append(contentsOf: section.entries.map { line($0.key, $0.value) })
        }
        return lines.isEmpty ? "" : lines.joined(separator: "\n") + "\n"
    }

    static func line(_ name: String, _ value: FluidTOMLValue) -> String {
        "\(key(name)) = \(value.rendered)"
    }

    /// A bare key when TOML allows one (`A-Za-z0-9_-`), otherwise a quoted key.
    static func key(_ name: String) -> String {
        let bare = !name.isEmpty && name.unicodeScalars.allSatisfy { scalar in
            switch scalar {
            case "A"..."Z", "a"..."z", "0"..."9", "_", "-": return true
            default: return false
            }
        }
        return bare ? name : quote(name)
    }

    /// A TOML basic string: `"` and `\` escaped, control characters (and DEL, which TOML
    /// also forbids raw) as short escapes or `\uXXXX`; all other Unicode is written as is.
    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\u{08}": out += "\\b"
            case "\t": out += "\\t"
            case "\n": out += "\\n"
            case "\u{0C}": out += "\\f"
            case "\r": out += "\\r"
            case "\u{00}"..."\u{1F}", "\u{7F}":
                let hex = String(scalar.value, radix: 16, uppercase: true)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// Swift's shortest round-trip form is valid TOML once it has a `.` or an exponent
    /// (`1.5`, `1e-05`, `1e+20`); `inf`/`nan` are TOML's own spellings.
    static func renderFloat(_ number: Double) -> String {
        if number.isNaN { return "nan" }
        if number.isInfinite { return number < 0 ? "-inf" : "inf" }
        let text = "\(number)"
        return text.contains(".") || text.contains("e") ? text : text + ".0"
    }
}
