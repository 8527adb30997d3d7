/*
 * addr: see addr.h. struct sockaddr_vm is declared here because musl's headers do not ship
 * <linux/vm_sockets.h>; its layout is the kernel ABI (include/uapi/linux/vm_sockets.h).
 */
#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "iox.h"

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

struct ns_sockaddr_vm {
    sa_family_t svm_family;
    unsigned short svm_reserved1;
    unsigned int svm_port;
    unsigned int svm_cid;
    unsigned char svm_flags;
    unsigned char svm_zero[sizeof(struct sockaddr) - sizeof(sa_family_t) - sizeof(unsigned short) -
                           2 * sizeof(unsigned int) - 1];
};

static ns_err parse_u32(const char *s, uint32_t max, uint32_t *out, const char *what)
{
    ENSURE(*s != '\0', NS_E_USAGE, "missing %s", what);
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        ENSURE(*p >= '0' && *p <= '9', NS_E_USAGE, "invalid %s '%s': not a number", what, s);
        v = v * 10 + (uint64_t)(*p - '0');
        ENSURE(v <= max, NS_E_USAGE, "invalid %s '%s': larger than %u", what, s, max);
    }
    *out = (uint32_t)v;
    return NS_OK;
}

static ns_err parse_cid(const char *s, uint32_t *cid)
{
    static const struct {
        const char *name;
        uint32_t cid;
    } names[] = {{"any", NS_VSOCK_CID_ANY},
                 {"local", NS_VSOCK_CID_LOCAL},
                 {"host", NS_VSOCK_CID_HOST},
                 {"parent", NS_VSOCK_CID_PARENT}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(s, names[i].name) == 0) {
            *cid = names[i].cid;
            return NS_OK;
        }
    }
    return parse_u32(s, 0xFFFFFFFEu, cid, "vsock CID");
}

ns_err ns_addr_parse(ns_addr *a, const char *s)
{
    memset(a, 0, sizeof *a);
    ENSURE(s != NULL, NS_E_USAGE, "missing address");
    if (strncmp(s, "unix:", 5) == 0) {
        const char *p = s + 5;
        ENSURE(*p != '\0', NS_E_USAGE, "invalid address '%s': empty unix path", s);
        ENSURE(strlen(p) < NS_ADDR_PATH_MAX, NS_E_USAGE,
               "invalid address '%s': unix path longer than %d bytes", s, NS_ADDR_PATH_MAX - 1);
        a->kind = NS_ADDR_UNIX;
        memcpy(a->path, p, strlen(p) + 1);
        return NS_OK;
    }
    if (strncmp(s, "vsock:", 6) == 0) {
        char tmp[64];
        const char *p = s + 6;
        const char *colon = strchr(p, ':');
        ENSURE(colon != NULL, NS_E_USAGE, "invalid address '%s': expected vsock:CID:PORT", s);
        ENSURE((size_t)(colon - p) < sizeof tmp, NS_E_USAGE, "invalid address '%s': bad CID", s);
        memcpy(tmp, p, (size_t)(colon - p));
        tmp[colon - p] = '\0';
        a->kind = NS_ADDR_VSOCK;
        ns_err e = parse_cid(tmp, &a->cid);
        if (e == NS_OK) {
            e = parse_u32(colon + 1, 0xFFFFFFFEu, &a->vport, "vsock port");
        }
        if (e != NS_OK) {
            return ns_fail_ctx(e, "invalid address '%s'", s);
        }
        return NS_OK;
    }
    if (strncmp(s, "tcp:", 4) == 0) {
        const char *p = s + 4;
        const char *hend;
        const char *colon;
        if (*p == '[') {
            hend = strchr(p, ']');
            ENSURE(hend != NULL, NS_E_USAGE, "invalid address '%s': missing ']'", s);
            ENSURE(hend[1] == ':', NS_E_USAGE, "invalid address '%s': expected ]:PORT", s);
            colon = hend + 1;
            p++;
        } else {
            colon = strrchr(p, ':');
            ENSURE(colon != NULL, NS_E_USAGE, "invalid address '%s': expected tcp:HOST:PORT", s);
            hend = colon;
            ENSURE(memchr(p, ':', (size_t)(hend - p)) == NULL, NS_E_USAGE,
                   "invalid address '%s': put IPv6 addresses in brackets, tcp:[::1]:PORT", s);
        }
        size_t hl = (size_t)(hend - p);
        ENSURE(hl < NS_ADDR_HOST_MAX, NS_E_USAGE, "invalid address '%s': host name too long", s);
        memcpy(a->host, p, hl);
        a->host[hl] = '\0';
        if (strcmp(a->host, "*") == 0) {
            a->host[0] = '\0';
        }
        for (size_t i = 0; a->host[i] != '\0'; i++) {
            unsigned char c = (unsigned char)a->host[i];
            /* Brackets only delimit an IPv6 host: inside one, the formatted form would not
             * parse back. */
            ENSURE(c > ' ' && c < 127 && c != '/' && c != '[' && c != ']', NS_E_USAGE,
                   "invalid address '%s': bad character in host", s);
        }
        uint32_t port;
        a->kind = NS_ADDR_TCP;
        ns_err e = parse_u32(colon + 1, 65535, &port, "tcp port");
        if (e != NS_OK) {
            return ns_fail_ctx(e, "invalid address '%s'", s);
        }
        a->port = (uint16_t)port;
        return NS_OK;
    }
    BAIL(NS_E_USAGE, "invalid address '%s': expected vsock:CID:PORT, tcp:HOST:PORT or unix:PATH",
         s);
}

void ns_addr_format(const ns_addr *a, char *out, size_t cap)
{
    switch (a->kind) {
    case NS_ADDR_UNIX:
        snprintf(out, cap, "unix:%s", a->path);
        break;
    case NS_ADDR_VSOCK:
        if (a->cid == NS_VSOCK_CID_ANY) {
            snprintf(out, cap, "vsock:any:%u", a->vport);
        } else {
            snprintf(out, cap, "vsock:%u:%u", a->cid, a->vport);
        }
        break;
    case NS_ADDR_TCP:
        if (strchr(a->host, ':') != NULL) {
            snprintf(out, cap, "tcp:[%s]:%u", a->host, a->port);
        } else {
            snprintf(out, cap, "tcp:%s:%u", a->host[0] ? a->host : "*", a->port);
        }
        break;
    default:
        snprintf(out, cap, "(none)");
    }
}

static void fill_unix(const ns_addr *a, struct sockaddr_un *sun, socklen_t *len)
{
    memset(sun, 0, sizeof *sun);
    sun->sun_family = AF_UNIX;
    size_t n = strlen(a->path);
    memcpy(sun->sun_path, a->path, n);
    if (a->path[0] == '@') {
        sun->sun_path[0] = '\0';
    }
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (a->path[0] == '@' ? 0 : 1));
}

static void fill_vsock(const ns_addr *a, struct ns_sockaddr_vm *svm)
{
    memset(svm, 0, sizeof *svm);
    svm->svm_family = AF_VSOCK;
    svm->svm_cid = a->cid;
    svm->svm_port = a->vport;
}

static ns_err resolve(const ns_addr *a, int passive, struct addrinfo **res)
{
    struct addrinfo hints;
    char port[8];
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : AI_ADDRCONFIG;
    snprintf(port, sizeof port, "%u", a->port);
    const char *host = a->host[0] ? a->host : NULL;
    int rc = getaddrinfo(host, port, &hints, res);
    if (rc == EAI_ADDRFAMILY || (rc == EAI_NONAME && !passive)) {
        hints.ai_flags = 0; /* AI_ADDRCONFIG hides loopback-only setups such as a fresh enclave */
        rc = getaddrinfo(host, port, &hints, res);
    }
    if (rc != 0) {
        if (access("/etc/resolv.conf", R_OK) != 0 && host != NULL &&
            strspn(host, "0123456789.") != strlen(host) && strchr(host, ':') == NULL) {
            BAIL(NS_E_RESOLVE,
                 "cannot resolve '%s': /etc/resolv.conf is missing (add one to the image, or "
                 "use an IP address)",
                 host);
        }
        BAIL(NS_E_RESOLVE, "cannot resolve '%s': %s", host ? host : "*", gai_strerror(rc));
    }
    return NS_OK;
}

static void sock_setup(int fd, int family)
{
    int one = 1;
    if (family == AF_INET || family == AF_INET6) {
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
}

void ns_addr_unlisten(const ns_addr *a, int fd)
{
    if (fd >= 0) {
        close(fd);
    }
    if (a->kind == NS_ADDR_UNIX && a->path[0] != '@') {
        ns_io_unlink_stale_socket(a->path);
    }
}

ns_err ns_addr_listen(const ns_addr *a, int backlog, unsigned flags, int *fdp)
{
    char name[NS_ADDR_STR_MAX];
    int type = SOCK_STREAM | SOCK_CLOEXEC | ((flags & NS_LISTEN_NONBLOCK) ? SOCK_NONBLOCK : 0);
    int one = 1;
    int fd = -1;
    ns_addr_format(a, name, sizeof name);
    if (a->kind == NS_ADDR_TCP) {
        struct addrinfo *res = NULL;
        GUARD(resolve(a, 1, &res));
        ns_err e = NS_E_IO;
        /* prefer IPv6 dual-stack for the wildcard, else the first address */
        struct addrinfo *pick = res;
        if (a->host[0] == '\0') {
            for (struct addrinfo *r = res; r; r = r->ai_next) {
                if (r->ai_family == AF_INET6) {
                    pick = r;
                }
            }
        }
        fd = socket(pick->ai_family, type, 0);
        if (fd < 0) {
            e = ns_fail_errno(NS_E_IO, "socket for %s", name);
        } else {
            (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            if (flags & NS_LISTEN_REUSEPORT) {
                (void)setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
            }
            if (pick->ai_family == AF_INET6 && a->host[0] == '\0') {
                int zero = 0;
                (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
            }
            if (bind(fd, pick->ai_addr, pick->ai_addrlen) != 0) {
                e = ns_fail_errno(NS_E_IO, "cannot listen on %s (bind)", name);
            } else if (listen(fd, backlog) != 0) {
                e = ns_fail_errno(NS_E_IO, "cannot listen on %s", name);
            } else {
                e = NS_OK;
            }
        }
        freeaddrinfo(res);
        if (e != NS_OK) {
            if (fd >= 0) {
                close(fd);
            }
            return e;
        }
        *fdp = fd;
        return NS_OK;
    }
    if (a->kind == NS_ADDR_UNIX) {
        struct sockaddr_un sun;
        socklen_t len;
        fill_unix(a, &sun, &len);
        fd = socket(AF_UNIX, type, 0);
        ENSURE(fd >= 0, NS_E_IO, "socket for %s failed", name);
        if (a->path[0] != '@') {
            ns_io_unlink_stale_socket(a->path);
        }
        if (bind(fd, (struct sockaddr *)&sun, len) != 0 || listen(fd, backlog) != 0) {
            ns_err e = ns_fail_errno(NS_E_IO, "cannot listen on %s", name);
            close(fd);
            return e;
        }
        *fdp = fd;
        return NS_OK;
    }
    if (a->kind == NS_ADDR_VSOCK) {
        struct ns_sockaddr_vm svm;
        fill_vsock(a, &svm);
        fd = socket(AF_VSOCK, type, 0);
        if (fd < 0) {
            return ns_fail_errno(NS_E_IO, "cannot create a vsock socket for %s (is the vsock "
                                          "driver loaded?)",
                                 name);
        }
        if (bind(fd, (struct sockaddr *)&svm, sizeof svm) != 0 || listen(fd, backlog) != 0) {
            ns_err e = ns_fail_errno(NS_E_IO, "cannot listen on %s", name);
            close(fd);
            return e;
        }
        *fdp = fd;
        return NS_OK;
    }
    BAIL(NS_E_USAGE, "invalid address kind");
}

ns_err ns_addr_local_port(int fd, uint32_t *port)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    ENSURE(getsockname(fd, (struct sockaddr *)&ss, &len) == 0, NS_E_IO, "getsockname failed");
    switch (ss.ss_family) {
    case AF_INET:
        *port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        return NS_OK;
    case AF_INET6:
        *port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        return NS_OK;
    case AF_VSOCK:
        *port = ((struct ns_sockaddr_vm *)&ss)->svm_port;
        return NS_OK;
    default:
        BAIL(NS_E_USAGE, "socket has no port");
    }
}

static ns_err wait_connect(int fd, int timeout_ms, const char *name)
{
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    int rc;
    do {
        rc = poll(&pfd, 1, timeout_ms);
    } while (rc < 0 && errno == EINTR);
    ENSURE(rc != 0, NS_E_TIMEOUT, "connect to %s timed out after %d ms", name, timeout_ms);
    ENSURE(rc > 0, NS_E_IO, "poll failed while connecting to %s", name);
    ns_err e = ns_addr_connect_finish(fd);
    if (e != NS_OK) {
        return ns_fail_ctx(e, "connect to %s", name);
    }
    return NS_OK;
}

static ns_err connect_one(int family, const struct sockaddr *sa, socklen_t len, int timeout_ms,
                          const char *name, int *fdp)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        return ns_fail_errno(family == AF_VSOCK ? NS_E_UNAVAILABLE : NS_E_IO,
                             "cannot create a socket for %s", name);
    }
    sock_setup(fd, family);
    if (connect(fd, sa, len) != 0) {
        if (errno != EINPROGRESS && errno != EAGAIN) {
            ns_err e = ns_fail_errno(NS_E_CONNECT, "connect to %s", name);
            close(fd);
            return e;
        }
        ns_err e = wait_connect(fd, timeout_ms, name);
        if (e != NS_OK) {
            close(fd);
            return e;
        }
    }
    int fl = fcntl(fd, F_GETFL);
    (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    *fdp = fd;
    return NS_OK;
}

ns_err ns_addr_connect(const ns_addr *a, int timeout_ms, int *fdp)
{
    char name[NS_ADDR_STR_MAX];
    ns_addr_format(a, name, sizeof name);
    if (a->kind == NS_ADDR_UNIX) {
        struct sockaddr_un sun;
        socklen_t len;
        fill_unix(a, &sun, &len);
        return connect_one(AF_UNIX, (struct sockaddr *)&sun, len, timeout_ms, name, fdp);
    }
    if (a->kind == NS_ADDR_VSOCK) {
        struct ns_sockaddr_vm svm;
        fill_vsock(a, &svm);
        ENSURE(a->cid != NS_VSOCK_CID_ANY, NS_E_USAGE, "cannot connect to %s: CID 'any' is only "
                                                       "for listening",
               name);
        return connect_one(AF_VSOCK, (struct sockaddr *)&svm, sizeof svm, timeout_ms, name, fdp);
    }
    ENSURE(a->kind == NS_ADDR_TCP, NS_E_USAGE, "invalid address kind");
    ENSURE(a->host[0] != '\0', NS_E_USAGE, "cannot connect to %s: no host", name);
    struct addrinfo *res = NULL;
    GUARD(resolve(a, 0, &res));
    ns_err e = NS_E_CONNECT;
    for (struct addrinfo *r = res; r; r = r->ai_next) {
        e = connect_one(r->ai_family, r->ai_addr, r->ai_addrlen, timeout_ms, name, fdp);
        if (e == NS_OK) {
            break;
        }
    }
    freeaddrinfo(res);
    return e;
}

ns_err ns_addr_connect_start(const ns_addr *a, int *fdp, int *in_progress)
{
    char name[NS_ADDR_STR_MAX];
    union {
        struct sockaddr sa;
        struct sockaddr_un sun;
        struct ns_sockaddr_vm svm;
        struct sockaddr_storage ss;
    } u;
    socklen_t len;
    int family;
    ns_addr_format(a, name, sizeof name);
    if (a->kind == NS_ADDR_UNIX) {
        fill_unix(a, &u.sun, &len);
        family = AF_UNIX;
    } else if (a->kind == NS_ADDR_VSOCK) {
        ENSURE(a->cid != NS_VSOCK_CID_ANY, NS_E_USAGE,
               "cannot connect to %s: CID 'any' is only for listening", name);
        fill_vsock(a, &u.svm);
        len = sizeof u.svm;
        family = AF_VSOCK;
    } else {
        ENSURE(a->host[0] != '\0', NS_E_USAGE, "cannot connect to %s: no host", name);
        struct addrinfo *res = NULL;
        GUARD(resolve(a, 0, &res));
        memcpy(&u.ss, res->ai_addr, res->ai_addrlen);
        len = res->ai_addrlen;
        family = res->ai_family;
        freeaddrinfo(res);
    }
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        return ns_fail_errno(NS_E_IO, "cannot create a socket for %s", name);
    }
    sock_setup(fd, family);
    *in_progress = 0;
    if (connect(fd, &u.sa, len) != 0) {
        if (errno == EINPROGRESS || errno == EAGAIN) {
            *in_progress = 1;
        } else {
            ns_err e = ns_fail_errno(NS_E_CONNECT, "connect to %s", name);
            close(fd);
            return e;
        }
    }
    *fdp = fd;
    return NS_OK;
}

ns_err ns_addr_connect_finish(int fd)
{
    int err = 0;
    socklen_t len = sizeof err;
    ENSURE(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0, NS_E_IO, "getsockopt failed");
    if (err != 0) {
        errno = err;
        return ns_fail_errno(err == ETIMEDOUT ? NS_E_TIMEOUT : NS_E_CONNECT, "connect");
    }
    return NS_OK;
}

void ns_addr_peer(int fd, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char ip[INET6_ADDRSTRLEN];
    if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0) {
        snprintf(out, cap, "(unknown)");
        return;
    }
    switch (ss.ss_family) {
    case AF_INET: {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
        snprintf(out, cap, "tcp:%s:%u", ip, ntohs(s4->sin_port));
        break;
    }
    case AF_INET6: {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
        snprintf(out, cap, "tcp:[%s]:%u", ip, ntohs(s6->sin6_port));
        break;
    }
    case AF_UNIX:
        snprintf(out, cap, "unix:");
        break;
    case AF_VSOCK: {
        struct ns_sockaddr_vm *v = (struct ns_sockaddr_vm *)&ss;
        snprintf(out, cap, "vsock:%u:%u", v->svm_cid, v->svm_port);
        break;
    }
    default:
        snprintf(out, cap, "(family %d)", ss.ss_family);
    }
}

int ns_addr_peer_allowed(int fd, const ns_addr_peer_rule *rule, char *desc, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0) {
        snprintf(desc, cap, "(unknown)");
        return 0;
    }
    switch (ss.ss_family) {
    case AF_VSOCK: {
        const struct ns_sockaddr_vm *v = (const struct ns_sockaddr_vm *)&ss;
        snprintf(desc, cap, "vsock:%u:%u", v->svm_cid, v->svm_port);
        return rule->vsock_cid == NS_VSOCK_CID_ANY || v->svm_cid == rule->vsock_cid;
    }
    case AF_UNIX: {
        struct ucred cr;
        socklen_t cl = sizeof cr;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0 || cl != sizeof cr) {
            snprintf(desc, cap, "unix:(no credentials)");
            return 0;
        }
        snprintf(desc, cap, "unix:uid=%u,pid=%d", (unsigned)cr.uid, (int)cr.pid);
        return rule->unix_uid == NS_ADDR_UID_ANY || (uint32_t)cr.uid == rule->unix_uid;
    }
    case AF_INET:
    case AF_INET6: {
        char ip[INET6_ADDRSTRLEN] = "";
        int lo;
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
            lo = (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
        } else {
            const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
            lo = IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr) ||
                 (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) && s6->sin6_addr.s6_addr[12] == 127);
        }
        snprintf(desc, cap, "tcp:%s", ip);
        return lo;
    }
    default:
        snprintf(desc, cap, "(family %d)", ss.ss_family);
        return 0;
    }
}

int ns_addr_can_splice(const ns_addr *a)
{
    return a->kind == NS_ADDR_TCP || a->kind == NS_ADDR_UNIX || a->kind == NS_ADDR_VSOCK;
}

int ns_addr_host_is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (strcasecmp(host, "localhost") == 0) {
        return 1;
    }
    if (inet_pton(AF_INET, host, &a4) == 1) {
        return (ntohl(a4.s_addr) >> 24) == 127;
    }
    return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}
