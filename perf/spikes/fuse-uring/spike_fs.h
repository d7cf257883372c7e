/* Shared part of the two spike daemons: the request handler, mount, the classic
 * read()/write() worker, counters. See REPORT.md. */
#ifndef SPIKE_FS_H
#define SPIKE_FS_H

#include <stdint.h>
#include <stddef.h>
#include <stdatomic.h>
#include "spike_abi.h"

#define SPIKE_DATA_BYTES (64u << 20)      /* in-memory buffer the file is served from */
#define SPIKE_MAX_WRITE (1u << 20)        /* negotiated max_write, = max_pages * 4 KiB */
#define SPIKE_MAX_PAGES 256
#define SPIKE_NOREPLY 1                    /* handler result: send nothing (FORGET, INTERRUPT) */
#define SPIKE_ROOT_INO 1
#define SPIKE_FILE_INO 2
#define SPIKE_FILE_NAME "data"

struct spike_cfg {
	const char *mnt;
	uint64_t file_size;    /* size of /data; byte at offset o = buf[o % 64 MiB] */
	int want_uring;        /* set FUSE_OVER_IO_URING in the INIT reply */
	int fuse_fd;
	atomic_int init_done;  /* INIT answered */
	uint64_t init_flags;   /* what the kernel offered (flags | flags2 << 32) */
	uint64_t reply_flags;  /* what we answered */
	uint32_t kernel_minor;
};
extern struct spike_cfg g_cfg;

struct spike_stats {          /* one per worker thread, summed at exit */
	uint64_t reqs, reads, read_bytes, other, errors;
};

void spike_init_data(void);
void spike_fill(void *dst, uint64_t off, size_t len);   /* file bytes [off, off+len) */

/* Size of the first in-arg (the one the io_uring transport puts in op_in) per opcode. */
size_t spike_arg0_size(uint32_t opcode);

/*
 * Handle one request. arg0 = first in-arg (per-opcode header), rest = the others
 * (e.g. the name of LOOKUP). Writes the reply's out-args to out (it may alias rest:
 * every input is consumed before output is written). Returns 0 or -errno
 * (*out_len = payload bytes), or SPIKE_NOREPLY.
 */
int spike_handle(const struct fuse_in_header *in, const void *arg0, const void *rest,
		 size_t rest_len, void *out, size_t out_cap, size_t *out_len,
		 struct spike_stats *st);

/* open /dev/fuse and mount it on cfg->mnt; returns fd or -1 */
int spike_mount(const char *mnt);

/* classic worker: read() a request, handle it, write() the reply; returns on ENODEV */
struct spike_classic_arg {
	int fd;
	struct spike_stats st;
	int idx;
};
void *spike_classic_worker(void *arg);

void spike_print_stats(const char *who, struct spike_stats *s, int n);
int spike_dump(uint64_t mib);    /* write the first N MiB of the file's content to stdout */
uint64_t spike_now_ns(void);

#endif
