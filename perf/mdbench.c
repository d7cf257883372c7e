// mdbench: the metadata benchmark of perf/run.sh.
//
//   mdbench create|stat|unlink DIR N THREADS [PASSES]
//
// Works on the files DIR/f000000 .. DIR/f<N-1>. Thread t of T owns a contiguous slice of
// them; all threads start together at a barrier. It prints one line to stdout:
//
//   <phase> ops=<count> threads=<T> secs=<wall seconds> ops_per_s=<rate>
//
// and exits 1 (after printing the first failing call and its errno to stderr) if any call
// fails. `create` is open(O_CREAT|O_EXCL|O_WRONLY) + close of an empty file; `stat` is
// stat(2) by path (so it includes the path lookup), repeated PASSES times (default 1);
// `unlink` is unlink(2).
//
// Why C and not Python: on tmpfs one stat takes about a microsecond, the same order as
// one Python call, and Python threads serialise on the GIL outside the syscall. A Python
// loop would measure the interpreter, and its 4-thread native figure would not scale,
// so the "ours/native" ratios would flatter us. perf/run.sh compiles this at run time
// (gcc -O2 -pthread, a second), so nothing binary is committed.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum phase { CREATE, STAT, UNLINK };

static const char *dir;
static long nfiles;
static int nthreads;
static int passes = 1;
static enum phase phase;
static pthread_barrier_t barrier;

struct slice {
    long begin, end;
    int err;         // first errno, 0 if none
    long failed_at;  // file index of the first failure
    double t0, t1;   // this thread's start (after the barrier) and end
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *worker(void *arg) {
    struct slice *s = arg;
    char path[4096];
    pthread_barrier_wait(&barrier);
    s->t0 = now();
    for (int p = 0; p < passes; p++) {
        for (long i = s->begin; i < s->end; i++) {
            snprintf(path, sizeof path, "%s/f%06ld", dir, i);
            int rc;
            if (phase == CREATE) {
                int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
                rc = fd < 0 ? -1 : close(fd);
            } else if (phase == STAT) {
                struct stat st;
                rc = stat(path, &st);
            } else {
                rc = unlink(path);
            }
            if (rc != 0 && s->err == 0) {
                s->err = errno;
                s->failed_at = i;
                return NULL;  // one error is enough: the figure would be meaningless
            }
        }
    }
    s->t1 = now();
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 5 || argc > 6) {
        fprintf(stderr, "usage: %s create|stat|unlink DIR N THREADS [PASSES]\n", argv[0]);
        return 2;
    }
    const char *ph = argv[1];
    if (!strcmp(ph, "create")) phase = CREATE;
    else if (!strcmp(ph, "stat")) phase = STAT;
    else if (!strcmp(ph, "unlink")) phase = UNLINK;
    else { fprintf(stderr, "mdbench: unknown phase '%s'\n", ph); return 2; }
    dir = argv[2];
    nfiles = atol(argv[3]);
    nthreads = atoi(argv[4]);
    if (argc == 6) passes = atoi(argv[5]);
    if (nfiles <= 0 || nthreads <= 0 || passes <= 0 || (phase != STAT && passes != 1)) {
        fprintf(stderr, "mdbench: N, THREADS and PASSES must be positive; PASSES only for stat\n");
        return 2;
    }

    struct slice *sl = calloc(nthreads, sizeof *sl);
    pthread_t *th = calloc(nthreads, sizeof *th);
    pthread_barrier_init(&barrier, NULL, nthreads + 1);
    for (int t = 0; t < nthreads; t++) {
        sl[t].begin = nfiles * t / nthreads;
        sl[t].end = nfiles * (t + 1) / nthreads;
        if (pthread_create(&th[t], NULL, worker, &sl[t]) != 0) { perror("pthread_create"); return 1; }
    }
    pthread_barrier_wait(&barrier);
    // Wall time = first thread's start to last thread's end, taken by the workers themselves:
    // main may be descheduled right after the barrier (2 CPUs), so its own clock would not do.
    for (int t = 0; t < nthreads; t++) pthread_join(th[t], NULL);
    double t0 = sl[0].t0, t1 = sl[0].t1;
    for (int t = 1; t < nthreads; t++) {
        if (sl[t].t0 < t0) t0 = sl[t].t0;
        if (sl[t].t1 > t1) t1 = sl[t].t1;
    }
    double secs = t1 - t0;

    for (int t = 0; t < nthreads; t++) {
        if (sl[t].err) {
            fprintf(stderr, "mdbench: %s %s/f%06ld: %s\n", ph, dir, sl[t].failed_at, strerror(sl[t].err));
            return 1;
        }
    }
    long ops = nfiles * (long)passes;
    printf("%s ops=%ld threads=%d secs=%.6f ops_per_s=%.1f\n", ph, ops, nthreads, secs, ops / secs);
    return 0;
}
