/*
 * virtq: see virtq.h. The guest writes the rings while we read them, so every ring field is read
 * exactly once into a local (never re-read after it was checked), with acquire/release fences
 * around the index fields as virtio's memory model asks. Fields are little-endian (VERSION_1).
 */
#include "virtq.h"

#include <endian.h>
#include <string.h>

static uint16_t ld16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t ld32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t ld64(const uint8_t *p)
{
    return (uint64_t)ld32(p) | (uint64_t)ld32(p + 4) << 32;
}

static void st16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void st32(uint8_t *p, uint32_t v)
{
    st16(p, (uint16_t)v);
    st16(p + 2, (uint16_t)(v >> 16));
}

static uint8_t *translate(const ns_vmem *m, uint64_t addr, uint64_t len, int by_uva)
{
    for (size_t i = 0; i < m->n && i < NS_VMEM_MAX_REGIONS; i++) {
        const ns_vmem_region *r = &m->r[i];
        uint64_t base = by_uva ? r->uva : r->gpa;
        if (addr < base || addr - base >= r->size) {
            continue;
        }
        uint64_t off = addr - base;
        if (len > r->size - off) {
            return NULL; /* runs past the end of its region */
        }
        return r->host + off;
    }
    return NULL;
}

uint8_t *ns_vmem_gpa(const ns_vmem *m, uint64_t gpa, uint64_t len)
{
    return translate(m, gpa, len, 0);
}

uint8_t *ns_vmem_uva(const ns_vmem *m, uint64_t uva, uint64_t len)
{
    return translate(m, uva, len, 1);
}

ns_err ns_vq_setup(ns_vq *q, const ns_vmem *m, uint16_t num, uint64_t desc_uva, uint64_t avail_uva,
                   uint64_t used_uva)
{
    const char *name = q->name ? q->name : "queue";
    ENSURE(num != 0 && (num & (num - 1)) == 0 && num <= NS_VQ_MAX_SIZE, NS_E_PROTO,
           "%s: queue size %u is not a power of two in 1..%u", name, num, NS_VQ_MAX_SIZE);
    ENSURE(desc_uva % 16 == 0 && avail_uva % 2 == 0 && used_uva % 4 == 0, NS_E_PROTO,
           "%s: misaligned ring address (desc 0x%llx, avail 0x%llx, used 0x%llx)", name,
           (unsigned long long)desc_uva, (unsigned long long)avail_uva,
           (unsigned long long)used_uva);
    uint8_t *d = ns_vmem_uva(m, desc_uva, 16ull * num);
    uint8_t *a = ns_vmem_uva(m, avail_uva, 6ull + 2ull * num);
    uint8_t *u = ns_vmem_uva(m, used_uva, 6ull + 8ull * num);
    ENSURE(d && a && u, NS_E_PROTO,
           "%s: ring outside the shared memory (desc 0x%llx, avail 0x%llx, used 0x%llx, size %u)",
           name, (unsigned long long)desc_uva, (unsigned long long)avail_uva,
           (unsigned long long)used_uva, num);
    q->num = num;
    q->desc = d;
    q->avail = a;
    q->used = u;
    return NS_OK;
}

void ns_vq_set_base(ns_vq *q, uint16_t base)
{
    q->last_avail = base;
    q->used_idx = base;
}

/* A ring index field, read once with acquire order (the entries it covers are read after it). */
static uint16_t ld16_acquire(const uint8_t *p)
{
    uint16_t v = le16toh(__atomic_load_n((const uint16_t *)(const void *)p, __ATOMIC_ACQUIRE));
    return v;
}

ns_err ns_vq_pop(ns_vq *q, const ns_vmem *m, ns_vq_chain *c)
{
    if (q->num == 0) {
        return NS_E_NOT_FOUND;
    }
    uint16_t idx = ld16_acquire(q->avail + 2);
    uint16_t pending = (uint16_t)(idx - q->last_avail);
    if (pending == 0) {
        return NS_E_NOT_FOUND;
    }
    ENSURE(pending <= q->num, NS_E_PROTO,
           "%s: guest moved the available index by %u in a ring of %u entries", q->name, pending,
           q->num);
    uint16_t head = ld16(q->avail + 4 + 2u * (q->last_avail % q->num));
    ENSURE(head < q->num, NS_E_PROTO, "%s: descriptor head %u out of range (queue size %u)",
           q->name, head, q->num);
    memset(c, 0, sizeof *c);
    c->head = head;
    uint16_t i = head;
    for (size_t n = 0;; n++) {
        ENSURE(n < NS_VQ_MAX_SEGS && n < q->num, NS_E_PROTO,
               "%s: descriptor chain at %u longer than %d (a loop?)", q->name, head,
               NS_VQ_MAX_SEGS);
        const uint8_t *d = q->desc + 16u * i;
        uint64_t addr = ld64(d);
        uint32_t len = ld32(d + 8);
        uint16_t flags = ld16(d + 12);
        uint16_t next = ld16(d + 14);
        ENSURE(!(flags & NS_VRING_DESC_F_INDIRECT), NS_E_PROTO,
               "%s: indirect descriptor %u but INDIRECT_DESC was not negotiated", q->name, i);
        uint8_t *p = len ? ns_vmem_gpa(m, addr, len) : NULL;
        ENSURE(len == 0 || p, NS_E_PROTO,
               "%s: descriptor %u [0x%llx, +%u) outside the guest memory", q->name, i,
               (unsigned long long)addr, len);
        if (flags & NS_VRING_DESC_F_WRITE) {
            c->wr[c->nwrite].p = p;
            c->wr[c->nwrite].len = len;
            c->nwrite++;
            c->wr_len += len;
        } else {
            ENSURE(c->nwrite == 0, NS_E_PROTO,
                   "%s: readable descriptor %u after a writable one in chain %u", q->name, i, head);
            c->rd[c->nread].p = p;
            c->rd[c->nread].len = len;
            c->nread++;
            c->rd_len += len;
        }
        if (!(flags & NS_VRING_DESC_F_NEXT)) {
            break;
        }
        ENSURE(next < q->num, NS_E_PROTO, "%s: next descriptor %u out of range (queue size %u)",
               q->name, next, q->num);
        i = next;
    }
    q->last_avail++;
    return NS_OK;
}

void ns_vq_unpop(ns_vq *q)
{
    q->last_avail--;
}

void ns_vq_push(ns_vq *q, uint16_t head, uint32_t len)
{
    uint8_t *e = q->used + 4 + 8u * (q->used_idx % q->num);
    st32(e, head);
    st32(e + 4, len);
    q->used_idx++;
    /* The entry is visible before the index that publishes it. */
    __atomic_store_n((uint16_t *)(void *)(q->used + 2), htole16(q->used_idx), __ATOMIC_RELEASE);
}

int ns_vq_wants_interrupt(const ns_vq *q)
{
    /* The used index store must be ordered before the read of the guest's flags. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return !(ld16_acquire(q->avail) & NS_VRING_AVAIL_F_NO_INTERRUPT);
}

static size_t copy_segs(ns_vq_seg *s, size_t ns, uint64_t off, uint8_t *buf, size_t n, int to_seg)
{
    size_t done = 0;
    for (size_t i = 0; i < ns && done < n; i++) {
        if (off >= s[i].len) {
            off -= s[i].len;
            continue;
        }
        size_t k = s[i].len - (size_t)off;
        if (k > n - done) {
            k = n - done;
        }
        if (to_seg) {
            memcpy(s[i].p + off, buf + done, k);
        } else {
            memcpy(buf + done, s[i].p + off, k);
        }
        done += k;
        off = 0;
    }
    return done;
}

size_t ns_vq_read(const ns_vq_chain *c, uint64_t off, void *out, size_t n)
{
    return copy_segs((ns_vq_seg *)c->rd, c->nread, off, out, n, 0);
}

size_t ns_vq_write(ns_vq_chain *c, uint64_t off, const void *in, size_t n)
{
    return copy_segs(c->wr, c->nwrite, off, (uint8_t *)in, n, 1);
}
