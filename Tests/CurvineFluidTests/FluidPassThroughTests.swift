// client.<k> / fuse.<k> TOML pass-through (CONTRACT §3.1) and optional CLI flags (§5).

import XCTest
@testable import CurvineFluid

final class FluidPassThroughTests: XCTestCase {
    private func plan(_ options: [String: String], env: [String: String] = testEnvironment) throws -> FluidPlan {
        try translate(fluidConfigJSON(options: options.merging(["master-endpoints": "m:8995"]) { old, _ in old }), env: env)
    }

    func testTypingAndSortingOfStringValues() throws {
        let plan = try plan([
            "fuse.entry_timeout_ms": "300000",
            "fuse.check_permission": "FALSE",
            "fuse.direct_io": "True",
            "fuse.node_cache_timeout": "12h",
            "fuse.zero_padded": "08",
            "fuse.ratio": "0.75",
            "fuse.negative": "-3",
            "fuse.plus": "+5",
            "fuse.bad_float": "01.5",
            "fuse.label": "hello \"world\"",
            "client.block_size": "64KB",
            "client.conn_retry_max_duration_ms": "120000",
            "client.auto_cache_enabled": "true",
        ])
        XCTAssertEqual(tomlSection(plan.tomlText, "[client]"), [
            "auto_cache_enabled = true",
            "block_size = \"64KB\"",
            "conn_retry_max_duration_ms = 120000",
        ])
        XCTAssertEqual(tomlSection(plan.tomlText, "[fuse]"), [
            "debug = false", "io_threads = 32", "worker_threads = 56",
            "mnt_path = \"\(testTarget)\"", "fs_path = \"/data\"",
            "bad_float = \"01.5\"",
            "check_permission = false",
            "direct_io = true",
            "entry_timeout_ms = 300000",
            "label = \"hello \\\"world\\\"\"",
            "negative = -3",
            "node_cache_timeout = \"12h\"",
            "plus = 5",
            "ratio = 0.75",
            "zero_padded = \"08\"",
        ])
        try assertValidTOML(plan.tomlText)
    }

    func testClientTableComesBeforeTheMasterAddressTables() throws {
        let toml = try plan(["client.block_size": "64KB"]).tomlText
        let client = try XCTUnwrap(toml.range(of: "[client]\n"))
        let addrs = try XCTUnwrap(toml.range(of: "[[client.master_addrs]]\n"))
        let master = try XCTUnwrap(toml.range(of: "[master]\n"))
        let fuse = try XCTUnwrap(toml.range(of: "[fuse]\n"))
        XCTAssertTrue(master.lowerBound < client.lowerBound && client.lowerBound < addrs.lowerBound
                      && addrs.lowerBound < fuse.lowerBound)
    }

    func testJSONTypedValuesKeepTheirType() throws {
        let json = """
            {"mounts":[{"mountPoint":"curvine:///d","options":{"master-endpoints":"m:1",
            "fuse.write_back_cache":true,"fuse.max_background":512,"fuse.ratio":1.0,"fuse.tiny":1e-3,
            "client.huge":123456789012345678901234}}],"targetPath":"/t/x"}
            """
        let toml = try translate(json).tomlText
        XCTAssertEqual(tomlSection(toml, "[fuse]").suffix(4),
                       ["max_background = 512", "ratio = 1.0", "tiny = 0.001", "write_back_cache = true"])
        XCTAssertEqual(tomlSection(toml, "[client]"), ["huge = 1.2345678901234569e+23"])
        try assertValidTOML(toml)
    }

    func testKeysAreTrimmed() throws {
        XCTAssertTrue(try plan(["fuse. list_limit ": "500"]).tomlText.contains("list_limit = 500\n"))
    }

    func testAliases() throws {
        let toml = try plan(["fuse.enable_write_back": "true", "fuse.meta_cache_ttl": "30s"]).tomlText
        XCTAssertEqual(tomlSection(toml, "[fuse]").suffix(2), ["meta_cache_timeout = \"30s\"", "write_back_cache = true"])
        XCTAssertFalse(toml.contains("enable_write_back"))
        XCTAssertFalse(toml.contains("meta_cache_ttl"))
    }

    func testAliasAndCanonicalTogetherIsAnError() {
        assertConfigError(fluidConfigJSON(options: ["master-endpoints": "m:1", "fuse.enable_write_back": "true",
                                                    "fuse.write_back_cache": "false"]),
                          .duplicatePassThroughKey(canonical: "fuse.write_back_cache",
                                                   spellings: ["fuse.enable_write_back", "fuse.write_back_cache"]),
                          mentions: ["fuse.write_back_cache", "more than once"])
    }

    func testReservedKeys() {
        let reserved = [("fuse.io_threads", "fuse.io_threads"), ("fuse.worker_threads", "fuse.worker_threads"),
                        ("fuse.mnt_path", "fuse.mnt_path"), ("fuse.fs_path", "fuse.fs_path"),
                        ("fuse.debug", "fuse.debug"), ("client.master_addrs", "client.master_addrs")]
        for (key, canonical) in reserved {
            assertConfigError(fluidConfigJSON(options: ["master-endpoints": "m:1", key: "1"]),
                              .reservedPassThroughKey(key: key, canonical: canonical),
                              mentions: [key, "managed by Curvine ThinRuntime"])
        }
    }

    func testNestedOrEmptyKeysAreErrors() {
        assertConfigError(fluidConfigJSON(options: ["master-endpoints": "m:1", "fuse.a.b": "1"]),
                          .invalidPassThroughKey(key: "fuse.a.b"), mentions: ["Invalid fuse option key"])
        assertConfigError(fluidConfigJSON(options: ["master-endpoints": "m:1", "client. ": "1"]),
                          .invalidPassThroughKey(key: "client."), mentions: ["Invalid client option key"])
    }

    func testListValueIsAnErrorForTOMLKeys() {
        let json = #"{"mounts":[{"mountPoint":"curvine:///d","options":{"master-endpoints":"m:1","fuse.x":["a"]}}],"targetPath":"/t/x"}"#
        assertConfigError(json, .invalidOptionType(key: "fuse.x", found: "a list"))
    }

    // MARK: - CLI flags

    func testFlagsFromOptionsAndEnvironmentInContractOrder() throws {
        let env = testEnvironment.merging(["CURVINE_ENTRY_TIMEOUT_MS": "300000", "CURVINE_WRITE_BACK_CACHE": "true",
                                           "CURVINE_LIST_LIMIT": "9"]) { $1 }
        let plan = try plan(["direct-io": "TRUE", "node-cache-timeout": "2h", "web-port": "09003", "list-limit": "500"],
                            env: env)
        XCTAssertEqual(Array(plan.argv[11...]), [
            "--direct-io", "true", "--write-back-cache", "true", "--entry-timeout-ms", "300000",
            "--node-cache-timeout", "2h", "--list-limit", "500", "--web-port", "9003",
        ])
    }

    func testAliasesAreEmittedOnceUnderTheCanonicalName() throws {
        XCTAssertEqual(Array(try plan(["mnt-per-task": "4", "entry-timeout": "5", "meta-cache-timeout": "1m"]).argv[11...]),
                       ["--tasks-per-mnt", "4", "--entry-timeout-ms", "5", "--meta-cache-ttl", "1m"])
        // Canonical option > canonical env > alias option > alias env.
        let env = testEnvironment.merging(["CURVINE_ATTR_TIMEOUT_MS": "2", "CURVINE_ATTR_TIMEOUT": "4",
                                           "CURVINE_NEGATIVE_TIMEOUT": "6"]) { $1 }
        XCTAssertEqual(Array(try plan(["attr-timeout": "3", "negative-timeout": "5"], env: env).argv[11...]),
                       ["--attr-timeout-ms", "2", "--negative-timeout-ms", "5"])
        XCTAssertEqual(Array(try plan(["entry-timeout-ms": "1", "entry-timeout": "7"]).argv[11...]),
                       ["--entry-timeout-ms", "1"])
    }

    func testEveryContractFlagIsKnown() throws {
        var options: [String: String] = [:]
        let values: [FluidMountFlag.Kind: String] = [.bool: "true", .count: "1", .port: "9003", .text: "1h"]
        for flag in FluidMountFlags.all { options[flag.name] = values[flag.kind] }
        let argv = try plan(options).argv
        let names = stride(from: 11, to: argv.count, by: 2).map { argv[$0] }
        XCTAssertEqual(names, [
            "--tasks-per-mnt", "--clone-fd", "--fuse-channel-size", "--stream-channel-size", "--direct-io",
            "--write-back-cache", "--cache-readdir", "--non-seekable", "--entry-timeout-ms", "--attr-timeout-ms",
            "--negative-timeout-ms", "--max-background", "--congestion-threshold", "--node-cache-timeout",
            "--enable-meta-cache", "--meta-cache-ttl", "--read-dir-fill-ino", "--remember", "--check-permission",
            "--metrics-enabled", "--list-limit", "--web-port",
        ])
    }

    func testReadOnlyComesAfterTheOptionalFlags() throws {
        let plan = try translate(fluidConfigJSON(options: ["master-endpoints": "m:1", "direct-io": "false"],
                                                 accessModes: ["ReadOnlyMany"]))
        XCTAssertEqual(Array(plan.argv.suffix(4)), ["--direct-io", "false", "--readonly", "true"])
    }

    func testBadFlagValues() {
        assertConfigError(fluidConfigJSON(options: ["master-endpoints": "m:1", "direct-io": "yes"]),
                          .invalidFlagValue(flag: "direct-io", value: "yes", source: .option("direct-io"),
                                            expected: "true or false", example: "true"),
                          mentions: ["--direct-io", "\"yes\"", "Dataset option \"direct-io\""])
        assertConfigError(fluidConfigJSON(), env: testEnvironment.merging(["CURVINE_MAX_BACKGROUND": "lots"]) { $1 },
                          .invalidFlagValue(flag: "max-background", value: "lots",
                                            source: .environment("CURVINE_MAX_BACKGROUND"),
                                            expected: "a whole number >= 0", example: "1000"),
                          mentions: ["CURVINE_MAX_BACKGROUND"])
        assertConfigError(fluidConfigJSON(options: ["master-endpoints": "m:1", "web-port": "70000"]),
                          .invalidFlagValue(flag: "web-port", value: "70000", source: .option("web-port"),
                                            expected: "a port 1-65535", example: "9003"))
    }
}
