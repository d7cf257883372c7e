// Starts the real binaries: an embedded cluster and curvine-fuse mounts over it.
// Every file operation on a mount runs in a child process under `timeout`, so a
// hung daemon fails the test instead of hanging the test runner. Teardown always
// unmounts (fusermount3 -u, then lazy umount) and kills what it started.
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

let packageRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

func binary(_ name: String) -> String {
    // Another scratch path (swift build --scratch-path .build-x): CURVINE_E2E_BIN_DIR=.build-x/debug.
    if let dir = ProcessInfo.processInfo.environment["CURVINE_E2E_BIN_DIR"], !dir.isEmpty {
        return URL(fileURLWithPath: dir, relativeTo: packageRoot).appendingPathComponent(name).path
    }
    for dir in [".build/debug", ".build/release"] {
        let p = packageRoot.appendingPathComponent(dir).appendingPathComponent(name).path
        if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    return packageRoot.appendingPathComponent(".build/debug").appendingPathComponent(name).path
}

struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `/bin/sh -c script` with a hard timeout (seconds).
@discardableResult
func sh(_ script: String, timeout: Int = 60) -> CommandResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
    p.arguments = ["-k", "5", String(timeout), "/bin/sh", "-c", script]
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    do { try p.run() } catch { return CommandResult(status: -1, stdout: "", stderr: "\(error)") }
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return CommandResult(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                         stderr: String(decoding: e, as: UTF8.self))
}

func isMounted(_ path: String) -> Bool {
    guard let t = try? String(contentsOfFile: "/proc/mounts", encoding: .utf8) else { return false }
    return t.split(separator: "\n").contains { $0.split(separator: " ").count > 2 && $0.split(separator: " ")[1] == path }
}

func mountType(_ path: String) -> String? {
    guard let t = try? String(contentsOfFile: "/proc/mounts", encoding: .utf8) else { return nil }
    for l in t.split(separator: "\n") {
        let f = l.split(separator: " ")
        if f.count > 3 && f[1] == path { return "\(f[2]) \(f[3])" }
    }
    return nil
}

/// A child process with its output captured to a file (for diagnostics).
final class Child {
    let process = Process()
    let logPath: String

    init(_ exe: String, _ args: [String], log: String, env: [String: String] = [:]) throws {
        logPath = log
        process.executableURL = URL(fileURLWithPath: exe)
        process.arguments = args
        var e = ProcessInfo.processInfo.environment
        for (k, v) in env { e[k] = v }
        e.removeValue(forKey: "FLUID_RUNTIME_TYPE")
        process.environment = e
        FileManager.default.createFile(atPath: log, contents: nil)
        let h = FileHandle(forWritingAtPath: log)!
        process.standardOutput = h
        process.standardError = h
        try process.run()
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// SIGTERM, wait up to `grace` seconds, then SIGKILL. Returns the exit status.
    @discardableResult
    func stop(grace: Double = 5) -> Int32 {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        let deadline = Date().addingTimeInterval(grace)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        return process.terminationStatus
    }
}

/// An embedded cluster in its own process.
final class ClusterProcess {
    let dir: String
    let child: Child
    let master: String

    init(dir: String, extraArgs: [String] = []) throws {
        self.dir = dir
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        child = try Child(binary("curvine-cluster"),
                          ["--data-dir", dir + "/data", "--master-port", "0", "--worker-port", "0"] + extraArgs,
                          log: dir + "/cluster.log")
        let deadline = Date().addingTimeInterval(30)
        var addr: String?
        while Date() < deadline, addr == nil {
            if let line = child.log.split(separator: "\n").first(where: { $0.hasPrefix("ready ") }),
               let m = line.split(separator: " ").first(where: { $0.hasPrefix("master=") }) {
                addr = String(m.dropFirst("master=".count))
            }
            if !child.process.isRunning { break }
            usleep(50_000)
        }
        guard let a = addr else {
            child.stop()
            throw NSError(domain: "test", code: 1, userInfo: [NSLocalizedDescriptionKey: "cluster did not start: \(child.log)"])
        }
        master = a
    }

    func stop() { child.stop() }
}

/// One curvine-fuse mount.
final class MountProcess {
    let mnt: String
    let child: Child

    init(mnt: String, master: String, conf: String? = nil, extraArgs: [String] = [], log: String,
         exe: String = binary("curvine-fuse"), env: [String: String] = [:]) throws {
        self.mnt = mnt
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        var args = ["--mnt-path", mnt, "--master-addrs", master, "--web-port", "0"]
        if let c = conf { args += ["--conf", c] }
        child = try Child(exe, args + extraArgs, log: log, env: env)
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline && !isMounted(mnt) && child.process.isRunning { usleep(50_000) }
        guard isMounted(mnt) else {
            let log = child.log
            stop()
            throw NSError(domain: "test", code: 2, userInfo: [NSLocalizedDescriptionKey: "mount did not appear: \(log)"])
        }
    }

    /// Unmounts and stops the daemon; always leaves no mount behind.
    @discardableResult
    func stop() -> Int32 {
        if isMounted(mnt) { sh("fusermount3 -u '\(mnt)'", timeout: 10) }
        let status = child.stop(grace: 5)
        if isMounted(mnt) {
            sh("fusermount3 -uz '\(mnt)' || umount -l '\(mnt)'", timeout: 10)
        }
        return status
    }
}

/// Base class: a temp dir, a cluster, mounts; teardown stops everything, also on failure.
class MountTestCase: XCTestCase {
    var tmp = ""
    var cluster: ClusterProcess?
    var mounts: [MountProcess] = []

    override func setUpWithError() throws {
        guard getuid() == 0, FileManager.default.fileExists(atPath: "/dev/fuse") else {
            throw XCTSkip("mount tests need root and /dev/fuse")
        }
        guard FileManager.default.isExecutableFile(atPath: binary("curvine-fuse")),
              FileManager.default.isExecutableFile(atPath: binary("curvine-cluster")) else {
            XCTFail("build the binaries first: swift build (scripts/test.sh does)")
            throw XCTSkip("binaries missing")
        }
        tmp = NSTemporaryDirectory() + "cvmt-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    }

    override func tearDown() {
        for m in mounts { m.stop() }
        mounts.removeAll()
        cluster?.stop()
        cluster = nil
        if !tmp.isEmpty { sh("rm -rf '\(tmp)'", timeout: 60) }
    }

    func startCluster() throws -> ClusterProcess {
        let c = try ClusterProcess(dir: tmp + "/cluster")
        cluster = c
        return c
    }

    func mount(_ name: String, conf: String? = nil, extraArgs: [String] = [], exe: String = binary("curvine-fuse"),
               env: [String: String] = [:]) throws -> MountProcess {
        let m = try MountProcess(mnt: tmp + "/" + name, master: cluster!.master, conf: conf, extraArgs: extraArgs,
                                 log: tmp + "/\(name).log", exe: exe, env: env)
        mounts.append(m)
        return m
    }

    /// Runs a script; fails the test with its output when it exits non-zero.
    @discardableResult
    func run(_ script: String, timeout: Int = 120, file: StaticString = #filePath, line: UInt = #line) -> String {
        let r = sh(script, timeout: timeout)
        if r.status != 0 {
            XCTFail("`\(script)` exited \(r.status)\nstdout: \(r.stdout)\nstderr: \(r.stderr)\nlogs: \(mounts.map { $0.child.log.suffix(2000) })", file: file, line: line)
        }
        return r.stdout
    }
}
