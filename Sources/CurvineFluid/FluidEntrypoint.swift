// `curvine-fuse fluid-thin-runtime`: parse → validate → (dry-run print | write TOML,
// mkdirs, stale unmount, wait for the target's parent, mkdir target, exec) (CONTRACT §6).

import Foundation

public enum FluidEntrypoint {
    /// The subcommand name upstream profiles pass (`args: ["fluid-thin-runtime"]`).
    public static let subcommand = "fluid-thin-runtime"

    /// Exit status for bad input (upstream uses 1) and for a failed start step.
    public static let failureStatus: Int32 = 1
    /// Exit status for a malformed command line (conventional usage error).
    public static let usageStatus: Int32 = 2

    /// True when the process should act as the ThinRuntime entrypoint (CONTRACT §6.1):
    /// the first argument is `fluid-thin-runtime`, or Fluid set `FLUID_RUNTIME_TYPE=thin`
    /// and the arguments are the entrypoint's own (none, `--dry-run`, `--config`, `--help`).
    /// So `curvine-fuse --mnt-path …` still mounts inside a Fluid pod; in addition the
    /// daemon exec'd at the end never sees `FLUID_RUNTIME_TYPE` (`daemonEnvironment`).
    public static func isThinRuntimeInvocation(arguments: [String], environment: [String: String]) -> Bool {
        if arguments.first == subcommand { return true }
        guard environment[FluidEnv.runtimeType] == "thin" else { return false }
        return (try? FluidArguments.parse(arguments)) != nil
    }

    /// Runs the entrypoint. `arguments` are those after the subcommand name (e.g.
    /// `["--dry-run"]`). Returns only on `--dry-run`, `--help` or failure: a successful
    /// start replaces the process with the FUSE daemon.
    public static func run(arguments: [String], environment: [String: String]) -> Int32 {
        run(arguments: arguments, environment: environment, system: LinuxFluidSystem())
    }

    static func run(arguments: [String], environment: [String: String], system: FluidSystem) -> Int32 {
        let fail = { (message: String) in system.writeStandardError("curvine-fuse: error: \(message)\n") }
        let log = { (message: String) in system.writeStandardError("curvine-fuse: \(message)\n") }

        let parsed: FluidArguments
        do {
            parsed = try FluidArguments.parse(arguments)
        } catch {
            fail("\(error)")
            return usageStatus
        }
        if parsed.help {
            system.writeStandardOutput(FluidArguments.usage)
            return 0
        }

        var plan: FluidPlan
        do {
            let configPath = parsed.resolvedConfigPath(environment: environment) {
                FileManager.default.fileExists(atPath: $0)
            }
            let data = try FluidConfigFile.read(path: configPath)
            plan = try FluidTranslator.translate(configJSON: data, configPath: configPath, environment: environment)
        } catch {
            fail("\(error)")
            return failureStatus
        }
        if plan.argv[0] == FluidDefaults.selfExecutable, let binary = system.selfExecutable() {
            plan.argv[0] = binary
        }
        for key in plan.ignoredOptions {
            log("warning: ignoring Dataset option \"\(key)\": not a Curvine ThinRuntime option "
                + "(TOML keys are written as client.<key> or fuse.<key>)")
        }
        if parsed.dryRun {
            system.writeStandardOutput(plan.dryRunText)
            return 0
        }

        do {
            try start(plan, environment: environment, system: system, log: log)
        } catch {
            fail("\(error)")
        }
        return failureStatus
    }

    /// The side effects of a real start, in the contract's order; returns only by throwing.
    static func start(_ plan: FluidPlan, environment: [String: String], system: FluidSystem,
                      log: (String) -> Void) throws {
        let binary = plan.argv[0]
        // Checked first so a broken image fails before anything is written or unmounted.
        guard system.isExecutableFile(binary) else { throw FluidStartError.binaryNotExecutable(path: binary) }

        for directory in plan.dirs { try system.createDirectories(directory) }
        try system.writeFile(plan.confPath, contents: plan.tomlText)
        log("wrote \(plan.confPath): masters \(plan.masterEndpoints.map(\.description).joined(separator: ",")), "
            + "fs_path \(plan.fsPath)\(plan.readOnly ? ", read-only" : "")")

        FluidStaleMount.clean(plan.targetPath, system: system, log: log)

        let parent = FluidTranslator.parent(of: plan.targetPath)
        try waitForDirectory(parent, system: system, log: log)
        let made = system.makeDirectory(plan.targetPath)
        if made != 0 && made != EEXIST {
            throw FluidStartError.cannotCreateTarget(path: plan.targetPath, reason: errnoText(made))
        }

        log("exec: \(FluidShellQuote.join(plan.argv))")
        let code = system.exec(binary, arguments: plan.argv, environment: daemonEnvironment(plan, environment))
        throw FluidStartError.execFailed(path: binary, reason: errnoText(code))
    }

    /// Polls for Fluid's hostPath parent (CONTRACT §6.5).
    static func waitForDirectory(_ directory: String, system: FluidSystem, log: (String) -> Void) throws {
        var waited = 0
        while !system.isDirectory(directory) {
            guard waited < FluidDefaults.parentWaitSeconds else {
                throw FluidStartError.parentMissing(parent: directory, seconds: FluidDefaults.parentWaitSeconds)
            }
            if waited == 0 { log("waiting up to \(FluidDefaults.parentWaitSeconds) s for \(directory)") }
            system.sleep(seconds: FluidDefaults.parentPollIntervalSeconds)
            waited += Int(FluidDefaults.parentPollIntervalSeconds)
        }
    }

    /// The daemon's environment: the container's, with `CURVINE_HOME`/`CURVINE_CONF_FILE`
    /// exported as upstream's launcher does, and without `FLUID_RUNTIME_TYPE` so the same
    /// binary, exec'd as the daemon, runs the mount instead of this entrypoint again.
    static func daemonEnvironment(_ plan: FluidPlan, _ environment: [String: String]) -> [String: String] {
        var daemon = environment
        daemon[FluidEnv.runtimeType] = nil
        daemon[FluidEnv.curvineHome] = plan.curvineHome
        daemon[FluidEnv.confFile] = plan.confPath
        return daemon
    }
}
