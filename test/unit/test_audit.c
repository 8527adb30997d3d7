/* Unit tests: the audit hash chain writer and its verifier, with every kind of tampering. */
#include <sodium.h>
#include <string.h>

#include "audit.h"
#include "buf.h"
#include "t.h"

#define LINES_MAX 64

static void sink(void *arg, const char *line, size_t n)
{
    if (ns_buf_append(arg, line, n) != NS_OK) {
        abort();
    }
}

/* Splits a trail into lines (each with its '\n'). */
static size_t split(const ns_buf *b, char lines[LINES_MAX][NS_AUDIT_LINE_MAX])
{
    size_t k = 0, pos = 0;
    while (pos < b->len && k < LINES_MAX) {
        const uint8_t *nl = memchr(b->data + pos, '\n', b->len - pos);
        size_t len = (size_t)(nl - (b->data + pos)) + 1;
        memcpy(lines[k], b->data + pos, len);
        lines[k][len] = 0;
        k++;
        pos += len;
    }
    return k;
}

static ns_buf join(char lines[LINES_MAX][NS_AUDIT_LINE_MAX], size_t n)
{
    ns_buf b;
    ns_buf_init(&b, 1 << 20);
    for (size_t i = 0; i < n; i++) {
        if (ns_buf_append_str(&b, lines[i]) != NS_OK) {
            abort();
        }
    }
    return b;
}

static ns_err verify(ns_buf *b, const uint8_t *ud, int live, ns_audit_report *rep)
{
    return ns_audit_verify(b->data, b->len, ud, live, rep);
}

static char L[LINES_MAX][NS_AUDIT_LINE_MAX];
static char M[LINES_MAX][NS_AUDIT_LINE_MAX];

/* FROST entries (FrostCommit, FrostSign): their detail is covered by the hash. */
static void frost_entries(const uint8_t keys[32])
{
    ns_buf t, b;
    ns_audit *a = NULL;
    ns_audit_report rep;
    uint8_t sha[32] = {1}, ud[32];
    ns_buf_init(&t, 1 << 20);
    CHECK_ERR(ns_audit_new(&a, keys, 100, 60000, sink, &t), NS_OK, "a trail for FROST entries");
    ns_audit_user_data(a, ud);
    ns_audit_append_frost(a, "coordinator", "treasury", 1, sha, "OK", "commit count=4");
    ns_audit_append_frost(a, "coordinator", "treasury", 0, sha, "OK",
                          "sign commitment=000000011122334455667788990011aa set=1,3");
    ns_audit_append(a, "coordinator", "plain", 0, sha, "OK");
    ns_audit_close(a);
    CHECK_ERR(ns_audit_verify(t.data, t.len, ud, 0, &rep), NS_OK,
              "a trail with FROST entries verifies (%zu entries)", rep.entries);
    CHECK(strstr((const char *)t.data, "\"input\":\"commitments\"") &&
              strstr((const char *)t.data,
                     "\"frost\":\"sign commitment=000000011122334455667788990011aa "
                     "set=1,3\""),
          "FROST entries carry the input kind and the detail");
    static char M2[LINES_MAX][NS_AUDIT_LINE_MAX];
    static char T2[LINES_MAX][NS_AUDIT_LINE_MAX];
    size_t n = split(&t, T2);
    const char *edits[][2] = {{"set=1,3", "set=1,2"},
                              {"commit count=4", "commit count=5"},
                              {"\"input\":\"commitments\"", "\"input\":\"message\""}};
    for (size_t i = 0; i < sizeof edits / sizeof *edits; i++) {
        memcpy(M2, T2, sizeof M2);
        for (size_t j = 0; j < n; j++) {
            char *p = strstr(M2[j], edits[i][0]);
            if (p && strlen(edits[i][0]) == strlen(edits[i][1])) {
                memcpy(p, edits[i][1], strlen(edits[i][1]));
            } else if (p) {
                char tail[NS_AUDIT_LINE_MAX];
                snprintf(tail, sizeof tail, "%s", p + strlen(edits[i][0]));
                snprintf(p, NS_AUDIT_LINE_MAX - (size_t)(p - M2[j]), "%s%s", edits[i][1], tail);
            }
        }
        b = join(M2, n);
        CHECK_ERR(verify(&b, ud, 0, &rep), NS_E_AUTH, "FROST entry edited (%s): detected",
                  edits[i][1]);
        ns_buf_free(&b);
    }
    /* The detail removed from a FROST entry: the entry no longer hashes (its own tag). */
    memcpy(M2, T2, sizeof M2);
    char *f = strstr(M2[2], ",\"frost\":\"");
    char *end = strstr(f + 10, "\"");
    memmove(f, end + 1, strlen(end + 1) + 1);
    b = join(M2, n);
    CHECK_ERR(verify(&b, ud, 0, &rep), NS_E_AUTH, "FROST detail removed: detected");
    ns_buf_free(&b);
    ns_buf_free(&t);
}

int main(void)
{
    uint8_t keys[32], ud[32], sha[32];
    memset(keys, 0x11, 32);
    ns_buf trail;
    ns_buf_init(&trail, 1 << 20);
    ns_audit *a;
    CHECK_ERR(ns_audit_new(&a, keys, 3, 60000, sink, &trail), NS_OK, "trail started");
    ns_audit_user_data(a, ud);
    uint8_t ud2[32];
    ns_audit_user_data_v2(ud2, keys, ns_audit_pub(a));
    CHECK(memcmp(ud, ud2, 32) == 0, "user_data is the v2 commitment of the keys and audit key");
    for (int i = 0; i < 7; i++) {
        crypto_hash_sha256(sha, (const uint8_t *)&i, sizeof i);
        ns_audit_append(a, "tcp:127.0.0.1:5000", i == 5 ? "evil\"\n\\key" : "payments", i & 1, sha,
                        i == 4 ? "NOT_FOUND" : "OK");
    }
    ns_audit_close(a);
    /* start, e0 e1 e2 H3, e3 e4 e5 H6, e6, final H7 */
    size_t n = split(&trail, L);
    CHECK(n == 11, "11 lines: start, 7 entries, 2 periodic heads, the final head (got %zu)", n);
    CHECK(strstr(L[0], "\"type\":\"start\"") && strstr(L[4], "\"type\":\"head\",\"count\":3") &&
              strstr(L[10], "\"final\":true"),
          "record order");
    CHECK(strstr(L[7], "\"key\":\"evil???key\"") != NULL,
          "client-chosen key id cleaned in the record (quote, newline, backslash)");
    ns_audit_report rep;
    CHECK_ERR(verify(&trail, ud, 0, &rep), NS_OK, "intact trail verifies against user_data");
    CHECK(rep.entries == 7 && rep.heads == 3 && rep.unsigned_tail == 0, "counts");
    CHECK_ERR(verify(&trail, NULL, 0, &rep), NS_OK, "verifies without an attestation too");

    /* Dropped entry (line 3 = seq 1). */
    memcpy(M, L, sizeof L);
    memmove(M[2], M[3], (n - 3) * NS_AUDIT_LINE_MAX);
    ns_buf b = join(M, n - 1);
    CHECK_ERR(verify(&b, ud, 0, &rep), NS_E_AUTH, "dropped entry detected");
    CHECK(rep.line == 3 && rep.seq == 2, "reported at line 3, seq 2 (got line %zu seq %lld)",
          rep.line, (long long)rep.seq);
    ns_buf_free(&b);

    /* Edited entry: status of seq 4 (line 7). */
    memcpy(M, L, sizeof L);
    char *st = strstr(M[6], "NOT_FOUND");
    CHECK(st != NULL, "seq 4 has status NOT_FOUND");
    memcpy(st, "PERMITTED", 9);
    b = join(M, n);
    CHECK_ERR(verify(&b, ud, 0, &rep), NS_E_AUTH, "edited status detected");
    CHECK(rep.line == 7 && rep.seq == 4, "reported at line 7, seq 4 (got %zu)", rep.line);
    CHECK(strstr(ns_err_msg(), "edited") != NULL, "message says edited: %s", ns_err_msg());
    ns_buf_free(&b);

    /* Reordered entries: swap lines 2 and 3. */
    memcpy(M, L, sizeof L);
    memcpy(M[1], L[2], NS_AUDIT_LINE_MAX);
    memcpy(M[2], L[1], NS_AUDIT_LINE_MAX);
    b = join(M, n);
    CHECK_ERR(verify(&b, ud, 0, &rep), NS_E_AUTH, "reordered entries detected");
    CHECK(rep.line == 2, "reported at line 2 (got %zu)", rep.line);
    ns_buf_free(&b);

    /* Appended line after the final head (a copy of an entry). */
    memcpy(M, L, sizeof L);
    memcpy(M[n], L[9], NS_AUDIT_LINE_MAX);
    b = join(M, n + 1);
    CHECK_ERR(verify(&b, ud, 0, &rep), NS_E_AUTH, "line appended after the final head detected");
    CHECK(rep.line == 12, "reported at line 12 (got %zu)", rep.line);
    ns_buf_free(&b);

    /* Cut short: the final head removed. */
    b = join(L, n - 1);
    CHECK_ERR(verify(&b, ud, 0, &rep), NS_E_AUTH, "missing final head detected");
    CHECK(rep.line == 10 && rep.seq == 6, "first unsigned entry reported (line %zu)", rep.line);
    CHECK_ERR(verify(&b, ud, 1, &rep), NS_OK, "--live accepts it");
    CHECK(rep.unsigned_tail == 1, "with one unsigned entry counted");
    ns_buf_free(&b);
    b = join(L, 9);
    CHECK_ERR(verify(&b, ud, 0, &rep), NS_E_AUTH, "cut after a periodic head: detected");
    /* --live accepts a trail cut exactly at a signed head; the bounds tell the cut apart. */
    CHECK_ERR(verify(&b, ud, 1, &rep), NS_OK, "--live: cut at a signed head verifies");
    CHECK(rep.unsigned_tail == 0 && rep.signed_entries == 6 && rep.last_head_ms > 0,
          "reported: 6 signed entries, no tail, the head's time (%zu, %lld)", rep.signed_entries,
          (long long)rep.last_head_ms);
    CHECK_ERR(ns_audit_check_bounds(&rep, -1, 0), NS_OK, "no bounds: ok");
    CHECK_ERR(ns_audit_check_bounds(&rep, -1, 7), NS_E_AUTH, "7 expected, 6 signed: cut");
    CHECK(strstr(ns_err_msg(), "fewer than the 7 expected") != NULL, "says so: %s", ns_err_msg());
    CHECK_ERR(ns_audit_check_bounds(&rep, -1, 6), NS_OK, "6 expected: ok");
    CHECK_ERR(ns_audit_check_bounds(&rep, rep.last_head_ms, 0), NS_OK, "since the head: ok");
    CHECK_ERR(ns_audit_check_bounds(&rep, rep.last_head_ms + 1, 0), NS_E_AUTH,
              "since after the head: cut");
    ns_buf_free(&b);
    b = join(L, 1);
    CHECK_ERR(verify(&b, ud, 1, &rep), NS_OK, "--live: the start record alone verifies");
    CHECK(rep.last_head_ms == -1 && rep.signed_entries == 0, "no head: time -1");
    CHECK_ERR(ns_audit_check_bounds(&rep, 0, 0), NS_E_AUTH, "--since with no signed head: fails");
    ns_buf_free(&b);

    /* A head edited (its count) no longer verifies. */
    memcpy(M, L, sizeof L);
    char *c = strstr(M[4], "\"count\":3");
    c[8] = '2';
    b = join(M, n);
    CHECK_ERR(verify(&b, ud, 0, &rep), NS_E_AUTH, "edited head detected");
    CHECK(rep.line == 5, "at line 5");
    ns_buf_free(&b);

    /* Replaced audit key: a whole new, self-consistent trail under another key. */
    ns_buf other;
    ns_buf_init(&other, 1 << 20);
    CHECK_ERR(ns_audit_new(&a, keys, 3, 60000, sink, &other), NS_OK, "second trail");
    for (int i = 0; i < 7; i++) {
        crypto_hash_sha256(sha, (const uint8_t *)&i, sizeof i);
        ns_audit_append(a, "tcp:127.0.0.1:5000", "payments", 0, sha, "OK");
    }
    ns_audit_close(a);
    CHECK_ERR(ns_audit_verify(other.data, other.len, NULL, 0, &rep), NS_OK,
              "the forged trail is self-consistent");
    CHECK_ERR(ns_audit_verify(other.data, other.len, ud, 0, &rep), NS_E_AUTH,
              "but not with the attested user_data");
    CHECK(rep.line == 1 && strstr(ns_err_msg(), "replaced audit key"), "reported at line 1: %s",
          ns_err_msg());
    /* Heads of the other key spliced into the first trail. */
    size_t n2 = split(&other, M);
    memcpy(M[0], L[0], NS_AUDIT_LINE_MAX);
    b = join(M, n2);
    CHECK_ERR(verify(&b, ud, 0, &rep), NS_E_AUTH, "entries of another trail spliced in: detected");
    CHECK(rep.line == 2, "at line 2 (got %zu)", rep.line);
    ns_buf_free(&b);
    ns_buf_free(&other);

    /* Malformed lines. */
    static const char v2[] = "{\"type\":\"start\",\"version\":2,\"time_ms\":1,\"audit_pub\":"
                             "\"00\",\"keys_commitment\":\"00\"}\n";
    const char *bad[] = {"", "not json\n", "[1]\n", "{\"type\":\"entry\"}\n", v2};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ns_err e = ns_audit_verify((const uint8_t *)bad[i], strlen(bad[i]), NULL, 0, &rep);
        CHECK(e != NS_OK && rep.line == 1, "malformed trail %zu refused at line 1", i);
    }
    memcpy(M, L, sizeof L);
    strcpy(M[3] + strlen(M[3]) - 2, ",\"x\":1}\n");
    b = join(M, n);
    CHECK_ERR(verify(&b, ud, 0, &rep), NS_E_PARSE, "extra member refused");
    ns_buf_free(&b);
    b = join(L, n);
    b.len--; /* no final newline */
    CHECK_ERR(verify(&b, ud, 0, &rep), NS_E_TRUNCATED, "cut-off last line refused");
    ns_buf_free(&b);
    ns_buf_free(&trail);
    frost_entries(keys);
    T_DONE();
}
