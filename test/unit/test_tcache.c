/* Unit tests for tcache: reuse within a class, zeroing by calloc, realloc across classes and to
 * and from large blocks, the per-class cap, frees from another thread, drain, overflow. */
#include <pthread.h>
#include <stdint.h>

#include "t.h"
#include "tcache.h"

static void *free_elsewhere(void *p)
{
    ns_tc_free(p);
    size_t n = ns_tc_cached();
    ns_tc_drain();
    return (void *)n;
}

int main(void)
{
    ns_tc_drain();
    CHECK(ns_tc_cached() == 0, "a fresh thread caches nothing");

    uint8_t *a = ns_tc_malloc(40);
    CHECK(a != NULL && ((uintptr_t)a & 15) == 0, "malloc gives 16-byte aligned memory");
    memset(a, 0xab, 40);
    ns_tc_free(a);
    CHECK(ns_tc_cached() == 64, "a freed 40-byte block is cached in the 64-byte class");
    uint8_t *b = ns_tc_malloc(60);
    CHECK(b == a, "the next allocation of that class takes the cached block back");
    CHECK(ns_tc_cached() == 0, "taking it back leaves the cache empty");
    ns_tc_free(b);
    uint8_t *z = ns_tc_calloc(6, 10);
    int zero = z == a;
    for (int i = 0; i < 60; i++) {
        zero &= z[i] == 0;
    }
    CHECK(zero, "calloc of a reused block zeroes it");

    for (int i = 0; i < 60; i++) {
        z[i] = (uint8_t)i;
    }
    uint8_t *r = ns_tc_realloc(z, 64);
    CHECK(r == z, "realloc within the block's class keeps the block");
    r = ns_tc_realloc(r, 3000);
    int same = r != NULL;
    for (int i = 0; i < 60 && same; i++) {
        same = r[i] == i;
    }
    CHECK(same, "realloc to a larger class keeps the contents");
    r = ns_tc_realloc(r, 100000);
    same = r != NULL;
    for (int i = 0; i < 60 && same; i++) {
        same = r[i] == i;
    }
    CHECK(same, "realloc to a large (uncached) block keeps the contents");
    r[99999] = 7;
    r = ns_tc_realloc(r, 200000);
    CHECK(r != NULL && r[0] == 0 && r[59] == 59 && r[99999] == 7, "large to larger keeps contents");
    r = ns_tc_realloc(r, 100);
    CHECK(r != NULL && r[0] == 0 && r[59] == 59, "large back to a small class keeps contents");
    size_t before = ns_tc_cached();
    ns_tc_free(r);
    CHECK(ns_tc_cached() == before + 128, "a 100-byte block is cached in the 128-byte class");
    void *fresh = ns_tc_realloc(NULL, 10);
    CHECK(fresh != NULL, "realloc(NULL) allocates");
    ns_tc_free(fresh);
    void *big = ns_tc_malloc(5000);
    before = ns_tc_cached();
    ns_tc_free(big);
    CHECK(ns_tc_cached() == before, "blocks above 4096 bytes go back to malloc, not the cache");

    CHECK(ns_tc_malloc(SIZE_MAX - 8) == NULL, "malloc of SIZE_MAX - 8 fails cleanly");
    CHECK(ns_tc_calloc(SIZE_MAX / 2, 3) == NULL, "calloc overflow fails cleanly");
    ns_tc_free(NULL);

    /* The per-class cap: freeing many blocks of one class caches at most NS_TC_CLASS_BYTES. */
    ns_tc_drain();
    enum { N = 2 * NS_TC_CLASS_BYTES / 4096 };
    void *blocks[N];
    for (int i = 0; i < N; i++) {
        blocks[i] = ns_tc_malloc(4096);
    }
    for (int i = 0; i < N; i++) {
        ns_tc_free(blocks[i]);
    }
    CHECK(ns_tc_cached() == NS_TC_CLASS_BYTES, "one class caches at most NS_TC_CLASS_BYTES");

    /* A block freed by another thread lands in that thread's cache, not ours. */
    ns_tc_drain();
    void *x = ns_tc_malloc(200);
    pthread_t t;
    void *theirs = NULL;
    CHECK(pthread_create(&t, NULL, free_elsewhere, x) == 0 && pthread_join(t, &theirs) == 0,
          "free from another thread runs");
    CHECK((size_t)theirs == 256 && ns_tc_cached() == 0,
          "the freeing thread cached the block, this one did not");

    void *y = ns_tc_malloc(32);
    ns_tc_free(y);
    ns_tc_drain();
    CHECK(ns_tc_cached() == 0, "drain empties the cache");
    T_DONE();
}
