/*
 * sign_ref_secp256k1: libsecp256k1's recoverable ECDSA signatures per second on THREADS
 * threads: the reference bench/sign.sh compares the sign-service's secp256k1 rate with (the
 * same library nsign links: build/deps, from Debian's source). Prints one number.
 *   sign_ref_secp256k1 THREADS SECONDS
 */
#include <pthread.h>
#include <secp256k1.h>
#include <secp256k1_recovery.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double secs;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void *run(void *arg)
{
    unsigned long long *n = arg;
    unsigned char sk[32] = {0x4c, 0x08, 0x83, 0xa6, 1, 2, 3}, m[32] = {1};
    secp256k1_context *c = secp256k1_context_create(SECP256K1_CONTEXT_SIGN);
    double end = now() + secs;
    while (now() < end) {
        for (int i = 0; i < 64; i++) {
            secp256k1_ecdsa_recoverable_signature s;
            m[0]++;
            if (!secp256k1_ecdsa_sign_recoverable(c, &s, m, sk, NULL, NULL)) {
                abort();
            }
        }
        *n += 64;
    }
    secp256k1_context_destroy(c);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: sign_ref_secp256k1 THREADS SECONDS\n");
        return 2;
    }
    int t = atoi(argv[1]);
    secs = atof(argv[2]);
    pthread_t id[256];
    unsigned long long n[256] = {0}, tot = 0;
    double t0 = now();
    for (int i = 0; i < t && i < 256; i++) {
        pthread_create(&id[i], NULL, run, &n[i]);
    }
    for (int i = 0; i < t && i < 256; i++) {
        pthread_join(id[i], NULL);
        tot += n[i];
    }
    printf("%.0f\n", (double)tot / (now() - t0));
    return 0;
}
