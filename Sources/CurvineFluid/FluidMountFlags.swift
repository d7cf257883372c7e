// Optional `curvine-fuse` CLI flags taken from Dataset options or CURVINE_<FLAG> (CONTRACT §5).

import Foundation

/// One optional flag of the mount command.
struct FluidMountFlag: Equatable {
    /// What the daemon's argument parser accepts for the value.
    enum Kind: Equatable {
        /// Written explicitly (`--direct-io true`); any case accepted, written lower case.
        case bool
        /// A non-negative decimal integer (counts, sizes, milliseconds).
        case count
        /// A TCP port 1–65535.
        case port
        /// Passed verbatim (durations such as `60s`, `1h`).
        case text
    }

    var name: String
    /// Older spelling, looked up after the canonical one; the flag is always emitted under `name`.
    var alias: String?
    var kind: Kind

    init(_ name: String, alias: String? = nil, _ kind: Kind) {
        self.name = name
        self.alias = alias
        self.kind = kind
    }
}

enum FluidMountFlags {
    /// In this order in the argv, after the always-present flags. The list is the
    /// contract's (§5); kinds follow upstream's `mount_args.rs`.
    static let all: [FluidMountFlag] = [
        .init("tasks-per-mnt", alias: "mnt-per-task", .count),
        .init("clone-fd", .bool),
        .init("fuse-channel-size", .count),
        .init("stream-channel-size", .count),
        .init("direct-io", .bool),
        .init("write-back-cache", .bool),
        .init("cache-readdir", .bool),
        .init("non-seekable", .bool),
        .init("entry-timeout-ms", alias: "entry-timeout", .count),
        .init("attr-timeout-ms", alias: "attr-timeout", .count),
        .init("negative-timeout-ms", alias: "negative-timeout", .count),
        .init("max-background", .count),
        .init("congestion-threshold", .count),
        .init("node-cache-timeout", .text),
        .init("enable-meta-cache", .bool),
        .init("meta-cache-ttl", alias: "meta-cache-timeout", .text),
        .init("read-dir-fill-ino", .bool),
        .init("remember", .bool),
        .init("check-permission", .bool),
        .init("metrics-enabled", .bool),
        .init("list-limit", .count),
        .init("web-port", .port),
    ]

    /// Every option key this table reads (canonical names and aliases).
    static var optionKeys: Set<String> { Set(all.flatMap { [$0.name] + ($0.alias.map { [$0] } ?? []) }) }

    /// `--flag value` pairs for every flag found: option `<flag>`, env `CURVINE_<FLAG>`,
    /// then option `<alias>`, env `CURVINE_<ALIAS>`; the first non-empty hit wins.
    static func arguments(_ lookup: FluidSettingsLookup) throws -> [String] {
        var argv: [String] = []
        for flag in all {
            let spellings = [flag.name] + (flag.alias.map { [$0] } ?? [])
            var hit: FluidSourced<String>?
            for spelling in spellings where hit == nil {
                hit = try lookup.scalar(option: spelling, env: FluidEnv.forFlag(spelling))
            }
            guard let found = hit else { continue }
            argv += ["--\(flag.name)", try normalized(found, flag)]
        }
        return argv
    }

    /// Checks the value now so a typo fails with a one-line error before mounting,
    /// instead of a crash loop of the daemon's own argument parser.
    static func normalized(_ found: FluidSourced<String>, _ flag: FluidMountFlag) throws -> String {
        let text = found.value.trimmingCharacters(in: .whitespaces)
        func fail(_ expected: String, _ example: String) -> FluidConfigError {
            .invalidFlagValue(flag: flag.name, value: found.value, source: found.source, expected: expected, example: example)
        }
        switch flag.kind {
        case .bool:
            switch text.lowercased() {
            case "true": return "true"
            case "false": return "false"
            default: throw fail("true or false", "true")
            }
        case .count:
            guard let value = FluidNumbers.decimal(text) else { throw fail("a whole number >= 0", "1000") }
            return String(value)
        case .port:
            guard let value = FluidNumbers.port(text) else { throw fail("a port 1-65535", "9003") }
            return String(value)
        case .text:
            guard !text.isEmpty else { throw fail("a non-blank value", "60s") }
            return text
        }
    }
}
