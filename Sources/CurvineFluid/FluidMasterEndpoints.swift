// `master-endpoints` / CURVINE_MASTER_ENDPOINTS → the list of Curvine masters (CONTRACT §4).

import Foundation

/// One Curvine master RPC address.
public struct FluidMasterEndpoint: Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var description: String { "\(host):\(port)" }
}

enum FluidMasterEndpoints {
    /// Option (non-empty) > env; missing ⇒ error, because no default master can be right.
    static func resolve(_ lookup: FluidSettingsLookup) throws -> [FluidMasterEndpoint] {
        let key = FluidOptionKey.masterEndpoints
        if let value = lookup.option(key) {
            switch value {
            case .list(let items): return try parse(items, source: .option(key))
            default:
                guard let text = value.scalarText else { throw FluidConfigError.invalidOptionType(key: key, found: value.typeName) }
                return try parse([text], source: .option(key))
            }
        }
        if let text = lookup.env(FluidEnv.masterEndpoints) {
            return try parse([text], source: .environment(FluidEnv.masterEndpoints))
        }
        throw FluidConfigError.masterEndpointsMissing
    }

    /// Splits on commas (documented), semicolons and whitespace (accepted like upstream),
    /// skips blank tokens, keeps order and duplicates.
    static func parse(_ values: [String], source: FluidValueSource) throws -> [FluidMasterEndpoint] {
        let tokens = values.flatMap { value in
            value.split(whereSeparator: { $0 == "," || $0 == ";" || $0.isWhitespace }).map(String.init)
        }
        guard !tokens.isEmpty else { throw FluidConfigError.masterEndpointsEmpty(source: source) }
        return try tokens.map { try endpoint($0, source: source) }
    }

    /// `host:port`, split at the last colon so `[::1]:8995` keeps its brackets as the host.
    static func endpoint(_ token: String, source: FluidValueSource) throws -> FluidMasterEndpoint {
        func fail(_ reason: String) -> FluidConfigError {
            .invalidMasterEndpoint(token: token, reason: reason, source: source)
        }
        guard let colon = token.lastIndex(of: ":") else { throw fail("no :port") }
        let host = String(token[..<colon]).trimmingCharacters(in: .whitespaces)
        let portText = String(token[token.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
        guard !host.isEmpty else { throw fail("empty host") }
        guard !portText.isEmpty else { throw fail("empty port") }
        // A URL here ("http://m:8995", "m/x:1") would become a host name that never resolves.
        guard !host.contains("/"), !host.contains("@") else { throw fail("not a plain host name; drop any scheme or path") }
        guard FluidNumbers.isDigits(portText) else { throw fail("port \(portText) is not a number") }
        guard let port = FluidNumbers.port(portText) else { throw fail("port \(portText) out of range 1-65535") }
        return FluidMasterEndpoint(host: host, port: port)
    }
}
