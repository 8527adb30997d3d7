/*
 * attest-verify: verifies a Nitro attestation document and checks it against expectations
 * (PCRs, nonce, user_data, public_key), then prints it as JSON. A coordinator: files and options
 * here; the checks in src/formats/attest.c, the COSE/CBOR parsing and chain in src/formats/cose.c.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../applets/applets.h"
#include "attest.h"
#include "buf.h"
#include "cli.h"
#include "iox.h"
#include "log.h"

static void usage(void)
{
    printf(
        "usage: nsign attest-verify [--pcrs measurements.json] [--pcr N=HEX]... [--nonce HEX]\n"
        "                           [--user-data HEX] [--public-key-of CERT [--no-pcr16]]\n"
        "                           [--root PEM] DOC\n"
        "\n"
        "Verifies an AWS Nitro Enclaves attestation document and prints it as JSON.\n"
        "DOC is a file holding the COSE_Sign1 document raw or in base64 ('-': standard input).\n"
        "\n"
        "Checks, in order; the first that fails is named on standard error:\n"
        "  parse       DOC is a COSE_Sign1 attestation document\n"
        "  signature   the COSE ES384 signature, by the document's leaf certificate\n"
        "  chain       the leaf and the cabundle chain to the AWS Nitro Enclaves root G1\n"
        "              (embedded in nsign), every certificate valid at the document's own\n"
        "              timestamp (leaf certificates live about three hours)\n"
        "  pcrN        each expected PCR\n"
        "  nonce, user_data, public_key   when the option is given\n"
        "\n"
        "options:\n"
        "  --pcrs FILE          measurements.json as `make eif` (or nitro-cli build-enclave)\n"
        "                       writes it: every PCRn in it must match; repeatable (a\n"
        "                       rolling upgrade: the old and the new image), the document\n"
        "                       then matches one file's PCRs whole, never a mix\n"
        "  --pcr N=HEX          PCR N (0..31) must equal HEX; repeatable\n"
        "  --nonce HEX          the document's nonce must equal HEX\n"
        "  --user-data HEX      user_data must equal HEX (sign-service puts its key-set\n"
        "                       commitment there: the user_data field of its Attest answer)\n"
        "  --public-key-of CERT public_key must be the DER SubjectPublicKeyInfo of this\n"
        "                       certificate (PEM or DER): sign-service binds its TLS key so.\n"
        "                       This is the client check before trusting a sign-service, so\n"
        "                       PCR16 (what the host loaded: age key, keys file,\n"
        "                       configuration) must then be pinned with --pcr 16=HEX (or in\n"
        "                       --pcrs), or waived with --no-pcr16 (warned)\n"
        "  --no-pcr16           with --public-key-of: accept any PCR16 (any keys file the\n"
        "                       host chose for the genuine image)\n"
        "  --root PEM           trust this root instead of the embedded AWS root (tests and\n"
        "                       emulators only; a warning is printed)\n"
        "  -h, --help           this help\n"
        "\n"
        "exit codes: 0 verified and every check passed (the JSON is on standard output);\n"
        "1 a check failed or DOC is not an attestation document (nothing is printed on\n"
        "standard output); 2 usage (also: --public-key-of without PCR16 pinned or --no-pcr16).\n");
}

typedef struct {
    const char *pcrs_file[1 + NS_ATTEST_ALT_MAX]; /* the first merges with --pcr; each further
                                                   * one is another accepted set */
    int npcrs;
    const char *pcr[NS_ATT_PCR_MAX]; /* --pcr N=HEX: applied to every set once all are read */
    int npcr;
    const char *cert_file;
    const char *root_file;
    const char *doc_file;
    int no_pcr16;
} files;

/* Loads the expectations from files; x already holds the --pcr/--nonce/--user-data ones. */
static ns_err load_expect(ns_attest_expect *x, const files *f)
{
    ns_buf b;
    ns_err e = NS_OK;
    ns_buf_init(&b, NS_ATTEST_MEASUREMENTS_MAX);
    for (int i = 0; e == NS_OK && i < f->npcrs; i++) {
        ns_buf_reset(&b);
        e = ns_read_path(f->pcrs_file[i], &b);
        if (e == NS_OK) {
            e = i == 0 ? ns_attest_expect_measurements(x, b.data, b.len)
                       : ns_attest_expect_alt(x, b.data, b.len);
        }
        if (e != NS_OK) {
            e = ns_fail_ctx(e, "--pcrs %s", f->pcrs_file[i]);
        }
    }
    ns_buf_reset(&b);
    if (e == NS_OK && f->cert_file != NULL) {
        e = ns_read_path(f->cert_file, &b);
        if (e == NS_OK) {
            e = ns_attest_spki_of_cert(x->public_key.val, sizeof x->public_key.val,
                                       &x->public_key.len, b.data, b.len);
        }
        if (e != NS_OK) {
            e = ns_fail_ctx(e, "--public-key-of %s", f->cert_file);
        } else {
            x->public_key.set = 1;
        }
    }
    ns_buf_free(&b);
    return e;
}

static int run(const ns_attest_expect *x, const files *f)
{
    ns_buf root, raw, doc, out;
    ns_buf_init(&root, NS_ATTEST_CERT_MAX);
    ns_buf_init(&raw, 2 * NS_ATT_DOC_MAX);
    ns_buf_init(&doc, NS_ATT_DOC_MAX);
    ns_buf_init(&out, 1 << 20);
    int rc = NS_EXIT_FAIL;
    ns_err e = NS_OK;
    if (f->root_file != NULL) {
        ns_warn("trusting --root %s instead of the AWS Nitro Enclaves root: for tests and "
                "emulators only, a document verified so proves nothing about AWS hardware",
                f->root_file);
        ns_buf pem;
        ns_buf_init(&pem, NS_ATTEST_CERT_MAX);
        e = ns_read_path(f->root_file, &pem);
        if (e == NS_OK) {
            e = ns_attest_cert_der(&root, pem.data, pem.len);
        }
        ns_buf_free(&pem);
        if (e != NS_OK) {
            ns_log_err(e, f->root_file);
            goto out;
        }
    }
    e = ns_read_path(f->doc_file, &raw);
    if (e == NS_OK) {
        e = ns_attest_decode_input(&doc, raw.data, raw.len);
    }
    if (e != NS_OK) {
        ns_log_err(e, f->doc_file);
        goto out;
    }
    ns_att_doc d;
    e = ns_attest_verify(&d, doc.data, doc.len, f->root_file ? root.data : NULL, root.len, x);
    if (e != NS_OK) {
        ns_log_err(e, f->doc_file);
        goto out;
    }
    e = ns_attest_doc_json(&out, &d);
    if (e == NS_OK) {
        e = ns_write_all(1, out.data, out.len);
    }
    if (e != NS_OK) {
        ns_log_err(e, "writing the document");
        goto out;
    }
    ns_info("verified doc=%s module_id=%.*s timestamp=%llu", f->doc_file, (int)d.module_id.len,
            (const char *)d.module_id.p, (unsigned long long)d.timestamp);
    rc = NS_EXIT_OK;
out:
    ns_buf_free(&root);
    ns_buf_free(&raw);
    ns_buf_free(&doc);
    ns_buf_free(&out);
    return rc;
}

int attest_verify_main(int argc, char **argv)
{
    if (ns_cli_wants_help(argc, argv)) {
        usage();
        return NS_EXIT_OK;
    }
    enum { OPT_PCRS = 256, OPT_PCR, OPT_NONCE, OPT_UD, OPT_PKOF, OPT_ROOT, OPT_NOPCR16 };
    static const struct option opts[] = {
        {"pcrs", required_argument, NULL, OPT_PCRS},
        {"pcr", required_argument, NULL, OPT_PCR},
        {"nonce", required_argument, NULL, OPT_NONCE},
        {"user-data", required_argument, NULL, OPT_UD},
        {"public-key-of", required_argument, NULL, OPT_PKOF},
        {"root", required_argument, NULL, OPT_ROOT},
        {"no-pcr16", no_argument, NULL, OPT_NOPCR16},
        {NULL, 0, NULL, 0},
    };
    ns_attest_expect *x = calloc(1, sizeof *x);
    if (x == NULL) {
        ns_error("out of memory");
        return NS_EXIT_FAIL;
    }
    ns_attest_expect_init(x);
    files f;
    memset(&f, 0, sizeof f);
    ns_err e = NS_OK;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case OPT_PCRS:
            if (f.npcrs == 1 + NS_ATTEST_ALT_MAX) {
                return ns_cli_usage_error("--pcrs: at most %d files", 1 + NS_ATTEST_ALT_MAX);
            }
            f.pcrs_file[f.npcrs++] = optarg;
            break;
        case OPT_PCR:
            if (f.npcr == NS_ATT_PCR_MAX) {
                free(x);
                return ns_cli_usage_error("--pcr: at most %d", NS_ATT_PCR_MAX);
            }
            f.pcr[f.npcr++] = optarg;
            break;
        case OPT_NONCE:
            e = ns_attest_expect_hex(&x->nonce, optarg, "--nonce");
            break;
        case OPT_UD:
            e = ns_attest_expect_hex(&x->user_data, optarg, "--user-data");
            break;
        case OPT_PKOF:
            f.cert_file = optarg;
            break;
        case OPT_ROOT:
            f.root_file = optarg;
            break;
        case OPT_NOPCR16:
            f.no_pcr16 = 1;
            break;
        default:
            free(x);
            return ns_cli_usage_error("invalid option");
        }
        if (e != NS_OK) {
            free(x);
            return ns_cli_usage_error("%s", ns_err_msg());
        }
    }
    if (argc - optind != 1) {
        free(x);
        return ns_cli_usage_error("expected one DOC (a file, or - for standard input)");
    }
    f.doc_file = argv[optind];
    int rc = NS_EXIT_FAIL;
    e = load_expect(x, &f);
    /* --pcr after every --pcrs file: a pin holds whichever image's set the document matches */
    for (int i = 0; e == NS_OK && i < f.npcr; i++) {
        if (ns_attest_expect_pcr(x, f.pcr[i]) != NS_OK) {
            free(x);
            return ns_cli_usage_error("%s", ns_err_msg());
        }
    }
    int pinned16 = ns_attest_expect_pins(x, 16);
    if (e == NS_OK && f.no_pcr16 && (pinned16 || f.cert_file == NULL)) {
        free(x);
        return ns_cli_usage_error(pinned16 ? "--no-pcr16 with PCR16 pinned: give one or the other"
                                           : "--no-pcr16 goes with --public-key-of");
    }
    if (e == NS_OK && f.cert_file != NULL && !pinned16 && !f.no_pcr16) {
        free(x);
        return ns_cli_usage_error(
            "--public-key-of (checking a sign-service) without PCR16: add --pcr 16=HEX (what "
            "the enclave measured from the age key, keys file and configuration: run-enclave "
            "logs it as `expected pcr16=`), or --no-pcr16 to accept whatever the host loaded");
    }
    if (e == NS_OK && f.no_pcr16) {
        ns_warn("--no-pcr16: PCR16 is not checked, so this accepts the genuine image booted with "
                "any age key, keys file and configuration the host chose");
    }
    if (e != NS_OK) {
        ns_log_err(e, "expectations");
    } else {
        rc = run(x, &f);
    }
    free(x);
    return rc;
}
