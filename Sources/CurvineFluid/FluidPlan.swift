// The result of translating Fluid's config: everything the entrypoint writes and runs.

/// What a start does, computed without touching the system (CONTRACT §11).
public struct FluidPlan: Equatable {
    /// The Curvine cluster TOML, exactly as written to `confPath`.
    public var tomlText: String
    /// The mount command, binary first (CONTRACT §5).
    public var argv: [String]
    /// `$CURVINE_CONF_FILE`, default `$CURVINE_HOME/conf/curvine-cluster.toml`.
    public var confPath: String
    /// The directory to mount on (trailing slashes dropped).
    public var targetPath: String
    /// Directories created before exec: the TOML's directory, the client meta
    /// directory and `$CURVINE_HOME/logs` (CONTRACT §6.3). The target is not in this
    /// list: it is created only after its parent appears (§6.5).
    public var dirs: [String]
    /// `$CURVINE_HOME`, exported to the daemon like upstream's launcher does.
    public var curvineHome: String
    /// The Curvine path served (`fuse.fs_path`).
    public var fsPath: String
    /// The masters, in the given order.
    public var masterEndpoints: [FluidMasterEndpoint]
    /// True when the mount is read-only (`--readonly true` is in `argv`).
    public var readOnly: Bool
    /// Dataset options that nothing reads (typos, or options meant for another runtime).
    public var ignoredOptions: [String]

    /// `--dry-run` output: the TOML, then `# exec: ` and the shell-quoted argv.
    public var dryRunText: String {
        tomlText + "# exec: " + FluidShellQuote.join(argv) + "\n"
    }
}
