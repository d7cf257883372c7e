// Users and groups: Curvine stores owner and group as names; the kernel speaks uid/gid.
//
// name -> id: a numeric string is that number; otherwise getpwnam_r/getgrnam_r; a name
// this host does not know becomes CoreConfig.defaultUid/defaultGid.
// id -> name: getpwuid_r/getgrgid_r, or the number as a string when the id has no name
// here (so it round-trips through the master unchanged).
// Answers are cached for the life of the mount (the passwd database of a node rarely
// changes while a dataset is mounted; a restart picks changes up).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CurvineClient

final class IdentityMap: @unchecked Sendable {
    private let lock = Lock()
    private var uidByName: [String: UInt32] = [:]
    private var gidByName: [String: UInt32] = [:]
    private var nameByUid: [UInt32: String] = [:]
    private var nameByGid: [UInt32: String] = [:]
    private var groupsByPid: [UInt32: (groups: [UInt32], expiresNs: UInt64)] = [:]
    let defaultUid: UInt32
    let defaultGid: UInt32

    init(defaultUid: UInt32, defaultGid: UInt32) {
        self.defaultUid = defaultUid
        self.defaultGid = defaultGid
    }

    func uid(_ name: String) -> UInt32 {
        if let u = lock.withLock({ uidByName[name] }) { return u }
        let u: UInt32
        if let n = UInt32(name) { u = n } else if name.isEmpty { u = defaultUid } else { u = lookupUser(name) ?? defaultUid }
        lock.withLock { uidByName[name] = u }
        return u
    }

    func gid(_ name: String) -> UInt32 {
        if let g = lock.withLock({ gidByName[name] }) { return g }
        let g: UInt32
        if let n = UInt32(name) { g = n } else if name.isEmpty { g = defaultGid } else { g = lookupGroup(name) ?? defaultGid }
        lock.withLock { gidByName[name] = g }
        return g
    }

    func userName(_ uid: UInt32) -> String {
        if let n = lock.withLock({ nameByUid[uid] }) { return n }
        let n = lookupUserName(uid) ?? String(uid)
        lock.withLock { nameByUid[uid] = n; if uidByName[n] == nil { uidByName[n] = uid } }
        return n
    }

    func groupName(_ gid: UInt32) -> String {
        if let n = lock.withLock({ nameByGid[gid] }) { return n }
        let n = lookupGroupName(gid) ?? String(gid)
        lock.withLock { nameByGid[gid] = n; if gidByName[n] == nil { gidByName[n] = gid } }
        return n
    }

    /// Whether the caller is in group `gid` (primary or supplementary).
    func inGroup(_ ctx: RequestContext, _ gid: UInt32) -> Bool {
        if ctx.gid == gid { return true }
        return supplementaryGroups(ctx).contains(gid)
    }

    /// The caller's supplementary groups: from the context, else /proc/<pid>/status
    /// (cached for one second per pid: a burst of checks from one process reads it once).
    func supplementaryGroups(_ ctx: RequestContext) -> [UInt32] {
        if let g = ctx.groups { return g }
        guard ctx.pid != 0 else { return [] }
        let now = monotonicNs()
        if let c = lock.withLock({ groupsByPid[ctx.pid] }), c.expiresNs > now { return c.groups }
        let g = Self.readProcGroups(pid: ctx.pid)
        lock.withLock {
            if groupsByPid.count > 4096 { groupsByPid.removeAll(keepingCapacity: true) }
            groupsByPid[ctx.pid] = (g, now + 1_000_000_000)
        }
        return g
    }

    static func readProcGroups(pid: UInt32) -> [UInt32] {
        let fd = open("/proc/\(pid)/status", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var data = [UInt8](repeating: 0, count: 8192)
        var total = 0
        while total < data.count {
            let n = data.withUnsafeMutableBytes { read(fd, $0.baseAddress! + total, $0.count - total) }
            if n < 0 { if errno == EINTR { continue }; break }
            if n == 0 { break }
            total += n
        }
        let text = String(decoding: data[0..<total], as: UTF8.self)
        for line in text.split(separator: "\n") where line.hasPrefix("Groups:") {
            return line.dropFirst(7).split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { UInt32($0) }
        }
        return []
    }

    // MARK: libc lookups (reentrant variants; the buffer grows on ERANGE)

    private func withBuffer<T>(_ body: (UnsafeMutablePointer<CChar>, Int) -> (Int32, T?)) -> T? {
        var size = 1024
        while size <= 1 << 20 {
            let buf = UnsafeMutablePointer<CChar>.allocate(capacity: size)
            defer { buf.deallocate() }
            let (rc, v) = body(buf, size)
            if rc == ERANGE { size *= 4; continue }
            return v
        }
        return nil
    }

    private func lookupUser(_ name: String) -> UInt32? {
        withBuffer { buf, size in
            var pw = passwd()
            var res: UnsafeMutablePointer<passwd>?
            let rc = getpwnam_r(name, &pw, buf, size, &res)
            return (rc, res == nil ? nil : pw.pw_uid)
        }
    }

    private func lookupGroup(_ name: String) -> UInt32? {
        withBuffer { buf, size in
            var gr = group()
            var res: UnsafeMutablePointer<group>?
            let rc = getgrnam_r(name, &gr, buf, size, &res)
            return (rc, res == nil ? nil : gr.gr_gid)
        }
    }

    private func lookupUserName(_ uid: UInt32) -> String? {
        withBuffer { buf, size in
            var pw = passwd()
            var res: UnsafeMutablePointer<passwd>?
            let rc = getpwuid_r(uid, &pw, buf, size, &res)
            return (rc, res == nil ? nil : String(cString: pw.pw_name))
        }
    }

    private func lookupGroupName(_ gid: UInt32) -> String? {
        withBuffer { buf, size in
            var gr = group()
            var res: UnsafeMutablePointer<group>?
            let rc = getgrgid_r(gid, &gr, buf, size, &res)
            return (rc, res == nil ? nil : String(cString: gr.gr_name))
        }
    }
}

/// Access bits as in access(2).
let accessR: Int32 = 4
let accessW: Int32 = 2
let accessX: Int32 = 1

/// POSIX permission check of `mask` (R/W/X bits) against a file's mode and owner.
/// Root passes R and W always, and X when any X bit is set or the file is a directory.
/// `uid` and `gid` are evaluated only when needed (each is an IdentityMap lookup: a
/// lock and a string hash; root and the owner never need the group).
func permits(_ mask: Int32, mode: UInt32, uid: @autoclosure () -> UInt32, gid: @autoclosure () -> UInt32,
             isDirectory: Bool, ctx: RequestContext, ids: IdentityMap) -> Bool {
    let m = UInt32(mask & 7)
    if m == 0 { return true }
    if ctx.uid == 0 {
        if m & UInt32(accessX) == 0 { return true }
        return isDirectory || mode & 0o111 != 0
    }
    let bits: UInt32
    if ctx.uid == uid() {
        bits = (mode >> 6) & 7
    } else if (mode >> 3) & 7 != mode & 7 && ids.inGroup(ctx, gid()) {
        // (Group membership only matters when group and other bits differ: this skips
        // reading /proc/<pid>/status for the common 0644/0755 modes.)
        bits = (mode >> 3) & 7
    } else {
        bits = mode & 7
    }
    return bits & m == m
}
