/*
 * tcache: a per-thread cache of small heap blocks in front of malloc, for an event loop's
 * allocation churn (sign-service: nghttp2's per-stream objects and our per-stream state, about
 * twenty small blocks per request).
 *
 * Why: musl's allocator takes one process-wide lock per call and hands freed groups back to the
 * kernel eagerly, so two loops allocating and freeing per request contend on the lock and pay
 * page faults, munmap and TLB shoot-downs (measured with perf under h2load). Here a freed block
 * goes onto its size class's list in the freeing thread and the next allocation of that class in
 * that thread takes it back without a lock or a system call.
 *
 * Blocks carry a 16-byte header (their class), so any thread may free any block; it lands in the
 * freeing thread's lists. Classes are powers of two from 32 to 4096 bytes; larger requests go
 * straight to malloc. Each list keeps at most NS_TC_CLASS_BYTES bytes, so a thread caches at
 * most about 8 * NS_TC_CLASS_BYTES; the rest is freed. ns_tc_drain() frees this thread's cache
 * (call it before the thread exits). Not for secrets: cached blocks are not wiped.
 */
#ifndef NS_TCACHE_H
#define NS_TCACHE_H

#include <stddef.h>

#define NS_TC_CLASS_BYTES (128u * 1024)

void *ns_tc_malloc(size_t n);
void *ns_tc_calloc(size_t nmemb, size_t size);
void *ns_tc_realloc(void *p, size_t n);
void ns_tc_free(void *p);
/* Bytes of blocks the calling thread holds in its cache (for tests and accounting). */
size_t ns_tc_cached(void);
/* Frees every block cached by the calling thread. */
void ns_tc_drain(void);

#endif
