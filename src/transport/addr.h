/*
 * addr: the one address syntax of nsign, and the only module that touches socket families.
 *
 *   vsock:CID:PORT   CID = number | any | parent (3) | local (1) | host (2)
 *   tcp:HOST:PORT    HOST = name | IPv4 | [IPv6] | * (listen on all); name resolved at connect
 *   unix:PATH        PATH absolute or relative, < 108 bytes; "@name" is the abstract namespace
 *
 * Names are resolved with musl's resolver from /etc/resolv.conf and /etc/hosts at connect time
 * (a FROM-scratch image has no NSS); when /etc/resolv.conf is missing the error says so.
 * All returned descriptors are close-on-exec.
 */
#ifndef NS_ADDR_H
#define NS_ADDR_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define NS_ADDR_HOST_MAX 256
#define NS_ADDR_PATH_MAX 108
#define NS_ADDR_STR_MAX 384

#define NS_VSOCK_CID_ANY 0xFFFFFFFFu
#define NS_VSOCK_CID_LOCAL 1u
#define NS_VSOCK_CID_HOST 2u
#define NS_VSOCK_CID_PARENT 3u

typedef enum { NS_ADDR_TCP = 1, NS_ADDR_UNIX, NS_ADDR_VSOCK } ns_addr_kind;

typedef struct {
    ns_addr_kind kind;
    char host[NS_ADDR_HOST_MAX]; /* tcp: without brackets; "" = any */
    uint16_t port;               /* tcp */
    uint32_t cid;                /* vsock */
    uint32_t vport;              /* vsock */
    char path[NS_ADDR_PATH_MAX]; /* unix */
} ns_addr;

ns_err ns_addr_parse(ns_addr *a, const char *s) NS_MUST_CHECK;
/* Canonical text form, e.g. "tcp:[::1]:80". */
void ns_addr_format(const ns_addr *a, char *out, size_t cap);

#define NS_LISTEN_NONBLOCK 1u
#define NS_LISTEN_REUSEPORT 2u

/* Bound, listening socket. For tcp port 0 the kernel picks one: see ns_addr_local_port. */
ns_err ns_addr_listen(const ns_addr *a, int backlog, unsigned flags, int *fd) NS_MUST_CHECK;
/* Closes a listener from ns_addr_listen (fd -1: nothing to close) and removes its unix socket
 * file (not for abstract names). */
void ns_addr_unlisten(const ns_addr *a, int fd);
/* The port a listening tcp/vsock socket is bound to. */
ns_err ns_addr_local_port(int fd, uint32_t *port) NS_MUST_CHECK;

/* Blocking connect with a deadline (timeout_ms < 0: none). Tries each resolved address. */
ns_err ns_addr_connect(const ns_addr *a, int timeout_ms, int *fd) NS_MUST_CHECK;
/*
 * Starts a non-blocking connect to the first resolved address. *in_progress is set when the
 * caller must wait for writability and then call ns_addr_connect_finish.
 */
ns_err ns_addr_connect_start(const ns_addr *a, int *fd, int *in_progress) NS_MUST_CHECK;
ns_err ns_addr_connect_finish(int fd) NS_MUST_CHECK;

/* Whether a host name or literal is a loopback one ("localhost", 127.0.0.0/8, ::1), by its
 * text alone (no lookup). */
int ns_addr_host_is_loopback(const char *host);

/* "tcp:1.2.3.4:5678", "unix:", "vsock:16:1234" for the peer of fd. */
void ns_addr_peer(int fd, char *out, size_t cap);
/* Who may connect to a listener whose peers are not authenticated otherwise (the enclave's
 * log, status and audit channels). A vsock peer must have the CID given: the hypervisor assigns
 * CIDs, so another enclave or a local process (vsock loopback) cannot claim the enclave's. A
 * unix peer must run as the uid given (SO_PEERCRED). A tcp peer must be on a loopback address
 * (tcp stands in for vsock in tests only). */
#define NS_ADDR_UID_ANY 0xFFFFFFFFu
typedef struct {
    uint32_t vsock_cid; /* NS_VSOCK_CID_ANY: any */
    uint32_t unix_uid;  /* NS_ADDR_UID_ANY: any */
} ns_addr_peer_rule;

/* 1 when the peer of the accepted fd passes RULE, else 0; desc gets the peer for the log line
 * ("vsock:17:1034", "unix:uid=1000,pid=42", "tcp:10.0.0.5:4242"). */
int ns_addr_peer_allowed(int fd, const ns_addr_peer_rule *rule, char *desc, size_t cap);

/* Whether sockets of this kind support splice(2) (all of ours do; kept for the fallback path). */
int ns_addr_can_splice(const ns_addr *a);

#endif
