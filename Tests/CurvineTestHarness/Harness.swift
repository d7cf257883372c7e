// The real binaries for mount-level tests, shared by MountTests and ReliabilityTests
// (test targets cannot import each other, so this is a plain library target only test
// targets depend on). Every file operation on a mount runs in a child process under
// `timeout`, so a hung daemon fails the test instead of hanging the runner; teardown
// unmounts (fusermount3 -u, then lazy) and kills what it started.
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Where the binaries under test are: $CURVINE_BIN_DIR (or its older name
/// $CURVINE_E2E_BIN_DIR; relative to the package root), else .build/debug, else
/// .build/release — e.g. CURVINE_BIN_DIR=.build-x/debug after
/// `swift build --scratch-path .build-x`.
public enum TestBinaries {
    public static let packageRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    public static var binDir: String {
        let env = ProcessInfo.processInfo.environment
        for key in ["CURVINE_BIN_DIR", "CURVINE_E2E_BIN_DIR"] {
            if let d = env[key], !d.isEmpty { return URL(fileURLWithPath: d, relativeTo: packageRoot).path }
        }
        for dir in [".build/debug", ".build/release"] {
            let p = packageRoot.appendingPathComponent(dir)
            if FileManager.default.isExecutableFile(atPath: p.appendingPathComponent("curvine-fuse").path) { return p.path }
        }
        return packageRoot.appendingPathComponent(".build/debug").path
    }
}

/// The path of binary `name` (curvine-fuse, curvine-cluster, cv) under test.
public func binary(_ name: String) -> String { TestBinaries.binDir + "/" + name }

public struct CommandResult {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs `/bin/sh -c script` with a hard timeout (seconds).
@discardableResult
public func sh(_ script: String, timeout: Int = 60) -> CommandResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
    p.arguments = ["-k", "5", String(timeout), "/bin/sh", "-c", script]
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    do { try p.run() } catch { return CommandResult(status: -1, stdout: "", stderr: "\(error)") }
    // Read both pipes concurrently: a child filling stderr must not block on us.
    let errBox = ResultBox<Data>()
    let g = DispatchGroup()
    g.enter()
    DispatchQueue.global().async { errBox.r = .success(err.fileHandleForReading.readDataToEndOfFile()); g.leave() }
    let o = out.fileHandleForReading.readDataToEndOfFile()
    g.wait()
    let errData = (try? errBox.r?.get()) ?? Data()
    p.waitUntilExit()
    return CommandResult(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
}

public func isMounted(_ path: String) -> Bool {
    guard let t = try? String(contentsOfFile: "/proc/mounts", encoding: .utf8) else { return false }
    return t.split(separator: "\n").contains { $0.split(separator: " ").count > 2 && $0.split(separator: " ")[1] == path }
}

/// "fstype options" of the mount at `path` (nil when none).
public func mountType(_ path: String) -> String? {
    guard let t = try? String(contentsOfFile: "/proc/mounts", encoding: .utf8) else { return nil }
    for l in t.split(separator: "\n") {
        let f = l.split(separator: " ")
        if f.count > 3 && f[1] == path { return "\(f[2]) \(f[3])" }
    }
    return nil
}

public func tempDir(_ tag: String) -> String {
    var t = Array("/tmp/cvrel-\(tag)-XXXXXX".utf8CString)
    let p = mkdtemp(&t)!
    return String(cString: p)
}

public func removeTree(_ path: String) {
    guard !path.isEmpty, path.hasPrefix("/tmp/") else { return }
    try? FileManager.default.removeItem(atPath: path)
}

public final class ResultBox<T>: @unchecked Sendable {
    public var r: Result<T, Error>?
    public init() {}
}

/// A child process with its output captured to a file (for diagnostics).
public final class Child {
    public let process = Process()
    public let logPath: String

    public init(_ exe: String, _ args: [String], log: String, env: [String: String] = [:]) throws {
        logPath = log
        process.executableURL = URL(fileURLWithPath: exe)
        process.arguments = args
        var e = ProcessInfo.processInfo.environment
        for (k, v) in env { e[k] = v }
        e.removeValue(forKey: "FLUID_RUNTIME_TYPE")
        process.environment = e
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let h = FileHandle(forWritingAtPath: log)!
        process.standardOutput = h
        process.standardError = h
        try process.run()
    }

    public var pid: pid_t { process.processIdentifier }
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// SIGTERM, wait up to `grace` seconds, then SIGKILL. Returns the exit status.
    @discardableResult
    public func stop(grace: Double = 5) -> Int32 {
        if process.isRunning { kill(pid, SIGCONT); kill(pid, SIGTERM) }
        let deadline = Date().addingTimeInterval(grace)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
        return process.terminationStatus
    }
}

/// An embedded cluster in its own process.
public final class ClusterProcess {
    public let dir: String
    public let child: Child
    public let master: String
    public let standbys: [String]

    public init(dir: String, workers: Int = 1, standbyMasters: Int = 0) throws {
        self.dir = dir
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var args = ["--data-dir", dir + "/data", "--master-port", "0", "--worker-port", "0", "--workers", String(workers)]
        for _ in 0..<standbyMasters { args += ["--standby-master-port", "0"] }
        child = try Child(binary("curvine-cluster"), args, log: dir + "/cluster.log")
        let deadline = Date().addingTimeInterval(30)
        var addr: String?
        var standby: [String] = []
        while Date() < deadline, addr == nil {
            let log = child.log
            if let line = log.split(separator: "\n").first(where: { $0.hasPrefix("ready ") }),
               let m = line.split(separator: " ").first(where: { $0.hasPrefix("master=") }) {
                addr = String(m.dropFirst("master=".count))
                if let s = log.split(separator: "\n").first(where: { $0.contains("standby masters: ") }) {
                    standby = s.components(separatedBy: "standby masters: ")[1].split(separator: ",").map(String.init)
                }
            }
            if !child.process.isRunning { break }
            usleep(50_000)
        }
        guard let a = addr else {
            child.stop()
            throw NSError(domain: "test", code: 1, userInfo: [NSLocalizedDescriptionKey: "cluster did not start: \(child.log)"])
        }
        master = a
        standbys = standby
    }

    public func stop() { child.stop() }
}

/// One curvine-fuse mount.
public final class MountProcess {
    public let mnt: String
    public let child: Child

    /// Starts `exe` (curvine-fuse under test by default), under `prefix` (e.g. setpriv) when
    /// given, and waits until the mount answers.
    public init(mnt: String, master: String, conf: String? = nil, extraArgs: [String] = [], log: String,
                env: [String: String] = [:], prefix: [String] = [], exe: String = binary("curvine-fuse")) throws {
        self.mnt = mnt
        try? FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        var args = ["--mnt-path", mnt, "--master-addrs", master, "--web-port", "0"]
        if let c = conf { args += ["--conf", c] }
        if prefix.isEmpty {
            child = try Child(exe, args + extraArgs, log: log, env: env)
        } else {
            child = try Child(prefix[0], Array(prefix.dropFirst()) + [exe] + args + extraArgs,
                              log: log, env: env)
        }
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline && !(isMounted(mnt) && sh("stat -t '\(mnt)' >/dev/null", timeout: 5).status == 0)
                && child.process.isRunning {
            usleep(50_000)
        }
        guard isMounted(mnt) else {
            let log = child.log
            stop()
            throw NSError(domain: "test", code: 2, userInfo: [NSLocalizedDescriptionKey: "mount did not appear: \(log)"])
        }
    }

    public var pid: pid_t { child.pid }

    /// Unmounts and stops the daemon; always leaves no mount behind.
    @discardableResult
    public func stop() -> Int32 {
        if child.process.isRunning { kill(child.pid, SIGCONT) }
        if isMounted(mnt) { sh("fusermount3 -u '\(mnt)'", timeout: 10) }
        let status = child.stop(grace: 5)
        var tries = 0
        while isMounted(mnt) && tries < 5 {
            sh("fusermount3 -uz '\(mnt)' 2>/dev/null || umount -l '\(mnt)'", timeout: 10)
            tries += 1
        }
        return status
    }
}

/// Daemon resource figures from /proc.
public func rssKiB(_ pid: pid_t) -> Int? {
    guard let s = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for l in s.split(separator: "\n") where l.hasPrefix("VmRSS:") {
        return Int(l.split(separator: " ", omittingEmptySubsequences: true)[1])
    }
    return nil
}

public func fdCount(_ pid: pid_t) -> Int? {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd"))?.count
}

public func threadCount(_ pid: pid_t) -> Int? {
    guard let s = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for l in s.split(separator: "\n") where l.hasPrefix("Threads:") {
        return Int(l.split(separator: "\t", omittingEmptySubsequences: true).last!.trimmingCharacters(in: .whitespaces))
    }
    return nil
}

/// Base class: a temp dir, a cluster, mounts; teardown stops everything, also on failure.
open class MountTestCase: XCTestCase {
    nonisolated(unsafe) static var announced = false
    public var tmp = ""
    public var cluster: ClusterProcess?
    public var mounts: [MountProcess] = []

    open override func setUpWithError() throws {
        guard getuid() == 0, FileManager.default.fileExists(atPath: "/dev/fuse") else {
            throw XCTSkip("mount tests need root and /dev/fuse")
        }
        guard FileManager.default.isExecutableFile(atPath: binary("curvine-fuse")),
              FileManager.default.isExecutableFile(atPath: binary("curvine-cluster")) else {
            XCTFail("no binaries in \(TestBinaries.binDir): build first (swift build), or set CURVINE_BIN_DIR")
            throw XCTSkip("binaries missing")
        }
        if !Self.announced {
            Self.announced = true
            print("mount tests: binaries from \(TestBinaries.binDir) (set CURVINE_BIN_DIR to use another build)")
        }
        tmp = tempDir("mnt")
        // Other users (nobody, in the permission tests) must reach the mount points.
        chmod(tmp, 0o755)
    }

    open override func tearDown() {
        for m in mounts { m.stop() }
        if (testRun?.totalFailureCount ?? 0) > 0 {
            // Keep the daemon logs of a failed test (the temp dir goes away).
            for (i, m) in mounts.enumerated() {
                let keep = "/tmp/cvrel-failed-\(name.filter { $0.isLetter || $0.isNumber })-\(i).log"
                try? FileManager.default.removeItem(atPath: keep)
                try? FileManager.default.copyItem(atPath: m.child.logPath, toPath: keep)
                print("daemon log kept at \(keep)")
            }
        }
        mounts.removeAll()
        cluster?.stop()
        cluster = nil
        if !tmp.isEmpty {
            // Never rm through a live mount.
            if let t = try? String(contentsOfFile: "/proc/mounts", encoding: .utf8), t.contains(tmp) {
                XCTFail("a mount under \(tmp) survived teardown")
                sh("for m in $(grep -o '\(tmp)[^ ]*' /proc/mounts); do umount -l $m; done", timeout: 10)
            }
            removeTree(tmp)
        }
    }

    @discardableResult
    public func startCluster(workers: Int = 1, standbyMasters: Int = 0) throws -> ClusterProcess {
        let c = try ClusterProcess(dir: tmp + "/cluster", workers: workers, standbyMasters: standbyMasters)
        cluster = c
        return c
    }

    /// Writes a TOML with small client timeouts (and `extra` lines) and returns its path.
    public func writeConf(_ name: String = "conf.toml", budgetMs: Int = 3_000, rpcMs: Int = 1_000, extra: String = "") -> String {
        let p = tmp + "/" + name
        let text = """
        [client]
        conn_timeout_ms = 500
        rpc_timeout_ms = \(rpcMs)
        rpc_retry_max_duration_ms = \(budgetMs)
        data_timeout_ms = 1000
        \(extra)
        """
        _ = FileManager.default.createFile(atPath: p, contents: Data(text.utf8))
        return p
    }

    public func mount(_ name: String, master: String? = nil, conf: String? = nil, extraArgs: [String] = [],
                      env: [String: String] = [:], prefix: [String] = [], exe: String = binary("curvine-fuse")) throws -> MountProcess {
        let m = try MountProcess(mnt: tmp + "/" + name, master: master ?? cluster!.master, conf: conf,
                                 extraArgs: extraArgs, log: tmp + "/\(name)-\(mounts.count).log", env: env, prefix: prefix, exe: exe)
        mounts.append(m)
        return m
    }

    /// Runs a script; fails the test with its output when it exits non-zero.
    @discardableResult
    public func run(_ script: String, timeout: Int = 120, file: StaticString = #filePath, line: UInt = #line) -> String {
        let r = sh(script, timeout: timeout)
        if r.status != 0 {
            XCTFail("`\(script)` exited \(r.status)\nstdout: \(r.stdout.suffix(3000))\nstderr: \(r.stderr.suffix(3000))\nlogs: \(mounts.map { $0.child.log.suffix(2000) })",
                    file: file, line: line)
        }
        return r.stdout
    }

    /// Runs a Python script (written to the temp dir) under `timeout`.
    public func python(_ script: String, _ args: [String], timeout: Int) -> CommandResult {
        let p = tmp + "/script-\(UInt32.random(in: 0...UInt32.max)).py"
        _ = FileManager.default.createFile(atPath: p, contents: Data(script.utf8))
        let quoted = args.map { "'\($0)'" }.joined(separator: " ")
        return sh("python3 '\(p)' \(quoted)", timeout: timeout)
    }
}
