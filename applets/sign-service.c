/*
 * sign-service: the gRPC signing server (nsign.v1.Signer, health, reflection) over HTTP/2
 * cleartext. A coordinator: reads the keys file into secret memory, hands it to signsvc, serves
 * until SIGTERM/SIGINT, wipes the keys on the way out. See README "### sign-service".
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../applets/applets.h"
#include "buf.h"
#include "cli.h"
#include "codec.h"
#include "grpc.h"
#include "iox.h"
#include "log.h"
#include "secret.h"
#include "signsvc.h"
#include "svcobs.h"

#define DEFAULT_LISTEN "tcp:127.0.0.1:50051"

static ns_stop g_stop;
static ns_stop g_drain;     /* SIGTERM with --drain > 0: drain first (h2loop.h) */
static int g_drain_enabled; /* --drain > 0 */
static ns_svcobs *g_obs;    /* for the SERVING state of /ready and the status lines */

/* SIGTERM drains when --drain allows it (a second SIGTERM stops at once); SIGINT stops. */
static void on_signal(int sig)
{
    if (sig == SIGTERM && g_drain_enabled && !g_drain) {
        g_drain = 1;
    } else {
        g_stop = 1;
    }
}

static void usage(void)
{
    printf("usage: nsign sign-service --keys FILE|-|fd:N [--listen ADDR] [--plaintext]\n"
           "                          [--threads N] [--pseudonymous-clients]\n"
           "                          [--max-msg SIZE] [--max-buffered SIZE]\n"
           "                          [--idle-timeout SECONDS] [--body-timeout SECONDS]\n"
           "                          [--max-output SIZE] [--stall-timeout SECONDS]\n"
           "                          [--drain SECONDS]\n"
           "                          [--metrics ADDR] [--log-out ADDR]\n"
           "                          [--audit-out FILE|ADDR [--audit-every N]\n"
           "                          [--audit-interval SECONDS]]\n"
           "       nsign sign-service --keys FILE|-|fd:N --commitments\n"
           "\n"
           "Serves the keys of a keys file (version 1 or 2, see README) over gRPC on HTTP/2:\n"
           "nsign.v1.Signer (ListKeys, GetPublicKey, Sign, Attest), grpc.health.v1.Health/Check\n"
           "and server reflection. One audit line per Sign, naming the client.\n"
           "\n"
           "TLS (the default): TLS 1.3, or 1.2 with ECDHE and AEAD suites only; ALPN h2 required.\n"
           "The key is a P-256 key made at every start and never leaves the process; the\n"
           "certificate is self-signed: Attest binds its public key (the document's public_key)\n"
           "and returns it (AttestResponse.certificate), so a client trusts the session after\n"
           "verifying the attestation (nsign sign, nsign attest-verify --public-key-of).\n"
           "With a version-2 keys file a client certificate is required and only its pinned\n"
           "SPKI SHA-256 counts: no or an unknown certificate fails the handshake; a key not in\n"
           "the client's allow list is PERMISSION_DENIED; over max_signs_per_second\n"
           "RESOURCE_EXHAUSTED; ListKeys shows a client only its keys. A version-1 file has no\n"
           "policy: anyone who completes the handshake can sign (a warning is logged).\n"
           "\n"
           "options:\n"
           "  --keys FILE|-|fd:N  the keys file (JSON); read once, kept in locked memory\n"
           "  --plaintext         serve HTTP/2 cleartext (h2c) instead of TLS: tests and\n"
           "                      benchmarks only; no client can authenticate, so with a\n"
           "                      version-2 keys file ListKeys/GetPublicKey/Sign are\n"
           "                      UNAUTHENTICATED\n"
           "  --listen ADDR       tcp:HOST:PORT, unix:PATH or vsock:CID:PORT (default %s)\n"
           "  --threads N         event loops (default 0 = one per online CPU)\n"
           "  --max-msg SIZE      largest request message, e.g. 4M (default 4M, like gRPC)\n"
           "  --max-buffered SIZE request bytes all connections may buffer together (default\n"
           "                      32M, or --max-msg + 4M + 5 if larger); a message over it is\n"
           "                      refused RESOURCE_EXHAUSTED; the last 4M is kept for messages\n"
           "                      up to 64K. One connection buffers at most --max-msg + 256K.\n"
           "  --idle-timeout SECONDS  close a connection without an open stream after this\n"
           "                      (default 60; PINGs alone do not keep it open)\n"
           "  --body-timeout SECONDS  answer DEADLINE_EXCEEDED to a request whose body stops\n"
           "                      arriving for this long (default 10)\n"
           "  --max-output SIZE   memory all connections may hold for their clients together:\n"
           "                      unsent answers, per-connection and per-stream state, TLS\n"
           "                      sessions (default 32M). A connection that holds 128K of\n"
           "                      unsent answers gets no more until they move; when the budget\n"
           "                      is full new connections are refused; the last 4M is kept for\n"
           "                      connections that read their answers\n"
           "  --stall-timeout SECONDS  reset a stream, or GOAWAY and close a connection, whose\n"
           "                      client has taken none of its queued answers for this long\n"
           "                      (flow-control window kept shut, socket not read; default 10)\n"
           "  --drain SECONDS     on SIGTERM, drain for at most this long (default 10; 0: stop\n"
           "                      at once): the listener closes (new connections are refused),\n"
           "                      clients get GOAWAY, calls already taken finish, Health/Check\n"
           "                      and GET /ready turn NOT_SERVING/503; a second SIGTERM stops\n"
           "                      at once\n"
           "  --metrics ADDR      serve Prometheus metrics (text format 0.0.4) at GET /metrics\n"
           "                      over plain HTTP/1.1 on ADDR (tcp:, unix: or vsock:), and\n"
           "                      GET /ready: 200 while serving, 503 starting or draining\n"
           "  --log-out ADDR      also send every log line to ADDR through a bounded ring that\n"
           "                      never blocks signing (dropped lines are counted and reported),\n"
           "                      from the first one on, also when the start fails\n"
           "  --audit-out FILE|ADDR  write the signed audit trail (one JSON object per line:\n"
           "                      every Sign, and heads signed by an audit key made at start and\n"
           "                      bound in Attest's user_data) to FILE (appended) or ADDR;\n"
           "                      check it with 'nsign audit-verify'\n"
           "  --audit-every N     sign a head every N entries (default 100)\n"
           "  --audit-interval S  and every S seconds when entries were added (default 10)\n"
           "  --commitments       print what Attest commits to for this keys file and exit,\n"
           "                      as JSON: keys_commitment (user_data without an audit trail),\n"
           "                      key_set_commitment, policy_commitment (publish it for\n"
           "                      `nsign sign --policy-commitment`), policy_epoch,\n"
           "                      client_auth_required; no key material is printed\n"
           "  --frost-nonce-ttl S FROST commitments (FrostCommit) expire after S seconds\n"
           "                      (default 300; 1-3600)\n"
           "  --frost-nonces-per-client N  outstanding FROST commitments per client and key\n"
           "                      (default 1024; 1-8192)\n"
           "  --pseudonymous-clients  name each authenticated client c-XXXXXXXXXXXX (HMAC-SHA256\n"
           "                      of its id under a key drawn at start, never shown) in log\n"
           "                      lines, metrics, the audit trail and error messages: what the\n"
           "                      host receives then carries no client identity (stable for\n"
           "                      one run; key ids and counts are still visible)\n"
           "\n"
           "SIGTERM drains (see --drain), SIGINT stops at once (GOAWAY to clients); either way\n"
           "the keys are wiped.\n"
           "exit codes: 0 stopped by a signal, 1 failure (bad keys file, cannot listen), 2 usage\n",
           DEFAULT_LISTEN);
}

static void on_listening(const char *addr, void *arg)
{
    const ns_signsvc_cfg *cfg = arg;
    ns_info("serving addr=%s threads=%d max_msg=%zu max_buffered=%zu max_output=%zu "
            "stall_ms=%d",
            addr, cfg->threads ? cfg->threads : (int)sysconf(_SC_NPROCESSORS_ONLN), cfg->max_msg,
            cfg->max_buffered, cfg->max_output ? cfg->max_output : NS_H2_OUTPUT_DEFAULT,
            cfg->stall_ms ? cfg->stall_ms : NS_H2_STALL_MS_DEFAULT);
    if (g_obs != NULL) {
        ns_svcobs_set_state(g_obs, "SERVING");
    }
}

typedef struct {
    const char *keys_path;
    const char *listen;
    int plaintext;
    int commitments;
    ns_signsvc_cfg cfg;
    ns_svcobs_cfg ocfg;
} svc_options;

/* One option that takes a value v; returns 0, or the usage exit code after the error line. */
static int parse_valued(svc_options *o, const char *a, const char *v)
{
    uint64_t n;
    if (strcmp(a, "--keys") == 0 && v) {
        o->keys_path = v;
    } else if (strcmp(a, "--listen") == 0 && v) {
        o->listen = v;
    } else if (strcmp(a, "--threads") == 0 && v) {
        if (ns_parse_uint(v, 256, &n) != NS_OK) {
            return ns_cli_usage_error("--threads: expected 0-256, got '%s'", v);
        }
        o->cfg.threads = (int)n;
    } else if (strcmp(a, "--max-msg") == 0 && v) {
        if (ns_parse_size(v, 64u * 1024 * 1024, &n) != NS_OK || n == 0) {
            return ns_cli_usage_error("--max-msg: expected a size from 1 to 64M, got '%s'", v);
        }
        o->cfg.max_msg = (size_t)n;
    } else if (strcmp(a, "--max-buffered") == 0 && v) {
        if (ns_parse_size(v, 1024u * 1024 * 1024, &n) != NS_OK || n == 0) {
            return ns_cli_usage_error("--max-buffered: expected a size from 1 to 1G, got '%s'", v);
        }
        o->cfg.max_buffered = (size_t)n;
    } else if ((strcmp(a, "--idle-timeout") == 0 || strcmp(a, "--body-timeout") == 0) && v) {
        if (ns_parse_uint(v, 86400, &n) != NS_OK || n == 0) {
            return ns_cli_usage_error("%s: expected 1-86400 seconds, got '%s'", a, v);
        }
        *(a[2] == 'i' ? &o->cfg.idle_ms : &o->cfg.body_idle_ms) = (int)n * 1000;
    } else if (strcmp(a, "--max-output") == 0 && v) {
        if (ns_parse_size(v, 1024u * 1024 * 1024, &n) != NS_OK || n < 2 * NS_H2_OUTPUT_RESERVE) {
            return ns_cli_usage_error("--max-output: expected a size from 8M to 1G, got '%s'", v);
        }
        o->cfg.max_output = (size_t)n;
    } else if (strcmp(a, "--stall-timeout") == 0 && v) {
        int64_t ms;
        if (ns_parse_seconds(v, &ms) != NS_OK || ms < 100 || ms > 86400000) {
            return ns_cli_usage_error("--stall-timeout: expected seconds (0.1 to 86400), got '%s'",
                                      v);
        }
        o->cfg.stall_ms = (int)ms;
    } else if (strcmp(a, "--drain") == 0 && v) {
        if (ns_parse_uint(v, 3600, &n) != NS_OK) {
            return ns_cli_usage_error("--drain: expected 0-3600 seconds, got '%s'", v);
        }
        o->cfg.drain_ms = (int)n * 1000;
    } else if (strcmp(a, "--metrics") == 0 && v) {
        o->ocfg.metrics = v;
    } else if (strcmp(a, "--log-out") == 0 && v) {
        o->ocfg.log_out = v;
    } else if (strcmp(a, "--audit-out") == 0 && v) {
        o->ocfg.audit_out = v;
    } else if (strcmp(a, "--audit-every") == 0 && v) {
        if (ns_parse_uint(v, 1000000, &n) != NS_OK || n == 0) {
            return ns_cli_usage_error("--audit-every: expected 1-1000000, got '%s'", v);
        }
        o->ocfg.audit_every_n = (uint32_t)n;
    } else if (strcmp(a, "--audit-interval") == 0 && v) {
        int64_t ms;
        if (ns_parse_seconds(v, &ms) != NS_OK || ms <= 0 || ms > 86400000) {
            return ns_cli_usage_error("--audit-interval: expected seconds (0 < S <= 86400), "
                                      "got '%s'",
                                      v);
        }
        o->ocfg.audit_every_ms = (uint32_t)ms;
    } else if (strcmp(a, "--frost-nonce-ttl") == 0 && v) {
        if (ns_parse_uint(v, 3600, &n) != NS_OK || n == 0) {
            return ns_cli_usage_error("--frost-nonce-ttl: expected 1-3600 seconds, got '%s'", v);
        }
        o->cfg.frost_ttl_ms = (uint32_t)n * 1000;
    } else if (strcmp(a, "--frost-nonces-per-client") == 0 && v) {
        if (ns_parse_uint(v, 8192, &n) != NS_OK || n == 0) {
            return ns_cli_usage_error("--frost-nonces-per-client: expected 1-8192, got '%s'", v);
        }
        o->cfg.frost_per_owner = (uint32_t)n;
    } else {
        return ns_cli_usage_error("unknown option or missing value: '%s'", a);
    }
    return NS_EXIT_OK;
}

/* Fills o from the command line; returns 0, or the usage exit code after the error line. */
static int parse_options(svc_options *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->listen = DEFAULT_LISTEN;
    o->cfg.max_msg = 4u * 1024 * 1024;
    o->cfg.drain_ms = 10 * 1000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--plaintext") == 0) {
            o->plaintext = 1;
            continue;
        }
        if (strcmp(argv[i], "--commitments") == 0) {
            o->commitments = 1;
            continue;
        }
        if (strcmp(argv[i], "--pseudonymous-clients") == 0) {
            o->cfg.pseudonymous_clients = 1;
            continue;
        }
        int rc = parse_valued(o, argv[i], i + 1 < argc ? argv[i + 1] : NULL);
        if (rc != NS_EXIT_OK) {
            return rc;
        }
        i++;
    }
    ns_signsvc_cfg *cfg = &o->cfg;
    size_t min_buffered = cfg->max_msg + NS_GRPC_PREFIX_LEN + NS_H2_SMALL_RESERVE;
    if (cfg->max_buffered == 0) {
        cfg->max_buffered =
            NS_H2_BUFFERED_DEFAULT > min_buffered ? NS_H2_BUFFERED_DEFAULT : min_buffered;
    } else if (cfg->max_buffered < min_buffered) {
        return ns_cli_usage_error("--max-buffered: %zu is below --max-msg + 4M + 5 (%zu): no "
                                  "message of the largest size could ever be accepted",
                                  cfg->max_buffered, min_buffered);
    }
    if (o->keys_path == NULL) {
        return ns_cli_usage_error("--keys is required");
    }
    if (ns_addr_parse(&cfg->listen, o->listen) != NS_OK) {
        return ns_cli_usage_error("--listen: %s", ns_err_msg());
    }
    return NS_EXIT_OK;
}

/* Hardens the process and starts metrics, log shipping and audit; logs a failure. */
static ns_err start_observability(const svc_options *o, ns_svcobs **obs)
{
    /* With --log-out, the lines before observability starts (and its own failure) are kept
     * for the log reader too. */
    if (o->ocfg.log_out != NULL && ns_svcobs_early() != NS_OK) {
        ns_warn("the first log lines reach only stderr: %s", ns_err_msg());
    }
    ns_err e = ns_secret_process_init();
    if (e != NS_OK) {
        ns_log_err(e, "sign-service");
        ns_svcobs_early_flush(o->ocfg.log_out);
        return e;
    }
    e = ns_svcobs_start(obs, &o->ocfg);
    if (e != NS_OK) {
        ns_log_err(e, "observability");
        ns_svcobs_early_flush(o->ocfg.log_out);
        return e;
    }
    if (o->ocfg.metrics != NULL) {
        ns_info("metrics addr=%s port=%u", o->ocfg.metrics, ns_svcobs_metrics_port(*obs));
    }
    return NS_OK;
}

/* Reads and parses the keys file through secret memory (wiped right after parsing); logs a
 * failure, after which *keys is NULL. */
static ns_err read_keys(const svc_options *o, ns_signsvc_keys **keys)
{
    ns_buf json;
    ns_buf_init_secret(&json, NS_SIGNKEYS_JSON_MAX);
    *keys = NULL;
    ns_err e = ns_read_path(o->keys_path, &json);
    if (e == NS_OK) {
        e = ns_signsvc_load_keys(keys, json.data, json.len);
    } else {
        e = ns_fail_ctx(e, "reading the keys file %s", o->keys_path);
    }
    ns_buf_free(&json);
    if (e != NS_OK) {
        ns_log_err(e, "keys");
    }
    return e;
}

/* Reads the keys file through secret memory (wiped right after parsing) and attaches the keys
 * to the audit log; logs a failure, after which *keys is NULL. */
static ns_err load_keys(const svc_options *o, ns_svcobs *obs, ns_signsvc_keys **keys)
{
    GUARD(read_keys(o, keys));
    ns_err e = ns_svcobs_attach(obs, *keys);
    if (e != NS_OK) {
        ns_log_err(e, "audit");
        ns_signsvc_keys_free(*keys);
        *keys = NULL;
    }
    return e;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGTERM, &sa, NULL);
    (void)sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    (void)sigaction(SIGPIPE, &sa, NULL);
}

/* --commitments: Attest's commitments of a keys file, as one JSON object. */
static int print_commitments(const svc_options *o)
{
    ns_signsvc_keys *k = NULL;
    if (read_keys(o, &k) != NS_OK) {
        return NS_EXIT_FAIL;
    }
    char kc[65], ks[65], pc[65];
    if (ns_hex_encode(kc, sizeof kc, ns_signkeys_commitment(k), 32) != NS_OK ||
        ns_hex_encode(ks, sizeof ks, k->key_set_commitment, 32) != NS_OK ||
        ns_hex_encode(pc, sizeof pc, k->policy_commitment, 32) != NS_OK) {
        ns_signsvc_keys_free(k);
        return NS_EXIT_FAIL;
    }
    printf("{\"keys_commitment\":\"%s\",\"key_set_commitment\":\"%s\","
           "\"policy_commitment\":\"%s\",\"policy_epoch\":%llu,\"client_auth_required\":%s}\n",
           kc, ks, pc, (unsigned long long)k->policy_epoch,
           ns_signkeys_has_policy(k) ? "true" : "false");
    ns_signsvc_keys_free(k);
    return fflush(stdout) == 0 ? NS_EXIT_OK : NS_EXIT_FAIL;
}

/* Serves until SIGTERM/SIGINT; logs the outcome. */
static ns_err serve(svc_options *o, ns_signsvc_keys *keys)
{
    ns_info("keys loaded count=%zu", keys->count);
    o->cfg.tls = !o->plaintext;
    o->cfg.on_listening = on_listening;
    o->cfg.on_listening_arg = &o->cfg;
    g_drain_enabled = o->cfg.drain_ms > 0;
    o->cfg.drain = g_drain_enabled ? &g_drain : NULL;
    ns_err e = ns_signsvc_run(&o->cfg, keys, &g_stop);
    if (e != NS_OK) {
        ns_log_err(e, "serve");
    } else {
        ns_info("stopped");
    }
    return e;
}

int sign_service_main(int argc, char **argv)
{
    if (ns_cli_wants_help(argc, argv)) {
        usage();
        return NS_EXIT_OK;
    }
    svc_options o;
    int rc = parse_options(&o, argc, argv);
    if (rc != NS_EXIT_OK) {
        return rc;
    }
    if (o.commitments) {
        return print_commitments(&o);
    }
    ns_svcobs *obs = NULL;
    if (start_observability(&o, &obs) != NS_OK) {
        return NS_EXIT_FAIL;
    }
    ns_signsvc_keys *keys;
    if (load_keys(&o, obs, &keys) != NS_OK) {
        ns_svcobs_stop(obs);
        return NS_EXIT_FAIL;
    }
    ns_io_raise_nofile(); /* one descriptor per client connection */
    g_obs = obs;
    ns_svcobs_watch_drain(obs, &g_drain);
    install_signals();
    ns_err e = serve(&o, keys);
    ns_svcobs_stop(obs); /* the final audit head, then the shipped lines flushed */
    ns_signsvc_keys_free(keys);
    return e != NS_OK ? NS_EXIT_FAIL : NS_EXIT_OK;
}
