/*
 * audit: see audit.h. The writer keeps the chain state under one mutex; a timer thread signs a
 * head when entries waited every_ms. The verifier walks lines front to back with the same
 * hash/signature definitions (one function each, shared by both sides) and stops at the first
 * line that breaks the chain.
 */
#include "audit.h"

#include <cJSON.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "codec.h"
#include "secret.h"

#define GENESIS_TAG "nsign-audit-genesis-v1\n"
#define ENTRY_TAG "nsign-audit-entry-v1\n"
#define ENTRY_FROST_TAG "nsign-audit-entry-frost-v1\n"
#define HEAD_TAG "nsign-audit-head-v1\n"
#define ATTEST_TAG "nsign-attest-v2\n"
#define VERIFY_LINES_MAX 10000000u

struct ns_audit {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t timer;
    int stop;
    uint8_t *sk; /* crypto_sign_SECRETKEYBYTES, secret memory */
    uint8_t pub[32];
    uint8_t keys[32];
    uint8_t prev[32];
    uint64_t seq;
    uint64_t signed_count;
    uint32_t every_n;
    uint32_t every_ms;
    ns_audit_sink sink;
    void *arg;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put_str8(crypto_hash_sha256_state *st, const char *s)
{
    uint8_t l = (uint8_t)strlen(s);
    crypto_hash_sha256_update(st, &l, 1);
    crypto_hash_sha256_update(st, (const uint8_t *)s, l);
}

static void put_be64(crypto_hash_sha256_state *st, uint64_t v)
{
    uint8_t b[8];
    ns_put_be64(b, v);
    crypto_hash_sha256_update(st, b, 8);
}

static void genesis(uint8_t out[32], const uint8_t pub[32], const uint8_t keys[32])
{
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const uint8_t *)GENESIS_TAG, strlen(GENESIS_TAG));
    crypto_hash_sha256_update(&st, pub, 32);
    crypto_hash_sha256_update(&st, keys, 32);
    crypto_hash_sha256_final(&st, out);
}

/* input: 0 message, 1 digest, 2 commitments; frost: NULL for a Sign entry. */
static void entry_hash(uint8_t out[32], uint64_t seq, uint64_t t, const char *client,
                       const char *key, int input, const uint8_t sha[32], const char *status,
                       const char *frost, const uint8_t prev[32])
{
    crypto_hash_sha256_state st;
    uint8_t d = (uint8_t)input;
    const char *tag = frost != NULL ? ENTRY_FROST_TAG : ENTRY_TAG;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const uint8_t *)tag, strlen(tag));
    put_be64(&st, seq);
    put_be64(&st, t);
    put_str8(&st, client);
    put_str8(&st, key);
    crypto_hash_sha256_update(&st, &d, 1);
    crypto_hash_sha256_update(&st, sha, 32);
    put_str8(&st, status);
    if (frost != NULL) {
        uint8_t l[2];
        size_t n = strlen(frost);
        l[0] = (uint8_t)(n >> 8);
        l[1] = (uint8_t)n;
        crypto_hash_sha256_update(&st, l, 2);
        crypto_hash_sha256_update(&st, (const uint8_t *)frost, n);
    }
    crypto_hash_sha256_update(&st, prev, 32);
    crypto_hash_sha256_final(&st, out);
}

#define HEAD_MSG_LEN (sizeof HEAD_TAG - 1 + 8 + 8 + 1 + 32)
static void head_msg(uint8_t out[HEAD_MSG_LEN], uint64_t count, uint64_t t, int final,
                     const uint8_t head[32])
{
    size_t k = strlen(HEAD_TAG);
    memcpy(out, HEAD_TAG, k);
    ns_put_be64(out + k, count);
    ns_put_be64(out + k + 8, t);
    out[k + 16] = final ? 1 : 0;
    memcpy(out + k + 17, head, 32);
}

void ns_audit_keys_commitment(uint8_t out[32], const uint8_t key_set[32], const uint8_t policy[32],
                              uint64_t policy_epoch, int client_auth)
{
    crypto_hash_sha256_state st;
    uint8_t b;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const uint8_t *)"nsign-keys-v2\n", 14);
    put_str8(&st, "key-set");
    b = 32;
    crypto_hash_sha256_update(&st, &b, 1);
    crypto_hash_sha256_update(&st, key_set, 32);
    put_str8(&st, "policy");
    crypto_hash_sha256_update(&st, &b, 1);
    crypto_hash_sha256_update(&st, policy, 32);
    put_str8(&st, "epoch");
    b = 8;
    crypto_hash_sha256_update(&st, &b, 1);
    put_be64(&st, policy_epoch);
    put_str8(&st, "client-auth");
    b = 1;
    crypto_hash_sha256_update(&st, &b, 1);
    b = client_auth ? 1 : 0;
    crypto_hash_sha256_update(&st, &b, 1);
    crypto_hash_sha256_final(&st, out);
}

void ns_audit_user_data_v2(uint8_t out[32], const uint8_t keys[32], const uint8_t pub[32])
{
    crypto_hash_sha256_state st;
    uint8_t l = 32;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const uint8_t *)ATTEST_TAG, strlen(ATTEST_TAG));
    put_str8(&st, "keys");
    crypto_hash_sha256_update(&st, &l, 1);
    crypto_hash_sha256_update(&st, keys, 32);
    put_str8(&st, "audit-ed25519");
    crypto_hash_sha256_update(&st, &l, 1);
    crypto_hash_sha256_update(&st, pub, 32);
    crypto_hash_sha256_final(&st, out);
}

/* --- writer --- */

static void hex32(char out[65], const uint8_t *p)
{
    if (ns_hex_encode(out, 65, p, 32) != NS_OK) {
        out[0] = 0;
    }
}

static void clean_n(char *dst, const char *src, size_t max)
{
    size_t i = 0;
    for (; src != NULL && src[i] && i < max; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? (char)c : '?';
    }
    dst[i] = 0;
}

static void clean(char *dst, const char *src)
{
    clean_n(dst, src, NS_AUDIT_FIELD_MAX);
}

static void emit(ns_audit *a, const char *line, int n)
{
    if (n > 0 && n < NS_AUDIT_LINE_MAX) {
        a->sink(a->arg, line, (size_t)n);
    }
}

/* Under a->mu. */
static void sign_head(ns_audit *a, int final)
{
    uint8_t m[HEAD_MSG_LEN], sig[64];
    char hh[65], sh[129], line[NS_AUDIT_LINE_MAX];
    int64_t t = wall_ms();
    head_msg(m, a->seq, (uint64_t)t, final, a->prev);
    crypto_sign_detached(sig, NULL, m, sizeof m, a->sk);
    hex32(hh, a->prev);
    if (ns_hex_encode(sh, sizeof sh, sig, 64) != NS_OK) {
        sh[0] = 0;
    }
    int n = snprintf(line, sizeof line,
                     "{\"type\":\"head\",\"count\":%llu,\"time_ms\":%lld,\"head\":\"%s\","
                     "\"final\":%s,\"sig\":\"%s\"}\n",
                     (unsigned long long)a->seq, (long long)t, hh, final ? "true" : "false", sh);
    emit(a, line, n);
    a->signed_count = a->seq;
}

static void *timer(void *arg)
{
    ns_audit *a = arg;
    pthread_mutex_lock(&a->mu);
    while (!a->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += a->every_ms / 1000;
        ts.tv_nsec += (long)(a->every_ms % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&a->cv, &a->mu, &ts);
        if (!a->stop && a->seq > a->signed_count) {
            sign_head(a, 0);
        }
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

ns_err ns_audit_new(ns_audit **out, const uint8_t keys_commitment[32], uint32_t every_n,
                    uint32_t every_ms, ns_audit_sink sink, void *arg)
{
    ENSURE(sodium_init() >= 0, NS_E_CRYPTO, "libsodium did not initialise");
    ENSURE(every_n > 0 && every_ms > 0, NS_E_USAGE,
           "heads need every_n > 0 entries and every_ms > 0");
    ns_audit *a = calloc(1, sizeof *a);
    ENSURE(a != NULL, NS_E_NOMEM, "out of memory");
    a->sk = ns_secret_alloc(crypto_sign_SECRETKEYBYTES);
    if (a->sk == NULL) {
        free(a);
        BAIL(NS_E_NOMEM, "cannot allocate locked memory for the audit key");
    }
    crypto_sign_keypair(a->pub, a->sk);
    memcpy(a->keys, keys_commitment, 32);
    genesis(a->prev, a->pub, a->keys);
    a->every_n = every_n;
    a->every_ms = every_ms;
    a->sink = sink;
    a->arg = arg;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    char ph[65], kh[65], line[NS_AUDIT_LINE_MAX];
    hex32(ph, a->pub);
    hex32(kh, a->keys);
    int n = snprintf(line, sizeof line,
                     "{\"type\":\"start\",\"version\":1,\"time_ms\":%lld,\"audit_pub\":\"%s\","
                     "\"keys_commitment\":\"%s\"}\n",
                     (long long)wall_ms(), ph, kh);
    emit(a, line, n);
    if (pthread_create(&a->timer, NULL, timer, a) != 0) {
        ns_secret_free(a->sk, crypto_sign_SECRETKEYBYTES);
        free(a);
        BAIL(NS_E_NOMEM, "cannot start the head timer thread");
    }
    *out = a;
    return NS_OK;
}

const uint8_t *ns_audit_pub(const ns_audit *a)
{
    return a->pub;
}

void ns_audit_user_data(const ns_audit *a, uint8_t out[32])
{
    ns_audit_user_data_v2(out, a->keys, a->pub);
}

/* A bounded line builder: the entry line is built with memcpy, not snprintf, because it is
 * formatted under the trail's lock once per Sign. */
typedef struct {
    char *p;
    size_t n, cap;
} lb;

static void lb_put(lb *b, const char *s, size_t n)
{
    if (b->n + n <= b->cap) {
        memcpy(b->p + b->n, s, n);
    }
    b->n += n;
}

#define LB_LIT(b, s) lb_put((b), (s), sizeof(s) - 1)

static void lb_u64(lb *b, uint64_t v)
{
    char d[20];
    size_t k = sizeof d;
    do {
        d[--k] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    lb_put(b, d + k, sizeof d - k);
}

static void lb_hex32(lb *b, const uint8_t *p)
{
    static const char hx[] = "0123456789abcdef";
    char h[64];
    for (int i = 0; i < 32; i++) {
        h[2 * i] = hx[p[i] >> 4];
        h[2 * i + 1] = hx[p[i] & 15];
    }
    lb_put(b, h, 64);
}

static const char *const input_names[] = {"message", "digest", "commitments"};

static void append(ns_audit *a, const char *client, const char *key, int input,
                   const uint8_t sha256[32], const char *status, const char *frost)
{
    char c[NS_AUDIT_FIELD_MAX + 1], k[NS_AUDIT_FIELD_MAX + 1], s[NS_AUDIT_FIELD_MAX + 1];
    char f[NS_AUDIT_FROST_MAX + 1];
    char line[NS_AUDIT_LINE_MAX];
    uint8_t h[32];
    clean(c, client);
    clean(k, key);
    clean(s, status);
    clean_n(f, frost, NS_AUDIT_FROST_MAX);
    /* Everything but seq, time, prev and hash is formatted before taking the lock. */
    char tail[3 * NS_AUDIT_FIELD_MAX + NS_AUDIT_FROST_MAX + 256];
    lb t = {tail, 0, sizeof tail};
    LB_LIT(&t, ",\"client\":\"");
    lb_put(&t, c, strlen(c));
    LB_LIT(&t, "\",\"key\":\"");
    lb_put(&t, k, strlen(k));
    LB_LIT(&t, "\",\"input\":\"");
    lb_put(&t, input_names[input], strlen(input_names[input]));
    LB_LIT(&t, "\",\"sha256\":\"");
    lb_hex32(&t, sha256);
    LB_LIT(&t, "\",\"status\":\"");
    lb_put(&t, s, strlen(s));
    if (frost != NULL) {
        LB_LIT(&t, "\",\"frost\":\"");
        lb_put(&t, f, strlen(f));
    }
    LB_LIT(&t, "\",\"prev\":\"");
    pthread_mutex_lock(&a->mu);
    int64_t tm = wall_ms();
    entry_hash(h, a->seq, (uint64_t)tm, c, k, input, sha256, s, frost != NULL ? f : NULL, a->prev);
    lb b = {line, 0, sizeof line};
    LB_LIT(&b, "{\"type\":\"entry\",\"seq\":");
    lb_u64(&b, a->seq);
    LB_LIT(&b, ",\"time_ms\":");
    lb_u64(&b, (uint64_t)tm);
    lb_put(&b, tail, t.n);
    lb_hex32(&b, a->prev);
    LB_LIT(&b, "\",\"hash\":\"");
    lb_hex32(&b, h);
    LB_LIT(&b, "\"}\n");
    if (t.n <= t.cap && b.n <= b.cap) {
        a->sink(a->arg, line, b.n);
    }
    memcpy(a->prev, h, 32);
    a->seq++;
    if (a->seq - a->signed_count >= a->every_n) {
        sign_head(a, 0);
    }
    pthread_mutex_unlock(&a->mu);
}

void ns_audit_append(ns_audit *a, const char *client, const char *key, int input_is_digest,
                     const uint8_t sha256[32], const char *status)
{
    append(a, client, key, input_is_digest ? 1 : 0, sha256, status, NULL);
}

void ns_audit_append_frost(ns_audit *a, const char *client, const char *key, int is_commit,
                           const uint8_t sha256[32], const char *status, const char *frost)
{
    append(a, client, key, is_commit ? 2 : 0, sha256, status, frost != NULL ? frost : "");
}

void ns_audit_close(ns_audit *a)
{
    if (a == NULL) {
        return;
    }
    pthread_mutex_lock(&a->mu);
    a->stop = 1;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->timer, NULL);
    pthread_mutex_lock(&a->mu);
    sign_head(a, 1);
    pthread_mutex_unlock(&a->mu);
    ns_secret_free(a->sk, crypto_sign_SECRETKEYBYTES);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    free(a);
}

/* --- verifier --- */

typedef struct {
    const cJSON *o;
    int members;
} rec;

static const cJSON *member(rec *r, const char *name, int want_string)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->o, name);
    if (v == NULL || (want_string ? !cJSON_IsString(v) : 0)) {
        return NULL;
    }
    r->members++;
    return v;
}

static ns_err get_u64(rec *r, const char *name, uint64_t *out)
{
    const cJSON *v = member(r, name, 0);
    ENSURE(v != NULL && cJSON_IsNumber(v) && v->valuedouble >= 0 &&
               v->valuedouble <= 9007199254740992.0 &&
               (double)(uint64_t)v->valuedouble == v->valuedouble,
           NS_E_PARSE, "\"%s\" must be a non-negative integer", name);
    *out = (uint64_t)v->valuedouble;
    return NS_OK;
}

static ns_err get_str(rec *r, const char *name, const char **out)
{
    const cJSON *v = member(r, name, 1);
    ENSURE(v != NULL && strlen(v->valuestring) <= NS_AUDIT_FIELD_MAX, NS_E_PARSE,
           "\"%s\" must be a string of at most %d bytes", name, NS_AUDIT_FIELD_MAX);
    *out = v->valuestring;
    return NS_OK;
}

static ns_err get_hex(rec *r, const char *name, uint8_t *out, size_t len)
{
    const cJSON *v = member(r, name, 1);
    size_t got = 0;
    ENSURE(v != NULL && strlen(v->valuestring) == 2 * len &&
               ns_hex_decode(out, len, &got, v->valuestring, 2 * len) == NS_OK && got == len,
           NS_E_PARSE, "\"%s\" must be %zu bytes in hex", name, len);
    return NS_OK;
}

static ns_err no_extra(const rec *r)
{
    ENSURE(cJSON_GetArraySize(r->o) == r->members, NS_E_PARSE, "unexpected members");
    return NS_OK;
}

typedef struct {
    int started;
    int finished;
    uint8_t pub[32];
    uint8_t prev[32];
    uint64_t seq;
    uint64_t signed_count;
    int64_t last_head_ms;
    const uint8_t *user_data;
} vstate;

static ns_err check_start(vstate *v, rec *r)
{
    uint64_t ver, t;
    uint8_t keys[32], ud[32];
    GUARD(get_u64(r, "version", &ver));
    ENSURE(ver == 1, NS_E_UNSUPPORTED, "trail version %llu is not supported (1 is)",
           (unsigned long long)ver);
    GUARD(get_u64(r, "time_ms", &t));
    GUARD(get_hex(r, "audit_pub", v->pub, 32));
    GUARD(get_hex(r, "keys_commitment", keys, 32));
    GUARD(no_extra(r));
    if (v->user_data != NULL) {
        ns_audit_user_data_v2(ud, keys, v->pub);
        ENSURE(sodium_memcmp(ud, v->user_data, 32) == 0, NS_E_AUTH,
               "the trail's audit key is not the one the attestation document commits to "
               "(user_data differs): a replaced audit key, or another enclave's document");
    }
    genesis(v->prev, v->pub, keys);
    v->started = 1;
    return NS_OK;
}

static ns_err check_entry(vstate *v, rec *r, int64_t *seq_out)
{
    uint64_t seq, t;
    const char *client, *key, *input, *status, *frost = NULL;
    uint8_t sha[32], prev[32], hash[32], want[32];
    GUARD(get_u64(r, "seq", &seq));
    *seq_out = (int64_t)seq;
    GUARD(get_u64(r, "time_ms", &t));
    GUARD(get_str(r, "client", &client));
    GUARD(get_str(r, "key", &key));
    GUARD(get_str(r, "input", &input));
    int kind = strcmp(input, "message") == 0       ? 0
               : strcmp(input, "digest") == 0      ? 1
               : strcmp(input, "commitments") == 0 ? 2
                                                   : -1;
    ENSURE(kind >= 0, NS_E_PARSE, "\"input\" must be message, digest or commitments");
    GUARD(get_hex(r, "sha256", sha, 32));
    GUARD(get_str(r, "status", &status));
    if (cJSON_HasObjectItem(r->o, "frost")) {
        const cJSON *fv = member(r, "frost", 1);
        ENSURE(fv != NULL && strlen(fv->valuestring) <= NS_AUDIT_FROST_MAX, NS_E_PARSE,
               "\"frost\" must be a string of at most %d bytes", NS_AUDIT_FROST_MAX);
        frost = fv->valuestring;
    }
    ENSURE(kind != 2 || frost != NULL, NS_E_PARSE, "\"input\": commitments needs \"frost\"");
    GUARD(get_hex(r, "prev", prev, 32));
    GUARD(get_hex(r, "hash", hash, 32));
    GUARD(no_extra(r));
    ENSURE(seq == v->seq, NS_E_AUTH,
           "entry seq %llu where %llu was expected: entries dropped or reordered",
           (unsigned long long)seq, (unsigned long long)v->seq);
    ENSURE(sodium_memcmp(prev, v->prev, 32) == 0, NS_E_AUTH,
           "entry seq %llu does not link to the previous entry (prev differs): dropped, "
           "reordered or edited",
           (unsigned long long)seq);
    entry_hash(want, seq, t, client, key, kind, sha, status, frost, prev);
    ENSURE(sodium_memcmp(want, hash, 32) == 0, NS_E_AUTH,
           "entry seq %llu was edited (its fields do not hash to its hash)",
           (unsigned long long)seq);
    memcpy(v->prev, hash, 32);
    v->seq++;
    return NS_OK;
}

static ns_err check_head(vstate *v, rec *r)
{
    uint64_t count, t;
    uint8_t head[32], sig[64], m[HEAD_MSG_LEN];
    GUARD(get_u64(r, "count", &count));
    GUARD(get_u64(r, "time_ms", &t));
    GUARD(get_hex(r, "head", head, 32));
    const cJSON *f = member(r, "final", 0);
    ENSURE(f != NULL && cJSON_IsBool(f), NS_E_PARSE, "\"final\" must be true or false");
    GUARD(get_hex(r, "sig", sig, 64));
    GUARD(no_extra(r));
    head_msg(m, count, t, cJSON_IsTrue(f), head);
    ENSURE(crypto_sign_verify_detached(sig, m, sizeof m, v->pub) == 0, NS_E_AUTH,
           "signed head (count %llu) does not verify with the audit key: forged or edited",
           (unsigned long long)count);
    ENSURE(count == v->seq && sodium_memcmp(head, v->prev, 32) == 0, NS_E_AUTH,
           "signed head covers %llu entries but %llu precede it (or another chain): entries "
           "dropped, added or reordered",
           (unsigned long long)count, (unsigned long long)v->seq);
    v->signed_count = count;
    v->last_head_ms = t > INT64_MAX ? INT64_MAX : (int64_t)t;
    v->finished = cJSON_IsTrue(f);
    return NS_OK;
}

static ns_err check_line(vstate *v, const char *p, size_t n, int64_t *seq, size_t *heads)
{
    cJSON *o = cJSON_ParseWithLength(p, n);
    if (o == NULL || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        BAIL(NS_E_PARSE, "not a JSON object");
    }
    rec r = {.o = o};
    const char *type = NULL;
    ns_err e = get_str(&r, "type", &type);
    if (e == NS_OK && v->finished) {
        e = ns_fail(NS_E_AUTH, "a line after the final signed head: appended");
    } else if (e == NS_OK && strcmp(type, "start") == 0) {
        e = v->started ? ns_fail(NS_E_AUTH, "a second start record") : check_start(v, &r);
    } else if (e == NS_OK && !v->started) {
        e = ns_fail(NS_E_AUTH, "the trail must begin with its start record");
    } else if (e == NS_OK && strcmp(type, "entry") == 0) {
        e = check_entry(v, &r, seq);
    } else if (e == NS_OK && strcmp(type, "head") == 0) {
        e = check_head(v, &r);
        *heads += e == NS_OK;
    } else if (e == NS_OK) {
        e = ns_fail(NS_E_PARSE, "unknown record type \"%.32s\"", type);
    }
    cJSON_Delete(o);
    return e;
}

ns_err ns_audit_verify(const uint8_t *log, size_t n, const uint8_t *user_data, int live,
                       ns_audit_report *rep)
{
    ENSURE(sodium_init() >= 0, NS_E_CRYPTO, "libsodium did not initialise");
    memset(rep, 0, sizeof *rep);
    rep->seq = -1;
    vstate v;
    memset(&v, 0, sizeof v);
    v.user_data = user_data;
    v.last_head_ms = -1;
    rep->last_head_ms = -1;
    size_t pos = 0, line = 0, first_unsigned_line = 0;
    while (pos < n) {
        const uint8_t *nl = memchr(log + pos, '\n', n - pos);
        size_t len = nl ? (size_t)(nl - (log + pos)) : n - pos;
        line++;
        int64_t seq = -1;
        ns_err e = len > NS_AUDIT_LINE_MAX
                       ? ns_fail(NS_E_PARSE, "line over %d bytes", NS_AUDIT_LINE_MAX)
                   : nl == NULL ? ns_fail(NS_E_TRUNCATED, "last line has no newline: cut off")
                                : check_line(&v, (const char *)log + pos, len, &seq, &rep->heads);
        if (e != NS_OK) {
            rep->line = line;
            rep->seq = seq;
            rep->entries = v.seq;
            if (seq >= 0) {
                return ns_fail_ctx(e, "line %zu (entry seq %lld)", line, (long long)seq);
            }
            return ns_fail_ctx(e, "line %zu", line);
        }
        if (seq >= 0 && v.seq - 1 == v.signed_count) {
            first_unsigned_line = line;
        }
        pos += len + 1;
        ENSURE(line < VERIFY_LINES_MAX, NS_E_TOO_BIG, "trail over %u lines", VERIFY_LINES_MAX);
    }
    memcpy(rep->audit_pub, v.pub, 32);
    rep->entries = v.seq;
    rep->unsigned_tail = v.seq - v.signed_count;
    rep->signed_entries = v.signed_count;
    rep->last_head_ms = v.last_head_ms;
    if (!v.started) {
        rep->line = 1;
        BAIL(NS_E_AUTH, "line 1: the trail is empty (no start record)");
    }
    if (!live && !v.finished) {
        rep->line = rep->unsigned_tail ? first_unsigned_line : line + 1;
        rep->seq = rep->unsigned_tail ? (int64_t)v.signed_count : -1;
        BAIL(NS_E_AUTH,
             "line %zu: %s the final signed head: the trail was cut short, or lines were "
             "appended (use --live for a trail that is still being written)",
             rep->line,
             rep->unsigned_tail ? "this entry and those after it are not covered by"
                                : "the trail ends without");
    }
    return NS_OK;
}

ns_err ns_audit_check_bounds(const ns_audit_report *rep, int64_t since_ms, uint64_t min_entries)
{
    ENSURE(since_ms < 0 || rep->last_head_ms >= since_ms, NS_E_AUTH,
           "the last signed head (%lld ms since the epoch, covering %zu entries) is older than "
           "--since (%lld): the trail ends before that time, cut at a signed head or the service "
           "stopped signing",
           (long long)rep->last_head_ms, rep->signed_entries, (long long)since_ms);
    ENSURE(min_entries == 0 || rep->signed_entries >= min_entries, NS_E_AUTH,
           "the signed heads cover %zu entries, fewer than the %llu expected: the trail was cut "
           "(%zu entries follow the last signed head, not proven)",
           rep->signed_entries, (unsigned long long)min_entries, rep->unsigned_tail);
    return NS_OK;
}
