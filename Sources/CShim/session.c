/*
 * session.c: cvfuse_session lifetime (new, mount, signal handlers, exit,
 * unmount + destroy) and the small libc helpers Swift cannot call directly.
 */
#include "cvshim_internal.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct cvfuse_session *_Atomic cvshim_last_session;

struct cvfuse_session *cvshim_current_session(void)
{
    cvfuse_worker *w = cvshim_tl_worker;
    return w ? w->s : atomic_load(&cvshim_last_session);
}

/* -o max_read=N as libfuse's own parser sees it (handles "-o a,b", "-oa,b"
 * and escaped commas), on a throwaway copy so the real args stay untouched.
 * Returns 0 when the option is absent, which is also what libfuse's
 * get_max_read() returns then. */
static unsigned parse_mount_max_read(const struct fuse_args *src)
{
    struct max_read_opt { unsigned max_read; } v = { 0 };
    const struct fuse_opt spec[] = {
        { "max_read=%u", offsetof(struct max_read_opt, max_read), 0 },
        FUSE_OPT_END
    };
    struct fuse_args copy = FUSE_ARGS_INIT(0, NULL);
    for (int i = 0; i < src->argc; i++) {
        if (fuse_opt_add_arg(&copy, src->argv[i]) != 0) {
            fuse_opt_free_args(&copy);
            return 0;
        }
    }
    /* A parse error is reported again, with context, by fuse_session_new. */
    if (fuse_opt_parse(&copy, &v, spec, NULL) != 0)
        v.max_read = 0;
    fuse_opt_free_args(&copy);
    return v.max_read;
}

cvfuse_session *cvfuse_new(int argc, char **argv, const struct fuse_lowlevel_ops *ops,
                           size_t ops_size, void *userdata)
{
    if (argc < 1 || argv == NULL || ops == NULL) {
        cvlog(FUSE_LOG_ERR, "cvfuse_new: need argv[0] and ops");
        return NULL;
    }
    cvfuse_session *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        cvlog(FUSE_LOG_ERR, "cvfuse_new: out of memory");
        return NULL;
    }
    /* FUSE_ARGS_INIT is a macro Swift cannot expand. We build an allocated
     * copy (fuse_opt_add_arg) instead of pointing at the caller's argv:
     * fuse_session_new parses it in place and may replace or free it, and it
     * must outlive the session (freed in cvfuse_unmount_and_destroy). */
    s->args = (struct fuse_args)FUSE_ARGS_INIT(0, NULL);
    for (int i = 0; i < argc; i++) {
        if (argv[i] == NULL || fuse_opt_add_arg(&s->args, argv[i]) != 0) {
            cvlog(FUSE_LOG_ERR, "cvfuse_new: bad or unallocatable argv[%d]", i);
            goto fail;
        }
    }
    s->mount_max_read = parse_mount_max_read(&s->args);
    s->pt_test = cvshim_passthrough_test_mode();

    pthread_mutex_init(&s->grow_lock, NULL);
    if (sem_init(&s->wake, 0, 0) != 0) {
        cvlog(FUSE_LOG_ERR, "cvfuse_new: sem_init: %s", strerror(errno));
        goto fail;
    }
    /* fuse_session_new prints its own reason (unknown option, ...) on failure. */
    s->se = fuse_session_new(&s->args, ops, ops_size, userdata);
    if (s->se == NULL) {
        sem_destroy(&s->wake);
        goto fail;
    }
    atomic_store(&cvshim_last_session, s);
    return s;

fail:
    fuse_opt_free_args(&s->args);   /* safe if fuse_session_new already freed it */
    free(s);
    return NULL;
}

int cvfuse_mount(cvfuse_session *s, const char *mountpoint)
{
    if (s == NULL || mountpoint == NULL)
        return -1;
    /* Prints the reason (fusermount3 / mount(2) error) itself. Supports
     * "/dev/fd/N" for an fd opened and mounted by a privileged parent. */
    if (fuse_session_mount(s->se, mountpoint) != 0)
        return -1;
    s->mounted = 1;

    /* Install the io hooks on the fd we just mounted. In libfuse 3.14
     * fuse_session_custom_io only checks fd >= 0 and that read/writev are
     * set, then stores se->fd = fd and a copy of the hooks: it neither opens
     * nor closes anything, so calling it after fuse_session_mount with that
     * same fd is safe, and fuse_session_unmount/destroy close se->fd as usual.
     * It must happen before the first request (INIT) is read, because do_init
     * decides the splice capabilities from which hooks are present. */
    int rc = fuse_session_custom_io(s->se, &cvshim_io, fuse_session_fd(s->se));
    if (rc != 0) {
        cvlog(FUSE_LOG_ERR, "fuse_session_custom_io: %s", strerror(-rc));
        fuse_session_unmount(s->se);
        s->mounted = 0;
        return -1;
    }
    return 0;
}

int cvfuse_install_signal_handlers(cvfuse_session *s)
{
    if (s == NULL)
        return -1;
    /* SIGTERM/SIGINT/SIGHUP -> fuse_session_exit (installed without
     * SA_RESTART, so the thread waiting in cvfuse_run wakes with EINTR);
     * SIGPIPE -> a no-op handler, i.e. ignored. Handlers are only installed
     * over SIG_DFL, so a handler the daemon set earlier wins. Our workers
     * block the exit signals (loop.c), so they land on another thread. */
    if (fuse_set_signal_handlers(s->se) != 0)
        return -1;
    s->signals_installed = 1;
    return 0;
}

void cvfuse_exit(cvfuse_session *s)
{
    if (s == NULL)
        return;
    /* Async-signal-safe: fuse_session_exit only stores se->exited = 1 in
     * 3.14, and sem_post is on POSIX's async-signal-safe list. The waiting
     * cvfuse_run thread then wakes the workers. */
    fuse_session_exit(s->se);
    sem_post(&s->wake);
}

void cvfuse_unmount_and_destroy(cvfuse_session *s)
{
    if (s == NULL)
        return;
    if (s->signals_installed) {
        fuse_remove_signal_handlers(s->se);
        s->signals_installed = 0;
    }
    /* Close the worker clones before unmounting, as libfuse's own loop does
     * (its workers drop their channels before fuse_session_unmount). They
     * stay open until now so that a late asynchronous reply can never be
     * written to an fd number the process has reused for something else. */
    for (int i = 0, n = atomic_load(&s->nworkers); i < n; i++) {
        if (s->workers[i].owns_fd && s->workers[i].fd >= 0)
            close(s->workers[i].fd);
        s->workers[i].fd = -1;
        s->workers[i].owns_fd = 0;
    }
    if (s->adopted_mnt != NULL) {
        /* An adopted fd (handover.c): libfuse has no mount point for it. */
        cvshim_unmount_adopted(s->adopted_mnt);
        free(s->adopted_mnt);
        s->adopted_mnt = NULL;
    }
    if (s->mounted) {
        /* Closes se->fd first (3.14 fuse_kern_unmount: a synchronous umount
         * could otherwise recurse into the fs), then umounts; lazily as root,
         * through fusermount3 otherwise. */
        fuse_session_unmount(s->se);
        s->mounted = 0;
    }
    /* Calls the destroy op if INIT happened and DESTROY never arrived. */
    fuse_session_destroy(s->se);
    s->se = NULL;

    struct cvfuse_session *expected = s;
    atomic_compare_exchange_strong(&cvshim_last_session, &expected, NULL);
    sem_destroy(&s->wake);
    free(s->workers);
    fuse_opt_free_args(&s->args);
    free(s);
}

struct fuse_session *cvfuse_fuse_session(cvfuse_session *s)
{
    return s ? s->se : NULL;
}

int cvfuse_errno(void)
{
    return errno;
}

int cvshim_session_ending(cvfuse_session *s)
{
    return fuse_session_exited(s->se) || atomic_load(&s->pausing);
}

int cvfuse_current_session_exiting(void)
{
    /* libfuse 3.14 has no public accessor for a request's session; our worker
     * thread-local knows which session it serves. */
    cvfuse_worker *w = cvshim_tl_worker;
    return (w != NULL && w->s != NULL && w->s->se != NULL) ? cvshim_session_ending(w->s) : 0;
}
