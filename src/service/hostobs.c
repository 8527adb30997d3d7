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
#include "svcobs.h"

struct ns_hostobs {
    ns_logrecv *logs, *audit;
    ns_httpd *ready;
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

static int serve_ready(void *arg, const ns_httpd_req *r, ns_buf *body, const char **ctype)
{
    char line[96];
    if (!ns_httpd_get_only(r)) {
        return 405;
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

static ns_err open_append(const char *path, const char *what, int *fd)
{
    *fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    return *fd < 0 ? ns_fail_errno(NS_E_IO, "open %s %s", what, path) : NS_OK;
}

static ns_err start_parts(ns_hostobs *o, const ns_hostobs_cfg *c)
{
    ns_addr a;
    if (c->log_file[0]) {
        GUARD(open_append(c->log_file, "ENCLAVE_LOG_FILE", &o->log_fd));
    }
    if (c->log_listen[0]) {
        GUARD(ns_addr_parse(&a, c->log_listen));
        GUARD(ns_logrecv_start(&o->logs, &a, on_enclave_line, o));
    }
    if (c->audit_listen[0]) {
        GUARD(open_append(c->audit_file, "AUDIT_LOG_FILE", &o->audit_fd));
        GUARD(ns_addr_parse(&a, c->audit_listen));
        GUARD(ns_logrecv_start(&o->audit, &a, on_audit_line, o));
    }
    if (c->ready_listen[0]) {
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
