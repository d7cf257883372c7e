// The operating-system calls of a real start, behind a protocol so the start sequence
// can be tested without mounting, sleeping or exec'ing.

import Foundation
#if canImport(Glibc)
import Glibc
#endif

protocol FluidSystem {
    /// `mkdir -p`, mode 0755.
    func createDirectories(_ path: String) throws
    /// Replaces `path` atomically (temp file + rename), mode 0644.
    func writeFile(_ path: String, contents: String) throws
    /// One `mkdir`; 0 or errno.
    func makeDirectory(_ path: String) -> Int32
    /// The text of /proc/self/mountinfo; nil when unreadable.
    func mountInfo() -> String?
    /// True when `stat(path)` fails with ENOTCONN: a FUSE mount whose daemon died.
    func isDeadMount(_ path: String) -> Bool
    /// `umount2(path, MNT_FORCE)` or, with `detach`, `umount2(path, MNT_DETACH)`; 0 or errno.
    func unmount(_ path: String, detach: Bool) -> Int32
    func isDirectory(_ path: String) -> Bool
    func isExecutableFile(_ path: String) -> Bool
    /// The real path of the running executable, from /proc/self/exe.
    func selfExecutable() -> String?
    func sleep(seconds: UInt32)
    /// Replaces the process; returns only on failure, with the errno.
    func exec(_ path: String, arguments: [String], environment: [String: String]) -> Int32
    func writeStandardOutput(_ text: String)
    func writeStandardError(_ text: String)
}

/// The strerror text of an errno, for messages.
func errnoText(_ code: Int32) -> String { String(cString: strerror(code)) }

/// The real thing, over Glibc.
struct LinuxFluidSystem: FluidSystem {
    func createDirectories(_ path: String) throws {
        var prefix = ""
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += "/" + component
            if mkdir(prefix, 0o755) != 0 {
                let code = errno
                guard code == EEXIST, isDirectory(prefix) else {
                    throw FluidStartError.cannotCreateDirectory(
                        path: path, reason: code == EEXIST ? "\(prefix) is not a directory" : errnoText(code))
                }
            }
        }
    }

    func writeFile(_ path: String, contents: String) throws {
        let temporary = "\(path).tmp.\(getpid())"
        func fail(_ code: Int32) -> FluidStartError { .cannotWriteFile(path: path, reason: errnoText(code)) }
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw fail(errno) }
        var bytes = Array(contents.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                let code = errno
                if code == EINTR { continue }
                close(fd)
                unlink(temporary)
                throw fail(code)
            }
            bytes = bytes.dropFirst(written)
        }
        // The file is read back by the daemon a moment later; fsync is not needed for that,
        // but close errors (e.g. EIO on a full disk) must not be ignored.
        if close(fd) != 0 {
            let code = errno
            unlink(temporary)
            throw fail(code)
        }
        if rename(temporary, path) != 0 {
            let code = errno
            unlink(temporary)
            throw fail(code)
        }
    }

    func makeDirectory(_ path: String) -> Int32 { mkdir(path, 0o755) == 0 ? 0 : errno }

    func mountInfo() -> String? {
        guard let data = try? FluidConfigFile.read(path: FluidDefaults.mountInfoPath) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    func isDeadMount(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) != 0 && errno == ENOTCONN
    }

    func unmount(_ path: String, detach: Bool) -> Int32 {
        umount2(path, Int32(detach ? MNT_DETACH : MNT_FORCE)) == 0 ? 0 : errno
    }

    func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    func isExecutableFile(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG && access(path, X_OK) == 0
    }

    func selfExecutable() -> String? {
        // PATH_MAX on Linux.
        var buffer = [CChar](repeating: 0, count: 4097)
        let count = readlink(FluidDefaults.selfExecutable, &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func sleep(seconds: UInt32) { _ = Glibc.sleep(seconds) }

    func exec(_ path: String, arguments: [String], environment: [String: String]) -> Int32 {
        fflush(nil)  // nothing buffered may be lost when the process image is replaced
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        var envp: [UnsafeMutablePointer<CChar>?] = environment.keys.sorted().map { strdup("\($0)=\(environment[$0]!)") } + [nil]
        execve(path, &argv, &envp)
        let code = errno
        for pointer in argv + envp { free(pointer) }
        return code
    }

    func writeStandardOutput(_ text: String) {
        fputs(text, stdout)
        fflush(stdout)
    }

    func writeStandardError(_ text: String) {
        fputs(text, stderr)
        fflush(stderr)
    }
}
