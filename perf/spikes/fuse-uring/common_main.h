/* Small helpers both mains use: option parsing bits, the signal thread. */
#ifndef COMMON_MAIN_H
#define COMMON_MAIN_H
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

typedef void (*spike_stats_fn)(void);
static spike_stats_fn g_stats_fn;

/* SIGUSR1: print counters. SIGTERM/SIGINT: lazy-unmount our mount (workers then see
 * ENODEV / ENOTCONN and main exits); hard exit 3 s later if that did not happen. */
static void *spike_sig_thread(void *unused)
{
	(void)unused;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1); sigaddset(&set, SIGTERM); sigaddset(&set, SIGINT);
	for (;;) {
		int sig;
		if (sigwait(&set, &sig) != 0) continue;
		if (sig == SIGUSR1) { if (g_stats_fn) g_stats_fn(); continue; }
		fprintf(stderr, "spike: signal %d, unmounting %s\n", sig, g_cfg.mnt);
		umount2(g_cfg.mnt, MNT_DETACH);
		sleep(3);
		if (g_stats_fn) g_stats_fn();
		_exit(0);
	}
	return NULL;
}

static void spike_start_sig_thread(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1); sigaddset(&set, SIGTERM); sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);   /* inherited by every thread created later */
	pthread_t t;
	pthread_create(&t, NULL, spike_sig_thread, NULL);
	pthread_detach(t);
}

static int spike_wait_init(void)
{
	for (int i = 0; i < 10000 && !atomic_load(&g_cfg.init_done); i++)
		usleep(1000);
	return atomic_load(&g_cfg.init_done) ? 0 : -1;
}
#endif
