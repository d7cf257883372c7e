// Helpers shared by the CurvineFluid tests: config builders and a fake operating system.

import Foundation
import XCTest
@testable import CurvineFluid

/// A stable daemon path so argv assertions do not depend on the test runner's location.
let testBinary = "/usr/local/bin/curvine-fuse"
let testEnvironment = [FluidEnv.fuseBinary: testBinary]
let testTarget = "/runtime-mnt/thin/default/curvine-dataset/thin-fuse"

/// A config.json as Fluid writes it, with string options only.
func fluidConfigJSON(mountPoint: String? = "curvine:///data",
                     options: [String: String]? = ["master-endpoints": "10.0.0.9:8995"],
                     targetPath: String? = testTarget,
                     accessModes: [String]? = ["ReadWriteMany"]) -> String {
    var mount: [String: Any] = ["name": "curvine"]
    if let mountPoint = mountPoint { mount["mountPoint"] = mountPoint }
    if let options = options { mount["options"] = options }
    var root: [String: Any] = ["mounts": [mount]]
    if let targetPath = targetPath { root["targetPath"] = targetPath }
    if let accessModes = accessModes { root["accessModes"] = accessModes }
    let data = try! JSONSerialization.data(withJSONObject: root, options: [.sortedKeys])
    return String(decoding: data, as: UTF8.self)
}

func translate(_ json: String?, env: [String: String] = testEnvironment,
               path: String = FluidDefaults.configPath) throws -> FluidPlan {
    try FluidTranslator.translate(configJSON: json.map { Data($0.utf8) }, configPath: path, environment: env)
}

/// Asserts that translation fails with `expected` and that its one-line message holds `fragments`.
func assertConfigError(_ json: String?, env: [String: String] = testEnvironment,
                       _ expected: FluidConfigError, mentions fragments: [String] = [],
                       file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertThrowsError(try translate(json, env: env), file: file, line: line) { error in
        guard let error = error as? FluidConfigError else {
            return XCTFail("not a FluidConfigError: \(error)", file: file, line: line)
        }
        XCTAssertEqual(error, expected, file: file, line: line)
        assertOneLine(error.description, mentions: fragments, file: file, line: line)
    }
}

/// One line naming the problem (the fragments) and a fix (a `;` then advice).
func assertOneLine(_ message: String, mentions fragments: [String],
                   file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertFalse(message.contains("\n"), "message spans lines: \(message)", file: file, line: line)
    XCTAssertTrue(message.contains("; "), "message names no fix: \(message)", file: file, line: line)
    for fragment in fragments {
        XCTAssertTrue(message.contains(fragment), "\"\(message)\" lacks \"\(fragment)\"", file: file, line: line)
    }
}

/// The TOML section `[name]` (or `[[name]]`, all of them) as lines, for focused assertions.
func tomlSection(_ toml: String, _ header: String) -> [String] {
    var lines: [String] = []
    var inside = false
    for line in toml.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
        if line.hasPrefix("[") { inside = (line == header); continue }
        if inside && !line.isEmpty { lines.append(line) }
    }
    return lines
}

/// A scratch directory removed at the end of the test.
func makeScratchDirectory(_ testCase: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("curvine-fluid-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    testCase.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// Records every system call of the entrypoint instead of performing it.
final class FakeFluidSystem: FluidSystem {
    var events: [String] = []
    var stdout = ""
    var stderr = ""
    var files: [String: String] = [:]
    var directories: Set<String> = ["/", "/runtime-mnt/thin/default/curvine-dataset"]
    /// mountinfo lines per call; the last one repeats.
    var mountInfos: [String] = [""]
    var deadMount = false
    var forceUnmountResult: Int32 = 0
    var executable = true
    var parentAppearsAfterSleeps: Int?
    var sleeps = 0
    var execResult: Int32 = ENOENT
    var execCall: (path: String, arguments: [String], environment: [String: String])?

    func createDirectories(_ path: String) throws { events.append("mkdir -p \(path)"); directories.insert(path) }
    func writeFile(_ path: String, contents: String) throws { events.append("write \(path)"); files[path] = contents }
    func makeDirectory(_ path: String) -> Int32 {
        events.append("mkdir \(path)")
        return directories.insert(path).inserted ? 0 : EEXIST
    }
    func mountInfo() -> String? {
        let text = mountInfos.count > 1 ? mountInfos.removeFirst() : mountInfos[0]
        return text
    }
    func isDeadMount(_ path: String) -> Bool { deadMount }
    func unmount(_ path: String, detach: Bool) -> Int32 {
        events.append(detach ? "umount -l \(path)" : "umount -f \(path)")
        return detach ? 0 : forceUnmountResult
    }
    func isDirectory(_ path: String) -> Bool {
        if let after = parentAppearsAfterSleeps, sleeps >= after { directories.insert(path) }
        return directories.contains(path)
    }
    func isExecutableFile(_ path: String) -> Bool { executable }
    func selfExecutable() -> String? { "/usr/local/bin/curvine-fuse" }
    func sleep(seconds: UInt32) { sleeps += 1; events.append("sleep \(seconds)") }
    func exec(_ path: String, arguments: [String], environment: [String: String]) -> Int32 {
        events.append("exec \(path)")
        execCall = (path, arguments, environment)
        return execResult
    }
    func writeStandardOutput(_ text: String) { stdout += text }
    func writeStandardError(_ text: String) { stderr += text }
}
