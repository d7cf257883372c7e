#include "spike_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct spike_cfg g_cfg = { .file_size = 1ull << 30 };
static unsigned char *g_data;

uint64_t spike_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static uint64_t mix64(uint64_t x)   /* splitmix64 finaliser: deterministic content */
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

void spike_init_data(void)
{
	g_data = aligned_alloc(4096, SPIKE_DATA_BYTES);
	if (!g_data) { perror("alloc data"); exit(1); }
	uint64_t *w = (uint64_t *)g_data;
	for (size_t i = 0; i < SPIKE_DATA_BYTES / 8; i++)
		w[i] = mix64(i);
}

void spike_fill(void *dst, uint64_t off, size_t len)
{
	unsigned char *d = dst;
	while (len) {
		uint64_t o = off % SPIKE_DATA_BYTES;
		size_t n = SPIKE_DATA_BYTES - o;
		if (n > len) n = len;
		memcpy(d, g_data + o, n);
		d += n; off += n; len -= n;
	}
}

int spike_dump(uint64_t mib)
{
	static unsigned char b[1 << 20];
	for (uint64_t i = 0; i < mib; i++) {
		spike_fill(b, i << 20, sizeof b);
		if (fwrite(b, 1, sizeof b, stdout) != sizeof b) return 1;
	}
	return fflush(stdout) ? 1 : 0;
}

size_t spike_arg0_size(uint32_t opcode)
{
	switch (opcode) {
	case FUSE_INIT: return sizeof(struct fuse_init_in);
	case FUSE_GETATTR: return sizeof(struct fuse_getattr_in);
	case FUSE_OPEN: case FUSE_OPENDIR: return sizeof(struct fuse_open_in);
	case FUSE_READ: return sizeof(struct fuse_read_in);
	case FUSE_RELEASE: case FUSE_RELEASEDIR: return sizeof(struct fuse_release_in);
	case FUSE_FLUSH: return sizeof(struct fuse_flush_in);
	case FUSE_FORGET: return sizeof(struct fuse_forget_in);
	case FUSE_INTERRUPT: return sizeof(struct fuse_interrupt_in);
	case FUSE_LOOKUP: return 0;   /* 6.14+: empty arg0, name (+NUL) in the following args */
	default: return 0;
	}
}

static void fill_attr(struct fuse_attr *a, uint64_t ino)
{
	memset(a, 0, sizeof *a);
	a->ino = ino;
	if (ino == SPIKE_ROOT_INO) {
		a->mode = S_IFDIR | 0755;
		a->nlink = 2;
	} else {
		a->mode = S_IFREG | 0444;
		a->nlink = 1;
		a->size = g_cfg.file_size;
		a->blocks = (g_cfg.file_size + 511) / 512;
	}
	a->blksize = 4096;
	a->atime = a->mtime = a->ctime = 1700000000;
}

static int do_init(const struct fuse_init_in *ii, void *out, size_t *out_len)
{
	struct fuse_init_out *o = out;
	uint64_t offered = ii->flags;
	if (ii->flags & FUSE_INIT_EXT)
		offered |= (uint64_t)ii->flags2 << 32;
	g_cfg.init_flags = offered;
	g_cfg.kernel_minor = ii->minor;
	if (ii->major != 7) {
		fprintf(stderr, "spike: kernel FUSE major %u unsupported\n", ii->major);
		return -EPROTO;
	}
	uint64_t want = FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_MAX_PAGES | FUSE_INIT_EXT;
	if (g_cfg.want_uring) {
		if (!(offered & SPIKE_FUSE_OVER_IO_URING)) {
			fprintf(stderr, "spike: kernel did not offer FUSE_OVER_IO_URING (flags 0x%llx); "
				"is /sys/module/fuse/parameters/enable_uring Y?\n", (unsigned long long)offered);
			return -EPROTO;
		}
		want |= SPIKE_FUSE_OVER_IO_URING;
	}
	want &= offered;
	g_cfg.reply_flags = want;
	memset(o, 0, sizeof *o);
	o->major = 7;
	o->minor = ii->minor < 45 ? ii->minor : 45;
	o->max_readahead = ii->max_readahead;
	o->flags = (uint32_t)want;
	o->flags2 = (uint32_t)(want >> 32);
	o->max_background = 0;            /* keep the kernel defaults */
	o->congestion_threshold = 0;
	o->max_write = SPIKE_MAX_WRITE;
	o->time_gran = 1;
	o->max_pages = SPIKE_MAX_PAGES;
	*out_len = sizeof *o;
	return 0;
}

int spike_handle(const struct fuse_in_header *in, const void *arg0, const void *rest,
		 size_t rest_len, void *out, size_t out_cap, size_t *out_len,
		 struct spike_stats *st)
{
	*out_len = 0;
	st->reqs++;
	switch (in->opcode) {
	case FUSE_INIT:
		st->other++;
		return do_init(arg0, out, out_len);
	case FUSE_LOOKUP: {
		st->other++;
		const char *name = rest;
		if (in->nodeid != SPIKE_ROOT_INO || rest_len < sizeof SPIKE_FILE_NAME ||
		    memcmp(name, SPIKE_FILE_NAME, sizeof SPIKE_FILE_NAME) != 0)
			return -ENOENT;
		struct fuse_entry_out *e = out;
		memset(e, 0, sizeof *e);
		e->nodeid = SPIKE_FILE_INO;
		e->generation = 1;
		e->entry_valid = 3600;
		e->attr_valid = 3600;
		fill_attr(&e->attr, SPIKE_FILE_INO);
		*out_len = sizeof *e;
		return 0;
	}
	case FUSE_GETATTR: {
		st->other++;
		if (in->nodeid != SPIKE_ROOT_INO && in->nodeid != SPIKE_FILE_INO)
			return -ENOENT;
		struct fuse_attr_out *a = out;
		memset(a, 0, sizeof *a);
		a->attr_valid = 3600;
		fill_attr(&a->attr, in->nodeid);
		*out_len = sizeof *a;
		return 0;
	}
	case FUSE_OPEN: {
		st->other++;
		if (in->nodeid != SPIKE_FILE_INO)
			return -EISDIR;
		const struct fuse_open_in *oi = arg0;
		if ((oi->flags & O_ACCMODE) != O_RDONLY)
			return -EACCES;
		struct fuse_open_out *o = out;
		memset(o, 0, sizeof *o);
		o->fh = 1;
		o->open_flags = 0;   /* no KEEP_CACHE: each open drops the file's page cache */
		*out_len = sizeof *o;
		return 0;
	}
	case FUSE_READ: {
		const struct fuse_read_in *ri = arg0;
		uint64_t off = ri->offset;
		size_t n = ri->size;
		st->reads++;
		if (in->nodeid != SPIKE_FILE_INO)
			return -EISDIR;
		if (off >= g_cfg.file_size)
			n = 0;
		else if (n > g_cfg.file_size - off)
			n = g_cfg.file_size - off;
		if (n > out_cap)
			return -EIO;
		spike_fill(out, off, n);   /* "produce the data" into the reply buffer */
		st->read_bytes += n;
		*out_len = n;
		return 0;
	}
	case FUSE_RELEASE:
	case FUSE_FLUSH:
		st->other++;
		return 0;
	case FUSE_FORGET:
	case FUSE_BATCH_FORGET:
	case FUSE_INTERRUPT:
		st->other++;
		return SPIKE_NOREPLY;
	default:
		st->other++;
		return -ENOSYS;
	}
}

int spike_mount(const char *mnt)
{
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0) { perror("open /dev/fuse"); return -1; }
	char opts[256];
	snprintf(opts, sizeof opts, "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other", fd);
	if (mount("spike", mnt, "fuse.spike", MS_NOSUID | MS_NODEV, opts) != 0) {
		perror("mount fuse.spike");
		close(fd);
		return -1;
	}
	return fd;
}

void *spike_classic_worker(void *varg)
{
	struct spike_classic_arg *a = varg;
	size_t bufsz = SPIKE_MAX_WRITE + 4096;
	unsigned char *ibuf = aligned_alloc(4096, bufsz);
	unsigned char *obuf = aligned_alloc(4096, bufsz);
	if (!ibuf || !obuf) { perror("alloc"); exit(1); }
	for (;;) {
		ssize_t n = read(a->fd, ibuf, bufsz);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == ENOENT)
				continue;
			if (errno != ENODEV)
				fprintf(stderr, "spike: read /dev/fuse: %s\n", strerror(errno));
			break;   /* ENODEV: unmounted / aborted */
		}
		const struct fuse_in_header *in = (const void *)ibuf;
		if ((size_t)n < sizeof *in) { fprintf(stderr, "spike: short read %zd\n", n); break; }
		size_t a0 = spike_arg0_size(in->opcode);
		size_t body = (size_t)n - sizeof *in;
		if (a0 > body) a0 = body;
		const unsigned char *arg0 = ibuf + sizeof *in;
		size_t out_len = 0;
		int r = spike_handle(in, arg0, arg0 + a0, body - a0, obuf + sizeof(struct fuse_out_header),
				     bufsz - sizeof(struct fuse_out_header), &out_len, &a->st);
		if (r == SPIKE_NOREPLY)
			continue;
		struct fuse_out_header *oh = (void *)obuf;
		oh->unique = in->unique;
		oh->error = r < 0 ? r : 0;
		oh->len = sizeof *oh + (r < 0 ? 0 : out_len);
		if (r < 0) a->st.errors++;
		uint32_t opcode = in->opcode;
		ssize_t w = write(a->fd, obuf, oh->len);
		if (w < 0 && errno != ENOENT) {   /* ENOENT: request was interrupted meanwhile */
			fprintf(stderr, "spike: write /dev/fuse (opcode %u): %s\n", opcode, strerror(errno));
			if (errno == ENODEV) break;
		}
		if (opcode == FUSE_INIT) {
			if (r < 0) { fprintf(stderr, "spike: INIT failed %d\n", r); exit(2); }
			atomic_store(&g_cfg.init_done, 1);
		}
	}
	return NULL;
}

void spike_print_stats(const char *who, struct spike_stats *s, int n)
{
	struct spike_stats t = {0};
	for (int i = 0; i < n; i++) {
		t.reqs += s[i].reqs; t.reads += s[i].reads; t.read_bytes += s[i].read_bytes;
		t.other += s[i].other; t.errors += s[i].errors;
	}
	fprintf(stderr, "STATS %s requests=%llu reads=%llu read_bytes=%llu other=%llu errors=%llu\n", who,
		(unsigned long long)t.reqs, (unsigned long long)t.reads, (unsigned long long)t.read_bytes,
		(unsigned long long)t.other, (unsigned long long)t.errors);
}
