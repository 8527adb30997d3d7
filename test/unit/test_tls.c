/* test_tls: trust stores (embedded Amazon roots, PEM bundles, refusals). Handshakes are tested
 * against real servers in test/it/test_tls.sh and test/it/test_s3_get.sh. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "t.h"
#include "tls.h"

extern const char ns_ca_roots_pem[];

int main(void)
{
    ns_tls_ca *ca = NULL;
    CHECK(ns_tls_ca_embedded(&ca) == NS_OK && ca != NULL, "embedded Amazon roots parse");
    ns_tls_ca_free(ca);
    int n = 0;
    for (const char *p = ns_ca_roots_pem; (p = strstr(p, "-----BEGIN CERTIFICATE-----")); p++) {
        n++;
    }
    CHECK(n == 5, "five embedded roots (Amazon Root CA 1-4, Starfield Services G2): %d", n);
    CHECK(strstr(ns_ca_roots_pem, "MIIDQTCCAimgAwIBAgITBmyfz5m/jAo54vB4ikPmljZbyjANBgkqhkiG9w0BAQsF") !=
              NULL,
          "Amazon Root CA 1 is the one in Mozilla's store");
    ca = NULL;
    if (access("/etc/ssl/certs/ca-certificates.crt", R_OK) == 0) {
        CHECK(ns_tls_ca_from_file(&ca, "/etc/ssl/certs/ca-certificates.crt") == NS_OK,
              "Debian's whole CA bundle parses");
        ns_tls_ca_free(ca);
    } else {
        printf("ok - Debian's whole CA bundle parses # SKIP no /etc/ssl/certs bundle here\n");
    }
    char path[64];
    snprintf(path, sizeof path, "/tmp/nsign-tls-%d.pem", (int)getpid());
    FILE *f = fopen(path, "w");
    fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n", f);
    fclose(f);
    ca = NULL;
    CHECK_ERR(ns_tls_ca_from_file(&ca, path), NS_E_TLS, "a broken PEM bundle is refused");
    CHECK(ca == NULL, "nothing returned on failure");
    f = fopen(path, "w");
    fclose(f);
    CHECK_ERR(ns_tls_ca_from_file(&ca, path), NS_E_TLS, "an empty bundle is refused");
    unlink(path);
    ns_err e = ns_tls_ca_from_file(&ca, "/nonexistent/bundle.pem");
    CHECK(e != NS_OK && strstr(ns_err_msg(), "/nonexistent/bundle.pem") != NULL,
          "a missing bundle is refused and named");
    ns_tls_ca_free(NULL);
    T_DONE();
}
