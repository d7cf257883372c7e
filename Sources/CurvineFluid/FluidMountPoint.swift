// `mounts[0].mountPoint` → Curvine path, and `targetPath` → mount directory (CONTRACT §2.2, §4.1).

import Foundation

enum FluidMountPoint {
    static let scheme = "curvine"

    /// The Curvine path the mount serves (`fuse.fs_path`).
    ///
    /// `curvine:///data` → `/data`; `curvine://` and `curvine:///` → `/`; a schemeless
    /// absolute path is taken as is. Other schemes, a host in the URI and relative paths
    /// are errors, each naming the `curvine:///<path>` form.
    static func fsPath(_ mountPoint: String) throws -> String {
        let text = mountPoint.trimmingCharacters(in: .whitespaces)
        guard let schemeEnd = schemeEnd(text) else {
            guard text.hasPrefix("/") else { throw FluidConfigError.mountPointNotAbsolute(mountPoint: mountPoint) }
            return text
        }
        guard text[..<schemeEnd].lowercased() == scheme else {
            throw FluidConfigError.unsupportedScheme(mountPoint: mountPoint)
        }
        var rest = text[text.index(after: schemeEnd)...]
        if rest.hasPrefix("//") {
            rest = rest.dropFirst(2)
            let authority = rest.prefix(while: { $0 != "/" })
            guard authority.isEmpty else {
                throw FluidConfigError.mountPointHasAuthority(mountPoint: mountPoint, authority: String(authority))
            }
        }
        if rest.isEmpty { return "/" }
        guard rest.hasPrefix("/") else { throw FluidConfigError.mountPointNotAbsolute(mountPoint: mountPoint) }
        return String(rest)
    }

    /// The index of the `:` ending an RFC 3986 scheme (`ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`).
    private static func schemeEnd(_ text: String) -> String.Index? {
        guard let first = text.unicodeScalars.first, first.isASCIILetter else { return nil }
        for index in text.unicodeScalars.indices.dropFirst() {
            let scalar = text.unicodeScalars[index]
            if scalar == ":" { return index }
            guard scalar.isASCIILetter || ("0"..."9").contains(scalar) || scalar == "+" || scalar == "-" || scalar == "." else {
                return nil
            }
        }
        return nil
    }

    /// Where to mount: config `targetPath` > CURVINE_TARGET_PATH > Fluid's MOUNT_POINT.
    /// Trailing slashes are dropped so the path compares equal to /proc/self/mountinfo.
    static func targetPath(config: String?, lookup: FluidSettingsLookup) throws -> String {
        let sourced: FluidSourced<String>
        if let path = config {
            sourced = FluidSourced(value: path, source: .configField("targetPath"))
        } else if let path = lookup.env(FluidEnv.targetPath) {
            sourced = FluidSourced(value: path, source: .environment(FluidEnv.targetPath))
        } else if let path = lookup.env(FluidEnv.fluidMountPoint) {
            sourced = FluidSourced(value: path, source: .environment(FluidEnv.fluidMountPoint))
        } else {
            throw FluidConfigError.targetPathMissing
        }
        let path = sourced.value
        guard path.hasPrefix("/") else {
            throw FluidConfigError.targetPathInvalid(path: path, source: sourced.source, reason: "is not absolute")
        }
        guard !path.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            throw FluidConfigError.targetPathInvalid(path: path, source: sourced.source, reason: "contains a control character")
        }
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard trimmed != "/" else {
            throw FluidConfigError.targetPathInvalid(path: path, source: sourced.source, reason: "is the root directory")
        }
        return String(trimmed)
    }
}

private extension Unicode.Scalar {
    var isASCIILetter: Bool { ("a"..."z").contains(self) || ("A"..."Z").contains(self) }
}
