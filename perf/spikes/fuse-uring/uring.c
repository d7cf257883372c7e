/* (b) FUSE over io_uring: INIT (and FORGET/INTERRUPT, which 6.18 still sends over
 * /dev/fuse) on one classic read()/write() thread; every other request is served from
 * ring entries registered with IORING_OP_URING_CMD: one io_uring + one thread per
 * queue, queue = possible CPU (the kernel needs all of them registered), thread pinned
 * to that CPU, N entries per queue.
 * usage: spike_uring [--depth N] [--no-pin] [--defer] [--file-mib N] MNT            */
#include "spike_fs.h"
#include "common_main.h"

#include <errno.h>
#include <sched.h>
#include <liburing.h>

#define MAXQ 64

struct ent {
	struct spike_fuse_uring_req_header *hdr;
	unsigned char *payload;
	struct iovec iov[2];
	struct queue *q;
};

struct queue {
	int qid;
	struct io_uring ring;
	struct ent *ents;
	struct spike_stats st;
	pthread_t th;
	atomic_int state;      /* 0 starting, 1 registered, -errno failed */
};

static struct queue g_q[MAXQ];
static int g_nq, g_depth = 8, g_pin = 1, g_defer;
static size_t g_payload_sz;
static struct spike_classic_arg g_dev;

static void stats(void)
{
	struct spike_stats s[MAXQ + 1];
	for (int i = 0; i < g_nq; i++) s[i] = g_q[i].st;
	s[g_nq] = g_dev.st;
	spike_print_stats("uring(all)", s, g_nq + 1);
	spike_print_stats("uring(dev-fd part)", &g_dev.st, 1);
}

static int possible_cpus(void)
{
	/* the kernel sizes the ring with num_possible_cpus(); parse "0-N" / "0,2-3" */
	FILE *f = fopen("/sys/devices/system/cpu/possible", "r");
	int n = 0, a, b;
	char c;
	if (!f) return sysconf(_SC_NPROCESSORS_CONF);
	while (fscanf(f, "%d", &a) == 1) {
		b = a;
		if (fscanf(f, "%c", &c) == 1 && c == '-') { if (fscanf(f, "%d", &b) != 1) break; fscanf(f, "%c", &c); }
		n = b + 1 > n ? b + 1 : n;
		if (c != ',') break;
	}
	fclose(f);
	return n;
}

static void prep_cmd(struct queue *q, struct ent *e, uint32_t op, uint64_t commit_id)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);
	if (!sqe) { fprintf(stderr, "spike: q%d out of SQEs\n", q->qid); exit(3); }
	memset(sqe, 0, 128);   /* 128-byte SQE; no liburing 2.3 helper for URING_CMD */
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->flags = IOSQE_FIXED_FILE;
	sqe->fd = 0;           /* index of /dev/fuse in the registered files */
	sqe->cmd_op = op;
	if (op == SPIKE_FUSE_IO_URING_CMD_REGISTER) {
		sqe->addr = (uintptr_t)e->iov;
		sqe->len = 2;
	}
	struct spike_fuse_uring_cmd_req *c = (void *)sqe->cmd;
	c->qid = (uint16_t)q->qid;
	c->commit_id = commit_id;
	c->flags = 0;
	io_uring_sqe_set_data(sqe, e);
}

static void serve(struct queue *q, struct ent *e)
{
	struct spike_fuse_uring_req_header *h = e->hdr;
	struct fuse_in_header in;
	memcpy(&in, h->in_out, sizeof in);   /* in_out gets overwritten by the out header */
	uint64_t commit_id = h->ring_ent_in_out.commit_id;
	size_t out_len = 0;
	int r = spike_handle(&in, h->op_in, e->payload, h->ring_ent_in_out.payload_sz,
			     e->payload, g_payload_sz, &out_len, &q->st);
	if (r == SPIKE_NOREPLY) r = -ENOSYS;     /* never over the ring in 6.18; be safe */
	if (r < 0) { q->st.errors++; out_len = 0; }
	struct fuse_out_header oh = { .len = sizeof oh + out_len, .error = r, .unique = in.unique };
	memcpy(h->in_out, &oh, sizeof oh);
	h->ring_ent_in_out.payload_sz = (uint32_t)out_len;
	prep_cmd(q, e, SPIKE_FUSE_IO_URING_CMD_COMMIT_AND_FETCH, commit_id);
}

static void *queue_thread(void *arg)
{
	struct queue *q = arg;
	int err;
	if (g_pin) {
		cpu_set_t m;
		CPU_ZERO(&m);
		CPU_SET(q->qid, &m);
		if (sched_setaffinity(0, sizeof m, &m) != 0)
			fprintf(stderr, "spike: q%d: cannot pin to CPU %d: %s\n", q->qid, q->qid, strerror(errno));
	}
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_SQE128 | IORING_SETUP_CQSIZE;
	p.cq_entries = 2 * g_depth;
	if (g_defer) p.flags |= IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	err = io_uring_queue_init_params(g_depth, &q->ring, &p);
	if (err) { fprintf(stderr, "spike: q%d io_uring_queue_init: %s\n", q->qid, strerror(-err)); atomic_store(&q->state, err); return NULL; }
	err = io_uring_register_files(&q->ring, &g_cfg.fuse_fd, 1);
	if (err) { fprintf(stderr, "spike: q%d register_files: %s\n", q->qid, strerror(-err)); atomic_store(&q->state, err); return NULL; }
	q->ents = calloc(g_depth, sizeof *q->ents);
	for (int i = 0; i < g_depth; i++) {
		struct ent *e = &q->ents[i];
		e->q = q;
		e->hdr = aligned_alloc(4096, 4096);
		e->payload = aligned_alloc(4096, g_payload_sz);
		if (!e->hdr || !e->payload) { atomic_store(&q->state, -ENOMEM); return NULL; }
		memset(e->hdr, 0, 4096);
		memset(e->payload, 0, g_payload_sz);   /* fault in now, not on the first request */
		e->iov[0] = (struct iovec){ e->hdr, sizeof *e->hdr };
		e->iov[1] = (struct iovec){ e->payload, g_payload_sz };
		prep_cmd(q, e, SPIKE_FUSE_IO_URING_CMD_REGISTER, 0);
	}
	err = io_uring_submit(&q->ring);
	if (err != g_depth) {
		fprintf(stderr, "spike: q%d submit REGISTER: %d (%s)\n", q->qid, err, err < 0 ? strerror(-err) : "short");
		atomic_store(&q->state, err < 0 ? err : -EIO);
		return NULL;
	}
	/* REGISTER completes only when a request arrives; an immediate CQE is an error. */
	struct io_uring_cqe *cqe;
	if (io_uring_peek_cqe(&q->ring, &cqe) == 0) {
		fprintf(stderr, "spike: q%d REGISTER failed at once: res=%d (%s)\n", q->qid, cqe->res, strerror(-cqe->res));
		atomic_store(&q->state, cqe->res < 0 ? cqe->res : -EIO);
		return NULL;
	}
	atomic_store(&q->state, 1);
	for (;;) {
		err = io_uring_submit_and_wait(&q->ring, 1);
		if (err < 0 && err != -EINTR && err != -EAGAIN && err != -EBUSY) {
			fprintf(stderr, "spike: q%d submit_and_wait: %s\n", q->qid, strerror(-err));
			return NULL;
		}
		unsigned head, n = 0;
		int stop = 0;
		io_uring_for_each_cqe(&q->ring, head, cqe) {
			struct ent *e = io_uring_cqe_get_data(cqe);
			n++;
			if (cqe->res == 0) { serve(q, e); continue; }
			if (cqe->res == -EAGAIN || cqe->res == -EINTR) {   /* retry the same command */
				prep_cmd(q, e, SPIKE_FUSE_IO_URING_CMD_REGISTER, 0);
				continue;
			}
			if (cqe->res != -ENOTCONN && cqe->res != -ECANCELED)
				fprintf(stderr, "spike: q%d cqe error %d (%s)\n", q->qid, cqe->res, strerror(-cqe->res));
			stop = 1;   /* ENOTCONN: connection torn down (unmount) */
		}
		io_uring_cq_advance(&q->ring, n);
		if (stop) break;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int i;
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--depth") && i + 1 < argc) g_depth = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--no-pin")) g_pin = 0;
		else if (!strcmp(argv[i], "--defer")) g_defer = 1;
		else if (!strcmp(argv[i], "--file-mib") && i + 1 < argc) g_cfg.file_size = strtoull(argv[++i], 0, 0) << 20;
		else { fprintf(stderr, "bad option %s\n", argv[i]); return 64; }
	}
	if (i != argc - 1 || g_depth < 1 || g_depth > 1024) {
		fprintf(stderr, "usage: %s [--depth N] [--no-pin] [--defer] [--file-mib N] MNT\n", argv[0]);
		return 64;
	}
	g_cfg.mnt = argv[i];
	g_cfg.want_uring = 1;
	g_stats_fn = stats;
	g_nq = possible_cpus();
	if (g_nq < 1 || g_nq > MAXQ) { fprintf(stderr, "spike: %d possible CPUs unsupported\n", g_nq); return 1; }
	/* must be >= the kernel's max_payload_sz = max(8 KiB, max_write, max_pages * 4 KiB) */
	g_payload_sz = SPIKE_MAX_WRITE > (size_t)SPIKE_MAX_PAGES * 4096 ? SPIKE_MAX_WRITE : (size_t)SPIKE_MAX_PAGES * 4096;
	spike_init_data();
	spike_start_sig_thread();
	int fd = spike_mount(g_cfg.mnt);
	if (fd < 0) return 1;
	g_cfg.fuse_fd = fd;
	pthread_t dev;
	g_dev.fd = fd;
	pthread_create(&dev, NULL, spike_classic_worker, &g_dev);
	if (spike_wait_init() != 0) { fprintf(stderr, "spike: no INIT within 10 s\n"); umount2(g_cfg.mnt, MNT_DETACH); return 1; }
	for (int q = 0; q < g_nq; q++) {
		g_q[q].qid = q;
		pthread_create(&g_q[q].th, NULL, queue_thread, &g_q[q]);
	}
	for (int q = 0; q < g_nq; q++) {
		while (atomic_load(&g_q[q].state) == 0) usleep(1000);
		if (atomic_load(&g_q[q].state) < 0) {
			fprintf(stderr, "spike: queue %d failed: %s\n", q, strerror(-atomic_load(&g_q[q].state)));
			umount2(g_cfg.mnt, MNT_DETACH);
			return 1;
		}
	}
	fprintf(stderr, "READY uring queues=%d depth=%d pin=%d defer=%d payload=%zu kernel_minor=%u offered=0x%llx replied=0x%llx\n",
		g_nq, g_depth, g_pin, g_defer, g_payload_sz, g_cfg.kernel_minor,
		(unsigned long long)g_cfg.init_flags, (unsigned long long)g_cfg.reply_flags);
	pthread_join(dev, NULL);   /* ENODEV after unmount */
	for (int q = 0; q < g_nq; q++) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 3;
		if (pthread_timedjoin_np(g_q[q].th, NULL, &ts) != 0)
			fprintf(stderr, "spike: queue %d did not stop within 3 s after the unmount\n", q);
	}
	stats();
	return 0;
}
