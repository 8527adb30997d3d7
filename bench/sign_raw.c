/*
 * sign_raw: signatures per second on THREADS threads for SECONDS, with the same calls the
 * service makes per request (ns_signkey_sign: libsodium for Ed25519; libsecp256k1 for secp256k1
 * and mbedtls for P-256, RFC 6979, low-S and the recovery id). Used by bench/sign.sh; prints one
 * number.
 *   sign_raw ed25519|secp256k1|p256 THREADS SECONDS
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "signkeys.h"

static const char KEYS[] =
    "{\"version\":1,\"keys\":["
    "{\"id\":\"ed25519\",\"algorithm\":\"ed25519\","
    "\"private_key\":\"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=\"},"
    "{\"id\":\"secp256k1\",\"algorithm\":\"ecdsa-secp256k1\",\"private_key\":"
    "\"4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318\"},"
    "{\"id\":\"p256\",\"algorithm\":\"ecdsa-p256\",\"private_key\":"
    "\"c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721\"}]}";

static ns_signkeys *keys;
static const char *mode;
static double seconds;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *run(void *arg)
{
    uint64_t *count = arg;
    uint8_t msg[32] = "benchmark message, 32 bytes ...";
    double end = now() + seconds;
    while (now() < end) {
        for (int i = 0; i < 64; i++) {
            msg[0]++;
            ns_signature s;
            const ns_signkey *k = ns_signkeys_find(keys, mode);
            if (k == NULL || ns_signkey_sign(k, msg, sizeof msg, 1, NULL, 0, &s) != NS_OK) {
                abort();
            }
        }
        *count += 64;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: sign_raw ed25519|secp256k1|p256 THREADS SECONDS\n");
        return 2;
    }
    mode = argv[1];
    int threads = atoi(argv[2]);
    seconds = atof(argv[3]);
    if (ns_signkeys_load(&keys, (const uint8_t *)KEYS, sizeof KEYS - 1) != NS_OK) {
        fprintf(stderr, "sign_raw: cannot load keys\n");
        return 1;
    }
    pthread_t tid[256];
    uint64_t counts[256] = {0};
    double t0 = now();
    for (int i = 0; i < threads && i < 256; i++) {
        pthread_create(&tid[i], NULL, run, &counts[i]);
    }
    uint64_t total = 0;
    for (int i = 0; i < threads && i < 256; i++) {
        pthread_join(tid[i], NULL);
        total += counts[i];
    }
    printf("%.0f\n", (double)total / (now() - t0));
    ns_signkeys_free(keys);
    return 0;
}
