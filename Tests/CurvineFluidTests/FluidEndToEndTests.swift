// Plays Fluid end to end: an embedded Curvine cluster, a config.json as Fluid writes it,
// `curvine-fuse fluid-thin-runtime` as the fuse container, then SIGTERM as on pod deletion.
//
// Opt-in (needs root, /dev/fuse and the built binaries):
//   swift build && CURVINE_E2E=1 swift test --filter FluidEndToEndTests
// Binaries: <package root>/.build/debug/curvine-fuse and .build/debug/curvine-cluster
// (another directory with CURVINE_E2E_BIN_DIR).

import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

final class FluidEndToEndTests: XCTestCase {
    static let packageRoot = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    /// `<package root>/.build/debug`, or `$CURVINE_E2E_BIN_DIR` for another scratch path
    /// (e.g. `swift build --scratch-path .build-x` puts them in `.build-x/debug`).
    static let binaryDirectory: URL = {
        if let path = ProcessInfo.processInfo.environment["CURVINE_E2E_BIN_DIR"], !path.isEmpty {
            return URL(fileURLWithPath: path)
        }
        return packageRoot.appendingPathComponent(".build/debug")
    }()
    static let fuseBinary = binaryDirectory.appendingPathComponent("curvine-fuse").path
    static let clusterBinary = binaryDirectory.appendingPathComponent("curvine-cluster").path

    /// The embedded cluster binds two ports and formats a data dir; 30 s covers a cold debug build.
    static let clusterReadyTimeout: TimeInterval = 30
    /// Fluid's CSI polls mountinfo 10 × 3 s before giving up; the test allows the same.
    static let mountTimeout: TimeInterval = 30
    /// The contract gives the daemon 2 s to unmount on SIGTERM; a little slack for a debug build.
    static let unmountTimeout: TimeInterval = 5
    /// How long a teardown helper (fusermount3, kill) may take before it is abandoned.
    static let helperTimeout: TimeInterval = 10

    private var scratch: URL!
    private var target: String!
    private var configPath: String!
    private var home: String!

    override func setUpWithError() throws {
        guard ProcessInfo.processInfo.environment["CURVINE_E2E"] == "1" else {
            throw XCTSkip("end-to-end Fluid test: set CURVINE_E2E=1 (needs root, /dev/fuse and `swift build`)")
        }
        for binary in [Self.fuseBinary, Self.clusterBinary] where !FileManager.default.isExecutableFile(atPath: binary) {
            throw E2EError("\(binary) not found; run `swift build` in \(Self.packageRoot.path) first "
                + "(or point CURVINE_E2E_BIN_DIR at the directory holding curvine-fuse and curvine-cluster)")
        }
        guard FileManager.default.fileExists(atPath: "/dev/fuse") else { throw XCTSkip("/dev/fuse is not available") }

        scratch = URL(fileURLWithPath: "/tmp/curvine-fluid-e2e-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        // Fluid creates only the parent (hostPath DirectoryOrCreate); the entrypoint makes the leaf.
        let parent = scratch.appendingPathComponent("runtime-mnt/thin/default/e2e")
        try FileManager.default.createDirectory(at: parent, withIntermediateDirectories: true)
        target = parent.appendingPathComponent("thin-fuse").path
        configPath = scratch.appendingPathComponent("config/config.json").path
        home = scratch.appendingPathComponent("curvine-home").path
        addTeardownBlock { [scratch, target] in
            // Registered first, so it runs last: after the processes are gone.
            if let target = target { Self.forceUnmount(target) }
            if let scratch = scratch { try? FileManager.default.removeItem(at: scratch) }
        }
    }

    // MARK: - Tests

    func testFluidStartsServesAndStopsTheMount() throws {
        let masterPort = try startCluster()
        try writeFluidConfig(masterPort: masterPort)

        let fuse = try startEntrypoint()
        let mount = try waitForMount()
        XCTAssertTrue(mount.fsType.hasPrefix("fuse"), "Fluid's CSI greps for fileSystemType 'fuse': \(mount.fsType)")
        let toml = try String(contentsOfFile: home + "/conf/curvine-cluster.toml")
        XCTAssertTrue(toml.contains("port = \(masterPort)\n"), toml)

        // The mount serves files: write through it, read back, list.
        let file = target + "/hello-fluid.txt"
        let payload = "hello from a Fluid ThinRuntime pod\n" + String(repeating: "x", count: 300_000)
        try payload.write(toFile: file, atomically: false, encoding: .utf8)
        XCTAssertEqual(try String(contentsOfFile: file), payload)
        XCTAssertTrue(try FileManager.default.contentsOfDirectory(atPath: target).contains("hello-fluid.txt"))
        try FileManager.default.createDirectory(atPath: target + "/dir", withIntermediateDirectories: false)
        XCTAssertTrue(try FileManager.default.contentsOfDirectory(atPath: target).contains("dir"))

        // Pod deletion: SIGTERM to the container's process (the exec'd daemon).
        kill(fuse.processIdentifier, SIGTERM)
        XCTAssertTrue(Self.wait(for: fuse, timeout: Self.unmountTimeout), "daemon did not exit after SIGTERM")
        XCTAssertEqual(fuse.terminationReason, .exit)
        XCTAssertEqual(fuse.terminationStatus, 0)
        XCTAssertTrue(Self.mountEntries(at: target).isEmpty, "the mount is still there after SIGTERM")
    }

    func testRestartAfterACrashClearsTheDeadMount() throws {
        let masterPort = try startCluster()
        try writeFluidConfig(masterPort: masterPort)

        let first = try startEntrypoint()
        _ = try waitForMount()
        // A crash (OOM kill) leaves a dead FUSE endpoint: "Transport endpoint is not connected".
        kill(first.processIdentifier, SIGKILL)
        XCTAssertTrue(Self.wait(for: first, timeout: Self.helperTimeout))
        XCTAssertFalse(Self.mountEntries(at: target).isEmpty, "expected a dead mount after SIGKILL")

        // Kubernetes restarts the container in place: the entrypoint must clear it and remount.
        let second = try startEntrypoint()
        _ = try waitForMount()
        XCTAssertEqual(Self.mountEntries(at: target).count, 1, "stale mount not cleared: \(Self.mountEntries(at: target))")
        XCTAssertNoThrow(try FileManager.default.contentsOfDirectory(atPath: target))
        kill(second.processIdentifier, SIGTERM)
        XCTAssertTrue(Self.wait(for: second, timeout: Self.unmountTimeout))
        XCTAssertEqual(second.terminationStatus, 0)
    }

    // MARK: - Steps

    /// Starts `curvine-cluster` and waits for its `ready` line; returns the master port.
    private func startCluster() throws -> Int {
        let masterPort = try Self.freePort()
        let workerPort = try Self.freePort()
        let dataDir = scratch.appendingPathComponent("cluster-data").path
        let output = OutputCollector()
        let cluster = try launch(Self.clusterBinary,
                                 ["--data-dir", dataDir, "--master-port", "\(masterPort)", "--worker-port", "\(workerPort)"],
                                 environment: ProcessInfo.processInfo.environment, output: output)
        let deadline = Date().addingTimeInterval(Self.clusterReadyTimeout)
        // The interface is a line starting with `ready` (it may go on with the addresses).
        while !output.text.split(whereSeparator: \.isNewline).contains(where: { $0.hasPrefix("ready") }) {
            guard cluster.isRunning else { throw E2EError("curvine-cluster exited early:\n\(output.text)") }
            guard Date() < deadline else { throw E2EError("curvine-cluster not ready in \(Self.clusterReadyTimeout) s:\n\(output.text)") }
            usleep(50_000)
        }
        return masterPort
    }

    /// config.json exactly as Fluid's chart writes it: one indented line plus a newline.
    private func writeFluidConfig(masterPort: Int) throws {
        let config: [String: Any] = [
            "mounts": [["mountPoint": "curvine:///", "name": "curvine",
                        "options": ["master-endpoints": "127.0.0.1:\(masterPort)", "io-threads": "4", "worker-threads": "8"]]],
            "targetPath": target!,
            "accessModes": ["ReadWriteMany"],
        ]
        let json = try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys])
        try FileManager.default.createDirectory(atPath: (configPath as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try Data(("    " + String(decoding: json, as: UTF8.self) + "\n").utf8).write(to: URL(fileURLWithPath: configPath))
    }

    /// `curvine-fuse fluid-thin-runtime` with the environment Fluid gives the fuse container.
    private func startEntrypoint() throws -> Process {
        var environment = ProcessInfo.processInfo.environment
        environment["FLUID_RUNTIME_TYPE"] = "thin"
        environment["FLUID_RUNTIME_NS"] = "default"
        environment["FLUID_RUNTIME_NAME"] = "e2e"
        environment["MOUNT_POINT"] = target
        environment["FLUID_RUNTIME_CONFIG_PATH"] = configPath
        environment["CURVINE_HOME"] = home
        environment["CURVINE_FUSE_BIN"] = nil
        return try launch(Self.fuseBinary, ["fluid-thin-runtime"], environment: environment, output: OutputCollector())
    }

    private func waitForMount() throws -> (mountPoint: String, fsType: String) {
        let deadline = Date().addingTimeInterval(Self.mountTimeout)
        while true {
            if let entry = Self.mountEntries(at: target).last, entry.fsType.hasPrefix("fuse"),
               (try? FileManager.default.contentsOfDirectory(atPath: target)) != nil {
                return entry
            }
            guard Date() < deadline else { throw E2EError("\(target!) not mounted within \(Self.mountTimeout) s") }
            usleep(100_000)
        }
    }

    /// Starts a process whose output is collected, and registers its kill in teardown.
    private func launch(_ path: String, _ arguments: [String], environment: [String: String],
                        output: OutputCollector) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.environment = environment
        // Output goes to a file, not a pipe: a pipe read through readabilityHandler
        // depends on a dispatch source that XCTest on Linux does not always service.
        let log = scratch.appendingPathComponent("\(URL(fileURLWithPath: path).lastPathComponent)-\(UInt32.random(in: 0...UInt32.max)).log").path
        FileManager.default.createFile(atPath: log, contents: nil)
        let handle = FileHandle(forWritingAtPath: log)!
        process.standardOutput = handle
        process.standardError = handle
        output.attach(path: log)
        try process.run()
        addTeardownBlock {
            // Teardown blocks run in reverse order: the fuse daemon dies before the cluster.
            if process.isRunning {
                kill(process.processIdentifier, SIGTERM)
                if !Self.wait(for: process, timeout: Self.unmountTimeout) {
                    kill(process.processIdentifier, SIGKILL)
                    _ = Self.wait(for: process, timeout: Self.helperTimeout)
                }
            }
            try? handle.close()
            if (self.testRun?.totalFailureCount ?? 0) > 0 { print("--- \(path) output ---\n\(output.text)") }
        }
        return process
    }

    // MARK: - Helpers

    static func wait(for process: Process, timeout: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        return !process.isRunning
    }

    /// mountinfo entries exactly on `path` (mount point field, octal escapes undone).
    static func mountEntries(at path: String) -> [(mountPoint: String, fsType: String)] {
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo") else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ").map(String.init)
            guard fields.count > 6, let dash = fields.firstIndex(of: "-"), dash + 1 < fields.count else { return nil }
            let point = fields[4].replacingOccurrences(of: "\\040", with: " ")
            return point == path ? (point, fields[dash + 1]) : nil
        }
    }

    /// fusermount3 -u (bounded), then a lazy umount, while anything is mounted on `path`.
    static func forceUnmount(_ path: String) {
        for _ in 0..<4 where !mountEntries(at: path).isEmpty {
            if !runHelper("/usr/bin/fusermount3", ["-u", "-z", path]) {
                _ = runHelper("/usr/bin/umount", ["-l", path])
            }
        }
    }

    @discardableResult
    static func runHelper(_ path: String, _ arguments: [String]) -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        if !wait(for: process, timeout: helperTimeout) {
            kill(process.processIdentifier, SIGKILL)
            _ = wait(for: process, timeout: helperTimeout)
            return false
        }
        return process.terminationStatus == 0
    }

    /// A port the kernel just handed out on 127.0.0.1 (bind to 0, read it back, close).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw E2EError("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress -> Int32 in
                guard bind(fd, socketAddress, length) == 0 else { return -1 }
                return getsockname(fd, socketAddress, &length)
            }
        }
        guard bound == 0 else { throw E2EError("bind: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}


/// A child's combined output, read back from its log file.
final class OutputCollector {
    private var path: String?

    var text: String {
        guard let p = path, let d = FileManager.default.contents(atPath: p) else { return "" }
        return String(decoding: d, as: UTF8.self)
    }

    func attach(path: String) { self.path = path }
}

struct E2EError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
