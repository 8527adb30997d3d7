/*
 * Unit tests for signclient's commitment checks (ns_signclient_check_commitments): user_data
 * recomputed from the Attest answer's keys commitment and its parts (audit.h, signkeys.h), and
 * the client's policy demands: client authentication, a minimum policy_epoch, an exact policy.
 * Then the shared client options (ns_signclient_opt, ns_signclient_opts_expect): the policy they
 * build and the PCR0 / PCR16 pins they demand. The TLS and gRPC path is tested against the real
 * binary in test/it/test_sign_tls.py.
 */
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "signclient.h"
#include "t.h"

typedef struct {
    uint8_t key_set[32], policy[32], keys[32], audit[32], ud[32];
    ns_signclient_commitments c;
} answer;

/* A consistent answer: epoch, client_auth, with or without an audit key. */
static void make(answer *a, uint64_t epoch, int client_auth, int audit)
{
    memset(a, 0, sizeof *a);
    memset(a->key_set, 0x11, 32);
    memset(a->policy, 0x22, 32);
    memset(a->audit, 0x33, 32);
    ns_audit_keys_commitment(a->keys, a->key_set, a->policy, epoch, client_auth);
    if (audit) {
        ns_audit_user_data_v2(a->ud, a->keys, a->audit);
    } else {
        memcpy(a->ud, a->keys, 32);
    }
    a->c = (ns_signclient_commitments){.user_data = a->ud,
                                       .user_data_len = 32,
                                       .keys = a->keys,
                                       .keys_len = 32,
                                       .key_set = a->key_set,
                                       .key_set_len = 32,
                                       .policy = a->policy,
                                       .policy_len = 32,
                                       .audit_pub = audit ? a->audit : NULL,
                                       .audit_pub_len = audit ? 32 : 0,
                                       .policy_epoch = epoch,
                                       .client_auth = client_auth};
}

static ns_err check(const answer *a, const uint8_t *doc_ud, const ns_signclient_policy *w)
{
    return ns_signclient_check_commitments(&a->c, doc_ud, 32, w);
}

int main(void)
{
    ns_signclient_policy any = {0};
    answer a;
    uint8_t other[32];
    memset(other, 0x44, 32);

    make(&a, 3, 1, 0);
    CHECK_ERR(check(&a, a.ud, &any), NS_OK, "no audit trail: user_data = keys commitment");
    make(&a, 3, 1, 1);
    CHECK_ERR(check(&a, a.ud, &any), NS_OK, "audit trail: user_data = v2(keys, audit key)");
    CHECK_ERR(check(&a, a.keys, &any), NS_E_AUTH,
              "audit trail: a document whose user_data lacks the audit key is refused");
    CHECK_ERR(check(&a, other, &any), NS_E_AUTH, "another user_data in the document: refused");
    CHECK(strstr(ns_err_msg(), "check user_data failed") != NULL, "... named: %s", ns_err_msg());
    CHECK_ERR(ns_signclient_check_commitments(&a.c, NULL, 0, &any), NS_E_AUTH,
              "a document without user_data: refused");

    /* The server lies about a part: the keys commitment no longer recomputes. */
    make(&a, 3, 1, 0);
    a.c.policy_epoch = 4;
    CHECK_ERR(check(&a, a.ud, &any), NS_E_AUTH, "a claimed epoch not in the commitment: refused");
    make(&a, 3, 0, 0);
    a.c.client_auth = 1;
    CHECK_ERR(check(&a, a.ud, &any), NS_E_AUTH,
              "a claimed client-auth not in the commitment: refused");
    make(&a, 3, 1, 0);
    a.c.policy = other;
    CHECK_ERR(check(&a, a.ud, &any), NS_E_AUTH, "a swapped policy commitment: refused");
    make(&a, 3, 1, 0);
    a.c.user_data = other;
    CHECK_ERR(check(&a, a.ud, &any), NS_E_AUTH, "the answer's user_data differs: refused");

    /* Demands. */
    make(&a, 3, 0, 0);
    CHECK_ERR(check(&a, a.ud, &any), NS_E_AUTH, "an anonymous service (version 1): refused");
    CHECK(strstr(ns_err_msg(), "without client pinning") != NULL, "... named: %s", ns_err_msg());
    ns_signclient_policy anon = {.allow_anonymous = 1};
    CHECK_ERR(check(&a, a.ud, &anon), NS_OK, "... accepted with allow_anonymous");
    make(&a, 3, 1, 1);
    ns_signclient_policy ep = {.min_policy_epoch = 4};
    CHECK_ERR(check(&a, a.ud, &ep), NS_E_AUTH, "policy_epoch 3 < 4: refused");
    CHECK(strstr(ns_err_msg(), "policy_epoch 3 is below 4") != NULL, "... named: %s", ns_err_msg());
    ep.min_policy_epoch = 3;
    CHECK_ERR(check(&a, a.ud, &ep), NS_OK, "policy_epoch 3 >= 3: accepted");
    ns_signclient_policy pol = {.policy_set = 1};
    memset(pol.policy_commitment, 0x22, 32);
    CHECK_ERR(check(&a, a.ud, &pol), NS_OK, "the expected policy commitment: accepted");
    pol.policy_commitment[31] ^= 1;
    CHECK_ERR(check(&a, a.ud, &pol), NS_E_AUTH, "another policy commitment: refused");

    /* An older server: no commitment at all. */
    make(&a, 0, 1, 0);
    a.c.keys_len = a.c.key_set_len = a.c.policy_len = 0;
    CHECK_ERR(check(&a, other, &any), NS_OK, "no keys commitment, no demand: nothing to check");
    CHECK_ERR(check(&a, other, &ep), NS_E_AUTH,
              "no keys commitment with --min-policy-epoch: refused");
    make(&a, 0, 1, 0);
    a.c.keys_len = 31;
    CHECK_ERR(check(&a, a.ud, &any), NS_E_AUTH, "a keys commitment of 31 bytes: refused");

    /* The shared client options: the policy they build, and what must be pinned. */
    ns_signclient_opts o;
    ns_signclient_opts_init(&o);
    CHECK_ERR(ns_signclient_opt(&o, "min-policy-epoch", "7"), NS_OK, "--min-policy-epoch 7");
    CHECK(o.policy.min_policy_epoch == 7, "... in the policy");
    CHECK_ERR(ns_signclient_opt(&o, "min-policy-epoch", "4294967296"), NS_E_USAGE,
              "--min-policy-epoch 2^32: usage error");
    CHECK_ERR(ns_signclient_opt(&o, "policy-commitment", "2222"), NS_E_USAGE,
              "--policy-commitment of 2 bytes: usage error");
    char hex[65];
    memset(hex, '2', 64);
    hex[64] = 0;
    CHECK_ERR(ns_signclient_opt(&o, "policy-commitment", hex), NS_OK, "--policy-commitment");
    CHECK(o.policy.policy_set && memcmp(o.policy.policy_commitment, pol.policy_commitment, 31) == 0,
          "... in the policy");
    CHECK_ERR(ns_signclient_opt(&o, "allow-anonymous-service", NULL), NS_OK,
              "--allow-anonymous-service");
    CHECK(o.policy.allow_anonymous, "... in the policy");
    static ns_attest_expect x;
    ns_attest_expect_init(&x);
    CHECK_ERR(ns_signclient_opts_expect(&o, &x), NS_E_USAGE, "nothing pinned: usage error");
    CHECK(strstr(ns_err_msg(), "PCR0 is not pinned") != NULL, "... PCR0 named: %s", ns_err_msg());
    char pcr0[64 + 48 * 2];
    snprintf(pcr0, sizeof pcr0, "0=%096d", 0);
    CHECK_ERR(ns_signclient_opt(&o, "pcr", pcr0), NS_OK, "--pcr 0=HEX");
    ns_attest_expect_init(&x);
    CHECK_ERR(ns_signclient_opts_expect(&o, &x), NS_E_USAGE, "PCR16 neither pinned nor waived");
    CHECK(strstr(ns_err_msg(), "PCR16 is not pinned: add --pcr 16=HEX") != NULL, "... named: %s",
          ns_err_msg());
    CHECK_ERR(ns_signclient_opt(&o, "no-pcr16", NULL), NS_OK, "--no-pcr16");
    ns_attest_expect_init(&x);
    CHECK_ERR(ns_signclient_opts_expect(&o, &x), NS_OK, "PCR16 waived: accepted (warned)");
    CHECK(strcmp(ns_signclient_opts_pcr16(&o), "unchecked") == 0, "... logged as unchecked");
    char pcr16[64 + 48 * 2];
    snprintf(pcr16, sizeof pcr16, "16=%096d", 0);
    CHECK_ERR(ns_signclient_opt(&o, "pcr", pcr16), NS_OK, "--pcr 16=HEX");
    ns_attest_expect_init(&x);
    CHECK_ERR(ns_signclient_opts_expect(&o, &x), NS_E_USAGE, "--pcr 16 with --no-pcr16");
    o.no_pcr16 = 0;
    ns_attest_expect_init(&x);
    CHECK_ERR(ns_signclient_opts_expect(&o, &x), NS_OK, "PCR0 and PCR16 pinned: accepted");
    CHECK(strcmp(ns_signclient_opts_pcr16(&o), "pinned") == 0, "... logged as pinned");
    T_DONE();
}
