/*
 * Unit tests for nsm: the client against the software NSM (test/it/fakes/nsm_fake.py, started
 * here on a temporary unix socket): GetRandom, Attestation binding a public key (the document
 * verifies against the fake's test root), NSM errors, bad NSM_DEVICE values, and no device.
 */
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cose.h"
#include "iox.h"
#include "mbedtls/sha512.h"
#include "nsm.h"
#include "t.h"

static char dir[64];

static pid_t start_fake(const char *sock, const char *extra)
{
    pid_t pid = fork();
    if (pid == 0) {
        char cadir[128];
        snprintf(cadir, sizeof cadir, "%s/ca", dir);
        if (extra != NULL) {
            execl("/usr/bin/python3", "python3", "test/it/fakes/nsm_fake.py", "--socket", sock,
                  "--ca-dir", cadir, "--error", extra, (char *)NULL);
        } else {
            execl("/usr/bin/python3", "python3", "test/it/fakes/nsm_fake.py", "--socket", sock,
                  "--ca-dir", cadir, (char *)NULL);
        }
        _exit(127);
    }
    struct stat st;
    for (int i = 0; i < 300; i++) { /* at most 30 s for python to import and listen */
        if (stat(sock, &st) == 0) {
            return pid;
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            return -1;
        }
        usleep(100000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static void stop_fake(pid_t pid)
{
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/nsign-test-nsm-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        CHECK(0, "mkdtemp");
        T_DONE();
    }
    char sock[128], spec[160], errsock[128], errspec[160], rootpath[160];
    snprintf(sock, sizeof sock, "%s/nsm.sock", dir);
    snprintf(spec, sizeof spec, "unix:%s", sock);
    snprintf(errsock, sizeof errsock, "%s/nsm-err.sock", dir);
    snprintf(errspec, sizeof errspec, "unix:%s", errsock);
    snprintf(rootpath, sizeof rootpath, "%s/ca/root.der", dir);

    unsetenv("NSM_DEVICE");
    if (access("/dev/nsm", F_OK) != 0) {
        uint8_t r[8];
        ns_buf doc;
        ns_buf_init(&doc, 16384);
        CHECK(!ns_nsm_available(), "no NSM outside an enclave");
        CHECK_ERR(ns_nsm_random(r, sizeof r), NS_E_UNAVAILABLE, "GetRandom without a device");
        CHECK_ERR(ns_nsm_attest(&doc, NULL, 0, NULL, 0, NULL, 0), NS_E_UNAVAILABLE,
                  "Attestation without a device");
        ns_buf_free(&doc);
    } else {
        printf("ok - no-device checks # SKIP /dev/nsm exists here\n");
    }

    pid_t pid = start_fake(sock, NULL);
    if (pid < 0) {
        CHECK(0, "software NSM started (needs /usr/bin/python3 with cbor2 and cryptography)");
        T_DONE();
    }
    setenv("NSM_DEVICE", spec, 1);
    CHECK(ns_nsm_available(), "NSM_DEVICE makes the NSM available");

    uint8_t r1[300], r2[300];
    CHECK_ERR(ns_nsm_random(r1, sizeof r1), NS_OK, "GetRandom 300 bytes (two calls)");
    CHECK_ERR(ns_nsm_random(r2, sizeof r2), NS_OK, "GetRandom again");
    CHECK(memcmp(r1, r2, sizeof r1) != 0, "two GetRandom results differ");

    uint8_t pk[294], ud[13] = "Hello World!\n", nonce[1024];
    memset(pk, 0x42, sizeof pk);
    memset(nonce, 0x07, sizeof nonce);
    ns_buf doc, root;
    ns_att_doc d;
    ns_buf_init(&doc, 16384);
    ns_buf_init(&root, 65536);
    CHECK_ERR(ns_nsm_attest(&doc, ud, sizeof ud, nonce, sizeof nonce, pk, sizeof pk), NS_OK,
              "Attestation with user_data, 1024-byte nonce and public_key");
    CHECK(ns_read_path(rootpath, &root) == NS_OK, "read the fake's test root");
    CHECK_ERR(ns_att_verify(&d, doc.data, doc.len, root.data, root.len), NS_OK,
              "document verifies against the test root");
    CHECK(d.public_key.len == sizeof pk && memcmp(d.public_key.p, pk, sizeof pk) == 0,
          "document binds the public key");
    CHECK(d.user_data.len == sizeof ud && d.nonce.len == sizeof nonce, "user_data and nonce bound");
    ns_buf_reset(&doc);
    CHECK_ERR(ns_nsm_attest(&doc, NULL, 0, NULL, 0, pk, sizeof pk), NS_OK,
              "Attestation with only a public key (nulls elsewhere)");
    CHECK_ERR(ns_att_verify(&d, doc.data, doc.len, root.data, root.len), NS_OK,
              "second document verifies");
    CHECK(!d.user_data.present && !d.nonce.present, "null user_data and nonce");
    /* PCRs with the real semantics: 0-15 locked at boot, SHA-384(old || data), LockPCR. */
    uint8_t v[NS_NSM_PCR_LEN], want[64], buf[NS_NSM_PCR_LEN], zero[48] = {0};
    int locked = -1;
    CHECK_ERR(ns_nsm_describe_pcr(0, &locked, v), NS_OK, "DescribePCR 0");
    CHECK(locked == 1, "PCR0 is locked at boot");
    CHECK_ERR(ns_nsm_describe_pcr(16, &locked, v), NS_OK, "DescribePCR 16");
    CHECK(locked == 0 && memcmp(v, zero, 48) == 0, "PCR16 starts unlocked and zero");
    static const uint8_t m1[] = "first input", m2[] = "second input";
    CHECK_ERR(ns_nsm_extend_pcr(16, m1, sizeof m1, v), NS_OK, "ExtendPCR 16");
    {
        uint8_t tmp[48 + sizeof m1];
        memset(tmp, 0, 48);
        memcpy(tmp + 48, m1, sizeof m1);
        mbedtls_sha512_ret(tmp, sizeof tmp, want, 1);
    }
    CHECK(memcmp(v, want, 48) == 0, "PCR16 = SHA-384(0^48 || data)");
    CHECK_ERR(ns_nsm_extend_pcr(16, m2, sizeof m2, v), NS_OK, "ExtendPCR 16 again");
    {
        uint8_t tmp[48 + sizeof m2];
        memcpy(tmp, want, 48);
        memcpy(tmp + 48, m2, sizeof m2);
        mbedtls_sha512_ret(tmp, sizeof tmp, want, 1);
    }
    CHECK(memcmp(v, want, 48) == 0, "PCR16 = SHA-384(PCR16 || data), chained");
    CHECK_ERR(ns_nsm_extend_pcr(0, m1, sizeof m1, v), NS_E_DENIED,
              "ExtendPCR 0 refused (locked at boot)");
    CHECK(strstr(ns_err_msg(), "ReadOnlyIndex") != NULL, "with the NSM's ReadOnlyIndex");
    CHECK_ERR(ns_nsm_lock_pcr(16), NS_OK, "LockPCR 16");
    CHECK_ERR(ns_nsm_describe_pcr(16, &locked, buf), NS_OK, "DescribePCR 16 after the lock");
    CHECK(locked == 1 && memcmp(buf, want, 48) == 0, "PCR16 locked with its value");
    CHECK_ERR(ns_nsm_extend_pcr(16, m1, sizeof m1, v), NS_E_DENIED,
              "ExtendPCR of a locked PCR16 refused");
    CHECK_ERR(ns_nsm_lock_pcr(16), NS_E_DENIED, "LockPCR of a locked PCR refused (ReadOnlyIndex)");
    CHECK_ERR(ns_nsm_describe_pcr(32, &locked, v), NS_E_REMOTE, "DescribePCR 32: InvalidIndex");
    CHECK(strstr(ns_err_msg(), "InvalidIndex") != NULL, "error names InvalidIndex");
    ns_buf_reset(&doc);
    CHECK_ERR(ns_nsm_attest(&doc, NULL, 0, NULL, 0, pk, sizeof pk), NS_OK, "Attestation");
    CHECK_ERR(ns_att_verify(&d, doc.data, doc.len, root.data, root.len), NS_OK, "verifies");
    CHECK(d.npcr == 17 && d.pcr[16].present && d.pcr[16].len == 48 &&
              memcmp(d.pcr[16].p, want, 48) == 0,
          "the document carries the locked PCR16");

    ns_buf_reset(&doc);
    uint8_t big[1025] = {0};
    CHECK_ERR(ns_nsm_attest(&doc, NULL, 0, NULL, 0, big, sizeof big), NS_E_TOO_BIG,
              "1025-byte public key refused before sending");
    ns_buf_free(&root);

    pid_t epid = start_fake(errsock, "InvalidPCRIndex");
    CHECK(epid > 0, "error-mode software NSM started");
    setenv("NSM_DEVICE", errspec, 1);
    CHECK_ERR(ns_nsm_attest(&doc, NULL, 0, NULL, 0, pk, sizeof pk), NS_E_REMOTE,
              "NSM Error answer becomes NS_E_REMOTE");
    CHECK(strstr(ns_err_msg(), "InvalidPCRIndex") != NULL, "the NSM error code is in the message");
    stop_fake(epid);
    setenv("NSM_DEVICE", "tcp:127.0.0.1:1", 1);
    CHECK_ERR(ns_nsm_random(r1, 8), NS_E_USAGE, "NSM_DEVICE=tcp: refused");
    char gone[200];
    snprintf(gone, sizeof gone, "unix:%s/missing.sock", dir);
    setenv("NSM_DEVICE", gone, 1);
    CHECK(ns_nsm_random(r1, 8) != NS_OK, "missing socket fails");
    ns_buf_free(&doc);
    stop_fake(pid);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0, "cleanup");
    T_DONE();
}
