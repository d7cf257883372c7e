// curvine-fuse entry point. Callbacks live in CurvineFuseSwift (nonisolated library
// code), never here: top-level code is @MainActor in Swift 6 and would trap on the
// first call from a libfuse thread.
import CurvineFluid
import CurvineFuseSwift
import Foundation

let env = ProcessInfo.processInfo.environment
var args = Array(CommandLine.arguments.dropFirst())
if args.first != "fluid-thin-runtime", FluidEntrypoint.isThinRuntimeInvocation(arguments: args, environment: env) {
    // Under Fluid's ThinRuntime the container runs us with no subcommand (CONTRACT §6.1).
    // The daemon it execs gets FLUID_RUNTIME_TYPE removed, so it does not land here.
    exit(FluidEntrypoint.run(arguments: args, environment: env))
}
CurvineFuseCLI.main(args)
