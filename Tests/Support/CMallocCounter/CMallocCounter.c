/* See include/CMallocCounter.h. glibc documents replacing malloc ("Replacing
 * malloc" in its manual): malloc, free, calloc and realloc must all be
 * replaced; the aligned variants too, or memory from them would be freed by
 * our free without being counted. The real implementations stay reachable as
 * __libc_malloc & co. */
#define _GNU_SOURCE
#include "CMallocCounter.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);

static _Atomic uint64_t allocations;
static _Atomic uint64_t frees;
static _Atomic uint64_t bytes;
static __thread uint64_t thread_allocations;

static void record(void);
static _Atomic int recording;

static inline void note(size_t n)
{
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&bytes, n, memory_order_relaxed);
    thread_allocations++;
    if (atomic_load_explicit(&recording, memory_order_relaxed))
        record();
}

void *malloc(size_t n)
{
    note(n);
    return __libc_malloc(n);
}

void *calloc(size_t c, size_t n)
{
    note(c * n);
    return __libc_calloc(c, n);
}

void *realloc(void *p, size_t n)
{
    if (n != 0)
        note(n);
    else if (p != NULL)
        atomic_fetch_add_explicit(&frees, 1, memory_order_relaxed);
    return __libc_realloc(p, n);
}

void free(void *p)
{
    if (p != NULL)
        atomic_fetch_add_explicit(&frees, 1, memory_order_relaxed);
    __libc_free(p);
}

void *memalign(size_t align, size_t n)
{
    note(n);
    return __libc_memalign(align, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    note(n);
    return __libc_memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    if (align < sizeof(void *) || (align & (align - 1)) != 0)
        return EINVAL;
    note(n);
    void *p = __libc_memalign(align, n);
    if (p == NULL)
        return ENOMEM;
    *out = p;
    return 0;
}

void *valloc(size_t n)
{
    note(n);
    return __libc_valloc(n);
}

void *pvalloc(size_t n)
{
    note(n);
    return __libc_pvalloc(n);
}

uint64_t cvmc_allocations(void) { return atomic_load_explicit(&allocations, memory_order_relaxed); }
uint64_t cvmc_frees(void) { return atomic_load_explicit(&frees, memory_order_relaxed); }
uint64_t cvmc_allocated_bytes(void) { return atomic_load_explicit(&bytes, memory_order_relaxed); }
uint64_t cvmc_thread_allocations(void) { return thread_allocations; }

/* ---- where allocations come from (debugging a failed test) ---- */

#include <execinfo.h>
#include <stdio.h>

#define RECORD_MAX 64
#define RECORD_DEPTH 24
static void *stacks[RECORD_MAX][RECORD_DEPTH];
static int depths[RECORD_MAX];
static _Atomic int recorded;
static _Atomic int record_limit;
static __thread int in_record;

__attribute__((noinline)) static void record(void)
{
    if (in_record)
        return;  /* backtrace() may allocate */
    int i = atomic_fetch_add_explicit(&recorded, 1, memory_order_relaxed);
    if (i >= atomic_load_explicit(&record_limit, memory_order_relaxed)) {
        atomic_store_explicit(&recording, 0, memory_order_relaxed);
        return;
    }
    in_record = 1;
    depths[i] = backtrace(stacks[i], RECORD_DEPTH);
    in_record = 0;
}

void cvmc_record_start(int max)
{
    void *warm[2];
    backtrace(warm, 2);  /* the first call loads libgcc_s (allocates) */
    atomic_store(&recorded, 0);
    atomic_store(&record_limit, max < RECORD_MAX ? max : RECORD_MAX);
    atomic_store(&recording, 1);
}

int cvmc_record_stop(const char *path)
{
    atomic_store(&recording, 0);
    int n = atomic_load(&recorded);
    int lim = atomic_load(&record_limit);
    if (n > lim)
        n = lim;
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    in_record = 1;
    for (int i = 0; i < n; i++) {
        /* Frame 0-1 are record() and note(). */
        for (int j = 2; j < depths[i]; j++) {
            Dl_info info;
            if (dladdr(stacks[i][j], &info) && info.dli_fname != NULL)
                fprintf(f, "CODE %s 0x%lx\n", info.dli_fname,
                        (unsigned long)((char *)stacks[i][j] - (char *)info.dli_fbase - 1));
        }
        fprintf(f, "CODE /dev/null 0x0\n");  /* separator: symbolizes as ?? */
    }
    fclose(f);
    in_record = 0;
    return n;
}

/* ---- Swift ARC ---- */

/* swift_retain & co are defined here, in the test executable, so calls from
 * compiled Swift code (this executable and the shared libraries that import
 * them through their PLT) come here first; each forwards to libswiftCore's
 * through dlsym(RTLD_NEXT). Calls inside libswiftCore itself are direct and
 * not seen (e.g. swift_bridgeObjectRetain's own swift_retain) — the wrappers
 * for the bridge-object entry points count those instead.
 *
 * (The runtime's instrumentation hooks, _swift_retain & co behind
 * _swift_enableSwizzlingOfAllocationAndRefCountingFunctions_forInstrumentsOnly,
 * cannot be used on Linux: the adapter masks the pointer before the validity
 * check, so the retain of a small String's tagged word reaches the hook as a
 * small bogus address and crashes.) */
typedef void *(*retain_fn)(void *);
typedef void (*release_fn)(void *);
typedef void *(*retain_n_fn)(void *, uint32_t);
typedef void (*release_n_fn)(void *, uint32_t);

static _Atomic int arc_on;
static _Atomic uint64_t retains;
static _Atomic uint64_t releases;
/* Per thread (counted only while started, like the process-wide counts). */
static __thread uint64_t thread_retains;
static __thread uint64_t thread_releases;
/* Stacks of this thread's next retains/releases (cvmc_arc_record_start). */
static __thread int arc_recording;
static void record_arc(void);

static void *next(const char *name)
{
    void *f = dlsym(RTLD_NEXT, name);
    if (f == NULL)
        __builtin_trap();
    return f;
}

#define NEXT(type, var, name)                                                          \
    static _Atomic(type) var;                                                          \
    static inline type var##_get(void)                                                 \
    {                                                                                  \
        type f = atomic_load_explicit(&var, memory_order_relaxed);                     \
        if (f == NULL) {                                                               \
            f = (type)next(name);                                                      \
            atomic_store_explicit(&var, f, memory_order_relaxed);                      \
        }                                                                              \
        return f;                                                                      \
    }

NEXT(retain_fn, real_retain, "swift_retain")
NEXT(release_fn, real_release, "swift_release")
NEXT(retain_n_fn, real_retain_n, "swift_retain_n")
NEXT(release_n_fn, real_release_n, "swift_release_n")
NEXT(retain_fn, real_bo_retain, "swift_bridgeObjectRetain")
NEXT(release_fn, real_bo_release, "swift_bridgeObjectRelease")

static inline void count(_Atomic uint64_t *c, void *o, uint64_t n)
{
    if (atomic_load_explicit(&arc_on, memory_order_relaxed) && o != NULL) {
        atomic_fetch_add_explicit(c, n, memory_order_relaxed);
        if (c == &retains)
            thread_retains += n;
        else
            thread_releases += n;
        if (arc_recording)
            record_arc();
    }
}

void *swift_retain(void *o)
{
    count(&retains, o, 1);
    return real_retain_get()(o);
}

void swift_release(void *o)
{
    count(&releases, o, 1);
    real_release_get()(o);
}

void *swift_retain_n(void *o, uint32_t n)
{
    count(&retains, o, n);
    return real_retain_n_get()(o, n);
}

void swift_release_n(void *o, uint32_t n)
{
    count(&releases, o, n);
    real_release_n_get()(o, n);
}

void *swift_bridgeObjectRetain(void *o)
{
    count(&retains, o, 1);
    return real_bo_retain_get()(o);
}

void swift_bridgeObjectRelease(void *o)
{
    count(&releases, o, 1);
    real_bo_release_get()(o);
}

int cvmc_arc_start(void)
{
    atomic_store_explicit(&arc_on, 1, memory_order_relaxed);
    return 0;
}

void cvmc_arc_stop(void) { atomic_store_explicit(&arc_on, 0, memory_order_relaxed); }

uint64_t cvmc_retains(void) { return atomic_load_explicit(&retains, memory_order_relaxed); }
uint64_t cvmc_releases(void) { return atomic_load_explicit(&releases, memory_order_relaxed); }
uint64_t cvmc_thread_retains(void) { return thread_retains; }
uint64_t cvmc_thread_releases(void) { return thread_releases; }

/* Shares the allocation recorder's stack slots: do not record both at once. */
__attribute__((noinline)) static void record_arc(void)
{
    if (in_record)
        return;
    int i = atomic_fetch_add_explicit(&recorded, 1, memory_order_relaxed);
    if (i >= atomic_load_explicit(&record_limit, memory_order_relaxed)) {
        arc_recording = 0;
        return;
    }
    in_record = 1;
    depths[i] = backtrace(stacks[i], RECORD_DEPTH);
    in_record = 0;
}

void cvmc_arc_record_start(int max)
{
    void *warm[2];
    backtrace(warm, 2);
    atomic_store(&recorded, 0);
    atomic_store(&record_limit, max < RECORD_MAX ? max : RECORD_MAX);
    arc_recording = 1;
}

int cvmc_arc_record_stop(const char *path)
{
    arc_recording = 0;
    return cvmc_record_stop(path);
}
