// /metrics and /healthz of a real mount. The harness passes --web-port 0, so the
// daemon picks a free port and logs it:
//     web server listening on 0.0.0.0:<port> (/metrics, /healthz)
import Foundation
import XCTest
import CurvineTestHarness
#if canImport(Glibc)
import Glibc
#endif

/// One HTTP exchange: status code, headers (lower-cased names), body.
struct HTTPResponse {
    var status: Int
    var headers: [String: String]
    var body: String
}

/// A raw HTTP/1.1 GET on 127.0.0.1 (no client library; the server closes the connection).
func httpGet(port: Int, path: String, method: String = "GET") throws -> HTTPResponse {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw NSError(domain: "http", code: 1) }
    defer { close(fd) }
    var tv = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = UInt16(port).bigEndian
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard rc == 0 else { throw NSError(domain: "http", code: 2, userInfo: [NSLocalizedDescriptionKey: "connect to \(port) failed: errno \(errno)"]) }
    let req = Array("\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nAccept: */*\r\n\r\n".utf8)
    _ = req.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    var data = [UInt8]()
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        data.append(contentsOf: buf[0..<n])
    }
    let text = String(decoding: data, as: UTF8.self)
    guard let sep = text.range(of: "\r\n\r\n") else {
        throw NSError(domain: "http", code: 3, userInfo: [NSLocalizedDescriptionKey: "no header end in \(text.prefix(200))"])
    }
    let head = text[..<sep.lowerBound].components(separatedBy: "\r\n")
    let status = Int(head[0].split(separator: " ").dropFirst().first ?? "") ?? 0
    var headers: [String: String] = [:]
    for l in head.dropFirst() {
        if let c = l.firstIndex(of: ":") {
            headers[l[..<c].lowercased()] = l[l.index(after: c)...].trimmingCharacters(in: .whitespaces)
        }
    }
    return HTTPResponse(status: status, headers: headers, body: String(text[sep.upperBound...]))
}

/// Sample lines of a Prometheus text exposition: "name{labels}" -> value.
func parseSamples(_ text: String) -> [String: Double] {
    var out: [String: Double] = [:]
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        guard let sp = line.lastIndex(of: " "), let v = Double(line[line.index(after: sp)...]) else { continue }
        out[String(line[..<sp])] = v
    }
    return out
}

final class MetricsTests: MountTestCase {
    /// The port from the daemon's log line (waits for it: the server starts right after the mount).
    func webPort(_ m: MountProcess, file: StaticString = #filePath, line: UInt = #line) throws -> Int {
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            for l in m.child.log.split(separator: "\n") {
                if let r = l.range(of: "web server listening on 0.0.0.0:") {
                    let digits = l[r.upperBound...].prefix { $0.isNumber }
                    if let p = Int(digits), p > 0 { return p }
                }
            }
            usleep(50_000)
        }
        XCTFail("no 'web server listening on' line in the log:\n\(m.child.log)", file: file, line: line)
        throw XCTSkip("no web port")
    }

    func metrics(_ port: Int) throws -> [String: Double] {
        let r = try httpGet(port: port, path: "/metrics")
        XCTAssertEqual(r.status, 200)
        return parseSamples(r.body)
    }

    func testHealthzAndMetricsAfterFileOperations() throws {
        _ = try startCluster()
        let a = try mount("a")
        // Kernel passthrough would serve b's reads without FUSE requests: keep it off here.
        let b = try mount("b", extraArgs: ["--passthrough", "off"])
        let pa = try webPort(a), pb = try webPort(b)
        XCTAssertNotEqual(pa, pb)

        let h = try httpGet(port: pa, path: "/healthz")
        XCTAssertEqual(h.status, 200)
        XCTAssertEqual(h.body, "ok")

        // Write through a, read through b (b's page cache is cold, so every byte is a FUSE read).
        let size = 3_000_001
        run("head -c \(size) /dev/urandom > \(tmp)/f && cp \(tmp)/f \(a.mnt)/f && mkdir \(a.mnt)/d")
        run("cmp \(tmp)/f \(b.mnt)/f && ls \(b.mnt)/d")
        let missing = sh("ls \(b.mnt)/no-such-file")
        XCTAssertNotEqual(missing.status, 0)

        let ma = try metrics(pa)
        XCTAssertGreaterThan(ma["curvine_fuse_requests_total{op=\"write\"}"] ?? 0, 0)
        XCTAssertGreaterThan(ma["curvine_fuse_requests_total{op=\"create\"}"] ?? 0, 0)
        XCTAssertGreaterThan(ma["curvine_fuse_requests_total{op=\"mkdir\"}"] ?? 0, 0)
        XCTAssertGreaterThanOrEqual(ma["curvine_fuse_io_bytes_total{io_type=\"write\"}"] ?? 0, Double(size))

        let mb = try metrics(pb)
        let lookups = mb["curvine_fuse_requests_total{op=\"lookup\"}"] ?? 0
        XCTAssertGreaterThan(lookups, 0)
        XCTAssertGreaterThan(mb["curvine_fuse_requests_total{op=\"read\"}"] ?? 0, 0)
        let readBytes = mb["curvine_fuse_io_bytes_total{io_type=\"read\"}"] ?? 0
        XCTAssertGreaterThanOrEqual(readBytes, Double(size))
        // ENOENT (2) from the lookup of the missing name.
        XCTAssertGreaterThanOrEqual(mb["curvine_fuse_errors_total{op=\"lookup\",errno=\"2\"}"] ?? 0, 1,
                                    mb.keys.filter { $0.contains("errors") }.sorted().joined(separator: "\n"))
        // Every read byte is attributed to a source: prefetch buffer, demand read or local file.
        let sources = (mb["curvine_fuse_prefetch_hit_bytes_total"] ?? 0) + (mb["curvine_fuse_demand_read_bytes_total"] ?? 0)
            + (mb["curvine_fuse_short_circuit_read_bytes_total"] ?? 0)
        XCTAssertEqual(sources, readBytes)
        // Latency histogram: one observation per request.
        XCTAssertEqual(mb["curvine_fuse_request_duration_us_count{op=\"lookup\"}"], lookups)
        XCTAssertEqual(mb["curvine_fuse_request_duration_us_bucket{op=\"lookup\",le=\"+Inf\"}"], lookups)
        XCTAssertNotNil(mb["curvine_fuse_node_cache_total{operation=\"lookup\",status=\"miss\"}"])
        XCTAssertGreaterThan(mb["curvine_fuse_node_cache_total{operation=\"lookup\",status=\"miss\"}"] ?? 0, 0)
        XCTAssertNotNil(mb["curvine_fuse_inode_count"])
        // Only the scrape connection's own requests could be in flight: none on the mount.
        XCTAssertEqual(mb["curvine_fuse_requests_inflight"], 0)

        // Counters only go up across scrapes.
        run("cat \(b.mnt)/f > /dev/null; ls \(b.mnt)/also-missing 2>/dev/null; true")
        let mb2 = try metrics(pb)
        XCTAssertGreaterThanOrEqual(mb2["curvine_fuse_requests_total{op=\"lookup\"}"] ?? 0, lookups + 1)
        XCTAssertGreaterThanOrEqual(mb2["curvine_fuse_errors_total{op=\"lookup\",errno=\"2\"}"] ?? 0, 2)

        let nf = try httpGet(port: pa, path: "/nope")
        XCTAssertEqual(nf.status, 404)
        let post = try httpGet(port: pa, path: "/metrics", method: "POST")
        XCTAssertEqual(post.status, 404)
    }

    /// The exposition is valid Prometheus text format 0.0.4: typed families, well-formed
    /// sample lines, cumulative histogram buckets ending in +Inf == _count.
    func testExpositionFormat() throws {
        _ = try startCluster()
        let m = try mount("mnt")
        let port = try webPort(m)
        run("echo hi > \(m.mnt)/x && cat \(m.mnt)/x > /dev/null && ls \(m.mnt)/missing 2>/dev/null; stat \(m.mnt)/x > /dev/null")
        let r = try httpGet(port: port, path: "/metrics")
        XCTAssertEqual(r.status, 200)
        XCTAssertTrue(r.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") ?? false, "\(r.headers)")
        XCTAssertEqual(r.headers["connection"], "close")
        XCTAssertEqual(Int(r.headers["content-length"] ?? ""), r.body.utf8.count)

        let name = "[a-zA-Z_:][a-zA-Z0-9_:]*"
        let label = "[a-zA-Z_][a-zA-Z0-9_]*=\"(?:[^\"\\\\\\n]|\\\\.)*\""
        let sampleRe = try NSRegularExpression(pattern: "^(\(name))(\\{\(label)(,\(label))*\\})? (-?[0-9.]+(e[+-]?[0-9]+)?|[+-]Inf|NaN)$")
        var types: [String: String] = [:]
        var samples = 0
        for line in r.body.split(separator: "\n").map(String.init) {
            if line.hasPrefix("# TYPE ") {
                let f = line.split(separator: " ")
                XCTAssertEqual(f.count, 4, line)
                XCTAssertNil(types[String(f[2])], "family typed twice: \(line)")
                XCTAssertTrue(["counter", "gauge", "histogram"].contains(String(f[3])), line)
                types[String(f[2])] = String(f[3])
                continue
            }
            if line.hasPrefix("# HELP ") { continue }
            let ns = line as NSString
            guard let match = sampleRe.firstMatch(in: line, range: NSRange(location: 0, length: ns.length)) else {
                XCTFail("not a sample line: \(line)")
                continue
            }
            samples += 1
            var family = ns.substring(with: match.range(at: 1))
            for suffix in ["_bucket", "_sum", "_count"] where types[family] == nil && family.hasSuffix(suffix) {
                family = String(family.dropLast(suffix.count))
            }
            XCTAssertNotNil(types[family], "sample before/without # TYPE: \(line)")
            if family.hasPrefix("curvine_fuse_requests_total") || family.hasPrefix("curvine_fuse_request_duration_us") {
                XCTAssertTrue(line.contains("{op=\""), line)
            }
        }
        XCTAssertGreaterThan(samples, 20)
        for f in ["curvine_fuse_requests_total", "curvine_fuse_errors_total", "curvine_fuse_io_bytes_total",
                  "curvine_fuse_node_cache_total", "curvine_fuse_prefetch_hit_bytes_total"] {
            XCTAssertEqual(types[f], "counter", f)
        }
        XCTAssertEqual(types["curvine_fuse_request_duration_us"], "histogram")
        XCTAssertEqual(types["curvine_fuse_requests_inflight"], "gauge")
        XCTAssertEqual(types["curvine_fuse_inode_count"], "gauge")

        // Histograms: buckets cumulative (non-decreasing in le), +Inf equals _count.
        let s = parseSamples(r.body)
        let ops = Set(s.keys.filter { $0.hasPrefix("curvine_fuse_request_duration_us_count{") })
        XCTAssertTrue(ops.contains("curvine_fuse_request_duration_us_count{op=\"lookup\"}"), "\(ops)")
        for key in ops {
            let op = String(key.dropFirst("curvine_fuse_request_duration_us_count{".count).dropLast())
            var buckets: [(Double, Double)] = []
            for (k, v) in s where k.hasPrefix("curvine_fuse_request_duration_us_bucket{\(op),le=\"") {
                let le = k.dropFirst("curvine_fuse_request_duration_us_bucket{\(op),le=\"".count).dropLast(2)
                buckets.append((le == "+Inf" ? .infinity : Double(le)!, v))
            }
            buckets.sort { $0.0 < $1.0 }
            XCTAssertEqual(buckets.count, 19, op)  // 18 bounds + +Inf
            for i in 1..<buckets.count { XCTAssertGreaterThanOrEqual(buckets[i].1, buckets[i - 1].1, op) }
            XCTAssertEqual(buckets.last?.1, s[key], op)
            XCTAssertGreaterThanOrEqual(s["curvine_fuse_request_duration_us_sum{\(op)}"] ?? -1, 0, op)
        }
        // errno label values are numbers.
        for k in s.keys where k.hasPrefix("curvine_fuse_errors_total{") {
            XCTAssertNotNil(k.range(of: "errno=\"[0-9]+\"", options: .regularExpression), k)
        }
    }

    func testMetricsDisabledKeepsEndpoints() throws {
        _ = try startCluster()
        let m = try mount("mnt", extraArgs: ["--metrics-enabled", "false"])
        let port = try webPort(m)
        run("echo hi > \(m.mnt)/x && cat \(m.mnt)/x > /dev/null")
        XCTAssertEqual(try httpGet(port: port, path: "/healthz").body, "ok")
        let s = try metrics(port)
        XCTAssertTrue(s.keys.filter { $0.hasPrefix("curvine_fuse_requests_total") || $0.hasPrefix("curvine_fuse_request_duration") }.isEmpty,
                      s.keys.sorted().joined(separator: "\n"))
        XCTAssertNil(s["curvine_fuse_io_bytes_total{io_type=\"read\"}"])
        XCTAssertNotNil(s["curvine_fuse_inode_count"])
    }

    /// A taken port is a warning naming the port and the flag; the mount still works.
    func testPortInUseWarnsAndMountRuns() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = INADDR_ANY
        XCTAssertEqual(withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }, 0)
        XCTAssertEqual(listen(fd, 1), 0)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        let taken = Int(UInt16(bigEndian: addr.sin_port))

        _ = try startCluster()
        // The last --web-port wins over the harness's --web-port 0.
        let m = try mount("mnt", extraArgs: ["--web-port", String(taken)])
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline && !m.child.log.contains("web server:") { usleep(50_000) }
        let log = m.child.log
        XCTAssertTrue(log.contains("cannot listen on 0.0.0.0:\(taken)"), log)
        XCTAssertTrue(log.contains("--web-port"), log)
        XCTAssertFalse(log.contains("web server listening on"), log)
        run("echo still-works > \(m.mnt)/f && test \"$(cat \(m.mnt)/f)\" = still-works")
        XCTAssertTrue(isMounted(m.mnt))
    }
}
