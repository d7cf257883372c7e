/*
 * numa.c: allowed CPUs and NUMA nodes, seen from inside our cpuset.
 *
 * The CPUs we may use come from sched_getaffinity, not from the machine: in a
 * pod the cgroup cpuset decides them. A NUMA node only counts when at least
 * one of its CPUs is in that set. libnuma rule: numa_available() must be
 * called (and be >= 0) before any other libnuma call.
 */
#include "cvshim_internal.h"

#include <errno.h>
#include <numa.h>
#include <stdlib.h>
#include <unistd.h>

/* The calling thread's affinity mask, dynamically sized: a fixed cpu_set_t
 * holds CPU_SETSIZE (1024) CPUs and sched_getaffinity fails with EINVAL when
 * the kernel's nr_cpu_ids is larger, so we double until it fits. The cap
 * (1 << 20 CPUs) only stops the loop on a nonsensical error. */
static cpu_set_t *allowed_set(size_t *size_out, int *ncpus_out)
{
    for (int n = CPU_SETSIZE; n <= (1 << 20); n *= 2) {
        cpu_set_t *set = CPU_ALLOC(n);
        if (set == NULL)
            return NULL;
        size_t size = CPU_ALLOC_SIZE(n);
        if (sched_getaffinity(0, size, set) == 0) {
            *size_out = size;
            *ncpus_out = n;
            return set;
        }
        int err = errno;
        CPU_FREE(set);
        if (err != EINVAL)
            return NULL;
    }
    return NULL;
}

int cvfuse_allowed_cpus(void)
{
    size_t size;
    int ncpus;
    cpu_set_t *set = allowed_set(&size, &ncpus);
    if (set == NULL) {
        /* No affinity information: the online count is the best upper bound. */
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        return online > 0 ? (int)online : 1;
    }
    int count = CPU_COUNT_S(size, set);
    CPU_FREE(set);
    return count > 0 ? count : 1;
}

void cvshim_free_node_sets(cpu_set_t **sets, int n)
{
    if (sets == NULL)
        return;
    for (int i = 0; i < n; i++)
        CPU_FREE(sets[i]);
    free(sets);
}

int cvshim_node_cpu_sets(cpu_set_t ***sets_out, size_t *setsize_out)
{
    *sets_out = NULL;
    *setsize_out = 0;
    if (numa_available() < 0)
        return 1;

    size_t size;
    int ncpus;
    cpu_set_t *allowed = allowed_set(&size, &ncpus);
    if (allowed == NULL)
        return 1;
    struct bitmask *node_cpus = numa_allocate_cpumask();
    int max_node = numa_max_node();
    cpu_set_t **sets = calloc((size_t)max_node + 1, sizeof(*sets));
    if (node_cpus == NULL || sets == NULL || max_node < 0) {
        if (node_cpus)
            numa_free_cpumask(node_cpus);
        free(sets);
        CPU_FREE(allowed);
        return 1;
    }

    int count = 0;
    for (int node = 0; node <= max_node; node++) {
        /* Node numbers can have holes; asking libnuma for the CPUs of a node
         * the kernel does not expose makes it warn and pretend "all CPUs". */
        if (!numa_bitmask_isbitset(numa_nodes_ptr, (unsigned)node))
            continue;
        if (numa_node_to_cpus(node, node_cpus) != 0)
            continue;
        cpu_set_t *set = CPU_ALLOC(ncpus);
        if (set == NULL)
            break;
        CPU_ZERO_S(size, set);
        int any = 0;
        for (int cpu = 0; cpu < ncpus; cpu++) {
            if (numa_bitmask_isbitset(node_cpus, (unsigned)cpu) && CPU_ISSET_S(cpu, size, allowed)) {
                CPU_SET_S(cpu, size, set);
                any = 1;
            }
        }
        if (any)
            sets[count++] = set;
        else
            CPU_FREE(set);   /* memory-only node, or none of its CPUs are ours */
    }
    numa_free_cpumask(node_cpus);
    CPU_FREE(allowed);

    if (count <= 1) {
        cvshim_free_node_sets(sets, count);
        return 1;
    }
    *sets_out = sets;
    *setsize_out = size;
    return count;
}

int cvfuse_numa_nodes(void)
{
    cpu_set_t **sets;
    size_t size;
    int n = cvshim_node_cpu_sets(&sets, &size);
    cvshim_free_node_sets(sets, sets ? n : 0);
    return n;
}
