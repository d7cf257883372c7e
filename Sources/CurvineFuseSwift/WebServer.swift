// The web port (upstream's web_server.rs, default 9003): GET /metrics (Prometheus text
// format 0.0.4) and GET /healthz ("ok" while every session runs and its mount is in
// place, else 503 with the reason). Anything else is 404.
//
// Deliberately tiny: one thread polls the listening socket and serves connections one
// at a time (a scrape is a few KB built in well under a millisecond), HTTP/1.1 with
// `Connection: close`, 2 s socket timeouts so a stuck client cannot hold the port. No
// swift-nio: the daemon's threads are plain pthreads.
import CurvineClient
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What /healthz reports: sessions running and mount points mounted.
final class MountHealth: @unchecked Sendable {
    private let lock = Lock()
    private var running = 0
    private var ended: [String] = []
    let mountPoints: [String]

    init(mountPoints: [String]) { self.mountPoints = mountPoints }

    func sessionStarted() { lock.withLock { running += 1 } }
    func sessionEnded(_ mnt: String) { lock.withLock { running -= 1; ended.append(mnt) } }
    /// Paused for a hand-over (it is started again or handed to the next image).
    func sessionPaused() { lock.withLock { running -= 1 } }

    /// nil when healthy, else why not.
    func problem() -> String? {
        let (r, e) = lock.withLock { (running, ended) }
        if let m = e.first { return "session at \(m) has ended" }
        if r < mountPoints.count { return "sessions not running yet" }
        for m in mountPoints where !StaleMount.isMounted(m) { return "\(m) is not mounted" }
        return nil
    }
}

final class WebServer: @unchecked Sendable {
    let port: Int
    private let listenFd: Int32
    private let lock = Lock()
    private var running = true
    private let finished = DispatchSemaphore(value: 0)
    private let metrics: () -> [UInt8]
    private let health: () -> String?

    /// The log line tests (and operators) read the bound port from.
    static func listeningLine(port: Int) -> String { "web server listening on 0.0.0.0:\(port) (/metrics, /healthz)" }

    private init(fd: Int32, port: Int, metrics: @escaping () -> [UInt8], health: @escaping () -> String?) {
        listenFd = fd
        self.port = port
        self.metrics = metrics
        self.health = health
    }

    /// Binds 0.0.0.0:`port` (0: an ephemeral port) and starts serving; logs the bound port.
    /// On failure logs a warning naming the port and the flag, and returns nil: the mount
    /// runs on without /metrics and /healthz.
    static func start(port: Int, metrics: @escaping () -> [UInt8], health: @escaping () -> String?) -> WebServer? {
        func fail(_ what: String, _ e: Int32) -> WebServer? {
            Log.warn("web server: \(what) 0.0.0.0:\(port): \(String(cString: strerror(e))). /metrics and /healthz are off; "
                + "the mount runs on. Pick a free port with --web-port N or [fuse] web_port (0 = any free port).")
            return nil
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return fail("cannot create a socket for", errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(truncatingIfNeeded: port).bigEndian
        addr.sin_addr.s_addr = INADDR_ANY
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 { let e = errno; close(fd); return fail("cannot listen on", e) }
        guard listen(fd, 64) == 0 else { let e = errno; close(fd); return fail("cannot listen on", e) }
        var bound = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        let s = WebServer(fd: fd, port: Int(UInt16(bigEndian: bound.sin_port)), metrics: metrics, health: health)
        startThread(name: "cv-web") { s.serve() }
        Log.info(listeningLine(port: s.port))
        return s
    }

    /// Stops accepting, waits for the serving thread (at most one request's timeout).
    func stop() {
        let was: Bool = lock.withLock { defer { running = false }; return running }
        guard was else { return }
        _ = shutdown(listenFd, Int32(SHUT_RDWR))
        _ = finished.wait(timeout: .now() + 5)
        close(listenFd)
    }

    private func serve() {
        defer { finished.signal() }
        while lock.withLock({ running }) {
            var pfd = pollfd(fd: listenFd, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 200) <= 0 { continue }
            let c = accept(listenFd, nil, nil)
            if c < 0 { continue }
            _ = fcntl(c, F_SETFD, FD_CLOEXEC)
            handle(c)
            close(c)
        }
    }

    private func handle(_ fd: Int32) {
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        // Read the request head (the request line is all we use; bodies are not expected).
        var head = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 4096)
        while head.count < 16384 {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            head.append(contentsOf: buf[0..<n])
            if head.count >= 4, containsHeadEnd(head) { break }
        }
        guard let lineEnd = head.firstIndex(of: UInt8(ascii: "\n")) ?? (head.isEmpty ? nil : head.endIndex) else { return }
        let line = String(decoding: head[..<lineEnd], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let parts = line.split(separator: " ")
        let method = parts.first.map(String.init) ?? ""
        var path = parts.count > 1 ? String(parts[1]) : ""
        if let q = path.firstIndex(of: "?") { path = String(path[..<q]) }
        let (status, type, body) = respond(method: method, path: path)
        var out = [UInt8]()
        out.append(contentsOf: "HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8)
        if method != "HEAD" { out.append(contentsOf: body) }
        out.withUnsafeBytes { p in
            var off = 0
            while off < p.count {
                let n = send(fd, p.baseAddress! + off, p.count - off, Int32(MSG_NOSIGNAL))
                if n <= 0 { return }
                off += n
            }
        }
    }

    private func containsHeadEnd(_ b: [UInt8]) -> Bool {
        // "\r\n\r\n" or a bare "\n\n" (lenient clients).
        for i in 1..<b.count where b[i] == 10 {
            if b[i - 1] == 10 || (i >= 3 && b[i - 1] == 13 && b[i - 2] == 10) { return true }
        }
        return false
    }

    private func respond(method: String, path: String) -> (String, String, [UInt8]) {
        let text = "text/plain; charset=utf-8"
        guard method == "GET" || method == "HEAD" else {
            return ("404 Not Found", text, Array("not found: use GET /metrics or GET /healthz\n".utf8))
        }
        switch path {
        case "/metrics":
            return ("200 OK", "text/plain; version=0.0.4; charset=utf-8", metrics())
        case "/healthz":
            if let why = health() { return ("503 Service Unavailable", text, Array("unhealthy: \(why)\n".utf8)) }
            return ("200 OK", text, Array("ok".utf8))
        default:
            return ("404 Not Found", text, Array("not found: use GET /metrics or GET /healthz\n".utf8))
        }
    }
}
