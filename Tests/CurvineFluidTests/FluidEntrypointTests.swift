// FluidEntrypoint.run: arguments, --dry-run, bad input, and the order of a real start
// (against a fake system: nothing is mounted, slept or exec'd).

import Foundation
import XCTest
@testable import CurvineFluid

final class FluidEntrypointTests: XCTestCase {
    private var directory: URL!
    private var configPath: String!

    override func setUpWithError() throws {
        directory = try makeScratchDirectory(self)
        configPath = directory.appendingPathComponent("config.json").path
        try Data(("    " + fluidConfigJSON(options: ["master-endpoints": "m0:8995,m1:8995", "direct-io": "true"],
                                           accessModes: ["ReadOnlyMany"]) + "\n").utf8)
            .write(to: URL(fileURLWithPath: configPath))
    }

    private func run(_ arguments: [String], env: [String: String]? = nil,
                     system: FakeFluidSystem = FakeFluidSystem()) -> (Int32, FakeFluidSystem) {
        let environment = env ?? [FluidEnv.configPath: configPath, FluidEnv.runtimeType: "thin"]
        return (FluidEntrypoint.run(arguments: arguments, environment: environment, system: system), system)
    }

    // MARK: - --dry-run

    func testDryRunPrintsTheTOMLThenTheExecLineAndWritesNothing() throws {
        let (status, system) = run(["--dry-run"])
        XCTAssertEqual(status, 0)
        let plan = try translate(String(contentsOfFile: configPath), env: [:])
        let execLine = "# exec: /usr/local/bin/curvine-fuse --mnt-path \(testTarget) --mnt-number 1 "
            + "--conf /app/curvine/conf/curvine-cluster.toml --io-threads 32 --worker-threads 56 "
            + "--direct-io true --readonly true\n"
        XCTAssertEqual(system.stdout, plan.tomlText + execLine)
        XCTAssertTrue(system.stdout.hasPrefix("format_master = false\n"))
        XCTAssertEqual(system.stdout.split(separator: "\n").last.map(String.init), String(execLine.dropLast()))
        XCTAssertEqual(system.stderr, "")
        XCTAssertEqual(system.events, [], "a dry run writes, creates, unmounts and execs nothing")
    }

    func testDryRunShellQuotesTheArgv() throws {
        try Data(fluidConfigJSON(targetPath: "/mnt/it's here").utf8).write(to: URL(fileURLWithPath: configPath))
        let (status, system) = run(["--dry-run"], env: [FluidEnv.configPath: configPath,
                                                        FluidEnv.fuseBinary: "/opt/my bin/curvine-fuse"])
        XCTAssertEqual(status, 0)
        XCTAssertTrue(system.stdout.hasSuffix(
            "# exec: '/opt/my bin/curvine-fuse' --mnt-path '/mnt/it'\\''s here' --mnt-number 1 "
                + "--conf /app/curvine/conf/curvine-cluster.toml --io-threads 32 --worker-threads 56\n"),
            system.stdout)
    }

    func testDryRunOnBadInputFailsLikeARealStart() {
        let env = [FluidEnv.configPath: configPath!, "CURVINE_IO_THREADS": "many"]
        try? Data(fluidConfigJSON(options: [:]).utf8).write(to: URL(fileURLWithPath: configPath))
        for arguments in [["--dry-run"], []] {
            let (status, system) = run(arguments, env: env.merging(["CURVINE_MASTER_ENDPOINTS": "m:1"]) { $1 })
            XCTAssertEqual(status, 1)
            XCTAssertEqual(system.stdout, "")
            XCTAssertEqual(system.stderr.filter { $0 == "\n" }.count, 1, "exactly one line: \(system.stderr)")
            XCTAssertTrue(system.stderr.hasPrefix("curvine-fuse: error: io-threads must be a positive whole number"))
            XCTAssertEqual(system.events, [])
        }
    }

    // MARK: - Bad input through the entrypoint

    func testEveryBadInputIsOneLineAndTouchesNothing() throws {
        let cases: [(String?, [String: String], String)] = [
            (nil, [:], "Fluid config file not found"),
            ("{not json", [:], "is not valid JSON"),
            (#"{"mounts":[],"targetPath":"/mnt/t"}"#, [:], "expects exactly one Dataset mount, got 0"),
            (fluidConfigJSON(mountPoint: "s3://bucket"), [:], "unsupported mountPoint s3://bucket"),
            (fluidConfigJSON(options: ["master-endpoints": "m"]), [:], "Invalid master endpoint: m"),
            (fluidConfigJSON(options: ["master-endpoints": "m:70000"]), [:], "out of range"),
            (fluidConfigJSON(), ["CURVINE_WORKER_THREADS": "0"], "worker-threads must be a positive whole number"),
        ]
        for (json, extraEnv, expected) in cases {
            let path = directory.appendingPathComponent(UUID().uuidString).path
            if let json = json { try Data(json.utf8).write(to: URL(fileURLWithPath: path)) }
            let env = extraEnv.merging([FluidEnv.configPath: path]) { $1 }
            let (status, system) = run([], env: env)
            XCTAssertEqual(status, 1, expected)
            XCTAssertEqual(system.stderr.filter { $0 == "\n" }.count, 1, system.stderr)
            XCTAssertTrue(system.stderr.contains(expected), system.stderr)
            XCTAssertTrue(system.stderr.contains("; "), "names a fix: \(system.stderr)")
            XCTAssertEqual(system.events, [], expected)
        }
    }

    func testUnreadableConfigThroughTheFlag() {
        let (status, system) = run(["--config", directory.path], env: [:])
        XCTAssertEqual(status, 1)
        XCTAssertEqual(system.stderr, "curvine-fuse: error: cannot read Fluid config file \(directory.path): "
            + "it is a directory; make it a readable regular file or point --config or FLUID_RUNTIME_CONFIG_PATH at one\n")
    }

    func testArguments() throws {
        XCTAssertEqual(try FluidArguments.parse([]), FluidArguments())
        XCTAssertEqual(try FluidArguments.parse(["fluid-thin-runtime", "--dry-run", "--config", "/c.json"]),
                       FluidArguments(dryRun: true, help: false, configPath: "/c.json"))
        XCTAssertEqual(try FluidArguments.parse(["--config=/c.json"]).configPath, "/c.json")
        XCTAssertThrowsError(try FluidArguments.parse(["--config"]))
        XCTAssertThrowsError(try FluidArguments.parse(["--mnt-path", "/x"]))
        let (status, system) = run(["--bogus"])
        XCTAssertEqual(status, 2)
        XCTAssertEqual(system.stderr, "curvine-fuse: error: unknown argument \"--bogus\"; "
            + "usage: curvine-fuse fluid-thin-runtime [--dry-run] [--config PATH]\n")
        let (helpStatus, help) = run(["--help"])
        XCTAssertEqual(helpStatus, 0)
        XCTAssertTrue(help.stdout.contains("--dry-run"))
    }

    func testConfigPathPrecedence() {
        let none = FluidArguments()
        let exists: (String) -> Bool = { _ in true }
        XCTAssertEqual(none.resolvedConfigPath(environment: [:], exists: exists), "/etc/fluid/config/config.json")
        XCTAssertEqual(none.resolvedConfigPath(environment: ["FLUID_RUNTIME_CONFIG_PATH": "/env.json"], exists: exists),
                       "/env.json")
        XCTAssertEqual(FluidArguments(configPath: "/flag.json")
            .resolvedConfigPath(environment: ["FLUID_RUNTIME_CONFIG_PATH": "/env.json"], exists: exists), "/flag.json")
        XCTAssertEqual(none.resolvedConfigPath(environment: [:]) { $0 == "/etc/fluid/config.json" },
                       "/etc/fluid/config.json", "Fluid < 1.1 location when only it exists")
        XCTAssertEqual(none.resolvedConfigPath(environment: [:]) { _ in false }, "/etc/fluid/config/config.json")
    }

    func testThinRuntimeDetection() {
        XCTAssertTrue(FluidEntrypoint.isThinRuntimeInvocation(arguments: ["fluid-thin-runtime"], environment: [:]))
        XCTAssertTrue(FluidEntrypoint.isThinRuntimeInvocation(arguments: [], environment: ["FLUID_RUNTIME_TYPE": "thin"]))
        XCTAssertFalse(FluidEntrypoint.isThinRuntimeInvocation(arguments: ["--mnt-path", "/x"], environment: [:]))
        XCTAssertTrue(FluidEntrypoint.isThinRuntimeInvocation(arguments: ["--dry-run"], environment: ["FLUID_RUNTIME_TYPE": "thin"]))
        XCTAssertFalse(FluidEntrypoint.isThinRuntimeInvocation(arguments: ["--mnt-path", "/x"],
                                                               environment: ["FLUID_RUNTIME_TYPE": "thin"]),
                       "the daemon's own command line mounts even inside a Fluid pod")
        XCTAssertFalse(FluidEntrypoint.isThinRuntimeInvocation(arguments: [], environment: ["FLUID_RUNTIME_TYPE": "alluxio"]))
    }

    // MARK: - Real start, against the fake system

    func testRealStartOrder() throws {
        let system = FakeFluidSystem()
        let stale = "36 25 0:52 / \(testTarget) rw,nosuid,nodev,relatime shared:7 - fuse.curvinefs curvine rw,user_id=0\n"
        system.mountInfos = [stale, ""]
        let (status, _) = run([], system: system)
        XCTAssertEqual(status, 1, "returns only because the fake exec fails")
        XCTAssertEqual(system.events, [
            "mkdir -p /app/curvine/conf", "mkdir -p /tmp/curvine/meta", "mkdir -p /app/curvine/logs",
            "write /app/curvine/conf/curvine-cluster.toml",
            "umount -f \(testTarget)",
            "mkdir \(testTarget)",
            "exec /usr/local/bin/curvine-fuse",
        ])
        let plan = try translate(String(contentsOfFile: configPath), env: [:])
        XCTAssertEqual(system.files["/app/curvine/conf/curvine-cluster.toml"], plan.tomlText)
        let exec = try XCTUnwrap(system.execCall)
        XCTAssertEqual(exec.arguments, ["/usr/local/bin/curvine-fuse"] + plan.argv.dropFirst())
        XCTAssertNil(exec.environment["FLUID_RUNTIME_TYPE"], "the daemon must not re-enter the entrypoint")
        XCTAssertEqual(exec.environment["CURVINE_CONF_FILE"], "/app/curvine/conf/curvine-cluster.toml")
        XCTAssertEqual(exec.environment["CURVINE_HOME"], "/app/curvine")
        XCTAssertEqual(exec.environment[FluidEnv.configPath], configPath)
        XCTAssertTrue(system.stderr.contains("unmounting stale mount at \(testTarget) (fuse.curvinefs from curvine)"))
        XCTAssertTrue(system.stderr.hasSuffix("curvine-fuse: error: cannot start the FUSE daemon /usr/local/bin/curvine-fuse: "
            + "No such file or directory; fix the image or CURVINE_FUSE_BIN\n"), system.stderr)
    }

    func testStaleMountFallsBackToLazyUnmount() {
        let system = FakeFluidSystem()
        system.mountInfos = ["1 2 0:1 / \(testTarget) rw - fuse.curvinefs curvine rw\n", ""]
        system.forceUnmountResult = EBUSY
        _ = run([], system: system)
        XCTAssertEqual(system.events.filter { $0.hasPrefix("umount") },
                       ["umount -f \(testTarget)", "umount -l \(testTarget)"])
    }

    func testDeadEndpointWithoutMountInfoEntryIsUnmounted() {
        let system = FakeFluidSystem()
        system.deadMount = true
        system.forceUnmountResult = EINVAL
        _ = run([], system: system)
        XCTAssertEqual(system.events.filter { $0.hasPrefix("umount") }.prefix(2),
                       ["umount -f \(testTarget)", "umount -l \(testTarget)"])
    }

    func testNoStaleMountNoUnmount() {
        let system = FakeFluidSystem()
        system.mountInfos = ["1 2 0:1 / \(testTarget)/other rw - ext4 /dev/sda rw\n"]
        _ = run([], system: system)
        XCTAssertFalse(system.events.contains { $0.hasPrefix("umount") })
    }

    func testWaitsForTheParentDirectory() {
        let system = FakeFluidSystem()
        system.directories = ["/"]
        system.parentAppearsAfterSleeps = 3
        _ = run([], system: system)
        XCTAssertEqual(system.sleeps, 3)
        XCTAssertTrue(system.events.contains("mkdir \(testTarget)"))
        XCTAssertTrue(system.stderr.contains("waiting up to 30 s for /runtime-mnt/thin/default/curvine-dataset"))
    }

    func testGivesUpWhenTheParentNeverAppears() {
        let system = FakeFluidSystem()
        system.directories = ["/"]
        let (status, _) = run([], system: system)
        XCTAssertEqual(status, 1)
        XCTAssertEqual(system.sleeps, 30)
        XCTAssertFalse(system.events.contains { $0.hasPrefix("exec") || $0 == "mkdir \(testTarget)" })
        XCTAssertTrue(system.stderr.hasSuffix("curvine-fuse: error: the target's parent directory "
            + "/runtime-mnt/thin/default/curvine-dataset did not appear within 30 s; mount it into the fuse "
            + "container (Fluid's thin-fuse-mount hostPath volume does) or create it\n"), system.stderr)
    }

    func testExistingTargetIsFine() {
        let system = FakeFluidSystem()
        system.directories.insert(testTarget)
        _ = run([], system: system)
        XCTAssertTrue(system.events.contains("exec /usr/local/bin/curvine-fuse"))
    }

    func testMissingBinaryFailsBeforeWritingAnything() {
        let system = FakeFluidSystem()
        system.executable = false
        let (status, _) = run([], system: system)
        XCTAssertEqual(status, 1)
        XCTAssertEqual(system.events, [])
        XCTAssertTrue(system.stderr.contains("the FUSE daemon /usr/local/bin/curvine-fuse is missing or not executable"))
    }

    func testIgnoredOptionsAreWarnedAbout() throws {
        try Data(fluidConfigJSON(options: ["master-endpoints": "m:1", "io_threads": "8"]).utf8)
            .write(to: URL(fileURLWithPath: configPath))
        let (status, system) = run(["--dry-run"])
        XCTAssertEqual(status, 0)
        XCTAssertTrue(system.stderr.contains("warning: ignoring Dataset option \"io_threads\""), system.stderr)
    }

    // MARK: - Real files, no mount

    func testLinuxSystemWritesTheTOMLAtomically() throws {
        let linux = LinuxFluidSystem()
        let nested = directory.appendingPathComponent("home/conf").path
        try linux.createDirectories(nested)
        XCTAssertTrue(linux.isDirectory(nested))
        try linux.createDirectories(nested)  // idempotent
        let file = nested + "/curvine-cluster.toml"
        try linux.writeFile(file, contents: "a = 1\n")
        try linux.writeFile(file, contents: "b = 2\n")
        XCTAssertEqual(try String(contentsOfFile: file), "b = 2\n")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: nested), ["curvine-cluster.toml"])
        XCTAssertThrowsError(try linux.createDirectories(file + "/below-a-file"))
        XCTAssertNotNil(linux.mountInfo())
        XCTAssertFalse(linux.isDeadMount(nested))
        XCTAssertTrue(linux.selfExecutable()?.hasPrefix("/") ?? false)
    }
}
