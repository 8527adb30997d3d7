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

typedef struct {
    const char *addr, *key, *msg_file, *digest_hex, *ud_hex;
    int retries;
    ns_signclient_opts c; /* --cert, --client-key, --expect, --pcr, --no-pcr16, the policy
                           * options, --root, --timeout, --format: shared with frost-sign */
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
    if (strcmp(o->c.format, "hex") == 0) {
        e = ns_buf_printf(&out, "%s\n", sig);
    } else if (strcmp(o->c.format, "base64") == 0) {
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
    ns_signclient_files files;
    memset(&files, 0, sizeof files); /* freed on every path, loaded or not */
    ns_buf msg;
    ns_buf_init(&msg, MSG_MAX);
    uint8_t digest[64];
    size_t dlen = 0;
    ns_signclient *c = NULL;
    ns_att_doc d;
    ns_signclient_sig sig;
    uint64_t epoch = 0;
    int rc = NS_EXIT_FAIL;
    size_t root_len = 0;
    ns_err e = ns_addr_parse(&a, o->addr);
    if (e == NS_OK) {
        e = ns_signclient_files_load(&files, &o->c);
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
        e = ns_signclient_open(&c, &a, files.cert.data, files.cert.len, files.key.data,
                               files.key.len, o->c.timeout_ms);
        if (e == NS_OK) {
            const uint8_t *root = ns_signclient_files_root(&files, &root_len);
            e = ns_signclient_attest(c, x, root, root_len, &o->c.policy, &d, &epoch);
        }
        if (e == NS_OK) {
            ns_info("attested addr=%s module_id=%.*s pcr16=%s policy_epoch=%llu", o->addr,
                    (int)d.module_id.len, (const char *)d.module_id.p,
                    ns_signclient_opts_pcr16(&o->c), (unsigned long long)epoch);
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
    ns_signclient_files_drop_key(&files); /* wiped: no further connection needs it */
    if (e != NS_OK) {
        ns_log_err(e, "sign");
        goto out;
    }
    rc = print_sig(o, &sig, &d);
out:
    ns_signclient_close(c);
    ns_signclient_files_free(&files);
    ns_buf_free(&msg);
    return rc;
}

int sign_main(int argc, char **argv)
{
    if (ns_cli_wants_help(argc, argv)) {
        usage();
        return NS_EXIT_OK;
    }
    enum { O_ADDR = 256, O_KEY, O_MSG, O_DIG, O_UD, O_RETRY };
    static const struct option lo[] = {
        {"addr", required_argument, NULL, O_ADDR},
        {"key", required_argument, NULL, O_KEY},
        {"message-file", required_argument, NULL, O_MSG},
        {"digest", required_argument, NULL, O_DIG},
        {"user-data", required_argument, NULL, O_UD},
        {"retries", required_argument, NULL, O_RETRY},
        NS_SIGNCLIENT_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    opts o;
    memset(&o, 0, sizeof o);
    ns_signclient_opts_init(&o.c);
    o.retries = 3;
    int ch, idx = 0;
    while ((ch = getopt_long(argc, argv, "", lo, &idx)) != -1) {
        switch (ch) {
        case NS_SIGNCLIENT_OPT:
            if (ns_signclient_opt(&o.c, lo[idx].name, optarg) != NS_OK) {
                return ns_cli_usage_error("%s", ns_err_msg());
            }
            break;
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
        case O_UD:
            o.ud_hex = optarg;
            break;
        case O_RETRY: {
            uint64_t n;
            if (ns_parse_uint(optarg, 10, &n) != NS_OK) {
                return ns_cli_usage_error("--retries: expected 0-10");
            }
            o.retries = (int)n;
            break;
        }
        default:
            return ns_cli_usage_error("invalid option");
        }
    }
    if (optind != argc) {
        return ns_cli_usage_error("unexpected argument '%s'", argv[optind]);
    }
    if (!o.addr || !o.key || !o.c.cert || !o.c.client_key) {
        return ns_cli_usage_error("--addr, --key, --cert and --client-key are required");
    }
    if ((o.msg_file == NULL) == (o.digest_hex == NULL)) {
        return ns_cli_usage_error("give exactly one of --message-file and --digest");
    }
    if (ns_signclient_opts_check(&o.c) != NS_OK) {
        return ns_cli_usage_error("%s", ns_err_msg());
    }
    ns_attest_expect *x = calloc(1, sizeof *x);
    if (x == NULL) {
        ns_error("out of memory");
        return NS_EXIT_FAIL;
    }
    /* --expect (each file), --pcr (in every set), PCR0 and PCR16 pinned or --no-pcr16 (warned) */
    ns_err e = ns_signclient_opts_expect(&o.c, x);
    if (e == NS_OK && o.ud_hex) {
        e = ns_attest_expect_hex(&x->user_data, o.ud_hex, "--user-data");
    }
    if (e != NS_OK) {
        free(x);
        if (e == NS_E_USAGE) {
            return ns_cli_usage_error("%s", ns_err_msg());
        }
        ns_log_err(e, "expectations");
        return NS_EXIT_FAIL;
    }
    if (ns_secret_process_init() != NS_OK) {
        ns_warn("could not make the process non-dumpable");
    }
    int rc = run(&o, x);
    free(x);
    return rc;
}
