/*
 * io.c: THE ONLY PLACE WHERE /dev/fuse IS READ OR WRITTEN.
 *
 * cvfuse_mount installs these hooks with fuse_session_custom_io, so libfuse
 * 3.14 routes every request read (io.read, io.splice_receive) and every reply
 * and notification (io.writev, io.splice_send) through this file. Kernel
 * passthrough (patching the INIT reply and OPEN/CREATE replies, see
 * /work/shared/spikes/fuse-passthrough/REPORT.md) lives HERE and nowhere
 * else (second half of this file). What a patch can see in 3.14:
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
 *
 * Kernel passthrough (second half of this file):
 *   - cv_read records the INIT request's flags (flags | flags2 << 32): does
 *     the kernel offer FUSE_PASSTHROUGH?
 *   - cv_writev patches the INIT reply (FUSE_INIT_EXT, FUSE_PASSTHROUGH in
 *     flags2, max_stack_depth) when the config asks for it, the kernel offers
 *     it, the reply has no writeback cache and we have CAP_SYS_ADMIN, and logs
 *     once why not otherwise.
 *   - Replies are matched to requests by `unique`: loop.c tells us the unique
 *     and opcode of the request each worker is processing
 *     (cvshim_request_begin; taken from libfuse's buffer after receive, so
 *     spliced-in small requests count too). The open op calls
 *     cvfuse_open_passthrough(req, id) on that thread, which files
 *     (reply fd, unique) -> backing id in a small lock-free table; cv_writev
 *     takes the entry when the reply with that unique goes to that fd, from
 *     whichever thread sends it, and rewrites the fuse_open_out at the end of
 *     the payload (OPEN: the whole payload; CREATE: after fuse_entry_out).
 *     Keyed by fd too because uniques are per connection and one process may
 *     serve several mounts.
 *   - CVFUSE_TEST_PASSTHROUGH (tests only): "no-kernel-support" hides
 *     FUSE_PASSTHROUGH in the recorded INIT flags, as on a kernel without it;
 *     "backing-eperm" makes BACKING_OPEN fail with EPERM, as without
 *     CAP_SYS_ADMIN in the initial user namespace.
 */
#include "cvshim_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>   /* capget data layout, CAP_SYS_ADMIN */
#include <linux/fuse.h>   /* fuse_in_header / fuse_out_header / FUSE_INIT (kernel ABI) */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

/* ---- kernel ABI newer than the installed headers --------------------------
 * Debian 12's <linux/fuse.h> is protocol 7.38; passthrough arrived in 7.40
 * (Linux 6.9). These follow the 7.40+ layout; the asserts pin the offsets the
 * patches write. */
#define CVSHIM_INIT_EXT         (1u << 30)
#define CVSHIM_WRITEBACK_CACHE  (1u << 16)
#define CVSHIM_PASSTHROUGH      (1ull << 37)   /* flags2 bit 5 */
#define CVSHIM_FOPEN_DIRECT_IO  (1u << 0)
#define CVSHIM_FOPEN_NOFLUSH    (1u << 5)
#define CVSHIM_FOPEN_PARALLEL_DIRECT_WRITES (1u << 6)
#define CVSHIM_FOPEN_PASSTHROUGH (1u << 7)
/* The only open flags the kernel accepts together with FOPEN_PASSTHROUGH
 * (fs/fuse/iomode.c); KEEP_CACHE, CACHE_DIR, NONSEEKABLE or STREAM -> EIO. */
#define CVSHIM_FOPEN_PASSTHROUGH_MASK \
    (CVSHIM_FOPEN_PASSTHROUGH | CVSHIM_FOPEN_DIRECT_IO | CVSHIM_FOPEN_PARALLEL_DIRECT_WRITES | CVSHIM_FOPEN_NOFLUSH)
/* Backing files must live on a file system of stack depth < this (ext4, xfs,
 * tmpfs: 0; overlayfs: 1 -> ELOOP). 1 keeps this mount usable below overlayfs. */
#define CVSHIM_MAX_STACK_DEPTH 1

struct cvshim_init_in_head {
    uint32_t major, minor, max_readahead, flags, flags2;
};
struct cvshim_init_out {
    uint32_t major, minor, max_readahead, flags;
    uint16_t max_background, congestion_threshold;
    uint32_t max_write, time_gran;
    uint16_t max_pages, map_alignment;
    uint32_t flags2;
    uint32_t max_stack_depth;    /* 'unused[0]' in libfuse 3.14, always 0 there */
    uint16_t request_timeout;
    uint16_t unused[11];
};
struct cvshim_open_out {
    uint64_t fh;
    uint32_t open_flags;
    int32_t backing_id;          /* 'padding' before 7.40 */
};
struct cvshim_backing_map {
    int32_t fd;
    uint32_t flags;
    uint64_t padding;
};
#define CVSHIM_DEV_IOC_BACKING_OPEN  _IOW(229, 1, struct cvshim_backing_map)
#define CVSHIM_DEV_IOC_BACKING_CLOSE _IOW(229, 2, uint32_t)

_Static_assert(sizeof(struct cvshim_init_out) == sizeof(struct fuse_init_out), "fuse_init_out size");
_Static_assert(offsetof(struct cvshim_init_out, flags2) == offsetof(struct fuse_init_out, flags2), "flags2");
_Static_assert(offsetof(struct cvshim_init_out, max_stack_depth) == 36, "max_stack_depth");
_Static_assert(sizeof(struct cvshim_open_out) == sizeof(struct fuse_open_out), "fuse_open_out size");
_Static_assert(offsetof(struct cvshim_open_out, backing_id) == 12, "backing_id");
_Static_assert(sizeof(struct fuse_entry_out) == 128, "fuse_entry_out (CREATE reply head)");

/* CVFUSE_TEST_PASSTHROUGH values (see the header comment). */
enum { CVSHIM_PT_TEST_NONE = 0, CVSHIM_PT_TEST_NO_KERNEL = 1, CVSHIM_PT_TEST_EPERM = 2 };

static int pt_patch_init(cvfuse_session *s, int fd, struct iovec *iov, int count);
static int pt_take(int fd, uint64_t unique, uint32_t *opcode, int32_t *backing_id);
static ssize_t pt_patch_open(int fd, struct iovec *iov, int count, uint32_t opcode, int32_t backing_id);
static _Atomic int pt_pending;   /* marked replies not yet written (all sessions) */

__thread cvfuse_worker *cvshim_tl_worker;
__thread int cvshim_tl_swallow;

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
        if (in->opcode == FUSE_INIT && w) {
            int err = errno;
            /* The kernel's offer, for the passthrough decision in cv_writev
             * (same thread: INIT is processed where it was read, and the
             * kernel sends nothing else before it is answered). */
            const struct cvshim_init_in_head *ii = (const void *)(in + 1);
            const size_t head = sizeof(struct fuse_in_header);
            uint64_t flags = 0;
            if ((size_t)n >= head + offsetof(struct cvshim_init_in_head, flags2)) {
                flags = ii->flags;
                if ((flags & CVSHIM_INIT_EXT) && (size_t)n >= head + sizeof(*ii))
                    flags |= (uint64_t)ii->flags2 << 32;
            }
            if (w->s->pt_test == CVSHIM_PT_TEST_NO_KERNEL)
                flags &= ~CVSHIM_PASSTHROUGH;
            w->s->kernel_init_flags = flags;
            atomic_store(&w->s->init_unique, in->unique);
            /* Kept for a hand-over: the next process replays it (handover.c). */
            size_t keep = (size_t)n < sizeof(w->s->init_req) ? (size_t)n : sizeof(w->s->init_req);
            memcpy(w->s->init_req, buf, keep);
            atomic_store(&w->s->init_req_len, keep);
            errno = err;
        }
    }
    return n;
}

static ssize_t cv_writev(int fd, struct iovec *iov, int count, void *userdata)
{
    /* iov[0] is always libfuse's fuse_out_header (fuse_send_msg). The INIT
     * reply is written by the worker that read and processed INIT. */
    if (cvshim_tl_swallow) {
        /* Replayed INIT of an adopted fd (handover.c): the kernel has no such
         * request; report the reply as written and keep its error. */
        size_t total = 0;
        for (int i = 0; i < count; i++)
            total += iov[i].iov_len;
        if (count >= 1 && iov[0].iov_len >= sizeof(struct fuse_out_header)) {
            cvfuse_session *cs = cvshim_current_session();
            if (cs)
                cs->replay_error = ((const struct fuse_out_header *)iov[0].iov_base)->error;
        }
        return (ssize_t)total;
    }
    const int ofd = out_fd(fd);
    if (count < 1 || iov[0].iov_len < sizeof(struct fuse_out_header))
        return writev(ofd, iov, count);
    const struct fuse_out_header *out = iov[0].iov_base;
    cvfuse_worker *w = cvshim_tl_worker;
    if (w) {
        uint64_t init = atomic_load_explicit(&w->s->init_unique, memory_order_relaxed);
        if (init != 0 && out->unique == init) {
            atomic_store(&w->s->init_error, out->error);
            atomic_store(&w->s->init_unique, 0);
            if (out->error == 0)
                return pt_patch_init(w->s, ofd, iov, count);
        }
    }
    /* A reply marked by cvfuse_open_passthrough. The entry is taken whatever
     * the reply is, so an error reply leaves nothing behind. */
    if (out->unique != 0 && atomic_load_explicit(&pt_pending, memory_order_acquire) > 0) {
        uint32_t opcode;
        int32_t backing_id;
        if (pt_take(ofd, out->unique, &opcode, &backing_id) && out->error == 0)
            return pt_patch_open(ofd, iov, count, opcode, backing_id);
    }
    return writev(ofd, iov, count);
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
    return fuse_reply_data(req, &bv, FUSE_BUF_NO_SPLICE);
}

/* The largest READ payload libfuse's per-thread pipe can carry, 0 until known.
 * fuse_send_data_iov needs room for the payload, the reply header and 3 pages of
 * slack; it grows the pipe with F_SETPIPE_SZ, which stops at fs.pipe-max-size
 * (1 MiB by default) without CAP_SYS_RESOURCE. A 1 MiB READ (max_pages 256: what
 * FADV_SEQUENTIAL readahead sends once read_ahead_kb is 512) then never fits. */
static atomic_size_t splice_reply_max;

static size_t cv_splice_reply_max(void)
{
    size_t m = atomic_load(&splice_reply_max);
    if (m != 0)
        return m;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t slack = 3 * page + sizeof(struct fuse_out_header);
    size_t cap = 0;
    int p[2];
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0) {
        /* What libfuse would get: the full size when allowed, else the maximum. */
        int rc = fcntl(p[0], F_SETPIPE_SZ, (int)((1u << 20) + slack));
        if (rc < 0) {
            char buf[32] = "";
            int f = open("/proc/sys/fs/pipe-max-size", O_RDONLY | O_CLOEXEC);
            if (f >= 0) {
                ssize_t n = read(f, buf, sizeof(buf) - 1);
                close(f);
                if (n > 0) buf[n] = '\0';
            }
            long mx = strtol(buf, NULL, 10);
            rc = mx > 0 ? fcntl(p[0], F_SETPIPE_SZ, (int)mx) : -1;
        }
        if (rc > 0)
            cap = (size_t)rc;
        close(p[0]);
        close(p[1]);
    }
    m = cap > slack ? cap - slack : 1;
    atomic_store(&splice_reply_max, m);
    return m;
}

/* A thread's reusable bounce buffer for READ replies too large to splice. */
static pthread_key_t bounce_key;
static pthread_once_t bounce_once = PTHREAD_ONCE_INIT;
struct bounce { void *mem; size_t size; };

static void bounce_free(void *p)
{
    struct bounce *b = p;
    free(b->mem);
    free(b);
}

static void bounce_init(void) { (void)pthread_key_create(&bounce_key, bounce_free); }

static void *bounce_get(size_t size)
{
    (void)pthread_once(&bounce_once, bounce_init);
    struct bounce *b = pthread_getspecific(bounce_key);
    if (b == NULL) {
        b = calloc(1, sizeof(*b));
        if (b == NULL)
            return NULL;
        if (pthread_setspecific(bounce_key, b) != 0) {
            free(b);
            return NULL;
        }
    }
    if (b->size < size) {
        void *m = NULL;
        if (posix_memalign(&m, 4096, size) != 0)
            return NULL;
        free(b->mem);
        b->mem = m;
        b->size = size;
    }
    return b->mem;
}

int cvfuse_reply_data_fd(fuse_req_t req, int fd, off_t off, size_t size)
{
    if (size > cv_splice_reply_max()) {
        /* libfuse would fall back to a posix_memalign'd bounce buffer of `size`
         * per reply (for 1 MiB: mmap, 256 page faults, munmap, every time) and
         * pread + writev through it. Same two copies here, into a buffer the
         * thread keeps: 1 MiB sequential reads ran at half the speed of 512 KiB
         * ones before. */
        char *buf = bounce_get(size);
        if (buf != NULL) {
            size_t got = 0;
            while (got < size) {
                ssize_t n = pread(fd, buf + got, size - got, off + (off_t)got);
                if (n < 0) {
                    if (errno == EINTR)
                        continue;
                    return fuse_reply_err(req, errno);
                }
                if (n == 0)
                    break;   /* EOF: a short reply, as read(2) */
                got += (size_t)n;
            }
            struct fuse_bufvec mb = FUSE_BUFVEC_INIT(got);
            mb.buf[0].mem = buf;
            return fuse_reply_data(req, &mb, FUSE_BUF_NO_SPLICE);
        }
    }
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

/* ---- kernel passthrough ----------------------------------------------------- */

int cvshim_passthrough_test_mode(void)
{
    const char *v = getenv("CVFUSE_TEST_PASSTHROUGH");
    if (v == NULL)
        return CVSHIM_PT_TEST_NONE;
    if (strcmp(v, "no-kernel-support") == 0)
        return CVSHIM_PT_TEST_NO_KERNEL;
    if (strcmp(v, "backing-eperm") == 0)
        return CVSHIM_PT_TEST_EPERM;
    return CVSHIM_PT_TEST_NONE;
}

/* The request this worker is processing (set around fuse_session_process_buf). */
static __thread uint64_t tl_req_unique;
static __thread uint32_t tl_req_opcode;
static __thread uint32_t tl_req_pid;

void cvshim_request_begin(const struct fuse_buf *buf)
{
    tl_req_unique = 0;
    tl_req_opcode = 0;
    tl_req_pid = 0;
    /* After fuse_session_receive_buf a request is in buf->mem unless libfuse
     * left it in its pipe (FUSE_BUF_IS_FD: only WRITE-sized requests). */
    if ((buf->flags & FUSE_BUF_IS_FD) || buf->mem == NULL || buf->size < sizeof(struct fuse_in_header))
        return;
    const struct fuse_in_header *in = buf->mem;
    tl_req_unique = in->unique;
    tl_req_opcode = in->opcode;
    tl_req_pid = in->pid;
}

void cvshim_request_end(void)
{
    tl_req_unique = 0;
    tl_req_opcode = 0;
    tl_req_pid = 0;
}

/* Marked replies: (reply fd, unique) -> backing id. A slot is FREE, BUSY (being
 * filled or taken) or READY. Marks happen only on the thread processing the
 * request and are taken by the writev of its reply, so at most one entry per
 * request is in flight; 256 covers the worker threads with room for
 * asynchronous replies. */
#define CVSHIM_PT_SLOTS 256
enum { PT_FREE = 0, PT_BUSY = 1, PT_READY = 2 };
typedef struct {
    atomic_int state;
    atomic_int fd;
    _Atomic uint64_t unique;
    atomic_uint opcode;
    atomic_int backing_id;
} pt_slot;
static pt_slot pt_slots[CVSHIM_PT_SLOTS];

static inline unsigned pt_hash(uint64_t unique)
{
    /* The kernel steps uniques by 2. */
    return (unsigned)((unique >> 1) % CVSHIM_PT_SLOTS);
}

static int pt_mark(int fd, uint64_t unique, uint32_t opcode, int32_t backing_id)
{
    unsigned start = pt_hash(unique);
    for (unsigned i = 0; i < CVSHIM_PT_SLOTS; i++) {
        pt_slot *sl = &pt_slots[(start + i) % CVSHIM_PT_SLOTS];
        int expect = PT_FREE;
        if (!atomic_compare_exchange_strong(&sl->state, &expect, PT_BUSY))
            continue;
        atomic_store_explicit(&sl->fd, fd, memory_order_relaxed);
        atomic_store_explicit(&sl->unique, unique, memory_order_relaxed);
        atomic_store_explicit(&sl->opcode, opcode, memory_order_relaxed);
        atomic_store_explicit(&sl->backing_id, backing_id, memory_order_relaxed);
        /* Count first: a writev that sees READY must not have skipped the scan. */
        atomic_fetch_add(&pt_pending, 1);
        atomic_store_explicit(&sl->state, PT_READY, memory_order_release);
        return 0;
    }
    return -EBUSY;
}

static int pt_take(int fd, uint64_t unique, uint32_t *opcode, int32_t *backing_id)
{
    unsigned start = pt_hash(unique);
    for (unsigned i = 0; i < CVSHIM_PT_SLOTS; i++) {
        pt_slot *sl = &pt_slots[(start + i) % CVSHIM_PT_SLOTS];
        if (atomic_load_explicit(&sl->state, memory_order_acquire) != PT_READY ||
            atomic_load_explicit(&sl->unique, memory_order_relaxed) != unique ||
            atomic_load_explicit(&sl->fd, memory_order_relaxed) != fd)
            continue;
        int expect = PT_READY;
        if (!atomic_compare_exchange_strong(&sl->state, &expect, PT_BUSY))
            continue;
        /* The slot may have been taken and refilled between the check and the
         * exchange: check again now that we own it. */
        if (atomic_load_explicit(&sl->unique, memory_order_relaxed) != unique ||
            atomic_load_explicit(&sl->fd, memory_order_relaxed) != fd) {
            atomic_store_explicit(&sl->state, PT_READY, memory_order_release);
            continue;
        }
        *opcode = atomic_load_explicit(&sl->opcode, memory_order_relaxed);
        *backing_id = atomic_load_explicit(&sl->backing_id, memory_order_relaxed);
        atomic_store_explicit(&sl->state, PT_FREE, memory_order_release);
        atomic_fetch_sub(&pt_pending, 1);
        return 1;
    }
    return 0;
}

/* Bits of cvfuse_session.pt_logged: each kind of failure is logged once. */
enum {
    PT_LOG_EPERM = 1u << 0,
    PT_LOG_ELOOP = 1u << 1,
    PT_LOG_OTHER = 1u << 2,
    PT_LOG_LAYOUT = 1u << 3,
};
static atomic_uint pt_logged_global;   /* for failures not tied to a session */

static int has_cap_sys_admin(void)
{
    struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
    memset(d, 0, sizeof(d));
    if (syscall(SYS_capget, &h, d) != 0)
        return 1;   /* cannot tell: BACKING_OPEN will say */
    return (d[CAP_TO_INDEX(CAP_SYS_ADMIN)].effective & CAP_TO_MASK(CAP_SYS_ADMIN)) != 0;
}

/* The INIT reply (successful, on the worker that processed INIT). Decides and
 * logs, once per session, whether this mount uses passthrough. */
static int pt_patch_init(cvfuse_session *s, int fd, struct iovec *iov, int count)
{
    const uint64_t k = s->kernel_init_flags;
    const char *why = NULL;
    struct cvshim_init_out io;
    if (!s->pt_config) {
        why = "not enabled (--passthrough off, or an option that excludes it: see above)";
    } else if (!(k & CVSHIM_INIT_EXT) || !(k & CVSHIM_PASSTHROUGH)) {
        why = s->pt_test == CVSHIM_PT_TEST_NO_KERNEL
                  ? "the kernel does not offer FUSE_PASSTHROUGH (hidden by CVFUSE_TEST_PASSTHROUGH)"
                  : "the kernel does not offer FUSE_PASSTHROUGH (needs Linux >= 6.9 built with CONFIG_FUSE_PASSTHROUGH)";
    } else if (count != 2 || iov[1].iov_len != sizeof(io)) {
        why = "libfuse's INIT reply has an unexpected layout";
    } else {
        memcpy(&io, iov[1].iov_base, sizeof(io));
        if (io.flags & CVSHIM_WRITEBACK_CACHE)
            why = "the writeback cache is on (the kernel refuses passthrough with it)";
        else if (!has_cap_sys_admin())
            why = "no CAP_SYS_ADMIN (the kernel requires it to register backing files)";
    }
    if (why != NULL) {
        cvlog(FUSE_LOG_INFO, "passthrough: off: %s; every read is served by the daemon", why);
        return writev(fd, iov, count);
    }
    io.flags |= CVSHIM_INIT_EXT;
    io.flags2 |= (uint32_t)(CVSHIM_PASSTHROUGH >> 32);
    io.max_stack_depth = CVSHIM_MAX_STACK_DEPTH;
    cvlog(FUSE_LOG_INFO,
          "passthrough: on: the kernel reads complete single-block files with a local block file "
          "straight from it (max_stack_depth %d: block files on a non-stacked fs)", CVSHIM_MAX_STACK_DEPTH);
    /* Before the write: the kernel sends no OPEN before INIT is answered. */
    atomic_store(&s->pt_active, 1);
    struct iovec v[2] = { iov[0], { .iov_base = &io, .iov_len = sizeof(io) } };
    return writev(fd, v, 2);
}

/* A successful OPEN or CREATE reply marked for passthrough. */
static ssize_t pt_patch_open(int fd, struct iovec *iov, int count, uint32_t opcode, int32_t backing_id)
{
    unsigned char payload[sizeof(struct fuse_entry_out) + sizeof(struct cvshim_open_out)];
    size_t want = opcode == FUSE_CREATE ? sizeof(payload) : sizeof(struct cvshim_open_out);
    size_t len = 0;
    int fits = 1;
    for (int i = 1; i < count; i++) {
        if (len + iov[i].iov_len > want) {
            fits = 0;
            break;
        }
        memcpy(payload + len, iov[i].iov_base, iov[i].iov_len);
        len += iov[i].iov_len;
    }
    if (!fits || len != want) {
        /* Sent unpatched: the kernel treats it as a normal open (or fails it
         * with EIO next to passthrough opens of the same inode, and then sends
         * RELEASE), so nothing leaks; it only means libfuse changed. */
        if (!(atomic_fetch_or(&pt_logged_global, PT_LOG_LAYOUT) & PT_LOG_LAYOUT)) {
            int err = errno;
            cvlog(FUSE_LOG_ERR, "passthrough: opcode %u reply has an unexpected layout; sent without passthrough",
                  opcode);
            errno = err;
        }
        return writev(fd, iov, count);
    }
    struct cvshim_open_out oo;
    memcpy(&oo, payload + want - sizeof(oo), sizeof(oo));
    oo.open_flags = (oo.open_flags | CVSHIM_FOPEN_PASSTHROUGH) & CVSHIM_FOPEN_PASSTHROUGH_MASK;
    oo.backing_id = backing_id;
    memcpy(payload + want - sizeof(oo), &oo, sizeof(oo));
    struct iovec v[2] = { iov[0], { .iov_base = payload, .iov_len = want } };
    return writev(fd, v, 2);
}

int cvfuse_passthrough_active(cvfuse_session *s)
{
    return s != NULL && atomic_load(&s->pt_active);
}

static void pt_log_backing_failure(cvfuse_session *s, int err)
{
    unsigned bit = err == EPERM ? PT_LOG_EPERM : err == ELOOP ? PT_LOG_ELOOP : PT_LOG_OTHER;
    if (atomic_fetch_or(&s->pt_logged, bit) & bit)
        return;
    if (err == EPERM)
        cvlog(FUSE_LOG_WARNING,
              "passthrough: BACKING_OPEN: %s: the daemon lacks CAP_SYS_ADMIN in the initial user namespace "
              "(rootless or user-namespaced); passthrough off for this mount, reads are served by the daemon",
              strerror(err));
    else if (err == ELOOP)
        cvlog(FUSE_LOG_WARNING,
              "passthrough: BACKING_OPEN: %s: the block file is on a stacked file system (e.g. overlayfs); "
              "put the worker's data directory on a plain one (hostPath); these files are read through the daemon",
              strerror(err));
    else
        cvlog(FUSE_LOG_WARNING, "passthrough: BACKING_OPEN: %s; these files are read through the daemon",
              strerror(err));
}

int cvfuse_backing_open(cvfuse_session *s, int fd)
{
    if (s == NULL || fd < 0)
        return -EINVAL;
    if (!atomic_load(&s->pt_active))
        return -EOPNOTSUPP;
    struct cvshim_backing_map m;
    memset(&m, 0, sizeof(m));
    m.fd = fd;
    int id, err;
    if (s->pt_test == CVSHIM_PT_TEST_EPERM) {
        id = -1;
        err = EPERM;
    } else {
        id = ioctl(fuse_session_fd(s->se), CVSHIM_DEV_IOC_BACKING_OPEN, &m);
        err = errno;
    }
    if (id > 0)
        return id;
    if (id == 0)
        err = EIO;   /* ids start at 1; 0 would be a kernel bug */
    pt_log_backing_failure(s, err);
    if (err == EPERM)
        atomic_store(&s->pt_active, 0);
    return -err;
}

int cvfuse_backing_close(cvfuse_session *s, int backing_id)
{
    if (s == NULL || backing_id <= 0)
        return -EINVAL;
    uint32_t id = (uint32_t)backing_id;
    if (ioctl(fuse_session_fd(s->se), CVSHIM_DEV_IOC_BACKING_CLOSE, &id) != 0) {
        int err = errno;
        cvlog(FUSE_LOG_WARNING, "passthrough: BACKING_CLOSE %d: %s", backing_id, strerror(err));
        return -err;
    }
    return 0;
}

int cvfuse_open_passthrough(fuse_req_t req, int backing_id)
{
    cvfuse_worker *w = cvshim_tl_worker;
    if (backing_id <= 0 || w == NULL || tl_req_unique == 0 ||
        (tl_req_opcode != FUSE_OPEN && tl_req_opcode != FUSE_CREATE))
        return -EINVAL;
    /* `req` is opaque in 3.14; its pid must at least be the current request's. */
    const struct fuse_ctx *ctx = req ? fuse_req_ctx(req) : NULL;
    if (ctx == NULL || (uint32_t)ctx->pid != tl_req_pid)
        return -EINVAL;
    return pt_mark(w->fd, tl_req_unique, tl_req_opcode, backing_id);
}
