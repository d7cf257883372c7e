/*
 * io.c: THE ONLY PLACE WHERE /dev/fuse IS READ OR WRITTEN.
 *
 * cvfuse_mount installs these hooks with fuse_session_custom_io, so libfuse
 * 3.14 routes every request read (io.read, io.splice_receive) and every reply
 * and notification (io.writev, io.splice_send) through this file. Kernel
 * passthrough (patching the INIT reply and OPEN/CREATE replies, see
 * /work/shared/spikes/fuse-passthrough/REPORT.md) is meant to be added HERE
 * and nowhere else. What a patch can see in 3.14:
 *   - The INIT request always arrives through read(): libfuse only wants
 *     FUSE_CAP_SPLICE_READ after INIT (conn.want is 0 before do_init).
 *   - INIT, OPEN and CREATE replies always leave through writev(): libfuse
 *     only splices fuse_reply_data payloads of at least 2 pages
 *     (fuse_send_data_iov), everything else goes through fuse_send_msg.
 *   - Once SPLICE_READ is negotiated, requests of header + write_in + 1 page
 *     or more arrive through splice_receive into libfuse's per-thread pipe;
 *     this hook cannot look at them without tee(2). OPEN/CREATE requests are
 *     far smaller, but libfuse copies small ones out of the pipe itself, after
 *     the hook returned, so a hook that must see OPEN requests has to key on
 *     the reply (writev) or turn SPLICE_READ off.
 *
 * Which fd: libfuse passes `ch ? ch->fd : se->fd`; we call the public
 * fuse_session_receive_buf/process_buf (ch == NULL), so it always passes the
 * session fd. The hooks substitute the worker's own fd (a FUSE_DEV_IOC_CLONE
 * clone when clone_fd) for reads, and the thread's reply channel for writes:
 * the kernel looks a reply up in the processing list of the fd it is written
 * to, so a reply written to any other fd than the one its request was read
 * from fails with ENOENT and the request never completes.
 *
 * errno: every hook returns the syscall's result with errno exactly as the
 * syscall left it; libfuse reads errno right after the hook returns.
 */
#include "cvshim_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>   /* fuse_in_header / fuse_out_header / FUSE_INIT (kernel ABI) */
#include <sys/uio.h>
#include <unistd.h>

__thread cvfuse_worker *cvshim_tl_worker;

/* Reply-channel override for replies sent from a thread that did not receive
 * the request (cvfuse_set_reply_channel); -1: none. */
static __thread int tl_reply_fd = -1;

static inline int in_fd(int libfuse_fd)
{
    cvfuse_worker *w = cvshim_tl_worker;
    return w ? w->fd : libfuse_fd;
}

static inline int out_fd(int libfuse_fd)
{
    int fd = tl_reply_fd;
    return fd >= 0 ? fd : in_fd(libfuse_fd);
}

int cvfuse_current_channel(void)
{
    cvfuse_worker *w = cvshim_tl_worker;
    return w ? w->fd : -1;
}

void cvfuse_set_reply_channel(int channel)
{
    tl_reply_fd = channel;
}

/* ---- hooks ---------------------------------------------------------------- */

static ssize_t cv_read(int fd, void *buf, size_t len, void *userdata)
{
    ssize_t n = read(in_fd(fd), buf, len);
    /* Remember the INIT request so cv_writev can see how libfuse answered it
     * (cvfuse_run reports a refused INIT, e.g. EPROTO, as its result). */
    if (n >= (ssize_t)sizeof(struct fuse_in_header)) {
        const struct fuse_in_header *in = buf;
        cvfuse_worker *w = cvshim_tl_worker;
        if (in->opcode == FUSE_INIT && w)
            atomic_store(&w->s->init_unique, in->unique);
    }
    return n;
}

static ssize_t cv_writev(int fd, struct iovec *iov, int count, void *userdata)
{
    /* iov[0] is always libfuse's fuse_out_header (fuse_send_msg). The INIT
     * reply is written by the worker that read and processed INIT. */
    cvfuse_worker *w = cvshim_tl_worker;
    if (w) {
        uint64_t init = atomic_load_explicit(&w->s->init_unique, memory_order_relaxed);
        if (init != 0 && count > 0 && iov[0].iov_len >= sizeof(struct fuse_out_header)) {
            const struct fuse_out_header *out = iov[0].iov_base;
            if (out->unique == init) {
                atomic_store(&w->s->init_error, out->error);
                atomic_store(&w->s->init_unique, 0);
            }
        }
    }
    return writev(out_fd(fd), iov, count);
}

static ssize_t cv_splice_receive(int fdin, off_t *offin, int fdout, off_t *offout,
                                 size_t len, unsigned int flags, void *userdata)
{
    /* fdin: /dev/fuse (substituted); fdout: libfuse's per-thread pipe. */
    return splice(in_fd(fdin), offin, fdout, offout, len, flags);
}

static ssize_t cv_splice_send(int fdin, off_t *offin, int fdout, off_t *offout,
                              size_t len, unsigned int flags, void *userdata)
{
    /* fdin: libfuse's per-thread pipe holding header + data; fdout: /dev/fuse. */
    return splice(fdin, offin, out_fd(fdout), offout, len, flags);
}

/* The splice hooks must be present: libfuse 3.14 do_init only offers
 * FUSE_CAP_SPLICE_WRITE/MOVE when io->splice_send != NULL and
 * FUSE_CAP_SPLICE_READ when io->splice_receive != NULL (with custom io and no
 * hooks it silently turns splice off; the spike measured ~1.2 GiB/s then). */
const struct fuse_custom_io cvshim_io = {
    .writev = cv_writev,
    .read = cv_read,
    .splice_receive = cv_splice_receive,
    .splice_send = cv_splice_send,
};

/* ---- READ replies ------------------------------------------------------------
 * Both go through fuse_reply_data, which splices when FUSE_CAP_SPLICE_WRITE was
 * negotiated, the payload is >= 2 pages and the thread's pipe could be grown to
 * hold header + payload (F_SETPIPE_SZ; cvfuse_negotiate logs once when that is
 * impossible). Otherwise libfuse falls back to writev through cv_writev. */

int cvfuse_reply_data_mem(fuse_req_t req, const void *buf, size_t size)
{
    struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);
    bv.buf[0].mem = (void *)buf;   /* libfuse only reads it */
    /* SPLICE_MOVE: with a memory source libfuse write()s the bytes into its
     * pipe (one copy, like writev) and splices the pipe to /dev/fuse; MOVE lets
     * the kernel take those pipe pages instead of copying them again. Without
     * splice, a single memory buffer goes out with writev and no extra copy. */
    return fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
}

int cvfuse_reply_data_fd(fuse_req_t req, int fd, off_t off, size_t size)
{
    struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);
    bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;  /* pread-style at `off` */
    bv.buf[0].fd = fd;
    bv.buf[0].pos = off;
    /* No SPLICE_MOVE: the pipe holds the source file's page-cache pages, and
     * moving them would evict them from that file (a local block file that
     * other readers share). Without splice libfuse preads into a
     * posix_memalign'd bounce buffer and writevs it. A short read at EOF
     * shortens the reply, as read(2) would. */
    return fuse_reply_data(req, &bv, 0);
}
