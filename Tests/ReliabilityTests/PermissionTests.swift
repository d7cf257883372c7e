// Permissions on a real mount: with allow_other and default permission checking (the
// defaults), user nobody gets EACCES/EPERM exactly where POSIX says so; a read-only mount
// (--readonly true) refuses every change with EROFS and still reads. The probes run as
// nobody through setpriv with the system python (/usr/bin/python3), under `timeout`.
import Foundation
import XCTest
import CurvineTestHarness
#if canImport(Glibc)
import Glibc
#endif

/// Runs named operations and prints "name=OK" or "name=ERRNAME" per line.
let probeScript = #"""
import errno, os, sys
m = sys.argv[1]
p = lambda *a: os.path.join(m, *a)
def write(path, data, flags=os.O_WRONLY | os.O_APPEND):
    fd = os.open(path, flags, 0o644)
    try: os.write(fd, data)
    finally: os.close(fd)
def read(path):
    with open(path, "rb") as f: return f.read()
def xattr(path):
    os.setxattr(path, "user.k", b"v")
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
def access(path, mode):
    if libc.access(path.encode(), mode) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
def execute(path):
    pid = os.fork()
    if pid == 0:
        try:
            os.execv(path, [path])
        except OSError as e:
            os._exit(e.errno)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise OSError(code, os.strerror(code))
ops = [(name, fn) for name, fn in [
    ("stat_root", lambda: os.stat(m)),
    ("read_0644", lambda: read(p("r644"))),
    ("read_0600", lambda: read(p("p600"))),
    ("append_0644", lambda: write(p("r644"), b"x")),
    ("truncate_0644", lambda: os.truncate(p("r644"), 0)),
    ("list_0700_dir", lambda: os.listdir(p("priv"))),
    ("read_in_0700_dir", lambda: read(p("priv", "f"))),
    ("create_in_0755_dir", lambda: write(p("pub", "new"), b"x", os.O_WRONLY | os.O_CREAT)),
    ("mkdir_in_0755_dir", lambda: os.mkdir(p("pub", "d"))),
    ("unlink_in_0755_dir", lambda: os.unlink(p("pub", "g"))),
    ("rename_out_of_0755_dir", lambda: os.rename(p("pub", "g"), p("open", "g"))),
    ("chmod_not_owner", lambda: os.chmod(p("r644"), 0o777)),
    ("chown_not_owner", lambda: os.chown(p("r644"), 65534, 65534)),
    ("utime_not_owner", lambda: os.utime(p("r644"), (1, 1))),
    ("setxattr_not_writable", lambda: xattr(p("r644"))),
    ("create_in_0777_dir", lambda: write(p("open", "mine"), b"data", os.O_WRONLY | os.O_CREAT)),
    ("read_own_file", lambda: read(p("open", "mine"))),
    ("chmod_own_file", lambda: os.chmod(p("open", "mine"), 0o600)),
    ("chown_own_file_to_root", lambda: os.chown(p("open", "mine"), 0, 0)),
    ("write_0666_in_sticky", lambda: write(p("sticky", "rootfile"), b"y")),
    ("unlink_others_in_sticky", lambda: os.unlink(p("sticky", "rootfile"))),
    ("rename_others_in_sticky", lambda: os.rename(p("sticky", "rootfile"), p("sticky", "x"))),
    ("exec_0644", lambda: execute(p("r644"))),
    ("access_w_0644", lambda: access(p("r644"), os.W_OK)),
    ("access_r_0600", lambda: access(p("p600"), os.R_OK)),
]]
for name, fn in ops:
    try:
        fn()
        print("%s=OK" % name)
    except OSError as e:
        print("%s=%s" % (name, errno.errorcode.get(e.errno, str(e.errno))))
    sys.stdout.flush()
"""#

final class PermissionTests: MountTestCase {
    func probe(_ mnt: String, asNobody: Bool) -> [String: String] {
        let p = tmp + "/probe.py"
        _ = FileManager.default.createFile(atPath: p, contents: Data(probeScript.utf8))
        chmod(p, 0o644)
        let prefix = asNobody ? "setpriv --reuid=65534 --regid=65534 --clear-groups " : ""
        let r = sh("cd / && \(prefix)/usr/bin/python3 '\(p)' '\(mnt)'", timeout: 60)
        var out: [String: String] = [:]
        for l in r.stdout.split(separator: "\n") {
            let kv = l.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { out[String(kv[0])] = String(kv[1]) }
        }
        if out.isEmpty { XCTFail("probe produced nothing: \(r.stdout) \(r.stderr)") }
        return out
    }

    func populate(_ mnt: String) {
        run("""
        cd \(mnt) && echo hi > r644 && chmod 644 r644 && echo secret > p600 && chmod 600 p600 && \
        mkdir -m 700 priv && echo f > priv/f && mkdir -m 755 pub && echo g > pub/g && \
        mkdir -m 777 open && mkdir -m 1777 sticky && echo x > sticky/rootfile && chmod 666 sticky/rootfile
        """)
    }

    func testNonRootUserGetsPosixErrnos() throws {
        try startCluster()
        let m = try mount("mnt", conf: writeConf())
        let opts = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8))?
            .split(separator: "\n").first { $0.contains(" \(m.mnt) ") } ?? ""
        XCTAssertTrue(opts.contains("allow_other") && opts.contains("default_permissions"), String(opts))
        populate(m.mnt)
        let got = probe(m.mnt, asNobody: true)
        let want: [String: String] = [
            "stat_root": "OK", "read_0644": "OK", "read_0600": "EACCES", "append_0644": "EACCES",
            "truncate_0644": "EACCES", "list_0700_dir": "EACCES", "read_in_0700_dir": "EACCES",
            "create_in_0755_dir": "EACCES", "mkdir_in_0755_dir": "EACCES", "unlink_in_0755_dir": "EACCES",
            "rename_out_of_0755_dir": "EACCES", "chmod_not_owner": "EPERM", "chown_not_owner": "EPERM",
            "utime_not_owner": "EPERM", "setxattr_not_writable": "EACCES", "create_in_0777_dir": "OK",
            "read_own_file": "OK", "chmod_own_file": "OK", "chown_own_file_to_root": "EPERM",
            "write_0666_in_sticky": "OK", "unlink_others_in_sticky": "EPERM", "rename_others_in_sticky": "EPERM",
            "exec_0644": "EACCES", "access_w_0644": "EACCES", "access_r_0600": "EACCES",
        ]
        var mismatches: [String] = []
        for (k, v) in want.sorted(by: { $0.key < $1.key }) where got[k] != v {
            mismatches.append("\(k): got \(got[k] ?? "nothing"), POSIX says \(v)")
        }
        XCTAssertTrue(mismatches.isEmpty, mismatches.joined(separator: "\n"))
        // What nobody did is owned by nobody; root still reads everything.
        XCTAssertEqual(run("stat -c %u:%g \(m.mnt)/open/mine").trimmingCharacters(in: .whitespacesAndNewlines), "65534:65534")
        XCTAssertEqual(run("cat \(m.mnt)/p600"), "secret\n")
        print("permissions: \(want.count) operations as nobody, \(want.count - mismatches.count) gave the POSIX answer (EACCES/EPERM/OK)")
    }

    func testReadOnlyMountRefusesEveryChangeWithEROFS() throws {
        try startCluster()
        let rw = try mount("rw", conf: writeConf())
        populate(rw.mnt)
        let ro = try mount("ro", conf: writeConf(), extraArgs: ["--readonly", "true"])
        let line = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8))?
            .split(separator: "\n").first { $0.contains(" \(ro.mnt) ") } ?? ""
        XCTAssertTrue(line.split(separator: " ").count > 3 && line.split(separator: " ")[3].hasPrefix("ro"), String(line))
        let got = probe(ro.mnt, asNobody: false)
        // Root is not stopped by modes: every change must fail with EROFS.
        for k in ["append_0644", "truncate_0644", "create_in_0755_dir", "mkdir_in_0755_dir", "unlink_in_0755_dir",
                  "rename_out_of_0755_dir", "chmod_not_owner", "chown_not_owner", "utime_not_owner",
                  "setxattr_not_writable", "create_in_0777_dir", "unlink_others_in_sticky", "rename_others_in_sticky",
                  "access_w_0644", "write_0666_in_sticky"] {
            XCTAssertEqual(got[k], "EROFS", "\(k) on a read-only mount")
        }
        for k in ["stat_root", "read_0644", "read_0600", "list_0700_dir", "read_in_0700_dir"] {
            XCTAssertEqual(got[k], "OK", "\(k) on a read-only mount")
        }
        XCTAssertEqual(run("cat \(ro.mnt)/r644"), "hi\n")
        let r = sh("ln -s x \(ro.mnt)/l 2>&1; mknod \(ro.mnt)/fifo p 2>&1; ln \(ro.mnt)/r644 \(ro.mnt)/h 2>&1", timeout: 20)
        XCTAssertEqual(r.stdout.components(separatedBy: "Read-only file system").count - 1, 3, r.stdout)
        print("permissions: read-only mount: 15 kinds of change refused with EROFS, reads served")
    }
}
