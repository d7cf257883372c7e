/* libnuma 2.x: numa_available() must be called before any other libnuma call. */
#ifndef CNUMA_H
#define CNUMA_H
#include <numa.h>
#endif
