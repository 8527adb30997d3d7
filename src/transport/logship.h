/*
 * logship: log lines out of the enclave without ever blocking the service, and the host side
 * that receives them.
 *
 * Sender (ns_logship): a bounded byte ring filled by any thread with whole lines, drained by one
 * thread that connects (and reconnects, every NS_LOGSHIP_RETRY_MS) to an address and writes.
 * A line that does not fit is dropped whole and counted; the next line that fits is preceded by
 * "nsign APPLET: warn log lines dropped count=N ..." so the reader learns of the gap when sending
 * resumes. Producers hold the ring's mutex only for a memcpy, never across I/O. A line cut by a
 * broken connection is not resent in part: the rest of it is dropped (and counted).
 * A ring can exist before its destination is known (ns_logship_new): it queues lines, with the
 * same bound and drop count, until ns_logship_send_to starts the sender, which sends them first,
 * in order, then the later ones. That is how a boot's first lines, written before its
 * configuration names the log address, still reach the reader.
 *
 * Receiver (ns_logrecv): accepts connections on an address (one at a time is the expected use,
 * up to NS_LOGRECV_CONNS), splits the stream into lines of at most NS_LOGRECV_LINE_MAX bytes
 * (longer ones are cut) and hands each, without its '\n', to a callback on its thread. With a
 * peer rule (addr.h), a connection from any other peer is closed unread, counted and logged
 * (at powers of two): on the host, only the enclave's CID may write its log or audit lines.
 */
#ifndef NS_LOGSHIP_H
#define NS_LOGSHIP_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "err.h"

#define NS_LOGSHIP_RING_DEFAULT (256u * 1024)
#define NS_LOGSHIP_RETRY_MS 500
#define NS_LOGRECV_LINE_MAX 8192
#define NS_LOGRECV_CONNS 8
#define NS_LOGRECV_DRAIN_MS 2000 /* ns_logrecv_stop: how long open senders may still finish */

typedef struct ns_logship ns_logship;

/* A ring of ring_bytes (0: NS_LOGSHIP_RING_DEFAULT) that queues lines and sends nowhere yet. */
ns_err ns_logship_new(ns_logship **ls, size_t ring_bytes) NS_MUST_CHECK;
/* Starts the sender: what is queued goes to `to` first, then later lines. A ring that already
 * sends keeps its address (and this returns NS_OK). */
ns_err ns_logship_send_to(ns_logship *ls, const ns_addr *to) NS_MUST_CHECK;
/* ns_logship_new and ns_logship_send_to. */
ns_err ns_logship_start(ns_logship **ls, const ns_addr *to, size_t ring_bytes) NS_MUST_CHECK;
/* Queues n bytes of whole lines (each ending in '\n'), or drops them all. Never blocks. */
void ns_logship_write(ns_logship *ls, const char *p, size_t n);
/* Lines dropped so far. */
uint64_t ns_logship_dropped(ns_logship *ls);
/* Bytes queued and not yet sent. */
size_t ns_logship_pending(ns_logship *ls);
/* Waits up to flush_ms for the ring to drain, then stops the thread and frees. A ring that never
 * sent is freed at once, its lines unsent. */
void ns_logship_stop(ns_logship *ls, int flush_ms);

typedef struct ns_logrecv ns_logrecv;
typedef void (*ns_logrecv_fn)(void *arg, const char *line, size_t n);

/* peer: who may connect (NULL: anyone). */
ns_err ns_logrecv_start(ns_logrecv **r, const ns_addr *listen, const ns_addr_peer_rule *peer,
                        ns_logrecv_fn fn, void *arg) NS_MUST_CHECK;
/* Connections refused by the peer rule so far (0 for NULL). */
uint64_t ns_logrecv_refused(ns_logrecv *r);
/* Stops accepting, reads what open connections still send until they close (at most
 * NS_LOGRECV_DRAIN_MS), then frees. */
void ns_logrecv_stop(ns_logrecv *r);

#endif
