// Blocking TCP sockets with deadlines, and frame I/O over them.
//
// Why blocking sockets and threads rather than an event loop: every caller of the
// client is itself a plain thread (a libfuse worker or one of our io threads) that
// needs the answer before it can reply to the kernel, and worker streams are strict
// stop-and-wait (PROTOCOL.md §3.2). Deadlines come from poll(2), so no call blocks
// past its timeout.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public struct HostPort: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: UInt16
    public init(host: String, port: UInt16) { self.host = host; self.port = port }

    /// Parses "host:port" (split at the last colon). Errors name the token and the fix.
    public static func parse(_ s: String) throws -> HostPort {
        let t = s.trimmingWhitespace()
        guard let i = t.lastIndex(of: ":") else {
            throw CurvineError.local(EINVAL, "master address '\(s)' has no port: write host:port, e.g. 127.0.0.1:8995")
        }
        let host = String(t[..<i]).trimmingWhitespace()
        let portStr = String(t[t.index(after: i)...]).trimmingWhitespace()
        guard !host.isEmpty else { throw CurvineError.local(EINVAL, "master address '\(s)' has no host: write host:port") }
        guard let p = Int(portStr), p >= 1, p <= 65535 else {
            throw CurvineError.local(EINVAL, "master address '\(s)' has port '\(portStr)': use a number from 1 to 65535")
        }
        return HostPort(host: host, port: UInt16(p))
    }

    public var description: String { "\(host):\(port)" }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\n" || f == "\r" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\n" || l == "\r" { s.removeLast() }
        return String(s)
    }
}

/// A connected TCP socket. Owned by one user at a time for reads; writes are
/// serialised by the caller (RpcConnection holds a write lock).
public final class TCPSocket: @unchecked Sendable {
    public private(set) var fd: Int32
    public let peer: HostPort

    init(fd: Int32, peer: HostPort) {
        self.fd = fd
        self.peer = peer
    }

    deinit { close() }

    public func close() {
        if fd >= 0 {
            _ = Glibc.shutdown(fd, Int32(SHUT_RDWR))
            _ = Glibc.close(fd)
            fd = -1
        }
    }

    /// Shuts the socket down without closing the fd, waking a blocked reader.
    public func shutdownBoth() {
        if fd >= 0 { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
    }

    /// Connects with a deadline; TCP_NODELAY and SO_KEEPALIVE on, as upstream (§1).
    public static func connect(_ hp: HostPort, timeoutMs: Int) throws -> TCPSocket {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        let host = hp.host.hasPrefix("[") && hp.host.hasSuffix("]") ? String(hp.host.dropFirst().dropLast()) : hp.host
        let rc = getaddrinfo(host, String(hp.port), &hints, &res)
        guard rc == 0, let first = res else {
            throw CurvineError.transport("cannot resolve \(hp): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(res) }
        var lastErr: Int32 = ECONNREFUSED
        var ai: UnsafeMutablePointer<addrinfo>? = first
        while let a = ai {
            let fd = socket(a.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            if fd < 0 { lastErr = errno; ai = a.pointee.ai_next; continue }
            let flags = fcntl(fd, F_GETFL)
            _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
            var r = Glibc.connect(fd, a.pointee.ai_addr, a.pointee.ai_addrlen)
            if r < 0 && errno == EINPROGRESS {
                var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                let pr = pollRetrying(&pfd, timeoutMs: timeoutMs)
                if pr == 0 {
                    Glibc.close(fd)
                    throw CurvineError.timeout("connect to \(hp) timed out after \(timeoutMs) ms")
                }
                var soErr: Int32 = 0
                var len = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soErr, &len)
                r = soErr == 0 ? 0 : -1
                if soErr != 0 { errno = soErr }
            }
            if r < 0 {
                lastErr = errno
                Glibc.close(fd)
                ai = a.pointee.ai_next
                continue
            }
            _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK)
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, socklen_t(MemoryLayout<Int32>.size))
            return TCPSocket(fd: fd, peer: hp)
        }
        throw CurvineError.transport("cannot connect to \(hp): \(String(cString: strerror(lastErr)))")
    }

    /// Wraps an accepted fd (server side).
    public static func adopt(fd: Int32, peer: HostPort) -> TCPSocket {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return TCPSocket(fd: fd, peer: peer)
    }

    /// Reads exactly `count` bytes into `p` before `deadlineNs` (0 = no deadline).
    /// Returns false on EOF before the first byte when `eofAllowed`.
    public func readExact(_ p: UnsafeMutableRawPointer, _ count: Int, deadlineNs: UInt64, eofAllowed: Bool = false) throws -> Bool {
        var got = 0
        // With a deadline, bytes already queued are taken without a poll (MSG_DONTWAIT);
        // poll(2) runs only when the socket is empty. Most reads of a frame (its header
        // and data after its prefix, a chunk after the previous one) need no poll.
        let flags = deadlineNs != 0 ? Int32(MSG_DONTWAIT) : 0
        while got < count {
            let n = Glibc.recv(fd, p + got, count - got, flags)
            if n > 0 { got += n; continue }
            if n == 0 {
                if got == 0 && eofAllowed { return false }
                throw CurvineError.transport("connection to \(peer) closed mid-frame (\(got) of \(count) bytes)")
            }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK {
                guard deadlineNs != 0 else { continue }
                let now = monotonicNs()
                if now >= deadlineNs { throw CurvineError.timeout("no reply from \(peer) before the deadline") }
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let ms = Int((deadlineNs - now + 999_999) / 1_000_000)
                let pr = pollRetrying(&pfd, timeoutMs: ms)
                if pr == 0 { throw CurvineError.timeout("no reply from \(peer) before the deadline") }
                continue
            }
            throw CurvineError.transport("read from \(peer) failed: \(String(cString: strerror(e)))")
        }
        return true
    }

    /// Writes all iovecs (gathered write), retrying partial writes. With a deadline
    /// (`deadlineNs` != 0) a peer that stops reading (hung, half-open, full window)
    /// fails the write with a timeout instead of blocking forever. MSG_NOSIGNAL: a
    /// closed peer is an EPIPE error, never a SIGPIPE that kills the process.
    public func writeAll(_ parts: [UnsafeRawBufferPointer], deadlineNs: UInt64 = 0) throws {
        var iov = parts.filter { $0.count > 0 }.map { iovec(iov_base: UnsafeMutableRawPointer(mutating: $0.baseAddress), iov_len: $0.count) }
        var idx = 0
        let flags = Int32(MSG_NOSIGNAL) | (deadlineNs != 0 ? Int32(MSG_DONTWAIT) : 0)
        while idx < iov.count {
            let n = iov.withUnsafeMutableBufferPointer { b -> Int in
                var msg = msghdr()
                msg.msg_iov = b.baseAddress! + idx
                msg.msg_iovlen = b.count - idx
                return Glibc.sendmsg(fd, &msg, flags)
            }
            if n < 0 {
                let e = errno
                if e == EINTR { continue }
                if e == EAGAIN || e == EWOULDBLOCK {
                    guard deadlineNs != 0 else { continue }
                    let now = monotonicNs()
                    if now >= deadlineNs { throw CurvineError.timeout("\(peer) did not take our request before the deadline (peer not reading)") }
                    var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    let ms = Int((deadlineNs - now + 999_999) / 1_000_000)
                    if pollRetrying(&pfd, timeoutMs: ms) == 0 {
                        throw CurvineError.timeout("\(peer) did not take our request before the deadline (peer not reading)")
                    }
                    continue
                }
                throw CurvineError.transport("write to \(peer) failed: \(String(cString: strerror(e)))")
            }
            var left = n
            while idx < iov.count && left >= iov[idx].iov_len { left -= iov[idx].iov_len; idx += 1 }
            if idx < iov.count && left > 0 {
                iov[idx].iov_base = iov[idx].iov_base + left
                iov[idx].iov_len -= left
            }
        }
    }
}

func pollRetrying(_ pfd: inout pollfd, timeoutMs: Int) -> Int32 {
    while true {
        let r = poll(&pfd, 1, Int32(clamping: timeoutMs))
        if r < 0 && errno == EINTR { continue }
        return r
    }
}

/// Frame I/O over a socket.
public extension TCPSocket {
    /// Reads one frame; skips heartbeats. Returns nil on a clean EOF at a frame boundary.
    /// `dataInto`: when given and the frame's data fits, data is read straight into it
    /// (the returned frame's `data` is then empty and `dataLength` says how much landed).
    func readFrame(deadlineNs: UInt64) throws -> Frame? {
        while true {
            var prefix = (UInt64(0), UInt64(0), UInt32(0), UInt16(0)) // 22 bytes
            let ok = try withUnsafeMutableBytes(of: &prefix) { raw -> Bool in
                try readExact(raw.baseAddress!, framePrefixSize, deadlineNs: deadlineNs, eofAllowed: true)
            }
            if !ok { return nil }
            let p = try withUnsafeBytes(of: &prefix) { raw in
                try parseFramePrefix(UnsafeRawBufferPointer(rebasing: raw[0..<framePrefixSize]))
            }
            var header = [UInt8](repeating: 0, count: p.headerLength)
            var data = [UInt8](repeating: 0, count: p.dataLength)
            if p.headerLength > 0 {
                _ = try header.withUnsafeMutableBytes { try readExact($0.baseAddress!, p.headerLength, deadlineNs: deadlineNs) }
            }
            if p.dataLength > 0 {
                _ = try data.withUnsafeMutableBytes { try readExact($0.baseAddress!, p.dataLength, deadlineNs: deadlineNs) }
            }
            let f = Frame(code: p.code, status: p.status, reqId: p.reqId, seqId: p.seqId, header: header, data: data)
            if f.isHeartbeat { continue }
            return f
        }
    }

    /// The prefix of a frame from this peer. A malformed one (impossible lengths: a
    /// corrupted or desynchronised stream) is a transport error: the connection is
    /// unusable and is dropped; the request may be retried on a fresh one.
    func parseFramePrefix(_ p: UnsafeRawBufferPointer) throws -> FramePrefix {
        do {
            return try FrameCodec.parsePrefix(p)
        } catch let e as FrameError {
            throw CurvineError.transport("malformed frame from \(peer): \(e)")
        }
    }

    func writeFrame(_ f: Frame, deadlineNs: UInt64 = 0) throws {
        try writeFrame(code: f.code, status: f.status, reqId: f.reqId, seqId: f.seqId, header: f.header, data: f.data,
                       deadlineNs: deadlineNs)
    }

    func writeFrame(code: Int8, status: UInt8, reqId: Int64, seqId: Int32, header: [UInt8],
                    data: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
                    deadlineNs: UInt64 = 0) throws {
        var prefix = (UInt64(0), UInt64(0), UInt32(0), UInt16(0))
        try withUnsafeMutableBytes(of: &prefix) { raw in
            FrameCodec.writePrefix(into: raw, code: code, status: status, reqId: reqId, seqId: seqId,
                                   headerLength: header.count, dataLength: data.count)
            try header.withUnsafeBytes { h in
                try writeAll([UnsafeRawBufferPointer(rebasing: raw[0..<framePrefixSize]), h, data], deadlineNs: deadlineNs)
            }
        }
    }

    func writeFrame(code: Int8, status: UInt8, reqId: Int64, seqId: Int32, header: [UInt8], data: [UInt8],
                    deadlineNs: UInt64 = 0) throws {
        try data.withUnsafeBytes { d in
            try writeFrame(code: code, status: status, reqId: reqId, seqId: seqId, header: header, data: d,
                           deadlineNs: deadlineNs)
        }
    }
}
