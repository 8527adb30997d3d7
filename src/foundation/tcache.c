/*
 * tcache: see tcache.h. Layout of a block: [header 16 bytes: class][user bytes]. The class is
 * BIG for blocks that bypass the cache; their header also records the user size for realloc.
 * A cached block reuses its user bytes as the free-list link.
 */
#include "tcache.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define HDR 16u
#define MIN_SHIFT 5 /* 32 bytes */
#define NCLASS 8    /* 32 .. 4096 */
#define BIG 0xffu

typedef struct {
    uint32_t cls;
    uint32_t pad;
    size_t size; /* user size, for BIG blocks */
} hdr;

_Static_assert(sizeof(hdr) <= HDR, "tcache header must fit in 16 bytes");

typedef struct node {
    struct node *next;
} node;

static __thread node *lists[NCLASS];
static __thread size_t counts[NCLASS];

static size_t class_size(unsigned c)
{
    return (size_t)1 << (c + MIN_SHIFT);
}

static unsigned class_of(size_t n)
{
    unsigned c = 0;
    while (c < NCLASS && class_size(c) < n) {
        c++;
    }
    return c < NCLASS ? c : BIG;
}

static void *user(hdr *h)
{
    return (uint8_t *)h + HDR;
}

static hdr *header(void *p)
{
    return (hdr *)(void *)((uint8_t *)p - HDR);
}

/* A block that bypasses the cache: a new one (old NULL), or old, a BIG block, resized. */
static void *big_block(hdr *old, size_t n)
{
    if (n > SIZE_MAX - HDR) {
        return NULL;
    }
    hdr *h = realloc(old, HDR + n);
    if (h == NULL) {
        return NULL;
    }
    h->cls = BIG;
    h->size = n;
    return user(h);
}

void *ns_tc_malloc(size_t n)
{
    unsigned c = class_of(n ? n : 1);
    if (c == BIG) {
        return big_block(NULL, n);
    }
    node *f = lists[c];
    if (f != NULL) {
        lists[c] = f->next;
        counts[c]--;
        return f;
    }
    hdr *h = malloc(HDR + class_size(c));
    if (h == NULL) {
        return NULL;
    }
    h->cls = c;
    return user(h);
}

void *ns_tc_calloc(size_t nmemb, size_t size)
{
    if (size != 0 && nmemb > SIZE_MAX / size) {
        return NULL;
    }
    void *p = ns_tc_malloc(nmemb * size);
    if (p != NULL) {
        memset(p, 0, nmemb * size);
    }
    return p;
}

void ns_tc_free(void *p)
{
    if (p == NULL) {
        return;
    }
    hdr *h = header(p);
    unsigned c = h->cls;
    if (c == BIG || counts[c] * class_size(c) >= NS_TC_CLASS_BYTES) {
        free(h);
        return;
    }
    node *f = p;
    f->next = lists[c];
    lists[c] = f;
    counts[c]++;
}

void *ns_tc_realloc(void *p, size_t n)
{
    if (p == NULL) {
        return ns_tc_malloc(n);
    }
    if (n == 0) {
        ns_tc_free(p);
        return NULL;
    }
    hdr *h = header(p);
    if (h->cls == BIG && class_of(n) == BIG) {
        return big_block(h, n);
    }
    size_t have = h->cls == BIG ? h->size : class_size(h->cls);
    if (n <= have && h->cls != BIG) {
        return p;
    }
    void *q = ns_tc_malloc(n);
    if (q == NULL) {
        return NULL; /* p stays valid, as with realloc */
    }
    memcpy(q, p, have < n ? have : n);
    ns_tc_free(p);
    return q;
}

size_t ns_tc_cached(void)
{
    size_t n = 0;
    for (unsigned c = 0; c < NCLASS; c++) {
        n += counts[c] * class_size(c);
    }
    return n;
}

void ns_tc_drain(void)
{
    for (unsigned c = 0; c < NCLASS; c++) {
        while (lists[c] != NULL) {
            node *f = lists[c];
            lists[c] = f->next;
            free(header(f));
        }
        counts[c] = 0;
    }
}
