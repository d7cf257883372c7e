// swift-tools-version:6.0
// curvine-fuse: a FUSE client for the Curvine distributed cache, in Swift over libfuse 3.14.
import PackageDescription

// Language mode 5 everywhere: the daemon's concurrency is plain pthreads guarded by
// locks (libfuse workers are not Swift executors), which strict Sendable checking cannot
// express without @unchecked on every type. Nothing here is @MainActor, so C callbacks
// never trip Swift 6's runtime isolation check (see CONTRIBUTING notes in README).
let v5: [SwiftSetting] = [.swiftLanguageMode(.v5)]

let package = Package(
    name: "curvine-fuse",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "curvine-fuse", targets: ["curvine-fuse"]),
        .executable(name: "curvine-cluster", targets: ["curvine-cluster"]),
        .executable(name: "cv", targets: ["cv"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/LebJe/TOMLKit.git", from: "0.6.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // System libraries, found through pkg-config (apt: libfuse3-dev, libnuma-dev).
        .systemLibrary(name: "CFuse3", pkgConfig: "fuse3", providers: [.apt(["libfuse3-dev"])]),
        .systemLibrary(name: "CNuma", pkgConfig: "numa", providers: [.apt(["libnuma-dev"])]),
        // C shim: libfuse session, our multithreaded loop, splice, NUMA pinning.
        .target(name: "CShim", dependencies: ["CFuse3", "CNuma"],
                cSettings: [.unsafeFlags(["-O2", "-Wall", "-Wno-unused-parameter"])]),
        // Generated protobuf code (scripts/generate-protos.sh); never edited by hand.
        .target(name: "CurvineProto",
                dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
                swiftSettings: v5),
        // The Curvine wire protocol: frames, errors, master/worker client, cluster config.
        .target(name: "CurvineClient",
                dependencies: ["CurvineProto",
                               .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                               .product(name: "TOMLKit", package: "TOMLKit")],
                swiftSettings: v5),
        // Embedded master + worker: a test peer and demo, not a Curvine replacement.
        .target(name: "CurvineServer",
                dependencies: ["CurvineClient", "CurvineProto",
                               .product(name: "SwiftProtobuf", package: "swift-protobuf")],
                swiftSettings: v5),
        // The file-system core: inodes, handles, caches, prefetch, write buffers. No FUSE types.
        .target(name: "CurvineFSCore", dependencies: ["CurvineClient"], swiftSettings: v5),
        // Fluid ThinRuntime translation (config.json + env -> TOML + argv).
        .target(name: "CurvineFluid", swiftSettings: v5),
        // FUSE adapter, mount options and the daemon's run loop.
        .target(name: "CurvineFuseSwift",
                dependencies: ["CShim", "CurvineFSCore", "CurvineClient", "CurvineFluid",
                               .product(name: "ArgumentParser", package: "swift-argument-parser"),
                               .product(name: "Prometheus", package: "swift-prometheus")],
                swiftSettings: v5),
        .executableTarget(name: "curvine-fuse",
                          dependencies: ["CurvineFuseSwift", "CurvineFluid",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          swiftSettings: v5),
        .executableTarget(name: "curvine-cluster",
                          dependencies: ["CurvineServer", "CurvineClient",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          swiftSettings: v5),
        .executableTarget(name: "cv",
                          dependencies: ["CurvineClient",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          swiftSettings: v5),
        .testTarget(name: "CurvineClientTests",
                    dependencies: ["CurvineClient", "CurvineServer", "CurvineProto",
                                   .product(name: "SwiftProtobuf", package: "swift-protobuf")],
                    swiftSettings: v5),
        // Test support: counts mallocs (and Swift retains) for the read path's no-allocation test.
        .target(name: "CMallocCounter", path: "Tests/Support/CMallocCounter"),
        .testTarget(name: "CurvineFSCoreTests",
                    dependencies: ["CurvineFSCore", "CurvineClient", "CurvineServer", "CMallocCounter",
                                   "CurvineTestHarness"], swiftSettings: v5),
        .testTarget(name: "CurvineFluidTests", dependencies: ["CurvineFluid"], swiftSettings: v5),
        // Shared test support: the mount harness (real binaries, teardown that never leaves a
        // mount) and test data; a library because test targets cannot import each other.
        .target(name: "CurvineTestHarness", path: "Tests/CurvineTestHarness", swiftSettings: v5),
        .testTarget(name: "MountTests", dependencies: ["CurvineClient", "CurvineServer", "CurvineTestHarness"],
                    swiftSettings: v5),
        // Faults, failover, shutdown, differential and resource tests (short mode in CI).
        .testTarget(name: "ReliabilityTests",
                    dependencies: ["CurvineClient", "CurvineServer", "CurvineFSCore", "CurvineTestHarness"],
                    swiftSettings: v5),
    ]
)
