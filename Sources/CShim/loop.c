/*
 * loop.c: our multithreaded session loop (cvfuse_run).
 *
 * Instead of fuse_session_loop_mt (a macro over a versioned symbol, threads
 * created on demand and cancelled at exit), cvfuse_run starts a fixed set of
 * worker threads. Each one:
 *   - reads /dev/fuse through its own fd: a FUSE_DEV_IOC_CLONE clone of the
 *     session fd when cfg->clone_fd (so each has its own processing list in
 *     the kernel), else the session fd itself; the fd lives in the worker
 *     struct, reached by io.c through a thread-local. (libfuse's own channel
 *     plumbing, fuse_session_receive_buf_int/process_buf_int with a struct
 *     fuse_chan, is not exported by libfuse3.so 3.14, so the io hooks
 *     substitute the fd instead);
 *   - loops fuse_session_receive_buf / fuse_session_process_buf with a
 *     per-thread struct fuse_buf;
 *   - blocks SIGTERM/SIGINT/SIGHUP/SIGQUIT like libfuse's workers, so those
 *     reach another thread (fuse_set_signal_handlers -> session exit);
 *   - is optionally pinned to the CPUs of one NUMA node.
 *
 * Pausing (handover.c): cvfuse_pause ends the loop the same way without
 * ending the session: each worker finishes the request it is processing
 * (every reply is sent on the thread that runs the op), no worker reads
 * another one, and requests the kernel still holds stay queued for the next
 * reader of the connection.
 *
 * Ending: the session ends on unmount (every reader, clones included, gets
 * ENODEV and libfuse calls fuse_session_exit), on a signal, on cvfuse_exit or
 * on a worker error. Workers blocked in read()/splice() on /dev/fuse are then
 * woken with CVSHIM_WAKE_SIGNAL (a no-op handler without SA_RESTART, so the
 * syscall returns EINTR), sent only to workers that are inside receive, and
 * re-sent every tick until they leave. cvfuse_run returns after joining all.
 *
 * Request buffers: libfuse 3.14 owns them. fuse_session_receive_buf mallocs
 * buf.mem (se->bufsize: 256 pages + 4 KiB before INIT, max_write + 4 KiB
 * after) on a worker's first request and reuses it for every later request on
 * that thread; we only free it when the worker exits. Being allocated and
 * first written by the (possibly pinned) worker, its pages are node-local.
 * The shim allocates no request buffers of its own.
 *
 * Locks: none (see cvshim_internal.h). Worker fields are written by the
 * worker and read by cvfuse_run only after pthread_join, except in_receive
 * and finished, which are atomics.
 */
#include "cvshim_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>   /* FUSE_DEV_IOC_CLONE, fuse_in_header */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

/* Interrupts a worker blocked on /dev/fuse at exit. SIGUSR2: neither libfuse
 * nor glibc uses it (change it here if the daemon ever needs it). The handler
 * does nothing and is installed without SA_RESTART, so the read/splice returns
 * EINTR; installed by the first cvfuse_run of the process and kept. */
#define CVSHIM_WAKE_SIGNAL SIGUSR2

/* How often the waiting thread re-checks the session and re-sends the wake-up
 * signal. Needed because a signal can land between a worker's exited check
 * and its read() (then it is consumed and the read still blocks), and because
 * SIGTERM may be delivered to some other thread of the process, which only
 * sets se->exited. 100 ms bounds shutdown latency in those cases for ~10
 * wake-ups/s of an otherwise idle thread. */
#define CVSHIM_WAIT_TICK_NS (100L * 1000 * 1000)

/* worker_threads above this is a configuration error: each worker holds an
 * fd, a 1 MiB + 4 KiB request buffer and (with splice) a 2 MiB pipe. */
#define CVSHIM_MAX_WORKERS 1024

/* Kernel device every clone is opened from (libfuse's fuse_clone_chan uses the
 * same path). */
#define CVSHIM_FUSE_DEV "/dev/fuse"

static atomic_int logged_clone_failure;
static atomic_int logged_numa_noop;

static void wake_handler(int sig)
{
    (void)sig;   /* its only job is to make the blocked syscall return EINTR */
}

static pthread_once_t wake_once = PTHREAD_ONCE_INIT;
static int wake_install_error;

static void do_install_wake_handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = wake_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;   /* no SA_RESTART: the whole point */
    if (sigaction(CVSHIM_WAKE_SIGNAL, &sa, NULL) != 0)
        wake_install_error = errno;
}

/* 0, or the errno of sigaction. */
static int install_wake_handler(void)
{
    pthread_once(&wake_once, do_install_wake_handler);
    return wake_install_error;
}

/* Give the worker its own /dev/fuse fd bound to the session's connection. On
 * failure (e.g. a kernel without FUSE_DEV_IOC_CLONE) it keeps the session fd,
 * as libfuse does. */
static void clone_channel(cvfuse_worker *w)
{
    int fd = open(CVSHIM_FUSE_DEV, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        if (!atomic_exchange(&logged_clone_failure, 1))
            cvlog(FUSE_LOG_ERR, "open %s: %s; workers share the session fd", CVSHIM_FUSE_DEV, strerror(err));
        return;
    }
    uint32_t master = (uint32_t)fuse_session_fd(w->s->se);
    if (ioctl(fd, FUSE_DEV_IOC_CLONE, &master) == -1) {
        int err = errno;
        close(fd);
        if (!atomic_exchange(&logged_clone_failure, 1))
            cvlog(FUSE_LOG_ERR, "FUSE_DEV_IOC_CLONE: %s; workers share the session fd", strerror(err));
        return;
    }
    w->fd = fd;
    w->owns_fd = 1;
}

static void log_request(const cvfuse_worker *w, const struct fuse_buf *buf, int len)
{
    if (buf->flags & FUSE_BUF_IS_FD) {
        /* Spliced: the header is still in libfuse's pipe. Only requests of
         * header + write_in + 1 page or more are left there (in practice WRITE). */
        cvlog(FUSE_LOG_DEBUG, "w%d: %d bytes spliced", w->index, len);
        return;
    }
    const struct fuse_in_header *in = buf->mem;
    cvlog(FUSE_LOG_DEBUG, "w%d: opcode %u unique %llu nodeid %llu len %u pid %u", w->index,
          in->opcode, (unsigned long long)in->unique, (unsigned long long)in->nodeid, in->len, in->pid);
}

static void *worker_main(void *arg)
{
    cvfuse_worker *w = arg;
    cvfuse_session *s = w->s;
    struct fuse_session *se = s->se;

    char name[16];   /* pthread_setname_np limit: 15 chars + NUL */
    snprintf(name, sizeof(name), "cvfuse-%d", w->index);
    pthread_setname_np(pthread_self(), name);   /* cosmetic; failure ignored */

    cvshim_tl_worker = w;
    if (w->want_clone)
        clone_channel(w);

    struct fuse_buf buf;
    memset(&buf, 0, sizeof(buf));
    for (;;) {
        /* Workaround (3.14): the read() fallback of fuse_session_receive_buf
         * sets buf.size but never buf.flags, so after a spliced request the
         * buffer could keep FUSE_BUF_IS_FD and the next request would be
         * taken from the (empty) pipe. The splice paths set flags themselves. */
        buf.flags = 0;
        /* in_receive before the exited check: whoever ends the session sets
         * exited first and reads in_receive second, so either we see exited
         * here or cvfuse_run sees us in receive and signals us. */
        atomic_store(&w->in_receive, 1);
        if (cvshim_session_ending(s)) {
            atomic_store(&w->in_receive, 0);
            break;
        }
        int res = fuse_session_receive_buf(se, &buf);
        atomic_store(&w->in_receive, 0);

        /* EINTR: our wake-up signal (or any other); loop re-checks exited.
         * EAGAIN: libfuse's "nonblocking I/O"; our fds are blocking, harmless.
         * ENOENT: the request was interrupted; libfuse restarts on it in its
         * read() path but returns it from the splice path. */
        if (res == -EINTR || res == -EAGAIN || res == -ENOENT)
            continue;
        /* 0: the session exited. libfuse also maps ENODEV (unmounted, or
         * aborted through /sys/fs/fuse/connections) to exit + 0. */
        if (res == 0)
            break;
        if (res < 0) {
            /* libfuse already printed "fuse: reading device: ..." */
            w->error = res;
            fuse_session_exit(se);
            break;
        }
        if (s->debug)
            log_request(w, &buf, res);
        /* The request's unique/opcode become this thread's current request
         * while its op runs (cvfuse_open_passthrough marks its reply). */
        cvshim_request_begin(&buf);
        fuse_session_process_buf(se, &buf);
        cvshim_request_end();
    }

    free(buf.mem);   /* libfuse's allocation; NULL if no request was received */
    /* libfuse's per-thread splice pipe is freed by its pthread key destructor
     * when this thread exits (the key lives until fuse_session_destroy). */
    atomic_store(&w->finished, 1);
    sem_post(&s->wake);
    return NULL;
}

/* FUSE_THREAD_STACK: honoured as libfuse's fuse_start_thread does, so one
 * knob sizes worker stacks either way (Swift code runs on these threads). */
static void apply_stack_size(pthread_attr_t *attr)
{
    const char *env = getenv("FUSE_THREAD_STACK");
    if (env == NULL)
        return;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(env, &end, 10);
    if (errno != 0 || end == env || *end != '\0' || pthread_attr_setstacksize(attr, (size_t)v) != 0)
        cvlog(FUSE_LOG_ERR, "invalid FUSE_THREAD_STACK=%s, using the default stack size", env);
}

static void kick_receivers(cvfuse_session *s)
{
    for (int i = 0, n = atomic_load(&s->nworkers); i < n; i++) {
        cvfuse_worker *w = &s->workers[i];
        /* Finished threads are not joined yet, so tid is still valid. A worker
         * that left receive just after we read in_receive may take the signal
         * while processing: one EINTR in the request being served when the
         * session is already ending. */
        if (!atomic_load(&w->finished) && atomic_load(&w->in_receive))
            pthread_kill(w->tid, CVSHIM_WAKE_SIGNAL);
    }
}

/* A blocking wait (SETLKW, flock without LOCK_NB) holds its worker for as long as
 * the lock is taken elsewhere. If every worker were held so, no thread would read
 * the request that lets the lock go (the holder's unlock or close on this same
 * mount): a hang. So the last free worker is never taken: when a wait begins and
 * no other worker would be left reading, one more is started (as libfuse's own
 * mt loop starts threads when none is idle). Added workers live until the run
 * ends; CVSHIM_MAX_WORKERS bounds them. */
static int logged_grow_cap;

void cvfuse_blocking_wait_begin(void)
{
    cvfuse_worker *w = cvshim_tl_worker;
    if (w == NULL)
        return;
    cvfuse_session *s = w->s;
    int blocked = atomic_fetch_add(&s->blocked, 1) + 1;
    if (atomic_load(&s->nworkers) - blocked >= 1)
        return;
    pthread_mutex_lock(&s->grow_lock);
    int n = atomic_load(&s->nworkers);
    if (n - atomic_load(&s->blocked) < 1 && !cvshim_session_ending(s)) {
        if (n >= CVSHIM_MAX_WORKERS) {
            if (!logged_grow_cap++)
                cvlog(FUSE_LOG_ERR, "all %d workers wait for locks; no worker left to read requests", n);
        } else {
            cvfuse_worker *nw = &s->workers[n];
            memset(nw, 0, sizeof(*nw));
            nw->s = s;
            nw->index = n;
            nw->want_clone = s->want_clone;
            nw->fd = fuse_session_fd(s->se);
            pthread_attr_t attr;
            pthread_attr_init(&attr);
            apply_stack_size(&attr);
            /* The new thread inherits this worker's mask: exit signals blocked. */
            int rc = pthread_create(&nw->tid, &attr, worker_main, nw);
            pthread_attr_destroy(&attr);
            if (rc == 0) {
                atomic_store(&s->nworkers, n + 1);
                cvlog(FUSE_LOG_INFO, "worker %d added: %d of %d workers wait for locks", n, atomic_load(&s->blocked), n + 1);
            } else {
                cvlog(FUSE_LOG_ERR, "adding a worker: pthread_create: %s", strerror(rc));
            }
        }
    }
    pthread_mutex_unlock(&s->grow_lock);
}

void cvfuse_blocking_wait_end(void)
{
    cvfuse_worker *w = cvshim_tl_worker;
    if (w != NULL)
        atomic_fetch_sub(&w->s->blocked, 1);
}

int cvfuse_run(cvfuse_session *s, const cvfuse_loop_config *cfg)
{
    if (s == NULL || cfg == NULL)
        return -EINVAL;
    if (atomic_exchange(&s->ran, 1))
        return -EALREADY;   /* the channel table belongs to one run */

    int n = cfg->worker_threads;
    if (n < 1)
        n = 1;
    if (n > CVSHIM_MAX_WORKERS) {
        cvlog(FUSE_LOG_ERR, "worker_threads %d capped at %d", n, CVSHIM_MAX_WORKERS);
        n = CVSHIM_MAX_WORKERS;
    }
    /* Room for workers added during the run (cvfuse_blocking_wait_begin); ~100
     * bytes each, threads only exist once added. */
    s->workers = calloc((size_t)CVSHIM_MAX_WORKERS, sizeof(*s->workers));
    if (s->workers == NULL)
        return -ENOMEM;
    s->debug = cfg->debug;
    s->want_clone = cfg->clone_fd;
    atomic_store(&s->blocked, 0);

    /* NUMA plan: worker i -> node (i mod nodes), CPUs = node ∩ allowed. */
    cpu_set_t **node_sets = NULL;
    size_t set_size = 0;
    int nodes = 1;
    if (cfg->numa_pin) {
        nodes = cvshim_node_cpu_sets(&node_sets, &set_size);
        if (node_sets == NULL) {
            if (!atomic_exchange(&logged_numa_noop, 1))
                cvlog(FUSE_LOG_INFO, "numa: 1 node, pinning is a no-op");
        } else {
            cvlog(FUSE_LOG_INFO, "numa: %d nodes with allowed CPUs; worker i pinned to node (i mod %d)",
                  nodes, nodes);
        }
    }

    /* Once per process and never restored: sessions of several mounts run (and
     * end) concurrently, and a run that restored SIG_DFL while another still
     * kicks its workers would let SIGUSR2 kill the process. */
    int err = install_wake_handler();
    if (err != 0) {
        cvlog(FUSE_LOG_ERR, "sigaction(SIGUSR2): %s", strerror(err));
        cvshim_free_node_sets(node_sets, nodes);
        return -err;
    }

    /* Workers inherit this mask: the exit signals stay with other threads. */
    sigset_t block, old_mask;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGQUIT);
    pthread_sigmask(SIG_BLOCK, &block, &old_mask);

    int result = 0;
    int started = 0;
    for (int i = 0; i < n; i++) {
        cvfuse_worker *w = &s->workers[i];
        w->s = s;
        w->index = i;
        w->want_clone = cfg->clone_fd;
        w->fd = fuse_session_fd(s->se);
        w->owns_fd = 0;

        pthread_attr_t attr;
        pthread_attr_init(&attr);
        apply_stack_size(&attr);
        /* Pin through the attribute so the thread starts on its node and its
         * stack and request buffer are first touched there. */
        if (node_sets != NULL) {
            int rc = pthread_attr_setaffinity_np(&attr, set_size, node_sets[i % nodes]);
            if (rc != 0)
                cvlog(FUSE_LOG_ERR, "worker %d: pthread_attr_setaffinity_np: %s (not pinned)", i, strerror(rc));
        }
        int rc = pthread_create(&w->tid, &attr, worker_main, w);
        pthread_attr_destroy(&attr);
        if (rc != 0) {
            cvlog(FUSE_LOG_ERR, "worker %d: pthread_create: %s", i, strerror(rc));
            result = -rc;
            fuse_session_exit(s->se);
            break;
        }
        started++;
        atomic_store(&s->nworkers, started);   /* only started workers are kicked and joined */
    }
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    cvshim_free_node_sets(node_sets, nodes);

    /* Wait until every worker left its loop; when the session has exited,
     * wake the ones still blocked on /dev/fuse. */
    for (;;) {
        int live = 0;
        for (int i = 0, nw = atomic_load(&s->nworkers); i < nw; i++)
            live += !atomic_load(&s->workers[i].finished);
        if (live == 0)
            break;
        if (cvshim_session_ending(s))
            kick_receivers(s);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += CVSHIM_WAIT_TICK_NS;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec += 1;
            ts.tv_nsec -= 1000000000L;
        }
        /* Monotonic, so wall-clock jumps cannot stretch the tick. EINTR (an
         * exit signal on this thread) and ETIMEDOUT just loop. */
        sem_clockwait(&s->wake, CLOCK_MONOTONIC, &ts);
    }
    /* Joined under grow_lock: no worker can be added once we got here (every
     * worker has finished, so none is in a blocking wait that could add one). */
    pthread_mutex_lock(&s->grow_lock);
    for (int i = 0, nw = atomic_load(&s->nworkers); i < nw; i++)
        pthread_join(s->workers[i].tid, NULL);
    pthread_mutex_unlock(&s->grow_lock);

    /* Result: a start failure, else the first worker error, else a refused
     * INIT (e.g. -EPROTO), else CVFUSE_RUN_PAUSED for a hand-over pause of a
     * session that is still alive, else 0 for a clean end (signal, unmount,
     * exit). */
    for (int i = 0, nw = atomic_load(&s->nworkers); i < nw && result == 0; i++)
        result = s->workers[i].error;
    if (result == 0) {
        int init_error = atomic_load(&s->init_error);
        if (init_error < 0)
            result = init_error;
    }
    if (result == 0 && atomic_load(&s->pausing) && !fuse_session_exited(s->se))
        result = CVFUSE_RUN_PAUSED;
    return result;
}
