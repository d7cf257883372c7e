/*
 * CMallocCounter: counts heap allocations (and, on request, Swift retains and
 * releases) in the test process, for tests that assert a code path does not
 * allocate (swift-nio's tests_04_performance idea: hooked allocators, counts
 * compared before and after N iterations).
 *
 * Linked only into the test executable. Because SwiftPM on Linux links every
 * test target into one executable, the malloc family defined here replaces
 * glibc's for the whole test run; each definition is one relaxed atomic add
 * in front of the real glibc function (__libc_malloc & co), so other tests see
 * the same allocator. Likewise swift_retain/swift_release & co are wrapped for
 * the whole executable: one flag load in front of libswiftCore's.
 */
#ifndef CMALLOCCOUNTER_H
#define CMALLOCCOUNTER_H

#include <stdint.h>

/* Process-wide counts since start (all threads). */
uint64_t cvmc_allocations(void);   /* malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign, valloc */
uint64_t cvmc_frees(void);         /* free of a non-NULL pointer */
uint64_t cvmc_allocated_bytes(void);
/* The calling thread's allocations since it started. */
uint64_t cvmc_thread_allocations(void);

/* Records the stacks of the next `max` (<= 64) allocations of any thread;
 * stop writes them to `path` in llvm-symbolizer's input format ("CODE module
 * offset" per frame, stacks separated by a /dev/null frame) and returns how
 * many were recorded. */
void cvmc_record_start(int max);
int cvmc_record_stop(const char *path);

/* Swift ARC counting: swift_retain, swift_release, their _n forms and the
 * bridge-object forms, as called from compiled Swift code (this executable and
 * shared libraries), counted only between start and stop. Calls libswiftCore
 * makes to itself are not seen. Returns 0. */
int cvmc_arc_start(void);
void cvmc_arc_stop(void);
uint64_t cvmc_retains(void);       /* retain calls (n for the _n form) while started */
uint64_t cvmc_releases(void);
/* The calling thread's retains/releases counted while started. */
uint64_t cvmc_thread_retains(void);
uint64_t cvmc_thread_releases(void);
/* Records the stacks of the calling thread's next `max` (<= 64) counted retains and
 * releases (counting must be started); stop writes them as cvmc_record_stop does.
 * Shares cvmc_record_start's slots: use one recorder at a time. */
void cvmc_arc_record_start(int max);
int cvmc_arc_record_stop(const char *path);

#endif
