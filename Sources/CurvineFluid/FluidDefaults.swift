import Foundation

// Fixed paths, defaults and limits of the Fluid ThinRuntime entrypoint.
// Every value names the reason it has this value; CONTRACT.md (§n) is the Fluid contract.

/// Constants shared by the translator and the entrypoint.
public enum FluidDefaults {
    /// Where Fluid ≥ 1.1 mounts the ThinRuntime config (ConfigMap/Secret volume `thin-conf`), §2.1.
    public static let configPath = "/etc/fluid/config/config.json"
    /// Where Fluid < 1.1 mounted it; read only when neither `--config` nor
    /// `FLUID_RUNTIME_CONFIG_PATH` is given and the current path does not exist, §2.1.
    public static let legacyConfigPath = "/etc/fluid/config.json"

    /// Upstream Curvine image layout (`/app/curvine`); the seed used `/opt/curvine`, §12.
    public static let curvineHome = "/app/curvine"
    /// The TOML file name under `$CURVINE_HOME/conf`, as upstream's launcher expects, §3.
    public static let confRelativePath = "conf/curvine-cluster.toml"
    /// Log directory under `$CURVINE_HOME`, created before exec like upstream's launcher, §6.3.
    public static let logsRelativePath = "logs"
    /// Client metadata scratch directory upstream's launcher creates before exec, §6.3.
    public static let metaDirectory = "/tmp/curvine/meta"

    /// Upstream thin parser default; Curvine's own binary default (9001) is never relied on, §12.
    public static let masterWebPort = 8080
    /// Upstream Fluid default for `--io-threads`/`fuse.io_threads`, §2.4.
    public static let ioThreads = 32
    /// Upstream Fluid default for `--worker-threads`/`fuse.worker_threads`, §2.4.
    public static let workerThreads = 56
    /// One FUSE session per node is what Fluid's CSI bind-mounts, §2.4.
    public static let mountNumber = 1
    /// `cluster_id` is fixed by upstream's template; the client only checks it is present, §3.
    public static let clusterID = "curvine"

    /// The running executable; exec'ing it runs the FUSE daemon of this same image, §6.6.
    public static let selfExecutable = "/proc/self/exe"
    /// Where to read the current mounts to detect a stale FUSE endpoint, §6.4.
    public static let mountInfoPath = "/proc/self/mountinfo"

    /// Fluid's hostPath volume for the parent may appear a little after the container
    /// starts; upstream waits 30 s, §6.5.
    public static let parentWaitSeconds = 30
    /// Polling the parent once a second is what upstream does and costs nothing.
    public static let parentPollIntervalSeconds: UInt32 = 1
    /// Each crash-restart of a container whose unmount failed can stack one more dead
    /// mount on the target; 8 rounds clears any realistic pile without looping forever.
    public static let maxStaleUnmountRounds = 8
}

/// Environment variable names read by the entrypoint (CONTRACT §2.3, §2.4).
public enum FluidEnv {
    public static let runtimeType = "FLUID_RUNTIME_TYPE"
    public static let configPath = "FLUID_RUNTIME_CONFIG_PATH"
    /// Fluid's own copy of `targetPath`, used as the last fallback for the target.
    public static let fluidMountPoint = "MOUNT_POINT"
    public static let curvineHome = "CURVINE_HOME"
    public static let confFile = "CURVINE_CONF_FILE"
    public static let masterEndpoints = "CURVINE_MASTER_ENDPOINTS"
    public static let masterWebPort = "CURVINE_MASTER_WEB_PORT"
    public static let ioThreads = "CURVINE_IO_THREADS"
    public static let workerThreads = "CURVINE_WORKER_THREADS"
    public static let mountNumber = "CURVINE_MNT_NUMBER"
    public static let mountPoint = "CURVINE_MOUNT_POINT"
    public static let targetPath = "CURVINE_TARGET_PATH"
    /// Test/debug override of the daemon binary (default: the running executable).
    public static let fuseBinary = "CURVINE_FUSE_BIN"

    /// The variables a user may set, listed in the help for a missing config file.
    public static let userFacing = [
        masterEndpoints, mountPoint, targetPath, masterWebPort, ioThreads, workerThreads,
        mountNumber, curvineHome, confFile, configPath,
    ]

    /// `CURVINE_<FLAG>`: a CLI flag name upper-cased with `-` → `_` (§2.4).
    public static func forFlag(_ flag: String) -> String {
        "CURVINE_" + flag.uppercased().replacingOccurrences(of: "-", with: "_")
    }
}

/// Dataset option keys with a fixed meaning (CONTRACT §2.4).
public enum FluidOptionKey {
    public static let masterEndpoints = "master-endpoints"
    public static let masterWebPort = "master-web-port"
    public static let ioThreads = "io-threads"
    public static let workerThreads = "worker-threads"
    public static let mountNumber = "mnt-number"
}
