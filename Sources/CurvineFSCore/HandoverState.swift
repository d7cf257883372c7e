// What one mount's core hands to the next process on a SIGUSR1 restart (see
// FileSystemCore+Handover.swift). Plain Codable values: the process-level file
// (CurvineFuseSwift/Handover.swift) writes them as JSON next to the /dev/fuse fd.
//
// Only what the kernel can still name is kept: inode numbers it looked up (with their
// lookup counts and the names that turn them into Curvine paths), open file and
// directory handle numbers, kernel passthrough backing ids, and the locks this client
// holds on the master. Caches (status, dentries, negatives, stat-ahead, prefetch) start
// cold: the new process fetches again. Writers are committed before the state is taken,
// so no data is in flight; a writable handle reopens the file for writing on its next
// write, as an O_WRONLY open of an existing file does.

/// Format version of CoreHandoverState; a process refuses a state of another version.
public let coreHandoverVersion = 1

public struct CoreHandoverState: Codable, Sendable {
    public struct Alias: Codable, Sendable {
        var parent: UInt64
        var name: String
    }

    public struct NodeState: Codable, Sendable {
        var ino: UInt64
        var id: Int64
        var parent: UInt64
        var name: String
        var aliases: [Alias]
        var lookups: UInt64
        /// Unlinked while open (its name is a hidden one): delete at the last release.
        var deferredDelete: Bool
    }

    public struct SyntheticIno: Codable, Sendable {
        var id: Int64
        var ino: UInt64
    }

    public struct FileHandleState: Codable, Sendable {
        var fh: UInt64
        var ino: UInt64
        var readable: Bool
        var writable: Bool
        var keepCache: Bool
    }

    public struct DirHandleState: Codable, Sendable {
        var fh: UInt64
        var ino: UInt64
    }

    public struct PassthroughInode: Codable, Sendable {
        var ino: UInt64
        var normal: Int
        var passthrough: Int
        var backingId: Int32
    }

    public struct PassthroughHandle: Codable, Sendable {
        var fh: UInt64
        var ino: UInt64
        var passthrough: Bool
        var reason: String
    }

    public struct LockRange: Codable, Sendable {
        var type: Int32
        var start: UInt64
        var end: UInt64
    }

    public struct LockOwner: Codable, Sendable {
        var ino: UInt64
        var owner: UInt64
        var flavor: Int32
        var pid: UInt32
        var fhs: [UInt64]
        var ranges: [LockRange]
    }

    public var version = coreHandoverVersion
    public var fsPath: String
    public var rootId: Int64
    var nodes: [NodeState]
    var synthetic: [SyntheticIno]
    var nextSynthetic: UInt64
    var files: [FileHandleState]
    var dirs: [DirHandleState]
    var nextFh: UInt64
    var hiddenCounter: UInt64
    var passthroughInodes: [PassthroughInode]
    var passthroughHandles: [PassthroughHandle]
    var locks: [LockOwner]

    /// Counts for the log line of both processes.
    public var summary: String {
        "\(nodes.count) inodes, \(files.count) open files, \(dirs.count) open directories, "
            + "\(passthroughInodes.count) passthrough inodes, \(locks.count) lock owners"
    }
}
