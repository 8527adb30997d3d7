/*
 * hostobs: the enclave's log lines, audit trail and readiness on the host (see hostobs.h).
 */
#include "hostobs.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "buf.h"
#include "httpd.h"
#include "iox.h"
#include "logship.h"
#include "metrics.h"
#include "svcobs.h"
#include "tls.h"

/* The HTTP/2 client preface and an empty SETTINGS frame (RFC 9113 3.4). */
static const char H2_PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4\0\0\0\0\0";
#define H2_PREFACE_LEN (sizeof H2_PREFACE - 1)

struct ns_hostobs {
    ns_logrecv *logs, *audit;
    ns_httpd *ready;
    ns_metrics *metrics; /* GET /metrics on the readiness listener */
    int log_fd, audit_fd;
    int max_age_ms;
    pthread_mutex_t mu;
    ns_hostobs_status last; /* under mu */
    int64_t last_ms;        /* under mu; 0: no status line yet */
    int draining;           /* under mu; run-enclave began a drain: /ready is 503 */
};

/* Copies the word after TAG in LINE (up to a space or the end) into OUT; "" without TAG. */
static void word_after(const char *line, size_t n, const char *tag, char *out, size_t cap)
{
    size_t tl = strlen(tag), k = 0;
    const char *p = memmem(line, n, tag, tl);
    if (p != NULL) {
        p += tl;
        while (p + k < line + n && p[k] != ' ' && k + 1 < cap) {
            out[k] = p[k];
            k++;
        }
    }
    out[k] = '\0';
}

int ns_hostobs_status_parse(const char *line, size_t n, ns_hostobs_status *st)
{
    if (n <= 6 || memcmp(line, "nsign ", 6) != 0 ||
        memmem(line, n, NS_SVCOBS_STATUS_TAG, strlen(NS_SVCOBS_STATUS_TAG)) == NULL) {
        return 0;
    }
    word_after(line, n, NS_SVCOBS_STATUS_TAG, st->state, sizeof st->state);
    word_after(line, n, NS_SVCOBS_CLIENT_AUTH_TAG, st->client_auth, sizeof st->client_auth);
    return 1;
}

/* One write per line: "enclave: LINE\n" on stderr (and LINE\n in the log file). Status lines
 * feed the readiness check instead. */
static void on_enclave_line(void *arg, const char *line, size_t n)
{
    char buf[NS_LOGRECV_LINE_MAX + 16];
    ns_hostobs *o = arg;
    ns_hostobs_status st;
    if (ns_hostobs_status_parse(line, n, &st)) {
        pthread_mutex_lock(&o->mu);
        o->last = st;
        o->last_ms = ns_now_ms();
        pthread_mutex_unlock(&o->mu);
        return;
    }
    memcpy(buf, "enclave: ", 9);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)line[i];
        buf[9 + i] = (c >= 0x20 && c != 0x7f) || c == '\t' ? (char)c : '?';
    }
    buf[9 + n] = '\n';
    ssize_t w = write(2, buf, n + 10);
    if (o->log_fd >= 0) {
        w = write(o->log_fd, buf + 9, n + 1);
    }
    (void)w;
}

static void on_audit_line(void *arg, const char *line, size_t n)
{
    ns_hostobs *o = arg;
    char buf[NS_LOGRECV_LINE_MAX + 1];
    memcpy(buf, line, n);
    buf[n] = '\n';
    ssize_t w = write(o->audit_fd, buf, n + 1);
    (void)w;
}

int ns_hostobs_ready(ns_hostobs *o, char *body, size_t cap)
{
    pthread_mutex_lock(&o->mu);
    int64_t age = o->last_ms ? ns_now_ms() - o->last_ms : -1;
    int ok =
        age >= 0 && age <= o->max_age_ms && strcmp(o->last.state, "SERVING") == 0 && !o->draining;
    snprintf(body, cap, "%s state=%s last_status_ms_ago=%lld\n", ok ? "ready" : "not ready",
             o->draining        ? "DRAINING"
             : o->last.state[0] ? o->last.state
                                : "none",
             (long long)age);
    pthread_mutex_unlock(&o->mu);
    return ok ? 200 : 503;
}

void ns_hostobs_refused(ns_hostobs *o, uint64_t *log, uint64_t *audit)
{
    *log = ns_logrecv_refused(o->logs);
    *audit = ns_logrecv_refused(o->audit);
}

static double refused_log(void *arg)
{
    return (double)ns_logrecv_refused(((ns_hostobs *)arg)->logs);
}

static double refused_audit(void *arg)
{
    return (double)ns_logrecv_refused(((ns_hostobs *)arg)->audit);
}

static ns_err metrics_new(ns_hostobs *o)
{
    GUARD(ns_metrics_new(&o->metrics));
    GUARD(ns_metrics_add_func(o->metrics, NS_METRIC_COUNTER, "nsign_host_log_refused_peers_total",
                              "Connections to the enclave's log and status channel refused: the "
                              "peer is not the enclave.",
                              refused_log, o));
    GUARD(ns_metrics_add_func(o->metrics, NS_METRIC_COUNTER, "nsign_host_audit_refused_peers_total",
                              "Connections to the enclave's audit channel refused: the peer is "
                              "not the enclave.",
                              refused_audit, o));
    return NS_OK;
}

static int serve_ready(void *arg, const ns_httpd_req *r, ns_buf *body, const char **ctype)
{
    char line[96];
    ns_hostobs *o = arg;
    if (!ns_httpd_get_only(r)) {
        return 405;
    }
    if (strcmp(r->path, "/metrics") == 0) {
        *ctype = NS_METRICS_CONTENT_TYPE;
        return ns_metrics_render(o->metrics, body) != NS_OK ? 500 : 200;
    }
    if (strcmp(r->path, "/ready") != 0 && strcmp(r->path, "/") != 0) {
        return 404;
    }
    int code = ns_hostobs_ready(arg, line, sizeof line);
    *ctype = "text/plain; charset=utf-8";
    return ns_buf_append(body, line, strlen(line)) != NS_OK ? 500 : code;
}

void ns_hostobs_set_draining(ns_hostobs *o)
{
    if (o == NULL) {
        return;
    }
    pthread_mutex_lock(&o->mu);
    o->draining = 1;
    pthread_mutex_unlock(&o->mu);
}

void ns_hostobs_client_auth(ns_hostobs *o, char *out, size_t cap)
{
    if (o == NULL) {
        snprintf(out, cap, "%s", "");
        return;
    }
    pthread_mutex_lock(&o->mu);
    snprintf(out, cap, "%s", o->last.client_auth);
    pthread_mutex_unlock(&o->mu);
}

static ns_err start_parts(ns_hostobs *o, const ns_hostobs_cfg *c)
{
    ns_addr a;
    if (c->log_file[0]) {
        GUARD(ns_open_private(&o->log_fd, c->log_file, NS_OPEN_APPEND, "ENCLAVE_LOG_FILE"));
    }
    if (c->log_listen[0]) {
        GUARD(ns_addr_parse(&a, c->log_listen));
        GUARD(ns_logrecv_start(&o->logs, &a, c->peer, on_enclave_line, o));
    }
    if (c->audit_listen[0]) {
        GUARD(ns_open_private(&o->audit_fd, c->audit_file, NS_OPEN_APPEND, "AUDIT_LOG_FILE"));
        GUARD(ns_addr_parse(&a, c->audit_listen));
        GUARD(ns_logrecv_start(&o->audit, &a, c->peer, on_audit_line, o));
    }
    if (c->ready_listen[0]) {
        GUARD(metrics_new(o));
        GUARD(ns_addr_parse(&a, c->ready_listen));
        ns_err e = ns_httpd_start(&o->ready, &a, serve_ready, o);
        if (e != NS_OK) {
            return ns_fail_ctx(e, "readiness listener %s", c->ready_listen);
        }
    }
    return NS_OK;
}

ns_err ns_hostobs_start(ns_hostobs **out, const ns_hostobs_cfg *c)
{
    *out = NULL;
    ns_hostobs *o = calloc(1, sizeof *o);
    ENSURE(o != NULL, NS_E_NOMEM, "out of memory for the host's observability");
    o->log_fd = o->audit_fd = -1;
    o->max_age_ms = c->ready_max_age_s * 1000;
    pthread_mutex_init(&o->mu, NULL);
    ns_err e = start_parts(o, c);
    if (e != NS_OK) {
        ns_hostobs_stop(o);
        return e;
    }
    *out = o;
    return NS_OK;
}

void ns_hostobs_stop(ns_hostobs *o)
{
    if (o == NULL) {
        return;
    }
    ns_httpd_stop(o->ready);
    ns_logrecv_stop(o->logs);
    ns_logrecv_stop(o->audit);
    ns_metrics_free(o->metrics);
    if (o->log_fd >= 0) {
        close(o->log_fd);
    }
    if (o->audit_fd >= 0) {
        (void)fsync(o->audit_fd);
        close(o->audit_fd);
    }
    pthread_mutex_destroy(&o->mu);
    free(o);
}

ns_err ns_hostobs_probe_client_auth(const char *addr, int timeout_ms, int *required)
{
    ns_addr a;
    ns_tls *t = NULL;
    int fd = -1;
    *required = 0;
    GUARD(ns_addr_parse(&a, addr));
    ns_err e = ns_addr_connect(&a, timeout_ms, &fd);
    if (e == NS_OK) {
        /* No certificate: the question is whether the server serves such a client. The
         * server's own certificate needs no check here: what answers is whatever the bridge
         * reaches at the enclave's vsock port, and only the enclave can listen there. */
        ns_tls_attested_opts opts = {.server_name = "nsign-enclave"};
        e = ns_tls_connect_attested(&t, fd, &opts, timeout_ms);
    }
    if (e == NS_OK) {
        /* The write may already fail if the server refused at once; the read tells. */
        ns_err we = ns_tls_write(t, H2_PREFACE, H2_PREFACE_LEN, timeout_ms);
        uint8_t buf[64];
        size_t got = 0;
        ns_err re = ns_tls_read(t, buf, sizeof buf, &got, timeout_ms);
        if (re == NS_OK && got > 0) {
            *required = 0; /* HTTP/2 came back: a client without a certificate is served */
        } else if (re == NS_E_TIMEOUT && we == NS_OK) {
            e = ns_fail(NS_E_TIMEOUT, "no answer within %d ms", timeout_ms);
        } else {
            *required = 1; /* the handshake completed, then the server ended the connection */
        }
    }
    ns_tls_close(t);
    if (e != NS_OK) {
        return ns_fail_ctx(e, "probing the enclave's client authentication through %s", addr);
    }
    return NS_OK;
}
