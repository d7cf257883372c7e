// Restart without unmount (SIGUSR1), the process half. Upstream does the same: on
// SIGUSR1 it stops its receivers, writes its state to
// <state_dir>/curvine_fuse_state_<pid>.data, clears FD_CLOEXEC on the /dev/fuse fds and
// re-executes itself with CURVINE_FUSE_STATE_PATH set; the new image reads the state,
// takes the fds over and goes on serving the same mounts. An upgrade is: replace the
// binary, send SIGUSR1. Applications keep their open files and never see the switch,
// except for a pause (requests queue in the kernel meanwhile; measured in the tests).
//
// Why exec in place rather than a child: the pid stays (a container's main process, a
// supervisor's child, the Fluid entrypoint's exec'd daemon), and a failed exec returns
// to the old image, which then simply resumes serving.
//
// Order (MountRunner): pause every session -> commit writers and export each core's
// state -> write the state file (0600, fsync, rename) -> every fd but the /dev/fuse ones
// close-on-exec -> execv(the binary's path, the same argv). New image: MountRunner finds
// CURVINE_FUSE_STATE_PATH, reads and deletes the file, connects with the old client name
// (the master keeps this client's locks under it), restores each core, adopts each fd
// (CShim/handover.c replays INIT), starts the loops.
import CShim
import CurvineFSCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The state file: everything the next image needs besides the inherited fds.
struct ProcessHandoverState: Codable {
    /// Format of this file; an image refuses another (it then starts afresh).
    static let currentVersion = 1

    struct Session: Codable {
        var mountPoint: String
        /// The /dev/fuse fd, inherited across exec under the same number.
        var fd: Int32
        /// The kernel's INIT request (header + fuse_init_in), base64.
        var initRequest: String
        var passthroughActive: Bool
        var core: CoreHandoverState
    }

    var version = currentVersion
    var pid: Int32
    var clientName: String
    var sessions: [Session]
}

enum Handover {
    /// Set in the new image's environment (upstream's name).
    static let environmentKey = "CURVINE_FUSE_STATE_PATH"

    /// The binary to re-execute, resolved at start: after an upgrade that replaced the
    /// file at this path, the new binary runs.
    nonisolated(unsafe) static var executablePath: String?

    /// Descriptors this process inherited from its parent (open at start without
    /// FD_CLOEXEC), with their identity. They belong to the parent (a supervisor's
    /// liveness pipe, Foundation's Process exit socket, ...), so a re-exec keeps them
    /// open as the first exec did; everything the daemon opened itself closes.
    nonisolated(unsafe) static var inheritedDescriptors: [(fd: Int32, dev: UInt64, ino: UInt64)] = []

    static func captureInheritedDescriptors() {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return }
        var found: [(Int32, UInt64, UInt64)] = []
        for n in names {
            guard let fd = Int32(n), fd > 2 else { continue }
            let flags = fcntl(fd, F_GETFD)
            var st = stat()
            guard flags >= 0, flags & FD_CLOEXEC == 0, fstat(fd, &st) == 0 else { continue }
            found.append((fd, UInt64(st.st_dev), UInt64(st.st_ino)))
        }
        inheritedDescriptors = found
    }

    /// The inherited descriptors still open as the same file (a closed one whose number
    /// was reused by the daemon must not leak into the next image).
    static func inheritedStillOpen() -> [Int32] {
        inheritedDescriptors.compactMap { d in
            var st = stat()
            guard fstat(d.fd, &st) == 0, UInt64(st.st_dev) == d.dev, UInt64(st.st_ino) == d.ino else { return nil }
            return d.fd
        }
    }

    static func captureExecutablePath() {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else { return }
        var p = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if p.hasSuffix(" (deleted)") { p.removeLast(" (deleted)".count) }  // replaced on disk: run the new file
        executablePath = p
    }

    static func stateFilePath(stateDir: String?) -> String {
        let dir = stateDir ?? ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        return (dir as NSString).appendingPathComponent("curvine_fuse_state_\(getpid()).data")
    }

    /// Writes the state durably and readable by root only (it names files and lock owners).
    static func write(_ state: ProcessHandoverState, to path: String) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let data = try enc.encode(state)
        let tmp = path + ".tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw HandoverError("cannot create \(tmp): \(String(cString: strerror(errno))); set [fuse] state_dir to a writable directory") }
        defer { close(fd) }
        try data.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + off, raw.count - off)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw HandoverError("cannot write \(tmp): \(String(cString: strerror(errno)))")
                }
                off += n
            }
        }
        guard fsync(fd) == 0, rename(tmp, path) == 0 else {
            let e = String(cString: strerror(errno))
            unlink(tmp)
            throw HandoverError("cannot save \(path): \(e)")
        }
    }

    /// The state left by the previous image, when this process is one (nil otherwise).
    /// The file is deleted and the variable removed, so a later restart of this image is
    /// a normal start. Throws when the variable is set but the state is unusable.
    static func takeFromEnvironment() throws -> ProcessHandoverState? {
        guard let path = ProcessInfo.processInfo.environment[environmentKey], !path.isEmpty else { return nil }
        unsetenv(environmentKey)
        defer { unlink(path) }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw HandoverError("\(environmentKey)=\(path): cannot read the file")
        }
        let st: ProcessHandoverState
        do { st = try JSONDecoder().decode(ProcessHandoverState.self, from: data) } catch {
            throw HandoverError("\(environmentKey)=\(path): not a hand-over state (\(error))")
        }
        guard st.version == ProcessHandoverState.currentVersion else {
            throw HandoverError("\(path): state version \(st.version), this binary reads \(ProcessHandoverState.currentVersion)")
        }
        return st
    }

    /// Closes the inherited /dev/fuse descriptors: used when a hand-over state cannot be
    /// used, so that they do not keep mounts alive that nobody serves (those become dead
    /// mounts, which the normal start then cleans up). Other inherited descriptors are the
    /// parent's and stay open.
    static func closeInheritedFuseDescriptors() {
        for d in inheritedDescriptors {
            var st = stat()
            // /dev/fuse is character device 10:229 (Documentation/admin-guide/devices.txt).
            guard fstat(d.fd, &st) == 0, st.st_mode & S_IFMT == S_IFCHR,
                  devMajor(UInt64(st.st_rdev)) == 10, devMinor(UInt64(st.st_rdev)) == 229 else { continue }
            close(d.fd)
        }
    }

    /// Re-executes this binary with the same argv and `statePath` in the environment.
    /// Returns only on failure, with the reason.
    static func exec(statePath: String, keepFds: [Int32]) -> String {
        guard let exe = executablePath else { return "the path of this binary is unknown (/proc/self/exe)" }
        let keep = keepFds + inheritedStillOpen().filter { !keepFds.contains($0) }
        let rc = keep.withUnsafeBufferPointer { cvfuse_keep_fds_across_exec($0.baseAddress, Int32($0.count)) }
        guard rc == 0 else { return "cannot keep the /dev/fuse fds open across exec: \(String(cString: strerror(-rc)))" }
        setenv(environmentKey, statePath, 1)
        let args = CommandLine.arguments
        let err: Int32 = withCStrings(args) { argv in
            execv(exe, argv)
            return errno  // only reached when exec failed
        }
        unsetenv(environmentKey)
        keepFds.withUnsafeBufferPointer { cvfuse_restore_fds_after_failed_exec($0.baseAddress, Int32($0.count)) }
        // (the inherited ones had no FD_CLOEXEC before either: they stay as they are)
        return "execv \(exe): \(String(cString: strerror(err)))"
    }
}

/// glibc's gnu_dev_major/minor (macros Swift does not import).
func devMajor(_ d: UInt64) -> UInt64 { ((d >> 8) & 0xfff) | ((d >> 32) & ~0xfff) }
func devMinor(_ d: UInt64) -> UInt64 { (d & 0xff) | ((d >> 12) & ~0xff) }

struct HandoverError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
