/* (a) classic transport: N threads doing read()/write() on one /dev/fuse fd.
 * usage: spike_classic [--threads N] [--file-mib N] MNT
 *        spike_classic --dump MIB        (expected file content, for checking)   */
#include "spike_fs.h"
#include "common_main.h"

#define MAXT 64
static struct spike_classic_arg g_args[MAXT];
static int g_nthreads = 2;

static void stats(void)
{
	struct spike_stats s[MAXT];
	for (int i = 0; i < g_nthreads; i++) s[i] = g_args[i].st;
	spike_print_stats("classic", s, g_nthreads);
}

int main(int argc, char **argv)
{
	int i;
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--threads") && i + 1 < argc) g_nthreads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--file-mib") && i + 1 < argc) g_cfg.file_size = strtoull(argv[++i], 0, 0) << 20;
		else if (!strcmp(argv[i], "--dump") && i + 1 < argc) { spike_init_data(); return spike_dump(strtoull(argv[++i], 0, 0)); }
		else { fprintf(stderr, "bad option %s\n", argv[i]); return 64; }
	}
	if (i != argc - 1 || g_nthreads < 1 || g_nthreads > MAXT) {
		fprintf(stderr, "usage: %s [--threads N] [--file-mib N] MNT | --dump MIB\n", argv[0]);
		return 64;
	}
	g_cfg.mnt = argv[i];
	g_stats_fn = stats;
	spike_init_data();
	spike_start_sig_thread();
	int fd = spike_mount(g_cfg.mnt);
	if (fd < 0) return 1;
	g_cfg.fuse_fd = fd;
	pthread_t th[MAXT];
	for (int t = 0; t < g_nthreads; t++) {
		g_args[t].fd = fd; g_args[t].idx = t;
		pthread_create(&th[t], NULL, spike_classic_worker, &g_args[t]);
	}
	if (spike_wait_init() != 0) { fprintf(stderr, "spike: no INIT within 10 s\n"); umount2(g_cfg.mnt, MNT_DETACH); return 1; }
	fprintf(stderr, "READY classic threads=%d kernel_minor=%u offered=0x%llx replied=0x%llx\n",
		g_nthreads, g_cfg.kernel_minor, (unsigned long long)g_cfg.init_flags,
		(unsigned long long)g_cfg.reply_flags);
	for (int t = 0; t < g_nthreads; t++) pthread_join(th[t], NULL);
	stats();
	return 0;
}
