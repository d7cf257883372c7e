/*
 * cvshim_internal.h: state shared by the CShim .c files. Not part of the
 * module's public header (include/cvshim.h); Swift never sees it.
 *
 * Who owns what:
 *   session.c   cvfuse_session lifetime: new, mount, signals, exit, destroy.
 *   io.c        every read from and write to /dev/fuse (custom io hooks),
 *               reply channels, READ replies through fuse_reply_data.
 *   loop.c      the worker threads (cvfuse_run).
 *   negotiate.c INIT capabilities and limits (cvfuse_negotiate).
 *   numa.c      allowed CPUs, NUMA nodes, per-worker CPU sets.
 *   handover.c  SIGUSR1 restart: pause the loop, keep the fd across exec,
 *               adopt it in the next process and replay INIT there.
 *
 * Locks: there are none. Shared state is either written before the worker
 * threads start and read-only afterwards, or a C11 atomic, or thread-local.
 * The one blocking primitive is cvfuse_session.wake (a semaphore, so that
 * cvfuse_exit can post it from a signal handler).
 */
#ifndef CVSHIM_INTERNAL_H
#define CVSHIM_INTERNAL_H

/* splice, pipe2, F_SETPIPE_SZ, pthread_*affinity_np, pthread_setname_np and
 * CPU_ALLOC are GNU extensions; SwiftPM does not define this for C targets. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "cvshim.h"

#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>

/* Bytes of the kernel's INIT request kept for a hand-over: fuse_in_header (40)
 * + fuse_init_in (64 in protocol 7.36+); room for a larger future init_in. */
#define CVSHIM_INIT_REQ_MAX 256

/* All shim messages go through fuse_log, so a fuse_set_log_func installed by
 * the daemon sees them too (default: stderr). `fmt` must be a literal. */
#define cvlog(level, fmt, ...) fuse_log((level), "cvshim: " fmt "\n", ##__VA_ARGS__)

/* One reader of /dev/fuse. Written by loop.c; `fd` is read through the
 * thread-local cvshim_tl_worker by io.c. */
typedef struct cvfuse_worker {
    struct cvfuse_session *s;
    pthread_t tid;
    int index;
    int want_clone;          /* cfg->clone_fd at start */
    int fd;                  /* fd this worker reads and, by default, replies on */
    int owns_fd;             /* 1: fd is a clone that cvfuse_unmount_and_destroy closes */
    atomic_int in_receive;   /* 1 while inside fuse_session_receive_buf: only then is
                                the wake-up signal sent (see loop.c) */
    atomic_int finished;     /* 1 once the thread left its loop (it may still be joinable) */
    int error;               /* negative errno that ended this worker, 0 for a clean end */
} cvfuse_worker;

struct cvfuse_session {
    struct fuse_session *se;
    struct fuse_args args;   /* our allocated copy of argv; libfuse may rewrite it */
    /* -o max_read=N from argv (0 when absent). libfuse 3.14 do_init fails the
     * mount with EPROTO unless conn->max_read equals it, so cvfuse_negotiate
     * uses this value rather than trusting the caller's option struct. */
    unsigned mount_max_read;
    int signals_installed;
    int mounted;

    /* loop state (loop.c) */
    atomic_int ran;          /* cvfuse_run may run once per session */
    sem_t wake;              /* posted by finishing workers and cvfuse_exit */
    cvfuse_worker *workers;  /* channel table (capacity CVSHIM_MAX_WORKERS); fds stay
                                open until destroy */
    atomic_int nworkers;     /* started workers; grows while the loop runs when every
                                worker is held by a blocking wait (cvfuse_blocking_wait_begin) */
    atomic_int blocked;      /* workers inside a blocking wait now */
    pthread_mutex_t grow_lock; /* serialises adding a worker */
    int want_clone;          /* cfg->clone_fd of the current run, for added workers */
    int debug;

    /* INIT bookkeeping (io.c): the unique of the INIT request whose reply has
     * not been written yet (0: none), and the error that reply carried. */
    _Atomic uint64_t init_unique;
    atomic_int init_error;

    /* Kernel passthrough (io.c). pt_config is written by cvfuse_negotiate inside
     * do_init, kernel_init_flags by the read hook on INIT, both before the INIT
     * reply, on the thread that processes INIT. pt_active is set once by the INIT
     * reply and cleared when BACKING_OPEN fails with EPERM. */
    int pt_config;               /* cvfuse_init_options.passthrough */
    int pt_test;                 /* CVFUSE_TEST_PASSTHROUGH knob, see io.c */
    uint64_t kernel_init_flags;  /* flags | flags2 << 32 of the INIT request */
    atomic_int pt_active;
    atomic_uint pt_logged;       /* bit per failure kind already logged */

    /* Hand-over (handover.c). pausing: the loop ends like an exit but the
     * session stays mounted and usable (cvfuse_pause). init_req: the kernel's
     * INIT request as read (header + fuse_init_in), replayed by the next
     * process, which cannot get a second INIT from the kernel. adopted_mnt:
     * set when this session took over an fd from an earlier process
     * (cvfuse_adopt); libfuse then does not know the mount point, so
     * cvfuse_unmount_and_destroy unmounts it itself. */
    atomic_int pausing;
    unsigned char init_req[CVSHIM_INIT_REQ_MAX];
    atomic_size_t init_req_len;
    char *adopted_mnt;
    int replay_error;            /* error of the swallowed INIT reply (replay) */
};

/* 1 on a thread replaying INIT for an adopted fd: cv_writev drops its replies
 * (the kernel answered the real INIT long ago and has no request waiting). */
extern __thread int cvshim_tl_swallow;

/* Lazy unmount of an adopted mount point (handover.c); logs failures. */
void cvshim_unmount_adopted(const char *mountpoint);

/* The loop of `s` should stop: the session exited, or a hand-over paused it. */
int cvshim_session_ending(struct cvfuse_session *s);

/* The worker running on this thread, NULL on any other thread (io.c). */
extern __thread cvfuse_worker *cvshim_tl_worker;
/* The session most recently created; fallback for cvfuse_negotiate when it is
 * not called on one of our workers (libfuse supports one signal-handled
 * session per process anyway: fuse_signals.c keeps a single instance). */
extern struct cvfuse_session *_Atomic cvshim_last_session;
struct cvfuse_session *cvshim_current_session(void);

/* io.c */
extern const struct fuse_custom_io cvshim_io;
/* loop.c brackets fuse_session_process_buf with these: the request's unique
 * and opcode become this thread's "current request" (what cvfuse_open_passthrough
 * marks). A spliced request (header still in the pipe) is "unknown". */
void cvshim_request_begin(const struct fuse_buf *buf);
void cvshim_request_end(void);
/* CVFUSE_TEST_PASSTHROUGH value for a new session (io.c). */
int cvshim_passthrough_test_mode(void);

/* numa.c: CPU sets for pinning. Returns the number of NUMA nodes that have
 * CPUs in the allowed set; when > 1, *sets receives one CPU_ALLOC'd set per
 * such node (allowed ∩ node) and *setsize their byte size. Free with
 * cvshim_free_node_sets. */
int cvshim_node_cpu_sets(cpu_set_t ***sets, size_t *setsize);
void cvshim_free_node_sets(cpu_set_t **sets, int n);

#endif /* CVSHIM_INTERNAL_H */
