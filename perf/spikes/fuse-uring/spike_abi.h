/*
 * FUSE-over-io_uring ABI pieces that the installed <linux/fuse.h> (protocol 7.38,
 * Debian 12) lacks. Written from the kernel's include/uapi/linux/fuse.h as of
 * 6.14+ (protocol 7.42+) and checked against the 6.18 fs/fuse/dev_uring.c logic;
 * the layout is pinned with _Static_asserts below.
 */
#ifndef SPIKE_ABI_H
#define SPIKE_ABI_H

#include <stdint.h>
#include <stddef.h>
#include <linux/fuse.h>

/* INIT flag (64-bit form; travels in init_in/out.flags2 bit 9). */
#define SPIKE_FUSE_OVER_IO_URING (1ULL << 41)

/* Sizes of the first two slots of the per-entry header buffer. */
#define SPIKE_FUSE_URING_IN_OUT_HEADER_SZ 128
#define SPIKE_FUSE_URING_OP_IN_OUT_SZ 128

/* Kernel <-> daemon bookkeeping for one ring entry (slot 3 of the header). */
struct spike_fuse_uring_ent_in_out {
	uint64_t flags;
	uint64_t commit_id;   /* kernel fills with the request's unique; echo it on commit */
	uint32_t payload_sz;  /* request: bytes of in-args in payload; reply: bytes of out-args */
	uint32_t padding;
	uint64_t reserved;
};

/*
 * iov[0] of REGISTER points at one of these:
 *   in_out:  struct fuse_in_header on a request, struct fuse_out_header on commit
 *   op_in:   the request's first in-arg (per-opcode header, e.g. fuse_read_in)
 *   ring_ent_in_out
 * iov[1] is the payload buffer: remaining in-args on request, all out-args on reply.
 */
struct spike_fuse_uring_req_header {
	char in_out[SPIKE_FUSE_URING_IN_OUT_HEADER_SZ];
	char op_in[SPIKE_FUSE_URING_OP_IN_OUT_SZ];
	struct spike_fuse_uring_ent_in_out ring_ent_in_out;
};

/* sqe->cmd_op values of IORING_OP_URING_CMD on the /dev/fuse fd. */
enum spike_fuse_uring_cmd {
	SPIKE_FUSE_IO_URING_CMD_INVALID = 0,
	SPIKE_FUSE_IO_URING_CMD_REGISTER = 1,          /* give the kernel an entry (iovec[2] in addr/len) */
	SPIKE_FUSE_IO_URING_CMD_COMMIT_AND_FETCH = 2,  /* reply to commit_id and wait for the next request */
};

/* Lives in sqe->cmd (the 80-byte area of a 128-byte SQE). */
struct spike_fuse_uring_cmd_req {
	uint64_t flags;
	uint64_t commit_id;
	uint16_t qid;      /* queue = CPU number; the kernel keeps one queue per possible CPU */
	uint8_t padding[6];
};

_Static_assert(sizeof(struct spike_fuse_uring_ent_in_out) == 32, "ent_in_out layout");
_Static_assert(offsetof(struct spike_fuse_uring_req_header, op_in) == 128, "op_in offset");
_Static_assert(offsetof(struct spike_fuse_uring_req_header, ring_ent_in_out) == 256, "ring_ent offset");
_Static_assert(sizeof(struct spike_fuse_uring_req_header) == 288, "req_header size");
_Static_assert(sizeof(struct spike_fuse_uring_cmd_req) == 24, "cmd_req size");
_Static_assert(offsetof(struct spike_fuse_uring_cmd_req, qid) == 16, "cmd_req qid offset");
_Static_assert(sizeof(struct fuse_in_header) == 40, "fuse_in_header");
_Static_assert(sizeof(struct fuse_out_header) == 16, "fuse_out_header");
_Static_assert(sizeof(struct fuse_init_out) == 64, "fuse_init_out");
_Static_assert(offsetof(struct fuse_init_out, flags2) == 32, "init_out.flags2");

#endif
