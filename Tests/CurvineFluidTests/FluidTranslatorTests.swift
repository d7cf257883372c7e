// The translation as a whole: exact TOML and argv, precedence, defaults, read-only, paths.

import Foundation
import XCTest
@testable import CurvineFluid

final class FluidTranslatorTests: XCTestCase {
    /// The contract's realistic example (§2.1), compared byte for byte.
    func testContractExampleProducesExactTOMLAndArgv() throws {
        let json = """
            {
              "mounts": [
                {
                  "mountPoint": "curvine:///datasets/imagenet",
                  "name": "curvine",
                  "options": {
                    "master-endpoints": "curvine-master-0.curvine-master.ml.svc.cluster.local:8995,curvine-master-1.curvine-master.ml.svc.cluster.local:8995",
                    "master-web-port": "9000",
                    "io-threads": "48",
                    "fuse.entry_timeout_ms": "300000"
                  }
                }
              ],
              "targetPath": "/runtime-mnt/thin/ml/imagenet/thin-fuse",
              "runtimeOptions": {"foo": "bar"},
              "accessModes": ["ReadOnlyMany"]
            }
            """
        let plan = try translate(json)
        XCTAssertEqual(plan.tomlText, """
            format_master = false
            format_worker = false
            testing = false
            cluster_id = "curvine"

            [master]
            hostname = "curvine-master-0.curvine-master.ml.svc.cluster.local"
            rpc_port = 8995
            web_port = 9000

            [[client.master_addrs]]
            hostname = "curvine-master-0.curvine-master.ml.svc.cluster.local"
            port = 8995

            [[client.master_addrs]]
            hostname = "curvine-master-1.curvine-master.ml.svc.cluster.local"
            port = 8995

            [fuse]
            debug = false
            io_threads = 48
            worker_threads = 56
            mnt_path = "/runtime-mnt/thin/ml/imagenet/thin-fuse"
            fs_path = "/datasets/imagenet"
            entry_timeout_ms = 300000

            """)
        XCTAssertEqual(plan.argv, [
            testBinary, "--mnt-path", "/runtime-mnt/thin/ml/imagenet/thin-fuse", "--mnt-number", "1",
            "--conf", "/app/curvine/conf/curvine-cluster.toml", "--io-threads", "48", "--worker-threads", "56",
            "--readonly", "true",
        ])
        XCTAssertEqual(plan.confPath, "/app/curvine/conf/curvine-cluster.toml")
        XCTAssertEqual(plan.targetPath, "/runtime-mnt/thin/ml/imagenet/thin-fuse")
        XCTAssertEqual(plan.dirs, ["/app/curvine/conf", "/tmp/curvine/meta", "/app/curvine/logs"])
        XCTAssertTrue(plan.readOnly)
        XCTAssertEqual(plan.ignoredOptions, [])
        try assertValidTOML(plan.tomlText)
    }

    func testDefaultsWhenOnlyEndpointsAreGiven() throws {
        let plan = try translate(fluidConfigJSON())
        XCTAssertEqual(tomlSection(plan.tomlText, "[master]"),
                       ["hostname = \"10.0.0.9\"", "rpc_port = 8995", "web_port = 8080"])
        XCTAssertEqual(tomlSection(plan.tomlText, "[fuse]"), [
            "debug = false", "io_threads = 32", "worker_threads = 56",
            "mnt_path = \"\(testTarget)\"", "fs_path = \"/data\"",
        ])
        XCTAssertFalse(plan.tomlText.contains("[client]"), "no [client] table without client.* options")
        XCTAssertEqual(plan.argv, [testBinary, "--mnt-path", testTarget, "--mnt-number", "1",
                                   "--conf", "/app/curvine/conf/curvine-cluster.toml",
                                   "--io-threads", "32", "--worker-threads", "56"])
    }

    func testWithoutOverrideTheBinaryIsTheRunningExecutable() throws {
        XCTAssertEqual(try translate(fluidConfigJSON(), env: [:]).argv[0], "/proc/self/exe")
    }

    func testEnvironmentSuppliesEveryKnob() throws {
        let env = testEnvironment.merging([
            "CURVINE_MASTER_ENDPOINTS": "m0:8995,m1:8996",
            "CURVINE_MASTER_WEB_PORT": "9001",
            "CURVINE_IO_THREADS": "8",
            "CURVINE_WORKER_THREADS": "16",
            "CURVINE_MNT_NUMBER": "2",
            "CURVINE_HOME": "/opt/curvine",
        ]) { $1 }
        let plan = try translate(fluidConfigJSON(options: nil), env: env)
        XCTAssertEqual(tomlSection(plan.tomlText, "[master]"),
                       ["hostname = \"m0\"", "rpc_port = 8995", "web_port = 9001"])
        XCTAssertEqual(tomlSection(plan.tomlText, "[[client.master_addrs]]"),
                       ["hostname = \"m0\"", "port = 8995", "hostname = \"m1\"", "port = 8996"])
        XCTAssertEqual(Array(plan.argv[1...]), ["--mnt-path", testTarget, "--mnt-number", "2",
                                                "--conf", "/opt/curvine/conf/curvine-cluster.toml",
                                                "--io-threads", "8", "--worker-threads", "16"])
        XCTAssertTrue(plan.tomlText.contains("io_threads = 8\nworker_threads = 16\n"))
        XCTAssertEqual(plan.dirs, ["/opt/curvine/conf", "/tmp/curvine/meta", "/opt/curvine/logs"])
    }

    func testDatasetOptionBeatsEnvironment() throws {
        let env = testEnvironment.merging(["CURVINE_IO_THREADS": "16", "CURVINE_WORKER_THREADS": "24",
                                           "CURVINE_MASTER_ENDPOINTS": "env-master:1",
                                           "CURVINE_MASTER_WEB_PORT": "7000"]) { $1 }
        let plan = try translate(fluidConfigJSON(options: [
            "master-endpoints": "option-master:8995", "io-threads": "48", "master-web-port": "9000",
        ]), env: env)
        XCTAssertTrue(plan.tomlText.contains("io_threads = 48\nworker_threads = 24\n"))
        XCTAssertTrue(plan.tomlText.contains("hostname = \"option-master\"\nrpc_port = 8995\nweb_port = 9000\n"))
        XCTAssertFalse(plan.tomlText.contains("env-master"))
        XCTAssertEqual(plan.argv[8], "48")
        XCTAssertEqual(plan.argv[10], "24")
    }

    func testEmptyStringOptionCountsAsAbsent() throws {
        let env = testEnvironment.merging(["CURVINE_IO_THREADS": "16", "CURVINE_MASTER_ENDPOINTS": "env-master:8995"]) { $1 }
        let plan = try translate(fluidConfigJSON(options: [
            "master-endpoints": "", "io-threads": "", "worker-threads": "", "direct-io": "", "fuse.x": "",
        ]), env: env)
        XCTAssertTrue(plan.tomlText.contains("hostname = \"env-master\""))
        XCTAssertTrue(plan.tomlText.contains("io_threads = 16\nworker_threads = 56\n"))
        XCTAssertFalse(plan.argv.contains("--direct-io"))
        XCTAssertFalse(plan.tomlText.contains("x = "))
        // An empty env var is unset too.
        let unset = try translate(fluidConfigJSON(), env: testEnvironment.merging(["CURVINE_IO_THREADS": ""]) { $1 })
        XCTAssertTrue(unset.tomlText.contains("io_threads = 32\n"))
    }

    func testJSONNumberAndBooleanOptionsAreAccepted() throws {
        let json = """
            {"mounts":[{"mountPoint":"curvine:///d","options":{"master-endpoints":"m:8995","io-threads":48,
            "worker-threads":64,"master-web-port":9000,"direct-io":true,"mnt-number":null}}],"targetPath":"/mnt/x/t"}
            """
        let plan = try translate(json)
        XCTAssertTrue(plan.tomlText.contains("io_threads = 48\nworker_threads = 64\n"))
        XCTAssertTrue(plan.tomlText.contains("web_port = 9000\n"))
        XCTAssertEqual(Array(plan.argv.suffix(2)), ["--direct-io", "true"])
        XCTAssertEqual(plan.argv[4], "1", "a null option is absent")
    }

    func testBadThreadNumberInEnvironment() {
        for value in ["abc", "-1", "1.5", "32 threads", "99999999999999999999", " "] {
            assertConfigError(fluidConfigJSON(), env: testEnvironment.merging(["CURVINE_IO_THREADS": value]) { $1 },
                              .invalidNumber(setting: "io-threads", value: value, source: .environment("CURVINE_IO_THREADS"),
                                             expected: "a positive whole number", example: "32"),
                              mentions: ["io-threads", "CURVINE_IO_THREADS", "\"\(value)\""])
        }
    }

    func testZeroThreadsAreRejected() {
        assertConfigError(fluidConfigJSON(options: ["master-endpoints": "m:1", "io-threads": "0"]),
                          .invalidNumber(setting: "io-threads", value: "0", source: .option("io-threads"),
                                         expected: "a positive whole number", example: "32"),
                          mentions: ["Dataset option \"io-threads\""])
        assertConfigError(fluidConfigJSON(), env: testEnvironment.merging(["CURVINE_WORKER_THREADS": "0"]) { $1 },
                          .invalidNumber(setting: "worker-threads", value: "0", source: .environment("CURVINE_WORKER_THREADS"),
                                         expected: "a positive whole number", example: "56"))
        assertConfigError(fluidConfigJSON(options: ["master-endpoints": "m:1", "mnt-number": "0"]),
                          .invalidNumber(setting: "mnt-number", value: "0", source: .option("mnt-number"),
                                         expected: "a positive whole number", example: "1"))
    }

    func testThreadNumbersTolerateSurroundingSpacesAndLeadingZeros() throws {
        let plan = try translate(fluidConfigJSON(options: ["master-endpoints": "m:1", "io-threads": " 064 "]))
        XCTAssertTrue(plan.tomlText.contains("io_threads = 64\n"))
    }

    func testBadMasterWebPort() {
        for value in ["0", "65536", "http", "-5"] {
            assertConfigError(fluidConfigJSON(options: ["master-endpoints": "m:1", "master-web-port": value]),
                              .invalidNumber(setting: "master-web-port", value: value, source: .option("master-web-port"),
                                             expected: "a port 1-65535", example: "8080"))
        }
    }

    // MARK: - Read-only

    func testOnlyReadOnlyManyMountsReadOnly() throws {
        let cases: [([String]?, Bool)] = [
            (["ReadOnlyMany"], true),
            (["ReadOnlyMany", "ReadOnlyMany"], true),
            (["ReadWriteMany"], false),
            (["ReadOnlyMany", "ReadWriteMany"], false),
            (["ReadWriteOnce"], false),
            ([], false),
            (nil, false),
        ]
        for (modes, readOnly) in cases {
            let plan = try translate(fluidConfigJSON(accessModes: modes))
            XCTAssertEqual(plan.readOnly, readOnly, "\(String(describing: modes))")
            XCTAssertEqual(Array(plan.argv.suffix(2)) == ["--readonly", "true"], readOnly, "\(String(describing: modes))")
            XCTAssertFalse(plan.tomlText.contains("readonly"), "read-only travels on the CLI only")
        }
    }

    func testMountMarkedReadOnlyMountsReadOnly() throws {
        let json = """
            {"mounts":[{"mountPoint":"curvine:///d","readOnly":true,"options":{"master-endpoints":"m:1"}}],
             "targetPath":"/mnt/t","accessModes":["ReadWriteMany"]}
            """
        XCTAssertEqual(Array(try translate(json).argv.suffix(2)), ["--readonly", "true"])
    }

    // MARK: - Paths

    func testTargetPathFallbacks() throws {
        let withoutTarget = fluidConfigJSON(targetPath: nil)
        XCTAssertEqual(try translate(withoutTarget, env: testEnvironment.merging(
            ["CURVINE_TARGET_PATH": "/mnt/a", "MOUNT_POINT": "/mnt/b"]) { $1 }).targetPath, "/mnt/a")
        XCTAssertEqual(try translate(withoutTarget, env: testEnvironment.merging(["MOUNT_POINT": "/mnt/b"]) { $1 }).targetPath,
                       "/mnt/b")
        XCTAssertEqual(try translate(fluidConfigJSON(targetPath: ""), env: testEnvironment.merging(
            ["CURVINE_TARGET_PATH": "/mnt/a"]) { $1 }).targetPath, "/mnt/a")
        XCTAssertEqual(try translate(fluidConfigJSON(), env: testEnvironment.merging(
            ["CURVINE_TARGET_PATH": "/mnt/a"]) { $1 }).targetPath, testTarget, "config beats env")
        assertConfigError(withoutTarget, .targetPathMissing, mentions: ["targetPath", "CURVINE_TARGET_PATH"])
    }

    func testTargetPathMustBeAbsoluteAndNotRoot() throws {
        assertConfigError(fluidConfigJSON(targetPath: "relative/dir"),
                          .targetPathInvalid(path: "relative/dir", source: .configField("targetPath"), reason: "is not absolute"))
        assertConfigError(fluidConfigJSON(targetPath: "/"),
                          .targetPathInvalid(path: "/", source: .configField("targetPath"), reason: "is the root directory"))
        let plan = try translate(fluidConfigJSON(targetPath: "/mnt/data/"))
        XCTAssertEqual(plan.targetPath, "/mnt/data")
        XCTAssertTrue(plan.tomlText.contains("mnt_path = \"/mnt/data\"\n"))
    }

    func testCurvineHomeAndConfFile() throws {
        let home = try translate(fluidConfigJSON(), env: testEnvironment.merging(["CURVINE_HOME": "/opt/curvine"]) { $1 })
        XCTAssertEqual(home.confPath, "/opt/curvine/conf/curvine-cluster.toml")
        XCTAssertEqual(home.curvineHome, "/opt/curvine")
        let conf = try translate(fluidConfigJSON(), env: testEnvironment.merging(
            ["CURVINE_HOME": "/opt/curvine", "CURVINE_CONF_FILE": "/etc/curvine/c.toml"]) { $1 })
        XCTAssertEqual(conf.confPath, "/etc/curvine/c.toml")
        XCTAssertEqual(conf.dirs, ["/etc/curvine", "/tmp/curvine/meta", "/opt/curvine/logs"])
        XCTAssertEqual(conf.argv[6], "/etc/curvine/c.toml")
        assertConfigError(fluidConfigJSON(), env: testEnvironment.merging(["CURVINE_HOME": "curvine"]) { $1 },
                          .invalidPath(variable: "CURVINE_HOME", value: "curvine"))
    }

    func testStringsAreEscapedInTOML() throws {
        let plan = try translate(fluidConfigJSON(mountPoint: "curvine:///a \"quoted\" \\dir",
                                                 targetPath: "/mnt/with space/t"))
        XCTAssertTrue(plan.tomlText.contains(#"fs_path = "/a \"quoted\" \\dir""#))
        XCTAssertTrue(plan.tomlText.contains(#"mnt_path = "/mnt/with space/t""#))
        try assertValidTOML(plan.tomlText)
    }

    func testUnknownOptionsAreReportedAsIgnored() throws {
        let plan = try translate(fluidConfigJSON(options: [
            "master-endpoints": "m:1", "io_threads": "8", "access-key": "/etc/fluid/secrets/s/k", "entry-timeout": "5",
        ]))
        XCTAssertEqual(plan.ignoredOptions, ["access-key", "io_threads"])
    }
}

/// Parses `toml` with Python's tomllib, an independent TOML 1.0 reader.
func assertValidTOML(_ toml: String, file: StaticString = #filePath, line: UInt = #line) throws {
    guard FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") else { return }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
    process.arguments = ["-c", "import sys, tomllib; tomllib.loads(sys.stdin.read())"]
    let input = Pipe()
    process.standardInput = input
    let errors = Pipe()
    process.standardError = errors
    try process.run()
    input.fileHandleForWriting.write(Data(toml.utf8))
    try input.fileHandleForWriting.close()
    process.waitUntilExit()
    let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    XCTAssertEqual(process.terminationStatus, 0, "tomllib rejects the TOML: \(message)\n\(toml)", file: file, line: line)
}
