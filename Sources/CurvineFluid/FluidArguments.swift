// Command line of `curvine-fuse fluid-thin-runtime`.

import Foundation

struct FluidArguments: Equatable {
    var dryRun = false
    var help = false
    var configPath: String?

    static let usage = """
        usage: curvine-fuse fluid-thin-runtime [--dry-run] [--config PATH]

        Reads Fluid's ThinRuntime config (--config, else $\(FluidEnv.configPath), else \(FluidDefaults.configPath)),
        writes the Curvine TOML ($\(FluidEnv.confFile), default $\(FluidEnv.curvineHome)/\(FluidDefaults.confRelativePath))
        and runs the FUSE mount in the foreground.

          --dry-run      print the TOML and a final '# exec: ' line with the mount command; write nothing
          --config PATH  read this config.json
          -h, --help     show this help

        """

    /// `arguments` are those after the subcommand. A leading `fluid-thin-runtime` is
    /// skipped too: upstream profiles pass it as `args` to an image whose entrypoint
    /// already names it.
    static func parse(_ arguments: [String]) throws -> FluidArguments {
        var parsed = FluidArguments()
        var rest = arguments[...]
        if rest.first == FluidEntrypoint.subcommand { rest = rest.dropFirst() }
        while let argument = rest.popFirst() {
            switch argument {
            case "--dry-run": parsed.dryRun = true
            case "-h", "--help": parsed.help = true
            case "--config":
                guard let path = rest.popFirst(), !path.isEmpty, !path.hasPrefix("--") else {
                    throw FluidConfigError.invalidArguments(detail: "--config needs a path")
                }
                parsed.configPath = path
            case let option where option.hasPrefix("--config="):
                let path = String(option.dropFirst("--config=".count))
                guard !path.isEmpty else { throw FluidConfigError.invalidArguments(detail: "--config needs a path") }
                parsed.configPath = path
            default:
                throw FluidConfigError.invalidArguments(detail: "unknown argument \"\(argument)\"")
            }
        }
        return parsed
    }

    /// `--config` > FLUID_RUNTIME_CONFIG_PATH > the Fluid ≥ 1.1 path; the pre-1.1 path only
    /// when nothing was asked for and only it exists.
    func resolvedConfigPath(environment: [String: String], exists: (String) -> Bool) -> String {
        if let path = configPath { return path }
        if let path = environment[FluidEnv.configPath], !path.isEmpty { return path }
        if !exists(FluidDefaults.configPath), exists(FluidDefaults.legacyConfigPath) {
            return FluidDefaults.legacyConfigPath
        }
        return FluidDefaults.configPath
    }
}
