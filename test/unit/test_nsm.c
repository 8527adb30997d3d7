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
