// The core's PassthroughBackend over the C shim (one per libfuse session). The shim
// negotiates passthrough at INIT and patches OPEN replies; see Sources/CShim/io.c and
// FileSystemCore+Passthrough.swift for the rules.
import CShim
import CurvineFSCore
#if canImport(Glibc)
import Glibc
#endif

final class ShimPassthroughBackend: PassthroughBackend {
    private let session: OpaquePointer

    init(session: OpaquePointer) { self.session = session }

    var isAvailable: Bool { cvfuse_passthrough_active(session) != 0 }

    func openBacking(fd: Int32) throws -> Int32 {
        let r = cvfuse_backing_open(session, fd)
        if r < 0 { throw FSError(-r, "FUSE_DEV_IOC_BACKING_OPEN") }
        return r
    }

    func closeBacking(id: Int32) {
        _ = cvfuse_backing_close(session, id)
    }
}

extension MountRunner {
    /// Whether to offer kernel passthrough at INIT, with the reason when not (logged once
    /// per run; the shim logs the kernel's side at INIT).
    func passthroughPlan() -> (offer: Bool, useBackend: Bool, why: String?) {
        let f = settings.fuse
        if f.passthrough != "auto" { return (false, false, "--passthrough off") }
        if f.nonSeekable { return (false, false, "--non-seekable (the kernel refuses FOPEN_NONSEEKABLE with passthrough)") }
        // The shim still offers it so that its INIT log names the writeback cache as the
        // reason; no backend, so the core never tries.
        if f.writeBackCache { return (true, false, nil) }
        return (true, true, nil)
    }
}
