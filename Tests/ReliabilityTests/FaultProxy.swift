// A TCP proxy in front of a master, for faults a server cannot play itself:
//   .pass       forward both ways
//   .blackhole  keep every connection open but move no byte either way (a half-open
//               connection: the peer vanished without FIN/RST; only timeouts notice)
// resetAll() aborts every connection with RST (SO_LINGER 0).
import Foundation
import CurvineTestHarness
#if canImport(Glibc)
import Glibc
#endif
import CurvineClient

final class FaultProxy: @unchecked Sendable {
    enum Mode { case pass, blackhole }

    let upstream: HostPort
    private(set) var port: UInt16 = 0
    private let lock = Lock()
    private var listenFd: Int32 = -1
    private var running = true
    private var currentMode = Mode.pass
    private var pairs: [(Int32, Int32)] = []
    private var threads = 0

    var address: HostPort { HostPort(host: "127.0.0.1", port: port) }
    var mode: Mode {
        get { lock.withLock { currentMode } }
        set { lock.withLock { currentMode = newValue } }
    }

    /// Listens on an ephemeral port; `upstream` nil makes a listener that accepts and
    /// never answers (a blackhole master).
    init(upstream: HostPort?) throws {
        self.upstream = upstream ?? HostPort(host: "127.0.0.1", port: 1)
        if upstream == nil { currentMode = .blackhole }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        a.sin_port = 0
        let rc = withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0, listen(fd, 64) == 0 else { close(fd); throw CurvineError.transport("proxy: cannot listen") }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        port = UInt16(bigEndian: a.sin_port)
        listenFd = fd
        spawn { [self] in acceptLoop() }
    }

    private func spawn(_ body: @escaping () -> Void) {
        lock.withLock { threads += 1 }
        let t = Thread { [self] in
            body()
            lock.withLock { threads -= 1 }
        }
        t.start()
    }

    private var isRunning: Bool { lock.withLock { running } }

    private func acceptLoop() {
        while isRunning {
            var pfd = pollfd(fd: listenFd, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 50) <= 0 { continue }
            let c = accept(listenFd, nil, nil)
            if c < 0 { continue }
            let hole = upstream.port == 1
            var u: Int32 = -1
            if !hole {
                u = rawConnect(upstream.port)
                if u < 0 { close(c); continue }
            }
            let ok: Bool = lock.withLock {
                guard running else { return false }
                pairs.append((c, u))
                return true
            }
            if !ok { close(c); if u >= 0 { close(u) }; continue }
            spawn { [self] in pump(c, u) }
        }
    }

    private func pump(_ a: Int32, _ b: Int32) {
        var buf = [UInt8](repeating: 0, count: 64 << 10)
        defer {
            lock.withLock { pairs.removeAll { $0.0 == a } }
            close(a)
            if b >= 0 { close(b) }
        }
        while isRunning {
            if b < 0 || mode == .blackhole {
                // Half-open: nothing moves; notice only a close by the client.
                var pfd = pollfd(fd: a, events: 0, revents: 0)
                _ = poll(&pfd, 1, 50)
                if pfd.revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0 { return }
                continue
            }
            var fds = [pollfd(fd: a, events: Int16(POLLIN), revents: 0), pollfd(fd: b, events: Int16(POLLIN), revents: 0)]
            if poll(&fds, 2, 50) <= 0 { continue }
            for (src, dst) in [(0, 1), (1, 0)] where fds[src].revents != 0 {
                let n = buf.withUnsafeMutableBytes { read(fds[src].fd, $0.baseAddress, $0.count) }
                if n <= 0 { return }
                var off = 0
                while off < n {
                    let w = buf.withUnsafeBytes { send(fds[dst].fd, $0.baseAddress! + off, n - off, Int32(MSG_NOSIGNAL)) }
                    if w <= 0 { return }
                    off += w
                }
            }
        }
    }

    /// Aborts every proxied connection with RST.
    func resetAll() {
        lock.withLock {
            for (a, b) in pairs {
                var l = linger(l_onoff: 1, l_linger: 0)
                setsockopt(a, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
                shutdown(a, Int32(SHUT_RDWR))
                if b >= 0 { shutdown(b, Int32(SHUT_RDWR)) }
            }
        }
    }

    var connectionCount: Int { lock.withLock { pairs.count } }

    func stop() {
        lock.withLock { running = false }
        let deadline = monotonicNs() + 3_000_000_000
        while lock.withLock({ threads }) > 0 && monotonicNs() < deadline { usleep(10_000) }
        if listenFd >= 0 { close(listenFd); listenFd = -1 }
    }
}

/// A blocking loopback connect; -1 on failure.
func rawConnect(_ port: UInt16) -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    var a = sockaddr_in()
    a.sin_family = sa_family_t(AF_INET)
    a.sin_addr.s_addr = inet_addr("127.0.0.1")
    a.sin_port = port.bigEndian
    let rc = withUnsafePointer(to: &a) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    if rc != 0 { close(fd); return -1 }
    return fd
}
