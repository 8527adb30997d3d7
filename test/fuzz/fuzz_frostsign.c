/*
 * libFuzzer target: FrostSign requests (signsvc.c's decoding of FrostSignRequest and its
 * signing_commitments callback, the list checks, the nonce store and round two) with a real
 * FROST share. Each run makes one commitment with FrostCommit, then sends the fuzz bytes as the
 * FrostSignRequest with that commitment's id appended (protobuf: the last commitment_id wins),
 * and with the first input bit set also this participant's own commitment appended to
 * signing_commitments, so the fuzzer reaches round two with valid nonces. Any crash, leak or
 * sanitizer report is a bug; a commitment must never outlive its run (checked).
 */
#include <pb_decode.h>
#include <pb_encode.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "codec.h"
#include "frost.h"
#include "frostnonce.h"
#include "log.h"
#include "nsign.pb.h"
#include "signsvc.h"

static ns_signsvc_keys *keys;
static ns_signsvc_ctx ctx;
static ns_h2_handler handler;
static int m_commit, m_sign;

static void init(void)
{
    ns_frost_group g;
    uint8_t sh[3 * 32];
    char s[65], gpk[65], v[3][65], json[2048];
    int st;
    ns_log_set_level(NS_LOG_ERROR);
    if (ns_frost_keygen(NS_FROST_ED25519_SHA512, 2, 3, sh, &g, NULL) != NS_OK ||
        ns_hex_encode(s, sizeof s, sh, 32) != NS_OK ||
        ns_hex_encode(gpk, sizeof gpk, g.group_public_key, 32) != NS_OK) {
        __builtin_trap();
    }
    for (int i = 0; i < 3; i++) {
        if (ns_hex_encode(v[i], sizeof v[i], g.verifying_shares[i], 32) != NS_OK) {
            __builtin_trap();
        }
    }
    int n =
        snprintf(json, sizeof json,
                 "{\"version\":1,\"keys\":[{\"id\":\"t\",\"algorithm\":\"frost-ed25519-sha512\","
                 "\"identifier\":1,\"signing_share\":\"%s\",\"group_public_key\":\"%s\","
                 "\"verifying_shares\":{\"1\":\"%s\",\"2\":\"%s\",\"3\":\"%s\"},"
                 "\"min_signers\":2,\"max_signers\":3}]}",
                 s, gpk, v[0], v[1], v[2]);
    if (ns_signsvc_load_keys(&keys, (const uint8_t *)json, (size_t)n) != NS_OK) {
        __builtin_trap();
    }
    ns_frost_group_free(&g);
    ctx.keys = keys;
    ns_signsvc_handler(&handler, &ctx, 64 * 1024);
    m_commit = handler.route(handler.app, "/nsign.v1.Signer/FrostCommit", &st);
    m_sign = handler.route(handler.app, "/nsign.v1.Signer/FrostSign", &st);
}

static int call(int m, const uint8_t *p, size_t n, ns_buf *out)
{
    char msg[256];
    ns_h2_req r = {.peer = "fuzz", .client = -1, .client_id = "-", .msg = p, .len = n};
    out->len = 0;
    return handler.call(handler.app, m, &r, out, msg, sizeof msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (keys == NULL) {
        init();
    }
    ns_buf out, req;
    ns_buf_init(&out, 64 * 1024);
    ns_buf_init(&req, 128 * 1024);
    /* round one: one commitment */
    static const uint8_t commit_req[] = {0x0a, 0x01, 't', 0x10, 0x01};
    nsign_v1_FrostCommitResponse cr = nsign_v1_FrostCommitResponse_init_zero;
    if (call(m_commit, commit_req, sizeof commit_req, &out) != 0) {
        __builtin_trap();
    }
    pb_istream_t is = pb_istream_from_buffer(out.data, out.len);
    if (!pb_decode(&is, nsign_v1_FrostCommitResponse_fields, &cr) || cr.commitments_count != 1) {
        __builtin_trap();
    }
    const nsign_v1_FrostCommitment *c = &cr.commitments[0];
    /* the fuzz bytes, then commitment_id (2) and maybe the own commitment (4) */
    uint8_t tail[256];
    pb_ostream_t os = pb_ostream_from_buffer(tail, sizeof tail);
    nsign_v1_FrostSigningCommitment own = {.identifier = 1};
    own.hiding.size = c->hiding_commitment.size;
    memcpy(own.hiding.bytes, c->hiding_commitment.bytes, own.hiding.size);
    own.binding.size = c->binding_commitment.size;
    memcpy(own.binding.bytes, c->binding_commitment.bytes, own.binding.size);
    bool ok = pb_encode_tag(&os, PB_WT_STRING, 2) &&
              pb_encode_string(&os, c->commitment_id.bytes, c->commitment_id.size);
    if (size > 0 && (data[0] & 1)) {
        ok = ok && pb_encode_tag(&os, PB_WT_STRING, 4) &&
             pb_encode_submessage(&os, nsign_v1_FrostSigningCommitment_fields, &own);
    }
    if (!ok || ns_buf_append(&req, data, size) != NS_OK ||
        ns_buf_append(&req, tail, os.bytes_written) != NS_OK) {
        __builtin_trap();
    }
    (void)call(m_sign, req.data, req.len, &out);
    /* a request that did not decode consumed nothing: name the commitment alone */
    if (ns_frostnonce_outstanding(ctx.frost_nonces) != 0) {
        (void)call(m_sign, tail, os.bytes_written, &out);
    }
    if (ns_frostnonce_outstanding(ctx.frost_nonces) != 0) {
        __builtin_trap(); /* a commitment outlived its run */
    }
    ns_buf_free(&out);
    ns_buf_free(&req);
    return 0;
}
