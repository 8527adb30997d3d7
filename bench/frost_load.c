/*
 * frost_load: the load generator of bench/frost.sh. THREADS threads each run frost-sign's engine
 * (src/service/frostcoord.c over signclient.c: mutual TLS, attestation checked, commitments
 * fetched in batches of BATCH) against the given signers, signing for SECONDS; then the same
 * threads do single-key Ed25519 Sign calls through the same client code on the same service, for
 * the same time. Prints signatures/s, p50 and p99 per mode. Numbers only, no pass/fail.
 *
 * usage: frost_load --key ID --sign-key ID --signer ADDR [--signer ADDR]...
 *                   [--threads N] [--seconds S] [--batch B] and nsign sign's connection and
 *                   attestation options (signclient.h: --cert, --client-key, --root, --expect or
 *                   --pcr 0=HEX, --pcr 16=HEX or --no-pcr16, --min-policy-epoch, ...)
 */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attest.h"
#include "buf.h"
#include "frostcoord.h"
#include "iox.h"
#include "log.h"
#include "secret.h"
#include "signclient.h"

#define SIGNERS_MAX 8
#define THREADS_MAX 64

static ns_signclient_opts sc;
static ns_signclient_files files;
static ns_attest_expect expect;

static struct {
    const char *key, *sign_key;
    const char *signers[SIGNERS_MAX];
    int nsigners, threads, seconds, batch, mode; /* mode 0 frost, 1 plain Sign */
} opt = {.threads = 8, .seconds = 10, .batch = 64};
static double t_end;

typedef struct {
    double *lat;
    size_t n, cap;
    unsigned long errors;
} result;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void record(result *r, double v)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 4096;
        r->lat = realloc(r->lat, r->cap * sizeof *r->lat);
        if (r->lat == NULL) {
            abort();
        }
    }
    r->lat[r->n++] = v;
}

static ns_err connect_one(ns_signclient **c, const char *addr)
{
    ns_addr a;
    ns_att_doc d;
    ns_attest_expect x = expect;
    size_t root_len = 0;
    const uint8_t *root = ns_signclient_files_root(&files, &root_len);
    GUARD(ns_addr_parse(&a, addr));
    GUARD(ns_signclient_open(c, &a, files.cert.data, files.cert.len, files.key.data, files.key.len,
                             sc.timeout_ms));
    return ns_signclient_attest(*c, &x, root, root_len, &sc.policy, &d, NULL);
}

static void *worker(void *arg)
{
    result *r = arg;
    ns_signclient *c[SIGNERS_MAX] = {0};
    ns_frostcoord_party p[SIGNERS_MAX];
    ns_frostcoord *co = NULL;
    const uint8_t msg[] = "transfer 10 to bob";
    int n = opt.mode == 0 ? opt.nsigners : 1;
    for (int i = 0; i < n; i++) {
        if (connect_one(&c[i], opt.signers[i]) != NS_OK) {
            fprintf(stderr, "frost_load: %s: %s\n", opt.signers[i], ns_err_msg());
            exit(1);
        }
        ns_signclient_frost_party(&p[i], c[i]);
    }
    if (opt.mode == 0 &&
        ns_frostcoord_new(&co, opt.key, p, (size_t)n, (unsigned)opt.batch, NULL) != NS_OK) {
        fprintf(stderr, "frost_load: %s\n", ns_err_msg());
        exit(1);
    }
    while (now() < t_end) {
        double t0 = now();
        ns_err e;
        if (opt.mode == 0) {
            uint8_t sig[NS_FROST_SIG_MAX];
            size_t sl;
            e = ns_frostcoord_sign(co, msg, sizeof msg, sig, &sl);
        } else {
            ns_signclient_sig s;
            e = ns_signclient_sign(c[0], opt.sign_key, msg, sizeof msg, NULL, 0, &s);
        }
        if (e == NS_OK) {
            record(r, now() - t0);
        } else {
            r->errors++;
        }
    }
    ns_frostcoord_free(co);
    for (int i = 0; i < n; i++) {
        ns_signclient_close(c[i]);
    }
    return NULL;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void run(const char *label)
{
    pthread_t th[THREADS_MAX];
    result r[THREADS_MAX];
    memset(r, 0, sizeof r);
    double t0 = now();
    t_end = t0 + opt.seconds;
    for (int i = 0; i < opt.threads; i++) {
        pthread_create(&th[i], NULL, worker, &r[i]);
    }
    result all = {0};
    for (int i = 0; i < opt.threads; i++) {
        pthread_join(th[i], NULL);
        for (size_t k = 0; k < r[i].n; k++) {
            record(&all, r[i].lat[k]);
        }
        all.errors += r[i].errors;
        free(r[i].lat);
    }
    double el = now() - t0;
    qsort(all.lat, all.n, sizeof *all.lat, cmp_d);
    double p50 = all.n ? all.lat[all.n / 2] : 0, p99 = all.n ? all.lat[all.n * 99 / 100] : 0;
    printf("%-28s %8.0f sig/s  p50 %6.2f ms  p99 %6.2f ms  (%zu signatures, %lu errors, %d "
           "threads)\n",
           label, (double)all.n / el, p50 * 1e3, p99 * 1e3, all.n, all.errors, opt.threads);
    fflush(stdout);
    free(all.lat);
}

/* The FROST computations alone, in process, one thread: two participants' round one and two and
 * the coordinator's aggregation (every share verified, then the signature): the CPU floor of
 * one 2-of-n signature, whatever the transport. */
static void crypto_only(void)
{
    ns_frost_group g;
    uint8_t sh[3 * NS_FROST_SCALAR_LEN];
    ns_frost_key k[2];
    ns_frost_nonces nn[2];
    ns_frost_commitment l[2];
    ns_frost_share s[2];
    uint8_t sig[NS_FROST_SIG_MAX];
    size_t sl;
    const uint8_t msg[] = "transfer 10 to bob";
    double tr = 0, ta = 0;
    int n = 0;
    if (ns_frost_keygen(NS_FROST_ED25519_SHA512, 2, 3, sh, &g, NULL) != NS_OK ||
        ns_frost_key_init(&k[0], &g, 1, sh) != NS_OK ||
        ns_frost_key_init(&k[1], &g, 2, sh + NS_FROST_SCALAR_LEN) != NS_OK) {
        fprintf(stderr, "frost_load: keygen: %s\n", ns_err_msg());
        exit(1);
    }
    double end = now() + 2;
    while (now() < end) {
        double t0 = now();
        for (int i = 0; i < 2; i++) {
            if (ns_frost_commit(&k[i], &nn[i]) != NS_OK) {
                exit(1);
            }
            l[i] = nn[i].commitment;
        }
        for (int i = 0; i < 2; i++) {
            if (ns_frost_sign(&k[i], &nn[i], msg, sizeof msg, l, 2, &s[i]) != NS_OK) {
                exit(1);
            }
        }
        double t1 = now();
        if (ns_frost_aggregate(&g, msg, sizeof msg, l, 2, s, sig, &sl, NULL) != NS_OK) {
            exit(1);
        }
        ta += now() - t1;
        tr += t1 - t0;
        n++;
    }
    printf("FROST crypto alone, 1 thread: %.2f ms per signature (participants' rounds %.2f ms, "
           "coordinator's share checks + aggregate %.2f ms)\n",
           (tr + ta) / n * 1e3, tr / n * 1e3, ta / n * 1e3);
    ns_frost_key_free(&k[0]);
    ns_frost_key_free(&k[1]);
    ns_frost_group_free(&g);
}

int main(int argc, char **argv)
{
    enum { O_KEY = 256, O_SIGN_KEY, O_SIGNER, O_THREADS, O_SECONDS, O_BATCH };
    static const struct option lo[] = {
        {"key", required_argument, NULL, O_KEY},
        {"sign-key", required_argument, NULL, O_SIGN_KEY},
        {"signer", required_argument, NULL, O_SIGNER},
        {"threads", required_argument, NULL, O_THREADS},
        {"seconds", required_argument, NULL, O_SECONDS},
        {"batch", required_argument, NULL, O_BATCH},
        NS_SIGNCLIENT_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    ns_signclient_opts_init(&sc);
    int ch, idx = 0, bad = 0;
    while (!bad && (ch = getopt_long(argc, argv, "", lo, &idx)) != -1) {
        switch (ch) {
        case NS_SIGNCLIENT_OPT:
            if (ns_signclient_opt(&sc, lo[idx].name, optarg) != NS_OK) {
                fprintf(stderr, "frost_load: %s\n", ns_err_msg());
                return 2;
            }
            break;
        case O_KEY:
            opt.key = optarg;
            break;
        case O_SIGN_KEY:
            opt.sign_key = optarg;
            break;
        case O_SIGNER:
            bad = opt.nsigners == SIGNERS_MAX;
            opt.signers[opt.nsigners < SIGNERS_MAX ? opt.nsigners++ : 0] = optarg;
            break;
        case O_THREADS:
            opt.threads = atoi(optarg);
            break;
        case O_SECONDS:
            opt.seconds = atoi(optarg);
            break;
        case O_BATCH:
            opt.batch = atoi(optarg);
            break;
        default:
            bad = 1;
        }
    }
    if (bad || optind != argc || !opt.key || !opt.sign_key || opt.nsigners < 1 || opt.threads < 1 ||
        opt.threads > THREADS_MAX || ns_signclient_opts_check(&sc) != NS_OK) {
        fprintf(stderr, "usage: frost_load --key ID --sign-key ID --signer ADDR... [--threads N] "
                        "[--seconds S] [--batch B] --cert C --client-key K [--root PEM] "
                        "(--expect F | --pcr 0=HEX) (--pcr 16=HEX | --no-pcr16) ...\n");
        return 2;
    }
    ns_attest_expect_init(&expect);
    if (ns_signclient_opts_expect(&sc, &expect) != NS_OK ||
        ns_signclient_files_load(&files, &sc) != NS_OK) {
        fprintf(stderr, "frost_load: %s\n", ns_err_msg());
        return 2;
    }
    ns_log_set_level(NS_LOG_ERROR);
    char label[64];
    snprintf(label, sizeof label, "FROST %d-signer (batch %d)", opt.nsigners, opt.batch);
    opt.mode = 0;
    run(label);
    opt.mode = 1;
    run("Ed25519 Sign (single key)");
    crypto_only();
    return 0;
}
