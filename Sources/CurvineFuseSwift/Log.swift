// Minimal leveled logging to stderr (the container runtime collects it).
import Foundation

public enum Log {
    nonisolated(unsafe) public static var debugEnabled = false
    private static let lock = NSLock()

    public static func info(_ msg: @autoclosure () -> String) { emit("INFO", msg()) }
    public static func warn(_ msg: @autoclosure () -> String) { emit("WARN", msg()) }
    public static func error(_ msg: @autoclosure () -> String) { emit("ERROR", msg()) }
    public static func debug(_ msg: @autoclosure () -> String) { if debugEnabled { emit("DEBUG", msg()) } }

    private static func emit(_ level: String, _ msg: String) {
        let line = "\(ISO8601DateFormatter().string(from: Date())) \(level) curvine-fuse: \(msg)\n"
        lock.lock()
        FileHandle.standardError.write(Data(line.utf8))
        lock.unlock()
    }
}
