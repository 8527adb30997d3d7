/*
 * frost-sign: the FROST coordinator (RFC 9591; docs/frost.md). Connects to each --signer over
 * mutual TLS and verifies its attestation exactly as `nsign sign` does (signclient.c), runs both
 * rounds (src/service/frostcoord.c), verifies every signature share against the signer's
 * verifying share (a bad one names the signer), aggregates, verifies the signature under the
 * group key and prints it. The coordinator holds no secret: without --local-share, the protocol
 * path must not allocate secret memory, and this is checked (secret.h's counter) before the
 * signature is printed.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../applets/applets.h"
#include "attest.h"
#include "buf.h"
#include "cli.h"
#include "codec.h"
#include "frost.h"
#include "frostcoord.h"
#include "iox.h"
#include "log.h"
#include "secret.h"
#include "signclient.h"

#define MSG_MAX (4u * 1024 * 1024 - 64 * 1024)
#define SIGNERS_MAX 64

static void usage(void)
{
    printf(
        "usage: nsign frost-sign --key ID --signer ADDR [--signer ADDR]... [--local-share FILE]\n"
        "                        --message-file F --cert C --client-key K\n"
        "                        (--expect measurements.json | --pcr 0=HEX)\n"
        "                        (--pcr 16=HEX | --no-pcr16) [--pcr N=HEX]...\n"
        "                        [--min-policy-epoch N] [--policy-commitment HEX]\n"
        "                        [--allow-anonymous-service] [--user-data HEX]...\n"
        "                        [--group FILE] [--root PEM] [--format hex|base64|json]\n"
        "                        [--timeout SECONDS]\n"
        "\n"
        "Makes one FROST threshold signature (RFC 9591, FROST(Ed25519, SHA-512)) with the\n"
        "sign-services that hold shares of key ID, as an untrusted coordinator:\n"
        "  1. connects to every --signer over mutual TLS and verifies its attestation exactly\n"
        "     as `nsign sign` does (nothing is sent to a signer that fails);\n"
        "  2. round one: a commitment from each (FrostCommit), and each signer's group (group\n"
        "     key, threshold, verifying shares), which must be the same for all (and equal\n"
        "     --group's when given);\n"
        "  3. round two: each signer's signature share (FrostSign), each verified against that\n"
        "     signer's verifying share: a bad share names its signer;\n"
        "  4. aggregates, verifies the signature under the group public key, prints it.\n"
        "The result is an ordinary Ed25519 signature (RFC 8032) under the group public key.\n"
        "No secret reaches the coordinator: nonces stay in the enclaves, single use.\n"
        "\n"
        "options:\n"
        "  --key ID             the key id (the same on every signer)\n"
        "  --signer ADDR        a sign-service holding a share (tcp:HOST:PORT, unix:PATH,\n"
        "                       vsock:CID:PORT); repeat for each, at least the threshold in all\n"
        "  --local-share FILE   this process is also a participant, with the share of FILE (one\n"
        "                       plaintext keys-file FROST entry, JSON): the 2-of-2 \"device plus\n"
        "                       enclave\" setup; the share is kept in locked memory and wiped\n"
        "  --message-file F     sign the bytes of F ('-': standard input)\n"
        "  --cert C, --client-key K  the client certificate and its unencrypted private key\n"
        "                       (PEM or DER); every signer's keys file pins the certificate\n"
        "  --expect FILE        measurements.json of the enclave image (`make eif`): PCR0-2;\n"
        "                       optional when --pcr 0=HEX pins the image; again for a\n"
        "                       rolling upgrade (up to 4): any one image's PCRs, whole\n"
        "  --pcr N=HEX          PCR N must equal HEX, whichever image (repeatable; a value\n"
        "                       differing from an --expect's is an error). PCR16 measures what\n"
        "                       the host loaded (age key, keys file, configuration): pin it\n"
        "                       with --pcr 16=HEX (run-enclave logs `expected pcr16=`, `nsign\n"
        "                       eif pcr16` computes it); without it a host could boot the\n"
        "                       genuine image with keys and a policy of its choosing. Each\n"
        "                       signer loads its own share, so its own PCR16: give --pcr\n"
        "                       16=HEX once per --signer, in the same order (once: the same\n"
        "                       for every signer)\n"
        "  --no-pcr16           sign without pinning PCR16 (warned on stderr): any keys file\n"
        "                       the host loaded is accepted, within the checks below\n"
        "  --min-policy-epoch N refuse a signer whose keys file has a lower policy_epoch\n"
        "  --policy-commitment HEX  the client policy the operator published (`nsign\n"
        "                       sign-service --keys F --commitments`) must be every signer's\n"
        "  --allow-anonymous-service  accept a signer that does not require client\n"
        "                       certificates (a version-1 keys file)\n"
        "  --user-data HEX      the expected Attest user_data: once for every signer, or once\n"
        "                       per --signer in the same order\n"
        "  --group FILE         the group file of `nsign frost-keygen`: every signer's group\n"
        "                       must equal it\n"
        "  --root PEM           trust this root instead of the AWS root: tests and emulators\n"
        "                       only (a warning is printed)\n"
        "  --format F           hex (default: the 64-byte signature), base64, or json\n"
        "                       (key_id, algorithm, signature, group_public_key, signers)\n"
        "  --timeout SECONDS    bound for connecting and each call (default 10)\n"
        "  -h, --help           this help\n"
        "\n"
        "exit codes: 0 signed; 1 connection, attestation, a refusal, a bad share (the signer\n"
        "is named) or a signature that does not verify; 2 usage (also: PCR16 neither pinned\n"
        "nor waived with --no-pcr16).\n");
}

typedef struct {
    ns_signclient_opts c; /* the connection and attestation options (signclient.h) */
    const char *key, *msg_file, *local, *group;
    const char *signers[SIGNERS_MAX];
    int nsigners;
    const char *uds[SIGNERS_MAX];
    int nuds;
    const char *pcr16s[SIGNERS_MAX]; /* --pcr 16=HEX per --signer (when given more than once) */
    int npcr16s;
} opts;

static void hex_of(char *out, size_t cap, const uint8_t *p, size_t n)
{
    if (ns_hex_encode(out, cap, p, n) != NS_OK) {
        out[0] = 0;
    }
}

typedef struct {
    ns_signclient *c[SIGNERS_MAX];
    ns_frostcoord_party parties[SIGNERS_MAX + 1];
    char module[SIGNERS_MAX][64];
    ns_frostcoord_local *local;
    ns_frostcoord *co;
} session;

static int print_sig(const opts *o, const session *s, size_t nparties, const uint8_t *sig,
                     size_t sig_len)
{
    const ns_frost_group *g = ns_frostcoord_group(s->co);
    ns_buf out;
    ns_buf_init(&out, 64 * 1024);
    char sh[2 * NS_FROST_SIG_MAX + 1], gh[2 * NS_FROST_ELEMENT_MAX + 1];
    hex_of(sh, sizeof sh, sig, sig_len);
    hex_of(gh, sizeof gh, g->group_public_key, ns_frost_element_len(g->suite));
    ns_err e = NS_OK;
    if (strcmp(o->c.format, "json") != 0) {
        e = ns_signclient_format_sig(&out, o->c.format, sig, sig_len);
    } else {
        e = ns_buf_append_str(&out, "{\"key_id\":");
        if (e == NS_OK) {
            e = ns_buf_append_json_str(&out, o->key, strlen(o->key));
        }
        if (e == NS_OK) {
            e = ns_buf_printf(&out,
                              ",\"algorithm\":\"%s\",\"signature\":\"%s\",\"group_public_key\":"
                              "\"%s\",\"min_signers\":%u,\"signers\":[",
                              ns_frost_suite_name(g->suite), sh, gh, g->min_signers);
        }
        for (size_t i = 0; e == NS_OK && i < nparties; i++) {
            e = ns_buf_printf(&out, "%s{\"signer\":", i ? "," : "");
            if (e == NS_OK) {
                e = ns_buf_append_json_str(&out, s->parties[i].name, strlen(s->parties[i].name));
            }
            if (e == NS_OK && i < (size_t)o->nsigners) {
                e = ns_buf_append_str(&out, ",\"module_id\":");
                if (e == NS_OK) {
                    e = ns_buf_append_json_str(&out, s->module[i], strlen(s->module[i]));
                }
            }
            if (e == NS_OK) {
                e = ns_buf_append_str(&out, "}");
            }
        }
        if (e == NS_OK) {
            e = ns_buf_append_str(&out, "]}\n");
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

/* Connects to and attests every signer (x: the shared expectations; each gets its own copy). */
static ns_err connect_all(const opts *o, session *s, const ns_attest_expect *x,
                          const ns_signclient_files *f)
{
    size_t root_len = 0;
    const uint8_t *root = ns_signclient_files_root(f, &root_len);
    ns_attest_expect *xi = calloc(1, sizeof *xi);
    ENSURE(xi != NULL, NS_E_NOMEM, "out of memory");
    ns_err e = NS_OK;
    for (int i = 0; e == NS_OK && i < o->nsigners; i++) {
        ns_addr a;
        ns_att_doc d;
        uint64_t epoch = 0;
        *xi = *x;
        if (o->nuds > 0) {
            e = ns_attest_expect_hex(&xi->user_data, o->uds[o->nuds == 1 ? 0 : i], "--user-data");
        }
        if (e == NS_OK && o->npcr16s > 0) {
            xi->pcr_set &= ~(1u << 16);
            e = ns_attest_expect_pcr(xi, o->pcr16s[i]);
        }
        if (e == NS_OK) {
            e = ns_addr_parse(&a, o->signers[i]);
        }
        if (e == NS_OK) {
            e = ns_signclient_open(&s->c[i], &a, f->cert.data, f->cert.len, f->key.data, f->key.len,
                                   o->c.timeout_ms);
        }
        if (e == NS_OK) {
            e = ns_signclient_attest(s->c[i], xi, root, root_len, &o->c.policy, &d, &epoch);
        }
        if (e == NS_OK) {
            snprintf(s->module[i], sizeof s->module[i], "%.*s", (int)d.module_id.len,
                     (const char *)d.module_id.p);
            ns_info("attested signer=%s module_id=%s pcr16=%s policy_epoch=%llu", o->signers[i],
                    s->module[i], ns_signclient_opts_pcr16(&o->c), (unsigned long long)epoch);
            ns_signclient_frost_party(&s->parties[i], s->c[i]);
        }
    }
    free(xi);
    return e;
}

static int run(const opts *o, const ns_attest_expect *x)
{
    ns_signclient_files files;
    ns_buf msg, share, group;
    ns_buf_init(&msg, MSG_MAX);
    ns_buf_init_secret(&share, 256 * 1024);
    ns_buf_init(&group, NS_FROST_GROUP_FILE_MAX);
    session s;
    memset(&s, 0, sizeof s);
    ns_frost_group pin = {0};
    char pin_id[NS_FROST_ID_MAX + 1] = "";
    int rc = NS_EXIT_FAIL;
    ns_err e = ns_signclient_files_load(&files, &o->c);
    /* From here on the coordinator handles public values only (unless it holds a local share):
     * not one secret allocation may happen until the signature is out. */
    size_t allocs0 = ns_secret_allocs();
    if (e == NS_OK) {
        e = ns_read_path(o->msg_file, &msg);
        if (e != NS_OK) {
            e = ns_fail_ctx(e, "--message-file %s", o->msg_file);
        }
    }
    if (e == NS_OK && o->group != NULL) {
        e = ns_read_path(o->group, &group);
        if (e == NS_OK) {
            e = ns_frost_group_file_parse(&pin, pin_id, group.data, group.len);
        }
        if (e == NS_OK && strcmp(pin_id, o->key) != 0) {
            e = ns_fail(NS_E_USAGE, "--group %s is for key \"%s\", not --key %s", o->group, pin_id,
                        o->key);
        }
        if (e != NS_OK && e != NS_E_USAGE) {
            e = ns_fail_ctx(e, "--group %s", o->group);
        }
    }
    if (e == NS_OK && o->local != NULL) {
        e = ns_read_path(o->local, &share);
        if (e == NS_OK) {
            e = ns_frostcoord_local_new(&s.local, share.data, share.len, o->key, o->local);
        }
        ns_buf_free(&share); /* wiped */
        if (e != NS_OK) {
            e = ns_fail_ctx(e, "--local-share %s", o->local);
        }
    }
    if (e != NS_OK) {
        ns_log_err(e, "input");
        goto out;
    }
    e = connect_all(o, &s, x, &files);
    ns_signclient_files_drop_key(&files); /* wiped: each TLS session holds its own copy */
    size_t np = (size_t)o->nsigners;
    if (s.local != NULL) {
        ns_frostcoord_local_party(&s.parties[np++], s.local);
    }
    uint8_t sig[NS_FROST_SIG_MAX];
    size_t sig_len = 0;
    if (e == NS_OK) {
        e = ns_frostcoord_new(&s.co, o->key, s.parties, np, 1, o->group ? &pin : NULL);
    }
    if (e == NS_OK) {
        e = ns_frostcoord_sign(s.co, msg.data, msg.len, sig, &sig_len);
    }
    size_t allocs = ns_secret_allocs() - allocs0;
    if (e == NS_OK && s.local == NULL && allocs != 0) {
        e = ns_fail(NS_E_INTERNAL,
                    "the coordinator path allocated secret memory %zu times: it must handle no "
                    "secret (a bug: please report it)",
                    allocs);
    }
    if (e != NS_OK) {
        ns_log_err(e, "frost-sign");
        goto out;
    }
    ns_info("signed key=%s signers=%zu local_share=%s coordinator_secret_allocs=%zu", o->key, np,
            s.local ? "yes" : "no", allocs);
    rc = print_sig(o, &s, np, sig, sig_len);
out:
    ns_frostcoord_free(s.co);
    ns_frostcoord_local_free(s.local);
    for (int i = 0; i < o->nsigners; i++) {
        ns_signclient_close(s.c[i]);
    }
    ns_frost_group_free(&pin);
    ns_signclient_files_free(&files);
    ns_buf_free(&msg);
    ns_buf_free(&share);
    ns_buf_free(&group);
    return rc;
}

int frost_sign_main(int argc, char **argv)
{
    if (ns_cli_wants_help(argc, argv)) {
        usage();
        return NS_EXIT_OK;
    }
    enum { O_KEY = 256, O_SIGNER, O_LOCAL, O_MSG, O_UD, O_GROUP };
    static const struct option lo[] = {
        {"key", required_argument, NULL, O_KEY},
        {"signer", required_argument, NULL, O_SIGNER},
        {"local-share", required_argument, NULL, O_LOCAL},
        {"message-file", required_argument, NULL, O_MSG},
        {"user-data", required_argument, NULL, O_UD},
        {"group", required_argument, NULL, O_GROUP},
        NS_SIGNCLIENT_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    opts o;
    memset(&o, 0, sizeof o);
    ns_signclient_opts_init(&o.c);
    int ch, idx = 0;
    while ((ch = getopt_long(argc, argv, "", lo, &idx)) != -1) {
        switch (ch) {
        case NS_SIGNCLIENT_OPT:
            if (ns_signclient_opt(&o.c, lo[idx].name, optarg) != NS_OK) {
                return ns_cli_usage_error("%s", ns_err_msg());
            }
            break;
        case O_KEY:
            o.key = optarg;
            break;
        case O_SIGNER:
            if (o.nsigners == SIGNERS_MAX) {
                return ns_cli_usage_error("--signer: at most %d", SIGNERS_MAX);
            }
            o.signers[o.nsigners++] = optarg;
            break;
        case O_LOCAL:
            o.local = optarg;
            break;
        case O_MSG:
            o.msg_file = optarg;
            break;
        case O_UD:
            if (o.nuds == SIGNERS_MAX) {
                return ns_cli_usage_error("--user-data: at most %d", SIGNERS_MAX);
            }
            o.uds[o.nuds++] = optarg;
            break;
        case O_GROUP:
            o.group = optarg;
            break;
        default:
            return ns_cli_usage_error("invalid option");
        }
    }
    if (optind != argc) {
        return ns_cli_usage_error("unexpected argument '%s'", argv[optind]);
    }
    if (!o.key || !o.msg_file) {
        return ns_cli_usage_error("--key and --message-file are required");
    }
    if (ns_signclient_opts_check(&o.c) != NS_OK) {
        return ns_cli_usage_error("%s", ns_err_msg());
    }
    if (o.nsigners == 0) {
        return ns_cli_usage_error("give at least one --signer");
    }
    if (o.nuds > 1 && o.nuds != o.nsigners) {
        return ns_cli_usage_error("--user-data: give it once, or once per --signer (%d)",
                                  o.nsigners);
    }
    /* --pcr 16=HEX more than once: one per --signer, in order; the first stands for all in the
     * shared checks (each signer's own is applied in connect_all). */
    int keep = 0, first16 = -1;
    for (int i = 0; i < o.c.npcrs; i++) {
        if (strncmp(o.c.pcrs[i], "16=", 3) == 0) {
            if (first16 < 0) {
                first16 = keep;
            } else if (o.npcr16s == 0) {
                o.pcr16s[o.npcr16s++] = o.c.pcrs[first16];
            }
            if (o.npcr16s > 0) {
                if (o.npcr16s == SIGNERS_MAX) {
                    return ns_cli_usage_error("--pcr 16: at most %d", SIGNERS_MAX);
                }
                o.pcr16s[o.npcr16s++] = o.c.pcrs[i];
                continue;
            }
        }
        o.c.pcrs[keep++] = o.c.pcrs[i];
    }
    o.c.npcrs = keep;
    if (o.npcr16s > 0 && o.npcr16s != o.nsigners) {
        return ns_cli_usage_error("--pcr 16=HEX: give it once, or once per --signer (%d)",
                                  o.nsigners);
    }
    ns_attest_expect *x = calloc(1, sizeof *x);
    if (x == NULL) {
        ns_error("out of memory");
        return NS_EXIT_FAIL;
    }
    ns_err e = ns_signclient_opts_expect(&o.c, x);
    if (e != NS_OK) {
        free(x);
        if (e == NS_E_USAGE) {
            return ns_cli_usage_error("%s", ns_err_msg());
        }
        ns_log_err(e, "frost-sign");
        return NS_EXIT_FAIL;
    }
    for (int i = 1; i < o.npcr16s; i++) { /* the first was checked with the shared ones */
        ns_attest_expect *xi = calloc(1, sizeof *xi);
        ns_err pe = xi == NULL ? NS_E_NOMEM : ns_attest_expect_pcr(xi, o.pcr16s[i]);
        free(xi);
        if (pe != NS_OK) {
            free(x);
            return ns_cli_usage_error("--pcr %s: %s", o.pcr16s[i], ns_err_msg());
        }
    }
    if (ns_secret_process_init() != NS_OK) {
        ns_warn("could not make the process non-dumpable");
    }
    int rc = run(&o, x);
    free(x);
    return rc;
}
