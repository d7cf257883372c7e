/*
 * cvshim: the C side of curvine-fuse (libfuse 3.14 low-level API).
 *
 * Owns everything Swift cannot or should not do itself:
 *   - session setup from an argv of mount options (FUSE_ARGS_INIT is a macro),
 *   - our own multithreaded loop: N worker threads, each with its own cloned
 *     /dev/fuse fd (FUSE_DEV_IOC_CLONE), splice receive where the kernel allows,
 *   - the single place where /dev/fuse is read and written (custom io hooks),
 *     so the performance work can patch INIT/OPEN replies for kernel passthrough,
 *   - read replies through fuse_reply_data (splice when negotiated),
 *   - NUMA pinning of worker threads, signal handling, clean unmount.
 *
 * All exported names are prefixed cvfuse_. Swift fills struct fuse_lowlevel_ops
 * itself with @convention(c) functions living in nonisolated library code.
 */
#ifndef CVSHIM_H
#define CVSHIM_H

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 314
#endif
#include <fuse_lowlevel.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque session: libfuse session + loop state + channel table. */
typedef struct cvfuse_session cvfuse_session;

typedef struct cvfuse_loop_config {
    int worker_threads;   /* threads reading /dev/fuse; each clones its own fd (>= 1) */
    int clone_fd;         /* 1: FUSE_DEV_IOC_CLONE per thread; 0: all share the session fd */
    int numa_pin;         /* 1: pin workers to the CPUs of one NUMA node when >1 node exists */
    int debug;            /* 1: log each request opcode to stderr */
} cvfuse_loop_config;

/* Create a session. `argv` is a full argv ("curvine-fuse", "-o", "allow_other,...", ...)
 * as libfuse's option parser expects (fsname=, subtype=, allow_other, ro, default_permissions,
 * max_read= ...). Returns NULL and prints the reason on failure. */
cvfuse_session *cvfuse_new(int argc, char **argv, const struct fuse_lowlevel_ops *ops,
                           size_t ops_size, void *userdata);

/* Mount at `mountpoint`; 0 on success, -1 on failure (reason printed). Installs
 * the custom io hooks on the mounted fd. */
int cvfuse_mount(cvfuse_session *s, const char *mountpoint);

/* Install SIGTERM/SIGINT/SIGHUP handlers that end the session (fuse_set_signal_handlers). */
int cvfuse_install_signal_handlers(cvfuse_session *s);

/* Run the loop until the session exits (signal, unmount, cvfuse_exit). Returns 0 on
 * a clean end, else a negative errno. Blocks the calling thread. */
int cvfuse_run(cvfuse_session *s, const cvfuse_loop_config *cfg);

/* Ask the loop to end (any thread; async-signal-safe). */
void cvfuse_exit(cvfuse_session *s);

/* Unmount (if mounted), remove signal handlers, destroy. Safe to call once after run. */
void cvfuse_unmount_and_destroy(cvfuse_session *s);

/* The session's libfuse handle, for fuse_lowlevel_notify_* calls. */
struct fuse_session *cvfuse_fuse_session(cvfuse_session *s);

/* ---- replies ---------------------------------------------------------------
 * Replies may be sent from any thread. With cloned fds a reply must go to the
 * fd its request came from: the receiving thread's fd is remembered in a
 * thread-local; a thread replying for a request it did not receive first calls
 * cvfuse_set_reply_channel(ch) with the value cvfuse_current_channel() returned
 * on the receiving thread, and cvfuse_set_reply_channel(-1) afterwards. */
int  cvfuse_current_channel(void);
void cvfuse_set_reply_channel(int channel);

/* Reply to READ with `size` bytes from memory (splice-move when negotiated). */
int cvfuse_reply_data_mem(fuse_req_t req, const void *buf, size_t size);
/* Reply to READ with `size` bytes read from `fd` at `off` (splice from the file
 * when negotiated, e.g. a short-circuit block file; else a copy). */
int cvfuse_reply_data_fd(fuse_req_t req, int fd, off_t off, size_t size);

/* ---- init negotiation ------------------------------------------------------ */
typedef struct cvfuse_init_options {
    unsigned max_write;          /* bytes; 1 MiB */
    unsigned max_read;           /* bytes; 1 MiB (also passed as -o max_read) */
    unsigned max_readahead;      /* bytes; 0 = kernel's offer */
    unsigned max_background;     /* upstream default 256 */
    unsigned congestion_threshold; /* upstream default 192 */
    int enable_splice;           /* splice read/write/move */
    int writeback_cache;         /* only when asked */
    int posix_locks;             /* POSIX/OFD locks handled by the daemon */
    int flock_locks;             /* flock handled by the daemon */
    int time_gran_ns;            /* 1000000: Curvine stores ms */
    int passthrough;             /* 1: offer kernel passthrough when the kernel has it (--passthrough auto) */
} cvfuse_init_options;

/* Called from the Swift init op: applies every capability with its reason
 * (see cvshim.c) and logs what was negotiated and what the kernel refused. */
void cvfuse_negotiate(struct fuse_conn_info *conn, const cvfuse_init_options *o);

/* ---- kernel passthrough (io.c) ----------------------------------------------
 * Linux >= 6.9 with CONFIG_FUSE_PASSTHROUGH serves a file's reads and mmap from a
 * backing file without asking the daemon. libfuse 3.14 cannot negotiate it, so the
 * io hooks do: the INIT reply gets FUSE_PASSTHROUGH (when cvfuse_init_options.passthrough,
 * the kernel offers it, the writeback cache is off and we have CAP_SYS_ADMIN), and an
 * OPEN/CREATE reply marked with cvfuse_open_passthrough gets FOPEN_PASSTHROUGH and the
 * backing id. The session logs once at INIT whether passthrough is on, and why not.
 *
 * Kernel rules the caller must keep (the kernel fails open() with EIO otherwise):
 * one backing id per inode shared by all its concurrent opens, and never a
 * passthrough open and a normal open of one inode at the same time. */

/* 1 when the INIT reply enabled passthrough and no BACKING_OPEN has failed with EPERM. */
int cvfuse_passthrough_active(cvfuse_session *s);
/* FUSE_DEV_IOC_BACKING_OPEN on `fd` (any open fd of a regular file on a non-stacked
 * fs; the kernel takes its own reference, so the caller may close fd afterwards).
 * Returns the backing id (> 0) or -errno; logs each kind of failure once. EPERM
 * (no CAP_SYS_ADMIN in the initial user namespace) turns passthrough off for the
 * session: cvfuse_passthrough_active returns 0 from then on. */
int cvfuse_backing_open(cvfuse_session *s, int fd);
/* FUSE_DEV_IOC_BACKING_CLOSE; 0 or -errno. Opens already made keep working. */
int cvfuse_backing_close(cvfuse_session *s, int backing_id);
/* Called from the open or create op, on the thread running it, before the reply:
 * the reply to the request this thread is processing will carry FOPEN_PASSTHROUGH
 * and `backing_id` (and only open flags the kernel allows with it: DIRECT_IO,
 * PARALLEL_DIRECT_WRITES, NOFLUSH; KEEP_CACHE is dropped). The reply is matched
 * by its `unique`, so it may be sent later or from another thread (with
 * cvfuse_set_reply_channel). `req` must be that request. 0 or -errno
 * (-EINVAL: not called while processing an OPEN/CREATE; -EBUSY: too many marked
 * replies in flight). */
int cvfuse_open_passthrough(fuse_req_t req, int backing_id);

/* ---- hand-over (SIGUSR1 restart without unmount, handover.c) ------------------
 * The old process: cvfuse_pause each session and wait for cvfuse_run to return
 * CVFUSE_RUN_PAUSED (every request read so far has been answered; the kernel
 * queues new ones), save cvfuse_session_fd + cvfuse_init_request + the file
 * system's own state, cvfuse_keep_fds_across_exec, then execv itself. If exec
 * fails: cvfuse_restore_fds_after_failed_exec, cvfuse_prepare_rerun and
 * cvfuse_run again. The new process: cvfuse_new with the same options, then
 * cvfuse_adopt instead of cvfuse_mount, then cvfuse_run as usual. */

/* cvfuse_run's result when cvfuse_pause ended the loop of a live session. */
#define CVFUSE_RUN_PAUSED 1

/* Ask the loop to stop after the requests being processed (any thread). */
void cvfuse_pause(cvfuse_session *s);
/* After a paused run: close the workers' cloned fds and allow cvfuse_run again. */
int cvfuse_prepare_rerun(cvfuse_session *s);
/* The session's /dev/fuse fd (the one mounted; worker clones are not kept). */
int cvfuse_session_fd(cvfuse_session *s);
/* Copies the kernel's INIT request (header + init_in, as read) into buf; returns
 * its length, 0 when INIT was not seen, or the needed size when cap is too small. */
size_t cvfuse_init_request(cvfuse_session *s, void *buf, size_t cap);
/* Takes over `fd`, a /dev/fuse fd mounted at `mountpoint` by an earlier process
 * and already initialised: installs the io hooks and replays `init_req` (that
 * process's INIT request) through libfuse so the session negotiates as before;
 * the reply is dropped (the kernel answered the real INIT long ago).
 * `passthrough_active` is the earlier process's cvfuse_passthrough_active (the
 * kernel kept that decision). 0, or -errno with the reason logged. */
int cvfuse_adopt(cvfuse_session *s, int fd, const char *mountpoint, const void *init_req, size_t len,
                 int passthrough_active);
/* Marks every fd >= 3 close-on-exec, then clears it on `fds`; 0 or -errno. */
int cvfuse_keep_fds_across_exec(const int *fds, int n);
/* Sets close-on-exec on `fds` again (exec failed). */
void cvfuse_restore_fds_after_failed_exec(const int *fds, int n);

/* ---- NUMA / CPUs ------------------------------------------------------------ */
/* Number of NUMA nodes with CPUs in our cpuset (1 when libnuma is unavailable). */
int cvfuse_numa_nodes(void);
/* CPUs allowed by sched_getaffinity (the container's cpuset). */
int cvfuse_allowed_cpus(void);

/* ---- small libc helpers Swift cannot call directly ---------------------------- */
/* errno read immediately after the failing call, by C, so no Swift code runs between. */
int cvfuse_errno(void);

/* Around a wait that can last as long as another client wants (SETLKW, blocking
 * flock), on the worker running the op: the loop then keeps at least one worker
 * free to read requests, starting another one if needed (loop.c). No-ops on
 * threads that are not loop workers. */
void cvfuse_blocking_wait_begin(void);
void cvfuse_blocking_wait_end(void);

/* 1 when the session served by the calling worker thread is ending (signal,
 * unmount, cvfuse_exit): long waits inside a callback (SETLKW) poll it so that
 * shutdown is not held up. 0 on threads that are not loop workers. */
int cvfuse_current_session_exiting(void);

#ifdef __cplusplus
}
#endif
#endif /* CVSHIM_H */
