// master-endpoints / CURVINE_MASTER_ENDPOINTS (CONTRACT §4).

import XCTest
@testable import CurvineFluid

final class FluidEndpointTests: XCTestCase {
    private func endpoints(_ value: String) throws -> [FluidMasterEndpoint] {
        try translate(fluidConfigJSON(options: ["master-endpoints": value])).masterEndpoints
    }

    private func assertBadEndpoint(_ value: String, token: String, reason: String,
                                   file: StaticString = #filePath, line: UInt = #line) {
        assertConfigError(fluidConfigJSON(options: ["master-endpoints": value]),
                          .invalidMasterEndpoint(token: token, reason: reason, source: .option("master-endpoints")),
                          mentions: ["Invalid master endpoint: \(token)", "master-endpoints", "host:port"],
                          file: file, line: line)
    }

    func testSingleEndpoint() throws {
        let plan = try translate(fluidConfigJSON(options: ["master-endpoints": "10.0.0.9:8995"]))
        XCTAssertEqual(plan.masterEndpoints, [FluidMasterEndpoint(host: "10.0.0.9", port: 8995)])
        XCTAssertEqual(tomlSection(plan.tomlText, "[[client.master_addrs]]"), ["hostname = \"10.0.0.9\"", "port = 8995"])
    }

    func testThreeEndpointsKeepOrderAndMasterUsesTheFirst() throws {
        let plan = try translate(fluidConfigJSON(options: ["master-endpoints": "c:3,a:1,b:2"]))
        XCTAssertEqual(plan.masterEndpoints.map(\.description), ["c:3", "a:1", "b:2"])
        XCTAssertEqual(tomlSection(plan.tomlText, "[master]").prefix(2), ["hostname = \"c\"", "rpc_port = 3"])
        XCTAssertEqual(tomlSection(plan.tomlText, "[[client.master_addrs]]"),
                       ["hostname = \"c\"", "port = 3", "hostname = \"a\"", "port = 1", "hostname = \"b\"", "port = 2"])
    }

    func testSemicolonsSpacesAndBlankTokensAreAccepted() throws {
        XCTAssertEqual(try endpoints(" m0:8995; m1:8995  m2:8995,,\tm3:8995 ;").map(\.description),
                       ["m0:8995", "m1:8995", "m2:8995", "m3:8995"])
    }

    func testDuplicatesArePreserved() throws {
        XCTAssertEqual(try endpoints("m:1,m:1").count, 2)
    }

    func testJSONListOfEndpoints() throws {
        let json = #"{"mounts":[{"mountPoint":"curvine:///d","options":{"master-endpoints":["a:1","b:2, c:3"]}}],"targetPath":"/t/x"}"#
        XCTAssertEqual(try translate(json).masterEndpoints.map(\.description), ["a:1", "b:2", "c:3"])
    }

    func testLeadingZeroPortIsNormalised() throws {
        XCTAssertEqual(try endpoints("m:08995"), [FluidMasterEndpoint(host: "m", port: 8995)])
        XCTAssertTrue(try translate(fluidConfigJSON(options: ["master-endpoints": "m:08995"])).tomlText
            .contains("rpc_port = 8995\n"))
    }

    func testIPv6KeepsItsBrackets() throws {
        XCTAssertEqual(try endpoints("[::1]:8995"), [FluidMasterEndpoint(host: "[::1]", port: 8995)])
    }

    func testMalformedEndpoints() {
        assertBadEndpoint("master", token: "master", reason: "no :port")
        assertBadEndpoint("m0:8995,:8995", token: ":8995", reason: "empty host")
        assertBadEndpoint("m:", token: "m:", reason: "empty port")
        assertBadEndpoint("m:abc", token: "m:abc", reason: "port abc is not a number")
        assertBadEndpoint("m:+80", token: "m:+80", reason: "port +80 is not a number")
        assertBadEndpoint("http://m:8995", token: "http://m:8995", reason: "not a plain host name; drop any scheme or path")
    }

    func testPortOutOfRange() {
        assertBadEndpoint("m:0", token: "m:0", reason: "port 0 out of range 1-65535")
        assertBadEndpoint("m:65536", token: "m:65536", reason: "port 65536 out of range 1-65535")
        assertBadEndpoint("m:99999999999999999999999", token: "m:99999999999999999999999",
                          reason: "port 99999999999999999999999 out of range 1-65535")
    }

    func testEmptyAndMissingEndpoints() {
        assertConfigError(fluidConfigJSON(options: ["master-endpoints": " , ;"]),
                          .masterEndpointsEmpty(source: .option("master-endpoints")), mentions: ["empty"])
        assertConfigError(fluidConfigJSON(options: [:]), .masterEndpointsMissing,
                          mentions: ["master endpoints not found", "master-endpoints", "CURVINE_MASTER_ENDPOINTS"])
        assertConfigError(fluidConfigJSON(options: ["master-endpoints": ""]), .masterEndpointsMissing)
    }

    func testEnvironmentErrorsNameTheVariable() {
        assertConfigError(fluidConfigJSON(options: [:]), env: testEnvironment.merging(["CURVINE_MASTER_ENDPOINTS": "m:99999"]) { $1 },
                          .invalidMasterEndpoint(token: "m:99999", reason: "port 99999 out of range 1-65535",
                                                 source: .environment("CURVINE_MASTER_ENDPOINTS")),
                          mentions: ["env CURVINE_MASTER_ENDPOINTS"])
    }
}
