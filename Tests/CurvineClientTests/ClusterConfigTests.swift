// The cluster TOML: upstream's keys and defaults, unknown keys warned, wrong types
// named with key and file.
import CurvineClient
import XCTest

final class ClusterConfigTests: XCTestCase {
    func testUpstreamShapedConfig() throws {
        let c = try ClusterConfig.parse(text: """
        format_master = false
        cluster_id = "curvine"
        [master]
        hostname = "m0"
        rpc_port = 8995
        web_port = 8080
        [client]
        block_size = "64MB"
        read_chunk_size = "256KB"
        [[client.master_addrs]]
        hostname = "m0"
        port = 8995
        [[client.master_addrs]]
        hostname = "m1"
        port = 8995
        [fuse]
        io_threads = 48
        worker_threads = 96
        mnt_path = "/mnt/x"
        fs_path = "/data"
        entry_timeout_ms = 300000
        meta_cache_timeout = "2m"
        fuse_opts = ["allow_other", "ro"]
        """, source: "t.toml")
        XCTAssertEqual(c.client.masterAddrs, [HostPort(host: "m0", port: 8995), HostPort(host: "m1", port: 8995)])
        XCTAssertEqual(c.client.blockSize, 64 << 20)
        XCTAssertEqual(c.client.readChunkSize, 256 << 10)
        XCTAssertEqual(c.fuse.ioThreads, 48)
        XCTAssertEqual(c.fuse.workerThreads, 96)
        XCTAssertEqual(c.fuse.mntPath, "/mnt/x")
        XCTAssertEqual(c.fuse.fsPath, "/data")
        XCTAssertEqual(c.fuse.entryTimeoutMs, 300_000)
        XCTAssertEqual(c.fuse.metaCacheTimeoutMs, 120_000)
        XCTAssertEqual(c.fuse.fuseOpts, ["allow_other", "ro"])
        XCTAssertTrue(c.warnings.isEmpty, "\(c.warnings)")
    }

    func testDefaultsMatchUpstream() throws {
        let c = try ClusterConfig.parse(text: "", source: "empty.toml")
        XCTAssertEqual(c.client.masterAddrs, [HostPort(host: "localhost", port: 8995)])
        XCTAssertEqual(c.fuse.mntPath, "/curvine-fuse")
        XCTAssertEqual(c.fuse.fsPath, "/")
        // Upstream's 32 from 16 CPUs up; 2 × CPUs (at least 4) below (perf/README.md, "Sweeps").
        XCTAssertEqual(c.fuse.ioThreads, min(32, max(4, 2 * ProcessInfo.processInfo.activeProcessorCount)))
        XCTAssertEqual(c.fuse.webPort, 9003)
        XCTAssertEqual(c.fuse.entryTimeoutMs, 1000)
        XCTAssertEqual(c.fuse.attrTimeoutMs, 1000)
        XCTAssertEqual(c.fuse.negativeTimeoutMs, 0)
        XCTAssertEqual(c.fuse.maxBackground, 256)
        XCTAssertEqual(c.fuse.congestionThreshold, 192)
        XCTAssertEqual(c.fuse.listLimit, 1000)
        XCTAssertTrue(c.fuse.checkPermission)
        XCTAssertEqual(c.client.blockSize, 128 << 20)
    }

    func testUnknownKeysWarnWithFileAndKey() throws {
        let c = try ClusterConfig.parse(text: "[fuse]\nio_thread = 3\n[client]\nfoo = 1\n[mystery]\nx = 1\n", source: "w.toml")
        XCTAssertTrue(c.warnings.contains { $0.contains("w.toml") && $0.contains("fuse.io_thread") }, "\(c.warnings)")
        XCTAssertTrue(c.warnings.contains { $0.contains("client.foo") })
        XCTAssertTrue(c.warnings.contains { $0.contains("mystery") })
    }

    func testWrongTypesAreErrorsNamingKeyAndFile() {
        do {
            _ = try ClusterConfig.parse(text: "[fuse]\nio_threads = \"many\"\ndirect_io = 3\n[client]\nblock_size = true\n", source: "bad.toml")
            XCTFail("expected an error")
        } catch let e as ConfigError {
            XCTAssertEqual(e.problems.count, 3, "\(e.problems)")
            XCTAssertTrue(e.problems.allSatisfy { $0.hasPrefix("bad.toml") })
            XCTAssertTrue(e.problems.contains { $0.contains("fuse.io_threads") && $0.contains("integer") })
            XCTAssertTrue(e.problems.contains { $0.contains("fuse.direct_io") && $0.contains("boolean") })
            XCTAssertTrue(e.problems.contains { $0.contains("client.block_size") })
        } catch { XCTFail("\(error)") }
    }

    func testBadTomlAndMissingFile() {
        XCTAssertThrowsError(try ClusterConfig.parse(text: "[fuse\n", source: "x.toml")) { e in
            XCTAssertTrue("\(e)".contains("x.toml: line"), "\(e)")
        }
        XCTAssertThrowsError(try ClusterConfig.load(path: "/nonexistent/c.toml")) { e in
            XCTAssertTrue("\(e)".contains("does not exist"), "\(e)")
        }
        XCTAssertThrowsError(try ClusterConfig.parse(text: "[[client.master_addrs]]\nhostname = \"a\"\nport = 70000\n", source: "p.toml")) { e in
            XCTAssertTrue("\(e)".contains("1..65535"), "\(e)")
        }
    }

    func testSizesAndDurations() {
        XCTAssertEqual(parseByteSize("128KB"), 131072)
        XCTAssertEqual(parseByteSize("1g"), 1 << 30)
        XCTAssertEqual(parseByteSize("4096"), 4096)
        XCTAssertNil(parseByteSize("lots"))
        XCTAssertNil(parseByteSize("-1MB"))
        XCTAssertEqual(parseDurationMs("60s"), 60_000)
        XCTAssertEqual(parseDurationMs("1h"), 3_600_000)
        XCTAssertEqual(parseDurationMs("250ms"), 250)
        XCTAssertNil(parseDurationMs("soon"))
    }

    func testHostPortParsing() throws {
        XCTAssertEqual(try HostPort.parse(" 10.0.0.9:8995 "), HostPort(host: "10.0.0.9", port: 8995))
        XCTAssertThrowsError(try HostPort.parse("nohost"))
        XCTAssertThrowsError(try HostPort.parse(":8995"))
        XCTAssertThrowsError(try HostPort.parse("h:0"))
        XCTAssertThrowsError(try HostPort.parse("h:99999"))
    }
}
