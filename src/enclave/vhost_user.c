/*
 * vhost_user: see vhost_user.h. Ring life cycle as the spec words it: a ring starts when it gets
 * a kick fd and stops at GET_VRING_BASE; with VHOST_USER_F_PROTOCOL_FEATURES negotiated it also
 * starts disabled until SET_VRING_ENABLE 1. Ring addresses are front-end user addresses and are
 * translated again whenever the memory table changes.
 */
#include "vhost_user.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "addr.h"
#include "iox.h"
#include "log.h"

#define VU_OFFERED_FEATURES (1ull << NS_VIRTIO_F_VERSION_1 | 1ull << NS_VHOST_F_PROTOCOL_FEATURES)
#define VU_OFFERED_PROTOCOL (1ull << NS_VHOST_PROTO_REPLY_ACK | 1ull << NS_VHOST_PROTO_CONFIG)
#define VU_VRING_IDX_MASK 0xffu
#define VU_VRING_NOFD 0x100u
#define VU_CONFIG_HDR 12
#define VU_VSOCK_CONFIG_LEN 8
#define VU_READ_TIMEOUT_MS 5000
#define VU_EVENTS 64

static uint32_t ld32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t ld64(const uint8_t *p)
{
    return (uint64_t)ld32(p) | (uint64_t)ld32(p + 4) << 32;
}

static void st32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void st64(uint8_t *p, uint64_t v)
{
    st32(p, (uint32_t)v);
    st32(p + 4, (uint32_t)(v >> 32));
}

static const char *req_name(uint32_t r)
{
    static const char *names[] = {
        [NS_VHOST_GET_FEATURES] = "GET_FEATURES",
        [NS_VHOST_SET_FEATURES] = "SET_FEATURES",
        [NS_VHOST_SET_OWNER] = "SET_OWNER",
        [NS_VHOST_RESET_OWNER] = "RESET_OWNER",
        [NS_VHOST_SET_MEM_TABLE] = "SET_MEM_TABLE",
        [NS_VHOST_SET_LOG_BASE] = "SET_LOG_BASE",
        [NS_VHOST_SET_LOG_FD] = "SET_LOG_FD",
        [NS_VHOST_SET_VRING_NUM] = "SET_VRING_NUM",
        [NS_VHOST_SET_VRING_ADDR] = "SET_VRING_ADDR",
        [NS_VHOST_SET_VRING_BASE] = "SET_VRING_BASE",
        [NS_VHOST_GET_VRING_BASE] = "GET_VRING_BASE",
        [NS_VHOST_SET_VRING_KICK] = "SET_VRING_KICK",
        [NS_VHOST_SET_VRING_CALL] = "SET_VRING_CALL",
        [NS_VHOST_SET_VRING_ERR] = "SET_VRING_ERR",
        [NS_VHOST_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
        [NS_VHOST_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
        [NS_VHOST_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
        [NS_VHOST_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
        [NS_VHOST_GET_CONFIG] = "GET_CONFIG",
        [NS_VHOST_SET_CONFIG] = "SET_CONFIG",
    };
    if (r < sizeof names / sizeof names[0] && names[r]) {
        return names[r];
    }
    return "unknown request";
}

void ns_vhost_init(ns_vhost *s, uint64_t guest_cid, int epfd, ns_vsock_dev *dev)
{
    memset(s, 0, sizeof *s);
    s->guest_cid = guest_cid;
    s->epfd = epfd;
    s->dev = dev;
    for (int i = 0; i < NS_VHOST_NQUEUES; i++) {
        ns_vhost_ring *r = &s->ring[i];
        r->tag = NS_VTAG_KICK;
        r->index = i;
        r->vq.name = i == 0 ? "rx" : "tx";
        r->kick_fd = r->call_fd = r->err_fd = -1;
    }
}

static void close_fds(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
            fds[i] = -1;
        }
    }
}

int ns_vhost_ring_running(const ns_vhost *s, int i)
{
    const ns_vhost_ring *r = &s->ring[i];
    return r->started && r->enabled && r->vq.num != 0;
}

/* Tells the device which queues run now. */
static void sync_dev(ns_vhost *s)
{
    if (!s->dev) {
        return;
    }
    ns_vq *rx = ns_vhost_ring_running(s, 0) ? &s->ring[0].vq : NULL;
    ns_vq *tx = ns_vhost_ring_running(s, 1) ? &s->ring[1].vq : NULL;
    ns_vsock_dev_attach(s->dev, (rx || tx) ? &s->mem : NULL, rx, tx);
}

/* (Re)translates a ring's addresses; a ring whose rings are not in memory cannot run. */
static ns_err ring_setup(ns_vhost *s, ns_vhost_ring *r)
{
    r->vq.num = 0;
    if (!r->have_addr || r->num == 0) {
        return NS_OK;
    }
    GUARD(ns_vq_setup(&r->vq, &s->mem, r->num, r->desc_uva, r->avail_uva, r->used_uva));
    ns_vq_set_base(&r->vq, r->base);
    return NS_OK;
}

static void unmap_all(ns_vhost *s)
{
    for (size_t i = 0; i < NS_VMEM_MAX_REGIONS; i++) {
        if (s->maps[i].base) {
            munmap(s->maps[i].base, s->maps[i].len);
            s->maps[i].base = NULL;
        }
    }
    memset(&s->mem, 0, sizeof s->mem);
}

static void set_fd(int *slot, int fd)
{
    if (*slot >= 0) {
        close(*slot);
    }
    *slot = fd;
}

static void kick_watch(ns_vhost *s, ns_vhost_ring *r, int on)
{
    if (s->epfd < 0 || r->kick_fd < 0) {
        return;
    }
    if (on) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = r};
        (void)epoll_ctl(s->epfd, EPOLL_CTL_ADD, r->kick_fd, &ev);
    } else {
        (void)epoll_ctl(s->epfd, EPOLL_CTL_DEL, r->kick_fd, NULL);
    }
}

void ns_vhost_cleanup(ns_vhost *s)
{
    if (s->dev) {
        ns_vsock_dev_attach(s->dev, NULL, NULL, NULL);
    }
    for (int i = 0; i < NS_VHOST_NQUEUES; i++) {
        ns_vhost_ring *r = &s->ring[i];
        kick_watch(s, r, 0);
        set_fd(&r->kick_fd, -1);
        set_fd(&r->call_fd, -1);
        set_fd(&r->err_fd, -1);
    }
    unmap_all(s);
}

static ns_err mem_table(ns_vhost *s, const ns_vhost_msg *m, int *fds, size_t nfds)
{
    ENSURE(m->size >= 8, NS_E_PROTO, "SET_MEM_TABLE: payload of %u bytes", m->size);
    uint32_t n = ld32(m->payload);
    ENSURE(n >= 1 && n <= NS_VMEM_MAX_REGIONS, NS_E_PROTO,
           "SET_MEM_TABLE: %u regions (1..%d supported)", n, NS_VMEM_MAX_REGIONS);
    ENSURE(m->size == 8 + 32 * n, NS_E_PROTO, "SET_MEM_TABLE: %u bytes for %u regions", m->size, n);
    ENSURE(nfds == n, NS_E_PROTO, "SET_MEM_TABLE: %u regions but %zu file descriptors", n, nfds);
    ns_vmem mem = {0};
    ns_vhost_map maps[NS_VMEM_MAX_REGIONS] = {{0}};
    ns_err e = NS_OK;
    for (uint32_t i = 0; i < n && e == NS_OK; i++) {
        const uint8_t *p = m->payload + 8 + 32 * i;
        uint64_t gpa = ld64(p), size = ld64(p + 8), uva = ld64(p + 16), off = ld64(p + 24);
        if (size == 0 || size > SIZE_MAX - off || gpa + size < gpa || uva + size < uva) {
            e = ns_fail(NS_E_PROTO,
                        "SET_MEM_TABLE: region %u has a bad size 0x%llx (offset 0x%llx)", i,
                        (unsigned long long)size, (unsigned long long)off);
            break;
        }
        for (uint32_t k = 0; k < i; k++) {
            const ns_vmem_region *o = &mem.r[k];
            if (gpa < o->gpa + o->size && o->gpa < gpa + size) {
                e = ns_fail(NS_E_PROTO, "SET_MEM_TABLE: regions %u and %u overlap", k, i);
            }
        }
        if (e != NS_OK) {
            break;
        }
        /* Pages mapped past the end of the file fault with SIGBUS when touched: the region must
         * lie within the file as it is now (a memfd or memory-backend-file: a regular file). */
        struct stat st = {0};
        if (fstat(fds[i], &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 0 ||
            size + off > (uint64_t)st.st_size) {
            e = ns_fail(NS_E_PROTO,
                        "SET_MEM_TABLE: region %u (offset 0x%llx + 0x%llx bytes) lies beyond its "
                        "file (%s 0x%llx bytes)",
                        i, (unsigned long long)off, (unsigned long long)size,
                        S_ISREG(st.st_mode) ? "a regular file of" : "not a regular file,",
                        (unsigned long long)st.st_size);
            break;
        }
        void *base = mmap(NULL, (size_t)(size + off), PROT_READ | PROT_WRITE,
                          MAP_SHARED | MAP_NORESERVE, fds[i], 0);
        if (base == MAP_FAILED) {
            e = ns_fail_errno(NS_E_IO, "SET_MEM_TABLE: cannot map region %u (0x%llx bytes)", i,
                              (unsigned long long)size);
            break;
        }
        maps[i].base = base;
        maps[i].len = (size_t)(size + off);
        mem.r[i] =
            (ns_vmem_region){.gpa = gpa, .uva = uva, .size = size, .host = (uint8_t *)base + off};
        mem.n = i + 1;
    }
    close_fds(fds, nfds);
    if (e != NS_OK) {
        for (size_t i = 0; i < NS_VMEM_MAX_REGIONS; i++) {
            if (maps[i].base) {
                munmap(maps[i].base, maps[i].len);
            }
        }
        return e;
    }
    /* The device must not touch the old mappings: detach, swap, re-translate, re-attach. */
    if (s->dev) {
        ns_vsock_dev_attach(s->dev, NULL, NULL, NULL);
    }
    unmap_all(s);
    s->mem = mem;
    memcpy(s->maps, maps, sizeof maps);
    for (int i = 0; i < NS_VHOST_NQUEUES; i++) {
        GUARD(ring_setup(s, &s->ring[i]));
    }
    sync_dev(s);
    ns_debug("vhost memory regions=%u", n);
    return NS_OK;
}

static ns_err ring_of(const ns_vhost_msg *m, uint32_t need, ns_vhost *s, ns_vhost_ring **r)
{
    ENSURE(m->size == need, NS_E_PROTO, "%s: payload of %u bytes, expected %u",
           req_name(m->request), m->size, need);
    uint32_t idx = ld32(m->payload);
    ENSURE(idx < NS_VHOST_NQUEUES, NS_E_PROTO, "%s: ring %u (vsock serves rings 0 and 1)",
           req_name(m->request), idx);
    *r = &s->ring[idx];
    return NS_OK;
}

/* SET_VRING_KICK/CALL/ERR: u64 with the index in bits 0-7 and bit 8 = no fd. */
static ns_err ring_fd(ns_vhost *s, const ns_vhost_msg *m, int *fds, size_t nfds)
{
    ENSURE(m->size == 8, NS_E_PROTO, "%s: payload of %u bytes", req_name(m->request), m->size);
    uint64_t v = ld64(m->payload);
    uint32_t idx = (uint32_t)(v & VU_VRING_IDX_MASK);
    int nofd = (v & VU_VRING_NOFD) != 0;
    ENSURE(idx < NS_VHOST_NQUEUES, NS_E_PROTO, "%s: ring %u (vsock serves rings 0 and 1)",
           req_name(m->request), idx);
    ENSURE(nfds == (nofd ? 0u : 1u), NS_E_PROTO, "%s: %zu file descriptors with flag no-fd=%d",
           req_name(m->request), nfds, nofd);
    int fd = nofd ? -1 : fds[0];
    fds[0] = -1;
    ns_vhost_ring *r = &s->ring[idx];
    switch (m->request) {
    case NS_VHOST_SET_VRING_KICK:
        kick_watch(s, r, 0);
        set_fd(&r->kick_fd, fd);
        /* Polling mode (no kick fd) is not offered: such a ring stays stopped. */
        r->started = fd >= 0;
        kick_watch(s, r, 1);
        if (!s->features_set || !(s->features & 1ull << NS_VHOST_F_PROTOCOL_FEATURES)) {
            r->enabled = 1;
        }
        sync_dev(s);
        break;
    case NS_VHOST_SET_VRING_CALL:
        set_fd(&r->call_fd, fd);
        break;
    default:
        set_fd(&r->err_fd, fd);
        break;
    }
    return NS_OK;
}

/* A reply to M with a SIZE-byte payload (filled by the caller); *has_reply set. */
static uint8_t *reply_begin(const ns_vhost_msg *m, ns_vhost_msg *reply, uint32_t size,
                            int *has_reply)
{
    reply->request = m->request;
    reply->flags = NS_VHOST_FLAG_VERSION | NS_VHOST_FLAG_REPLY;
    reply->size = size;
    *has_reply = 1;
    return reply->payload;
}

static void reply_u64(const ns_vhost_msg *m, ns_vhost_msg *reply, uint64_t v, int *has_reply)
{
    st64(reply_begin(m, reply, 8, has_reply), v);
}

/* SET_FEATURES, SET_PROTOCOL_FEATURES: a u64 with no bit we did not offer. */
static ns_err set_features(ns_vhost *s, const ns_vhost_msg *m)
{
    const char *name = req_name(m->request);
    int proto = m->request == NS_VHOST_SET_PROTOCOL_FEATURES;
    uint64_t offered = proto ? VU_OFFERED_PROTOCOL : VU_OFFERED_FEATURES;
    ENSURE(m->size == 8, NS_E_PROTO, "%s: payload of %u bytes", name, m->size);
    uint64_t f = ld64(m->payload);
    ENSURE((f & ~offered) == 0, NS_E_PROTO, "%s: 0x%llx has bits we did not offer (0x%llx)", name,
           (unsigned long long)f, (unsigned long long)offered);
    if (proto) {
        s->protocol_features = f;
    } else {
        s->features = f;
        s->features_set = 1;
    }
    return NS_OK;
}

/* The ring messages with an index and a u32 (SET_VRING_NUM/BASE/ENABLE, GET_VRING_BASE) or a
 * vring address (SET_VRING_ADDR). */
static ns_err ring_msg(ns_vhost *s, const ns_vhost_msg *m, ns_vhost_msg *reply, int *has_reply)
{
    ns_vhost_ring *r = NULL;
    const char *name = req_name(m->request);
    GUARD(ring_of(m, m->request == NS_VHOST_SET_VRING_ADDR ? 40 : 8, s, &r));
    uint32_t v = ld32(m->payload + 4);
    ENSURE(m->request == NS_VHOST_GET_VRING_BASE || m->request == NS_VHOST_SET_VRING_ENABLE ||
               !r->started,
           NS_E_PROTO, "%s: ring %d is running", name, r->index);
    switch (m->request) {
    case NS_VHOST_SET_VRING_NUM:
        ENSURE(v != 0 && (v & (v - 1)) == 0 && v <= NS_VQ_MAX_SIZE, NS_E_PROTO,
               "SET_VRING_NUM: size %u is not a power of two in 1..%d", v, NS_VQ_MAX_SIZE);
        r->num = (uint16_t)v;
        return ring_setup(s, r);
    case NS_VHOST_SET_VRING_ADDR:
        r->desc_uva = ld64(m->payload + 8);
        r->used_uva = ld64(m->payload + 16);
        r->avail_uva = ld64(m->payload + 24);
        r->have_addr = 1;
        return ring_setup(s, r);
    case NS_VHOST_SET_VRING_BASE:
        ENSURE(v <= 0xffff, NS_E_PROTO, "SET_VRING_BASE: %u is not a split-ring index", v);
        r->base = (uint16_t)v;
        ns_vq_set_base(&r->vq, r->base);
        return NS_OK;
    case NS_VHOST_GET_VRING_BASE: {
        r->started = 0;
        kick_watch(s, r, 0);
        set_fd(&r->kick_fd, -1);
        sync_dev(s);
        r->base = r->vq.num ? r->vq.last_avail : r->base;
        uint8_t *p = reply_begin(m, reply, 8, has_reply);
        st32(p, (uint32_t)r->index);
        st32(p + 4, r->base);
        return NS_OK;
    }
    default: /* SET_VRING_ENABLE */
        ENSURE(v <= 1, NS_E_PROTO, "SET_VRING_ENABLE: %u is neither 0 nor 1", v);
        r->enabled = (int)v;
        sync_dev(s);
        return NS_OK;
    }
}

/* GET_CONFIG: the bytes asked for of the vsock config space (the guest CID). */
static ns_err get_config(ns_vhost *s, const ns_vhost_msg *m, ns_vhost_msg *reply, int *has_reply)
{
    ENSURE(s->protocol_features & 1ull << NS_VHOST_PROTO_CONFIG, NS_E_PROTO,
           "GET_CONFIG before the CONFIG protocol feature was negotiated");
    ENSURE(m->size >= VU_CONFIG_HDR, NS_E_PROTO, "GET_CONFIG: payload of %u bytes", m->size);
    uint32_t off = ld32(m->payload), size = ld32(m->payload + 4);
    ENSURE(size <= NS_VHOST_PAYLOAD_MAX - VU_CONFIG_HDR && m->size == VU_CONFIG_HDR + size,
           NS_E_PROTO, "GET_CONFIG: %u config bytes in a %u-byte payload", size, m->size);
    ENSURE(off <= VU_VSOCK_CONFIG_LEN && size <= VU_VSOCK_CONFIG_LEN - off, NS_E_PROTO,
           "GET_CONFIG: bytes %u..%u of the %d-byte vsock config", off, off + size,
           VU_VSOCK_CONFIG_LEN);
    uint8_t cfg[VU_VSOCK_CONFIG_LEN];
    st64(cfg, s->guest_cid);
    uint8_t *p = reply_begin(m, reply, VU_CONFIG_HDR + size, has_reply);
    memcpy(p, m->payload, VU_CONFIG_HDR);
    memcpy(p + VU_CONFIG_HDR, cfg + off, size);
    return NS_OK;
}

static ns_err dispatch(ns_vhost *s, const ns_vhost_msg *m, int *fds, size_t nfds,
                       ns_vhost_msg *reply, int *has_reply)
{
    const char *name = req_name(m->request);
    /* Only these messages carry descriptors. */
    int takes_fds = m->request == NS_VHOST_SET_MEM_TABLE || m->request == NS_VHOST_SET_VRING_KICK ||
                    m->request == NS_VHOST_SET_VRING_CALL || m->request == NS_VHOST_SET_VRING_ERR;
    ENSURE(takes_fds || nfds == 0, NS_E_PROTO, "%s: unexpected file descriptors", name);
    switch (m->request) {
    case NS_VHOST_GET_FEATURES:
        reply_u64(m, reply, VU_OFFERED_FEATURES, has_reply);
        return NS_OK;
    case NS_VHOST_GET_PROTOCOL_FEATURES:
        reply_u64(m, reply, VU_OFFERED_PROTOCOL, has_reply);
        return NS_OK;
    case NS_VHOST_GET_QUEUE_NUM:
        reply_u64(m, reply, NS_VHOST_NQUEUES, has_reply);
        return NS_OK;
    case NS_VHOST_SET_FEATURES:
    case NS_VHOST_SET_PROTOCOL_FEATURES:
        return set_features(s, m);
    case NS_VHOST_SET_OWNER:
        return NS_OK;
    case NS_VHOST_RESET_OWNER:
        for (int i = 0; i < NS_VHOST_NQUEUES; i++) {
            s->ring[i].started = 0;
        }
        sync_dev(s);
        return NS_OK;
    case NS_VHOST_SET_MEM_TABLE:
        return mem_table(s, m, fds, nfds);
    case NS_VHOST_SET_VRING_NUM:
    case NS_VHOST_SET_VRING_ADDR:
    case NS_VHOST_SET_VRING_BASE:
    case NS_VHOST_GET_VRING_BASE:
    case NS_VHOST_SET_VRING_ENABLE:
        return ring_msg(s, m, reply, has_reply);
    case NS_VHOST_SET_VRING_KICK:
    case NS_VHOST_SET_VRING_CALL:
    case NS_VHOST_SET_VRING_ERR:
        return ring_fd(s, m, fds, nfds);
    case NS_VHOST_GET_CONFIG:
        return get_config(s, m, reply, has_reply);
    case NS_VHOST_SET_CONFIG:
        BAIL(NS_E_UNSUPPORTED, "SET_CONFIG: the vsock config space is read-only");
    default:
        BAIL(NS_E_UNSUPPORTED, "request %u (%s) is not supported by this backend", m->request,
             name);
    }
}

ns_err ns_vhost_handle(ns_vhost *s, const ns_vhost_msg *m, int *fds, size_t nfds,
                       ns_vhost_msg *reply, int *has_reply)
{
    *has_reply = 0;
    ns_err e;
    if ((m->flags & 3u) != NS_VHOST_FLAG_VERSION || m->size > NS_VHOST_PAYLOAD_MAX ||
        nfds > NS_VHOST_MAX_FDS) {
        e = ns_fail(NS_E_PROTO, "message %u: version %u, %u bytes, %zu fds", m->request,
                    m->flags & 3u, m->size, nfds);
    } else {
        e = dispatch(s, m, fds, nfds, reply, has_reply);
    }
    close_fds(fds, nfds);
    int ack = (s->protocol_features & 1ull << NS_VHOST_PROTO_REPLY_ACK) &&
              (m->flags & NS_VHOST_FLAG_NEED_REPLY) && !*has_reply;
    if (e == NS_E_UNSUPPORTED && ack) {
        /* The front-end asked for a status: a refusal it can handle, not the end. */
        ns_warn("vhost %s", ns_err_msg());
        reply_u64(m, reply, 1, has_reply);
        return NS_OK;
    }
    GUARD(e);
    if (ack) {
        reply_u64(m, reply, 0, has_reply);
    }
    return NS_OK;
}

/* ---- the socket and the loop ---- */

/* Reads one message with its descriptors. NS_E_CLOSED at a clean end between messages. */
static ns_err read_msg(int fd, ns_vhost_msg *m, int *fds, size_t *nfds)
{
    uint8_t hdr[NS_VHOST_HDR_LEN];
    union {
        char buf[CMSG_SPACE(sizeof(int) * NS_VHOST_MAX_FDS)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {.iov_base = hdr, .iov_len = sizeof hdr};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
    ssize_t n;
    do {
        n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n == 0) {
        return NS_E_CLOSED;
    }
    ENSURE(n > 0, NS_E_IO, "vhost-user socket: %s", strerror(errno));
    *nfds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int f;
            memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);
            if (*nfds < NS_VHOST_MAX_FDS) {
                fds[(*nfds)++] = f;
            } else {
                close(f);
            }
        }
    }
    ns_err e = NS_OK;
    if (mh.msg_flags & MSG_CTRUNC) {
        e = ns_fail(NS_E_PROTO, "vhost-user message with more than %d descriptors",
                    NS_VHOST_MAX_FDS);
    }
    if (e == NS_OK && (size_t)n < sizeof hdr) {
        e = ns_read_full(fd, hdr + n, sizeof hdr - (size_t)n, VU_READ_TIMEOUT_MS);
    }
    if (e == NS_OK) {
        m->request = ld32(hdr);
        m->flags = ld32(hdr + 4);
        m->size = ld32(hdr + 8);
        if (m->size > NS_VHOST_PAYLOAD_MAX) {
            e = ns_fail(NS_E_PROTO, "vhost-user %s with a %u-byte payload (at most %d)",
                        req_name(m->request), m->size, NS_VHOST_PAYLOAD_MAX);
        } else if (m->size > 0) {
            e = ns_read_full(fd, m->payload, m->size, VU_READ_TIMEOUT_MS);
        }
    }
    if (e != NS_OK) {
        close_fds(fds, *nfds);
        *nfds = 0;
    }
    return e;
}

static ns_err write_msg(int fd, const ns_vhost_msg *m)
{
    uint8_t out[NS_VHOST_HDR_LEN + NS_VHOST_PAYLOAD_MAX];
    st32(out, m->request);
    st32(out + 4, m->flags);
    st32(out + 8, m->size);
    memcpy(out + NS_VHOST_HDR_LEN, m->payload, m->size);
    return ns_write_all(fd, out, NS_VHOST_HDR_LEN + m->size);
}

static void interrupt(const ns_vhost_ring *r)
{
    if (r->call_fd >= 0 && ns_vq_wants_interrupt(&r->vq)) {
        uint64_t one = 1;
        if (write(r->call_fd, &one, sizeof one) < 0) {
            ns_debug("vhost call fd write failed ring=%d", r->index);
        }
    }
}

static ns_err frontend_message(ns_vhost *s, int fd)
{
    static ns_vhost_msg m, reply;
    int fds[NS_VHOST_MAX_FDS];
    size_t nfds = 0;
    GUARD(read_msg(fd, &m, fds, &nfds));
    ns_debug("vhost %s size=%u fds=%zu", req_name(m.request), m.size, nfds);
    int has_reply = 0;
    ns_err e = ns_vhost_handle(s, &m, fds, nfds, &reply, &has_reply);
    if (e != NS_OK) {
        return ns_fail_ctx(e, "vhost-user %s", req_name(m.request));
    }
    if (has_reply) {
        GUARD(write_msg(fd, &reply));
    }
    return NS_OK;
}

static ns_err serve_frontend(ns_vhost *s, ns_vsock_dev *dev, int epfd, int cfd, ns_stop *stop)
{
    struct {
        int tag;
    } fe = {NS_VTAG_FRONTEND};
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &fe};
    ENSURE(epoll_ctl(epfd, EPOLL_CTL_ADD, cfd, &ev) == 0, NS_E_IO, "cannot watch the front-end");
    ns_err e = NS_OK;
    int timeout = -1;
    while (!*stop) {
        struct epoll_event evs[VU_EVENTS];
        int n = epoll_wait(epfd, evs, VU_EVENTS, timeout);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            e = ns_fail_errno(NS_E_IO, "epoll_wait");
            break;
        }
        int done = 0;
        for (int i = 0; i < n && !done; i++) {
            int tag = *(int *)evs[i].data.ptr;
            if (tag == NS_VTAG_FRONTEND) {
                e = frontend_message(s, cfd);
                if (e == NS_E_CLOSED) {
                    ns_info("front-end disconnected");
                    e = NS_OK;
                    done = 1;
                } else if (e != NS_OK) {
                    done = 1;
                }
            } else if (tag == NS_VTAG_KICK) {
                ns_vhost_ring *r = evs[i].data.ptr;
                uint64_t v;
                if (r->kick_fd >= 0 && read(r->kick_fd, &v, sizeof v) < 0 && errno != EAGAIN) {
                    ns_debug("vhost kick read failed ring=%d", r->index);
                }
            } else {
                ns_vsock_dev_event(dev, evs[i].data.ptr, evs[i].events);
            }
        }
        if (done) {
            break;
        }
        int rx_used = 0, tx_used = 0;
        e = ns_vsock_dev_run(dev, &rx_used, &tx_used);
        if (tx_used) {
            interrupt(&s->ring[1]);
        }
        if (rx_used) {
            interrupt(&s->ring[0]);
        }
        if (e != NS_OK) {
            e = ns_fail_ctx(e, "the guest broke the virtqueue rules; device stopped");
            break;
        }
        timeout = ns_vsock_dev_tick(dev, ns_now_ms());
    }
    (void)epoll_ctl(epfd, EPOLL_CTL_DEL, cfd, NULL);
    return e;
}

ns_err ns_vhost_vsock_serve(const ns_vhost_vsock_cfg *cfg, ns_stop *stop)
{
    ns_addr a = {.kind = NS_ADDR_UNIX};
    ENSURE(strlen(cfg->socket_path) < sizeof a.path, NS_E_USAGE,
           "vhost-user socket path '%s' is too long (< %zu bytes)", cfg->socket_path,
           sizeof a.path);
    memcpy(a.path, cfg->socket_path, strlen(cfg->socket_path) + 1);
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    ENSURE(epfd >= 0, NS_E_IO, "epoll_create1 failed");
    ns_vsock_dev *dev = NULL;
    int lfd = -1, cfd = -1;
    ns_err e = ns_vsock_dev_new(&cfg->dev, epfd, &dev);
    if (e == NS_OK) {
        ns_io_unlink_stale_socket(a.path);
        e = ns_addr_listen(&a, 1, 0, &lfd);
    }
    if (e == NS_OK) {
        ns_info("listening socket=%s guest_cid=%llu", a.path,
                (unsigned long long)cfg->dev.guest_cid);
        struct pollfd p = {.fd = lfd, .events = POLLIN};
        while (!*stop) {
            int r = poll(&p, 1, 200);
            if (r > 0) {
                cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                if (cfd >= 0) {
                    break;
                }
            }
        }
    }
    if (e == NS_OK && cfd >= 0) {
        ns_info("front-end connected");
        static ns_vhost s;
        ns_vhost_init(&s, cfg->dev.guest_cid, epfd, dev);
        e = serve_frontend(&s, dev, epfd, cfd, stop);
        ns_vhost_cleanup(&s);
        ns_vsock_stats st;
        ns_vsock_dev_stats(dev, &st);
        ns_info("stopped connections=%llu resets_sent=%llu to_host=%llu to_guest=%llu",
                (unsigned long long)st.opened, (unsigned long long)st.resets_sent,
                (unsigned long long)st.bytes_to_host, (unsigned long long)st.bytes_to_guest);
    }
    if (cfd >= 0) {
        close(cfd);
    }
    if (lfd >= 0) {
        close(lfd);
        ns_io_unlink_stale_socket(a.path);
    }
    ns_vsock_dev_free(dev);
    close(epfd);
    return e;
}
