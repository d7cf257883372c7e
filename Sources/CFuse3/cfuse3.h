/* libfuse 3.14 low-level API. FUSE_USE_VERSION is pinned here and in CShim so
 * both see the same versioned symbols (fuse_session_loop_mt is a macro over
 * fuse_session_loop_mt_312 at this version). */
#ifndef CFUSE3_H
#define CFUSE3_H
#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 314
#endif
#include <fuse_lowlevel.h>
#endif
