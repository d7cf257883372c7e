// Reading Fluid's config.json (CONTRACT §2.1) into the few fields the translator uses.

import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The parts of Fluid's `Config` that matter to Curvine.
public struct FluidConfig: Equatable {
    /// `mounts[0].mountPoint`; nil when missing, null or empty.
    public var mountPoint: String?
    /// `mounts[0].readOnly` (Fluid's per-mount read-only switch).
    public var mountReadOnly: Bool
    /// `mounts[0].options` with JSON nulls dropped (Fluid already merged `sharedOptions`).
    public var options: [String: FluidOptionValue]
    /// `targetPath`; nil when missing, null or empty.
    public var targetPath: String?
    /// `accessModes`; nil when missing or null (Fluid before PR #3696 did not send it).
    public var accessModes: [String]?
}

public enum FluidConfigFile {
    /// The bytes of the config file; nil when it does not exist (the caller reports it
    /// together with the env-var help), an error when it exists but cannot be read.
    public static func read(path: String) throws -> Data? {
        var info = stat()
        if stat(path, &info) != 0 {
            let code = errno
            if code == ENOENT || code == ENOTDIR { return nil }
            throw FluidConfigError.configFileUnreadable(path: path, reason: String(cString: strerror(code)))
        }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            throw FluidConfigError.configFileUnreadable(path: path, reason: "it is a directory")
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw FluidConfigError.configFileUnreadable(path: path, reason: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count == 0 { break }
            if count < 0 {
                if errno == EINTR { continue }
                throw FluidConfigError.configFileUnreadable(path: path, reason: String(cString: strerror(errno)))
            }
            data.append(contentsOf: buffer[0..<count])
        }
        return data
    }

    /// Parses the file contents. Whitespace around the JSON is trimmed (the chart writes it
    /// indented and newline-terminated); if the whole text is not JSON but its first line
    /// is, the first line is used, as upstream does (§2.1).
    public static func decode(_ data: Data, path: String) throws -> FluidConfig {
        var text = String(decoding: data, as: UTF8.self)
        if text.hasPrefix("\u{FEFF}") { text.removeFirst() }  // a BOM from an editor is not JSON
        text = text.trimmingCharacters(in: .whitespacesAndNewlines)
        let document: FluidJSON
        do {
            document = try FluidJSONParser.parse(text)
        } catch let firstError as FluidJSONError {
            guard let newline = text.firstIndex(where: { $0 == "\n" || $0 == "\r\n" }),
                  let firstLine = try? FluidJSONParser.parse(String(text[..<newline]).trimmingCharacters(in: .whitespaces))
            else { throw FluidConfigError.invalidJSON(path: path, detail: firstError.description) }
            document = firstLine
        }
        return try FluidConfigReader(path: path).config(from: document)
    }
}

/// Turns the JSON tree into `FluidConfig`, rejecting wrong types with the field name.
struct FluidConfigReader {
    let path: String

    func config(from document: FluidJSON) throws -> FluidConfig {
        guard case .object(let root) = document else {
            throw invalid("the document", "a JSON object", document)
        }
        let mount = try onlyMount(root["mounts"])
        return FluidConfig(
            mountPoint: try optionalString(mount["mountPoint"], "mounts[0].mountPoint"),
            mountReadOnly: try optionalBool(mount["readOnly"], "mounts[0].readOnly") ?? false,
            options: try options(mount["options"]),
            targetPath: try optionalString(root["targetPath"], "targetPath"),
            accessModes: try accessModes(root["accessModes"]))
    }

    /// `mounts` must hold exactly one object (§4.1).
    private func onlyMount(_ value: FluidJSON?) throws -> [String: FluidJSON] {
        let mounts: [FluidJSON]
        switch value {
        case nil, .null?: mounts = []
        case .array(let items)?: mounts = items
        case let other?: throw invalid("mounts", "a list", other)
        }
        guard mounts.count == 1 else { throw FluidConfigError.wrongMountCount(mounts.count) }
        guard case .object(let mount) = mounts[0] else { throw invalid("mounts[0]", "an object", mounts[0]) }
        return mount
    }

    private func options(_ value: FluidJSON?) throws -> [String: FluidOptionValue] {
        let members: [String: FluidJSON]
        switch value {
        case nil, .null?: return [:]
        case .object(let object)?: members = object
        case let other?: throw invalid("mounts[0].options", "an object", other)
        }
        var options: [String: FluidOptionValue] = [:]
        for (key, member) in members {
            switch member {
            case .null: continue
            case .string(let text): options[key] = .string(text)
            case .number(let literal): options[key] = .number(literal)
            case .bool(let flag): options[key] = .bool(flag)
            case .array(let items):
                var strings: [String] = []
                for item in items {
                    guard case .string(let text) = item else {
                        throw FluidConfigError.invalidOptionType(key: key, found: "a list holding \(item.typeName)")
                    }
                    strings.append(text)
                }
                options[key] = .list(strings)
            case .object:
                throw FluidConfigError.invalidOptionType(key: key, found: member.typeName)
            }
        }
        return options
    }

    private func accessModes(_ value: FluidJSON?) throws -> [String]? {
        switch value {
        case nil, .null?: return nil
        case .array(let items)?:
            return try items.map { item in
                guard case .string(let mode) = item else { throw invalid("accessModes", "a list of strings", item) }
                return mode
            }
        case let other?: throw invalid("accessModes", "a list of strings", other)
        }
    }

    private func optionalString(_ value: FluidJSON?, _ field: String) throws -> String? {
        switch value {
        case nil, .null?: return nil
        case .string(let text)?: return text.isEmpty ? nil : text
        case let other?: throw invalid(field, "a string", other)
        }
    }

    private func optionalBool(_ value: FluidJSON?, _ field: String) throws -> Bool? {
        switch value {
        case nil, .null?: return nil
        case .bool(let flag)?: return flag
        case let other?: throw invalid(field, "true or false", other)
        }
    }

    private func invalid(_ field: String, _ expected: String, _ found: FluidJSON) -> FluidConfigError {
        .invalidField(path: path, field: field, expected: expected, found: found.typeName)
    }
}
