// Runs deploy/fluid/validate.py: the sample manifests must match Fluid's CRD schemas.
// Needs python3 with pyyaml and jsonschema (CI installs them: pip install pyyaml jsonschema).

import Foundation
import XCTest

final class FluidDeployValidationTests: XCTestCase {
    /// The package root, from this file's real location (Tests/CurvineFluidTests/<file>).
    static let packageRoot = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let script = packageRoot.appendingPathComponent("deploy/fluid/validate.py").path

    /// FLUID_CRDS_DIR, else `../shared/fluid/crds` next to the package root.
    static var crdDirectory: String {
        if let path = ProcessInfo.processInfo.environment["FLUID_CRDS_DIR"], !path.isEmpty { return path }
        return packageRoot.appendingPathComponent("../shared/fluid/crds").standardizedFileURL.path
    }

    /// Runs python3 (from PATH) and returns its exit status and combined output.
    private func python(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do {
            try process.run()
        } catch {
            XCTFail("python3 is required to validate deploy/fluid: \(error)")
            throw error
        }
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }

    /// False (after recording a failure that says how to fix it) when the validator cannot run.
    private func validatorIsReady() throws -> Bool {
        let probe = try python(["-c", "import yaml, jsonschema"])
        guard probe.status == 0 else {
            XCTFail("python3 lacks pyyaml/jsonschema; run: pip install pyyaml jsonschema\n\(probe.output)")
            return false
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: Self.crdDirectory, isDirectory: &isDirectory), isDirectory.boolValue else {
            XCTFail("Fluid CRD directory \(Self.crdDirectory) not found; set FLUID_CRDS_DIR to the directory of "
                + "Fluid's data.fluid.io_*.yaml CRDs")
            return false
        }
        return true
    }

    func testSampleManifestsMatchTheFluidCRDs() throws {
        guard try validatorIsReady() else { return }
        let result = try python([Self.script, Self.crdDirectory])
        XCTAssertEqual(result.status, 0, result.output)
        for object in ["Dataset/curvine-dataset", "ThinRuntime/curvine-dataset",
                       "ThinRuntimeProfile/curvine-profile", "Pod/curvine-demo"] {
            XCTAssertTrue(result.output.contains("ok      "), result.output)
            XCTAssertTrue(result.output.contains(object), "\(object) not validated:\n\(result.output)")
        }
    }

    func testValidatorRejectsBrokenManifests() throws {
        guard try validatorIsReady() else { return }
        let directory = try makeScratchDirectory(self)
        try """
            apiVersion: data.fluid.io/v1alpha1
            kind: ThinRuntimeProfile
            metadata:
              name: curvine-profile
            spec:
              fileSystemType: fuse
              fuse:
                imagee: typo
                networkMode: Weird
            ---
            apiVersion: data.fluid.io/v1alpha1
            kind: Dataset
            metadata:
              name: ds
            spec:
              mounts:
                - mountPoint: s3://bucket/data
                  options:
                    io-threads: 32
            ---
            apiVersion: data.fluid.io/v1alpha1
            kind: ThinRuntime
            metadata:
              name: not-the-dataset
            spec:
              profileName: curvine-profile
            ---
            apiVersion: v1
            kind: Pod
            metadata:
              name: app
            spec:
              containers:
                - name: app
                  volumeMounts: [{name: missing, mountPath: /data}]
            """.write(to: directory.appendingPathComponent("broken.yaml"), atomically: true, encoding: .utf8)
        let result = try python([Self.script, Self.crdDirectory, "--manifests", directory.path])
        XCTAssertEqual(result.status, 1, result.output)
        for expected in ["'imagee' was unexpected", "'Weird' is not one of",
                         "io-threads: 32 is not of type 'string'", "must be curvine:///<path>",
                         "master-endpoints: required", "a ThinRuntime must be named like its Dataset",
                         "containers/0/image: required", "'missing' is not a volume of this Pod"] {
            XCTAssertTrue(result.output.contains(expected), "missing \"\(expected)\" in:\n\(result.output)")
        }
    }
}
