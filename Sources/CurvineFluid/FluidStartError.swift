// Failures of the start-up steps that come after a valid config (CONTRACT §6.3–§6.6).

/// A step of the real start failed; `description` is the one line printed on stderr.
public enum FluidStartError: Error, CustomStringConvertible, Equatable {
    case cannotCreateDirectory(path: String, reason: String)
    case cannotWriteFile(path: String, reason: String)
    case parentMissing(parent: String, seconds: Int)
    case cannotCreateTarget(path: String, reason: String)
    case binaryNotExecutable(path: String)
    case execFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case .cannotCreateDirectory(let path, let reason):
            return "cannot create directory \(path): \(reason); set \(FluidEnv.curvineHome) "
                + "(or \(FluidEnv.confFile)) to a writable location"
        case .cannotWriteFile(let path, let reason):
            return "cannot write the Curvine config \(path): \(reason); set \(FluidEnv.confFile) "
                + "or \(FluidEnv.curvineHome) to a writable location"
        case .parentMissing(let parent, let seconds):
            return "the target's parent directory \(parent) did not appear within \(seconds) s; "
                + "mount it into the fuse container (Fluid's thin-fuse-mount hostPath volume does) or create it"
        case .cannotCreateTarget(let path, let reason):
            return "cannot create the mount directory \(path): \(reason); check the thin-fuse-mount "
                + "hostPath volume is writable and not a dead mount (umount -l \(path) on the node)"
        case .binaryNotExecutable(let path):
            return "the FUSE daemon \(path) is missing or not executable; fix the image or \(FluidEnv.fuseBinary)"
        case .execFailed(let path, let reason):
            return "cannot start the FUSE daemon \(path): \(reason); fix the image or \(FluidEnv.fuseBinary)"
        }
    }
}
