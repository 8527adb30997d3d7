/*
 * test_attest_alt: several accepted PCR sets (issue 23: during a rolling upgrade a client
 * accepts the old and the new image). A document passes when its PCRs match one set whole:
 * the first, or any alternative from ns_attest_expect_alt; never a mix of two sets; at most
 * 1 + NS_ATTEST_ALT_MAX sets; the error names the first set's mismatch.
 */
#include <string.h>

#include "attest.h"
#include "err.h"
#include "t.h"

static uint8_t v_old0[48], v_old1[48], v_new0[48], v_new1[48];

static void doc_with(ns_att_doc *d, const uint8_t *p0, const uint8_t *p1)
{
    memset(d, 0, sizeof *d);
    d->npcr = 16;
    for (int i = 0; i < 16; i++) {
        static const uint8_t zero[48];
        d->pcr[i] = (ns_att_bytes){zero, 48, 1};
    }
    d->pcr[0] = (ns_att_bytes){p0, 48, 1};
    d->pcr[1] = (ns_att_bytes){p1, 48, 1};
}

static void hex(char *out, const uint8_t *v)
{
    for (int i = 0; i < 48; i++) {
        sprintf(out + 2 * i, "%02x", v[i]);
    }
}

/* A measurements.json with PCR0 and PCR1. */
static size_t meas(char *out, size_t cap, const uint8_t *p0, const uint8_t *p1)
{
    char a[97], b[97];
    hex(a, p0);
    hex(b, p1);
    return (size_t)snprintf(
        out, cap,
        "{\"Measurements\":{\"HashAlgorithm\":\"Sha384 { ... }\",\"PCR0\":\"%s\","
        "\"PCR1\":\"%s\"}}",
        a, b);
}

int main(void)
{
    memset(v_old0, 0x10, 48);
    memset(v_old1, 0x11, 48);
    memset(v_new0, 0x20, 48);
    memset(v_new1, 0x21, 48);
    char j_old[512], j_new[512];
    size_t n_old = meas(j_old, sizeof j_old, v_old0, v_old1);
    size_t n_new = meas(j_new, sizeof j_new, v_new0, v_new1);
    static ns_attest_expect x;
    ns_att_doc d;
    ns_attest_expect_init(&x);
    CHECK(ns_attest_expect_alt(&x, (const uint8_t *)j_old, n_old) == NS_OK && x.nalt == 0,
          "the first set fills the expectation itself");
    doc_with(&d, v_new0, v_new1);
    CHECK(ns_attest_check(&d, &x) == NS_E_AUTH, "one set: the new image is refused");
    CHECK(ns_attest_expect_alt(&x, (const uint8_t *)j_new, n_new) == NS_OK && x.nalt == 1,
          "a second set is an alternative");
    CHECK(ns_attest_check(&d, &x) == NS_OK, "two sets: the new image passes");
    doc_with(&d, v_old0, v_old1);
    CHECK(ns_attest_check(&d, &x) == NS_OK, "two sets: the old image passes");
    doc_with(&d, v_old0, v_new1);
    ns_err e = ns_attest_check(&d, &x);
    CHECK(e == NS_E_AUTH && strstr(ns_err_msg(), "check pcr1 failed") &&
              strstr(ns_err_msg(), "no other accepted set of PCRs (1 more)"),
          "a mix of the two sets is refused, naming the first set's mismatch (%s)", ns_err_msg());
    uint8_t other[48];
    memset(other, 0x30, 48);
    doc_with(&d, other, v_new1);
    CHECK(ns_attest_check(&d, &x) == NS_E_AUTH, "a third image is refused");
    for (int i = 1; i < NS_ATTEST_ALT_MAX; i++) {
        CHECK(ns_attest_expect_alt(&x, (const uint8_t *)j_new, n_new) == NS_OK, "set %d", i + 2);
    }
    CHECK(ns_attest_expect_alt(&x, (const uint8_t *)j_new, n_new) == NS_E_USAGE, "at most %d sets",
          NS_ATTEST_ALT_MAX + 1);
    CHECK(ns_attest_expect_alt(&x, (const uint8_t *)"{", 1) != NS_OK || x.nalt == NS_ATTEST_ALT_MAX,
          "a broken file adds no set");
    T_DONE();
}
