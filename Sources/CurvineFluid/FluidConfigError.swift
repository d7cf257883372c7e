// The one-line errors of the Fluid entrypoint: each names the problem and the fix.

/// A bad input found before anything is written or mounted (CONTRACT §6.2).
/// `description` is the single line printed on stderr.
public enum FluidConfigError: Error, CustomStringConvertible, Equatable {
    case configFileMissing(path: String)
    case configFileUnreadable(path: String, reason: String)
    case invalidJSON(path: String, detail: String)
    /// A config.json field has the wrong JSON type (`mounts` not a list, …).
    case invalidField(path: String, field: String, expected: String, found: String)
    case wrongMountCount(Int)
    case mountPointMissing
    case unsupportedScheme(mountPoint: String)
    case mountPointHasAuthority(mountPoint: String, authority: String)
    case mountPointNotAbsolute(mountPoint: String)
    case targetPathMissing
    case targetPathInvalid(path: String, source: FluidValueSource, reason: String)
    case masterEndpointsMissing
    case masterEndpointsEmpty(source: FluidValueSource)
    case invalidMasterEndpoint(token: String, reason: String, source: FluidValueSource)
    case invalidNumber(setting: String, value: String, source: FluidValueSource, expected: String, example: String)
    case invalidFlagValue(flag: String, value: String, source: FluidValueSource, expected: String, example: String)
    case invalidOptionType(key: String, found: String)
    case invalidPassThroughKey(key: String)
    case reservedPassThroughKey(key: String, canonical: String)
    case duplicatePassThroughKey(canonical: String, spellings: [String])
    case invalidPath(variable: String, value: String)
    case invalidArguments(detail: String)

    public var description: String {
        switch self {
        case .configFileMissing(let path):
            return "Fluid config file not found: \(path); run this inside the ThinRuntime fuse pod "
                + "(Fluid mounts it there) or point --config or \(FluidEnv.configPath) at a config.json "
                + "(settings also read from env: \(FluidEnv.userFacing.joined(separator: ", ")), CURVINE_<FLAG>)"
        case .configFileUnreadable(let path, let reason):
            return "cannot read Fluid config file \(path): \(reason); make it a readable regular file "
                + "or point --config or \(FluidEnv.configPath) at one"
        case .invalidJSON(let path, let detail):
            return "Fluid config file \(path) is not valid JSON (\(detail)); it must hold the JSON object "
                + "Fluid writes (mounts, targetPath, accessModes), check the thin-conf ConfigMap/Secret"
        case .invalidField(let path, let field, let expected, let found):
            return "Fluid config file \(path): \(field) must be \(expected), got \(found); "
                + "fix the Dataset/ThinRuntime so Fluid writes a valid config"
        case .wrongMountCount(let count):
            return "Curvine ThinRuntime expects exactly one Dataset mount, got \(count); "
                + "give the Dataset one spec.mounts entry with mountPoint curvine:///<path>"
        case .mountPointMissing:
            return "mountPoint is missing: mounts[0].mountPoint is empty and \(FluidEnv.mountPoint) is not set; "
                + "set the Dataset mountPoint to curvine:///<path>"
        case .unsupportedScheme(let mountPoint):
            return "unsupported mountPoint \(mountPoint): the Curvine ThinRuntime only mounts curvine:///<path>; "
                + "set the Dataset mountPoint to e.g. curvine:///data"
        case .mountPointHasAuthority(let mountPoint, let authority):
            return "mountPoint \(mountPoint) names a host (\(authority)); write curvine:///<path> with three "
                + "slashes and put the master in the \(FluidOptionKey.masterEndpoints) option"
        case .mountPointNotAbsolute(let mountPoint):
            return "mountPoint \(mountPoint) is not curvine:///<path> nor an absolute path; "
                + "set the Dataset mountPoint to e.g. curvine:///data"
        case .targetPathMissing:
            return "targetPath is missing from the Fluid config and neither \(FluidEnv.targetPath) nor "
                + "\(FluidEnv.fluidMountPoint) is set; set \(FluidEnv.targetPath) to the mount directory"
        case .targetPathInvalid(let path, let source, let reason):
            return "target path \(path) (from \(source)) \(reason); use an absolute directory path "
                + "such as /runtime-mnt/thin/<namespace>/<name>/thin-fuse"
        case .masterEndpointsMissing:
            return "master endpoints not found in the Dataset options nor in env \(FluidEnv.masterEndpoints); "
                + "set the Dataset option \(FluidOptionKey.masterEndpoints) to host:port[,host:port...], "
                + "e.g. curvine-master-0:8995"
        case .masterEndpointsEmpty(let source):
            return "master endpoints are empty in \(source); give at least one host:port, "
                + "e.g. curvine-master-0:8995"
        case .invalidMasterEndpoint(let token, let reason, let source):
            return "Invalid master endpoint: \(token) (\(reason)) in \(source); "
                + "use host:port with a port 1-65535, several separated by commas"
        case .invalidNumber(let setting, let value, let source, let expected, let example):
            return "\(setting) must be \(expected), got \"\(value)\" from \(source); "
                + "set \(source) to e.g. \(example)"
        case .invalidFlagValue(let flag, let value, let source, let expected, let example):
            return "--\(flag) must be \(expected), got \"\(value)\" from \(source); "
                + "set \(source) to e.g. \(example)"
        case .invalidOptionType(let key, let found):
            return "Dataset option \"\(key)\" must be a string, got \(found); quote the value in spec.mounts[].options"
        case .invalidPassThroughKey(let key):
            let section = key.hasPrefix("client.") ? "client" : "fuse"
            return "Invalid \(section) option key \"\(key)\": expected \(section).<key> with a non-empty key "
                + "and no further dot; rename the Dataset option"
        case .reservedPassThroughKey(let key, let canonical):
            return "Dataset option \"\(key)\" sets \(canonical), which is managed by Curvine ThinRuntime; "
                + "remove it (use master-endpoints, io-threads, worker-threads or the Dataset mountPoint instead)"
        case .duplicatePassThroughKey(let canonical, let spellings):
            return "\(canonical) is set more than once (\(spellings.joined(separator: ", "))); "
                + "keep only one of these Dataset options"
        case .invalidPath(let variable, let value):
            return "\(variable) must be an absolute path, got \"\(value)\"; set it to e.g. "
                + (variable == FluidEnv.curvineHome ? FluidDefaults.curvineHome
                   : FluidDefaults.curvineHome + "/" + FluidDefaults.confRelativePath)
        case .invalidArguments(let detail):
            return "\(detail); usage: curvine-fuse fluid-thin-runtime [--dry-run] [--config PATH]"
        }
    }
}
