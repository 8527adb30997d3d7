/*
 * age: see age.h. Layout: input (raw fd/memory with a small peek buffer) -> optional armor
 * decoder -> header parser (re-run on a growing buffer until complete) -> stanza unwrapping ->
 * header MAC -> STREAM payload, one 64 KiB chunk at a time with one byte of look-ahead to know
 * which chunk is last. Nothing here prints or exits.
 *
 * Spec: https://c2sp.org/age (age v1), conformance: C2SP CCTV age vectors.
 */
#include "age.h"

#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codec.h"
#include "iox.h"
#include "rng.h"
#include "secret.h"

#define AGE_VERSION_LINE "age-encryption.org/v1"
#define AGE_BINARY_MAGIC "age-encryption.org/"
#define AGE_X25519_LABEL "age-encryption.org/v1/X25519"
#define AGE_SCRYPT_LABEL "age-encryption.org/v1/scrypt"
#define AGE_ARMOR_BEGIN "-----BEGIN AGE ENCRYPTED FILE-----"
#define AGE_ARMOR_END "-----END AGE ENCRYPTED FILE-----"
#define AGE_BODY_COLS 64u             /* stanza body line width */
#define AGE_ARMOR_COLS 64u            /* armor line width */
#define AGE_ENC_CHUNK (NS_AGE_CHUNK + NS_AGE_TAG)
#define AGE_NONCE_PREFIX 16u          /* payload nonce (HKDF salt) */
#define AGE_PEEK_MAX (NS_AGE_ARMOR_WS_MAX + 64u)
#define AGE_HDR_READ 16384u           /* header bytes read per attempt */
#define AGE_PASS_MAX 4096u            /* passphrase bytes */
#define AGE_ARMOR_IBUF 16384u
#define AGE_BATCH 8u                  /* chunks per read, opened on two threads */

const char *ns_age_stage_name(ns_age_stage s)
{
    switch (s) {
    case NS_AGE_STAGE_IDENTITIES: return "identities";
    case NS_AGE_STAGE_ARMOR: return "armor";
    case NS_AGE_STAGE_HEADER: return "header";
    case NS_AGE_STAGE_UNWRAP: return "no match";
    case NS_AGE_STAGE_MAC: return "header MAC";
    case NS_AGE_STAGE_PAYLOAD: return "payload";
    case NS_AGE_STAGE_OUTPUT: return "output";
    default: return "age";
    }
}

/* ---------------------------------------------------------------- HKDF-SHA-256 (RFC 5869) */

/* out = HKDF-SHA-256(ikm, salt, info), 32 bytes (one Expand block is all age needs). */
static void hkdf32(uint8_t out[32], const uint8_t *ikm, size_t ikm_len, const uint8_t *salt,
                   size_t salt_len, const char *info)
{
    static const uint8_t nokey[1] = {0};
    uint8_t prk[32];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, salt_len ? salt : nokey, salt_len);
    crypto_auth_hmacsha256_update(&st, ikm, ikm_len);
    crypto_auth_hmacsha256_final(&st, prk);
    uint8_t one = 1;
    crypto_auth_hmacsha256_init(&st, prk, sizeof prk);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)info, strlen(info));
    crypto_auth_hmacsha256_update(&st, &one, 1);
    crypto_auth_hmacsha256_final(&st, out);
    ns_wipe(prk, sizeof prk);
    ns_wipe(&st, sizeof st);
}

/* ---------------------------------------------------------------- bech32 identities */

static const char BECH32_CHARSET[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

static uint32_t bech32_polymod_step(uint32_t chk, uint8_t v)
{
    static const uint32_t gen[5] = {0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3};
    uint8_t top = (uint8_t)(chk >> 25);
    chk = ((chk & 0x1ffffff) << 5) ^ v;
    for (int i = 0; i < 5; i++) {
        if ((top >> i) & 1) {
            chk ^= gen[i];
        }
    }
    return chk;
}

/* Decodes a bech32 string of 32 bytes with human-readable part hrp (lowercase; the input may be
 * all upper or all lower case). what names the kind of string in messages. */
static ns_err bech32_decode32(uint8_t key[32], const char *s, size_t n, const char *hrp,
                              const char *what)
{
    const size_t hrp_len = strlen(hrp);
    /* hrp + '1' + 52 data chars (32 bytes) + 6 checksum chars */
    ENSURE(n == hrp_len + 1 + 52 + 6, NS_E_PARSE, "not an %s (%zu characters): wrong length", what,
           n);
    int lower = 0, upper = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        ENSURE(c >= 33 && c <= 126, NS_E_PARSE, "%s: invalid character", what);
        lower |= (c >= 'a' && c <= 'z');
        upper |= (c >= 'A' && c <= 'Z');
    }
    ENSURE(!(lower && upper), NS_E_PARSE, "%s: mixed case is not valid bech32", what);
    uint32_t chk = 1;
    for (size_t i = 0; i < hrp_len; i++) {
        char c = (char)(s[i] | 0x20);
        ENSURE(c == hrp[i] || (hrp[i] == '-' && s[i] == '-'), NS_E_PARSE, "%s: wrong prefix", what);
    }
    ENSURE(s[hrp_len] == '1', NS_E_PARSE, "%s: missing bech32 separator", what);
    for (size_t i = 0; i < hrp_len; i++) {
        chk = bech32_polymod_step(chk, (uint8_t)(hrp[i] >> 5));
    }
    chk = bech32_polymod_step(chk, 0);
    for (size_t i = 0; i < hrp_len; i++) {
        chk = bech32_polymod_step(chk, (uint8_t)(hrp[i] & 31));
    }
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t outn = 0;
    const size_t data_start = hrp_len + 1, data_end = n - 6;
    for (size_t i = data_start; i < n; i++) {
        char c = (char)(s[i] | 0x20);
        const char *pos = c ? strchr(BECH32_CHARSET, c) : NULL;
        if (pos == NULL) {
            ns_wipe(&acc, sizeof acc);
            BAIL(NS_E_PARSE, "%s: invalid bech32 character", what);
        }
        uint8_t v = (uint8_t)(pos - BECH32_CHARSET);
        chk = bech32_polymod_step(chk, v);
        if (i < data_end) {
            acc = ((acc << 5) | v) & 0xfff;
            bits += 5;
            if (bits >= 8) {
                bits -= 8;
                key[outn++] = (uint8_t)(acc >> bits);
            }
        }
    }
    int pad_ok = bits < 5 && (acc & ((1u << bits) - 1)) == 0;
    ns_wipe(&acc, sizeof acc);
    if (chk != 1 || outn != 32 || !pad_ok) {
        ns_wipe(key, 32);
        BAIL(NS_E_PARSE, "%s: bad bech32 checksum or padding", what);
    }
    return NS_OK;
}

ns_err ns_age_parse_x25519_identity(uint8_t key[32], const char *s, size_t n)
{
    return bech32_decode32(key, s, n, "age-secret-key-", "X25519 identity (AGE-SECRET-KEY-1...)");
}

ns_err ns_age_parse_x25519_recipient(uint8_t pk[32], const char *s, size_t n)
{
    return bech32_decode32(pk, s, n, "age", "X25519 recipient (age1...)");
}

/* Secret state of one decryption, in one locked allocation. */
typedef struct {
    uint8_t sk[NS_AGE_MAX_IDENTITIES][32];
    uint8_t pk[NS_AGE_MAX_IDENTITIES][32];
    size_t nids;
    size_t n_pq_ids; /* AGE-SECRET-KEY-PQ-1 lines: recognised, not supported */
    uint8_t file_key[NS_AGE_FILE_KEY];
    uint8_t key[32];   /* scratch: wrap key, MAC key, payload key */
    uint8_t ss[32];    /* X25519 shared secret */
    uint8_t mac[32];
} age_secrets;

static int is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Identity file text: blank lines and '#' comments skipped, one identity per line. */
static ns_err parse_identities(age_secrets *sec, const char *t, size_t n)
{
    size_t pos = 0, lineno = 0;
    while (pos < n) {
        size_t end = pos;
        while (end < n && t[end] != '\n') {
            end++;
        }
        size_t len = end - pos;
        lineno++;
        if (len > 0 && t[pos + len - 1] == '\r') {
            len--;
        }
        const char *line = t + pos;
        pos = end + 1;
        if (len == 0 || line[0] == '#') {
            continue;
        }
        if (len >= 18 && strncasecmp(line, "AGE-SECRET-KEY-PQ-", 18) == 0) {
            sec->n_pq_ids++;
            continue;
        }
        if (len >= 11 && strncasecmp(line, "AGE-PLUGIN-", 11) == 0) {
            BAIL(NS_E_UNSUPPORTED, "identity file line %zu: age plugins are not supported", lineno);
        }
        ENSURE(sec->nids < NS_AGE_MAX_IDENTITIES, NS_E_TOO_BIG,
               "more than %u identities: split the identity files", NS_AGE_MAX_IDENTITIES);
        ns_err e = ns_age_parse_x25519_identity(sec->sk[sec->nids], line, len);
        if (e != NS_OK) {
            return ns_fail_ctx(e, "identity file line %zu (expected AGE-SECRET-KEY-1...)", lineno);
        }
        crypto_scalarmult_base(sec->pk[sec->nids], sec->sk[sec->nids]);
        sec->nids++;
    }
    return NS_OK;
}

/* ---------------------------------------------------------------- input */

/* Copies up to n of the bytes buf[*pos..len) to p and advances *pos; returns how many. */
static size_t take_buffered(const uint8_t *buf, size_t len, size_t *pos, uint8_t *p, size_t n)
{
    size_t k = len - *pos;
    k = k < n ? k : n;
    if (k) {
        memcpy(p, buf + *pos, k);
    }
    *pos += k;
    return k;
}

typedef struct {
    int fd;
    const uint8_t *mem;
    size_t mem_len, mem_pos;
    uint8_t peek[AGE_PEEK_MAX];
    size_t peek_pos, peek_len;
} raw_in;

/* Reads from the underlying fd or memory, bypassing the peek buffer. */
static ns_err raw_read_src(raw_in *r, uint8_t *p, size_t n, size_t *got)
{
    if (r->fd < 0) {
        *got = take_buffered(r->mem, r->mem_len, &r->mem_pos, p, n);
        return NS_OK;
    }
    return ns_read_some(r->fd, p, n, got, -1);
}

static ns_err raw_read(raw_in *r, uint8_t *p, size_t n, size_t *got)
{
    *got = 0;
    if (r->peek_pos < r->peek_len) {
        *got = take_buffered(r->peek, r->peek_len, &r->peek_pos, p, n);
        return NS_OK;
    }
    return raw_read_src(r, p, n, got);
}

/* Fills the peek buffer (up to its size or EOF) so the format can be detected; raw_read then
 * replays it before reading on. Called once, before any raw_read. */
static ns_err raw_peek(raw_in *r)
{
    while (r->peek_len < sizeof r->peek) {
        size_t got;
        GUARD(raw_read_src(r, r->peek + r->peek_len, sizeof r->peek - r->peek_len, &got));
        if (got == 0) {
            break;
        }
        r->peek_len += got;
    }
    return NS_OK;
}

/* ASCII armor: strict PEM-like encoding (age spec "ASCII armor"): optional whitespace, the
 * BEGIN line, 64-column padded base64 lines (last one shorter or full), the END line, optional
 * whitespace. LF or CRLF line ends. Nothing else. */
typedef struct {
    raw_in *raw;
    uint8_t ibuf[AGE_ARMOR_IBUF];
    size_t ipos, ilen;
    int ieof;
    uint8_t out[48];
    size_t opos, olen;
    int started, done, expect_end;
    int failed;
} armor_dec;

static ns_err armor_getc(armor_dec *a, int *c)
{
    if (a->ipos == a->ilen) {
        if (a->ieof) {
            *c = -1;
            return NS_OK;
        }
        size_t got;
        GUARD(raw_read(a->raw, a->ibuf, sizeof a->ibuf, &got));
        a->ipos = 0;
        a->ilen = got;
        if (got == 0) {
            a->ieof = 1;
            *c = -1;
            return NS_OK;
        }
    }
    *c = a->ibuf[a->ipos++];
    return NS_OK;
}

/* Reads one line (without LF or CRLF) of at most max bytes. *eol 0 when it ended at EOF. */
static ns_err armor_line(armor_dec *a, char *line, size_t max, size_t *len, int *eol)
{
    size_t n = 0;
    *eol = 0;
    for (;;) {
        if (a->ipos == a->ilen) {
            int c;
            GUARD(armor_getc(a, &c)); /* refills, or reports EOF */
            if (c < 0) {
                break;
            }
            a->ipos--;
        }
        const uint8_t *p = a->ibuf + a->ipos;
        size_t avail = a->ilen - a->ipos;
        const uint8_t *nl = memchr(p, '\n', avail);
        size_t take = nl ? (size_t)(nl - p) : avail;
        ENSURE(take <= max - n, NS_E_PARSE, "armor: line longer than %u columns",
               AGE_ARMOR_COLS);
        memcpy(line + n, p, take);
        n += take;
        a->ipos += take;
        if (nl) {
            a->ipos++;
            *eol = 1;
            break;
        }
    }
    if (*eol && n > 0 && line[n - 1] == '\r') {
        n--;
    }
    *len = n;
    return NS_OK;
}

static ns_err armor_trailer(armor_dec *a)
{
    for (size_t i = 0;; i++) {
        int c;
        GUARD(armor_getc(a, &c));
        if (c < 0) {
            return NS_OK;
        }
        ENSURE(is_space((uint8_t)c), NS_E_PARSE, "armor: data after the END line");
        ENSURE(i < NS_AGE_ARMOR_WS_MAX, NS_E_PARSE, "armor: too much whitespace after END");
    }
}

static ns_err armor_next(armor_dec *a)
{
    char line[AGE_ARMOR_COLS + 2];
    size_t len;
    int eol;
    if (!a->started) {
        int c;
        size_t ws = 0;
        for (;;) {
            GUARD(armor_getc(a, &c));
            if (c < 0 || !is_space((uint8_t)c)) {
                break;
            }
            ENSURE(++ws <= NS_AGE_ARMOR_WS_MAX, NS_E_PARSE, "armor: too much leading whitespace");
        }
        ENSURE(c >= 0, NS_E_PARSE, "armor: empty input");
        a->ipos--; /* put c back: armor_getc read it from ibuf */
        ENSURE(armor_line(a, line, sizeof line, &len, &eol) == NS_OK && eol &&
                   len == strlen(AGE_ARMOR_BEGIN) && memcmp(line, AGE_ARMOR_BEGIN, len) == 0,
               NS_E_PARSE, "not an age file: neither the binary format nor '%s' armor",
               AGE_ARMOR_BEGIN);
        a->started = 1;
    }
    GUARD(armor_line(a, line, sizeof line, &len, &eol));
    if (len == strlen(AGE_ARMOR_END) && memcmp(line, AGE_ARMOR_END, len) == 0) {
        a->done = 1;
        return eol ? armor_trailer(a) : NS_OK;
    }
    ENSURE(eol, NS_E_PARSE, "armor: missing END line");
    ENSURE(!a->expect_end, NS_E_PARSE, "armor: a short line must be the last before END");
    ENSURE(len > 0, NS_E_PARSE, "armor: empty line");
    ENSURE(len <= AGE_ARMOR_COLS, NS_E_PARSE, "armor: line longer than %u columns",
           AGE_ARMOR_COLS);
    size_t outn;
    ENSURE(ns_b64_decode(a->out, sizeof a->out, &outn, line, len, NS_B64_PAD | NS_B64_STRICT) ==
               NS_OK,
           NS_E_PARSE, "armor: invalid or non-canonical base64");
    if (len < AGE_ARMOR_COLS || memchr(line, '=', len) != NULL) {
        a->expect_end = 1;
    }
    a->opos = 0;
    a->olen = outn;
    return NS_OK;
}

/* Fills as much of p as the armor holds (whole lines at a time), so callers loop rarely. */
static ns_err armor_read(armor_dec *a, uint8_t *p, size_t n, size_t *got)
{
    size_t w = 0;
    while (w < n) {
        if (a->opos == a->olen) {
            if (a->done) {
                break;
            }
            ns_err e = armor_next(a);
            if (e != NS_OK) {
                a->failed = 1;
                *got = 0;
                return e;
            }
            continue;
        }
        size_t k = a->olen - a->opos;
        k = k < n - w ? k : n - w;
        memcpy(p + w, a->out + a->opos, k);
        a->opos += k;
        w += k;
    }
    *got = w;
    return NS_OK;
}

/* The logical byte source: raw or armored, with the header's leftover bytes in front. */
typedef struct {
    raw_in raw;
    int armored;
    armor_dec arm;
    const uint8_t *pre;
    size_t pre_len, pre_pos;
} age_src;

static ns_err src_read(age_src *s, uint8_t *p, size_t n, size_t *got)
{
    if (s->pre_pos < s->pre_len) {
        *got = take_buffered(s->pre, s->pre_len, &s->pre_pos, p, n);
        return NS_OK;
    }
    return s->armored ? armor_read(&s->arm, p, n, got) : raw_read(&s->raw, p, n, got);
}

/* Reads until n bytes or EOF. */
static ns_err src_fill(age_src *s, uint8_t *p, size_t n, size_t *got)
{
    size_t have = 0;
    while (have < n) {
        size_t k;
        GUARD(src_read(s, p + have, n - have, &k));
        if (k == 0) {
            break;
        }
        have += k;
    }
    *got = have;
    return NS_OK;
}

static void src_init(age_src *s, const ns_age_input *in)
{
    memset(s, 0, sizeof *s);
    s->raw.fd = in->fd;
    s->raw.mem = in->mem;
    s->raw.mem_len = in->mem_len;
    s->arm.raw = &s->raw;
}

/* Binary iff the input starts like "age-encryption.org/" (an empty input counts as binary and
 * fails as a truncated header); anything else goes to the armor decoder. */
static ns_err src_detect(age_src *s)
{
    GUARD(raw_peek(&s->raw));
    size_t m = strlen(AGE_BINARY_MAGIC);
    size_t k = s->raw.peek_len < m ? s->raw.peek_len : m;
    s->armored = memcmp(s->raw.peek, AGE_BINARY_MAGIC, k) != 0;
    return NS_OK;
}

/* ---------------------------------------------------------------- header */

void ns_age_header_init(ns_age_header *h)
{
    memset(h, 0, sizeof *h);
    ns_buf_init(&h->bodies, NS_AGE_HEADER_MAX);
}

void ns_age_header_free(ns_age_header *h)
{
    ns_buf_free(&h->bodies);
}

const char *ns_age_stanza_arg(const ns_age_header *h, const ns_age_stanza *s, size_t i,
                              size_t *len)
{
    if (i >= s->nargs) {
        *len = 0;
        return NULL;
    }
    *len = s->arg_len[i];
    return (const char *)h->text + s->arg_off[i];
}

static int arg_eq(const ns_age_header *h, const ns_age_stanza *s, size_t i, const char *want)
{
    size_t len;
    const char *a = ns_age_stanza_arg(h, s, i, &len);
    return a != NULL && len == strlen(want) && memcmp(a, want, len) == 0;
}

/* Finds the next line: [*start, *start+*len) excluding '\n'; *pos moves past the '\n'. */
static ns_err hdr_line(const uint8_t *p, size_t n, size_t *pos, size_t *start, size_t *len)
{
    size_t limit = n < NS_AGE_HEADER_MAX ? n : NS_AGE_HEADER_MAX;
    const uint8_t *nl = *pos < limit ? memchr(p + *pos, '\n', limit - *pos) : NULL;
    if (nl == NULL) {
        ENSURE(n < NS_AGE_HEADER_MAX, NS_E_PARSE, "header longer than %u bytes",
               NS_AGE_HEADER_MAX);
        return ns_fail(NS_E_TRUNCATED, "header truncated");
    }
    *start = *pos;
    *len = (size_t)(nl - p) - *pos;
    *pos = (size_t)(nl - p) + 1;
    return NS_OK;
}

static int is_b64_char(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

ns_err ns_age_header_parse(ns_age_header *h, const uint8_t *p, size_t n)
{
    h->text = p;
    h->len = 0;
    h->nstanzas = 0;
    ns_buf_reset(&h->bodies);
    const size_t vlen = strlen(AGE_VERSION_LINE);
    /* Reject a wrong start at once instead of waiting for a newline that may never come. */
    size_t k = n < vlen + 1 ? n : vlen + 1;
    ENSURE(memcmp(p, AGE_VERSION_LINE "\n", k) == 0, NS_E_PARSE,
           "header: not an age v1 file (first line must be '%s')", AGE_VERSION_LINE);
    size_t pos = 0, st, len;
    GUARD(hdr_line(p, n, &pos, &st, &len));
    for (;;) {
        GUARD(hdr_line(p, n, &pos, &st, &len));
        const uint8_t *l = p + st;
        if (len >= 4 && memcmp(l, "--- ", 4) == 0) {
            ENSURE(len == 4 + 43, NS_E_PARSE, "header: MAC line has the wrong length");
            size_t macn;
            ENSURE(ns_b64_decode(h->mac, sizeof h->mac, &macn, (const char *)l + 4, 43,
                                 NS_B64_NOPAD | NS_B64_STRICT) == NS_OK &&
                       macn == 32,
                   NS_E_PARSE, "header: MAC is not canonical base64 of 32 bytes");
            h->mac_input_len = st + 3;
            h->len = pos;
            return NS_OK;
        }
        ENSURE(len >= 3 && memcmp(l, "-> ", 3) == 0, NS_E_PARSE,
               "header: line %zu is neither a stanza ('-> ') nor the MAC ('--- ')",
               h->nstanzas + 2);
        ENSURE(h->nstanzas < NS_AGE_MAX_STANZAS, NS_E_TOO_BIG, "header: more than %u stanzas",
               NS_AGE_MAX_STANZAS);
        ns_age_stanza *s = &h->stanzas[h->nstanzas];
        memset(s, 0, sizeof *s);
        size_t i = 3;
        for (;;) {
            size_t a = i;
            while (i < len && l[i] != ' ') {
                ENSURE(l[i] >= 0x21 && l[i] <= 0x7e, NS_E_PARSE,
                       "header: invalid character in a stanza argument");
                i++;
            }
            ENSURE(i > a, NS_E_PARSE, "header: empty stanza argument");
            ENSURE(s->nargs < NS_AGE_MAX_ARGS, NS_E_PARSE, "header: more than %u arguments",
                   NS_AGE_MAX_ARGS);
            s->arg_off[s->nargs] = (uint32_t)(st + a);
            s->arg_len[s->nargs] = (uint32_t)(i - a);
            s->nargs++;
            if (i == len) {
                break;
            }
            i++; /* the single space */
        }
        s->body_off = (uint32_t)h->bodies.len;
        for (;;) {
            GUARD(hdr_line(p, n, &pos, &st, &len));
            ENSURE(len <= AGE_BODY_COLS, NS_E_PARSE,
                   "header: stanza body line longer than %u columns", AGE_BODY_COLS);
            for (size_t j = 0; j < len; j++) {
                ENSURE(is_b64_char(p[st + j]), NS_E_PARSE,
                       "header: invalid character in a stanza body");
            }
            GUARD(ns_buf_reserve(&h->bodies, 48));
            size_t outn;
            ENSURE(ns_b64_decode(h->bodies.data + h->bodies.len, 48, &outn,
                                 (const char *)p + st, len, NS_B64_NOPAD | NS_B64_STRICT) ==
                       NS_OK,
                   NS_E_PARSE, "header: stanza body is not canonical base64");
            h->bodies.len += outn;
            if (len < AGE_BODY_COLS) {
                break;
            }
        }
        s->body_len = (uint32_t)(h->bodies.len - s->body_off);
        h->nstanzas++;
    }
}

/* ---------------------------------------------------------------- unwrapping */

typedef struct {
    const ns_age_opts *opts;
    age_secrets *sec;
    ns_buf pass;
    int have_pass;
} age_unwrap;

static ns_err decode_exact(uint8_t *out, size_t want, const char *s, size_t n, const char *what)
{
    uint8_t tmp[64];
    size_t got;
    ENSURE(n <= 86 &&
               ns_b64_decode(tmp, sizeof tmp, &got, s, n, NS_B64_NOPAD | NS_B64_STRICT) == NS_OK &&
               got == want,
           NS_E_PARSE, "header: %s is not canonical base64 of %zu bytes", what, want);
    memcpy(out, tmp, want);
    return NS_OK;
}

/* X25519 stanza: "-> X25519 <share>", body = ChaCha20-Poly1305(wrap key, file key).
 * *found set when an identity opened it; structural errors are header failures. */
static ns_err unwrap_x25519(age_unwrap *u, const ns_age_header *h, const ns_age_stanza *s,
                            int *found)
{
    age_secrets *sec = u->sec;
    uint8_t share[32];
    ENSURE(s->nargs == 2, NS_E_PARSE, "header: X25519 stanza must have exactly one argument");
    size_t alen;
    const char *a = ns_age_stanza_arg(h, s, 1, &alen);
    GUARD(decode_exact(share, 32, a, alen, "X25519 share"));
    ENSURE(s->body_len == NS_AGE_FILE_KEY + NS_AGE_TAG, NS_E_PARSE,
           "header: X25519 stanza body must be %u bytes", NS_AGE_FILE_KEY + NS_AGE_TAG);
    const uint8_t *body = h->bodies.data + s->body_off;
    static const uint8_t zero_nonce[12] = {0};
    for (size_t i = 0; i < sec->nids; i++) {
        if (crypto_scalarmult(sec->ss, sec->sk[i], share) != 0) {
            ns_wipe(sec->ss, sizeof sec->ss);
            BAIL(NS_E_PARSE, "header: X25519 share is a low-order point");
        }
        uint8_t salt[64];
        memcpy(salt, share, 32);
        memcpy(salt + 32, sec->pk[i], 32);
        hkdf32(sec->key, sec->ss, 32, salt, sizeof salt, AGE_X25519_LABEL);
        ns_wipe(sec->ss, sizeof sec->ss);
        int rc = crypto_aead_chacha20poly1305_ietf_decrypt_detached(
            sec->file_key, NULL, body, NS_AGE_FILE_KEY, body + NS_AGE_FILE_KEY, NULL, 0,
            zero_nonce, sec->key);
        ns_wipe(sec->key, sizeof sec->key);
        if (rc == 0) {
            *found = 1;
            return NS_OK;
        }
    }
    return NS_OK;
}

/* Work factor: decimal, no sign, no leading zero, 1..max. */
static ns_err parse_work_factor(const char *a, size_t n, unsigned max, unsigned *wf)
{
    ENSURE(n >= 1 && n <= 2 && a[0] >= '1' && a[0] <= '9', NS_E_PARSE,
           "header: scrypt work factor is not a canonical decimal in 1..%u", max);
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        ENSURE(a[i] >= '0' && a[i] <= '9', NS_E_PARSE,
               "header: scrypt work factor is not a decimal");
        v = v * 10 + (unsigned)(a[i] - '0');
    }
    ENSURE(v <= max, NS_E_PARSE,
           "header: scrypt work factor 2^%u exceeds the limit 2^%u (raise it only for files you "
           "trust: --max-work-factor)",
           v, max);
    *wf = v;
    return NS_OK;
}

static ns_err unwrap_scrypt(age_unwrap *u, const ns_age_header *h, const ns_age_stanza *s,
                            int *found)
{
    age_secrets *sec = u->sec;
    unsigned max = u->opts->scrypt_max_log2n ? u->opts->scrypt_max_log2n : NS_AGE_SCRYPT_MAX_LOG2N;
    if (max > NS_AGE_SCRYPT_HARD_LOG2N) {
        max = NS_AGE_SCRYPT_HARD_LOG2N;
    }
    ENSURE(s->nargs == 3, NS_E_PARSE, "header: scrypt stanza must have exactly two arguments");
    uint8_t salt[28 + 16];
    memcpy(salt, AGE_SCRYPT_LABEL, 28);
    size_t alen;
    const char *a = ns_age_stanza_arg(h, s, 1, &alen);
    GUARD(decode_exact(salt + 28, 16, a, alen, "scrypt salt"));
    unsigned wf = 0;
    a = ns_age_stanza_arg(h, s, 2, &alen);
    GUARD(parse_work_factor(a, alen, max, &wf));
    ENSURE(s->body_len == NS_AGE_FILE_KEY + NS_AGE_TAG, NS_E_PARSE,
           "header: scrypt stanza body must be %u bytes", NS_AGE_FILE_KEY + NS_AGE_TAG);
    if (u->opts->passphrase == NULL) {
        return NS_OK; /* no passphrase source: no match */
    }
    if (!u->have_pass) {
        ns_err e = u->opts->passphrase(u->opts->passphrase_ctx, &u->pass);
        if (e != NS_OK) {
            return ns_fail_ctx(e, "reading the passphrase");
        }
        u->have_pass = 1;
    }
    if (crypto_pwhash_scryptsalsa208sha256_ll(u->pass.data ? u->pass.data : salt, u->pass.len,
                                              salt, sizeof salt, (uint64_t)1 << wf, 8, 1,
                                              sec->key, sizeof sec->key) != 0) {
        ns_wipe(sec->key, sizeof sec->key);
        BAIL(NS_E_NOMEM, "scrypt with work factor 2^%u failed (needs %llu MiB of memory)", wf,
             (unsigned long long)((128ull * 8ull) << wf) >> 20);
    }
    static const uint8_t zero_nonce[12] = {0};
    const uint8_t *body = h->bodies.data + s->body_off;
    int rc = crypto_aead_chacha20poly1305_ietf_decrypt_detached(
        sec->file_key, NULL, body, NS_AGE_FILE_KEY, body + NS_AGE_FILE_KEY, NULL, 0, zero_nonce,
        sec->key);
    ns_wipe(sec->key, sizeof sec->key);
    *found = rc == 0;
    return NS_OK;
}

static ns_err unwrap_file_key(age_unwrap *u, const ns_age_header *h)
{
    int n_scrypt = 0, n_pq = 0;
    for (size_t i = 0; i < h->nstanzas; i++) {
        n_scrypt += arg_eq(h, &h->stanzas[i], 0, "scrypt");
        n_pq += arg_eq(h, &h->stanzas[i], 0, "mlkem768x25519");
    }
    ENSURE(n_scrypt == 0 || h->nstanzas == 1, NS_E_PARSE,
           "header: a scrypt stanza must be the only stanza");
    for (size_t i = 0; i < h->nstanzas; i++) {
        const ns_age_stanza *s = &h->stanzas[i];
        int found = 0;
        if (arg_eq(h, s, 0, "X25519")) {
            GUARD(unwrap_x25519(u, h, s, &found));
        } else if (arg_eq(h, s, 0, "scrypt")) {
            GUARD(unwrap_scrypt(u, h, s, &found));
        } /* other types: skipped, as the spec requires */
        if (found) {
            return NS_OK;
        }
    }
    if (n_pq > 0 || (u->sec->n_pq_ids > 0 && u->sec->nids == 0 && n_scrypt == 0)) {
        BAIL(NS_E_UNSUPPORTED,
             "no identity matched; post-quantum mlkem768x25519 recipients/identities are not "
             "supported by nsign: encrypt to an X25519 recipient");
    }
    if (n_scrypt > 0) {
        ENSURE(u->opts->passphrase != NULL, NS_E_NO_MATCH,
               "the file is encrypted with a passphrase: give --passphrase-file or run on a TTY");
        BAIL(NS_E_NO_MATCH, "wrong passphrase (the scrypt stanza did not open)");
    }
    BAIL(NS_E_NO_MATCH,
         "no identity matched any of the %zu recipient stanza(s) (%zu X25519 identities tried): "
         "check that the file was encrypted to this key",
         h->nstanzas, u->sec->nids);
}

/* ---------------------------------------------------------------- payload */

static void stream_nonce(uint8_t nonce[12], uint64_t counter, int last)
{
    memset(nonce, 0, 12);
    ns_put_be64(nonce + 3, counter);
    nonce[11] = last ? 1 : 0;
}

/* One encrypted chunk to open. */
enum { JOB_OK, JOB_AUTH, JOB_TRAILING, JOB_TRUNCATED };
typedef struct {
    const uint8_t *ct;
    size_t clen; /* >= NS_AGE_TAG */
    uint64_t counter;
    int last;    /* what the length says: the stream's final chunk */
    uint8_t *pt;
    int result;
} age_job;

static int open_chunk(age_job *j, const uint8_t key[32], int last)
{
    uint8_t nonce[12];
    size_t plen = j->clen - NS_AGE_TAG;
    stream_nonce(nonce, j->counter, last);
    return crypto_aead_chacha20poly1305_ietf_decrypt_detached(j->pt, NULL, j->ct, plen,
                                                              j->ct + plen, NULL, 0, nonce, key);
}

static void job_run(age_job *j, const uint8_t key[32])
{
    if (open_chunk(j, key, j->last) == 0) {
        j->result = JOB_OK;
    } else if (!j->last) {
        /* A full chunk flagged last, followed by more bytes: released, then an error. */
        j->result = open_chunk(j, key, 1) == 0 ? JOB_TRAILING : JOB_AUTH;
    } else if (j->clen == AGE_ENC_CHUNK) {
        /* A full chunk not flagged last, then EOF: released, then a truncation error. */
        j->result = open_chunk(j, key, 0) == 0 ? JOB_TRUNCATED : JOB_AUTH;
    } else {
        j->result = JOB_AUTH;
    }
}

/* Chunks are independent (the nonce is the counter), so a batch is opened on two threads: both
 * claim jobs from a shared counter, so neither waits for the other if it is descheduled (busy
 * hosts). Plaintext is still released strictly in order, and only up to the first chunk that
 * failed. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    age_job *jobs;
    size_t njobs;
    const uint8_t *key;
    atomic_size_t next;     /* next job to claim */
    size_t busy;            /* the helper is inside a batch (under mu) */
    uint64_t gen;
    int quit, running;
    pthread_t th;
} age_pool;

static void pool_claim(age_pool *p, age_job *jobs, size_t n, const uint8_t *key)
{
    for (;;) {
        size_t i = atomic_fetch_add(&p->next, 1);
        if (i >= n) {
            return;
        }
        job_run(&jobs[i], key);
    }
}

static void *pool_main(void *arg)
{
    age_pool *p = arg;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->gen == seen && !p->quit) {
            pthread_cond_wait(&p->cv, &p->mu);
        }
        if (p->quit) {
            break;
        }
        seen = p->gen;
        age_job *jobs = p->jobs;
        size_t n = p->njobs;
        const uint8_t *key = p->key;
        p->busy = 1;
        pthread_mutex_unlock(&p->mu);
        pool_claim(p, jobs, n, key);
        pthread_mutex_lock(&p->mu);
        p->busy = 0;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void pool_run(age_pool *p, age_job *jobs, size_t n, const uint8_t *key)
{
    if (n > 1 && !p->running) {
        pthread_mutex_init(&p->mu, NULL);
        pthread_cond_init(&p->cv, NULL);
        p->running = pthread_create(&p->th, NULL, pool_main, p) == 0;
        if (!p->running) {
            pthread_mutex_destroy(&p->mu);
            pthread_cond_destroy(&p->cv);
        }
    }
    if (n < 2 || !p->running) {
        for (size_t i = 0; i < n; i++) {
            job_run(&jobs[i], key);
        }
        return;
    }
    pthread_mutex_lock(&p->mu);
    while (p->busy) { /* the helper woke late for the previous batch: let it see it is done */
        pthread_cond_wait(&p->cv, &p->mu);
    }
    p->jobs = jobs;
    p->njobs = n;
    p->key = key;
    atomic_store(&p->next, 0);
    p->gen++;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pool_claim(p, jobs, n, key);
    /* All jobs are claimed; wait until the helper finished the one it may hold. It can only
     * still be in this batch if it woke for it (gen seen) and set busy. */
    pthread_mutex_lock(&p->mu);
    while (p->busy) {
        pthread_cond_wait(&p->cv, &p->mu);
    }
    pthread_mutex_unlock(&p->mu);
}

static void pool_stop(age_pool *p)
{
    if (!p->running) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->th, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    p->running = 0;
}

/* STREAM: chunks of 64 KiB + tag; the last one flagged and possibly shorter. Reads a batch of
 * chunks plus one byte of look-ahead (which tells whether the stream goes on), opens them, and
 * releases their plaintext in order. Memory: AGE_BATCH chunks of ciphertext and plaintext. */
static ns_err payload_decrypt(age_src *src, age_secrets *sec, ns_age_sink_fn sink,
                              void *sink_ctx, ns_age_stage *stage)
{
    uint8_t nonce_prefix[AGE_NONCE_PREFIX];
    size_t got;
    *stage = NS_AGE_STAGE_PAYLOAD;
    GUARD(src_fill(src, nonce_prefix, sizeof nonce_prefix, &got));
    if (got < sizeof nonce_prefix) {
        *stage = NS_AGE_STAGE_HEADER;
        BAIL(NS_E_TRUNCATED, "the payload nonce is missing or short (%zu of 16 bytes)", got);
    }
    const size_t ctcap = AGE_BATCH * AGE_ENC_CHUNK + 1, ptcap = AGE_BATCH * NS_AGE_CHUNK;
    uint8_t *buf = malloc(ctcap);
    uint8_t *pt = ns_secret_alloc(ptcap);
    age_pool *pool = calloc(1, sizeof *pool);
    age_job jobs[AGE_BATCH];
    ns_err e = NS_OK;
    if (buf == NULL || pt == NULL || pool == NULL) {
        e = ns_fail(NS_E_NOMEM, "payload: out of memory");
        goto out;
    }
    hkdf32(sec->key, sec->file_key, NS_AGE_FILE_KEY, nonce_prefix, sizeof nonce_prefix,
           "payload");
    size_t have = 0; /* bytes in buf */
    uint64_t counter = 0;
    for (int final = 0; !final;) {
        GUARD_GOTO(src_fill(src, buf + have, ctcap - have, &got), e, out);
        have += got;
        final = have < ctcap;
        size_t data = final ? have : ctcap - 1;
        size_t n = (data + AGE_ENC_CHUNK - 1) / AGE_ENC_CHUNK;
        if (n == 0) {
            e = ns_fail(NS_E_TRUNCATED, "payload: no chunks after the nonce");
            goto out;
        }
        /* Structural checks of the stream's final chunk (only ever the last job). */
        size_t fin_len = data - (n - 1) * AGE_ENC_CHUNK;
        size_t njobs = n;
        ns_err fin_err = NS_OK;
        if (final && fin_len < NS_AGE_TAG) {
            fin_err = NS_E_TRUNCATED;
            njobs = n - 1;
        } else if (final && fin_len == NS_AGE_TAG && counter + n - 1 > 0) {
            fin_err = NS_E_PARSE;
            njobs = n - 1;
        }
        for (size_t i = 0; i < njobs; i++) {
            jobs[i] = (age_job){.ct = buf + i * AGE_ENC_CHUNK,
                                .clen = i + 1 < n ? AGE_ENC_CHUNK : fin_len,
                                .counter = counter + i,
                                .last = final && i + 1 == n,
                                .pt = pt + i * NS_AGE_CHUNK};
        }
        pool_run(pool, jobs, njobs, sec->key);
        for (size_t i = 0; i < njobs && e == NS_OK; i++) {
            const age_job *j = &jobs[i];
            if (j->result == JOB_AUTH) {
                e = ns_fail(NS_E_AUTH,
                            "payload: chunk %llu failed authentication (file corrupted, "
                            "truncated or tampered with)",
                            (unsigned long long)j->counter);
                break;
            }
            if (j->clen > NS_AGE_TAG) {
                e = sink(sink_ctx, j->pt, j->clen - NS_AGE_TAG);
                if (e != NS_OK) {
                    *stage = NS_AGE_STAGE_OUTPUT;
                    break;
                }
            }
            if (j->result == JOB_TRAILING) {
                e = ns_fail(NS_E_PARSE, "payload: data after the final chunk");
            } else if (j->result == JOB_TRUNCATED) {
                e = ns_fail(NS_E_TRUNCATED,
                            "payload: the file ends without a final chunk (truncated)");
            }
        }
        sodium_memzero(pt, njobs * NS_AGE_CHUNK); /* word-wise: ns_wipe is byte-wise */
        if (e == NS_OK && fin_err == NS_E_TRUNCATED) {
            e = ns_fail(fin_err, "payload: chunk %llu is shorter than its tag",
                        (unsigned long long)(counter + n - 1));
        } else if (e == NS_OK && fin_err == NS_E_PARSE) {
            e = ns_fail(fin_err, "payload: empty final chunk after a full one");
        }
        if (e != NS_OK) {
            goto out;
        }
        buf[0] = buf[ctcap - 1];
        have = 1;
        counter += n;
        if (counter >> 40) { /* 2^40 chunks of 64 KiB: far beyond any real file */
            e = ns_fail(NS_E_TOO_BIG, "payload: too many chunks");
            goto out;
        }
    }
    *stage = NS_AGE_STAGE_NONE;
out:
    if (pool != NULL) {
        pool_stop(pool);
    }
    ns_wipe(sec->key, sizeof sec->key);
    if (pt != NULL) {
        ns_secret_free(pt, ptcap);
    }
    free(pool);
    free(buf);
    return e;
}

/* ---------------------------------------------------------------- top level */

static ns_err age_decrypt_inner(age_src *src, ns_age_header *h, ns_buf *hb, age_unwrap *u,
                                ns_age_sink_fn sink, void *sink_ctx,
                                ns_age_stage *stage)
{
    age_secrets *sec = u->sec;
    *stage = NS_AGE_STAGE_IDENTITIES;
    GUARD(parse_identities(sec, u->opts->identities ? u->opts->identities : "",
                           u->opts->identities_len));
    *stage = NS_AGE_STAGE_HEADER;
    GUARD(src_detect(src));
    for (;;) {
        ns_err e = ns_age_header_parse(h, hb->data ? hb->data : (const uint8_t *)"", hb->len);
        if (e == NS_OK) {
            break;
        }
        if (e != NS_E_TRUNCATED) {
            return e;
        }
        GUARD(ns_buf_reserve(hb, AGE_HDR_READ));
        size_t got;
        GUARD(src_read(src, hb->data + hb->len, AGE_HDR_READ, &got));
        ENSURE(got > 0, NS_E_PARSE, "header: the file ends before the header is complete");
        hb->len += got;
    }
    src->pre = hb->data + h->len;
    src->pre_len = hb->len - h->len;
    *stage = NS_AGE_STAGE_UNWRAP;
    ns_err e = unwrap_file_key(u, h);
    if (e != NS_OK) {
        if (e == NS_E_PARSE) {
            *stage = NS_AGE_STAGE_HEADER;
        }
        return e;
    }
    *stage = NS_AGE_STAGE_MAC;
    hkdf32(sec->key, sec->file_key, NS_AGE_FILE_KEY, NULL, 0, "header");
    crypto_auth_hmacsha256(sec->mac, h->text, h->mac_input_len, sec->key);
    ns_wipe(sec->key, sizeof sec->key);
    int mac_ok = ns_ct_equal(sec->mac, h->mac, sizeof h->mac);
    ENSURE(mac_ok, NS_E_AUTH,
           "header MAC mismatch: the header was modified (or the file key is wrong)");
    return payload_decrypt(src, sec, sink, sink_ctx, stage);
}

ns_err ns_age_decrypt(const ns_age_input *in, const ns_age_opts *opts, ns_age_sink_fn sink,
                      void *sink_ctx, ns_age_stage *stage)
{
    ns_age_stage st_local;
    stage = stage ? stage : &st_local;
    *stage = NS_AGE_STAGE_NONE;
    ENSURE(sodium_init() >= 0, NS_E_CRYPTO, "libsodium initialisation failed");
    age_secrets *sec = ns_secret_alloc(sizeof *sec);
    age_src *src = calloc(1, sizeof *src);
    ns_age_header *h = malloc(sizeof *h);
    ns_err e;
    age_unwrap u = {.opts = opts};
    ns_buf hb;
    ns_buf_init(&hb, NS_AGE_HEADER_MAX + AGE_HDR_READ);
    ns_buf_init_secret(&u.pass, AGE_PASS_MAX);
    if (sec == NULL || src == NULL || h == NULL) {
        e = ns_fail(NS_E_NOMEM, "age: out of memory");
        goto out;
    }
    memset(sec, 0, sizeof *sec);
    u.sec = sec;
    ns_age_header_init(h);
    src_init(src, in);
    e = age_decrypt_inner(src, h, &hb, &u, sink, sink_ctx, stage);
    if (e != NS_OK && src->armored && src->arm.failed) {
        *stage = NS_AGE_STAGE_ARMOR;
    }
    ns_age_header_free(h);
out:
    if (sec != NULL) {
        ns_secret_free(sec, sizeof *sec);
    }
    ns_buf_free(&u.pass);
    ns_buf_free(&hb);
    free(src);
    free(h);
    return e;
}

static ns_err mem_sink(void *ctx, const uint8_t *p, size_t n)
{
    return ns_buf_append((ns_buf *)ctx, p, n);
}

ns_err ns_age_decrypt_mem(ns_buf *out, const uint8_t *ct, size_t ct_len, const char *identities,
                          size_t identities_len)
{
    ns_age_input in = {.fd = -1, .mem = ct, .mem_len = ct_len};
    ns_age_opts o = {.identities = identities, .identities_len = identities_len};
    ns_age_stage st;
    ns_err e = ns_age_decrypt(&in, &o, mem_sink, out, &st);
    if (e != NS_OK) {
        if (out->data != NULL) {
            ns_wipe(out->data, out->cap); /* also when out is not a secret buffer */
        }
        out->len = 0;
        return ns_fail_ctx(e, "age %s", ns_age_stage_name(st));
    }
    return NS_OK;
}

ns_err ns_age_armor_decode_mem(ns_buf *out, const uint8_t *p, size_t n)
{
    age_src *s = calloc(1, sizeof *s);
    ENSURE(s != NULL, NS_E_NOMEM, "out of memory");
    ns_age_input in = {.fd = -1, .mem = p, .mem_len = n};
    src_init(s, &in);
    s->armored = 1;
    ns_err e = NS_OK;
    for (;;) {
        uint8_t tmp[4096];
        size_t got;
        GUARD_GOTO(src_read(s, tmp, sizeof tmp, &got), e, done);
        if (got == 0) {
            break;
        }
        GUARD_GOTO(ns_buf_append(out, tmp, got), e, done);
    }
done:
    free(s);
    return e;
}

ns_err ns_age_payload_decrypt_mem(ns_buf *out, const uint8_t file_key[NS_AGE_FILE_KEY],
                                  const uint8_t *p, size_t n)
{
    ENSURE(sodium_init() >= 0, NS_E_CRYPTO, "libsodium initialisation failed");
    age_secrets *sec = ns_secret_alloc(sizeof *sec);
    age_src *s = calloc(1, sizeof *s);
    ns_err e = NS_E_NOMEM;
    if (sec != NULL && s != NULL) {
        memset(sec, 0, sizeof *sec);
        memcpy(sec->file_key, file_key, NS_AGE_FILE_KEY);
        ns_age_input in = {.fd = -1, .mem = p, .mem_len = n};
        src_init(s, &in);
        ns_age_stage st;
        e = payload_decrypt(s, sec, mem_sink, out, &st);
    } else {
        (void)ns_fail(e, "out of memory");
    }
    if (sec != NULL) {
        ns_secret_free(sec, sizeof *sec);
    }
    free(s);
    return e;
}

/* ---------------------------------------------------------------- encryption */

/* Secrets of one encryption, in one locked allocation. */
typedef struct {
    uint8_t file_key[NS_AGE_FILE_KEY];
    uint8_t eph[32]; /* X25519 ephemeral secret, one per recipient */
    uint8_t ss[32];
    uint8_t key[32]; /* wrap key, MAC key, payload key */
} age_enc_secrets;

static ns_err b64_line(ns_buf *out, const uint8_t *p, size_t n)
{
    char tmp[96];
    GUARD(ns_b64_encode(tmp, sizeof tmp, p, n, 0));
    return ns_buf_append_str(out, tmp);
}

/* "-> X25519 <E>\n<body>\n" for one recipient public key. */
static ns_err wrap_x25519(ns_buf *out, age_enc_secrets *sec, const uint8_t pk[32])
{
    static const uint8_t zero_nonce[12] = {0};
    uint8_t epk[32], salt[64], body[NS_AGE_FILE_KEY + NS_AGE_TAG];
    GUARD(ns_rng_bytes(sec->eph, sizeof sec->eph));
    ns_err rc = NS_OK;
    if (crypto_scalarmult_base(epk, sec->eph) != 0 ||
        crypto_scalarmult(sec->ss, sec->eph, pk) != 0) {
        rc = ns_fail(NS_E_USAGE, "age recipient is a low-order point: not a usable X25519 key");
    }
    ns_wipe(sec->eph, sizeof sec->eph);
    if (rc == NS_OK) {
        memcpy(salt, epk, 32);
        memcpy(salt + 32, pk, 32);
        hkdf32(sec->key, sec->ss, 32, salt, sizeof salt, AGE_X25519_LABEL);
        crypto_aead_chacha20poly1305_ietf_encrypt_detached(body, body + NS_AGE_FILE_KEY, NULL,
                                                           sec->file_key, NS_AGE_FILE_KEY, NULL, 0,
                                                           NULL, zero_nonce, sec->key);
        rc = ns_buf_append_str(out, "-> X25519 ");
        if (rc == NS_OK) {
            rc = b64_line(out, epk, 32);
        }
        if (rc == NS_OK) {
            rc = ns_buf_append_u8(out, '\n');
        }
        if (rc == NS_OK) {
            rc = b64_line(out, body, sizeof body); /* 43 characters: one short final line */
        }
        if (rc == NS_OK) {
            rc = ns_buf_append_u8(out, '\n');
        }
    }
    ns_wipe(sec->ss, sizeof sec->ss);
    ns_wipe(sec->key, sizeof sec->key);
    return rc;
}

static ns_err encrypt_inner(ns_buf *out, age_enc_secrets *sec, const uint8_t *pt, size_t pt_len,
                            const uint8_t (*pks)[32], size_t n)
{
    GUARD(ns_rng_bytes(sec->file_key, sizeof sec->file_key));
    GUARD(ns_buf_append_str(out, AGE_VERSION_LINE "\n"));
    for (size_t i = 0; i < n; i++) {
        GUARD(wrap_x25519(out, sec, pks[i]));
    }
    GUARD(ns_buf_append_str(out, "---"));
    uint8_t mac[32];
    hkdf32(sec->key, sec->file_key, NS_AGE_FILE_KEY, NULL, 0, "header");
    crypto_auth_hmacsha256(mac, out->data, out->len, sec->key);
    GUARD(ns_buf_append_u8(out, ' '));
    GUARD(b64_line(out, mac, sizeof mac));
    GUARD(ns_buf_append_u8(out, '\n'));
    uint8_t nonce_prefix[AGE_NONCE_PREFIX];
    GUARD(ns_rng_bytes(nonce_prefix, sizeof nonce_prefix));
    GUARD(ns_buf_append(out, nonce_prefix, sizeof nonce_prefix));
    hkdf32(sec->key, sec->file_key, NS_AGE_FILE_KEY, nonce_prefix, sizeof nonce_prefix, "payload");
    /* chunks of NS_AGE_CHUNK; the last one may be short, and is empty only for an empty file */
    size_t off = 0;
    uint64_t counter = 0;
    do {
        size_t take = pt_len - off < NS_AGE_CHUNK ? pt_len - off : NS_AGE_CHUNK;
        int last = off + take == pt_len;
        uint8_t nonce[12];
        stream_nonce(nonce, counter++, last);
        GUARD(ns_buf_reserve(out, take + NS_AGE_TAG));
        uint8_t *c = out->data + out->len;
        crypto_aead_chacha20poly1305_ietf_encrypt_detached(c, c + take, NULL, pt + off, take, NULL,
                                                           0, NULL, nonce, sec->key);
        out->len += take + NS_AGE_TAG;
        off += take;
    } while (off < pt_len);
    return NS_OK;
}

ns_err ns_age_encrypt_mem(ns_buf *out, const uint8_t *pt, size_t pt_len,
                          const char *const *recipients, size_t n)
{
    ENSURE(n >= 1 && n <= NS_AGE_MAX_STANZAS, NS_E_USAGE, "age: 1 to %u recipients",
           NS_AGE_MAX_STANZAS);
    ENSURE(sodium_init() >= 0, NS_E_CRYPTO, "age: libsodium failed to initialise");
    uint8_t(*pks)[32] = malloc(n * sizeof *pks);
    ENSURE(pks != NULL, NS_E_NOMEM, "age: out of memory");
    ns_err rc = NS_OK;
    for (size_t i = 0; i < n && rc == NS_OK; i++) {
        rc = ns_age_parse_x25519_recipient(pks[i], recipients[i], strlen(recipients[i]));
    }
    age_enc_secrets *sec = rc == NS_OK ? ns_secret_alloc(sizeof *sec) : NULL;
    if (rc == NS_OK && sec == NULL) {
        rc = ns_fail(NS_E_NOMEM, "age: cannot allocate locked memory (check RLIMIT_MEMLOCK)");
    }
    size_t start = out->len;
    if (rc == NS_OK) {
        rc = encrypt_inner(out, sec, pt, pt_len, (const uint8_t(*)[32])pks, n);
        if (rc != NS_OK) {
            out->len = start;
        }
    }
    if (sec) {
        ns_secret_free(sec, sizeof *sec);
    }
    free(pks);
    return rc;
}
