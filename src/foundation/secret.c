/*
 * secret: see secret.h. Allocations are whole pages from mmap so mlock/madvise apply exactly to
 * them; the size is stored in a header page-slot so free does not trust the caller's n alone.
 * mlock failing (RLIMIT_MEMLOCK) is tolerated with the memory still wiped and not dumped: an
 * enclave has no swap, and refusing to run would be worse than a warning the caller can't act on.
 */
#include "secret.h"

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#define NS_SECRET_HDR 64

static size_t g_allocs; /* for tests: proof that a buffer went to secret memory */

size_t ns_secret_allocs(void)
{
    return __atomic_load_n(&g_allocs, __ATOMIC_RELAXED);
}

static size_t page_round(size_t n)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    return (n + pg - 1) / pg * pg;
}

void *ns_secret_alloc(size_t n)
{
    if (n > SIZE_MAX - NS_SECRET_HDR - 65536) {
        return NULL;
    }
    size_t total = page_round(n + NS_SECRET_HDR);
    uint8_t *base = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) {
        return NULL;
    }
    (void)madvise(base, total, MADV_DONTDUMP);
    (void)mlock(base, total);
    memcpy(base, &total, sizeof total);
    __atomic_add_fetch(&g_allocs, 1, __ATOMIC_RELAXED);
    return base + NS_SECRET_HDR;
}

void ns_secret_free(void *p, size_t n)
{
    (void)n;
    if (p == NULL) {
        return;
    }
    uint8_t *base = (uint8_t *)p - NS_SECRET_HDR;
    size_t total;
    memcpy(&total, base, sizeof total);
    ns_wipe(base, total);
    (void)munlock(base, total);
    munmap(base, total);
}

void ns_wipe(void *p, size_t n)
{
    if (p == NULL || n == 0) {
        return;
    }
    volatile uint8_t *v = p;
    while (n--) {
        *v++ = 0;
    }
    __asm__ __volatile__("" : : "r"(p) : "memory");
}

void ns_wipe_if(int cond, void *p, size_t n)
{
    if (cond) {
        ns_wipe(p, n);
    }
}

int ns_ct_equal(const void *a, const void *b, size_t n)
{
    const volatile uint8_t *x = a;
    const volatile uint8_t *y = b;
    uint8_t d = 0;
    for (size_t i = 0; i < n; i++) {
        d |= x[i] ^ y[i];
    }
    return d == 0;
}

ns_err ns_secret_process_init(void)
{
    struct rlimit rl = {0, 0};
    ENSURE(prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0, NS_E_INTERNAL,
           "prctl(PR_SET_DUMPABLE, 0) failed");
    (void)setrlimit(RLIMIT_CORE, &rl);
    return NS_OK;
}
