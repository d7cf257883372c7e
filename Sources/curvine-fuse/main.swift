// curvine-fuse entry point. Callbacks live in CurvineFuseSwift (nonisolated library
// code), never here: top-level code is @MainActor in Swift 6 and would trap on the
// first call from a libfuse thread.
import CurvineFluid
import CurvineFuseSwift
import Foundation

let env = ProcessInfo.processInfo.environment
var args = Array(CommandLine.arguments.dropFirst())
let fluidOnlyArgs = args.allSatisfy { $0 == "--dry-run" || $0.hasPrefix("--config") }
if env["FLUID_RUNTIME_TYPE"] == "thin", !args.isEmpty ? fluidOnlyArgs && args.first != "--help" : true {
    // Under Fluid's ThinRuntime the container may run us with no subcommand (CONTRACT §6.1).
    // The mount command it then execs has flags (--mnt-path ...), so it is not caught here.
    exit(FluidEntrypoint.run(arguments: args, environment: env))
}
CurvineFuseCLI.main(args)
