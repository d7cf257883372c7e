// The effective settings of one curvine-fuse run: built-in defaults, then the
// TOML's [fuse]/[client] sections, then environment (CURVINE_IO_THREADS,
// CURVINE_WORKER_THREADS), then command-line flags. Later wins.
import CurvineClient
import Foundation

public struct MountSettings {
    public var cluster: ClusterConfig
    public var fuse: FuseConf { get { cluster.fuse } set { cluster.fuse = newValue } }

    /// Upstream's worker_threads default: max(io_threads, 2 × CPUs).
    public var effectiveWorkerThreads: Int {
        fuse.workerThreads ?? max(fuse.ioThreads, 2 * ProcessInfo.processInfo.activeProcessorCount)
    }

    /// FUSE worker threads actually started: the kernel keeps at most max_background
    /// requests in flight, so threads past that would only sleep.
    public var fuseLoopThreads: Int { max(1, min(effectiveWorkerThreads, fuse.maxBackground)) }

    /// Mount points: mnt_path itself, or mnt_path/mnt-0..N-1 when mnt_number > 1 (upstream).
    public var mountPoints: [String] {
        fuse.mntNumber <= 1 ? [fuse.mntPath] : (0..<fuse.mntNumber).map { "\(fuse.mntPath)/mnt-\($0)" }
    }

    /// Mount options libfuse 3 understands. Upstream's default is allow_other,async;
    /// big_write(s) is a fuse2 relic libfuse 3 rejects, so it is dropped.
    public func libfuseOptions() throws -> [String] {
        var opts = fuse.fuseOpts.isEmpty ? ["allow_other", "async"] : fuse.fuseOpts
        let refused: [String: String] = [
            "allow_root": "allow_root is not supported (upstream refuses it too): use allow_other",
            "auto_unmount": "auto_unmount is not supported: curvine-fuse unmounts itself on SIGTERM",
            "max_write": "max_write is negotiated by curvine-fuse (1 MiB): remove it from the options",
        ]
        let allowed: Set<String> = ["ro", "rw", "nodev", "dev", "nosuid", "suid", "noexec", "exec", "noatime", "atime",
                                    "sync", "async", "dirsync", "allow_other", "default_permissions", "big_write", "big_writes"]
        var out: [String] = []
        for o in opts {
            let key = String(o.split(separator: "=", maxSplits: 1).first ?? "")
            if let why = refused[key] { throw CurvineError.local(EINVAL, "mount option '\(o)': \(why)") }
            guard allowed.contains(key) else {
                throw CurvineError.local(EINVAL, "mount option '\(o)' is not supported; allowed: \(allowed.sorted().joined(separator: ", "))")
            }
            if key == "big_write" || key == "big_writes" || key == "async" || key == "atime" || key == "exec"
                || key == "suid" || key == "dev" { continue }  // defaults or fuse2-only: nothing to pass
            out.append(o)
        }
        opts = out
        if fuse.readonly && !opts.contains("ro") { opts.append("ro") }
        if fuse.checkPermission && !opts.contains("default_permissions") { opts.append("default_permissions") }
        // Shows as fuse.curvinefs in /proc/mounts, source "curvinefs", as upstream.
        opts.append("fsname=curvinefs")
        opts.append("subtype=curvinefs")
        // Read requests up to 1 MiB (FUSE_MAX_MAX_PAGES × 4 KiB).
        opts.append("max_read=1048576")
        return opts
    }
}
