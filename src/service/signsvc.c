/*
 * signsvc: the gRPC services of sign-service (see signsvc.h).
 *
 * Messages are nanopb structs generated from the protos in proto/. Reflection serves the
 * FileDescriptorProtos of those same files, embedded by the Makefile as
 * gen/proto_descriptors.h (a serialized FileDescriptorSet); our protos import nothing, so each
 * answer is one file. Symbols are mapped to files by package prefix.
 */
#include "signsvc.h"

#include <pb_decode.h>
#include <pb_encode.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "frost.h"
#include "frostnonce.h"
#include "grpc.h"
#include "grpc_health.pb.h"
#include "grpc_reflection.pb.h"
#include "iox.h"
#include "log.h"
#include "nsign.pb.h"
#include "nsm.h"
#include "proto_descriptors.h"
#include "rng.h"
#include "tls.h"

#define ATTEST_DOC_MAX (32u * 1024)
#define DESC_FILES_MAX 8
#define DIGEST_LOG_BYTES 8
#define FROST_COMMIT_MAX 64  /* commitments per FrostCommit (nsign.options) */
#define FROST_DETAIL_MAX 400 /* the audit trail's FROST detail */

enum {
    M_LIST,
    M_GETPUB,
    M_SIGN,
    M_ATTEST,
    M_FROST_COMMIT,
    M_FROST_SIGN,
    M_HEALTH,
    M_REFLECT,
    M_COUNT
};

static const char *const method_paths[M_COUNT] = {
    "/nsign.v1.Signer/ListKeys",
    "/nsign.v1.Signer/GetPublicKey",
    "/nsign.v1.Signer/Sign",
    "/nsign.v1.Signer/Attest",
    "/nsign.v1.Signer/FrostCommit",
    "/nsign.v1.Signer/FrostSign",
    "/grpc.health.v1.Health/Check",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
};

static const char *const service_names[] = {
    "nsign.v1.Signer",
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
};

/* --- embedded descriptors --- */

typedef struct {
    const uint8_t *bytes; /* one serialized FileDescriptorProto */
    size_t len;
    char name[128];
    char package[128];
} desc_file;

static desc_file desc_files[DESC_FILES_MAX];
static size_t desc_count;
static pthread_once_t desc_once = PTHREAD_ONCE_INIT;

static int varint(ns_cur *c, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        uint8_t b;
        if (ns_cur_u8(c, &b) != NS_OK) {
            return -1;
        }
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            return 0;
        }
    }
    return -1;
}

/* Walks length-delimited fields of a message: returns 1 with the field, 0 at end, -1 on error. */
static int next_bytes_field(ns_cur *c, uint32_t *tag, const uint8_t **p, size_t *n)
{
    while (ns_cur_left(c) > 0) {
        uint64_t key, len;
        if (varint(c, &key) != 0) {
            return -1;
        }
        switch (key & 7) {
        case 0:
            if (varint(c, &len) != 0) {
                return -1;
            }
            break;
        case 1:
            if (ns_cur_skip(c, 8) != NS_OK) {
                return -1;
            }
            break;
        case 5:
            if (ns_cur_skip(c, 4) != NS_OK) {
                return -1;
            }
            break;
        case 2:
            if (varint(c, &len) != 0 || len > ns_cur_left(c) ||
                ns_cur_slice(c, p, (size_t)len) != NS_OK) {
                return -1;
            }
            *tag = (uint32_t)(key >> 3);
            *n = (size_t)len;
            return 1;
        default:
            return -1;
        }
    }
    return 0;
}

static void copy_str(char *dst, size_t cap, const uint8_t *p, size_t n)
{
    if (n >= cap) {
        n = cap - 1;
    }
    memcpy(dst, p, n);
    dst[n] = 0;
}

static void desc_init(void)
{
    ns_cur set;
    uint32_t tag;
    const uint8_t *p;
    size_t n;
    ns_cur_init(&set, ns_proto_descriptors, sizeof ns_proto_descriptors);
    while (desc_count < DESC_FILES_MAX && next_bytes_field(&set, &tag, &p, &n) == 1) {
        if (tag != 1) {
            continue;
        }
        desc_file *f = &desc_files[desc_count++];
        f->bytes = p;
        f->len = n;
        ns_cur file;
        const uint8_t *fp;
        size_t fn;
        ns_cur_init(&file, p, n);
        while (next_bytes_field(&file, &tag, &fp, &fn) == 1) {
            if (tag == 1) {
                copy_str(f->name, sizeof f->name, fp, fn);
            } else if (tag == 2) {
                copy_str(f->package, sizeof f->package, fp, fn);
            }
        }
    }
}

static const desc_file *desc_by_name(const char *name)
{
    for (size_t i = 0; i < desc_count; i++) {
        if (strcmp(desc_files[i].name, name) == 0) {
            return &desc_files[i];
        }
    }
    return NULL;
}

static const desc_file *desc_by_symbol(const char *sym)
{
    const desc_file *best = NULL;
    size_t best_len = 0;
    if (sym[0] == '.') {
        sym++;
    }
    for (size_t i = 0; i < desc_count; i++) {
        size_t pl = strlen(desc_files[i].package);
        if (strncmp(sym, desc_files[i].package, pl) == 0 && (sym[pl] == '.' || sym[pl] == 0) &&
            pl >= best_len) {
            best = &desc_files[i];
            best_len = pl;
        }
    }
    return best;
}

/* --- helpers --- */

static int fail(char *msg, size_t cap, int status, const char *fmt, ...) NS_PRINTF(4, 5);
static int fail(char *msg, size_t cap, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
    return status;
}

static int encode(ns_buf *out, const pb_msgdesc_t *fields, const void *m, char *msg, size_t cap)
{
    size_t size = 0;
    if (!pb_get_encoded_size(&size, fields, m) || ns_buf_reserve(out, size) != NS_OK) {
        return fail(msg, cap, NS_GRPC_RESOURCE_EXHAUSTED, "response too large");
    }
    pb_ostream_t os = pb_ostream_from_buffer(out->data + out->len, size);
    if (!pb_encode(&os, fields, m)) {
        return fail(msg, cap, NS_GRPC_INTERNAL, "cannot encode the response: %s",
                    PB_GET_ERROR(&os));
    }
    out->len += os.bytes_written;
    return NS_GRPC_OK;
}

static int decode(const ns_h2_req *req, const pb_msgdesc_t *fields, void *m, const char *what,
                  char *msg, size_t cap)
{
    pb_istream_t is = pb_istream_from_buffer(req->msg, req->len);
    if (!pb_decode(&is, fields, m)) {
        return fail(msg, cap, NS_GRPC_INVALID_ARGUMENT, "malformed %s: %s", what,
                    PB_GET_ERROR(&is));
    }
    return NS_GRPC_OK;
}

static nsign_v1_Algorithm alg_pb(ns_sign_alg a)
{
    return a == NS_ALG_ED25519           ? nsign_v1_Algorithm_ED25519
           : a == NS_ALG_P256            ? nsign_v1_Algorithm_ECDSA_P256
           : a == NS_ALG_FROST_ED25519   ? nsign_v1_Algorithm_FROST_ED25519_SHA512
           : a == NS_ALG_FROST_SECP256K1 ? nsign_v1_Algorithm_FROST_SECP256K1_SHA256
                                         : nsign_v1_Algorithm_ECDSA_SECP256K1;
}

static void key_info(const ns_signkey *k, nsign_v1_KeyInfo *ki)
{
    size_t n = 0;
    snprintf(ki->key_id, sizeof ki->key_id, "%s", k->id);
    ki->algorithm = alg_pb(k->alg);
    memcpy(ki->public_key.bytes, k->pub, k->pub_len);
    ki->public_key.size = (pb_size_t)k->pub_len;
    if (ns_signkey_spki(k, ki->public_key_der.bytes, sizeof ki->public_key_der.bytes, &n) ==
        NS_OK) {
        ki->public_key_der.size = (pb_size_t)n;
    }
    if (k->frost != NULL) {
        uint8_t rec[NS_SIGNKEY_COMMIT_PUB_MAX];
        size_t rl = ns_signkey_commitment_pub(k, rec);
        ki->frost_identifier = k->frost->identifier;
        ki->frost_min_signers = k->frost->group.min_signers;
        ki->frost_max_signers = k->frost->group.max_signers;
        memcpy(ki->frost_verifying_shares_sha256.bytes, rec + rl - 32, 32);
        ki->frost_verifying_shares_sha256.size = 32;
    }
}

/* --- methods --- */

/* With a policy, the Signer methods need an authenticated client. */
static int need_client(const ns_signkeys *ks, const ns_h2_req *req, char *msg, size_t cap)
{
    if (ns_signkeys_has_policy(ks) && req->client < 0) {
        return fail(msg, cap, NS_GRPC_UNAUTHENTICATED,
                    "this service has a client policy: connect over TLS with a client "
                    "certificate the keys file names");
    }
    return NS_GRPC_OK;
}

static int do_list(ns_signkeys *ks, const ns_h2_req *req, ns_buf *out, char *msg, size_t cap)
{
    static __thread nsign_v1_ListKeysResponse r; /* ~16 KiB: not on the stack */
    int st = need_client(ks, req, msg, cap);
    if (st != NS_GRPC_OK) {
        return st;
    }
    memset(&r, 0, sizeof r);
    size_t n = 0;
    for (size_t i = 0; i < ks->count; i++) {
        if (ns_signkey_allows(ks, &ks->keys[i], req->client)) {
            key_info(&ks->keys[i], &r.keys[n++]);
        }
    }
    r.keys_count = (pb_size_t)n;
    return encode(out, nsign_v1_ListKeysResponse_fields, &r, msg, cap);
}

static int denied(const ns_h2_req *req, const ns_signkey *k, char *msg, size_t cap)
{
    return fail(msg, cap, NS_GRPC_PERMISSION_DENIED,
                "client \"%s\" may not use key \"%s\" (not in its \"allow\" list)", req->client_id,
                k->id);
}

/* Takes one signature from the client's bucket; 0 when it is empty. */
static int rate_take(ns_signsvc_ctx *ctx, int client)
{
    const ns_signkeys *ks = ctx->keys;
    if (client < 0 || (size_t)client >= ks->nclients) {
        return 1;
    }
    int64_t rate = ks->clients[client].max_signs_per_second;
    if (rate == 0) {
        return 1;
    }
    int64_t now = ns_now_ms(), cap = rate * 1000;
    int ok = 0;
    pthread_mutex_lock(&ctx->rate_mu);
    int64_t *mt = &ctx->rate_mt[client], *last = &ctx->rate_last[client];
    if (*last == 0) {
        *mt = cap;
    } else if (now > *last) {
        *mt += (now - *last) * rate; /* rate tokens per second = rate milli-tokens per ms */
        if (*mt > cap) {
            *mt = cap;
        }
    }
    *last = now;
    if (*mt >= 1000) {
        *mt -= 1000;
        ok = 1;
    }
    pthread_mutex_unlock(&ctx->rate_mu);
    return ok;
}

static int do_getpub(ns_signkeys *ks, const ns_h2_req *req, ns_buf *out, char *msg, size_t cap)
{
    nsign_v1_GetPublicKeyRequest q = nsign_v1_GetPublicKeyRequest_init_zero;
    int st = need_client(ks, req, msg, cap);
    if (st != NS_GRPC_OK) {
        return st;
    }
    st = decode(req, nsign_v1_GetPublicKeyRequest_fields, &q, "GetPublicKeyRequest", msg, cap);
    if (st != NS_GRPC_OK) {
        return st;
    }
    const ns_signkey *k = ns_signkeys_find(ks, q.key_id);
    if (k == NULL) {
        return fail(msg, cap, NS_GRPC_NOT_FOUND, "no key with id \"%.64s\"", q.key_id);
    }
    if (!ns_signkey_allows(ks, k, req->client)) {
        return denied(req, k, msg, cap);
    }
    nsign_v1_GetPublicKeyResponse r = nsign_v1_GetPublicKeyResponse_init_zero;
    r.has_key = true;
    key_info(k, &r.key);
    return encode(out, nsign_v1_GetPublicKeyResponse_fields, &r, msg, cap);
}

static ns_signsvc_obs g_obs;

void ns_signsvc_set_obs(const ns_signsvc_obs *o)
{
    if (o == NULL) {
        memset(&g_obs, 0, sizeof g_obs);
    } else {
        g_obs = *o;
    }
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The key id comes from the client: anything outside the id alphabet is replaced, so a request
 * cannot forge log lines, fields or metric labels. */
static void clean_id(char id[NS_SIGNKEY_ID_MAX + 1], const char *key)
{
    size_t i = 0;
    for (; key[i] && i < NS_SIGNKEY_ID_MAX; i++) {
        char c = key[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        id[i] = ok ? c : '?';
    }
    id[i] = 0;
    if (i == 0) {
        snprintf(id, NS_SIGNKEY_ID_MAX + 1, "-");
    }
}

/* One line per Sign (FrostCommit, FrostSign), and the observer's event. */
static void audit_rpc(ns_signsvc_rpc rpc, const char *frost, const char *key, const uint8_t *digest,
                      const ns_h2_req *req, int st, const ns_signkey *k, const uint8_t *input_sha,
                      int is_digest, double t0)
{
    static const char *const names[] = {"sign", "frost-commit", "frost-sign"};
    char hex[2 * DIGEST_LOG_BYTES + 1] = "-";
    char id[NS_SIGNKEY_ID_MAX + 1];
    clean_id(id, key);
    if (digest && ns_hex_encode(hex, sizeof hex, digest, DIGEST_LOG_BYTES) != NS_OK) {
        hex[0] = 0;
    }
    ns_info("%s key=%s digest=%s client=%s peer=%s status=%s%s%s", names[rpc], id, hex,
            req->client_id, req->peer, ns_grpc_status_name(st), frost ? " " : "",
            frost ? frost : "");
    if (g_obs.on_sign != NULL) {
        ns_signsvc_sign_event ev = {.key_id = id,
                                    .alg = k ? ns_sign_alg_name(k->alg) : "-",
                                    .peer = req->peer,
                                    .client = req->client_id,
                                    .status = st,
                                    .input_sha256 = input_sha,
                                    .input_is_digest = is_digest,
                                    .seconds = mono_s() - t0,
                                    .rpc = rpc,
                                    .frost = frost};
        g_obs.on_sign(g_obs.arg, &ev);
    }
}

static void audit(const char *key, const uint8_t *digest, const ns_h2_req *req, int st,
                  const ns_signkey *k, const uint8_t *input_sha, int is_digest, double t0)
{
    audit_rpc(NS_SIGNSVC_SIGN, NULL, key, digest, req, st, k, input_sha, is_digest, t0);
}

static int do_sign(ns_signsvc_ctx *ctx, const ns_h2_req *req, ns_buf *out, char *msg, size_t cap)
{
    ns_signkeys *ks = ctx->keys;
    double t0 = g_obs.on_sign != NULL ? mono_s() : 0;
    nsign_v1_SignRequest q = nsign_v1_SignRequest_init_zero;
    int st = need_client(ks, req, msg, cap);
    if (st == NS_GRPC_OK) {
        st = decode(req, nsign_v1_SignRequest_fields, &q, "SignRequest", msg, cap);
    }
    if (st != NS_GRPC_OK) {
        audit("", NULL, req, st, NULL, NULL, 0, t0);
        return st;
    }
    ns_signature sig;
    uint8_t logd[32];
    const uint8_t *logp = NULL;
    const ns_signkey *k = ns_signkeys_find(ks, q.key_id);
    int has_msg = q.which_input == nsign_v1_SignRequest_message_tag;
    const uint8_t *m = NULL;
    size_t mlen = 0;
    if (has_msg && q.input.message) {
        m = q.input.message->bytes;
        mlen = q.input.message->size;
    }
    if (k == NULL) {
        st = fail(msg, cap, NS_GRPC_NOT_FOUND, "no key with id \"%.64s\"", q.key_id);
    } else if (!ns_signkey_allows(ks, k, req->client)) {
        st = denied(req, k, msg, cap);
    } else if (!rate_take(ctx, req->client)) {
        st = fail(msg, cap, NS_GRPC_RESOURCE_EXHAUSTED,
                  "client \"%s\" is over its max_signs_per_second (%u): slow down and retry",
                  req->client_id, (unsigned)ks->clients[req->client].max_signs_per_second);
    } else if (q.which_input == 0) {
        st = fail(msg, cap, NS_GRPC_INVALID_ARGUMENT, "SignRequest needs message or digest");
    } else {
        ns_err e = ns_signkey_sign(k, m, mlen, has_msg, has_msg ? NULL : q.input.digest.bytes,
                                   has_msg ? 0 : q.input.digest.size, &sig);
        if (e != NS_OK) {
            st = fail(msg, cap,
                      ns_grpc_status_from_err(e) == NS_GRPC_INTERNAL ? NS_GRPC_INTERNAL
                                                                     : NS_GRPC_INVALID_ARGUMENT,
                      "%s", ns_err_msg());
        } else if (sig.has_digest) {
            logp = sig.digest;
        } else {
            crypto_hash_sha256(logd, m, mlen);
            logp = logd;
        }
    }
    if (st == NS_GRPC_OK) {
        nsign_v1_SignResponse r = nsign_v1_SignResponse_init_zero;
        snprintf(r.key_id, sizeof r.key_id, "%s", k->id);
        r.algorithm = alg_pb(k->alg);
        memcpy(r.signature.bytes, sig.sig, sig.sig_len);
        r.signature.size = (pb_size_t)sig.sig_len;
        memcpy(r.signature_der.bytes, sig.der, sig.der_len);
        r.signature_der.size = (pb_size_t)sig.der_len;
        r.recovery_id = (uint32_t)sig.recid;
        if (sig.has_digest) {
            memcpy(r.digest.bytes, sig.digest, 32);
            r.digest.size = 32;
        }
        st = encode(out, nsign_v1_SignResponse_fields, &r, msg, cap);
    }
    uint8_t input_sha[32];
    const uint8_t *isha = NULL;
    if (g_obs.on_sign != NULL) {
        if (has_msg && logp != NULL && (k->alg == NS_ALG_ED25519 || sig.has_digest)) {
            isha = logp; /* Ed25519: SHA-256(message); ECDSA over a message: its SHA-256 */
        } else {
            crypto_hash_sha256(input_sha, has_msg ? m : q.input.digest.bytes,
                               has_msg ? mlen : q.input.digest.size);
            isha = input_sha;
        }
    }
    audit(q.key_id, logp, req, st, k, isha, !has_msg, t0);
    pb_release(nsign_v1_SignRequest_fields, &q);
    return st;
}

/* --- FROST (RFC 9591): this service as one participant --- */

/* The key's policy for one call: allowed, and a token from the client's bucket. */
static int use_policy(ns_signsvc_ctx *ctx, const ns_h2_req *req, const ns_signkey *k, char *msg,
                      size_t cap)
{
    if (!ns_signkey_allows(ctx->keys, k, req->client)) {
        return denied(req, k, msg, cap);
    }
    if (!rate_take(ctx, req->client)) {
        return fail(msg, cap, NS_GRPC_RESOURCE_EXHAUSTED,
                    "client \"%s\" is over its max_signs_per_second (%u): slow down and retry",
                    req->client_id, (unsigned)ctx->keys->clients[req->client].max_signs_per_second);
    }
    return NS_GRPC_OK;
}

/* The FROST key named by a request, or a status (NOT_FOUND, FAILED_PRECONDITION). */
static int frost_key(ns_signsvc_ctx *ctx, const char *id, const ns_signkey **out, char *msg,
                     size_t cap)
{
    *out = ns_signkeys_find(ctx->keys, id);
    if (*out == NULL) {
        return fail(msg, cap, NS_GRPC_NOT_FOUND, "no key with id \"%.64s\"", id);
    }
    if ((*out)->frost == NULL) {
        return fail(msg, cap, NS_GRPC_FAILED_PRECONDITION,
                    "key \"%s\" is not a FROST share (%s): use Sign", (*out)->id,
                    ns_sign_alg_name((*out)->alg));
    }
    if (ctx->frost_nonces == NULL) {
        return fail(msg, cap, NS_GRPC_UNAVAILABLE, "the FROST nonce store is not available");
    }
    return NS_GRPC_OK;
}

static void hex_into(char *out, size_t cap, const uint8_t *p, size_t n)
{
    if (ns_hex_encode(out, cap, p, n) != NS_OK) {
        out[0] = 0;
    }
}

static bool enc_vshares(pb_ostream_t *os, const pb_field_t *f, void *const *arg)
{
    const ns_frost_group *g = *arg;
    size_t el = ns_frost_element_len(g->suite);
    for (unsigned i = 1; i <= g->max_signers; i++) {
        nsign_v1_FrostVerifyingShare v = nsign_v1_FrostVerifyingShare_init_zero;
        v.identifier = i;
        memcpy(v.verifying_share.bytes, g->verifying_shares[i - 1], el);
        v.verifying_share.size = (pb_size_t)el;
        if (!pb_encode_tag_for_field(os, f) ||
            !pb_encode_submessage(os, nsign_v1_FrostVerifyingShare_fields, &v)) {
            return false;
        }
    }
    return true;
}

static int do_frost_commit(ns_signsvc_ctx *ctx, const ns_h2_req *req, ns_buf *out, char *msg,
                           size_t cap)
{
    static __thread nsign_v1_FrostCommitResponse r;
    double t0 = g_obs.on_sign != NULL ? mono_s() : 0;
    nsign_v1_FrostCommitRequest q = nsign_v1_FrostCommitRequest_init_zero;
    const ns_signkey *k = NULL;
    char detail[64] = "commit count=0";
    uint8_t ids_sha[32];
    const uint8_t *isha = NULL;
    int st = need_client(ctx->keys, req, msg, cap);
    if (st == NS_GRPC_OK) {
        st = decode(req, nsign_v1_FrostCommitRequest_fields, &q, "FrostCommitRequest", msg, cap);
    }
    if (st == NS_GRPC_OK) {
        st = frost_key(ctx, q.key_id, &k, msg, cap);
    }
    if (st == NS_GRPC_OK) {
        st = use_policy(ctx, req, k, msg, cap);
    }
    if (st == NS_GRPC_OK && (q.count == 0 || q.count > FROST_COMMIT_MAX)) {
        st = fail(msg, cap, NS_GRPC_INVALID_ARGUMENT, "count must be 1..%d, got %u",
                  FROST_COMMIT_MAX, (unsigned)q.count);
    }
    memset(&r, 0, sizeof r);
    if (st == NS_GRPC_OK) {
        int kidx = (int)(k - ctx->keys->keys);
        crypto_hash_sha256_state hs;
        crypto_hash_sha256_init(&hs);
        int64_t now = ns_now_ms();
        for (uint32_t i = 0; i < q.count && st == NS_GRPC_OK; i++) {
            nsign_v1_FrostCommitment *c = &r.commitments[i];
            ns_frost_commitment pub;
            ns_err e = ns_frostnonce_put(ctx->frost_nonces, kidx, req->client, k->frost, now,
                                         c->commitment_id.bytes, &pub);
            if (e != NS_OK) {
                st = fail(msg, cap,
                          e == NS_E_TOO_BIG ? NS_GRPC_RESOURCE_EXHAUSTED : NS_GRPC_INTERNAL,
                          "key \"%s\": %s", k->id, ns_err_msg());
                break;
            }
            size_t el = ns_frost_element_len(k->frost->group.suite);
            c->commitment_id.size = NS_FROSTNONCE_ID_LEN;
            memcpy(c->hiding_commitment.bytes, pub.hiding, el);
            c->hiding_commitment.size = (pb_size_t)el;
            memcpy(c->binding_commitment.bytes, pub.binding, el);
            c->binding_commitment.size = (pb_size_t)el;
            crypto_hash_sha256_update(&hs, c->commitment_id.bytes, NS_FROSTNONCE_ID_LEN);
            r.commitments_count = (pb_size_t)(i + 1);
        }
        if (st != NS_GRPC_OK) {
            /* Take back the ones made: nobody will ever learn their ids. */
            for (pb_size_t i = 0; i < r.commitments_count; i++) {
                int rc;
                (void)ns_frostnonce_take(ctx->frost_nonces, r.commitments[i].commitment_id.bytes,
                                         NS_FROSTNONCE_ID_LEN, -1, -2, now, NULL, NULL, &rc);
            }
        } else {
            crypto_hash_sha256_final(&hs, ids_sha);
            isha = ids_sha;
            snprintf(detail, sizeof detail, "commit count=%u", (unsigned)q.count);
        }
    }
    if (st == NS_GRPC_OK) {
        const ns_frost_group *g = &k->frost->group;
        size_t el = ns_frost_element_len(g->suite);
        snprintf(r.key_id, sizeof r.key_id, "%s", k->id);
        r.identifier = k->frost->identifier;
        r.expires_in_ms = ns_frostnonce_ttl_ms(ctx->frost_nonces);
        r.has_group = true;
        snprintf(r.group.algorithm, sizeof r.group.algorithm, "%s", ns_frost_suite_name(g->suite));
        memcpy(r.group.group_public_key.bytes, g->group_public_key, el);
        r.group.group_public_key.size = (pb_size_t)el;
        r.group.min_signers = g->min_signers;
        r.group.max_signers = g->max_signers;
        r.group.verifying_shares.funcs.encode = enc_vshares;
        r.group.verifying_shares.arg = (void *)g;
        st = encode(out, nsign_v1_FrostCommitResponse_fields, &r, msg, cap);
    }
    audit_rpc(NS_SIGNSVC_FROST_COMMIT, detail, q.key_id, isha, req, st, k, isha, 0, t0);
    return st;
}

/* The signing set of a FrostSignRequest, decoded into a bounded per-thread list. */
typedef struct {
    ns_frost_commitment *list;
    size_t n, cap;
    int bad; /* 1: an identifier out of range or a point of the wrong size */
} frost_list;

static bool dec_commitment(pb_istream_t *is, const pb_field_t *f, void **arg)
{
    (void)f;
    frost_list *l = *arg;
    nsign_v1_FrostSigningCommitment c = nsign_v1_FrostSigningCommitment_init_zero;
    if (!pb_decode(is, nsign_v1_FrostSigningCommitment_fields, &c)) {
        return false;
    }
    if (l->n >= l->cap) {
        PB_RETURN_ERROR(is, "too many signing_commitments");
    }
    ns_frost_commitment *o = &l->list[l->n++];
    memset(o, 0, sizeof *o);
    if (c.identifier == 0 || c.identifier > NS_FROST_SIGNERS_MAX) {
        l->bad = 1;
    }
    o->identifier = (uint16_t)(c.identifier > NS_FROST_SIGNERS_MAX ? 0 : c.identifier);
    memcpy(o->hiding, c.hiding.bytes, c.hiding.size);
    memcpy(o->binding, c.binding.bytes, c.binding.size);
    if (c.hiding.size != c.binding.size || c.hiding.size == 0) {
        l->bad = 1;
    }
    return true;
}

typedef struct {
    const ns_signkey *k;
    int policy_st; /* the policy's answer, decided before the commitment is consumed */
    const uint8_t *m;
    size_t mlen;
    frost_list *l;
    ns_frost_share share;
    ns_err err;
} frost_sign_arg;

static int frost_use(void *arg, ns_frost_nonces *nonces)
{
    frost_sign_arg *a = arg;
    if (a->policy_st != NS_GRPC_OK) {
        return a->policy_st; /* the nonces are wiped all the same */
    }
    a->err = ns_frost_sign(a->k->frost, nonces, a->m, a->mlen, a->l->list, a->l->n, &a->share);
    return a->err == NS_OK ? NS_GRPC_OK
           : a->err == NS_E_USAGE || a->err == NS_E_AUTH || a->err == NS_E_PARSE
               ? NS_GRPC_INVALID_ARGUMENT
               : NS_GRPC_INTERNAL;
}

/* "sign commitment=<hex> set=1,3" (a long set: its size and a hash of it). */
static void frost_detail(char *out, size_t cap, const uint8_t *id, size_t id_len,
                         const frost_list *l)
{
    char idh[2 * NS_FROSTNONCE_ID_LEN + 1] = "-";
    if (id_len == NS_FROSTNONCE_ID_LEN) {
        hex_into(idh, sizeof idh, id, id_len);
    }
    int n = snprintf(out, cap, "sign commitment=%s set=", idh);
    size_t pos = n > 0 ? (size_t)n : 0;
    for (size_t i = 0; i < l->n && pos < cap; i++) {
        n = snprintf(out + pos, cap - pos, "%s%u", i ? "," : "", (unsigned)l->list[i].identifier);
        pos += n > 0 ? (size_t)n : 0;
    }
    if (l->n == 0 && pos < cap) {
        snprintf(out + pos, cap - pos, "-");
    } else if (pos >= cap - 1) {
        uint8_t h[32];
        char hh[17];
        crypto_hash_sha256(h, (const uint8_t *)l->list, l->n * sizeof *l->list);
        hex_into(hh, sizeof hh, h, 8);
        snprintf(out, cap, "sign commitment=%s set=n%zu-sha256:%s", idh, l->n, hh);
    }
}

static int do_frost_sign(ns_signsvc_ctx *ctx, const ns_h2_req *req, ns_buf *out, char *msg,
                         size_t cap)
{
    static __thread ns_frost_commitment list[NS_FROST_SIGNERS_MAX];
    double t0 = g_obs.on_sign != NULL ? mono_s() : 0;
    frost_list l = {.list = list, .cap = NS_FROST_SIGNERS_MAX};
    nsign_v1_FrostSignRequest q = nsign_v1_FrostSignRequest_init_zero;
    q.signing_commitments.funcs.decode = dec_commitment;
    q.signing_commitments.arg = &l;
    const ns_signkey *k = NULL;
    char detail[FROST_DETAIL_MAX] = "sign commitment=- set=-";
    uint8_t msha[32];
    const uint8_t *isha = NULL;
    int st = need_client(ctx->keys, req, msg, cap);
    if (st == NS_GRPC_OK) {
        st = decode(req, nsign_v1_FrostSignRequest_fields, &q, "FrostSignRequest", msg, cap);
    }
    if (st != NS_GRPC_OK) {
        audit_rpc(NS_SIGNSVC_FROST_SIGN, detail, "", NULL, req, st, NULL, NULL, 0, t0);
        pb_release(nsign_v1_FrostSignRequest_fields, &q);
        return st;
    }
    frost_sign_arg a = {.l = &l};
    if (q.message != NULL) {
        a.m = q.message->bytes;
        a.mlen = q.message->size;
    }
    ns_frost_commitments_sort(l.list, l.n); /* RFC 9591 order; the audit names the set sorted */
    crypto_hash_sha256(msha, a.m != NULL ? a.m : (const uint8_t *)"", a.mlen);
    isha = msha;
    frost_detail(detail, sizeof detail, q.commitment_id.bytes, q.commitment_id.size, &l);
    st = frost_key(ctx, q.key_id, &k, msg, cap);
    int kidx = st == NS_GRPC_OK ? (int)(k - ctx->keys->keys) : -1;
    a.k = k;
    a.policy_st = st == NS_GRPC_OK ? use_policy(ctx, req, k, msg, cap) : st;
    if (a.policy_st == NS_GRPC_OK && l.bad) {
        a.policy_st = fail(msg, cap, NS_GRPC_INVALID_ARGUMENT,
                           "signing_commitments: an identifier outside 1..%d or a point of the "
                           "wrong size",
                           NS_FROST_SIGNERS_MAX);
    }
    /* The named commitment is consumed now, whatever the outcome (a policy refusal included). */
    int rc = NS_GRPC_OK;
    ns_frostnonce_status ts = NS_FROSTNONCE_UNKNOWN;
    if (ctx->frost_nonces != NULL) {
        ts = ns_frostnonce_take(ctx->frost_nonces, q.commitment_id.bytes, q.commitment_id.size,
                                kidx, req->client, ns_now_ms(), frost_use, &a, &rc);
    }
    if (st != NS_GRPC_OK || a.policy_st != NS_GRPC_OK) {
        st = st != NS_GRPC_OK ? st : a.policy_st; /* msg already says why */
    } else if (ts == NS_FROSTNONCE_UNKNOWN) {
        st = fail(msg, cap, NS_GRPC_NOT_FOUND,
                  "commitment_id is unknown or already used (each commitment signs once): get "
                  "fresh ones with FrostCommit");
    } else if (ts == NS_FROSTNONCE_EXPIRED) {
        st = fail(msg, cap, NS_GRPC_NOT_FOUND,
                  "commitment_id has expired (after %u s): get fresh ones with FrostCommit",
                  ns_frostnonce_ttl_ms(ctx->frost_nonces) / 1000);
    } else if (ts == NS_FROSTNONCE_NOT_YOURS) {
        st = fail(msg, cap, NS_GRPC_PERMISSION_DENIED,
                  "commitment_id was issued to another client or for another key (it is now "
                  "used up)");
    } else if (rc != NS_GRPC_OK) {
        st = fail(msg, cap, rc, "key \"%s\": %s", k->id, ns_err_msg());
    }
    if (st == NS_GRPC_OK) {
        nsign_v1_FrostSignResponse r = nsign_v1_FrostSignResponse_init_zero;
        snprintf(r.key_id, sizeof r.key_id, "%s", k->id);
        r.identifier = a.share.identifier;
        memcpy(r.signature_share.bytes, a.share.z, NS_FROST_SCALAR_LEN);
        r.signature_share.size = NS_FROST_SCALAR_LEN;
        st = encode(out, nsign_v1_FrostSignResponse_fields, &r, msg, cap);
    }
    audit_rpc(NS_SIGNSVC_FROST_SIGN, detail, q.key_id, isha, req, st, k, isha, 0, t0);
    pb_release(nsign_v1_FrostSignRequest_fields, &q);
    return st;
}

static bool enc_doc(pb_ostream_t *os, const pb_field_t *f, void *const *arg)
{
    const ns_buf *doc = *arg;
    return pb_encode_tag_for_field(os, f) && pb_encode_string(os, doc->data, doc->len);
}

static int do_attest(ns_signsvc_ctx *ctx, const ns_h2_req *req, ns_buf *out, char *msg, size_t cap)
{
    ns_signkeys *ks = ctx->keys;
    nsign_v1_AttestRequest q = nsign_v1_AttestRequest_init_zero;
    int st = decode(req, nsign_v1_AttestRequest_fields, &q, "AttestRequest (nonce <= 512 bytes)",
                    msg, cap);
    if (st != NS_GRPC_OK) {
        return st;
    }
    ns_buf doc;
    ns_buf_init(&doc, ATTEST_DOC_MAX);
    const uint8_t *ud = g_obs.user_data != NULL ? g_obs.user_data : ks->commitment;
    ns_err e = ns_nsm_attest(&doc, ud, 32, q.nonce.size ? q.nonce.bytes : NULL, q.nonce.size,
                             ctx->tls_spki, ctx->tls_spki_len);
    if (e != NS_OK) {
        ns_buf_free(&doc);
        return fail(msg, cap,
                    ns_grpc_status_from_err(e) == NS_GRPC_UNAVAILABLE ? NS_GRPC_UNAVAILABLE
                                                                      : NS_GRPC_INTERNAL,
                    "attestation failed: %s", ns_err_msg());
    }
    nsign_v1_AttestResponse r = nsign_v1_AttestResponse_init_zero;
    r.attestation_document.funcs.encode = enc_doc;
    r.attestation_document.arg = &doc;
    memcpy(r.user_data.bytes, ud, 32);
    r.user_data.size = 32;
    if (ctx->tls_cert != NULL && ctx->tls_cert_len <= sizeof r.certificate.bytes) {
        memcpy(r.certificate.bytes, ctx->tls_cert, ctx->tls_cert_len);
        r.certificate.size = (pb_size_t)ctx->tls_cert_len;
    }
    if (g_obs.audit_pub != NULL) {
        memcpy(r.audit_public_key.bytes, g_obs.audit_pub, 32);
        r.audit_public_key.size = 32;
    }
    /* The keys commitment and its parts, so a client can recompute user_data (signkeys.h). */
    memcpy(r.keys_commitment.bytes, ks->commitment, 32);
    r.keys_commitment.size = 32;
    memcpy(r.key_set_commitment.bytes, ks->key_set_commitment, 32);
    r.key_set_commitment.size = 32;
    memcpy(r.policy_commitment.bytes, ks->policy_commitment, 32);
    r.policy_commitment.size = 32;
    r.policy_epoch = ks->policy_epoch;
    r.client_auth_required = ns_signkeys_has_policy(ks) != 0;
    st = encode(out, nsign_v1_AttestResponse_fields, &r, msg, cap);
    ns_buf_free(&doc);
    return st;
}

static int do_health(const ns_signsvc_ctx *ctx, const ns_h2_req *req, ns_buf *out, char *msg,
                     size_t cap)
{
    grpc_health_v1_HealthCheckRequest q = grpc_health_v1_HealthCheckRequest_init_zero;
    int st =
        decode(req, grpc_health_v1_HealthCheckRequest_fields, &q, "HealthCheckRequest", msg, cap);
    if (st != NS_GRPC_OK) {
        return st;
    }
    int known = q.service[0] == 0;
    for (size_t i = 0; i < sizeof service_names / sizeof *service_names; i++) {
        known |= strcmp(q.service, service_names[i]) == 0;
    }
    if (!known) {
        return fail(msg, cap, NS_GRPC_NOT_FOUND, "unknown service \"%.100s\"", q.service);
    }
    grpc_health_v1_HealthCheckResponse r = grpc_health_v1_HealthCheckResponse_init_zero;
    r.status = ctx->draining && *ctx->draining
                   ? grpc_health_v1_HealthCheckResponse_ServingStatus_NOT_SERVING
                   : grpc_health_v1_HealthCheckResponse_ServingStatus_SERVING;
    return encode(out, grpc_health_v1_HealthCheckResponse_fields, &r, msg, cap);
}

static bool enc_file(pb_ostream_t *os, const pb_field_t *f, void *const *arg)
{
    const desc_file *d = *arg;
    return pb_encode_tag_for_field(os, f) && pb_encode_string(os, d->bytes, d->len);
}

static int do_reflect(const ns_h2_req *req, ns_buf *out, char *msg, size_t cap)
{
    static __thread grpc_reflection_v1alpha_ServerReflectionRequest q;
    static __thread grpc_reflection_v1alpha_ServerReflectionResponse r;
    memset(&q, 0, sizeof q);
    memset(&r, 0, sizeof r);
    int st = decode(req, grpc_reflection_v1alpha_ServerReflectionRequest_fields, &q,
                    "ServerReflectionRequest", msg, cap);
    if (st != NS_GRPC_OK) {
        return st;
    }
    pthread_once(&desc_once, desc_init);
    snprintf(r.valid_host, sizeof r.valid_host, "%s", q.host);
    r.has_original_request = true;
    r.original_request = q;
    const desc_file *d = NULL;
    const char *what = "";
    switch (q.which_message_request) {
    case grpc_reflection_v1alpha_ServerReflectionRequest_list_services_tag:
        r.which_message_response =
            grpc_reflection_v1alpha_ServerReflectionResponse_list_services_response_tag;
        for (size_t i = 0; i < sizeof service_names / sizeof *service_names; i++) {
            snprintf(r.message_response.list_services_response.service[i].name,
                     sizeof r.message_response.list_services_response.service[i].name, "%s",
                     service_names[i]);
        }
        r.message_response.list_services_response.service_count =
            sizeof service_names / sizeof *service_names;
        return encode(out, grpc_reflection_v1alpha_ServerReflectionResponse_fields, &r, msg, cap);
    case grpc_reflection_v1alpha_ServerReflectionRequest_file_by_filename_tag:
        what = q.message_request.file_by_filename;
        d = desc_by_name(what);
        break;
    case grpc_reflection_v1alpha_ServerReflectionRequest_file_containing_symbol_tag:
        what = q.message_request.file_containing_symbol;
        d = desc_by_symbol(what);
        break;
    case grpc_reflection_v1alpha_ServerReflectionRequest_file_containing_extension_tag:
        what = q.message_request.file_containing_extension.containing_type;
        break;
    case grpc_reflection_v1alpha_ServerReflectionRequest_all_extension_numbers_of_type_tag:
        what = q.message_request.all_extension_numbers_of_type;
        break;
    default:
        return fail(msg, cap, NS_GRPC_INVALID_ARGUMENT, "empty ServerReflectionRequest");
    }
    if (d != NULL) {
        r.which_message_response =
            grpc_reflection_v1alpha_ServerReflectionResponse_file_descriptor_response_tag;
        r.message_response.file_descriptor_response.file_descriptor_proto.funcs.encode = enc_file;
        r.message_response.file_descriptor_response.file_descriptor_proto.arg = (void *)d;
    } else {
        r.which_message_response =
            grpc_reflection_v1alpha_ServerReflectionResponse_error_response_tag;
        r.message_response.error_response.error_code = NS_GRPC_NOT_FOUND;
        snprintf(r.message_response.error_response.error_message,
                 sizeof r.message_response.error_response.error_message, "not found: %.200s", what);
    }
    return encode(out, grpc_reflection_v1alpha_ServerReflectionResponse_fields, &r, msg, cap);
}

/* --- the handler --- */

static int route(void *app, const char *path, int *streaming)
{
    (void)app;
    for (int i = 0; i < M_COUNT; i++) {
        if (strcmp(path, method_paths[i]) == 0) {
            *streaming = i == M_REFLECT;
            return i;
        }
    }
    /* grpc.reflection.v1 has the same messages on the wire; newer grpcurl tries it first. */
    if (strcmp(path, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo") == 0) {
        *streaming = 1;
        return M_REFLECT;
    }
    return -1;
}

static int call(void *app, int method, const ns_h2_req *req, ns_buf *out, char *msg, size_t cap)
{
    ns_signsvc_ctx *ctx = app;
    switch (method) {
    case M_LIST:
        return do_list(ctx->keys, req, out, msg, cap);
    case M_GETPUB:
        return do_getpub(ctx->keys, req, out, msg, cap);
    case M_SIGN:
        return do_sign(ctx, req, out, msg, cap);
    case M_ATTEST:
        return do_attest(ctx, req, out, msg, cap);
    case M_FROST_COMMIT:
        return do_frost_commit(ctx, req, out, msg, cap);
    case M_FROST_SIGN:
        return do_frost_sign(ctx, req, out, msg, cap);
    case M_HEALTH:
        return do_health(ctx, req, out, msg, cap);
    case M_REFLECT:
        return do_reflect(req, out, msg, cap);
    default:
        return fail(msg, cap, NS_GRPC_UNIMPLEMENTED, "unknown method");
    }
}

void ns_signsvc_handler(ns_h2_handler *h, ns_signsvc_ctx *ctx, size_t max_msg)
{
    pthread_mutex_init(&ctx->rate_mu, NULL);
    memset(ctx->rate_mt, 0, sizeof ctx->rate_mt);
    memset(ctx->rate_last, 0, sizeof ctx->rate_last);
    ctx->frost_nonces = NULL;
    int frost = 0;
    for (size_t i = 0; ctx->keys != NULL && i < ctx->keys->count; i++) {
        frost |= ctx->keys->keys[i].frost != NULL;
    }
    if (frost && ns_frostnonce_new(&ctx->frost_nonces, 0, ctx->frost_per_owner,
                                   ctx->frost_ttl_ms) != NS_OK) {
        ns_log_err(NS_E_NOMEM, "frost: FrostCommit and FrostSign will answer UNAVAILABLE");
    }
    *h = (ns_h2_handler){.app = ctx, .max_msg = max_msg, .route = route, .call = call};
}

void ns_signsvc_handler_free(ns_signsvc_ctx *ctx)
{
    ns_frostnonce_free(ctx->frost_nonces);
    ctx->frost_nonces = NULL;
}

ns_err ns_signsvc_load_keys(ns_signsvc_keys **keys, const uint8_t *json, size_t len)
{
    return ns_signkeys_load(keys, json, len);
}

void ns_signsvc_keys_free(ns_signsvc_keys *keys)
{
    ns_signkeys_free(keys);
}

/* What the TLS server's pin lookup needs: the keys, and with pseudonymous clients the key of
 * their names (drawn once per run, kept in this process only). */
typedef struct {
    const ns_signkeys *keys;
    int pseudonymous;
    uint8_t name_key[crypto_auth_hmacsha256_KEYBYTES];
} pin_ctx;

/* The TLS server's pin lookup: the client's index in the keys file, or -1; its name in id. */
static int pin_lookup(void *arg, const uint8_t pin[32], char *id, size_t cap)
{
    const pin_ctx *p = arg;
    int i = ns_signkeys_client_by_pin(p->keys, pin);
    if (i >= 0 && p->pseudonymous) {
        const char *real = p->keys->clients[i].id;
        uint8_t mac[crypto_auth_hmacsha256_BYTES];
        char hex[13] = "";
        crypto_auth_hmacsha256(mac, (const uint8_t *)real, strlen(real), p->name_key);
        if (ns_hex_encode(hex, sizeof hex, mac, 6) != NS_OK) {
            hex[0] = '\0';
        }
        snprintf(id, cap, "c-%s", hex);
    } else if (i >= 0) {
        snprintf(id, cap, "%s", p->keys->clients[i].id);
    }
    return i;
}

ns_err ns_signsvc_run(const ns_signsvc_cfg *cfg, ns_signsvc_keys *keys, ns_stop *stop)
{
    ns_h2_handler h;
    ENSURE(keys != NULL && keys->count > 0, NS_E_USAGE, "sign-service: no keys loaded");
    static ns_signsvc_ctx ctx; /* one service per process; its threads share it */
    ctx.keys = keys;
    ctx.frost_ttl_ms = cfg->frost_ttl_ms;
    ctx.frost_per_owner = cfg->frost_per_owner;
    ns_signsvc_handler(&h, &ctx, cfg->max_msg);
    ctx.draining = cfg->drain;
    h.max_buffered = cfg->max_buffered;
    h.idle_ms = cfg->idle_ms;
    h.body_idle_ms = cfg->body_idle_ms;
    h.max_output = cfg->max_output;
    h.stall_ms = cfg->stall_ms;
    pthread_once(&desc_once, desc_init);
    ns_h2_serve_cfg sc = {.listen = cfg->listen,
                          .threads = cfg->threads,
                          .on_listening = cfg->on_listening,
                          .on_listening_arg = cfg->on_listening_arg,
                          .drain = cfg->drain,
                          .drain_ms = cfg->drain_ms};
    int policy = ns_signkeys_has_policy(keys);
    ns_tls_server *tls = NULL;
    static pin_ctx pins; /* outlives the TLS server, like ctx */
    pins.keys = keys;
    pins.pseudonymous = cfg->pseudonymous_clients;
    if (pins.pseudonymous) {
        GUARD(ns_rng_bytes(pins.name_key, sizeof pins.name_key));
        ns_info("clients are pseudonymous: log lines, metrics and the audit trail name each "
                "authenticated client c-HMAC(a key drawn for this run, its id)");
    }
    if (cfg->tls) {
        ns_tls_server_opts o = {.name = "nsign-enclave",
                                .require_client = policy,
                                .client_by_pin = pin_lookup,
                                .arg = &pins};
        GUARD(ns_tls_server_new(&tls, &o));
        ctx.tls_cert = ns_tls_server_cert(tls, &ctx.tls_cert_len);
        ctx.tls_spki = ns_tls_server_spki(tls, &ctx.tls_spki_len);
        sc.transport = ns_tls_server_transport(tls);
        uint8_t pin[32];
        char hex[65] = "";
        crypto_hash_sha256(pin, ctx.tls_spki, ctx.tls_spki_len);
        if (ns_hex_encode(hex, sizeof hex, pin, sizeof pin) != NS_OK) {
            hex[0] = 0;
        }
        if (policy) {
            ns_info("tls on: client certificates required clients=%zu spki_sha256=%s",
                    keys->nclients, hex);
        } else {
            ns_warn("tls on without client authentication: the keys file is version 1 (no "
                    "\"clients\" policy), so anyone who reaches this port can sign; keep it "
                    "reachable from 127.0.0.1 only, or move to a version-2 keys file "
                    "spki_sha256=%s",
                    hex);
        }
    } else if (policy) {
        ns_warn("--plaintext with a client policy: no client can authenticate, so every "
                "ListKeys, GetPublicKey and Sign is UNAUTHENTICATED");
    }
    ns_err e = ns_h2_serve(&sc, &h, stop);
    ns_signsvc_handler_free(&ctx);
    ctx.tls_cert = ctx.tls_spki = NULL;
    ns_tls_server_free(tls);
    sodium_memzero(pins.name_key, sizeof pins.name_key);
    return e;
}
