/*
 * negotiate.c: what we ask the kernel for at INIT (cvfuse_negotiate, called
 * from the Swift init op, i.e. inside libfuse 3.14's do_init).
 *
 * Order of events in do_init: libfuse fills conn->capable from the kernel's
 * flags, pre-sets conn->want with its defaults (ASYNC_READ, PARALLEL_DIROPS,
 * AUTO_INVAL_DATA, HANDLE_KILLPRIV, ASYNC_DIO, IOCTL_DIR, ATOMIC_O_TRUNC, plus
 * SPLICE_READ / POSIX_LOCKS / FLOCK_LOCKS / READDIRPLUS(_AUTO) only when the
 * matching ops exist), calls init(), then fails the mount with EPROTO if
 * want has a bit that capable lacks or if conn->max_read differs from the
 * -o max_read mount option. Both checks are made impossible here.
 */
#include "cvshim_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>   /* struct fuse_out_header: part of libfuse's splice sizing */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* libfuse 3.14 sizes each request buffer for FUSE_MAX_MAX_PAGES (256, in the
 * private lib/fuse_i.h) pages + FUSE_BUFFER_HEADER_SIZE (4 KiB) when the
 * session is created, and never grows it. It clamps conn->max_write to that
 * before calling init() but not after, so a larger max_write set here would
 * let the kernel send WRITEs that do not fit. */
#define CVSHIM_LIBFUSE_MAX_PAGES 256u
#define CVSHIM_LIBFUSE_HEADER_ROOM 4096u

/* Kernel ignores time_gran outside 1..1e9 ns (fs/fuse/inode.c). */
#define CVSHIM_MAX_TIME_GRAN_NS 1000000000

/* FUSE_MAX_PAGES (max_pages in the INIT reply) exists since protocol 7.28;
 * older kernels cap requests at FUSE_DEFAULT_MAX_PAGES_PER_REQ (32) pages. */
#define CVSHIM_PROTO_MINOR_MAX_PAGES 28
#define CVSHIM_OLD_KERNEL_MAX_PAGES 32u

static const struct {
    unsigned cap;
    const char *name;
} cap_names[] = {
    { FUSE_CAP_ASYNC_READ, "async_read" },
    { FUSE_CAP_POSIX_LOCKS, "posix_locks" },
    { FUSE_CAP_ATOMIC_O_TRUNC, "atomic_o_trunc" },
    { FUSE_CAP_EXPORT_SUPPORT, "export_support" },
    { FUSE_CAP_DONT_MASK, "dont_mask" },
    { FUSE_CAP_SPLICE_WRITE, "splice_write" },
    { FUSE_CAP_SPLICE_MOVE, "splice_move" },
    { FUSE_CAP_SPLICE_READ, "splice_read" },
    { FUSE_CAP_FLOCK_LOCKS, "flock_locks" },
    { FUSE_CAP_IOCTL_DIR, "ioctl_dir" },
    { FUSE_CAP_AUTO_INVAL_DATA, "auto_inval_data" },
    { FUSE_CAP_READDIRPLUS, "readdirplus" },
    { FUSE_CAP_READDIRPLUS_AUTO, "readdirplus_auto" },
    { FUSE_CAP_ASYNC_DIO, "async_dio" },
    { FUSE_CAP_WRITEBACK_CACHE, "writeback_cache" },
    { FUSE_CAP_PARALLEL_DIROPS, "parallel_dirops" },
    { FUSE_CAP_POSIX_ACL, "posix_acl" },
    { FUSE_CAP_HANDLE_KILLPRIV, "handle_killpriv" },
    { FUSE_CAP_CACHE_SYMLINKS, "cache_symlinks" },
    { FUSE_CAP_EXPLICIT_INVAL_DATA, "explicit_inval_data" },
};

/* Appends the names of the bits in `caps` to buf ("-" when none). */
static void cap_list(char *buf, size_t size, unsigned caps)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof(cap_names) / sizeof(cap_names[0]); i++) {
        if (!(caps & cap_names[i].cap))
            continue;
        int n = snprintf(buf + used, size - used, "%s%s", used ? "," : "", cap_names[i].name);
        if (n < 0 || (size_t)n >= size - used)
            return;
        used += (size_t)n;
    }
    if (used == 0)
        snprintf(buf, size, "-");
}

/* libfuse moves spliced data through one pipe per thread and grows it with
 * F_SETPIPE_SZ (rounded up to a power-of-two number of pages). Beyond
 * fs.pipe-max-size (1 MiB by default) that needs CAP_SYS_RESOURCE. When it
 * fails libfuse silently falls back: a thread whose pipe cannot hold a whole
 * request (max_write + 4 KiB) never splice-receives again, and replies that
 * do not fit go out with writev. We try once with a throwaway pipe and say so
 * once, instead of a silent slow path. */
static void probe_splice_pipe(size_t need)
{
    static atomic_int logged;
    int p[2];
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0)
        return;
    int rc = fcntl(p[0], F_SETPIPE_SZ, (int)need);
    int err = errno;
    close(p[0]);
    close(p[1]);
    if (rc >= 0 || atomic_exchange(&logged, 1))
        return;

    char max[32] = "?";
    int fd = open("/proc/sys/fs/pipe-max-size", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, max, sizeof(max) - 1);
        close(fd);
        if (n > 0) {
            max[n] = '\0';
            max[strcspn(max, "\n")] = '\0';
        }
    }
    cvlog(FUSE_LOG_WARNING,
          "splice: cannot grow a pipe to %zu bytes (%s; fs.pipe-max-size=%s): libfuse falls back to "
          "read/writev for requests and replies that do not fit; raise fs.pipe-max-size or grant CAP_SYS_RESOURCE",
          need, strerror(err), max);
}

void cvfuse_negotiate(struct fuse_conn_info *conn, const cvfuse_init_options *o)
{
    if (conn == NULL || o == NULL)
        return;
    const unsigned capable = conn->capable;
    unsigned ask = 0;    /* we want these; the kernel may lack some */
    unsigned deny = 0;   /* off even if libfuse defaulted them on */

    /* Several READs of one file in flight (readahead + application) instead of
     * one at a time; the prefetcher depends on it. */
    ask |= FUSE_CAP_ASYNC_READ;
    /* LOOKUP/READDIR in one directory run concurrently instead of under the
     * directory's exclusive i_rwsem: dataset trees are wide. */
    ask |= FUSE_CAP_PARALLEL_DIROPS;
    /* Drop cached pages when GETATTR shows a new mtime/size: other Curvine
     * clients write the same files. */
    ask |= FUSE_CAP_AUTO_INVAL_DATA;
    /* No HANDLE_KILLPRIV: the kernel clears suid/sgid on write/truncate/chown
     * with a SETATTR(mode) of its own, which the core applies like any chmod.
     * One code path for the POSIX rule instead of two. */
    deny |= FUSE_CAP_HANDLE_KILLPRIV;
    /* O_DIRECT reads/writes are split into concurrent requests. */
    ask |= FUSE_CAP_ASYNC_DIO;
    /* No ATOMIC_O_TRUNC (libfuse turns it on by default): the kernel sends a
     * SETATTR(size=0) before open(O_TRUNC), so truncation goes through the one
     * resize path (upstream never advertises it either). */
    deny |= FUSE_CAP_ATOMIC_O_TRUNC;

    if (o->enable_splice) {
        /* READ replies through a pipe (fuse_reply_data): zero-copy from a
         * file fd, page moves from memory. */
        ask |= FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE;
        /* Requests through a pipe only when the ops have write_buf, which is
         * exactly when libfuse pre-set it: without write_buf libfuse copies
         * every spliced request out of the pipe into a freshly realloc'd
         * buffer, slower than a plain read(). */
        if (conn->want & FUSE_CAP_SPLICE_READ)
            ask |= FUSE_CAP_SPLICE_READ;
    } else {
        deny |= FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE | FUSE_CAP_SPLICE_READ;
    }

    /* READDIR returns attributes too, so `ls -l` needs no LOOKUP per entry;
     * _AUTO lets the kernel use plain READDIR when nobody stats. Kept exactly
     * as libfuse pre-set them from the ops (READDIRPLUS needs a readdirplus
     * op, _AUTO both readdir and readdirplus). */
    ask |= conn->want & (FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO);

    /* No EXPORT_SUPPORT: NFS re-export needs LOOKUP of "." and ".." by nodeid
     * and nodeids that survive a daemon restart; we promise neither. */
    deny |= FUSE_CAP_EXPORT_SUPPORT;

    /* Locks go to the daemon only when asked; otherwise the kernel keeps
     * them node-local (libfuse turns them on whenever the ops exist). */
    if (o->posix_locks)
        ask |= FUSE_CAP_POSIX_LOCKS;
    else
        deny |= FUSE_CAP_POSIX_LOCKS;
    if (o->flock_locks)
        ask |= FUSE_CAP_FLOCK_LOCKS;
    else
        deny |= FUSE_CAP_FLOCK_LOCKS;

    /* Kernel-buffered writes only when asked: they delay data and mtime
     * from other clients' view, and the kernel refuses passthrough on a
     * connection that negotiated them. */
    if (o->writeback_cache)
        ask |= FUSE_CAP_WRITEBACK_CACHE;
    else
        deny |= FUSE_CAP_WRITEBACK_CACHE;

    /* Kernel passthrough is not a libfuse 3.14 capability: io.c adds it to the
     * INIT reply (and logs the outcome) when asked here and the kernel offers it. */
    {
        struct cvfuse_session *ps = cvshim_current_session();
        if (ps != NULL)
            ps->pt_config = o->passthrough != 0;
    }

    /* The kernel applies the umask; no ACLs in Curvine; AUTO_INVAL_DATA
     * already covers invalidation (EXPLICIT_INVAL_DATA would disable it). */
    deny |= FUSE_CAP_DONT_MASK | FUSE_CAP_POSIX_ACL | FUSE_CAP_EXPLICIT_INVAL_DATA;

    /* Never want what the kernel lacks: do_init would answer EPROTO. */
    conn->want = ((conn->want | ask) & ~deny) & capable;
    const unsigned refused = ask & ~capable;

    /* ---- limits ---- */
    const unsigned page = (unsigned)getpagesize();
    if (o->max_write != 0) {
        unsigned max_write = o->max_write;
        const unsigned libfuse_max = CVSHIM_LIBFUSE_MAX_PAGES * page;
        if (max_write > libfuse_max) {
            cvlog(FUSE_LOG_WARNING, "max_write %u exceeds libfuse 3.14's request buffer, using %u",
                  max_write, libfuse_max);
            max_write = libfuse_max;
        }
        conn->max_write = max_write;
    }
    /* max_pages: libfuse 3.14 derives it, there is no conn field. When the
     * kernel offers FUSE_MAX_PAGES, do_init replies
     * max_pages = (max_write - 1) / pagesize + 1 (256 for 1 MiB); the kernel
     * clamps it to fs.fuse.max_pages_limit (256 by default) and caps every
     * READ/WRITE at max_pages pages. */
    unsigned max_pages = conn->proto_minor >= CVSHIM_PROTO_MINOR_MAX_PAGES
                             ? (conn->max_write - 1) / page + 1
                             : CVSHIM_OLD_KERNEL_MAX_PAGES;

    /* max_read must equal -o max_read from the mount argv (0 when absent). */
    struct cvfuse_session *s = cvshim_current_session();
    unsigned mount_max_read = s ? s->mount_max_read : o->max_read;
    if (o->max_read != mount_max_read)
        cvlog(FUSE_LOG_WARNING,
              "max_read %u differs from the mount's -o max_read=%u; using the mount's (libfuse fails INIT otherwise)",
              o->max_read, mount_max_read);
    conn->max_read = mount_max_read;

    /* The kernel keeps min(its offer, ours), so only a smaller value counts. */
    if (o->max_readahead != 0 && o->max_readahead < conn->max_readahead)
        conn->max_readahead = o->max_readahead;
    /* Background requests (readahead, async direct I/O) the kernel keeps in
     * flight; its default of 12 throttles prefetch. libfuse caps at 65535. */
    if (o->max_background != 0)
        conn->max_background = o->max_background;
    /* Above this many, writers block in the kernel; libfuse clamps it to
     * max_background and uses 3/4 of it when 0. */
    if (o->congestion_threshold != 0)
        conn->congestion_threshold = o->congestion_threshold;
    /* Curvine stores ms: timestamps the kernel sets itself are truncated to
     * what we can store, so cached and stored values agree. */
    if (o->time_gran_ns > 0 && o->time_gran_ns <= CVSHIM_MAX_TIME_GRAN_NS)
        conn->time_gran = (unsigned)o->time_gran_ns;

    /* ---- splice pipe size ---- */
    size_t pipe_need = 0;
    if (conn->want & FUSE_CAP_SPLICE_READ)
        pipe_need = (size_t)conn->max_write + CVSHIM_LIBFUSE_HEADER_ROOM;   /* se->bufsize */
    if (conn->want & FUSE_CAP_SPLICE_WRITE) {
        /* fuse_send_data_iov: pagesize * (iovecs 1 + bufs 1 + 1) + header + payload,
         * payload <= the largest READ, i.e. max_pages pages (or max_read). */
        size_t payload = (size_t)max_pages * page;
        if (conn->max_read != 0 && conn->max_read < payload)
            payload = conn->max_read;
        size_t send_need = 3 * (size_t)page + sizeof(struct fuse_out_header) + payload;
        if (send_need > pipe_need)
            pipe_need = send_need;
    }
    if (pipe_need != 0)
        probe_splice_pipe(pipe_need);

    /* Every name in cap_names joined is ~300 bytes; cap_list truncates safely. */
    char on[512], no[512], off[512];
    cap_list(on, sizeof(on), conn->want);
    cap_list(no, sizeof(no), refused);
    cap_list(off, sizeof(off), deny & capable);
    cvlog(FUSE_LOG_INFO,
          "init: proto %u.%u; on: %s; refused by kernel: %s; off by choice: %s; max_write=%u max_pages=%u "
          "max_read=%u max_readahead=%u max_background=%u congestion_threshold=%u time_gran=%uns",
          conn->proto_major, conn->proto_minor, on, no, off, conn->max_write, max_pages, conn->max_read,
          conn->max_readahead, conn->max_background, conn->congestion_threshold, conn->time_gran);
}
