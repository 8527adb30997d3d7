/*
 * enclave: see enclave.h. The three receivers run on their own threads so the host may push in
 * any order; the first failure (or a stop request) makes a cancel pipe readable, which every
 * waiting receiver polls, so a bad payload fails the boot at once instead of at the timeout.
 */
#include "enclave.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "iox.h"
#include "log.h"

#define ENCLAVE_DETAIL_MAX 512
#define ENCLAVE_DEFAULT_RECV_TIMEOUT_MS (600 * 1000)
#define ENCLAVE_DEFAULT_HEARTBEAT_TIMEOUT_MS (10 * 1000)
#define ENCLAVE_THREADS_MAX 256
#define ENCLAVE_STOP_POLL_MS 50

static const char *const step_names[NS_STEP_COUNT] = {
    [NS_STEP_RECEIVE] = "receive",
    [NS_STEP_RECV_CREDS] = "receive-credentials",
    [NS_STEP_RECV_AGE_KEY] = "receive-age-key",
    [NS_STEP_RECV_SHARES] = "receive-shares",
    [NS_STEP_KMS] = "kms-decrypt",
    [NS_STEP_WIPE] = "wipe-credentials",
    [NS_STEP_AGE] = "age-decrypt",
    [NS_STEP_LOAD_KEYS] = "load-keys",
    [NS_STEP_SERVE] = "sign-service",
};

const char *ns_enclave_step_name(ns_enclave_step s)
{
    return (s >= 0 && s < NS_STEP_COUNT) ? step_names[s] : "?";
}

/* ---- configuration ---- */

static ns_err cfg_port(ns_enclave_getenv_fn get, void *ctx, const char *name, uint32_t def,
                       uint32_t *out)
{
    const char *v = get(name, ctx);
    uint64_t n;
    if (v == NULL || *v == '\0') {
        *out = def;
        return NS_OK;
    }
    if (ns_parse_uint(v, 0xFFFFFFFFull, &n) != NS_OK || n == 0) {
        BAIL(NS_E_USAGE, "%s=%s: want a port number", name, v);
    }
    *out = (uint32_t)n;
    return NS_OK;
}

static ns_err cfg_flag(ns_enclave_getenv_fn get, void *ctx, const char *name, int def, int *out)
{
    const char *v = get(name, ctx);
    if (v == NULL || *v == '\0') {
        *out = def;
    } else if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0) {
        *out = 1;
    } else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0) {
        *out = 0;
    } else if (def == -1 && strcmp(v, "auto") == 0) {
        *out = -1;
    } else {
        BAIL(NS_E_USAGE, "%s=%s: want 1 or 0%s", name, v, def == -1 ? " or auto" : "");
    }
    return NS_OK;
}

/* NAME overrides the default address text; "none" sets *enabled = 0 when enabled != NULL. */
static ns_err cfg_addr(ns_enclave_getenv_fn get, void *ctx, const char *name, const char *def,
                       ns_addr *out, int *enabled)
{
    const char *v = get(name, ctx);
    if (v == NULL || *v == '\0') {
        v = def;
    }
    if (enabled != NULL && strcmp(v, "none") == 0) {
        *enabled = 0;
        return NS_OK;
    }
    ns_err e = ns_addr_parse(out, v);
    if (e != NS_OK) {
        return ns_fail_ctx(e, "%s", name);
    }
    return NS_OK;
}

static ns_err cfg_str(ns_enclave_getenv_fn get, void *ctx, const char *name, const char *def,
                      char *out, size_t cap)
{
    const char *v = get(name, ctx);
    if (v == NULL) {
        v = def;
    }
    ENSURE(strlen(v) < cap, NS_E_TOO_BIG, "%s: longer than %zu bytes", name, cap - 1);
    memcpy(out, v, strlen(v) + 1);
    return NS_OK;
}

/* An observability address: NAME, else the default when on by default, else none. */
static ns_err cfg_obs(ns_enclave_getenv_fn get, void *ctx, const char *name, const char *def,
                      int on, char *out)
{
    const char *v = get(name, ctx);
    ns_addr a;
    if (v == NULL || *v == '\0') {
        v = on ? def : "none";
    }
    if (strcmp(v, "none") == 0) {
        out[0] = '\0';
        return NS_OK;
    }
    ns_err e = ns_addr_parse(&a, v);
    if (e != NS_OK) {
        return ns_fail_ctx(e, "%s", name);
    }
    ns_addr_format(&a, out, NS_ADDR_STR_MAX);
    return NS_OK;
}

static ns_err cfg_obs_all(ns_enclave_cfg *cfg, ns_enclave_getenv_fn get, void *ctx, int on,
                          uint32_t parent)
{
    uint32_t p_log, p_audit, p_metrics;
    char a[NS_ADDR_STR_MAX];
    GUARD(cfg_port(get, ctx, "ENCLAVE_LOG_VSOCK_PORT", 7110, &p_log));
    GUARD(cfg_port(get, ctx, "AUDIT_VSOCK_PORT", 7111, &p_audit));
    GUARD(cfg_port(get, ctx, "METRICS_VSOCK_PORT", 7112, &p_metrics));
    snprintf(a, sizeof a, "vsock:%u:%u", parent, p_log);
    GUARD(cfg_obs(get, ctx, "NSIGN_ENCLAVE_LOG_ADDR", a, on, cfg->log_out));
    snprintf(a, sizeof a, "vsock:%u:%u", parent, p_audit);
    GUARD(cfg_obs(get, ctx, "NSIGN_ENCLAVE_AUDIT_ADDR", a, on, cfg->audit_out));
    snprintf(a, sizeof a, "vsock:any:%u", p_metrics);
    GUARD(cfg_obs(get, ctx, "NSIGN_ENCLAVE_METRICS_ADDR", a, on, cfg->metrics));
    const char *v = get("NSIGN_ENCLAVE_AUDIT_EVERY", ctx);
    uint64_t n;
    if (v != NULL && *v != '\0') {
        ENSURE(ns_parse_uint(v, 1000000, &n) == NS_OK && n > 0, NS_E_USAGE,
               "NSIGN_ENCLAVE_AUDIT_EVERY=%s: want 1..1000000 entries", v);
        cfg->audit_every_n = (uint32_t)n;
    }
    v = get("NSIGN_ENCLAVE_AUDIT_INTERVAL", ctx);
    int64_t ms;
    if (v != NULL && *v != '\0') {
        ENSURE(ns_parse_seconds(v, &ms) == NS_OK && ms > 0 && ms <= 86400 * 1000, NS_E_USAGE,
               "NSIGN_ENCLAVE_AUDIT_INTERVAL=%s: want seconds, 0 < S <= 86400", v);
        cfg->audit_every_ms = (uint32_t)ms;
    }
    v = get("NSIGN_ENCLAVE_STATUS_INTERVAL", ctx);
    if (v != NULL && *v != '\0') {
        ENSURE(ns_parse_seconds(v, &ms) == NS_OK && ms > 0 && ms <= 3600 * 1000, NS_E_USAGE,
               "NSIGN_ENCLAVE_STATUS_INTERVAL=%s: want seconds, 0 < S <= 3600", v);
        cfg->status_every_ms = (uint32_t)ms;
    }
    return NS_OK;
}

ns_err ns_enclave_cfg_load(ns_enclave_cfg *cfg, ns_enclave_getenv_fn get, void *ctx, int is_pid1)
{
    return ns_enclave_cfg_load_ex(cfg, get, ctx, is_pid1, 0);
}

ns_err ns_enclave_cfg_load_ex(ns_enclave_cfg *cfg, ns_enclave_getenv_fn get, void *ctx,
                              int is_pid1, int in_enclave)
{
    uint32_t p_creds, p_age, p_shares, p_grpc, p_egress, p_kms, parent;
    char a[NS_ADDR_STR_MAX];
    memset(cfg, 0, sizeof *cfg);

    GUARD(cfg_port(get, ctx, "AWS_CREDS_VSOCK_PORT", 7100, &p_creds));
    GUARD(cfg_port(get, ctx, "AGE_KEY_VSOCK_PORT", 7101, &p_age));
    GUARD(cfg_port(get, ctx, "KEY_SHARES_VSOCK_PORT", 7102, &p_shares));
    GUARD(cfg_port(get, ctx, "VSOCK_PORT", 50051, &p_grpc));
    GUARD(cfg_port(get, ctx, "HOST_EGRESS_VSOCK_PORT", 8080, &p_egress));
    GUARD(cfg_port(get, ctx, "KMS_PROXY_PORT", 5000, &p_kms));
    GUARD(cfg_port(get, ctx, "PARENT_CID", 3, &parent));
    ENSURE(p_grpc <= 65535 && p_egress <= 65535, NS_E_USAGE,
           "VSOCK_PORT and HOST_EGRESS_VSOCK_PORT double as tcp ports: at most 65535");

    snprintf(a, sizeof a, "vsock:any:%u", p_creds);
    GUARD(cfg_addr(get, ctx, "NSIGN_ENCLAVE_CREDS_ADDR", a, &cfg->creds_listen, NULL));
    snprintf(a, sizeof a, "vsock:any:%u", p_age);
    GUARD(cfg_addr(get, ctx, "NSIGN_ENCLAVE_AGE_KEY_ADDR", a, &cfg->age_key_listen, NULL));
    snprintf(a, sizeof a, "vsock:any:%u", p_shares);
    GUARD(cfg_addr(get, ctx, "NSIGN_ENCLAVE_SHARES_ADDR", a, &cfg->shares_listen, NULL));

    snprintf(a, sizeof a, "tcp:127.0.0.1:%u", p_grpc);
    GUARD(cfg_addr(get, ctx, "NSIGN_ENCLAVE_SIGN_ADDR", a, &cfg->sign_listen, NULL));
    cfg->ingress_enabled = 1;
    snprintf(a, sizeof a, "vsock:any:%u", p_grpc);
    GUARD(cfg_addr(get, ctx, "NSIGN_ENCLAVE_INGRESS_ADDR", a, &cfg->ingress_listen,
                   &cfg->ingress_enabled));

    GUARD(cfg_flag(get, ctx, "HOST_EGRESS_ENABLED", 1, &cfg->egress_enabled));
    if (cfg->egress_enabled) {
        snprintf(a, sizeof a, "tcp:127.0.0.1:%u", p_egress);
        GUARD(cfg_addr(get, ctx, "NSIGN_ENCLAVE_EGRESS_LISTEN_ADDR", a, &cfg->egress_listen,
                       &cfg->egress_enabled));
    }
    if (cfg->egress_enabled) {
        snprintf(a, sizeof a, "vsock:%u:%u", parent, p_egress);
        GUARD(
            cfg_addr(get, ctx, "NSIGN_ENCLAVE_EGRESS_CONNECT_ADDR", a, &cfg->egress_connect, NULL));
    }

    snprintf(a, sizeof a, "vsock:%u:%u", parent, p_kms);
    GUARD(cfg_addr(get, ctx, "NSIGN_ENCLAVE_KMS_PROXY_ADDR", a, &cfg->kms_proxy, NULL));
    GUARD(cfg_str(get, ctx, "AWS_REGION", "us-east-1", cfg->region, sizeof cfg->region));
    if (cfg->region[0] == '\0') {
        memcpy(cfg->region, "us-east-1", sizeof "us-east-1");
    }
    GUARD(
        cfg_str(get, ctx, "AWS_ENDPOINT_URL_KMS", "", cfg->kms_endpoint, sizeof cfg->kms_endpoint));
    GUARD(cfg_str(get, ctx, "KMS_KEY_ID", "", cfg->kms_key_id, sizeof cfg->kms_key_id));
    GUARD(cfg_str(get, ctx, "AWS_CA_BUNDLE", "", cfg->ca_bundle, sizeof cfg->ca_bundle));
    GUARD(cfg_flag(get, ctx, "NSIGN_ENCLAVE_ATTEST", -1, &cfg->attest));

    const char *t = get("NSIGN_ENCLAVE_RECV_TIMEOUT", ctx);
    int64_t ms = ENCLAVE_DEFAULT_RECV_TIMEOUT_MS;
    if (t != NULL && *t != '\0') {
        if (ns_parse_seconds(t, &ms) != NS_OK || ms <= 0 || ms > 86400 * 1000) {
            BAIL(NS_E_USAGE, "NSIGN_ENCLAVE_RECV_TIMEOUT=%s: want seconds, 0 < S <= 86400", t);
        }
    }
    cfg->recv_timeout_ms = (int)ms;

    const char *th = get("NSIGN_ENCLAVE_SIGN_THREADS", ctx);
    if (th != NULL && *th != '\0') {
        uint64_t n;
        if (ns_parse_uint(th, ENCLAVE_THREADS_MAX, &n) != NS_OK) {
            BAIL(NS_E_USAGE, "NSIGN_ENCLAVE_SIGN_THREADS=%s: want 0..%d (0 = one per core)", th,
                 ENCLAVE_THREADS_MAX);
        }
        cfg->sign_threads = (int)n;
    }

    cfg->heartbeat_enabled = is_pid1 ? 1 : 0;
    const char *hb = get("NSIGN_ENCLAVE_HEARTBEAT_ADDR", ctx);
    if (hb != NULL && *hb != '\0') {
        cfg->heartbeat_enabled = 1;
    }
    snprintf(a, sizeof a, "vsock:%u:9000", parent);
    GUARD(cfg_addr(get, ctx, "NSIGN_ENCLAVE_HEARTBEAT_ADDR", a, &cfg->heartbeat,
                   &cfg->heartbeat_enabled));
    cfg->heartbeat_timeout_ms = ENCLAVE_DEFAULT_HEARTBEAT_TIMEOUT_MS;
    GUARD(cfg_str(get, ctx, "NSIGN_MODULES", is_pid1 ? "/nsm.ko" : "", cfg->modules,
                  sizeof cfg->modules));
    GUARD(cfg_obs_all(cfg, get, ctx, is_pid1 || in_enclave, parent));
    return NS_OK;
}

/* ---- the run ---- */

typedef struct recv_job {
    const ns_enclave_ops *ops;
    ns_enclave_step step;
    int fd;
    int cancel_fd; /* read end of the cancel pipe */
    int timeout_ms;
    ns_buf *out;
    ns_err e;
    char detail[ENCLAVE_DETAIL_MAX];
    int64_t ms;
    struct recv_job *all; /* the three jobs */
    int cancel_w;         /* write end of the cancel pipe */
    pthread_mutex_t *mu;
    int *failed; /* set by the first receiver that fails (or on stop), under mu */
    int *first;  /* index of the first receiver that failed by itself, under mu */
    int *done;   /* finished receivers, under mu */
} recv_job;

static void recv_cancel(int cancel_w)
{
    char b = 1;
    if (write(cancel_w, &b, 1) != 1) {
        /* the pipe is empty and ours: this cannot fail short of a bug */
    }
}

static void *recv_thread(void *arg)
{
    recv_job *j = arg;
    int64_t t0 = ns_now_ms();
    j->e = j->ops->recv(j->ops->ctx, j->fd, j->cancel_fd, j->timeout_ms, j->out);
    j->ms = ns_now_ms() - t0;
    if (j->e != NS_OK) {
        snprintf(j->detail, sizeof j->detail, "%s", ns_err_msg());
        ns_buf_reset(j->out);
        pthread_mutex_lock(j->mu);
        if (!*j->failed) {
            *j->failed = 1;
            *j->first = (int)(j - j->all);
            recv_cancel(j->cancel_w);
        }
        pthread_mutex_unlock(j->mu);
    }
    pthread_mutex_lock(j->mu);
    (*j->done)++;
    pthread_mutex_unlock(j->mu);
    return NULL;
}

static void step_done(const ns_enclave_ops *ops, ns_enclave_step s, int64_t t0, ns_err e,
                      const char *detail)
{
    if (ops->on_step) {
        ops->on_step(ops->ctx, s, ns_now_ms() - t0, e, detail ? detail : ns_err_msg());
    }
}

typedef struct {
    ns_buf creds, age_ct, shares_ct, age_key, keys;
} enclave_bufs;

static void bufs_free(enclave_bufs *b)
{
    ns_buf_free(&b->creds);
    ns_buf_free(&b->age_ct);
    ns_buf_free(&b->shares_ct);
    ns_buf_free(&b->age_key);
    ns_buf_free(&b->keys);
}

static ns_err receive_all(const ns_enclave_cfg *cfg, const ns_enclave_ops *ops, enclave_bufs *b,
                          volatile int *stop, ns_enclave_step *failed)
{
    const ns_addr *addrs[3] = {&cfg->creds_listen, &cfg->age_key_listen, &cfg->shares_listen};
    ns_buf *outs[3] = {&b->creds, &b->age_ct, &b->shares_ct};
    const ns_enclave_step steps[3] = {NS_STEP_RECV_CREDS, NS_STEP_RECV_AGE_KEY,
                                      NS_STEP_RECV_SHARES};
    recv_job jobs[3];
    pthread_t th[3];
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    int any_failed = 0, started = 0, done = 0, first_idx = -1;
    int cancel[2] = {-1, -1};
    ns_err e = NS_OK;
    int64_t t0 = ns_now_ms();

    memset(jobs, 0, sizeof jobs);
    for (int i = 0; i < 3; i++) {
        jobs[i].fd = -1;
    }
    if (pipe2(cancel, O_CLOEXEC) != 0) {
        e = ns_fail_errno(NS_E_INTERNAL, "pipe");
        *failed = steps[0];
        step_done(ops, steps[0], t0, e, NULL);
        goto out;
    }
    /* Listen on all three first: the host's pushes retry until every listener is up. */
    for (int i = 0; i < 3; i++) {
        char name[NS_ADDR_STR_MAX];
        ns_addr_format(addrs[i], name, sizeof name);
        e = ns_addr_listen(addrs[i], 4, NS_LISTEN_NONBLOCK, &jobs[i].fd);
        if (e != NS_OK) {
            e = ns_fail_ctx(e, "listen on %s", name);
            *failed = steps[i];
            step_done(ops, steps[i], t0, e, NULL);
            goto out;
        }
    }
    for (int i = 0; i < 3; i++) {
        jobs[i].ops = ops;
        jobs[i].step = steps[i];
        jobs[i].timeout_ms = cfg->recv_timeout_ms;
        jobs[i].out = outs[i];
        jobs[i].all = jobs;
        jobs[i].mu = &mu;
        jobs[i].failed = &any_failed;
        jobs[i].done = &done;
        jobs[i].first = &first_idx;
        jobs[i].cancel_fd = cancel[0];
        jobs[i].cancel_w = cancel[1];
        if (pthread_create(&th[i], NULL, recv_thread, &jobs[i]) != 0) {
            pthread_mutex_lock(&mu);
            any_failed = 1;
            recv_cancel(cancel[1]);
            pthread_mutex_unlock(&mu);
            e = ns_fail(NS_E_INTERNAL, "cannot start a receiver thread");
            *failed = steps[i];
            break;
        }
        started++;
    }
    /* A stop request (SIGTERM) while waiting shuts the listeners down like a failure does. */
    for (;;) {
        pthread_mutex_lock(&mu);
        int finished = done == started;
        if (!finished && *stop && !any_failed) {
            any_failed = 1;
            recv_cancel(cancel[1]);
        }
        pthread_mutex_unlock(&mu);
        if (finished) {
            break;
        }
        usleep(ENCLAVE_STOP_POLL_MS * 1000);
    }
    for (int i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
    }
    if (e != NS_OK) {
        goto out;
    }
    /* Report each receiver. The step that failed is the first one that failed by itself, not
     * one we shut down because of it (or, on a stop request, the first still waiting). */
    int pick = first_idx;
    for (int i = 0; i < 3; i++) {
        if (ops->on_step) {
            ops->on_step(ops->ctx, steps[i], jobs[i].ms, jobs[i].e, jobs[i].detail);
        }
        if (pick < 0 && jobs[i].e != NS_OK) {
            pick = i;
        }
    }
    if (pick >= 0) {
        *failed = steps[pick];
        e = ns_fail(jobs[pick].e, "%s", jobs[pick].detail);
    }
out:
    for (int i = 0; i < 3; i++) {
        if (jobs[i].fd >= 0) {
            close(jobs[i].fd);
        }
        if (addrs[i]->kind == NS_ADDR_UNIX && addrs[i]->path[0] != '@') {
            ns_io_unlink_stale_socket(addrs[i]->path);
        }
    }
    for (int i = 0; i < 2; i++) {
        if (cancel[i] >= 0) {
            close(cancel[i]);
        }
    }
    pthread_mutex_destroy(&mu);
    return e;
}

ns_err ns_enclave_run(const ns_enclave_cfg *cfg, const ns_enclave_ops *ops, volatile int *stop,
                      ns_enclave_step *failed)
{
    enclave_bufs b;
    ns_err e;
    int64_t t0;

    ns_buf_init_secret(&b.creds, NS_ENCLAVE_CREDS_MAX);
    ns_buf_init_secret(&b.age_ct, NS_ENCLAVE_AGE_KEY_CT_MAX);
    ns_buf_init_secret(&b.shares_ct, NS_ENCLAVE_SHARES_CT_MAX);
    ns_buf_init_secret(&b.age_key, NS_ENCLAVE_AGE_KEY_MAX);
    ns_buf_init_secret(&b.keys, NS_ENCLAVE_SHARES_MAX);
    *failed = NS_STEP_COUNT;

    t0 = ns_now_ms();
    e = receive_all(cfg, ops, &b, stop, failed);
    if (e != NS_OK) {
        goto out;
    }
    step_done(ops, NS_STEP_RECEIVE, t0, NS_OK, "");

    t0 = ns_now_ms();
    e = ops->kms_decrypt(ops->ctx, cfg, &b.creds, &b.age_ct, &b.age_key);
    /* The credentials and the ciphertext have no further use, whatever happened. */
    ns_buf_free(&b.creds);
    ns_buf_free(&b.age_ct);
    if (e != NS_OK) {
        *failed = NS_STEP_KMS;
        step_done(ops, NS_STEP_KMS, t0, e, NULL);
        goto out;
    }
    step_done(ops, NS_STEP_KMS, t0, NS_OK, "");
    step_done(ops, NS_STEP_WIPE, ns_now_ms(), NS_OK, "");

    t0 = ns_now_ms();
    e = ops->age_decrypt(ops->ctx, &b.age_key, &b.shares_ct, &b.keys);
    ns_buf_free(&b.age_key);
    ns_buf_free(&b.shares_ct);
    if (e != NS_OK) {
        *failed = NS_STEP_AGE;
        step_done(ops, NS_STEP_AGE, t0, e, NULL);
        goto out;
    }
    step_done(ops, NS_STEP_AGE, t0, NS_OK, "");

    t0 = ns_now_ms();
    e = ops->load_keys(ops->ctx, &b.keys);
    ns_buf_free(&b.keys);
    if (e != NS_OK) {
        *failed = NS_STEP_LOAD_KEYS;
        step_done(ops, NS_STEP_LOAD_KEYS, t0, e, NULL);
        goto out;
    }
    step_done(ops, NS_STEP_LOAD_KEYS, t0, NS_OK, "");

    t0 = ns_now_ms();
    e = ops->serve(ops->ctx, cfg, stop);
    if (e != NS_OK) {
        *failed = NS_STEP_SERVE;
    }
    step_done(ops, NS_STEP_SERVE, t0, e, e == NS_OK ? "" : NULL);
out:
    bufs_free(&b);
    return e;
}
