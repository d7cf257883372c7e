// Clearing a dead FUSE mount left on the target by a previous container (CONTRACT §6.4).

enum FluidStaleMount {
    /// While mountinfo lists `target` (or stat says ENOTCONN), force-unmount it and, when
    /// that fails, lazily detach it. Errors are logged, never fatal: the daemon's own
    /// mount attempt reports anything that is still wrong.
    static func clean(_ target: String, system: FluidSystem, log: (String) -> Void) {
        for _ in 0..<FluidDefaults.maxStaleUnmountRounds {
            let entries = system.mountInfo().map { FluidMountTable.entries(at: target, in: $0) } ?? []
            let dead = system.isDeadMount(target)
            guard !entries.isEmpty || dead else { return }
            let kind = entries.last.map { " (\($0.fsType) from \($0.source))" } ?? ""
            log("unmounting \(dead ? "dead" : "stale") mount at \(target)\(kind)")
            let forced = system.unmount(target, detach: false)
            if forced == 0 { continue }
            log("umount -f \(target) failed: \(errnoText(forced)); detaching it lazily")
            let detached = system.unmount(target, detach: true)
            if detached != 0 {
                log("lazy unmount of \(target) failed: \(errnoText(detached)); continuing")
                return
            }
        }
        log("\(target) is still mounted after \(FluidDefaults.maxStaleUnmountRounds) unmounts; continuing")
    }
}
