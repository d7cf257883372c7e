// Escape hatches for tuning experiments: environment variables whose name starts with
// UNSTABLE_CURVINE_. They are not part of the configuration surface (no TOML key, no
// flag), may change or disappear in any release, and exist so perf/sweep.sh and field
// debugging can try a value without a rebuild. docs/CONFIGURATION.md lists them.
import CurvineClient
import CurvineFSCore
import Foundation

enum UnstableEnv {
    /// UNSTABLE_CURVINE_MAX_PREFETCH_WINDOW: the largest prefetch window of one
    /// sequential stream (CoreConfig.maxPrefetchWindow), in bytes, or with a K/M/G suffix
    /// (binary units: "8M" = 8 MiB). 0 turns prefetch off. The first window is capped at
    /// it too. An unparsable value is ignored with a warning.
    static let maxPrefetchWindowVar = "UNSTABLE_CURVINE_MAX_PREFETCH_WINDOW"

    static func apply(to c: inout CoreConfig, environment env: [String: String] = ProcessInfo.processInfo.environment) {
        guard let raw = env[maxPrefetchWindowVar] else { return }
        guard let v = parseSize(raw) else {
            Log.warn("\(maxPrefetchWindowVar)=\(raw) is not a size (bytes, or a number with K, M or G): ignored")
            return
        }
        c.maxPrefetchWindow = v
        c.initialPrefetchWindow = min(c.initialPrefetchWindow, v)
        Log.info("\(maxPrefetchWindowVar)=\(raw): max prefetch window \(v) bytes (unstable setting)")
    }

    /// UNSTABLE_CURVINE_STREAM_PIPELINE_DEPTH: Running frames a worker block stream sends
    /// ahead of their replies (ClientOptions.streamPipelineDepth, default 8); 1 is the
    /// strict stop-and-wait of upstream's client, for a worker that mishandles pipelining.
    static let streamPipelineDepthVar = "UNSTABLE_CURVINE_STREAM_PIPELINE_DEPTH"

    static func apply(to o: inout ClientOptions, environment env: [String: String] = ProcessInfo.processInfo.environment) {
        guard let raw = env[streamPipelineDepthVar] else { return }
        guard let v = Int(raw.trimmingCharacters(in: .whitespaces)), v >= 1, v <= 1024 else {
            Log.warn("\(streamPipelineDepthVar)=\(raw) is not an integer in 1...1024: ignored")
            return
        }
        o.streamPipelineDepth = v
        Log.info("\(streamPipelineDepthVar)=\(raw): block streams pipeline \(v) frame(s) (unstable setting)")
    }

    /// "1048576", "512K", "8M", "1G" (case-insensitive, optional "iB"/"B") -> bytes.
    static func parseSize(_ s: String) -> Int? {
        var t = s.trimmingCharacters(in: .whitespaces).uppercased()
        for suffix in ["IB", "B"] where t.hasSuffix(suffix) && t.count > suffix.count {
            t.removeLast(suffix.count)
            break
        }
        var mult = 1
        if let last = t.last, let m = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30][String(last)] {
            mult = m
            t.removeLast()
        }
        guard let n = Int(t), n >= 0 else { return nil }
        let (r, o) = n.multipliedReportingOverflow(by: mult)
        return o ? nil : r
    }
}
