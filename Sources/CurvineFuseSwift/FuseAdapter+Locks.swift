// The lock callbacks: GETLK, SETLK/SETLKW (POSIX and OFD locks) and FLOCK, each one
// FileSystemCore call (FileSystemCore+Locks.swift keeps the locks on the master), plus
// the POSIX close rule on FLUSH. MountRunner negotiates FUSE_CAP_POSIX_LOCKS and
// FUSE_CAP_FLOCK_LOCKS, so the kernel sends these instead of locking node-locally.
//
// A blocking request (SETLKW, flock without LOCK_NB) waits on the worker thread that
// received it (the loop starts another worker when that would leave none reading), polling the master with backoff; it registers a FUSE_INTERRUPT callback
// that wakes the wait, and its interrupt check is libfuse's `fuse_req_interrupted` or the
// session ending (so a signal to the waiting process ends the wait with EINTR, and an
// unmount or SIGTERM of the daemon is not held up by a waiter).
import CFuse3
import CShim
import CurvineClient
import CurvineFSCore
#if canImport(Glibc)
import Glibc
#endif

extension FuseAdapter {
    /// The FLUSH callback the lock wrapper calls through (set by installLockOps).
    nonisolated(unsafe) static var flushWithoutLocks: (@convention(c) (fuse_req_t?, fuse_ino_t, UnsafeMutablePointer<fuse_file_info>?) -> Void)?

    /// Registers getlk/setlk/flock and wraps FLUSH with the POSIX close rule. Called by
    /// makeOps() after every other op is set.
    static func installLockOps(_ ops: inout fuse_lowlevel_ops) {
        LockLog.warn = { Log.warn($0) }
        ops.getlk = { req, ino, fi, lock in
            do {
                var l = lock!.pointee
                let (type, start, end) = try FuseAdapter.lockRange(l)
                let c = try FuseAdapter.ctx(req).core.getlk(ino: ino, fh: fi!.pointee.fh, owner: fi!.pointee.lock_owner,
                                                            type: type, start: start, end: end,
                                                            pid: UInt32(bitPattern: l.l_pid))
                if let c {
                    l.l_type = Int16(c.type.rawValue)
                    l.l_whence = Int16(SEEK_SET)
                    l.l_start = off_t(clamping: c.start)
                    // libfuse turns l_len 0 into OFFSET_MAX ("to EOF") for the kernel.
                    l.l_len = c.end >= UInt64(Int64.max) ? 0 : off_t(c.end - c.start + 1)
                    l.l_pid = pid_t(bitPattern: c.pid)
                } else {
                    l.l_type = Int16(F_UNLCK)
                }
                fuse_reply_lock(req, &l)
            } catch { FuseAdapter.replyError(req, error, "getlk") }
        }
        ops.setlk = { req, ino, fi, lock, sleep in
            do {
                let l = lock!.pointee
                let (type, start, end) = try FuseAdapter.lockRange(l)
                let wait = sleep != 0 && type != .unlock
                if Log.debugEnabled {
                    Log.debug("SETLK\(sleep != 0 ? "W" : "") ino=\(ino) fh=\(fi!.pointee.fh) owner=\(fi!.pointee.lock_owner) pid=\(l.l_pid) \(type) [\(start), \(end)]")
                }
                if wait { FuseAdapter.watchInterrupt(req) }
                var waiting = false
                defer { if waiting { cvfuse_blocking_wait_end() } }
                try FuseAdapter.ctx(req).core.setlk(ino: ino, fh: fi!.pointee.fh, owner: fi!.pointee.lock_owner,
                                                    type: type, start: start, end: end,
                                                    pid: UInt32(bitPattern: l.l_pid), wait: wait,
                                                    interrupted: { FuseAdapter.waitingInterrupted(req, &waiting) })
                fuse_reply_err(req, 0)
            } catch { FuseAdapter.replyError(req, error, "setlk") }
        }
        ops.flock = { req, ino, fi, op in
            do {
                let type: LockType
                switch op & ~LOCK_NB {
                case LOCK_SH: type = .read
                case LOCK_EX: type = .write
                case LOCK_UN: type = .unlock
                default: throw FSError(EINVAL, "flock operation \(op)")
                }
                let wait = op & LOCK_NB == 0 && type != .unlock
                if Log.debugEnabled { Log.debug("FLOCK ino=\(ino) fh=\(fi!.pointee.fh) owner=\(fi!.pointee.lock_owner) \(type)\(wait ? " wait" : "")") }
                if wait { FuseAdapter.watchInterrupt(req) }
                var waiting = false
                defer { if waiting { cvfuse_blocking_wait_end() } }
                try FuseAdapter.ctx(req).core.flock(ino: ino, fh: fi!.pointee.fh, owner: fi!.pointee.lock_owner,
                                                    type: type, pid: UInt32(bitPattern: fuse_req_ctx(req)!.pointee.pid),
                                                    wait: wait, interrupted: { FuseAdapter.waitingInterrupted(req, &waiting) })
                fuse_reply_err(req, 0)
            } catch { FuseAdapter.replyError(req, error, "flock") }
        }
        flushWithoutLocks = ops.flush
        ops.flush = { req, ino, fi in
            // POSIX: closing any descriptor of a file drops the closing process's locks on
            // it. The core asks the master only when this lock_owner holds one.
            if let fi, fi.pointee.lock_owner != 0 {
                do {
                    try FuseAdapter.ctx(req).core.releaseLocksOnFlush(ino: ino, fh: fi.pointee.fh,
                                                                      owner: fi.pointee.lock_owner)
                } catch {
                    Log.warn("flush of inode \(ino): unlock of lock owner \(fi.pointee.lock_owner) failed: \(error); retried at release")
                }
            }
            if let inner = FuseAdapter.flushWithoutLocks { inner(req, ino, fi) } else { fuse_reply_err(req, 0) }
        }
    }

    /// struct flock (as libfuse converts the kernel's fuse_file_lock: SEEK_SET, l_len 0
    /// = to EOF) -> lock type and inclusive range, end UInt64.max = to EOF.
    static func lockRange(_ l: flock) throws -> (LockType, UInt64, UInt64) {
        guard let type = LockType(rawValue: Int32(l.l_type)) else { throw FSError(EINVAL, "lock type \(l.l_type)") }
        var start = Int64(l.l_start), len = Int64(l.l_len)
        if len < 0 {  // POSIX allows a negative length: the range ends before l_start
            start += len
            len = -len
        }
        guard start >= 0 else { throw FSError(EINVAL, "lock range starts before offset 0") }
        let end: UInt64 = len == 0 || start > Int64.max - len ? UInt64.max : UInt64(start + len - 1)
        return (type, UInt64(start), end)
    }

    /// Registers the FUSE_INTERRUPT callback of a blocking lock request: it wakes the
    /// waiters (the core then sees `fuse_req_interrupted`). Its data is the session's
    /// FuseContext, which outlives every request, so a callback racing with the reply is
    /// harmless.
    static func watchInterrupt(_ req: fuse_req_t?) {
        fuse_req_interrupt_func(req, { _, data in
            guard let data else { return }
            Unmanaged<FuseContext>.fromOpaque(data).takeUnretainedValue().core.wakeLockWaiters()
        }, fuse_req_userdata(req))
    }

    /// `interrupted` of a blocking lock request. The core polls it only while it waits, so
    /// its first call is where the wait begins: the loop is told, so that it keeps a worker
    /// free for the requests that end the wait (the holder's unlock may come through this
    /// very mount; with every worker waiting, nobody would read it).
    static func waitingInterrupted(_ req: fuse_req_t?, _ waiting: inout Bool) -> Bool {
        if !waiting {
            waiting = true
            cvfuse_blocking_wait_begin()
        }
        return interrupted(req)
    }

    /// A blocking lock request should stop: the kernel sent FUSE_INTERRUPT for it, or the
    /// session is ending (unmount, SIGTERM: the loop waits for this worker to return).
    static func interrupted(_ req: fuse_req_t?) -> Bool {
        if fuse_req_interrupted(req) != 0 { return true }
        // The waiter runs on the loop worker that received the request (the shim knows its session).
        return cvfuse_current_session_exiting() != 0
    }
}
