// Kernel readahead of a mount: the BDI's read_ahead_kb (upstream session/bdi.rs).
//
// A FUSE superblock gets its own backing device, /sys/class/bdi/<major>:<minor> of the
// mount's st_dev, created with the kernel default of 128 KiB (VM_READAHEAD_PAGES). So
// by default a buffered sequential read reaches the daemon as 128 KiB READs, one
// readahead window at a time. INIT cannot raise it: the kernel offers its current
// value in FUSE_INIT and keeps min(offer, reply) (negotiate.c), so a larger value is
// written to sysfs after INIT — that write sticks, and files opened afterwards read
// ahead that far, in READs of up to max_pages (1 MiB).
//
// Order matters: the INIT reply would clamp an earlier write back to 128 KiB, and a
// stat of the mount point (the way to learn its st_dev) needs the session loop to
// answer it. So `apply` runs on a thread of its own: its stat returns once the loop
// has answered INIT and GETATTR, then it writes read_ahead_kb and logs the outcome.
// Files opened in the few milliseconds before that keep 128 KiB (their readahead state
// is set at open).
//
// The default, 512 KiB, is measured (perf/results/readahead.md, 1 GiB dd): 4× fewer READs
// than 128 KiB (512 KiB each), the least daemon CPU per GiB on the short-circuit path
// and within noise of the best on the TCP path. It
// stays below 1 MiB on purpose: libfuse splices a READ reply only when its pipe holds
// header + payload + 3 pages, pipes cannot grow past fs.pipe-max-size (1 MiB by default)
// without CAP_SYS_RESOURCE, and a 1 MiB reply from a short-circuit block file then goes
// through a bounce buffer libfuse mallocs and frees per READ (263,000 page faults and 4×
// the daemon CPU per GiB here). Where pipes may be 2 MiB, 1024 is as cheap; set it with
// max_readahead_kb. Larger windows also need the prefetcher's reorder tolerance to grow
// with them (reorderDistance).
import CurvineClient
import Foundation
#if canImport(Glibc)
import Glibc
#endif

enum Readahead {
    /// read_ahead_kb when [fuse] max_readahead_kb is not set.
    static let defaultKb = 512

    /// CoreConfig.maxBackwardSeek for a mount reading ahead `kb` KiB: the kernel issues a
    /// window's requests in order, but several worker threads serve them, so they reach
    /// the core up to about two windows (the one being read and the async one) out of
    /// order; below that the prefetcher would take each overtaken request for a seek and
    /// drop its window (measured: at 4096 KiB with the old 1 MiB, 40% of the prefetched
    /// bytes were dropped and most reads went on demand).
    static func reorderDistance(kb: Int) -> Int { 2 * max(kb, 0) * 1024 + (1 << 20) }

    /// Sets the mount's BDI read_ahead_kb to `kb` once the session serves (own thread).
    static func apply(mountPoint: String, kb: Int) {
        startThread(name: "cv-readahead") { configure(mountPoint: mountPoint, kb: kb) }
    }

    /// The BDI directory of the FUSE file system mounted at `path`, nil when `path` is not
    /// a FUSE mount (any more). stat waits until the session has answered INIT and
    /// GETATTR; the mount table then confirms that the device is the FUSE mount at
    /// `path`, not the directory under a mount that went away meanwhile (whose device
    /// must not be touched).
    static func bdiDirectory(_ path: String) -> String? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        let dev = UInt64(st.st_dev)
        // glibc's major()/minor() encoding (macros, not imported).
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & ~UInt64(0xfff))
        let minor = (dev & 0xff) | ((dev >> 12) & ~UInt64(0xff))
        let id = "\(major):\(minor)"
        guard let table = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return nil }
        let target = (path as NSString).standardizingPath
        // "36 35 0:52 / /mnt/x rw,... - fuse.curvinefs curvinefs rw,..." (mount point octal-escaped)
        let found = table.split(separator: "\n").contains { line in
            let f = line.split(separator: " ")
            guard f.count > 6, f[2] == id, let dash = f.firstIndex(of: "-"), dash + 1 < f.count,
                  f[dash + 1].hasPrefix("fuse") else { return false }
            return unescape(f[4]) == target
        }
        if !found { errno = EINVAL }
        return found ? "/sys/class/bdi/\(id)" : nil
    }

    /// A mount table field with its \ooo escapes (space, tab, newline, backslash) decoded.
    static func unescape(_ s: Substring) -> String {
        var out = [UInt8]()
        let b = Array(s.utf8)
        var i = 0
        while i < b.count {
            if b[i] == UInt8(ascii: "\\"), i + 3 < b.count,
               let v = UInt8(String(decoding: b[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                out.append(v)
                i += 4
            } else {
                out.append(b[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func read(_ file: String) -> Int? {
        guard let s = try? String(contentsOfFile: file, encoding: .utf8) else { return nil }
        return Int(s.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    static func configure(mountPoint: String, kb: Int) {
        guard let dir = bdiDirectory(mountPoint) else {
            Log.warn("readahead: \(mountPoint) is not a FUSE mount or does not answer (\(String(cString: strerror(errno)))); read_ahead_kb left as is")
            return
        }
        let file = dir + "/read_ahead_kb"
        let old = read(file)
        if old == kb {
            Log.info("readahead: \(file) is \(kb) KiB")
            return
        }
        let fd = open(file, O_WRONLY | O_CLOEXEC)
        var err: Int32 = 0
        if fd < 0 {
            err = errno
        } else {
            let text = "\(kb)\n"
            if text.withCString({ write(fd, $0, strlen($0)) }) < 0 { err = errno }
            close(fd)
        }
        let now = read(file)
        if err == 0, now == kb {
            Log.info("readahead: \(file) \(old.map(String.init) ?? "?") -> \(kb) KiB (max_readahead_kb)")
        } else {
            Log.warn("readahead: cannot set \(file) to \(kb) KiB (\(err != 0 ? String(cString: strerror(err)) : "reads back \(now.map(String.init) ?? "?")")); "
                     + "sequential reads reach the daemon as \(now ?? 128) KiB requests. Needs root and a writable /sys "
                     + "(a privileged mount pod); or set it on the node: echo \(kb) > \(file)")
        }
    }
}
