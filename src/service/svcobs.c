/*
 * svcobs: see svcobs.h. The Sign observer runs on the serving threads: its metric updates are
 * relaxed atomics on series found lock-free, and the audit append takes the trail's mutex for a
 * hash and one line. Shipped lines never block (logship); a file trail is written with one
 * write(2) per line, O_APPEND.
 */
#include "svcobs.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "grpc.h"
#include "h2server.h"
#include "httpd.h"
#include "iox.h"
#include "log.h"
#include "logship.h"
#include "metrics.h"
#include "tls.h"
#include "version.h"

#define AUDIT_RING (1024u * 1024)
#define FLUSH_MS NS_SVCOBS_FLUSH_MS

static ns_logship *g_early; /* ns_svcobs_early's ring, until ns_svcobs_start takes it */

static void sink(void *arg, const char *p, size_t n)
{
    ns_logship_write(arg, p, n);
}

ns_err ns_svcobs_early(void)
{
    if (g_early != NULL) {
        return NS_OK;
    }
    GUARD(ns_logship_new(&g_early, NS_LOGSHIP_RING_DEFAULT));
    ns_log_set_sink(sink, g_early);
    return NS_OK;
}

void ns_svcobs_early_flush(const char *addr)
{
    ns_addr a;
    ns_logship *ls = g_early;
    if (ls == NULL) {
        return;
    }
    g_early = NULL;
    if (addr != NULL && addr[0] != '\0' && ns_addr_parse(&a, addr) == NS_OK &&
        ns_logship_send_to(ls, &a) == NS_OK) {
        ns_log_set_sink(NULL, NULL);
        ns_logship_stop(ls, FLUSH_MS);
        return;
    }
    ns_err_clear();
    ns_log_set_sink(NULL, NULL);
    ns_logship_stop(ls, 0);
}

struct ns_svcobs {
    ns_svcobs_cfg cfg;
    ns_metrics *reg;
    ns_metric *sign_total, *sign_seconds, *boot_steps, *denials, *frost_total, *frost_seconds;
    ns_metric_series *audit_entries;
    ns_httpd *http;
    ns_logship *logs;
    ns_logship *audit_ship;
    int audit_fd;
    ns_audit *audit;
    uint8_t user_data[32];
    pthread_t status_th;
    int status_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping;
    const char *state;
    ns_stop *drain; /* while non-zero, SERVING reads DRAINING; POST /drain sets it; or NULL */
    uint64_t status_seq;
    const char *client_auth; /* "required" (a client policy), "none", or "-" before the keys */
};

/* Under o->mu: the state as reported. */
static const char *state_now(const ns_svcobs *o)
{
    if (o->drain && *o->drain && strcmp(o->state, "SERVING") == 0) {
        return "DRAINING";
    }
    return o->state;
}

void ns_svcobs_watch_drain(ns_svcobs *o, ns_stop *drain)
{
    if (o == NULL) {
        return;
    }
    pthread_mutex_lock(&o->mu);
    o->drain = drain;
    pthread_mutex_unlock(&o->mu);
}

/* Under o->mu. */
static void send_status(ns_svcobs *o)
{
    char line[160];
    int n = snprintf(line, sizeof line, "nsign %s%s%s seq=%llu" NS_SVCOBS_CLIENT_AUTH_TAG "%s\n",
                     ns_log_applet(), NS_SVCOBS_STATUS_TAG, state_now(o),
                     (unsigned long long)o->status_seq++, o->client_auth ? o->client_auth : "-");
    if (n > 0 && (size_t)n < sizeof line) {
        ns_logship_write(o->logs, line, (size_t)n);
    }
}

static void *status_thread(void *arg)
{
    ns_svcobs *o = arg;
    uint32_t every = o->cfg.status_every_ms ? o->cfg.status_every_ms : 5000;
    pthread_mutex_lock(&o->mu);
    while (!o->stopping) {
        send_status(o);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += every / 1000;
        ts.tv_nsec += (long)(every % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&o->cv, &o->mu, &ts);
    }
    pthread_mutex_unlock(&o->mu);
    return NULL;
}

void ns_svcobs_set_state(ns_svcobs *o, const char *state)
{
    pthread_mutex_lock(&o->mu);
    o->state = state;
    if (o->logs != NULL) {
        send_status(o);
    }
    pthread_mutex_unlock(&o->mu);
}

static double in_flight(void *arg)
{
    (void)arg;
    long c, s;
    ns_h2_stats(&c, &s);
    return (double)s;
}

static double conns_open(void *arg)
{
    (void)arg;
    long c, s;
    ns_h2_stats(&c, &s);
    return (double)c;
}

/* The output budget (h2server.h, issue 22): what it holds and what it refused or reaped; arg
 * points at one of OUT_STAT's entries, which names the field. */
enum { OUT_HELD, OUT_LIMIT, OUT_REFUSED, OUT_CONNS_REAPED, OUT_STREAMS_REAPED };
static const int OUT_STAT[] = {OUT_HELD, OUT_LIMIT, OUT_REFUSED, OUT_CONNS_REAPED,
                               OUT_STREAMS_REAPED};

static double out_stat(void *arg)
{
    ns_h2_output_stats st;
    ns_h2_output_stats_get(&st);
    switch (*(const int *)arg) {
    case OUT_HELD:
        return (double)st.held;
    case OUT_LIMIT:
        return (double)st.limit;
    case OUT_REFUSED:
        return (double)(st.conns_refused + st.streams_refused);
    case OUT_CONNS_REAPED:
        return (double)st.conns_reaped;
    default:
        return (double)st.streams_reaped;
    }
}

static double tls_failures(void *arg)
{
    (void)arg;
    return (double)ns_tls_server_handshake_failures();
}

static double log_dropped(void *arg)
{
    ns_svcobs *o = arg;
    return o->logs ? (double)ns_logship_dropped(o->logs) : 0;
}

static int serve_metrics(void *arg, const ns_httpd_req *r, ns_buf *body, const char **ctype)
{
    ns_svcobs *o = arg;
    if (!ns_httpd_get_only(r)) {
        /* POST /drain: the host's drain request (a Nitro host cannot signal the enclave). */
        if (strcmp(r->path, "/drain") != 0) {
            return 405;
        }
        pthread_mutex_lock(&o->mu);
        int can = o->drain != NULL;
        if (can && !*o->drain) {
            *o->drain = 1;
            ns_info("drain requested: POST /drain on the metrics address");
        }
        pthread_mutex_unlock(&o->mu);
        *ctype = "text/plain";
        return can && ns_buf_append(body, "DRAINING\n", 9) == NS_OK ? 202 : 404;
    }
    if (strcmp(r->path, "/ready") == 0) {
        pthread_mutex_lock(&o->mu);
        const char *st = state_now(o);
        int ok = strcmp(st, "SERVING") == 0;
        ns_err e = ns_buf_append(body, st, strlen(st));
        pthread_mutex_unlock(&o->mu);
        *ctype = "text/plain";
        return e != NS_OK ? 500 : ok ? 200 : 503;
    }
    if (strcmp(r->path, "/metrics") != 0) {
        return 404;
    }
    *ctype = NS_METRICS_CONTENT_TYPE;
    return ns_metrics_render(o->reg, body) == NS_OK ? 200 : 500;
}

static int is_addr(const char *s)
{
    return strncmp(s, "tcp:", 4) == 0 || strncmp(s, "unix:", 5) == 0 ||
           strncmp(s, "vsock:", 6) == 0;
}

static ns_err families(ns_svcobs *o)
{
    static const double buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                     0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};
    const char *sign_l[] = {"key", "algorithm", "client", "status"};
    const char *dur_l[] = {"key", "algorithm"};
    const char *den_l[] = {"key", "client"};
    const char *frost_l[] = {"key", "rpc", "client", "status"};
    const char *frost_dur_l[] = {"key", "rpc"};
    const char *step_l[] = {"step"};
    const char *ver_l[] = {"version"};
    ns_metric *m;
    GUARD(ns_metrics_add(o->reg, &o->sign_total, NS_METRIC_COUNTER, "nsign_sign_requests_total",
                         "Sign RPCs by key, algorithm, client (peer address) and gRPC status.", 4,
                         sign_l, NULL, 0, 256));
    GUARD(ns_metrics_add(o->reg, &o->sign_seconds, NS_METRIC_HISTOGRAM,
                         "nsign_sign_duration_seconds",
                         "Time spent answering a Sign RPC in the server, in seconds.", 2, dur_l,
                         buckets, sizeof buckets / sizeof *buckets, 128));
    GUARD(ns_metrics_add(o->reg, &o->frost_total, NS_METRIC_COUNTER, "nsign_frost_requests_total",
                         "FROST RPCs (rpc: commit, sign) by key, client and gRPC status.", 4,
                         frost_l, NULL, 0, 256));
    GUARD(ns_metrics_add(o->reg, &o->frost_seconds, NS_METRIC_HISTOGRAM,
                         "nsign_frost_duration_seconds",
                         "Time spent answering a FrostCommit or FrostSign RPC, in seconds.", 2,
                         frost_dur_l, buckets, sizeof buckets / sizeof *buckets, 128));
    GUARD(ns_metrics_add_func(o->reg, NS_METRIC_GAUGE, "nsign_requests_in_flight",
                              "gRPC requests (HTTP/2 streams) open right now.", in_flight, o));
    GUARD(ns_metrics_add_func(o->reg, NS_METRIC_GAUGE, "nsign_connections_open",
                              "Client connections open right now.", conns_open, o));
    GUARD(ns_metrics_add_func(o->reg, NS_METRIC_GAUGE, "nsign_output_bytes",
                              "Memory held for clients: unsent answers and connection, stream "
                              "and TLS state (the --max-output budget).",
                              out_stat, (void *)&OUT_STAT[OUT_HELD]));
    GUARD(ns_metrics_add_func(o->reg, NS_METRIC_GAUGE, "nsign_output_limit_bytes",
                              "The --max-output budget.", out_stat, (void *)&OUT_STAT[OUT_LIMIT]));
    GUARD(ns_metrics_add_func(o->reg, NS_METRIC_COUNTER, "nsign_output_refusals_total",
                              "Connections and streams refused because the output budget was "
                              "full.",
                              out_stat, (void *)&OUT_STAT[OUT_REFUSED]));
    GUARD(ns_metrics_add_func(o->reg, NS_METRIC_COUNTER, "nsign_stalled_connections_closed_total",
                              "Connections closed because the client took none of its answers "
                              "for the stall timeout.",
                              out_stat, (void *)&OUT_STAT[OUT_CONNS_REAPED]));
    GUARD(ns_metrics_add_func(o->reg, NS_METRIC_COUNTER, "nsign_stalled_streams_reset_total",
                              "Streams reset because the client kept their window shut for the "
                              "stall timeout.",
                              out_stat, (void *)&OUT_STAT[OUT_STREAMS_REAPED]));
    GUARD(ns_metrics_add_func(o->reg, NS_METRIC_COUNTER, "nsign_tls_handshake_failures_total",
                              "TLS handshakes that failed or were refused (no ALPN h2, no known "
                              "client certificate, protocol errors).",
                              tls_failures, o));
    GUARD(ns_metrics_add(o->reg, &o->denials, NS_METRIC_COUNTER, "nsign_policy_denials_total",
                         "Sign requests refused by the key-use policy.", 2, den_l, NULL, 0, 128));
    GUARD(
        ns_metrics_add(o->reg, &o->boot_steps, NS_METRIC_GAUGE, "nsign_boot_step_duration_seconds",
                       "Duration of each enclave boot step, in seconds.", 1, step_l, NULL, 0, 32));
    GUARD(ns_metrics_add_func(o->reg, NS_METRIC_COUNTER, "nsign_log_lines_dropped_total",
                              "Log lines dropped because the log reader was slow or absent.",
                              log_dropped, o));
    GUARD(ns_metrics_add(o->reg, &m, NS_METRIC_COUNTER, "nsign_audit_entries_total",
                         "Entries appended to the audit trail.", 0, NULL, NULL, 0, 0));
    o->audit_entries = ns_metric_get(m, NULL);
    GUARD(ns_metrics_add(o->reg, &m, NS_METRIC_GAUGE, "nsign_build_info",
                         "Build information (value 1).", 1, ver_l, NULL, 0, 1));
    const char *v[] = {NSIGN_VERSION};
    ns_metric_set(ns_metric_get(m, v), 1);
    return NS_OK;
}

ns_err ns_svcobs_start(ns_svcobs **out, const ns_svcobs_cfg *cfg)
{
    ns_addr a;
    ns_svcobs *o = calloc(1, sizeof *o);
    ENSURE(o != NULL, NS_E_NOMEM, "out of memory");
    o->cfg = *cfg;
    o->audit_fd = -1;
    o->state = "STARTING";
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
    ns_err e = ns_metrics_new(&o->reg);
    if (e == NS_OK) {
        e = families(o);
    }
    if (e == NS_OK && cfg->metrics != NULL) {
        e = ns_addr_parse(&a, cfg->metrics);
        if (e == NS_OK) {
            e = ns_httpd_start(&o->http, &a, serve_metrics, o);
        }
        if (e != NS_OK) {
            e = ns_fail_ctx(e, "--metrics %s", cfg->metrics);
        }
    }
    if (e == NS_OK && cfg->log_out != NULL) {
        e = ns_addr_parse(&a, cfg->log_out);
        if (e == NS_OK && g_early != NULL) {
            e = ns_logship_send_to(g_early, &a); /* the early lines first */
            o->logs = e == NS_OK ? g_early : NULL;
        } else if (e == NS_OK) {
            e = ns_logship_start(&o->logs, &a, NS_LOGSHIP_RING_DEFAULT);
        }
        if (e != NS_OK) {
            e = ns_fail_ctx(e, "--log-out %s", cfg->log_out);
        } else {
            ns_log_set_sink(sink, o->logs);
            if (pthread_create(&o->status_th, NULL, status_thread, o) == 0) {
                o->status_started = 1;
            } else {
                e = ns_fail(NS_E_NOMEM, "cannot start the status thread");
            }
        }
    }
    if (e != NS_OK) {
        if (o->logs != NULL && o->logs == g_early) {
            o->logs = NULL; /* still the caller's, for ns_svcobs_early_flush */
        }
        ns_svcobs_stop(o);
        return e;
    }
    if (g_early != NULL && o->logs != g_early) {
        ns_svcobs_early_flush(NULL); /* no log destination: the early lines have nowhere to go */
    }
    g_early = NULL;
    *out = o;
    return NS_OK;
}

static void audit_sink(void *arg, const char *line, size_t n)
{
    ns_svcobs *o = arg;
    if (o->audit_ship != NULL) {
        ns_logship_write(o->audit_ship, line, n);
    } else if (o->audit_fd >= 0) {
        /* O_APPEND, one write per line: lines never interleave. A failed write leaves a gap
         * that audit-verify reports; the service keeps signing. */
        ssize_t w = write(o->audit_fd, line, n);
        (void)w;
    }
}

static void on_sign(void *arg, const ns_signsvc_sign_event *ev)
{
    ns_svcobs *o = arg;
    char client[NS_H2_PEER_MAX];
    int authed = ev->client != NULL && ev->client[0] && strcmp(ev->client, "-") != 0;
    /* The authenticated client id (keys file v2 over mutual TLS); else the peer without its
     * port: one series per client host, not per connection. */
    snprintf(client, sizeof client, "%s", authed ? ev->client : ev->peer);
    char *colon = strrchr(client, ':');
    if (!authed && colon != NULL && strncmp(client, "unix:", 5) != 0) {
        *colon = 0;
    }
    const char *status = ns_grpc_status_name(ev->status);
    /* Only ids of loaded keys become label values (alg "-": no such key): a client that makes up
     * ids would otherwise fill the series cap and push real keys into "_other". Unknown ids
     * share one value outside the id alphabet ("-" stays: refused before an id was read); the
     * audit trail keeps the id asked for. */
    int known = strcmp(ev->alg, "-") != 0 || strcmp(ev->key_id, "-") == 0;
    const char *key = known ? ev->key_id : NS_SVCOBS_UNKNOWN_KEY;
    if (ev->rpc == NS_SIGNSVC_SIGN) {
        const char *sv[] = {key, ev->alg, client, status};
        ns_metric_inc(ns_metric_get(o->sign_total, sv), 1);
        const char *dv[] = {key, ev->alg};
        ns_metric_observe(ns_metric_get(o->sign_seconds, dv), ev->seconds);
    } else {
        const char *rpc = ev->rpc == NS_SIGNSVC_FROST_COMMIT ? "commit" : "sign";
        const char *fv[] = {key, rpc, client, status};
        ns_metric_inc(ns_metric_get(o->frost_total, fv), 1);
        const char *dv[] = {key, rpc};
        ns_metric_observe(ns_metric_get(o->frost_seconds, dv), ev->seconds);
    }
    /* The client policy refused: not this client's key, or no authenticated client at all. */
    if (ev->status == NS_GRPC_PERMISSION_DENIED || ev->status == NS_GRPC_UNAUTHENTICATED) {
        const char *pv[] = {key, client};
        ns_metric_inc(ns_metric_get(o->denials, pv), 1);
    }
    if (o->audit != NULL && ev->input_sha256 != NULL && ev->rpc == NS_SIGNSVC_SIGN) {
        ns_audit_append(o->audit, authed ? ev->client : ev->peer, ev->key_id, ev->input_is_digest,
                        ev->input_sha256, status);
        ns_metric_inc(o->audit_entries, 1);
    } else if (o->audit != NULL && ev->input_sha256 != NULL) {
        ns_audit_append_frost(o->audit, authed ? ev->client : ev->peer, ev->key_id,
                              ev->rpc == NS_SIGNSVC_FROST_COMMIT, ev->input_sha256, status,
                              ev->frost);
        ns_metric_inc(o->audit_entries, 1);
    }
}

ns_err ns_svcobs_attach(ns_svcobs *o, const ns_signsvc_keys *keys)
{
    const char *out = o->cfg.audit_out;
    if (out != NULL) {
        if (is_addr(out)) {
            ns_addr a;
            GUARD(ns_addr_parse(&a, out));
            GUARD(ns_logship_start(&o->audit_ship, &a, AUDIT_RING));
        } else {
            GUARD(ns_open_private(&o->audit_fd, out, NS_OPEN_APPEND, "--audit-out"));
        }
        GUARD(ns_audit_new(&o->audit, ns_signkeys_commitment(keys),
                           o->cfg.audit_every_n ? o->cfg.audit_every_n : 100,
                           o->cfg.audit_every_ms ? o->cfg.audit_every_ms : 10000, audit_sink, o));
        ns_audit_user_data(o->audit, o->user_data);
    }
    pthread_mutex_lock(&o->mu);
    o->client_auth = ns_signkeys_has_policy(keys) ? "required" : "none";
    pthread_mutex_unlock(&o->mu);
    ns_signsvc_obs so = {.on_sign = on_sign,
                         .arg = o,
                         .audit_pub = o->audit ? ns_audit_pub(o->audit) : NULL,
                         .user_data = o->audit ? o->user_data : NULL};
    ns_signsvc_set_obs(&so);
    return NS_OK;
}

void ns_svcobs_boot_step(ns_svcobs *o, const char *step, double seconds)
{
    const char *v[] = {step};
    ns_metric_set(ns_metric_get(o->boot_steps, v), seconds);
}

uint32_t ns_svcobs_metrics_port(const ns_svcobs *o)
{
    return o->http ? ns_httpd_port(o->http) : 0;
}

void ns_svcobs_stop(ns_svcobs *o)
{
    if (o == NULL) {
        return;
    }
    ns_signsvc_set_obs(NULL);
    if (o->status_started) {
        pthread_mutex_lock(&o->mu);
        o->stopping = 1;
        pthread_cond_signal(&o->cv);
        pthread_mutex_unlock(&o->mu);
        pthread_join(o->status_th, NULL);
    }
    if (o->logs != NULL) {
        ns_svcobs_set_state(o, "STOPPING");
    }
    ns_audit_close(o->audit); /* the final signed head */
    ns_logship_stop(o->audit_ship, FLUSH_MS);
    if (o->audit_fd >= 0) {
        (void)fsync(o->audit_fd);
        close(o->audit_fd);
    }
    ns_httpd_stop(o->http);
    if (o->logs != NULL) {
        ns_log_set_sink(NULL, NULL);
        ns_logship_stop(o->logs, FLUSH_MS);
    }
    ns_metrics_free(o->reg);
    pthread_mutex_destroy(&o->mu);
    pthread_cond_destroy(&o->cv);
    free(o);
}
