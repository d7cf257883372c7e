// A TCP listener on 127.0.0.1 with one thread per connection (PROTOCOL.md §3.1: a
// connection's frames are read and answered in order, so a thread per connection is
// the simplest faithful server). Used by MasterServer and WorkerServer.
//
// stop() closes the listener, shuts down every open connection (waking its thread,
// which then closes the socket) and waits for the threads to finish, so a stopped
// server leaves no thread or socket behind and its port can be bound again at once
// (SO_REUSEADDR).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CurvineClient

final class TCPServer: @unchecked Sendable {
    let name: String
    let host: String
    private(set) var port: UInt16 = 0
    private var listenFd: Int32 = -1
    private let state = ConditionLock()
    private var running = false
    private var acceptThreadAlive = false
    private var connections: [Int: TCPSocket] = [:]
    private var nextConnection = 0
    private let handler: (TCPSocket) -> Void

    /// Queue of pending connections (tests open many at once).
    private static let backlog: Int32 = 128
    /// How often the accept loop re-checks for stop() (it also wakes on shutdown).
    private static let acceptPollMs: Int32 = 100
    /// How long stop() waits for connection threads to notice the shutdown.
    private static let stopWaitNs: UInt64 = 5_000_000_000

    /// Binds and listens; `port` 0 picks an ephemeral port (see `port` afterwards).
    init(name: String, host: String = "127.0.0.1", port: UInt16, handler: @escaping (TCPSocket) -> Void) throws {
        self.name = name
        self.host = host
        self.handler = handler
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ServerError.io("\(name): socket failed: \(FileUtil.errnoText())") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else {
            Glibc.close(fd)
            throw ServerError.io("\(name): '\(host)' is not an IPv4 address")
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 {
            let e = errno
            Glibc.close(fd)
            throw ServerError.io("\(name): cannot listen on \(host):\(port): \(FileUtil.errnoText(e))")
        }
        guard listen(fd, Self.backlog) == 0 else {
            let e = errno
            Glibc.close(fd)
            throw ServerError.io("\(name): listen on \(host):\(port) failed: \(FileUtil.errnoText(e))")
        }
        var bound = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        self.port = UInt16(bigEndian: bound.sin_port)
        self.listenFd = fd
    }

    deinit { stop() }

    var address: HostPort { HostPort(host: host, port: port) }

    func start() {
        state.withLock {
            guard !running, listenFd >= 0 else { return }
            running = true
            acceptThreadAlive = true
        }
        startThread(name: "\(name)-accept") { [self] in acceptLoop() }
    }

    private func acceptLoop() {
        defer {
            state.withLock { acceptThreadAlive = false; state.broadcast() }
        }
        while state.withLock({ running }) {
            var pfd = pollfd(fd: listenFd, events: Int16(POLLIN), revents: 0)
            let r = poll(&pfd, 1, Self.acceptPollMs)
            if r <= 0 { continue }
            var peer = sockaddr_in()
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let cfd = withUnsafeMutablePointer(to: &peer) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { accept(listenFd, $0, &len) }
            }
            if cfd < 0 { continue }
            _ = fcntl(cfd, F_SETFD, FD_CLOEXEC)  // accept4 is not in the Glibc module
            var ip = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
            inet_ntop(AF_INET, &peer.sin_addr, &ip, socklen_t(ip.count))
            let sock = TCPSocket.adopt(fd: cfd, peer: HostPort(host: String(cString: ip), port: UInt16(bigEndian: peer.sin_port)))
            let id: Int? = state.withLock {
                guard running else { return nil }
                nextConnection += 1
                connections[nextConnection] = sock
                return nextConnection
            }
            guard let cid = id else { sock.close(); continue }
            startThread(name: "\(name)-conn") { [self] in
                handler(sock)
                sock.close()
                state.withLock { connections[cid] = nil; state.broadcast() }
            }
        }
    }

    /// Number of open connections (tests).
    var connectionCount: Int { state.withLock { connections.count } }

    /// Shuts down every open connection without stopping the listener (fault tests).
    func dropConnections() {
        state.withLock { for s in connections.values { s.shutdownBoth() } }
    }

    func stop() {
        let fd: Int32 = state.withLock {
            running = false
            defer { listenFd = -1 }
            return listenFd
        }
        if fd >= 0 {
            _ = shutdown(fd, Int32(SHUT_RDWR))
            Glibc.close(fd)
        }
        let deadline = monotonicNs() + Self.stopWaitNs
        state.withLock {
            while acceptThreadAlive && state.wait(untilNs: deadline) {}
            for s in connections.values { s.shutdownBoth() }
            while !connections.isEmpty && monotonicNs() < deadline { _ = state.wait(untilNs: deadline) }
        }
    }
}
