// config.json + environment → FluidPlan. Pure: reads nothing but its arguments.

import Foundation

public enum FluidTranslator {
    /// Translates Fluid's config and the container environment into the TOML and the
    /// mount command (CONTRACT §3–§5, §12), or throws the first bad input found.
    ///
    /// - Parameters:
    ///   - configJSON: the bytes of config.json; nil when the file does not exist.
    ///   - configPath: where it was read from, for messages.
    ///   - environment: the container's environment.
    public static func translate(configJSON: Data?, configPath: String,
                                 environment: [String: String]) throws -> FluidPlan {
        guard let data = configJSON else { throw FluidConfigError.configFileMissing(path: configPath) }
        let config = try FluidConfigFile.decode(data, path: configPath)
        let lookup = FluidSettingsLookup(options: config.options, environment: environment)

        // Where things go.
        let home = try absolutePath(lookup.env(FluidEnv.curvineHome) ?? FluidDefaults.curvineHome,
                                    variable: FluidEnv.curvineHome)
        let confPath = try absolutePath(lookup.env(FluidEnv.confFile) ?? join(home, FluidDefaults.confRelativePath),
                                        variable: FluidEnv.confFile)

        // What to mount, where.
        guard let mountPoint = config.mountPoint ?? lookup.env(FluidEnv.mountPoint) else {
            throw FluidConfigError.mountPointMissing
        }
        let fsPath = try FluidMountPoint.fsPath(mountPoint)
        let targetPath = try FluidMountPoint.targetPath(config: config.targetPath, lookup: lookup)

        // Masters and knobs (option > env > default).
        let endpoints = try FluidMasterEndpoints.resolve(lookup)
        let webPort = try port(lookup, option: FluidOptionKey.masterWebPort, env: FluidEnv.masterWebPort,
                               default: FluidDefaults.masterWebPort)
        let ioThreads = try count(lookup, option: FluidOptionKey.ioThreads, env: FluidEnv.ioThreads,
                                  default: FluidDefaults.ioThreads)
        let workerThreads = try count(lookup, option: FluidOptionKey.workerThreads, env: FluidEnv.workerThreads,
                                      default: FluidDefaults.workerThreads)
        let mountNumber = try count(lookup, option: FluidOptionKey.mountNumber, env: FluidEnv.mountNumber,
                                    default: FluidDefaults.mountNumber)
        let passThrough = try FluidPassThrough.collect(config.options)
        let flags = try FluidMountFlags.arguments(lookup)
        let readOnly = isReadOnly(config)

        let toml = FluidClusterTOML(
            endpoints: endpoints, masterWebPort: webPort, ioThreads: ioThreads, workerThreads: workerThreads,
            targetPath: targetPath, fsPath: fsPath,
            client: passThrough[.client] ?? [], fuse: passThrough[.fuse] ?? []).document.render()

        var argv = [lookup.env(FluidEnv.fuseBinary) ?? FluidDefaults.selfExecutable,
                    "--mnt-path", targetPath,
                    "--mnt-number", String(mountNumber),
                    "--conf", confPath,
                    "--io-threads", String(ioThreads),
                    "--worker-threads", String(workerThreads)]
        argv += flags
        if readOnly { argv += ["--readonly", "true"] }

        return FluidPlan(
            tomlText: toml, argv: argv, confPath: confPath, targetPath: targetPath,
            dirs: uniqued([parent(of: confPath), FluidDefaults.metaDirectory, join(home, FluidDefaults.logsRelativePath)]),
            curvineHome: home, fsPath: fsPath, masterEndpoints: endpoints, readOnly: readOnly,
            ignoredOptions: ignoredOptions(config.options))
    }

    /// Read-only when every access mode is ReadOnlyMany (Fluid's default), CONTRACT §12, or
    /// when the Dataset mount itself is marked `readOnly: true`: a Dataset that pods may
    /// only read must not be writable through the mount.
    static func isReadOnly(_ config: FluidConfig) -> Bool {
        if config.mountReadOnly { return true }
        guard let modes = config.accessModes, !modes.isEmpty else { return false }
        return modes.allSatisfy { $0 == "ReadOnlyMany" }
    }

    /// Option keys with no meaning here, reported as warnings by the entrypoint.
    static func ignoredOptions(_ options: [String: FluidOptionValue]) -> [String] {
        let settings: Set<String> = [FluidOptionKey.masterEndpoints, FluidOptionKey.masterWebPort,
                                     FluidOptionKey.ioThreads, FluidOptionKey.workerThreads, FluidOptionKey.mountNumber]
        let known = settings.union(FluidMountFlags.optionKeys)
        return options.keys.filter { key in
            let trimmed = key.trimmingCharacters(in: .whitespaces)
            return !known.contains(key) && !trimmed.hasPrefix("client.") && !trimmed.hasPrefix("fuse.")
        }.sorted()
    }

    private static func count(_ lookup: FluidSettingsLookup, option: String, env: String, default value: Int) throws -> Int {
        guard let found = try lookup.scalar(option: option, env: env) else { return value }
        return try FluidNumbers.positiveInteger(found, setting: option, example: value)
    }

    private static func port(_ lookup: FluidSettingsLookup, option: String, env: String, default value: Int) throws -> Int {
        guard let found = try lookup.scalar(option: option, env: env) else { return value }
        guard let port = FluidNumbers.port(found.value.trimmingCharacters(in: .whitespaces)) else {
            throw FluidConfigError.invalidNumber(setting: option, value: found.value, source: found.source,
                                                 expected: "a port 1-65535", example: String(value))
        }
        return port
    }

    private static func absolutePath(_ path: String, variable: String) throws -> String {
        guard path.hasPrefix("/") else { throw FluidConfigError.invalidPath(variable: variable, value: path) }
        return path
    }

    static func join(_ directory: String, _ relative: String) -> String {
        directory.hasSuffix("/") ? directory + relative : directory + "/" + relative
    }

    /// `/a/b/c` → `/a/b`; `/a` → `/`.
    static func parent(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        let head = trimmed[..<slash]
        return head.isEmpty ? "/" : String(head)
    }

    private static func uniqued(_ paths: [String]) -> [String] {
        var seen = Set<String>()
        return paths.filter { seen.insert($0).inserted }
    }
}
