// Where a setting came from, so an error can name the exact thing to fix.

/// The origin of one effective setting (CONTRACT §2.4: option > env > default).
public enum FluidValueSource: Equatable, CustomStringConvertible {
    /// `Dataset.spec.mounts[0].options[key]` (or `sharedOptions`, merged by Fluid).
    case option(String)
    /// An environment variable of the fuse container (profile/runtime `fuse.env`).
    case environment(String)
    /// A field of config.json itself, e.g. `targetPath` or `mounts[0].mountPoint`.
    case configField(String)
    /// The built-in default.
    case builtIn

    public var description: String {
        switch self {
        case .option(let key): return "Dataset option \"\(key)\""
        case .environment(let name): return "env \(name)"
        case .configField(let field): return "config.json \(field)"
        case .builtIn: return "built-in default"
        }
    }
}

/// A value together with its origin.
public struct FluidSourced<Value: Equatable>: Equatable {
    public var value: Value
    public var source: FluidValueSource
}
