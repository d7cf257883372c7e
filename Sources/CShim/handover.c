/*
 * handover.c: restart without unmount (SIGUSR1), the C half.
 *
 * A FUSE connection lives as long as one fd of it is open, so a new daemon can
 * take over a mount if the old one passes its /dev/fuse fd on: here through
 * execve (the fd is the one fd left without FD_CLOEXEC). What libfuse 3.14
 * cannot do is adopt an already initialised connection: the INIT state of a
 * fuse_session is private and a session that has not seen INIT answers every
 * request with EIO. So the new process replays the kernel's original INIT
 * request (the old one kept it, io.c) through fuse_session_process_buf on its
 * own thread before any worker starts: libfuse and our init op negotiate
 * exactly as they did, and the reply is dropped (cvshim_tl_swallow) since the
 * kernel has no INIT waiting. Same options in, same capabilities out: the
 * new process is started with the old one's argv.
 *
 * What the kernel keeps across the switch: the mount, every open file (the
 * kernel's fh values), every inode it looked up (nodeids + lookup counts),
 * kernel passthrough backing ids, and every request not yet read (queued on
 * the connection, read by the new process). What must not be in flight: a
 * request read by an old worker clone and not answered, since closing that
 * clone at exec fails it with ECONNABORTED. cvfuse_pause ensures this (all our
 * replies are sent on the thread that runs the op, before it reads again).
 */
#include "cvshim_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/fuse.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

void cvfuse_pause(cvfuse_session *s)
{
    if (s == NULL)
        return;
    atomic_store(&s->pausing, 1);
    sem_post(&s->wake);   /* cvfuse_run re-checks and kicks blocked readers */
}

int cvfuse_prepare_rerun(cvfuse_session *s)
{
    if (s == NULL)
        return -EINVAL;
    /* cvfuse_run has joined every worker before returning; their clones are
     * not needed any more (a new run clones again). */
    for (int i = 0, n = atomic_load(&s->nworkers); i < n; i++) {
        if (s->workers[i].owns_fd && s->workers[i].fd >= 0)
            close(s->workers[i].fd);
    }
    free(s->workers);
    s->workers = NULL;
    atomic_store(&s->nworkers, 0);
    atomic_store(&s->blocked, 0);
    atomic_store(&s->pausing, 0);
    atomic_store(&s->ran, 0);
    return 0;
}

int cvfuse_session_fd(cvfuse_session *s)
{
    return s ? fuse_session_fd(s->se) : -1;
}

size_t cvfuse_init_request(cvfuse_session *s, void *buf, size_t cap)
{
    if (s == NULL)
        return 0;
    size_t n = atomic_load(&s->init_req_len);
    if (n == 0 || n > cap)
        return n;
    memcpy(buf, s->init_req, n);
    return n;
}

int cvfuse_adopt(cvfuse_session *s, int fd, const char *mountpoint, const void *init_req, size_t len,
                 int passthrough_active)
{
    if (s == NULL || mountpoint == NULL || init_req == NULL)
        return -EINVAL;
    const struct fuse_in_header *in = init_req;
    if (len < sizeof(*in) + 8 || len > CVSHIM_INIT_REQ_MAX || in->opcode != FUSE_INIT || in->len != len) {
        cvlog(FUSE_LOG_ERR, "hand-over: the saved INIT request is malformed (%zu bytes)", len);
        return -EINVAL;
    }
    if (fcntl(fd, F_GETFD) == -1) {
        int err = errno;
        cvlog(FUSE_LOG_ERR, "hand-over: fd %d is not open: %s", fd, strerror(err));
        return -err;
    }
    /* The new process must not pass the fd on to other programs it runs. */
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);

    /* "/dev/fd/N": libfuse 3.14 takes the fd as it is, without mounting, and
     * records no mount point (so fuse_session_unmount would do nothing). */
    char spec[32];
    snprintf(spec, sizeof(spec), "/dev/fd/%d", fd);
    if (fuse_session_mount(s->se, spec) != 0)
        return -EBADF;
    int rc = fuse_session_custom_io(s->se, &cvshim_io, fd);
    if (rc != 0) {
        cvlog(FUSE_LOG_ERR, "fuse_session_custom_io: %s", strerror(-rc));
        return rc;
    }
    s->adopted_mnt = strdup(mountpoint);
    if (s->adopted_mnt == NULL)
        return -ENOMEM;
    memcpy(s->init_req, init_req, len);
    atomic_store(&s->init_req_len, len);

    /* The kernel's offer as cv_read records it (passthrough decisions read it). */
    const struct fuse_init_in *ii = (const void *)(in + 1);
    uint64_t flags = ii->flags;
    if ((flags & (1u << 30)) && len >= sizeof(*in) + offsetof(struct fuse_init_in, flags2) + 4)
        flags |= (uint64_t)ii->flags2 << 32;
    s->kernel_init_flags = flags;

    /* Replay. libfuse reads the request from buf.mem and may keep no pointer
     * into it after process_buf returns. */
    void *copy = malloc(len);
    if (copy == NULL)
        return -ENOMEM;
    memcpy(copy, init_req, len);
    struct fuse_buf fb;
    memset(&fb, 0, sizeof(fb));
    fb.mem = copy;
    fb.size = len;
    s->replay_error = 1;   /* "no reply seen" until cv_writev records one */
    cvshim_tl_swallow = 1;
    fuse_session_process_buf(s->se, &fb);
    cvshim_tl_swallow = 0;
    free(copy);
    if (s->replay_error != 0 || fuse_session_exited(s->se)) {
        cvlog(FUSE_LOG_ERR, "hand-over: replaying INIT failed (reply error %d); the options must match the "
              "earlier process's", s->replay_error);
        return s->replay_error < 0 ? s->replay_error : -EPROTO;
    }
    atomic_store(&s->pt_active, passthrough_active ? 1 : 0);
    return 0;
}

int cvfuse_keep_fds_across_exec(const int *fds, int n)
{
    /* Everything else (sockets to the cluster, the web port, log files, worker
     * clones) closes at exec, so the new process can bind the same port. */
    if (syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) != 0) {
        int err = errno;
        cvlog(FUSE_LOG_ERR, "close_range(CLOEXEC): %s", strerror(err));
        return -err;
    }
    for (int i = 0; i < n; i++) {
        if (fcntl(fds[i], F_SETFD, 0) != 0) {
            int err = errno;
            cvlog(FUSE_LOG_ERR, "hand-over: clearing FD_CLOEXEC on fd %d: %s", fds[i], strerror(err));
            return -err;
        }
    }
    return 0;
}

void cvfuse_restore_fds_after_failed_exec(const int *fds, int n)
{
    for (int i = 0; i < n; i++)
        (void)fcntl(fds[i], F_SETFD, FD_CLOEXEC);
}

void cvshim_unmount_adopted(const char *mountpoint)
{
    /* As libfuse's fuse_kern_unmount: lazily, so that an unmount never waits
     * on this daemon; through fusermount3 when we may not umount ourselves. */
    if (umount2(mountpoint, MNT_DETACH) == 0)
        return;
    int err = errno;
    if (err == EINVAL || err == ENOENT)
        return;   /* already unmounted (e.g. by an external umount) */
    if (err != EPERM) {
        cvlog(FUSE_LOG_ERR, "umount %s: %s", mountpoint, strerror(err));
        return;
    }
    char *argv[] = { "fusermount3", "-u", "-q", "-z", "--", (char *)mountpoint, NULL };
    pid_t pid;
    if (posix_spawnp(&pid, "fusermount3", NULL, NULL, argv, environ) != 0) {
        cvlog(FUSE_LOG_ERR, "umount %s: not permitted, and fusermount3 could not be started", mountpoint);
        return;
    }
    int status;
    while (waitpid(pid, &status, 0) == -1 && errno == EINTR) {
    }
}
