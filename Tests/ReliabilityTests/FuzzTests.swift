// Input hardening: the config reader, the frame decoder (in memory and through a real
// socket) and the embedded servers get mutated and random input; every bad input must
// end in an error, never a crash or a hang, and the servers keep serving. Inputs are
// generated from a seed (printed; CURVINE_SEED replays). Short mode in CI; CURVINE_LONG=1
// runs over 1M config inputs and 1M frames.
import Foundation
import XCTest
import CurvineTestHarness
#if canImport(Glibc)
import Glibc
#endif
import CurvineClient
import CurvineProto
import CurvineServer

/// SplitMix64: small, fast, seedable.
struct SeededRNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
}

let seedConfigs = [
    """
    format_master = false
    cluster_id = "curvine"
    [master]
    hostname = "m0"
    rpc_port = 8995
    web_port = 8080
    [journal]
    journal_addrs = [{ id = 1, hostname = "m0", port = 8996 }, { id = 2, hostname = "m1", port = 8996 }]
    [client]
    block_size = "64MB"
    read_chunk_size = "256KB"
    conn_timeout_ms = 3000
    rpc_timeout_ms = 10000
    rpc_retry_max_duration_ms = 20000
    data_timeout_ms = "10s"
    short_circuit = true
    replicas = 2
    [[client.master_addrs]]
    hostname = "m0"
    port = 8995
    [fuse]
    io_threads = 48
    worker_threads = 96
    mnt_path = "/mnt/x"
    fs_path = "/data"
    entry_timeout_ms = 300000
    meta_cache_timeout = "2m"
    fuse_opts = ["allow_other", "ro"]
    umask = 18
    read_buffer_budget = "1GB"
    passthrough = "auto"
    """,
    """
    [client]
    master_addrs = ["127.0.0.1:8995", "127.0.0.2:8995"]
    write_chunk_size = 131072
    master_conn_pool_size = 3
    [fuse]
    readonly = true
    list_limit = 1000
    max_readahead_kb = 1024
    uid = 1000
    gid = 1000
    """,
    "",
]

let configKeys = ["master_addrs", "short_circuit", "read_chunk_size", "write_chunk_size", "block_size", "replicas",
                  "hostname", "conn_timeout_ms", "rpc_timeout_ms", "rpc_retry_max_duration_ms", "data_timeout_ms",
                  "master_conn_pool_size", "debug", "io_threads", "worker_threads", "mnt_path", "fs_path", "mnt_number",
                  "tasks_per_mnt", "clone_fd", "fuse_opts", "readonly", "umask", "uid", "gid", "web_port",
                  "entry_timeout_ms", "negative_timeout_ms", "attr_timeout_ms", "max_background", "congestion_threshold",
                  "meta_cache_timeout", "node_cache_timeout", "direct_io", "write_back_cache", "max_readahead_kb",
                  "list_limit", "path_lock_stripes", "read_buffer_budget", "passthrough", "rpc_port", "journal_addrs"]

let weirdValues = ["9223372036854775807", "-9223372036854775808", "-1", "0", "1e400", "nan", "inf", "-inf",
                   "99999999999999999999", "\"\"", "\"9999999999999999d\"", "\"99999999999999999TB\"", "\"-5s\"",
                   "\"1.5GB\"", "\"💥\"", "\"\\u0000\"", "[]", "[1, \"a\"]", "{}", "{ hostname = 1 }", "true",
                   "1979-05-27T07:32:00Z", "07:32:00", "[[1]]", "\"host:\"", "\"host:99999\"", "\":8995\"",
                   "[{ hostname = \"h\", port = 70000 }]", "[{ hostname = \"h\", port = -1 }]", "\"106751991167300d\"",
                   "9999999999999", "\"18446744073709551615\"", "0x7fffffff", "0o777", "0b1", "1_000", "+1", "3.14"]

final class FuzzTests: XCTestCase {
    func mutateText(_ base: String, _ rng: inout SeededRNG) -> String {
        var lines = base.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            switch Int.random(in: 0..<7, using: &rng) {
            case 0, 1:
                // A known key (in [client] or [fuse]) with a weird value.
                let k = configKeys.randomElement(using: &rng)!
                let v = weirdValues.randomElement(using: &rng)!
                let at = Int.random(in: 0...lines.count, using: &rng)
                lines.insert("\(k) = \(v)", at: at)
            case 2:
                // Replace a line's value.
                guard let i = lines.indices.randomElement(using: &rng), let eq = lines[i].firstIndex(of: "=") else { continue }
                lines[i] = String(lines[i][..<eq]) + "= " + weirdValues.randomElement(using: &rng)!
            case 3:
                lines.insert(["[client]", "[fuse]", "[master]", "[journal]", "[[client.master_addrs]]", "client = 5",
                              "[client.x]", "[fuse]]", "[", "fuse = { a = 1 }"].randomElement(using: &rng)!,
                             at: Int.random(in: 0...lines.count, using: &rng))
            case 4:
                if !lines.isEmpty { lines.remove(at: Int.random(in: 0..<lines.count, using: &rng)) }
            default:
                // Byte noise in one line.
                guard let i = lines.indices.randomElement(using: &rng) else { continue }
                var b = Array(lines[i].utf8)
                for _ in 0..<Int.random(in: 1...3, using: &rng) {
                    let c = UInt8.random(in: 0...255, using: &rng)
                    if b.isEmpty || Bool.random(using: &rng) { b.insert(c, at: Int.random(in: 0...b.count, using: &rng)) }
                    else { b[Int.random(in: 0..<b.count, using: &rng)] = c }
                }
                lines[i] = String(decoding: b, as: UTF8.self)
            }
        }
        return lines.joined(separator: "\n")
    }

    func testConfigReaderFuzz() throws {
        let seed = RelEnv.seed()
        let n = RelEnv.long ? 1_000_000 : 50_000
        print("fuzz: config reader: seed \(seed) (a crash replays with CURVINE_SEED=\(seed))")
        fflush(stdout)
        var rng = SeededRNG(seed: seed)
        var parsed = 0, rejected = 0
        let start = monotonicNs()
        for i in 0..<n {
            let text = mutateText(seedConfigs[i % seedConfigs.count], &rng)
            if let trace = RelEnv.env["CURVINE_FUZZ_TRACE"] {
                // Debugging a crash: the input about to be parsed.
                _ = FileManager.default.createFile(atPath: trace, contents: Data(text.utf8))
            }
            do {
                let c = try ClusterConfig.parse(text: text, source: "fuzz.toml")
                parsed += 1
                // Whatever parses must be usable: options, a client (no I/O until a call).
                let o = c.clientOptions()
                if !o.masters.isEmpty { try MasterClient(addresses: o.masters, options: o.master).close() }
                XCTAssertGreaterThanOrEqual(o.master.rpcTimeoutMs, 1)
                XCTAssertGreaterThanOrEqual(o.dataTimeoutMs, 1)
            } catch is ConfigError {
                rejected += 1
            } catch {
                XCTFail("input \(i) (seed \(seed)): an error that is not a ConfigError: \(error)\n\(text)")
            }
        }
        // Sizes, durations and addresses on their own, from random strings.
        let alphabet = Array("0123456789 kKmMgGtTbBsShHdD.:-+_x[]".utf8)
        for _ in 0..<(n / 5) {
            let s = String(decoding: (0..<Int.random(in: 0...24, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }, as: UTF8.self)
            _ = parseByteSize(s)
            _ = parseDurationMs(s)
            _ = try? HostPort.parse(s)
        }
        XCTAssertGreaterThan(parsed, 0)
        XCTAssertGreaterThan(rejected, 0)
        print("fuzz: config reader: \(n) mutated TOML inputs (seed \(seed)): \(parsed) parsed, \(rejected) rejected with a ConfigError, 0 crashes; plus \(n / 5) size/duration/address strings; \(String(format: "%.1f", seconds(since: start))) s")
    }

    /// Known-bad values each get an error naming the key (the cases the fuzzer crashed on).
    func testOverflowingAndOutOfRangeValuesAreErrors() {
        for (line, key) in [("[client]\nrpc_timeout_ms = \"106751991167300d\"", "rpc_timeout_ms"),
                            ("[fuse]\nmeta_cache_timeout = 9223372036854775807", "meta_cache_timeout"),
                            ("[client]\nrpc_timeout_ms = 0", "rpc_timeout_ms"),
                            ("[client]\ndata_timeout_ms = 9223372036854775807", "data_timeout_ms"),
                            ("[client]\nconn_timeout_ms = \"400d\"", "conn_timeout_ms"),
                            ("[client]\nblock_size = 0", "block_size")] {
            do {
                _ = try ClusterConfig.parse(text: line, source: "bad.toml")
                XCTFail("accepted: \(line)")
            } catch let e as ConfigError {
                XCTAssertTrue(e.description.contains(key), "\(e) should name \(key)")
            } catch {
                XCTFail("\(error)")
            }
        }
        XCTAssertNil(parseDurationMs("9999999999999999d"))
        XCTAssertNil(parseDurationMs("9223372036854775807"))
        XCTAssertEqual(parseDurationMs("2m"), 120_000)
    }

    /// Found by testConfigReaderFuzz: TOMLKit's parser (toml++ 3.4) asserts on some
    /// malformed input and aborts the process ("[" followed by a line break; a date-time
    /// whose time part does not start with a digit). Such input is refused before parsing;
    /// valid documents with '[' on a line of their own (nested arrays, multi-line
    /// strings) still parse.
    func testInputsThatCrashedTheTomlParserAreErrors() throws {
        let bad = ["[\n", "a = 1\n[\n", "[ \n", "[[\n", "[.\n", "[[ #\n", "[=", "[\nx = 1",
                   "x = 1979-05-27 x", "x = 1979-05-27T", "x = 07:32:00", "x = [1979-05-27T07:32:00Z]",
                   "x = { a = 1979-05-27 }", "x = 1979-05-27 #c", "x = [}]", "x = [1, }", "x = [\u{2028}1]",
                   "x = [1,\u{85}]", "x = {a = [1}", "# \u{2029}\nx = 1"]
        for text in bad {
            XCTAssertThrowsError(try ClusterConfig.parse(text: text, source: "bad.toml"), text.debugDescription) { e in
                XCTAssertTrue(e is ConfigError, "\(e)")
            }
        }
        let good = ["x = [\n  [\n 1\n ]\n]\n[fuse]\ndebug = true", "x = \"\"\"\n[\n\"\"\"\n", "x = '''\n[\n'''",
                    "# [\n[client]\nreplicas = 2", "[\tfuse]\ndebug = true", "x = \"a#[\"\n[fuse]",
                    "[client]\nmaster_addrs = [{ hostname = \"h-1.x\", port = 8995 }, \"a:1\"]\nblock_size = 1_048_576",
                    "x = -1.5e-3\ny = +inf\nz = 0x1F\nw = nan\nv = 1e+2", "\"quoted.key\" = 1\na.b.c = 2",
                    "x = \"a\u{2028}b\"", "x = [[1, 2], {a = [3]}]"]
        for text in good {
            XCTAssertNoThrow(try ClusterConfig.parse(text: text, source: "good.toml"), text.debugDescription)
        }
    }

    func randomFrame(_ rng: inout SeededRNG, seeds: [[UInt8]], i: Int) -> [UInt8] {
        switch i % 4 {
        case 0:
            return (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        case 1, 2:
            var input = seeds.randomElement(using: &rng)!
            for _ in 0..<Int.random(in: 1...4, using: &rng) where !input.isEmpty {
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: input[Int.random(in: 0..<input.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                case 1: input.removeLast(Int.random(in: 0...min(5, input.count), using: &rng))
                case 2: input[Int.random(in: 0..<min(8, input.count), using: &rng)] ^= UInt8(1) << UInt8.random(in: 0...7, using: &rng)
                default: input.append(UInt8.random(in: 0...255, using: &rng))
                }
            }
            return input
        default:
            var b = [UInt8](repeating: 0, count: 22)
            for k in 0..<8 { b[k] = UInt8.random(in: 0...255, using: &rng) }
            return b
        }
    }

    func frameSeeds() -> [[UInt8]] {
        [FrameCodec.encode(Frame(code: 2, status: 0xF1, reqId: 1, seqId: -1, header: Array(repeating: 7, count: 27))),
         FrameCodec.encode(Frame(code: 81, status: 0x03, reqId: -9, seqId: 3, data: Array("hello".utf8))),
         FrameCodec.encode(Frame.heartbeat),
         FrameCodec.encode(Frame(code: 7, status: 0x11, reqId: 5, seqId: -1, data: ErrorPayload.encode(kind: .fileNotFound, message: "x")))]
    }

    func testFrameDecoderFuzzInMemoryAndThroughASocket() throws {
        let seed = RelEnv.seed()
        print("fuzz: frame decoder: seed \(seed)")
        fflush(stdout)
        let n = RelEnv.long ? 1_000_000 : 50_000
        var rng = SeededRNG(seed: seed)
        let seeds = frameSeeds()
        var decoded = 0, rejected = 0
        let start = monotonicNs()
        for i in 0..<n {
            let input = randomFrame(&rng, seeds: seeds, i: i)
            do {
                if let (f, used) = try input.withUnsafeBytes({ try FrameCodec.decode($0) }) {
                    decoded += 1
                    XCTAssertLessThanOrEqual(used, input.count)
                    _ = ErrorPayload.decode(f.data)
                    _ = try? Wire.decode(Proto_GetFileStatusResponse.self, f.header)
                }
            } catch is FrameError {
                rejected += 1
            }
        }
        // The socket path the client and servers use: readFrame over a socketpair.
        let m = RelEnv.long ? 100_000 : 5_000
        var sockOK = 0, sockErr = 0
        for i in 0..<m {
            var input = randomFrame(&rng, seeds: seeds, i: i)
            if i % 3 == 0 { input = FrameCodec.encode(Frame.heartbeat) + input }
            var sv: [Int32] = [0, 0]
            guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &sv) == 0 else { XCTFail("socketpair"); break }
            _ = input.withUnsafeBytes { write(sv[0], $0.baseAddress, $0.count) }
            close(sv[0])
            let s = TCPSocket.adopt(fd: sv[1], peer: HostPort(host: "fuzz", port: 1))
            do {
                while try s.readFrame(deadlineNs: monotonicNs() + 1_000_000_000) != nil { sockOK += 1 }
            } catch is CurvineError {
                sockErr += 1
            }
            s.close()
        }
        XCTAssertGreaterThan(decoded, 0)
        XCTAssertGreaterThan(rejected, 0)
        print("fuzz: frame decoder: \(n) inputs in memory (\(decoded) decoded, \(rejected) typed errors) and \(m) byte streams through readFrame (\(sockOK) frames, \(sockErr) errors), seed \(seed), 0 crashes, \(String(format: "%.1f", seconds(since: start))) s")
    }

    /// Garbage to the embedded master and worker over TCP: random bytes, mutated frames,
    /// and well-formed frames of every RPC code with random protobuf headers. The servers
    /// answer or close, never crash, and keep serving a real client.
    func testServersSurviveGarbageFrames() throws {
        let seed = RelEnv.seed()
        print("fuzz: servers: seed \(seed)")
        fflush(stdout)
        let conns = RelEnv.long ? 20_000 : 1_500
        var rng = SeededRNG(seed: seed)
        let dir = tempDir("gfuzz")
        defer { removeTree(dir) }
        let cluster = try EmbeddedCluster.start(dataDir: dir, syncWrites: false)
        defer { cluster.stop() }
        let client = try makeClient(clientToml([cluster.masterAddress]))
        defer { client.close() }
        try client.writeWholeFile("/ok", bytes: patternBytes(300_000, seed: 1))
        let targets = [cluster.masterAddress.port, cluster.workerAddresses[0].port]
        let codes: [Int8] = Array(1...40) + [80, 81, 82, 83, 100, -1, 127]
        let seeds = frameSeeds()
        var replies = 0
        let start = monotonicNs()
        for i in 0..<conns {
            let port = targets[i % 2]
            let fd = rawConnect(port)
            guard fd >= 0 else { XCTFail("connect \(port)"); break }
            var tv = timeval(tv_sec: 0, tv_usec: 200_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            var payload: [UInt8] = []
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                if Bool.random(using: &rng) {
                    // A well-formed frame, random header bytes: the handlers' decoders.
                    let hdr = (0..<Int.random(in: 0...80, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                    let data = (0..<Int.random(in: 0...16, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                    let status = UInt8.random(in: 0...255, using: &rng) & 0x0F | (Bool.random(using: &rng) ? 0xF0 : 0)
                    payload += FrameCodec.encode(Frame(code: codes.randomElement(using: &rng)!, status: status,
                                                       reqId: Int64.random(in: -3...Int64.max, using: &rng),
                                                       seqId: Int32.random(in: -1...3, using: &rng), header: hdr, data: data))
                } else {
                    payload += randomFrame(&rng, seeds: seeds, i: i)
                }
            }
            _ = payload.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            // EOF after the garbage: the server answers what it can and closes at once.
            shutdown(fd, Int32(SHUT_WR))
            var buf = [UInt8](repeating: 0, count: 4096)
            let r = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if r > 0 { replies += 1 }
            close(fd)
            if i % 250 == 249 {
                XCTAssertTrue(try client.exists("/ok"), "master stopped serving after \(i + 1) garbage connections (seed \(seed))")
                XCTAssertEqual(try client.readWholeFile("/ok").count, 300_000, "worker stopped serving (seed \(seed))")
            }
        }
        XCTAssertEqual(try client.readWholeFile("/ok"), patternBytes(300_000, seed: 1))
        // Every garbage connection's thread ended.
        let deadline = monotonicNs() + 5_000_000_000
        while (cluster.masters[0].connectionCount > 3 || cluster.workers[0]!.connectionCount > 16) && monotonicNs() < deadline {
            usleep(20_000)
        }
        XCTAssertLessThanOrEqual(cluster.masters[0].connectionCount, 3, "master connections left open")
        XCTAssertLessThanOrEqual(cluster.workers[0]!.connectionCount, 16, "worker connections left open")
        print("fuzz: servers: \(conns) connections of garbage to the master and a worker (seed \(seed)), \(replies) got a reply, both kept serving; \(String(format: "%.1f", seconds(since: start))) s")
    }
}
