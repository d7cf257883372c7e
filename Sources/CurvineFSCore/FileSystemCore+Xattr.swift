// Extended attributes, stored in the master's x_attr map through SetAttr
// (PROTOCOL.md §6.2): only the `user.` namespace, on regular files and directories.
// `security.*`, `system.*` (POSIX ACLs) and `trusted.*` do not exist here: reads say
// ENODATA (so `ls`, `cp -a` and the kernel's security.capability probe on every write
// get a fast, cacheable "none" without a round trip), writes say EOPNOTSUPP.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CurvineClient

extension FileSystemCore {
    private enum XattrNamespace { case user, unsupported, unknown }

    private func namespace(_ name: String) -> XattrNamespace {
        if name.hasPrefix("user.") { return .user }
        if name.hasPrefix("security.") || name.hasPrefix("system.") || name.hasPrefix("trusted.") { return .unsupported }
        return .unknown
    }

    private func checkXattrName(_ name: String) throws {
        if name.isEmpty || name.utf8.count > 255 { throw FSError(ERANGE, "xattr name length must be 1..255 bytes") }
        if name == "user." { throw FSError(EINVAL, "empty user xattr name") }
    }

    public func getxattr(ino: UInt64, name: String) throws -> [UInt8] {
        try checkXattrName(name)
        switch namespace(name) {
        case .unsupported: throw FSError(ENODATA, "\(name): no such attribute")
        case .unknown: throw FSError(EOPNOTSUPP, "\(name): unsupported xattr namespace")
        case .user: break
        }
        let (s, _) = try cachedStatus(ino)
        guard s.kind == .file || s.kind == .directory, let v = s.xattrs[name] else {
            throw FSError(ENODATA, "\(s.path): no attribute \(name)")
        }
        return v
    }

    public func listxattr(ino: UInt64) throws -> [UInt8] {
        let (s, _) = try cachedStatus(ino)
        var out: [UInt8] = []
        for k in s.xattrs.keys.sorted() where !k.hasPrefix("\0") {
            out.append(contentsOf: k.utf8)
            out.append(0)
        }
        return out
    }

    private func prepareXattrChange(_ ino: UInt64, _ name: String, _ ctx: RequestContext) throws -> (String, FileStatus) {
        try checkWritable()
        try checkXattrName(name)
        switch namespace(name) {
        case .unsupported: throw FSError(EOPNOTSUPP, "\(name): security/system/trusted xattrs are not supported")
        case .unknown: throw FSError(EOPNOTSUPP, "\(name): unsupported xattr namespace")
        case .user: break
        }
        let (p, s, _) = try statusOf(ino, fresh: true)
        guard s.kind == .file || s.kind == .directory else {
            throw FSError(EPERM, "\(p): user xattrs only on regular files and directories")
        }
        if config.checkPermission && s.kind == .directory && s.mode & UInt32(S_ISVTX) != 0
            && ctx.uid != 0 && ctx.uid != env.ids.uid(s.owner) {
            throw FSError(EPERM, "\(p): sticky directory owned by someone else")
        }
        try require(accessW, s, ctx, "change xattrs of \(p)")
        return (p, s)
    }

    public func setxattr(ino: UInt64, name: String, value: UnsafeRawBufferPointer, flags: Int32, ctx: RequestContext) throws {
        if value.count > 65536 { throw FSError(E2BIG, "xattr value larger than 64 KiB") }
        if flags & ~(XATTR_CREATE_FLAG | XATTR_REPLACE_FLAG) != 0 { throw FSError(EINVAL, "setxattr: unknown flags \(flags)") }
        let (p, s) = try prepareXattrChange(ino, name, ctx)
        let present = s.xattrs[name] != nil
        if flags & XATTR_CREATE_FLAG != 0 && present { throw FSError(EEXIST, "\(p): attribute \(name) exists") }
        if flags & XATTR_REPLACE_FLAG != 0 && !present { throw FSError(ENODATA, "\(p): no attribute \(name)") }
        let ns = try fsTry { try client.setAttr(p, SetAttrOptions(addXattrs: [name: Array(value)])) }
        table.lock.withLock { table.setStatusLocked(ino, ns, expiresNs: expiry(statusTTL)) }
    }

    public func removexattr(ino: UInt64, name: String, ctx: RequestContext) throws {
        let (p, s) = try prepareXattrChange(ino, name, ctx)
        guard s.xattrs[name] != nil else { throw FSError(ENODATA, "\(p): no attribute \(name)") }
        let ns = try fsTry { try client.setAttr(p, SetAttrOptions(removeXattrs: [name])) }
        table.lock.withLock { table.setStatusLocked(ino, ns, expiresNs: expiry(statusTTL)) }
    }
}
