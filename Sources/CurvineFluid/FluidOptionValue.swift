// Dataset option values as they arrive in config.json, and the option > env > default lookup.

/// One `mounts[0].options` value. Kubernetes only stores strings, but the parser also
/// takes JSON numbers and booleans (CONTRACT §2.1) and, for `master-endpoints`, a list of
/// strings (§4). JSON `null` is dropped when the options are read.
public enum FluidOptionValue: Equatable {
    case string(String)
    /// The JSON number literal, verbatim (e.g. `48`, `1.0`).
    case number(String)
    case bool(Bool)
    case list([String])

    /// The string form used for flags and numeric settings; nil for a list.
    public var scalarText: String? {
        switch self {
        case .string(let text): return text
        case .number(let literal): return literal
        case .bool(let flag): return flag ? "true" : "false"
        case .list: return nil
        }
    }

    /// The empty string counts as absent (§2.4), so does an empty list.
    public var isEmpty: Bool {
        switch self {
        case .string(let text): return text.isEmpty
        case .list(let items): return items.isEmpty
        case .number, .bool: return false
        }
    }

    public var typeName: String {
        switch self {
        case .string: return "a string"
        case .number: return "a number"
        case .bool: return "a boolean"
        case .list: return "a list"
        }
    }
}

/// Reads settings with the precedence Dataset option (non-empty) > env var (non-empty).
struct FluidSettingsLookup {
    let options: [String: FluidOptionValue]
    let environment: [String: String]

    /// A non-empty environment variable; an empty one counts as unset (Kubernetes users
    /// write `value: ""` to switch a knob off in a runtime that overrides a profile).
    func env(_ name: String) -> String? {
        guard let value = environment[name], !value.isEmpty else { return nil }
        return value
    }

    /// The non-empty option value as given (may be a list).
    func option(_ key: String) -> FluidOptionValue? {
        guard let value = options[key], !value.isEmpty else { return nil }
        return value
    }

    /// The string form of option `key`, else env `envName`; nil when neither is set.
    func scalar(option key: String, env envName: String?) throws -> FluidSourced<String>? {
        if let value = option(key) {
            guard let text = value.scalarText else {
                throw FluidConfigError.invalidOptionType(key: key, found: value.typeName)
            }
            return FluidSourced(value: text, source: .option(key))
        }
        if let envName = envName, let text = env(envName) {
            return FluidSourced(value: text, source: .environment(envName))
        }
        return nil
    }
}
