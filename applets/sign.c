/*
 * sign: a sign-service client that verifies the enclave before it signs (src/service/signclient.c):
 * TLS with a client certificate, Attest with a fresh nonce on the same connection, the document
 * checked against the expected measurements and bound to this TLS session, then one Sign.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../applets/applets.h"
#include "attest.h"
#include "buf.h"
#include "cli.h"
#include "codec.h"
#include "iox.h"
#include "log.h"
#include "secret.h"
#include "signclient.h"

#define MSG_MAX (4u * 1024 * 1024 - 256)
#define KEYFILE_MAX (64u * 1024)

static void usage(void)
{
    printf(
        "usage: nsign sign --addr ADDR --key ID (--message-file F | --digest HEX)\n"
        "                  --cert C --client-key K (--expect measurements.json | --pcr 0=HEX)\n"
        "                  (--pcr 16=HEX | --no-pcr16) [--pcr N=HEX]...\n"
        "                  [--min-policy-epoch N] [--policy-commitment HEX]\n"
        "                  [--allow-anonymous-service] [--user-data HEX] [--root PEM]\n"
        "                  [--format hex|base64|json] [--timeout SECONDS]\n"
        "\n"
        "Signs with a key of a sign-service, after checking that the service is the enclave\n"
        "you expect. On one TLS connection (ALPN h2, the client certificate C/K):\n"
        "  1. Attest with a fresh random nonce;\n"
        "  2. verify the document: chain to the AWS Nitro Enclaves root G1 (embedded) at the\n"
        "     document's time, ES384 signature, the PCRs of --expect and --pcr, the nonce,\n"
        "     --user-data if given, and public_key = the key of the certificate that ended THIS\n"
        "     TLS session (which must also be the certificate Attest returned); then the keys\n"
        "     file behind it: user_data must commit to the keys commitment Attest returned\n"
        "     (itself recomputed from its parts: key set, client policy, policy_epoch,\n"
        "     client-auth) and the audit key, if any; the service must require client\n"
        "     certificates (unless --allow-anonymous-service), its policy_epoch be at least\n"
        "     --min-policy-epoch, its policy commitment equal --policy-commitment;\n"
        "  3. only then send the Sign request, and print the signature.\n"
        "Nothing is sent to sign if any check fails.\n"
        "\n"
        "options:\n"
        "  --addr ADDR          tcp:HOST:PORT, unix:PATH or vsock:CID:PORT\n"
        "  --key ID             the key id\n"
        "  --message-file F     sign the bytes of F ('-': standard input); ECDSA keys sign\n"
        "                       their SHA-256\n"
        "  --digest HEX         ECDSA only: sign this 32-byte digest as is\n"
        "  --cert C, --client-key K  the client certificate and its unencrypted private key\n"
        "                       (PEM or DER); the keys file pins the certificate's public key\n"
        "  --expect FILE        measurements.json of the enclave image (`make eif`): PCR0-2;\n"
        "                       optional when --pcr 0=HEX pins the image; again for a\n"
        "                       rolling upgrade (up to 4): any one image's PCRs, whole\n"
        "  --pcr N=HEX          PCR N must equal HEX, whichever image (repeatable; a value\n"
        "                       differing from an --expect's is an error). PCR16 measures what\n"
        "                       the host loaded (age key, keys file, configuration): pin it\n"
        "                       with --pcr 16=HEX (run-enclave logs `expected pcr16=`, `nsign\n"
        "                       eif pcr16` computes it); without it a host could boot the\n"
        "                       genuine image with keys and a policy of its choosing\n"
        "  --no-pcr16           sign without pinning PCR16 (warned on stderr): any keys file\n"
        "                       the host loaded is accepted, within the checks below\n"
        "  --min-policy-epoch N refuse an enclave whose keys file has a lower policy_epoch\n"
        "  --policy-commitment HEX  the client policy the operator published (`nsign\n"
        "                       sign-service --keys F --commitments`) must be the enclave's\n"
        "  --allow-anonymous-service  accept a service that does not require client\n"
        "                       certificates (a version-1 keys file)\n"
        "  --user-data HEX      the expected user_data of the document, exactly\n"
        "  --root PEM           trust this root instead of the AWS root: tests and emulators\n"
        "                       only (a warning is printed)\n"
        "  --format F           hex (default: the signature), base64, or json (signature,\n"
        "                       signature_der, recovery_id, digest, algorithm, module_id)\n"
        "  --timeout SECONDS    bound for connecting and each call (default 10)\n"
        "  --retries N          new connections (each attested again) after a failure that\n"
        "                       proves the Sign was not taken: connecting, TLS, Attest's\n"
        "                       transport, or UNAVAILABLE (default 3; behind a load balancer\n"
        "                       another replica answers); never after an attestation check\n"
        "                       failed or Sign was sent on a connection that then broke\n"
        "  -h, --help           this help\n"
        "\n"
        "exit codes: 0 signed; 1 connection, attestation or signing failed (the error says\n"
        "which check); 2 usage (also: PCR16 neither pinned nor waived with --no-pcr16).\n");
}

#define PCR_OPTS_MAX 32

typedef struct {
    const char *addr, *key, *msg_file, *digest_hex, *cert, *client_key, *expect, *ud_hex, *root,
        *format;
    int timeout_ms;
    const char *pcrs[PCR_OPTS_MAX]; /* --pcr N=HEX, applied after --expect */
    int npcrs;
    int no_pcr16;
    ns_signclient_policy policy;
    const char *expect_more[NS_ATTEST_ALT_MAX]; /* --expect again: other accepted images */
    int nexpect_more;
    int retries;
} opts;

/* ---- replicas behind a load balancer (issue 23; docs/fleet.md) ---- */

/* Whether a failed attempt proves the Sign was not taken, so another connection (another
 * replica) may try it: a failure to connect, of the TLS handshake or of Attest's transport
 * before Sign was sent, or Sign answered UNAVAILABLE. Never an attestation check, a refusal,
 * nor a connection lost after Sign was sent (it may have been signed). */
static int retryable(ns_err e, int sign_sent)
{
    if (e == NS_E_UNAVAILABLE) {
        return 1;
    }
    return !sign_sent && (e == NS_E_CONNECT || e == NS_E_CLOSED || e == NS_E_TIMEOUT ||
                          e == NS_E_IO || e == NS_E_TLS);
}

/* The further --expect files: each one more accepted set of PCRs (ns_attest_expect_alt). */
static ns_err load_more_expect(const opts *o, ns_attest_expect *x)
{
    ns_buf m;
    ns_err e = NS_OK;
    ns_buf_init(&m, NS_ATTEST_MEASUREMENTS_MAX);
    for (int i = 0; e == NS_OK && i < o->nexpect_more; i++) {
        ns_buf_reset(&m);
        e = ns_read_path(o->expect_more[i], &m);
        if (e == NS_OK) {
            e = ns_attest_expect_alt(x, m.data, m.len);
        }
        if (e != NS_OK) {
            e = ns_fail_ctx(e, "--expect %s", o->expect_more[i]);
        }
    }
    ns_buf_free(&m);
    return e;
}

static ns_err load_file(ns_buf *b, const char *path, const char *what)
{
    ns_err e = ns_read_path(path, b);
    if (e == NS_OK && memmem(b->data, b->len, "-----BEGIN", 10) != NULL) {
        e = ns_buf_append_u8(b, 0); /* mbedtls counts a PEM's NUL */
    }
    return e == NS_OK ? NS_OK : ns_fail_ctx(e, "%s %s", what, path);
}

static void hex_of(char *out, size_t cap, const uint8_t *p, size_t n)
{
    if (ns_hex_encode(out, cap, p, n) != NS_OK) {
        out[0] = 0;
    }
}

static int print_sig(const opts *o, const ns_signclient_sig *s, const ns_att_doc *d)
{
    ns_buf out;
    ns_buf_init(&out, 4096);
    char sig[160], der[160], dig[80];
    hex_of(sig, sizeof sig, s->signature, s->signature_len);
    hex_of(der, sizeof der, s->signature_der, s->signature_der_len);
    hex_of(dig, sizeof dig, s->digest, s->digest_len);
    ns_err e = NS_OK;
    if (strcmp(o->format, "hex") == 0) {
        e = ns_buf_printf(&out, "%s\n", sig);
    } else if (strcmp(o->format, "base64") == 0) {
        char b[128];
        e = ns_b64_encode(b, sizeof b, s->signature, s->signature_len, NS_B64_PAD);
        if (e == NS_OK) {
            e = ns_buf_printf(&out, "%s\n", b);
        }
    } else {
        e = ns_buf_append_str(&out, "{\"key_id\":");
        if (e == NS_OK) {
            e = ns_buf_append_json_str(&out, o->key, strlen(o->key));
        }
        if (e == NS_OK) {
            e = ns_buf_printf(&out,
                              ",\"algorithm\":\"%s\",\"signature\":\"%s\",\"signature_der\":\"%s\","
                              "\"recovery_id\":%u,\"digest\":\"%s\",\"module_id\":",
                              s->algorithm, sig, der, s->recovery_id, dig);
        }
        if (e == NS_OK) {
            e = ns_buf_append_json_str(&out, (const char *)d->module_id.p, d->module_id.len);
        }
        if (e == NS_OK) {
            e = ns_buf_append_str(&out, "}\n");
        }
    }
    if (e == NS_OK) {
        e = ns_write_all(1, out.data, out.len);
    }
    ns_buf_free(&out);
    if (e != NS_OK) {
        ns_log_err(e, "writing the signature");
        return NS_EXIT_FAIL;
    }
    return NS_EXIT_OK;
}

static int run(const opts *o, ns_attest_expect *x)
{
    ns_addr a;
    ns_buf cert, key, root_pem, root, msg;
    ns_buf_init(&cert, KEYFILE_MAX);
    ns_buf_init_secret(&key, KEYFILE_MAX);
    ns_buf_init(&root_pem, KEYFILE_MAX);
    ns_buf_init(&root, KEYFILE_MAX);
    ns_buf_init(&msg, MSG_MAX);
    uint8_t digest[64];
    size_t dlen = 0;
    ns_signclient *c = NULL;
    ns_att_doc d;
    ns_signclient_sig sig;
    uint64_t epoch = 0;
    int rc = NS_EXIT_FAIL;
    ns_err e = ns_addr_parse(&a, o->addr);
    if (e == NS_OK) {
        e = load_file(&cert, o->cert, "--cert");
    }
    if (e == NS_OK) {
        e = load_file(&key, o->client_key, "--client-key");
    }
    if (e == NS_OK && o->root != NULL) {
        ns_warn("trusting --root %s instead of the AWS Nitro Enclaves root: for tests and "
                "emulators only",
                o->root);
        e = ns_read_path(o->root, &root_pem);
        if (e == NS_OK) {
            e = ns_attest_cert_der(&root, root_pem.data, root_pem.len);
        }
    }
    if (e == NS_OK && o->digest_hex != NULL &&
        ns_hex_decode(digest, sizeof digest, &dlen, o->digest_hex, strlen(o->digest_hex)) !=
            NS_OK) {
        e = ns_fail(NS_E_USAGE, "--digest: not valid hex");
    }
    if (e == NS_OK && o->msg_file != NULL) {
        e = ns_read_path(o->msg_file, &msg);
    }
    if (e != NS_OK) {
        ns_log_err(e, "input");
        goto out;
    }
    /* Each attempt is a new connection, so a new attestation of whichever replica it reaches. */
    for (int i = 0;; i++) {
        int sent = 0;
        c = NULL;
        e = ns_signclient_open(&c, &a, cert.data, cert.len, key.data, key.len, o->timeout_ms);
        if (e == NS_OK) {
            e = ns_signclient_attest(c, x, o->root ? root.data : NULL, root.len, &o->policy, &d,
                                     &epoch);
        }
        if (e == NS_OK) {
            ns_info("attested addr=%s module_id=%.*s pcr16=%s policy_epoch=%llu", o->addr,
                    (int)d.module_id.len, (const char *)d.module_id.p,
                    o->no_pcr16 ? "unchecked" : "pinned", (unsigned long long)epoch);
            sent = 1;
            e = ns_signclient_sign(c, o->key, msg.data, msg.len, o->digest_hex ? digest : NULL,
                                   dlen, &sig);
        }
        if (e == NS_OK || i >= o->retries || !retryable(e, sent)) {
            break;
        }
        ns_warn("attempt %d of %d failed (%s: %s): retrying on a new connection", i + 1,
                o->retries + 1, ns_err_name(e), ns_err_msg());
        ns_signclient_close(c);
        usleep((useconds_t)(100000u << (i < 4 ? i : 4)));
    }
    ns_buf_free(&key); /* wiped: no further connection needs it */
    if (e != NS_OK) {
        ns_log_err(e, "sign");
        goto out;
    }
    rc = print_sig(o, &sig, &d);
out:
    ns_signclient_close(c);
    ns_buf_free(&cert);
    ns_buf_free(&key);
    ns_buf_free(&root_pem);
    ns_buf_free(&root);
    ns_buf_free(&msg);
    return rc;
}

int sign_main(int argc, char **argv)
{
    if (ns_cli_wants_help(argc, argv)) {
        usage();
        return NS_EXIT_OK;
    }
    enum {
        O_ADDR = 256,
        O_KEY,
        O_MSG,
        O_DIG,
        O_CERT,
        O_CKEY,
        O_EXP,
        O_UD,
        O_ROOT,
        O_FMT,
        O_TO,
        O_PCR,
        O_NOPCR16,
        O_MINEP,
        O_POLICY,
        O_ANON,
        O_RETRY
    };
    static const struct option lo[] = {
        {"addr", required_argument, NULL, O_ADDR},
        {"key", required_argument, NULL, O_KEY},
        {"message-file", required_argument, NULL, O_MSG},
        {"digest", required_argument, NULL, O_DIG},
        {"cert", required_argument, NULL, O_CERT},
        {"client-key", required_argument, NULL, O_CKEY},
        {"expect", required_argument, NULL, O_EXP},
        {"user-data", required_argument, NULL, O_UD},
        {"root", required_argument, NULL, O_ROOT},
        {"format", required_argument, NULL, O_FMT},
        {"timeout", required_argument, NULL, O_TO},
        {"pcr", required_argument, NULL, O_PCR},
        {"no-pcr16", no_argument, NULL, O_NOPCR16},
        {"min-policy-epoch", required_argument, NULL, O_MINEP},
        {"policy-commitment", required_argument, NULL, O_POLICY},
        {"allow-anonymous-service", no_argument, NULL, O_ANON},
        {"retries", required_argument, NULL, O_RETRY},
        {NULL, 0, NULL, 0},
    };
    opts o;
    memset(&o, 0, sizeof o);
    o.format = "hex";
    o.timeout_ms = 10000;
    o.retries = 3;
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        int64_t ms = 0;
        switch (ch) {
        case O_ADDR:
            o.addr = optarg;
            break;
        case O_KEY:
            o.key = optarg;
            break;
        case O_MSG:
            o.msg_file = optarg;
            break;
        case O_DIG:
            o.digest_hex = optarg;
            break;
        case O_CERT:
            o.cert = optarg;
            break;
        case O_CKEY:
            o.client_key = optarg;
            break;
        case O_EXP:
            if (o.expect == NULL) {
                o.expect = optarg;
            } else if (o.nexpect_more < NS_ATTEST_ALT_MAX) {
                o.expect_more[o.nexpect_more++] = optarg;
            } else {
                return ns_cli_usage_error("--expect: at most %d files", NS_ATTEST_ALT_MAX + 1);
            }
            break;
        case O_RETRY: {
            uint64_t n;
            if (ns_parse_uint(optarg, 10, &n) != NS_OK) {
                return ns_cli_usage_error("--retries: expected 0-10");
            }
            o.retries = (int)n;
            break;
        }
        case O_UD:
            o.ud_hex = optarg;
            break;
        case O_ROOT:
            o.root = optarg;
            break;
        case O_FMT:
            o.format = optarg;
            break;
        case O_TO:
            if (ns_parse_seconds(optarg, &ms) != NS_OK || ms <= 0 || ms > 600000) {
                return ns_cli_usage_error("--timeout: expected seconds (0 < S <= 600)");
            }
            o.timeout_ms = (int)ms;
            break;
        case O_PCR:
            if (o.npcrs == PCR_OPTS_MAX) {
                return ns_cli_usage_error("--pcr: at most %d", PCR_OPTS_MAX);
            }
            o.pcrs[o.npcrs++] = optarg;
            break;
        case O_NOPCR16:
            o.no_pcr16 = 1;
            break;
        case O_MINEP:
            if (ns_parse_uint(optarg, 4294967295u, &o.policy.min_policy_epoch) != NS_OK) {
                return ns_cli_usage_error("--min-policy-epoch: expected an integer 0..4294967295");
            }
            break;
        case O_POLICY: {
            size_t n = 0;
            if (strlen(optarg) != 64 ||
                ns_hex_decode(o.policy.policy_commitment, 32, &n, optarg, 64) != NS_OK) {
                return ns_cli_usage_error("--policy-commitment: expected 64 hex digits");
            }
            o.policy.policy_set = 1;
            break;
        }
        case O_ANON:
            o.policy.allow_anonymous = 1;
            break;
        default:
            return ns_cli_usage_error("invalid option");
        }
    }
    if (optind != argc) {
        return ns_cli_usage_error("unexpected argument '%s'", argv[optind]);
    }
    if (!o.addr || !o.key || !o.cert || !o.client_key) {
        return ns_cli_usage_error("--addr, --key, --cert and --client-key are required");
    }
    if ((o.msg_file == NULL) == (o.digest_hex == NULL)) {
        return ns_cli_usage_error("give exactly one of --message-file and --digest");
    }
    if (strcmp(o.format, "hex") != 0 && strcmp(o.format, "base64") != 0 &&
        strcmp(o.format, "json") != 0) {
        return ns_cli_usage_error("--format: hex, base64 or json");
    }
    ns_attest_expect *x = calloc(1, sizeof *x);
    if (x == NULL) {
        ns_error("out of memory");
        return NS_EXIT_FAIL;
    }
    ns_err e = NS_OK;
    if (o.expect != NULL) {
        ns_buf m;
        ns_buf_init(&m, NS_ATTEST_MEASUREMENTS_MAX);
        e = ns_read_path(o.expect, &m);
        if (e == NS_OK) {
            e = ns_attest_expect_measurements(x, m.data, m.len);
        }
        ns_buf_free(&m);
    }
    if (e == NS_OK && o.ud_hex) {
        e = ns_attest_expect_hex(&x->user_data, o.ud_hex, "--user-data");
    }
    if (e == NS_OK) {
        e = load_more_expect(&o, x);
    }
    if (e != NS_OK) {
        ns_log_err(e, o.expect ? o.expect : "--user-data");
        free(x);
        return NS_EXIT_FAIL;
    }
    for (int i = 0; i < o.npcrs; i++) {
        if (ns_attest_expect_pcr(x, o.pcrs[i]) != NS_OK) {
            free(x);
            return ns_cli_usage_error("%s%s%s", ns_err_msg(), o.expect ? " against --expect " : "",
                                      o.expect ? o.expect : "");
        }
    }
    if (!ns_attest_expect_pins(x, 0)) {
        free(x);
        return ns_cli_usage_error("PCR0 is not pinned: give --expect measurements.json (`make "
                                  "eif`) or --pcr 0=HEX (`nsign eif describe`)");
    }
    int pinned16 = ns_attest_expect_pins(x, 16); /* in every accepted image's set */
    if (pinned16 && o.no_pcr16) {
        free(x);
        return ns_cli_usage_error("--no-pcr16 with PCR16 pinned: give one or the other");
    }
    if (!pinned16 && !o.no_pcr16) {
        free(x);
        return ns_cli_usage_error(
            "PCR16 is not pinned: add --pcr 16=HEX (what the enclave measured from the age key, "
            "keys file and configuration: run-enclave logs it as `expected pcr16=`, `nsign eif "
            "pcr16` computes it), or --no-pcr16 to accept whatever the host loaded");
    }
    if (o.no_pcr16) {
        ns_warn("--no-pcr16: PCR16 is not checked, so this accepts the genuine image booted with "
                "any age key, keys file and configuration the host chose; pin it with --pcr "
                "16=HEX");
    }
    if (ns_secret_process_init() != NS_OK) {
        ns_warn("could not make the process non-dumpable");
    }
    int rc = run(&o, x);
    free(x);
    return rc;
}
