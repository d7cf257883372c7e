// Curvine paths as the master sees them (PROTOCOL.md §6 "Paths"): absolute,
// '/'-separated, no scheme. Repeated and trailing slashes are tolerated (the client
// normalises anyway); "." and ".." are refused, as a path the master must not
// interpret. Names are compared and ordered as bytes (UTF-8), never with Swift's
// Unicode-aware String comparison: two names that are canonically equivalent but
// spelled with different bytes are different directory entries, as on Linux.

/// A directory entry name as bytes: the key of a directory's children.
typealias NameKey = [UInt8]

@inline(__always)
func nameKey(_ s: String) -> NameKey { Array(s.utf8) }

/// Byte-wise (UTF-8) order, the order listings are returned in (§6.2 ListStatus).
@inline(__always)
func nameLess(_ a: NameKey, _ b: NameKey) -> Bool { a.lexicographicallyPrecedes(b) }

/// A validated path split into components.
struct ParsedPath {
    /// Normalised text: "/" or "/a/b".
    let text: String
    let components: [String]

    var isRoot: Bool { components.isEmpty }
    var name: String { components.last ?? "" }

    /// The text of the first `count` components ("/" for 0).
    func prefix(_ count: Int) -> String {
        count == 0 ? "/" : "/" + components[0..<count].joined(separator: "/")
    }

    var parentText: String { prefix(max(0, components.count - 1)) }

    func child(_ name: String) -> String { isRoot ? "/" + name : text + "/" + name }
}

/// Longest path upstream accepts on create (`max_path_len`, 8000 bytes).
let maxPathLength = 8000
/// Deepest path upstream accepts on create (`max_path_depth`, 1000 levels).
let maxPathDepth = 1000

func parsePath(_ raw: String) throws -> ParsedPath {
    guard !raw.isEmpty else { throw ServerError.invalidPath(raw, "path is empty") }
    guard raw.utf8.first == UInt8(ascii: "/") else {
        throw ServerError.invalidPath(raw, "path must be absolute")
    }
    var comps: [String] = []
    for part in raw.split(separator: "/", omittingEmptySubsequences: true) {
        if part == "." || part == ".." {
            throw ServerError.invalidPath(raw, "'.' and '..' components are not allowed")
        }
        if part.utf8.contains(0) { throw ServerError.invalidPath(raw, "NUL byte in a name") }
        comps.append(String(part))
    }
    let text = comps.isEmpty ? "/" : "/" + comps.joined(separator: "/")
    return ParsedPath(text: text, components: comps)
}

/// Upstream's `check_path_length` for creations: Common errors.
func checkCreatePathLimits(_ p: ParsedPath) throws {
    if p.text.utf8.count > maxPathLength {
        throw ServerError.common("create: Path too long, limit \(maxPathLength) characters")
    }
    if p.components.count + 1 > maxPathDepth {
        throw ServerError.common("create: Path too long, limit \(maxPathDepth) levels")
    }
}

/// Upstream's parse_glob_pattern (glob_utils.rs): a path with one of * ? [ { \ that the
/// Rust `glob` crate accepts as a pattern. ListOptions refuses such paths (PROTOCOL.md
/// §6.2). Approximation of the crate's rejects: an unclosed '[' and a "**" that is not a
/// whole path component make the pattern invalid, so the path is taken literally.
func isGlobPattern(_ path: String) -> Bool {
    let b = Array(path.utf8)
    let meta: Set<UInt8> = [UInt8(ascii: "*"), UInt8(ascii: "?"), UInt8(ascii: "["), UInt8(ascii: "{"), UInt8(ascii: "\\")]
    guard b.contains(where: meta.contains) else { return false }
    let slash = UInt8(ascii: "/"), star = UInt8(ascii: "*")
    var i = 0
    while i < b.count {
        if b[i] == UInt8(ascii: "[") {
            guard let close = b[(i + 1)...].firstIndex(of: UInt8(ascii: "]")) else { return false }
            i = close + 1
            continue
        }
        if b[i] == star && i + 1 < b.count && b[i + 1] == star {
            let before = i == 0 || b[i - 1] == slash
            let after = i + 2 == b.count || b[i + 2] == slash
            if !(before && after) { return false }
            i += 2
            continue
        }
        i += 1
    }
    return true
}
