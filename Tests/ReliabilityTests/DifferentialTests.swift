// Randomized differential test: the same random operations (create, write at offsets,
// append, truncate, rename, unlink, mkdir, rmdir, readdir, read, stat) on the mount and on
// a local directory; results (value or errno) and the whole tree (names, types, sizes;
// contents of touched files every step, of all files every 50 steps and at the end) are
// compared after each step. One python3 process does all the I/O, under `timeout`, so a
// hung daemon fails the test instead of the runner. The seed is printed; replay a
// failure with CURVINE_SEED=<seed>. Short mode 1,500 ops, CURVINE_LONG=1 20,000.
import Foundation
import XCTest
import CurvineTestHarness

let differentialScript = #"""
import errno, hashlib, os, random, sys, time
M, L, seed, nops = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rnd = random.Random(seed)
NAMES = ["a", "b", "c", "dd", "e", "f", "g", "long-name-" + "x" * 40]
DIRS = ["", "d1", "d2", "d1/s", "d2/t"]
MAXOFF = 300 << 10
history = []
stats = {"ok": 0, "err": 0, "compared_files": 0}

known = {"files": [], "dirs": [""]}  # from the local tree after the previous step

def pick_path():
    # Mostly under a directory that exists, sometimes anywhere (ENOENT, ENOTDIR paths).
    d = rnd.choice(known["dirs"]) if rnd.random() < 0.8 else rnd.choice(DIRS)
    n = rnd.choice(NAMES + ["d1", "d2", "s", "t"])
    return (d + "/" + n).lstrip("/")

def pick_file():
    return rnd.choice(known["files"]) if known["files"] and rnd.random() < 0.8 else pick_path()

def pick_dir():
    return rnd.choice(known["dirs"][1:]) if len(known["dirs"]) > 1 and rnd.random() < 0.7 else rnd.choice(DIRS[1:] + [pick_path()])

def data_for(n):
    return bytes(rnd.getrandbits(8) for _ in range(n)) if n < 64 else rnd.randbytes(n)

def run(root, op):
    kind = op[0]
    p = lambda x: os.path.join(root, x)
    try:
        if kind == "create":
            flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if op[2] else 0) | (os.O_TRUNC if op[3] else 0)
            fd = os.open(p(op[1]), flags, 0o644)
            os.close(fd)
            return ("ok", None)
        if kind == "write":
            fd = os.open(p(op[1]), os.O_WRONLY)
            try:
                n = os.pwrite(fd, op[3], op[2])
            finally:
                os.close(fd)
            return ("ok", n)
        if kind == "append":
            fd = os.open(p(op[1]), os.O_WRONLY | os.O_APPEND)
            try:
                n = os.write(fd, op[2])
            finally:
                os.close(fd)
            return ("ok", n)
        if kind == "truncate":
            os.truncate(p(op[1]), op[2])
            return ("ok", None)
        if kind == "rename":
            os.rename(p(op[1]), p(op[2]))
            return ("ok", None)
        if kind == "unlink":
            os.unlink(p(op[1]))
            return ("ok", None)
        if kind == "mkdir":
            os.mkdir(p(op[1]), 0o755)
            return ("ok", None)
        if kind == "rmdir":
            os.rmdir(p(op[1]))
            return ("ok", None)
        if kind == "readdir":
            return ("ok", sorted(os.listdir(p(op[1]))))
        if kind == "read":
            fd = os.open(p(op[1]), os.O_RDONLY)
            try:
                b = os.pread(fd, op[3], op[2])
            finally:
                os.close(fd)
            return ("ok", hashlib.sha256(b).hexdigest() + ":%d" % len(b))
        if kind == "stat":
            st = os.lstat(p(op[1]))
            return ("ok", (oct(st.st_mode & 0o170000), st.st_size if not os.path.isdir(p(op[1])) else None))
        if kind == "rwopen":
            # read-modify-write through one O_RDWR handle: write, then read back before close
            fd = os.open(p(op[1]), os.O_RDWR)
            try:
                os.pwrite(fd, op[3], op[2])
                b = os.pread(fd, len(op[3]) + 100, op[2])
            finally:
                os.close(fd)
            return ("ok", hashlib.sha256(b).hexdigest())
    except OSError as e:
        return ("err", errno.errorcode.get(e.errno, str(e.errno)))
    raise Exception("unknown op " + kind)

def tree(root, with_content):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for n in dirnames:
            out[os.path.normpath(os.path.join(rel, n))] = ("dir",)
        for n in filenames:
            fp = os.path.join(dirpath, n)
            st = os.lstat(fp)
            key = os.path.normpath(os.path.join(rel, n))
            if with_content is True or (with_content and key in with_content):
                h = hashlib.sha256(open(fp, "rb").read()).hexdigest()
                stats["compared_files"] += 1
            else:
                h = None
            out[key] = ("file", st.st_size, h)
    return out

def gen():
    k = rnd.random()
    many = len(known["files"]) > 40
    if k < 0.12 and not many: return ("create", pick_path(), rnd.random() < 0.3, rnd.random() < 0.3)
    if k < 0.34:
        off = rnd.choice([0, rnd.randrange(0, MAXOFF), rnd.randrange(0, 70000)])
        return ("write", pick_file(), off, data_for(rnd.choice([1, 100, 4096, rnd.randrange(1, 70000)])))
    if k < 0.40: return ("append", pick_file(), data_for(rnd.randrange(1, 20000)))
    if k < 0.48: return ("truncate", pick_file(), rnd.choice([0, rnd.randrange(0, MAXOFF), 65536, 65537]))
    if k < 0.57:
        src = pick_file() if rnd.random() < 0.7 else pick_dir()
        dst = pick_file() if rnd.random() < 0.3 else (pick_dir() if rnd.random() < 0.2 else pick_path())
        return ("rename", src, dst)
    if k < 0.64 or many and k < 0.7: return ("unlink", pick_file())
    if k < 0.70: return ("mkdir", rnd.choice(DIRS[1:] + [pick_path()]))
    if k < 0.74: return ("rmdir", pick_dir())
    if k < 0.79: return ("readdir", rnd.choice(known["dirs"] + DIRS))
    if k < 0.91: return ("read", pick_file(), rnd.randrange(0, MAXOFF), rnd.choice([1, 4096, 65536, 200000]))
    if k < 0.96: return ("stat", pick_file() if rnd.random() < 0.7 else pick_dir())
    return ("rwopen", pick_file(), rnd.randrange(0, 100000), data_for(rnd.randrange(1, 5000)))

def show(op):
    return tuple(("<%d bytes>" % len(x)) if isinstance(x, bytes) else x for x in op)

start = time.time()
for step in range(1, nops + 1):
    op = gen()
    history.append(show(op))
    a = run(M, op)
    b = run(L, op)
    stats["ok" if b[0] == "ok" else "err"] += 1
    touched = set(x for x in op[1:3] if isinstance(x, str))
    full = step % 50 == 0 or step == nops
    ta = tree(M, True if full else touched)
    tb = tree(L, True if full else touched)
    known["files"] = sorted(k for k, v in tb.items() if v[0] == "file")
    known["dirs"] = [""] + sorted(k for k, v in tb.items() if v[0] == "dir")
    if a != b or ta != tb:
        print("MISMATCH at step %d (seed %d): %r" % (step, seed, show(op)))
        print("  mount: %r" % (a,))
        print("  local: %r" % (b,))
        for k in sorted(set(ta) | set(tb)):
            if ta.get(k) != tb.get(k):
                print("  tree %s: mount %r local %r" % (k, ta.get(k), tb.get(k)))
        print("  last ops:")
        for h in history[-15:]:
            print("    %r" % (h,))
        sys.exit(1)
print("ops=%d ok=%d errno=%d files_compared=%d seconds=%.1f seed=%d" % (nops, stats["ok"], stats["err"], stats["compared_files"], time.time() - start, seed))
"""#

final class DifferentialTests: MountTestCase {
    func testRandomOperationsMatchALocalDirectory() throws {
        let seed = RelEnv.seed()
        let ops = RelEnv.long ? 20_000 : 1_500
        print("differential: seed \(seed), \(ops) ops (replay with CURVINE_SEED=\(seed))")
        try startCluster()
        // 64 KiB blocks: writes, truncates and reads cross block boundaries.
        let conf = writeConf(extra: "block_size = \"64KB\"")
        let m = try mount("mnt", conf: conf)
        let local = tmp + "/local"
        try FileManager.default.createDirectory(atPath: local, withIntermediateDirectories: true)
        run("mkdir \(m.mnt)/diff")
        let r = python(differentialScript, [m.mnt + "/diff", local, String(seed), String(ops)], timeout: RelEnv.long ? 3_000 : 300)
        XCTAssertEqual(r.status, 0, "differential test failed; replay with CURVINE_SEED=\(seed)\n\(r.stdout.suffix(6000))\n\(r.stderr.suffix(3000))\n\(m.child.log.suffix(3000))")
        print("differential: \(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines))")
    }
}
