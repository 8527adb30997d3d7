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

#include "grpc.h"
#include "h2client.h"
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
};

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

ns_err ns_signclient_attest(ns_signclient *c, ns_attest_expect *x, const uint8_t *root_der,
                            size_t root_len, ns_att_doc *d)
{
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
        if (e != NS_OK) {
            e = ns_fail_ctx(e, "%s: the attestation does not hold: refusing to sign", c->server);
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

void ns_signclient_close(ns_signclient *c)
{
    if (c) {
        ns_h2c_free(c->h2);
        ns_tls_close(c->tls);
        free(c);
    }
}
