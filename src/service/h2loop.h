/*
 * h2loop: the threaded event loops that run h2server connections over sockets. ns_h2_serve runs
 * one epoll event loop per thread over a shared listening socket (EPOLLEXCLUSIVE wakes one loop
 * per connection; a loop hands a connection to the least loaded one), non-blocking throughout,
 * each connection in cleartext (h2c) or over an ns_h2_transport (TLS from tls.c). The limits of
 * one connection are h2server's; this layer owns descriptors, readiness, hand-off, the accept
 * pause when descriptors run out, the refusal of connections the output budget cannot take
 * (warned about at most every FD_WARN_EVERY_MS), and the clean stop.
 */
#ifndef NS_H2LOOP_H
#define NS_H2LOOP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "addr.h"
#include "err.h"
#include "h2server.h"
#include "stop.h"

/*
 * The byte layer under each connection of ns_h2_serve: plain socket I/O when absent, TLS
 * (tls.c) when given. Every function is called from the connection's event loop only.
 */
typedef struct {
    void *arg;
    /* Per accepted descriptor: the transport's state, or NULL to drop the connection. It may call
     * ns_h2_conn_set_client on c once the peer is authenticated. */
    void *(*open)(void *arg, int fd, ns_h2_conn *c, const char *peer);
    /* Like recv(2)/send(2) on a non-blocking descriptor: > 0 bytes, 0 end of stream (recv), -1
     * with errno EAGAIN (wait for the descriptor) or another errno (close). send may accept
     * fewer bytes; after EAGAIN it is called again with the same bytes. send(t, NULL, 0) only
     * moves the transport's own pending output (want_write). */
    ssize_t (*recv)(void *t, uint8_t *buf, size_t n);
    ssize_t (*send)(void *t, const uint8_t *p, size_t n);
    /* 1 while the transport itself waits to write (handshake or record output blocked). */
    int (*want_write)(void *t);
    /* 1 once application bytes can be sent (a TLS handshake is over); until then the loop does
     * not wait for writability on behalf of the connection's own output. */
    int (*ready)(void *t);
    /* 1 when input is buffered inside the transport (readable without the descriptor). */
    int (*pending)(void *t);
    /* Best-effort goodbye and free; the loop closes the descriptor. */
    void (*close)(void *t);
    /* Bytes of memory one connection's transport state takes (a TLS session with its record
     * buffers, from the first handshake message on), counted in h2server's output budget: a
     * connection the budget cannot take is refused before open. */
    size_t conn_cost;
} ns_h2_transport;

typedef struct {
    ns_addr listen;
    const ns_h2_transport *transport;                  /* NULL: plain (h2c) */
    int threads;                                       /* 0 = one per online CPU */
    void (*on_listening)(const char *addr, void *arg); /* once bound, with the actual address */
    void *on_listening_arg;
    /* Optional graceful drain, for rolling upgrades behind a load balancer: once *drain becomes
     * non-zero (checked at least every 100 ms) every loop stops accepting and the listener is
     * closed (new connections are refused, not queued), every connection gets the two GOAWAYs
     * of a drain (h2server.h: a notice, then after NS_H2_DRAIN_NOTICE_MS the final one naming
     * the last stream taken), streams already taken run to their answers, and ns_h2_serve
     * returns once every connection is closed or drain_ms has passed, whichever is first
     * (what is left then is closed as on a stop). */
    ns_stop *drain;
    int drain_ms;
} ns_h2_serve_cfg;

#define NS_H2_DRAIN_NOTICE_MS 1000

/* Serves until *stop becomes non-zero (checked at least every 100 ms), or a drain ends; then
 * closes cleanly. */
ns_err ns_h2_serve(const ns_h2_serve_cfg *cfg, const ns_h2_handler *h, ns_stop *stop) NS_MUST_CHECK;

#endif
