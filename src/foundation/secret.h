/*
 * secret: memory for key material.
 *
 * ns_secret_alloc returns page-backed memory that is mlock'ed (never swapped) and marked
 * MADV_DONTDUMP (never in a core file); ns_secret_free wipes it before unmapping.
 * ns_secret_process_init makes the whole process non-dumpable (no core, no ptrace by non-root).
 * ns_wipe is a wipe the compiler cannot elide. ns_ct_equal compares in constant time.
 */
#ifndef NS_SECRET_H
#define NS_SECRET_H

#include <stddef.h>

#include "err.h"

void *ns_secret_alloc(size_t n);
void ns_secret_free(void *p, size_t n);
void ns_wipe(void *p, size_t n);
/* Wipes only when cond (e.g. a buffer's secret flag). */
void ns_wipe_if(int cond, void *p, size_t n);
int ns_ct_equal(const void *a, const void *b, size_t n);
/* How many secret allocations the process has made so far (tests check a path uses them). */
size_t ns_secret_allocs(void);
/* PR_SET_DUMPABLE 0 and RLIMIT_CORE 0. */
ns_err ns_secret_process_init(void) NS_MUST_CHECK;

#endif
