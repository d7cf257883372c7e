// Bad or unusual config.json: the file itself, its JSON, its mounts and the mount point.

import Foundation
import XCTest
@testable import CurvineFluid

final class FluidConfigInputTests: XCTestCase {
    // MARK: - The file

    func testMissingFileNamesThePathTheFixAndTheEnvFallbacks() throws {
        assertConfigError(nil, .configFileMissing(path: FluidDefaults.configPath),
                          mentions: [FluidDefaults.configPath, "FLUID_RUNTIME_CONFIG_PATH", "--config",
                                     "CURVINE_MASTER_ENDPOINTS", "CURVINE_IO_THREADS", "CURVINE_TARGET_PATH"])
        let directory = try makeScratchDirectory(self)
        XCTAssertNil(try FluidConfigFile.read(path: directory.appendingPathComponent("absent.json").path))
    }

    func testUnreadableFileIsAnError() throws {
        // Root reads any mode, so a directory stands in for an unreadable file.
        let directory = try makeScratchDirectory(self)
        XCTAssertThrowsError(try FluidConfigFile.read(path: directory.path)) { error in
            XCTAssertEqual(error as? FluidConfigError,
                           .configFileUnreadable(path: directory.path, reason: "it is a directory"))
            assertOneLine("\(error)", mentions: ["cannot read Fluid config file", directory.path])
        }
    }

    func testReadReturnsTheBytes() throws {
        let file = try makeScratchDirectory(self).appendingPathComponent("config.json")
        try Data(fluidConfigJSON().utf8).write(to: file)
        XCTAssertEqual(try FluidConfigFile.read(path: file.path), Data(fluidConfigJSON().utf8))
    }

    // MARK: - JSON

    func testBadJSONNamesTheFileAndThePosition() {
        assertConfigError("{\"mounts\": [}", .invalidJSON(path: FluidDefaults.configPath,
                                                            detail: "unexpected '}' at line 1, column 13"),
                          mentions: ["not valid JSON", FluidDefaults.configPath, "line 1, column 13"])
        assertConfigError("", .invalidJSON(path: FluidDefaults.configPath, detail: "empty document at line 1, column 1"))
        assertConfigError("mounts: []", .invalidJSON(path: FluidDefaults.configPath,
                                                     detail: "unexpected 'm' at line 1, column 1"))
    }

    func testIndentedSingleLineJSONWithTrailingNewlineIsAccepted() throws {
        // The chart writes the JSON on one line, indented by four spaces, newline-terminated.
        let plan = try translate("    " + fluidConfigJSON() + "\n")
        XCTAssertEqual(plan.fsPath, "/data")
        XCTAssertEqual(try translate("\u{FEFF}\t\r\n" + fluidConfigJSON() + "\r\n\n").fsPath, "/data")
    }

    func testPrettyPrintedJSONIsAccepted() throws {
        let json = """

                {
                    "mounts": [ { "mountPoint": "curvine:///pretty",
                                  "options": { "master-endpoints": "m:8995" } } ],
                    "targetPath": "/mnt/pretty"
                }

            """
        XCTAssertEqual(try translate(json).fsPath, "/pretty")
    }

    func testExtraLinesAfterTheJSONLineAreIgnoredLikeUpstream() throws {
        XCTAssertEqual(try translate(fluidConfigJSON() + "\nsomething the chart appended\n").fsPath, "/data")
    }

    func testDocumentMustBeAnObject() {
        assertConfigError("[1]", .invalidField(path: FluidDefaults.configPath, field: "the document",
                                                expected: "a JSON object", found: "a list"))
    }

    // MARK: - Mounts

    func testNoMountsIsAnError() {
        for json in [#"{"targetPath":"/mnt/t"}"#, #"{"mounts":null,"targetPath":"/mnt/t"}"#,
                     #"{"mounts":[],"targetPath":"/mnt/t"}"#] {
            assertConfigError(json, .wrongMountCount(0), mentions: ["exactly one Dataset mount, got 0", "curvine:///"])
        }
    }

    func testTwoMountsIsAnError() {
        let json = #"{"mounts":[{"mountPoint":"curvine:///a"},{"mountPoint":"curvine:///b"}],"targetPath":"/mnt/t"}"#
        assertConfigError(json, .wrongMountCount(2), mentions: ["exactly one Dataset mount, got 2"])
    }

    func testWrongShapesAreErrors() {
        let path = FluidDefaults.configPath
        assertConfigError(#"{"mounts":{"mountPoint":"curvine:///a"}}"#,
                          .invalidField(path: path, field: "mounts", expected: "a list", found: "an object"),
                          mentions: ["mounts must be a list"])
        assertConfigError(#"{"mounts":["curvine:///a"]}"#,
                          .invalidField(path: path, field: "mounts[0]", expected: "an object", found: "a string"))
        assertConfigError(#"{"mounts":[{"mountPoint":"curvine:///a","options":"master-endpoints=m:1"}]}"#,
                          .invalidField(path: path, field: "mounts[0].options", expected: "an object", found: "a string"))
        assertConfigError(#"{"mounts":[{"mountPoint":"curvine:///a","options":{"io-threads":{"n":1}}}]}"#,
                          .invalidOptionType(key: "io-threads", found: "an object"))
        assertConfigError(#"{"mounts":[{"mountPoint":"curvine:///a","options":{"master-endpoints":"m:1"}}],"targetPath":"/t","accessModes":"ReadOnlyMany"}"#,
                          .invalidField(path: path, field: "accessModes", expected: "a list of strings", found: "a string"))
        assertConfigError(#"{"mounts":[{"mountPoint":7}]}"#,
                          .invalidField(path: path, field: "mounts[0].mountPoint", expected: "a string", found: "a number"))
    }

    func testNullOptionsAreNoOptions() throws {
        let json = #"{"mounts":[{"mountPoint":"curvine:///a","options":null,"encryptOptions":null}],"targetPath":"/mnt/t"}"#
        let plan = try translate(json, env: testEnvironment.merging(["CURVINE_MASTER_ENDPOINTS": "m:1"]) { $1 })
        XCTAssertEqual(plan.masterEndpoints, [FluidMasterEndpoint(host: "m", port: 1)])
    }

    // MARK: - Mount point

    func testCurvineMountPoints() throws {
        let cases = [
            ("curvine:///data", "/data"),
            ("curvine:///starrocks/datacache", "/starrocks/datacache"),
            ("curvine:///", "/"),
            ("curvine://", "/"),
            ("CURVINE:///Upper", "/Upper"),
            ("/data", "/data"),
            ("  curvine:///trimmed  ", "/trimmed"),
        ]
        for (mountPoint, fsPath) in cases {
            let plan = try translate(fluidConfigJSON(mountPoint: mountPoint))
            XCTAssertEqual(plan.fsPath, fsPath, mountPoint)
            XCTAssertTrue(plan.tomlText.contains("fs_path = \"\(fsPath)\"\n"), mountPoint)
        }
    }

    func testOtherSchemesAreRejectedNamingTheCurvineForm() {
        for mountPoint in ["s3://bucket/data", "pvc://my-pvc", "hdfs://nn:8020/x", "local:///mnt/data", "oss://b/"] {
            assertConfigError(fluidConfigJSON(mountPoint: mountPoint), .unsupportedScheme(mountPoint: mountPoint),
                              mentions: [mountPoint, "curvine:///<path>"])
        }
    }

    func testAuthorityInTheURIIsRejected() {
        assertConfigError(fluidConfigJSON(mountPoint: "curvine://master:8995/data"),
                          .mountPointHasAuthority(mountPoint: "curvine://master:8995/data", authority: "master:8995"),
                          mentions: ["master:8995", "curvine:///", "master-endpoints"])
    }

    func testRelativeMountPointIsRejected() {
        assertConfigError(fluidConfigJSON(mountPoint: "data/x"), .mountPointNotAbsolute(mountPoint: "data/x"),
                          mentions: ["curvine:///"])
    }

    func testMissingMountPointFallsBackToEnvironment() throws {
        let env = testEnvironment.merging(["CURVINE_MOUNT_POINT": "curvine:///from-env"]) { $1 }
        XCTAssertEqual(try translate(fluidConfigJSON(mountPoint: nil), env: env).fsPath, "/from-env")
        XCTAssertEqual(try translate(fluidConfigJSON(mountPoint: ""), env: env).fsPath, "/from-env")
        XCTAssertEqual(try translate(fluidConfigJSON(mountPoint: "curvine:///cfg"), env: env).fsPath, "/cfg")
        assertConfigError(fluidConfigJSON(mountPoint: nil), .mountPointMissing, mentions: ["CURVINE_MOUNT_POINT"])
    }
}
