/*
 * signclient: see signclient.h. The TLS session comes from tls.c, the calls from h2client.c,
 * the document checks from attest.c; this file keeps them in the one order that is safe.
 */
#include "signclient.h"

#include <pb_decode.h>
#include <pb_encode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "audit.h"
#include "codec.h"
#include "grpc.h"
#include "h2client.h"
#include "iox.h"
#include "log.h"
#include "nsign.pb.h"
#include "rng.h"
#include "tls.h"

#define RESP_MAX (64u * 1024)
#define SIGN_REQ_MAX (NS_GRPC_MAX_MSG_DEFAULT + 256)

struct ns_signclient {
    ns_tls *tls;
    ns_h2c *h2;
    int timeout_ms;
    int attested;
    char server[NS_ADDR_STR_MAX];
    /* The last group a FrostCommit answer reported, validated (ns_frost_group_init: every point
     * and the polynomial): an answer repeating it byte for byte is not validated again. */
    ns_frost_group group;
    int group_ok;
};

/* The group of a FrostCommit answer equals c's validated one, byte for byte. */
static int group_known(const ns_signclient *c, ns_frost_suite suite, unsigned min, unsigned max,
                       const uint8_t *gpk, const uint8_t *shares)
{
    const ns_frost_group *g = &c->group;
    size_t el = ns_frost_element_len(suite);
    if (!c->group_ok || g->suite != suite || g->min_signers != min || g->max_signers != max ||
        memcmp(g->group_public_key, gpk, el) != 0) {
        return 0;
    }
    for (unsigned i = 0; i < max; i++) {
        if (memcmp(g->verifying_shares[i], shares + (size_t)i * el, el) != 0) {
            return 0;
        }
    }
    return 1;
}

static ns_err io_write(void *arg, const uint8_t *p, size_t n)
{
    ns_signclient *c = arg;
    return ns_tls_write(c->tls, p, n, c->timeout_ms);
}

static ns_err io_read(void *arg, uint8_t *p, size_t n, size_t *got)
{
    ns_signclient *c = arg;
    return ns_tls_read(c->tls, p, n, got, c->timeout_ms);
}

ns_err ns_signclient_open(ns_signclient **out, const ns_addr *a, const uint8_t *cert,
                          size_t cert_len, const uint8_t *key, size_t key_len, int timeout_ms)
{
    *out = NULL;
    ns_signclient *c = calloc(1, sizeof *c);
    ENSURE(c != NULL, NS_E_NOMEM, "out of memory");
    c->timeout_ms = timeout_ms;
    ns_addr_format(a, c->server, sizeof c->server);
    int fd = -1;
    ns_err e = ns_addr_connect(a, timeout_ms, &fd);
    if (e == NS_OK) {
        ns_tls_attested_opts o = {.server_name = "nsign-enclave",
                                  .cert_pem = cert,
                                  .cert_len = cert_len,
                                  .key_pem = key,
                                  .key_len = key_len};
        e = ns_tls_connect_attested(&c->tls, fd, &o, timeout_ms);
    }
    if (e == NS_OK) {
        ns_h2c_io io = {c, io_write, io_read};
        e = ns_h2c_new(&c->h2, &io, "nsign-enclave");
    }
    if (e != NS_OK) {
        ns_signclient_close(c);
        return ns_fail_ctx(e, "%s", c->server);
    }
    *out = c;
    return NS_OK;
}

static bool dec_bytes(pb_istream_t *is, const pb_field_t *f, void **arg)
{
    (void)f;
    ns_buf *b = *arg;
    size_t n = is->bytes_left;
    if (ns_buf_reserve(b, n) != NS_OK) {
        return false;
    }
    if (!pb_read(is, b->data + b->len, n)) {
        return false;
    }
    b->len += n;
    return true;
}

/* A unary call that must answer OK. */
static ns_err call_ok(ns_signclient *c, const char *path, const uint8_t *req, size_t len,
                      ns_buf *resp)
{
    int st = -1;
    char msg[NS_H2C_MSG_MAX];
    GUARD(ns_h2c_unary(c->h2, path, req, len, resp, &st, msg));
    /* UNAVAILABLE: the server did not take the call (a caller may retry it elsewhere). */
    ENSURE(st == 0,
           st == NS_GRPC_PERMISSION_DENIED ? NS_E_DENIED
           : st == NS_GRPC_UNAVAILABLE     ? NS_E_UNAVAILABLE
                                           : NS_E_REMOTE,
           "%s %s: %s: %s", c->server, path, ns_grpc_status_name(st), msg);
    return NS_OK;
}

static int has32(const uint8_t *p, size_t n)
{
    return p != NULL && n == 32;
}

ns_err ns_signclient_check_commitments(const ns_signclient_commitments *c, const uint8_t *doc_ud,
                                       size_t doc_ud_len, const ns_signclient_policy *want)
{
    int demands = want->min_policy_epoch > 0 || want->policy_set;
    if (c->keys_len == 0) {
        ENSURE(!demands, NS_E_AUTH,
               "check policy failed: the server returns no keys commitment (an older nsign), so "
               "its policy epoch and commitment cannot be checked");
        return NS_OK;
    }
    uint8_t want_ud[32], k[32];
    ENSURE(has32(c->keys, c->keys_len), NS_E_AUTH,
           "check user_data failed: keys_commitment of %zu bytes, expected 32", c->keys_len);
    ENSURE(c->audit_pub_len == 0 || has32(c->audit_pub, c->audit_pub_len), NS_E_AUTH,
           "check user_data failed: audit_public_key of %zu bytes, expected 32 or none",
           c->audit_pub_len);
    if (c->audit_pub_len == 32) {
        ns_audit_user_data_v2(want_ud, c->keys, c->audit_pub);
    } else {
        memcpy(want_ud, c->keys, 32);
    }
    ENSURE(doc_ud != NULL && doc_ud_len == 32 && sodium_memcmp(doc_ud, want_ud, 32) == 0, NS_E_AUTH,
           "check user_data failed: the document's user_data is not the commitment of the keys "
           "commitment (and audit key) the server returned: not the keys file it claims");
    ENSURE(c->user_data_len == 0 ||
               (c->user_data_len == 32 && sodium_memcmp(c->user_data, want_ud, 32) == 0),
           NS_E_AUTH, "check user_data failed: the answer's user_data differs from the document's");
    int parts = has32(c->key_set, c->key_set_len) && has32(c->policy, c->policy_len);
    ENSURE(parts || !demands, NS_E_AUTH,
           "check policy failed: the server returns no policy commitment to check the policy "
           "epoch and commitment against");
    if (!parts) {
        return NS_OK;
    }
    ns_audit_keys_commitment(k, c->key_set, c->policy, c->policy_epoch, c->client_auth);
    ENSURE(sodium_memcmp(k, c->keys, 32) == 0, NS_E_AUTH,
           "check user_data failed: keys_commitment is not the commitment of its parts "
           "(key set, policy, epoch %llu, client-auth %d)",
           (unsigned long long)c->policy_epoch, c->client_auth);
    ENSURE(c->client_auth || want->allow_anonymous, NS_E_AUTH,
           "check policy failed: the enclave serves a keys file without client pinning "
           "(version 1: anyone who reaches it can sign), perhaps an older file rolled back");
    ENSURE(c->policy_epoch >= want->min_policy_epoch, NS_E_AUTH,
           "check policy failed: the enclave's policy_epoch %llu is below %llu: an older keys "
           "file (rolled back?)",
           (unsigned long long)c->policy_epoch, (unsigned long long)want->min_policy_epoch);
    ENSURE(!want->policy_set || sodium_memcmp(c->policy, want->policy_commitment, 32) == 0,
           NS_E_AUTH,
           "check policy failed: the enclave's client policy is not the expected one "
           "(policy_commitment differs)");
    return NS_OK;
}

ns_err ns_signclient_attest(ns_signclient *c, ns_attest_expect *x, const uint8_t *root_der,
                            size_t root_len, const ns_signclient_policy *want, ns_att_doc *d,
                            uint64_t *epoch)
{
    static const ns_signclient_policy strict = {0};
    if (want == NULL) {
        want = &strict;
    }
    uint8_t nonce[NS_SIGNCLIENT_NONCE_LEN];
    GUARD(ns_rng_bytes(nonce, sizeof nonce));
    nsign_v1_AttestRequest q = nsign_v1_AttestRequest_init_zero;
    memcpy(q.nonce.bytes, nonce, sizeof nonce);
    q.nonce.size = sizeof nonce;
    uint8_t req[NS_SIGNCLIENT_NONCE_LEN + 16];
    pb_ostream_t os = pb_ostream_from_buffer(req, sizeof req);
    ENSURE(pb_encode(&os, nsign_v1_AttestRequest_fields, &q), NS_E_INTERNAL,
           "cannot encode AttestRequest");
    static __thread uint8_t docbuf[NS_ATT_DOC_MAX];
    ns_buf resp, doc;
    ns_buf_init(&resp, RESP_MAX);
    ns_buf_init(&doc, NS_ATT_DOC_MAX);
    ns_err e = call_ok(c, "/nsign.v1.Signer/Attest", req, os.bytes_written, &resp);
    nsign_v1_AttestResponse r = nsign_v1_AttestResponse_init_zero;
    r.attestation_document.funcs.decode = dec_bytes;
    r.attestation_document.arg = &doc;
    if (e == NS_OK) {
        pb_istream_t is = pb_istream_from_buffer(resp.data, resp.len);
        if (!pb_decode(&is, nsign_v1_AttestResponse_fields, &r)) {
            e = ns_fail(NS_E_PROTO, "%s: the Attest answer does not decode (%s)", c->server,
                        PB_GET_ERROR(&is));
        }
    }
    const uint8_t *peer = NULL;
    size_t peer_len = 0;
    if (e == NS_OK) {
        e = ns_tls_peer_cert(c->tls, &peer, &peer_len);
    }
    if (e == NS_OK &&
        (r.certificate.size != peer_len || memcmp(r.certificate.bytes, peer, peer_len) != 0)) {
        e = ns_fail(NS_E_AUTH,
                    "%s: the certificate Attest names is not the one that ended this TLS session "
                    "(a swapped or intercepted server): refusing to sign",
                    c->server);
    }
    if (e == NS_OK) {
        memcpy(x->nonce.val, nonce, sizeof nonce);
        x->nonce.len = sizeof nonce;
        x->nonce.set = 1;
        e = ns_attest_spki_of_cert(x->public_key.val, sizeof x->public_key.val, &x->public_key.len,
                                   peer, peer_len);
        x->public_key.set = e == NS_OK;
    }
    if (e == NS_OK && doc.len <= sizeof docbuf) {
        /* d slices the document: keep the bytes for the caller (this thread's copy). */
        memcpy(docbuf, doc.data, doc.len);
        e = ns_attest_verify(d, docbuf, doc.len, root_der, root_len, x);
        if (e == NS_OK) {
            ns_signclient_commitments cm = {.user_data = r.user_data.bytes,
                                            .user_data_len = r.user_data.size,
                                            .keys = r.keys_commitment.bytes,
                                            .keys_len = r.keys_commitment.size,
                                            .key_set = r.key_set_commitment.bytes,
                                            .key_set_len = r.key_set_commitment.size,
                                            .policy = r.policy_commitment.bytes,
                                            .policy_len = r.policy_commitment.size,
                                            .audit_pub = r.audit_public_key.bytes,
                                            .audit_pub_len = r.audit_public_key.size,
                                            .policy_epoch = r.policy_epoch,
                                            .client_auth = r.client_auth_required};
            e = ns_signclient_check_commitments(&cm, d->user_data.present ? d->user_data.p : NULL,
                                                d->user_data.len, want);
        }
        if (e != NS_OK) {
            e = ns_fail_ctx(e, "%s: the attestation does not hold: refusing to sign", c->server);
        } else if (epoch != NULL) {
            *epoch = r.policy_epoch;
        }
    } else if (e == NS_OK) {
        e = ns_fail(NS_E_TOO_BIG, "%s: attestation document of %zu bytes", c->server, doc.len);
    }
    ns_buf_free(&resp);
    ns_buf_free(&doc);
    c->attested = e == NS_OK;
    return e;
}

static const char *alg_name(nsign_v1_Algorithm a)
{
    switch (a) {
    case nsign_v1_Algorithm_ED25519:
        return "ed25519";
    case nsign_v1_Algorithm_ECDSA_P256:
        return "ecdsa-p256";
    case nsign_v1_Algorithm_ECDSA_SECP256K1:
        return "ecdsa-secp256k1";
    default:
        return "unknown";
    }
}

ns_err ns_signclient_sign(ns_signclient *c, const char *key_id, const uint8_t *msg, size_t msg_len,
                          const uint8_t *digest, size_t digest_len, ns_signclient_sig *out)
{
    ENSURE(c->attested, NS_E_DENIED,
           "%s: not attested: nothing is sent to sign before the attestation verified", c->server);
    ENSURE(strlen(key_id) < 65, NS_E_USAGE, "key id of %zu characters (max 64)", strlen(key_id));
    memset(out, 0, sizeof *out);
    ns_buf req, resp;
    ns_buf_init(&req, SIGN_REQ_MAX);
    ns_buf_init(&resp, RESP_MAX);
    /* SignRequest by hand: key_id (1), then message (2) or digest (3). */
    ns_err e = NS_OK;
    uint8_t head[96];
    pb_ostream_t os = pb_ostream_from_buffer(head, sizeof head);
    bool ok = pb_encode_tag(&os, PB_WT_STRING, 1) &&
              pb_encode_string(&os, (const pb_byte_t *)key_id, strlen(key_id)) &&
              pb_encode_tag(&os, PB_WT_STRING, digest ? 3 : 2) &&
              pb_encode_varint(&os, digest ? digest_len : msg_len);
    if (!ok || ns_buf_append(&req, head, os.bytes_written) != NS_OK ||
        ns_buf_append(&req, digest ? digest : msg, digest ? digest_len : msg_len) != NS_OK) {
        e = ns_fail(NS_E_TOO_BIG, "the message is too large for one Sign request");
    }
    if (e == NS_OK) {
        e = call_ok(c, "/nsign.v1.Signer/Sign", req.data, req.len, &resp);
    }
    if (e == NS_OK) {
        nsign_v1_SignResponse r = nsign_v1_SignResponse_init_zero;
        pb_istream_t is = pb_istream_from_buffer(resp.data, resp.len);
        if (!pb_decode(&is, nsign_v1_SignResponse_fields, &r)) {
            e = ns_fail(NS_E_PROTO, "%s: the Sign answer does not decode", c->server);
        } else {
            memcpy(out->signature, r.signature.bytes, r.signature.size);
            out->signature_len = r.signature.size;
            memcpy(out->signature_der, r.signature_der.bytes, r.signature_der.size);
            out->signature_der_len = r.signature_der.size;
            out->recovery_id = r.recovery_id;
            snprintf(out->algorithm, sizeof out->algorithm, "%s", alg_name(r.algorithm));
            memcpy(out->digest, r.digest.bytes, r.digest.size);
            out->digest_len = r.digest.size;
        }
    }
    ns_buf_free(&req);
    ns_buf_free(&resp);
    return e;
}

/* --- FROST --- */

typedef struct {
    uint8_t *shares; /* max_signers * element_len, identifier 1 first */
    size_t cap, el, count;
    int bad;
} vshares_acc;

static bool dec_vshare(pb_istream_t *is, const pb_field_t *f, void **arg)
{
    (void)f;
    vshares_acc *a = *arg;
    nsign_v1_FrostVerifyingShare v = nsign_v1_FrostVerifyingShare_init_zero;
    if (!pb_decode(is, nsign_v1_FrostVerifyingShare_fields, &v)) {
        return false;
    }
    /* In order, 1..N, each of the suite's element length. */
    if (v.identifier != a->count + 1 || a->count >= NS_FROST_SIGNERS_MAX ||
        (a->el != 0 && v.verifying_share.size != a->el)) {
        a->bad = 1;
        return true;
    }
    a->el = v.verifying_share.size;
    if ((a->count + 1) * a->el > a->cap) {
        size_t ncap = a->cap ? a->cap * 2 : 64 * a->el;
        uint8_t *n = realloc(a->shares, ncap);
        if (n == NULL) {
            return false;
        }
        a->shares = n;
        a->cap = ncap;
    }
    memcpy(a->shares + a->count * a->el, v.verifying_share.bytes, a->el);
    a->count++;
    return true;
}

ns_err ns_signclient_frost_commit(ns_signclient *c, const char *key_id, unsigned count,
                                  ns_frostcoord_batch *out)
{
    ENSURE(c->attested, NS_E_DENIED,
           "%s: not attested: nothing is sent to sign before the attestation verified", c->server);
    ENSURE(strlen(key_id) < 65, NS_E_USAGE, "key id of %zu characters (max 64)", strlen(key_id));
    ENSURE(count >= 1 && count <= NS_FROSTCOORD_BATCH_MAX, NS_E_USAGE,
           "FrostCommit count must be 1..%d", NS_FROSTCOORD_BATCH_MAX);
    memset(out, 0, sizeof *out);
    nsign_v1_FrostCommitRequest q = nsign_v1_FrostCommitRequest_init_zero;
    snprintf(q.key_id, sizeof q.key_id, "%s", key_id);
    q.count = count;
    uint8_t req[96];
    pb_ostream_t os = pb_ostream_from_buffer(req, sizeof req);
    ENSURE(pb_encode(&os, nsign_v1_FrostCommitRequest_fields, &q), NS_E_INTERNAL,
           "cannot encode FrostCommitRequest");
    static __thread nsign_v1_FrostCommitResponse r;
    memset(&r, 0, sizeof r);
    vshares_acc acc = {0};
    r.group.verifying_shares.funcs.decode = dec_vshare;
    r.group.verifying_shares.arg = &acc;
    ns_buf resp;
    ns_buf_init(&resp, RESP_MAX);
    ns_err e = call_ok(c, "/nsign.v1.Signer/FrostCommit", req, os.bytes_written, &resp);
    int remote = e != NS_OK; /* call_ok's messages name the server already */
    if (e == NS_OK) {
        pb_istream_t is = pb_istream_from_buffer(resp.data, resp.len);
        if (!pb_decode(&is, nsign_v1_FrostCommitResponse_fields, &r)) {
            e = ns_fail(NS_E_PROTO, "%s: the FrostCommit answer does not decode (%s)", c->server,
                        PB_GET_ERROR(&is));
        }
    }
    ns_frost_suite suite = NS_FROST_ED25519_SHA512;
    if (e == NS_OK &&
        (!r.has_group || acc.bad || acc.count != r.group.max_signers ||
         r.commitments_count != count || r.identifier == 0 || r.identifier > r.group.max_signers)) {
        e = ns_fail(NS_E_PROTO,
                    "%s: the FrostCommit answer is incomplete (group, verifying shares 1..N, "
                    "identifier or %u commitments)",
                    c->server, count);
    }
    if (e == NS_OK) {
        e = ns_frost_suite_parse(r.group.algorithm, &suite);
    }
    size_t el = ns_frost_element_len(suite);
    if (e == NS_OK && (r.group.group_public_key.size != el || acc.el != el)) {
        e = ns_fail(NS_E_PROTO, "%s: FrostCommit: points of the wrong size for %s", c->server,
                    r.group.algorithm);
    }
    if (e == NS_OK && group_known(c, suite, r.group.min_signers, r.group.max_signers,
                                  r.group.group_public_key.bytes, acc.shares)) {
        e = ns_frost_group_copy(&out->group, &c->group);
    } else if (e == NS_OK) {
        e = ns_frost_group_init(&out->group, suite, r.group.min_signers, r.group.max_signers,
                                r.group.group_public_key.bytes, acc.shares);
        if (e == NS_OK) {
            ns_frost_group_free(&c->group);
            c->group_ok = ns_frost_group_copy(&c->group, &out->group) == NS_OK;
        }
    }
    for (pb_size_t i = 0; e == NS_OK && i < r.commitments_count; i++) {
        const nsign_v1_FrostCommitment *m = &r.commitments[i];
        ns_frostcoord_commitment *o = &out->c[i];
        if (m->commitment_id.size != sizeof o->id || m->hiding_commitment.size != el ||
            m->binding_commitment.size != el) {
            e = ns_fail(NS_E_PROTO, "%s: FrostCommit: commitment %u is malformed", c->server,
                        (unsigned)i);
            break;
        }
        memcpy(o->id, m->commitment_id.bytes, sizeof o->id);
        o->commitment.identifier = (uint16_t)r.identifier;
        memcpy(o->commitment.hiding, m->hiding_commitment.bytes, el);
        memcpy(o->commitment.binding, m->binding_commitment.bytes, el);
        out->n = i + 1;
    }
    if (e == NS_OK) {
        out->identifier = (uint16_t)r.identifier;
        out->expires_in_ms = r.expires_in_ms;
    } else {
        ns_frost_group_free(&out->group);
        out->n = 0;
        if (!remote && e != NS_E_PROTO) {
            e = ns_fail_ctx(e, "%s: FrostCommit", c->server);
        }
    }
    free(acc.shares);
    ns_buf_free(&resp);
    return e;
}

ns_err ns_signclient_frost_sign(ns_signclient *c, ns_frost_suite suite, const char *key_id,
                                const uint8_t id[16], const uint8_t *msg, size_t msg_len,
                                const ns_frost_commitment *list, size_t n, ns_frost_share *out)
{
    ENSURE(c->attested, NS_E_DENIED,
           "%s: not attested: nothing is sent to sign before the attestation verified", c->server);
    ENSURE(strlen(key_id) < 65, NS_E_USAGE, "key id of %zu characters (max 64)", strlen(key_id));
    memset(out, 0, sizeof *out);
    ns_buf req, resp;
    ns_buf_init(&req, SIGN_REQ_MAX + n * 96);
    ns_buf_init(&resp, RESP_MAX);
    /* FrostSignRequest by hand (the message is not copied twice): key_id (1), commitment_id
     * (2), message (3), then each signing commitment (4). */
    ns_err e = NS_OK;
    uint8_t head[160];
    pb_ostream_t os = pb_ostream_from_buffer(head, sizeof head);
    bool ok = pb_encode_tag(&os, PB_WT_STRING, 1) &&
              pb_encode_string(&os, (const pb_byte_t *)key_id, strlen(key_id)) &&
              pb_encode_tag(&os, PB_WT_STRING, 2) && pb_encode_string(&os, id, 16) &&
              pb_encode_tag(&os, PB_WT_STRING, 3) && pb_encode_varint(&os, msg_len);
    if (!ok || ns_buf_append(&req, head, os.bytes_written) != NS_OK ||
        ns_buf_append(&req, msg, msg_len) != NS_OK) {
        e = ns_fail(NS_E_TOO_BIG, "the message is too large for one FrostSign request");
    }
    for (size_t i = 0; e == NS_OK && i < n; i++) {
        nsign_v1_FrostSigningCommitment m = nsign_v1_FrostSigningCommitment_init_zero;
        size_t el = ns_frost_element_len(suite);
        m.identifier = list[i].identifier;
        memcpy(m.hiding.bytes, list[i].hiding, el);
        m.hiding.size = (pb_size_t)el;
        memcpy(m.binding.bytes, list[i].binding, el);
        m.binding.size = (pb_size_t)el;
        os = pb_ostream_from_buffer(head, sizeof head);
        if (!pb_encode_tag(&os, PB_WT_STRING, 4) ||
            !pb_encode_submessage(&os, nsign_v1_FrostSigningCommitment_fields, &m) ||
            ns_buf_append(&req, head, os.bytes_written) != NS_OK) {
            e = ns_fail(NS_E_TOO_BIG, "the signing set is too large for one FrostSign request");
        }
    }
    if (e == NS_OK) {
        e = call_ok(c, "/nsign.v1.Signer/FrostSign", req.data, req.len, &resp);
    }
    if (e == NS_OK) {
        nsign_v1_FrostSignResponse r = nsign_v1_FrostSignResponse_init_zero;
        pb_istream_t is = pb_istream_from_buffer(resp.data, resp.len);
        if (!pb_decode(&is, nsign_v1_FrostSignResponse_fields, &r) ||
            r.signature_share.size != NS_FROST_SCALAR_LEN || r.identifier == 0 ||
            r.identifier > NS_FROST_SIGNERS_MAX) {
            e = ns_fail(NS_E_PROTO, "%s: the FrostSign answer does not decode", c->server);
        } else {
            out->identifier = (uint16_t)r.identifier;
            memcpy(out->z, r.signature_share.bytes, NS_FROST_SCALAR_LEN);
        }
    }
    ns_buf_free(&req);
    ns_buf_free(&resp);
    return e;
}

static ns_err remote_commit(void *arg, const char *key_id, unsigned count, ns_frostcoord_batch *out)
{
    return ns_signclient_frost_commit(arg, key_id, count, out);
}

static ns_err remote_sign(void *arg, ns_frost_suite suite, const char *key_id, const uint8_t id[16],
                          const uint8_t *msg, size_t msg_len, const ns_frost_commitment *list,
                          size_t n, ns_frost_share *out)
{
    return ns_signclient_frost_sign(arg, suite, key_id, id, msg, msg_len, list, n, out);
}

void ns_signclient_frost_party(ns_frostcoord_party *p, ns_signclient *c)
{
    *p = (ns_frostcoord_party){
        .name = ns_signclient_server(c), .arg = c, .commit = remote_commit, .sign = remote_sign};
}

const char *ns_signclient_server(const ns_signclient *c)
{
    return c->server;
}

void ns_signclient_close(ns_signclient *c)
{
    if (c) {
        ns_h2c_free(c->h2);
        ns_tls_close(c->tls);
        ns_frost_group_free(&c->group);
        free(c);
    }
}

/* --- the options the clients share --- */

#define FILE_MAX (64u * 1024)

void ns_signclient_opts_init(ns_signclient_opts *o)
{
    memset(o, 0, sizeof *o);
    o->format = "hex";
    o->timeout_ms = 10000;
}

ns_err ns_signclient_opt(ns_signclient_opts *o, const char *name, const char *val)
{
    int64_t ms = 0;
    if (strcmp(name, "cert") == 0) {
        o->cert = val;
    } else if (strcmp(name, "client-key") == 0) {
        o->client_key = val;
    } else if (strcmp(name, "expect") == 0) {
        ENSURE(o->nexpect < 1 + NS_ATTEST_ALT_MAX, NS_E_USAGE, "--expect: at most %d files",
               1 + NS_ATTEST_ALT_MAX);
        o->expect[o->nexpect++] = val;
    } else if (strcmp(name, "root") == 0) {
        o->root = val;
    } else if (strcmp(name, "format") == 0) {
        o->format = val;
    } else if (strcmp(name, "pcr") == 0) {
        ENSURE(o->npcrs < NS_SIGNCLIENT_PCRS_MAX, NS_E_USAGE, "--pcr: at most %d",
               NS_SIGNCLIENT_PCRS_MAX);
        o->pcrs[o->npcrs++] = val;
    } else if (strcmp(name, "no-pcr16") == 0) {
        o->no_pcr16 = 1;
    } else if (strcmp(name, "min-policy-epoch") == 0) {
        ENSURE(ns_parse_uint(val, 4294967295u, &o->policy.min_policy_epoch) == NS_OK, NS_E_USAGE,
               "--min-policy-epoch: expected an integer 0..4294967295");
    } else if (strcmp(name, "policy-commitment") == 0) {
        size_t n = 0;
        ENSURE(strlen(val) == 64 &&
                   ns_hex_decode(o->policy.policy_commitment, 32, &n, val, 64) == NS_OK,
               NS_E_USAGE, "--policy-commitment: expected 64 hex digits");
        o->policy.policy_set = 1;
    } else if (strcmp(name, "allow-anonymous-service") == 0) {
        o->policy.allow_anonymous = 1;
    } else if (strcmp(name, "timeout") == 0) {
        ENSURE(ns_parse_seconds(val, &ms) == NS_OK && ms > 0 && ms <= 600000, NS_E_USAGE,
               "--timeout: expected seconds (0 < S <= 600)");
        o->timeout_ms = (int)ms;
    } else {
        BAIL(NS_E_USAGE, "invalid option --%s", name);
    }
    return NS_OK;
}

ns_err ns_signclient_opts_check(const ns_signclient_opts *o)
{
    ENSURE(o->cert && o->client_key, NS_E_USAGE, "--cert and --client-key are required");
    ENSURE(strcmp(o->format, "hex") == 0 || strcmp(o->format, "base64") == 0 ||
               strcmp(o->format, "json") == 0,
           NS_E_USAGE, "--format: hex, base64 or json");
    return NS_OK;
}

ns_err ns_signclient_opts_expect(const ns_signclient_opts *o, ns_attest_expect *x)
{
    for (int i = 0; i < o->nexpect; i++) {
        ns_buf m;
        ns_buf_init(&m, NS_ATTEST_MEASUREMENTS_MAX);
        ns_err e = ns_read_path(o->expect[i], &m);
        if (e == NS_OK) {
            e = i == 0 ? ns_attest_expect_measurements(x, m.data, m.len)
                       : ns_attest_expect_alt(x, m.data, m.len);
        }
        ns_buf_free(&m);
        if (e != NS_OK) {
            return ns_fail_ctx(e, "--expect %s", o->expect[i]);
        }
    }
    for (int i = 0; i < o->npcrs; i++) {
        GUARD(ns_attest_expect_pcr(x, o->pcrs[i])); /* NS_E_USAGE, naming --pcr */
    }
    ENSURE(ns_attest_expect_pins(x, 0), NS_E_USAGE,
           "PCR0 is not pinned: give --expect measurements.json (`make eif`) or --pcr 0=HEX "
           "(`nsign eif describe`)");
    int pinned16 = ns_attest_expect_pins(x, 16); /* in every accepted image's set */
    ENSURE(!(pinned16 && o->no_pcr16), NS_E_USAGE,
           "--no-pcr16 with PCR16 pinned: give one or the other");
    ENSURE(pinned16 || o->no_pcr16, NS_E_USAGE,
           "PCR16 is not pinned: add --pcr 16=HEX (what the enclave measured from the age key, "
           "keys file and configuration: run-enclave logs it as `expected pcr16=`, `nsign eif "
           "pcr16` computes it), or --no-pcr16 to accept whatever the host loaded");
    if (o->no_pcr16) {
        ns_warn("--no-pcr16: PCR16 is not checked, so this accepts the genuine image booted with "
                "any age key, keys file and configuration the host chose; pin it with --pcr "
                "16=HEX");
    }
    return NS_OK;
}

const char *ns_signclient_opts_pcr16(const ns_signclient_opts *o)
{
    return o->no_pcr16 ? "unchecked" : "pinned";
}

static ns_err load_pem(ns_buf *b, const char *path, const char *what)
{
    ns_err e = ns_read_path(path, b);
    if (e == NS_OK && memmem(b->data, b->len, "-----BEGIN", 10) != NULL) {
        e = ns_buf_append_u8(b, 0); /* mbedtls counts a PEM's NUL */
    }
    return e == NS_OK ? NS_OK : ns_fail_ctx(e, "%s %s", what, path);
}

ns_err ns_signclient_files_load(ns_signclient_files *f, const ns_signclient_opts *o)
{
    ns_buf_init(&f->cert, FILE_MAX);
    ns_buf_init_secret(&f->key, FILE_MAX);
    ns_buf_init(&f->root, FILE_MAX);
    GUARD(load_pem(&f->cert, o->cert, "--cert"));
    GUARD(load_pem(&f->key, o->client_key, "--client-key"));
    if (o->root != NULL) {
        ns_buf pem;
        ns_warn("trusting --root %s instead of the AWS Nitro Enclaves root: for tests and "
                "emulators only",
                o->root);
        ns_buf_init(&pem, FILE_MAX);
        ns_err e = ns_read_path(o->root, &pem);
        if (e == NS_OK) {
            e = ns_attest_cert_der(&f->root, pem.data, pem.len);
        }
        ns_buf_free(&pem);
        if (e != NS_OK) {
            return ns_fail_ctx(e, "--root %s", o->root);
        }
    }
    return NS_OK;
}

void ns_signclient_files_drop_key(ns_signclient_files *f)
{
    ns_buf_free(&f->key); /* wiped */
}

void ns_signclient_files_free(ns_signclient_files *f)
{
    ns_buf_free(&f->cert);
    ns_buf_free(&f->key);
    ns_buf_free(&f->root);
}

const uint8_t *ns_signclient_files_root(const ns_signclient_files *f, size_t *len)
{
    *len = f->root.len;
    return f->root.len ? f->root.data : NULL;
}

ns_err ns_signclient_format_sig(ns_buf *out, const char *format, const uint8_t *sig, size_t len)
{
    char t[2 * NS_SIGNCLIENT_SIG_MAX + 4];
    if (strcmp(format, "base64") == 0) {
        GUARD(ns_b64_encode(t, sizeof t, sig, len, NS_B64_PAD));
    } else {
        GUARD(ns_hex_encode(t, sizeof t, sig, len));
    }
    return ns_buf_printf(out, "%s\n", t);
}
