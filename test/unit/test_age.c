/*
 * Unit tests for age: bech32 identities, the header parser, the armor decoder, the STREAM
 * payload and the memory-to-memory entry point, with negative cases for each. The ciphertexts
 * below were made by the age tool (1.1.1) for the keys below; the conformance vectors run in
 * test/vectors/test_age.py and the interop tests in test/it/test_age.py.
 */
#include <sodium.h>
#include <stdlib.h>

#include "age.h"
#include "codec.h"
#include "t.h"

#define K1 "AGE-SECRET-KEY-1FCE4TA4KF3HTJ68LASP0XRNGYA2WR8K2PC6H3LUGP7WDXUZU0EESDCN835"
#define K1_HEX "4e3355f6b64c6eb968ffec02f30e682754e19eca0e3578ff880f9cd3705c7e73"
#define K2 "AGE-SECRET-KEY-12ZRRASKXCSHKQPRREFX6AW33L47Q3XU2E8H40K9EH2GUWDG9GFHSY0RR9M"
#define K_OTHER "AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM0"

/* "hello nsign\n" to K1's recipient. */
static const char ONE[] = "-----BEGIN AGE ENCRYPTED FILE-----\n"
                          "YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSA4R2pDS1ZGVVFBVnhGdjcx\n"
                          "bXJUcjArM1VNc05YQlVIM3k3YTJna2pqTGtVClpBWUd5VEhoL0Q4azdTditiMFNa\n"
                          "K05HUXQ0cDlFTDhQeFdLT2tvMWFyT28KLS0tIDdkM1dBQ0FscUY4a2QranJBZURj\n"
                          "TUozRis0am9NRmlwQWY2MDRFQWdBM1EK/DyknMeA5UrfonLY4djYttHXmz52HA64\n"
                          "kbtxzANBoZdfklZC2avyILKA0UE=\n"
                          "-----END AGE ENCRYPTED FILE-----\n";
/* "hello nsign\n" to K2's and K1's recipients. */
static const char TWO[] = "-----BEGIN AGE ENCRYPTED FILE-----\n"
                          "YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSBzNmVlZmdtaVlGeHcyMXRR\n"
                          "cncrM2tiMzI2VS9wMXZ2STdZQURpZUZnMUE4CnJSYmtVSkJVbURKSktjaE5NSVFQ\n"
                          "TUVOdDVBN01jUzdQR2kzR01jNkVtUGsKLT4gWDI1NTE5IEhGcEovVXRub3BtRDlW\n"
                          "R1E2VllCais4ZUUrLys5R3JaZ0lRSFZkMDJpQ3cKRXJiRHZOUmN4OUZFVFdKeE9G\n"
                          "N2pTdEVxbEFDUDV5SzRkMmpXc1QrKzdmawotLS0gdHRWQUVDRWJ5c0hRUkVYa09p\n"
                          "aFRuOWVZWnRoNUxxSGFkUTFtWUpyby85cwo4PyyARlZg6IIJiFpd9/CM25zNkylJ\n"
                          "6Tv0LdqdEjycvUWI0G3mjzVZy1tVtw==\n"
                          "-----END AGE ENCRYPTED FILE-----\n";
static const char PLAIN[] = "hello nsign\n";

static ns_err dec(ns_buf *out, const void *ct, size_t n, const char *ids)
{
    return ns_age_decrypt_mem(out, ct, n, ids, strlen(ids));
}

static void test_identity(void)
{
    uint8_t key[32], want[32];
    size_t n;
    CHECK(ns_hex_decode(want, sizeof want, &n, K1_HEX, 64) == NS_OK, "hex");
    CHECK_ERR(ns_age_parse_x25519_identity(key, K1, strlen(K1)), NS_OK, "identity parses");
    CHECK(memcmp(key, want, 32) == 0, "identity decodes to the right scalar");
    char lower[128];
    snprintf(lower, sizeof lower, "%s", K1);
    for (char *p = lower; *p; p++) {
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    }
    CHECK_ERR(ns_age_parse_x25519_identity(key, lower, strlen(lower)), NS_OK,
              "lowercase identity parses");
    lower[20] = (char)(lower[20] - 32);
    CHECK_ERR(ns_age_parse_x25519_identity(key, lower, strlen(lower)), NS_E_PARSE,
              "mixed case rejected");
    char bad[128];
    snprintf(bad, sizeof bad, "%s", K1);
    bad[40] = bad[40] == 'Q' ? 'P' : 'Q';
    CHECK_ERR(ns_age_parse_x25519_identity(key, bad, strlen(bad)), NS_E_PARSE,
              "bad checksum rejected");
    CHECK_ERR(ns_age_parse_x25519_identity(key, K1, strlen(K1) - 1), NS_E_PARSE,
              "short identity rejected");
    snprintf(bad, sizeof bad, "%s", K1);
    bad[4] = 'X';
    CHECK_ERR(ns_age_parse_x25519_identity(key, bad, strlen(bad)), NS_E_PARSE,
              "wrong human-readable part rejected");
    snprintf(bad, sizeof bad, "%s", K1);
    bad[30] = 'B'; /* 'b' is not in the bech32 alphabet */
    CHECK_ERR(ns_age_parse_x25519_identity(key, bad, strlen(bad)), NS_E_PARSE,
              "non-bech32 character rejected");
}

#define MACLINE "--- 0000000000000000000000000000000000000000000\n"
#define COLS64 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

static const char HDR[] = "age-encryption.org/v1\n"
                          "-> X25519 abc\n"
                          "AAAA\n"
                          "-> grease a b c\n"
                          "\n"
                          MACLINE;

static void parse_one(const char *text, ns_err want, const char *what)
{
    ns_age_header *h = malloc(sizeof *h);
    ns_age_header_init(h);
    CHECK_ERR(ns_age_header_parse(h, (const uint8_t *)text, strlen(text)), want, "header: %s",
              what);
    ns_age_header_free(h);
    free(h);
}

static void test_header(void)
{
    ns_age_header *h = malloc(sizeof *h);
    ns_age_header_init(h);
    char buf[512];
    snprintf(buf, sizeof buf, "%sPAYLOAD", HDR);
    CHECK_ERR(ns_age_header_parse(h, (const uint8_t *)buf, strlen(buf)), NS_OK, "header parses");
    CHECK(h->len == strlen(HDR), "header length stops at the MAC line");
    CHECK(h->nstanzas == 2 && h->stanzas[0].nargs == 2 && h->stanzas[1].nargs == 4,
          "stanzas and arguments counted");
    size_t len;
    const char *a = ns_age_stanza_arg(h, &h->stanzas[1], 3, &len);
    CHECK(a != NULL && len == 1 && a[0] == 'c', "stanza argument slice");
    CHECK(h->stanzas[0].body_len == 3 && h->stanzas[1].body_len == 0, "stanza bodies decoded");
    CHECK(h->mac_input_len == strlen(HDR) - 45, "MAC covers the header through '---'");
    for (size_t cut = 0; cut < strlen(HDR); cut += 7) {
        ns_err e = ns_age_header_parse(h, (const uint8_t *)HDR, cut);
        if (e != NS_E_TRUNCATED) {
            CHECK(0, "header prefix of %zu bytes asks for more input", cut);
        }
    }
    CHECK(1, "every prefix of a header asks for more input");
    ns_age_header_free(h);
    free(h);

    parse_one("age-encryption.org/v2\n", NS_E_PARSE, "version v2 rejected");
    parse_one("garbage without any newline", NS_E_PARSE, "garbage rejected at once");
    parse_one("age-encryption.org/v1\r\n", NS_E_PARSE, "CRLF rejected");
    parse_one("age-encryption.org/v1\n-> X25519  abc\n\n" MACLINE,
              NS_E_PARSE, "empty argument rejected");
    parse_one("age-encryption.org/v1\n->\n\n" MACLINE,
              NS_E_PARSE, "stanza without type rejected");
    parse_one("age-encryption.org/v1\n-> a\n" COLS64 "AAAA\n\n"
              MACLINE,
              NS_E_PARSE, "body line over 64 columns rejected");
    parse_one("age-encryption.org/v1\n-> a\n" COLS64 "\n"
              MACLINE,
              NS_E_PARSE, "missing short final body line rejected");
    parse_one("age-encryption.org/v1\n-> a\nAB\n\n" MACLINE,
              NS_E_PARSE, "non-canonical body rejected");
    parse_one("age-encryption.org/v1\n-> a\nAA==\n" MACLINE,
              NS_E_PARSE, "padded body rejected");
    parse_one("age-encryption.org/v1\n-> a\n\n--- 000000000000000000000000000000000000000000\n",
              NS_E_PARSE, "short MAC rejected");
    parse_one("age-encryption.org/v1\n-> a\n\n--- 0000000000000000000000000000000000000000000 \n",
              NS_E_PARSE, "MAC with trailing space rejected");
    parse_one("age-encryption.org/v1\n-> a\n\n---0000000000000000000000000000000000000000000\n",
              NS_E_PARSE, "MAC without space rejected");
    parse_one("age-encryption.org/v1\n-> a 1 2 3 4 5 6 7 8\n\n"
              MACLINE,
              NS_E_PARSE, "too many arguments rejected");
    parse_one("age-encryption.org/v1\n-> a \x7f\n\n" MACLINE,
              NS_E_PARSE, "non-VCHAR argument rejected");
    parse_one("age-encryption.org/v1\n- > a\n\n" MACLINE,
              NS_E_PARSE, "bad stanza start rejected");
}

static void armor_case(const char *text, ns_err want, const char *what)
{
    ns_buf out;
    ns_buf_init(&out, 1 << 20);
    CHECK_ERR(ns_age_armor_decode_mem(&out, (const uint8_t *)text, strlen(text)), want,
              "armor: %s", what);
    ns_buf_free(&out);
}

static void test_armor(void)
{
    ns_buf out;
    ns_buf_init(&out, 1 << 20);
    CHECK_ERR(ns_age_armor_decode_mem(&out, (const uint8_t *)ONE, strlen(ONE)), NS_OK,
              "armor decodes");
    CHECK(out.len > 22 && memcmp(out.data, "age-encryption.org/v1\n", 22) == 0,
          "armor decodes to a binary age file");
    ns_buf_free(&out);
#define B "-----BEGIN AGE ENCRYPTED FILE-----"
#define E "-----END AGE ENCRYPTED FILE-----"
    armor_case(" \r\n\t" B "\r\nZm9v\r\n" E "\r\n \n", NS_OK, "CRLF and surrounding whitespace");
    armor_case(B "\nZm9v\n" E, NS_OK, "no final newline");
    armor_case(B "\n" E "\n", NS_OK, "empty armor decodes to nothing");
    armor_case(B "\nZm9v\n", NS_E_PARSE, "missing END line");
    armor_case(B "\nZm9v\n\n" E "\n", NS_E_PARSE, "empty line");
    armor_case(B "\nZm8\n" E "\n", NS_E_PARSE, "missing padding");
    armor_case(B "\nZm9=\n" E "\n", NS_E_PARSE, "non-canonical base64");
    armor_case(B "\nZm9v \n" E "\n", NS_E_PARSE, "trailing whitespace in a line");
    armor_case(B "\nZg==\nZm9v\n" E "\n", NS_E_PARSE, "short line before the last");
    armor_case(B "\nZm9v\n" E "\ngarbage\n", NS_E_PARSE, "garbage after END");
    armor_case("garbage\n" B "\nZm9v\n" E "\n", NS_E_PARSE, "garbage before BEGIN");
    armor_case("-----BEGIN age ENCRYPTED FILE-----\nZm9v\n" E "\n", NS_E_PARSE, "lowercase label");
    armor_case(B "\nZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9v\n" E "\n",
               NS_E_PARSE, "line over 64 columns");
    armor_case("", NS_E_PARSE, "empty input");
#undef B
#undef E
}

static void test_decrypt_mem(void)
{
    ns_buf out;
    ns_buf_init_secret(&out, 1 << 20);
    CHECK_ERR(dec(&out, ONE, strlen(ONE), "# my key\n\n" K1 "\n"), NS_OK, "decrypts armored");
    CHECK(out.len == strlen(PLAIN) && memcmp(out.data, PLAIN, out.len) == 0, "plaintext right");
    ns_buf_reset(&out);
    CHECK_ERR(dec(&out, TWO, strlen(TWO), K_OTHER "\r\n" K1 "\r\n"), NS_OK,
              "two recipients, second identity, CRLF identity file");
    CHECK(out.len == strlen(PLAIN) && memcmp(out.data, PLAIN, out.len) == 0, "plaintext right");
    ns_buf_reset(&out);
    CHECK_ERR(dec(&out, TWO, strlen(TWO), K2), NS_OK, "two recipients, first stanza");
    ns_buf_reset(&out);
    CHECK_ERR(dec(&out, ONE, strlen(ONE), K_OTHER "\n" K2 "\n"), NS_E_NO_MATCH,
              "wrong identities: no match");
    CHECK(out.len == 0, "out empty after failure");
    CHECK_ERR(dec(&out, ONE, strlen(ONE), ""), NS_E_NO_MATCH, "no identities: no match");
    CHECK_ERR(dec(&out, ONE, strlen(ONE), "not a key\n"), NS_E_PARSE, "bad identity file");
    CHECK_ERR(dec(&out, ONE, strlen(ONE), "AGE-PLUGIN-YUBIKEY-1XYZ\n"), NS_E_UNSUPPORTED,
              "plugin identity unsupported");

    ns_buf bin;
    ns_buf_init(&bin, 1 << 20);
    CHECK(ns_age_armor_decode_mem(&bin, (const uint8_t *)ONE, strlen(ONE)) == NS_OK, "dearmor");
    CHECK_ERR(dec(&out, bin.data, bin.len, K1), NS_OK, "decrypts binary");
    ns_buf_reset(&out);
    bin.data[bin.len - 1] ^= 1;
    CHECK_ERR(dec(&out, bin.data, bin.len, K1), NS_E_AUTH, "tampered payload: auth failure");
    CHECK(out.len == 0, "no plaintext after a tag failure");
    bin.data[bin.len - 1] ^= 1;
    uint8_t *mac = memmem(bin.data, bin.len, "\n--- ", 5);
    CHECK(mac != NULL, "MAC line found");
    if (mac != NULL) {
        uint8_t orig = mac[5];
        mac[5] = orig == 'A' ? 'B' : 'A';
        CHECK_ERR(dec(&out, bin.data, bin.len, K1), NS_E_AUTH, "tampered MAC: auth failure");
        mac[5] = orig;
    }
    CHECK_ERR(dec(&out, bin.data, bin.len - 1, K1), NS_E_AUTH, "truncated payload fails");
    ns_buf big;
    ns_buf_init(&big, 1 << 20);
    CHECK(ns_buf_append(&big, bin.data, bin.len) == NS_OK && ns_buf_append_u8(&big, 0) == NS_OK,
          "append");
    CHECK(dec(&out, big.data, big.len, K1) != NS_OK && out.len == 0, "trailing byte fails");
    ns_buf_free(&big);
    ns_buf small;
    ns_buf_init_secret(&small, 4);
    CHECK_ERR(dec(&small, bin.data, bin.len, K1), NS_E_TOO_BIG, "output over its max fails");
    CHECK(small.len == 0, "and leaves out empty");
    ns_buf_free(&small);
    ns_buf_free(&bin);

    static const char pq[] = "age-encryption.org/v1\n-> mlkem768x25519 AAAA\nAAAA\n"
                             MACLINE;
    CHECK_ERR(dec(&out, pq, strlen(pq), K1), NS_E_UNSUPPORTED, "mlkem768x25519 only: unsupported");
    static const char scrypt[] = "age-encryption.org/v1\n-> scrypt AAAAAAAAAAAAAAAAAAAAAA 10\n"
                                 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"
                                 MACLINE;
    CHECK_ERR(dec(&out, scrypt, strlen(scrypt), K1), NS_E_NO_MATCH,
              "scrypt without a passphrase source: no match");
    static const char scrypt23[] = "age-encryption.org/v1\n-> scrypt AAAAAAAAAAAAAAAAAAAAAA 23\n"
                                   "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"
                                   MACLINE;
    CHECK_ERR(dec(&out, scrypt23, strlen(scrypt23), K1), NS_E_PARSE,
              "scrypt work factor 23 rejected before any work");
    CHECK_ERR(dec(&out, "", 0, K1), NS_E_PARSE, "empty input: header failure");
    ns_buf_free(&out);
}

/* Builds a STREAM payload of n plaintext bytes under key, optionally breaking its structure. */
static size_t make_payload(uint8_t *dst, const uint8_t fk[16], size_t n, int final_flag_on_full)
{
    uint8_t nonce16[16] = {7};
    memcpy(dst, nonce16, 16);
    size_t w = 16;
    uint8_t key[32], prk[32];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, nonce16, 16);
    crypto_auth_hmacsha256_update(&st, fk, 16);
    crypto_auth_hmacsha256_final(&st, prk);
    crypto_auth_hmacsha256_init(&st, prk, 32);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)"payload\x01", 8);
    crypto_auth_hmacsha256_final(&st, key);
    static uint8_t pt[NS_AGE_CHUNK];
    memset(pt, 'x', sizeof pt);
    uint64_t ctr = 0;
    size_t left = n;
    do {
        size_t k = left > NS_AGE_CHUNK ? NS_AGE_CHUNK : left;
        int last = left <= NS_AGE_CHUNK;
        if (final_flag_on_full == 0 && k == NS_AGE_CHUNK && left == NS_AGE_CHUNK) {
            last = 0; /* omit the final flag: a truncated stream */
        }
        uint8_t nonce[12] = {0};
        for (int i = 0; i < 8; i++) {
            nonce[10 - i] = (uint8_t)(ctr >> (8 * i));
        }
        nonce[11] = (uint8_t)last;
        unsigned long long cl;
        crypto_aead_chacha20poly1305_ietf_encrypt(dst + w, &cl, pt, k, NULL, 0, NULL, nonce, key);
        w += (size_t)cl;
        left -= k;
        ctr++;
    } while (left > 0);
    return w;
}

static void test_payload(void)
{
    static uint8_t ct[3 * (NS_AGE_CHUNK + 16) + 64];
    uint8_t fk[16] = {1, 2, 3};
    ns_buf out;
    ns_buf_init(&out, 1 << 20);
    size_t sizes[] = {0, 1, NS_AGE_CHUNK - 1, NS_AGE_CHUNK, NS_AGE_CHUNK + 1, 2 * NS_AGE_CHUNK};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = make_payload(ct, fk, sizes[i], 1);
        ns_buf_reset(&out);
        CHECK_ERR(ns_age_payload_decrypt_mem(&out, fk, ct, n), NS_OK, "payload of %zu bytes",
                  sizes[i]);
        CHECK(out.len == sizes[i], "payload of %zu bytes: length", sizes[i]);
    }
    size_t n = make_payload(ct, fk, NS_AGE_CHUNK, 0);
    ns_buf_reset(&out);
    CHECK_ERR(ns_age_payload_decrypt_mem(&out, fk, ct, n), NS_E_TRUNCATED,
              "full chunk without the final flag: truncated");
    CHECK(out.len == NS_AGE_CHUNK, "the authenticated chunk was released before the error");
    ns_buf_reset(&out);
    CHECK_ERR(ns_age_payload_decrypt_mem(&out, fk, ct, 16), NS_E_TRUNCATED, "no chunks");
    CHECK_ERR(ns_age_payload_decrypt_mem(&out, fk, ct, 10), NS_E_TRUNCATED, "short nonce");
    n = make_payload(ct, fk, 100, 1);
    uint8_t wrong[16] = {9};
    CHECK_ERR(ns_age_payload_decrypt_mem(&out, wrong, ct, n), NS_E_AUTH, "wrong file key");
    CHECK_ERR(ns_age_payload_decrypt_mem(&out, fk, ct, n - 1), NS_E_AUTH, "cut tag");
    ns_buf_free(&out);
}

/* The recipients of K1 and K2 (age-keygen -y). */
#define R1 "age195d4fzxtjz6fcqsumetp2s2qkwkza3h65993tncqwgkyvcrt4pcs9texe2"
#define R2 "age1e0en8jl5mgf3ghgqn2vh78v4l66y6094r4emkfytdhjwcasjlp3qydf6m7"

/* The encryptor, checked by the decryptor (the age CLI decrypts it in test/it/test_age.py and
 * test/it/test_frost_keygen.py). */
static void test_encrypt(void)
{
    static const size_t sizes[] = {
        0, 1, 12, NS_AGE_CHUNK - 1, NS_AGE_CHUNK, NS_AGE_CHUNK + 1, 2 * NS_AGE_CHUNK};
    uint8_t *pt = malloc(2 * NS_AGE_CHUNK);
    for (size_t i = 0; i < 2 * NS_AGE_CHUNK; i++) {
        pt[i] = (uint8_t)(i * 7 + 3);
    }
    const char *both[] = {R1, R2};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        ns_buf ct, o1, o2;
        ns_buf_init(&ct, 1u << 20);
        ns_buf_init(&o1, 1u << 20);
        ns_buf_init(&o2, 1u << 20);
        CHECK_ERR(ns_age_encrypt_mem(&ct, pt, sizes[s], both, 2), NS_OK,
                  "encrypt %zu bytes to two recipients", sizes[s]);
        size_t chunks = sizes[s] == 0 ? 1 : (sizes[s] + NS_AGE_CHUNK - 1) / NS_AGE_CHUNK;
        CHECK(ct.len > sizes[s] + 16 * chunks, "... %zu chunk(s)", chunks);
        CHECK(dec(&o1, ct.data, ct.len, K1) == NS_OK && o1.len == sizes[s] &&
                  (sizes[s] == 0 || memcmp(o1.data, pt, sizes[s]) == 0),
              "... the first recipient's identity decrypts it (%s)", ns_err_msg());
        CHECK(dec(&o2, ct.data, ct.len, K2) == NS_OK && o2.len == sizes[s] &&
                  (sizes[s] == 0 || memcmp(o2.data, pt, sizes[s]) == 0),
              "... the second recipient's identity decrypts it");
        ns_buf_reset(&o1);
        CHECK(dec(&o1, ct.data, ct.len, K_OTHER) == NS_E_NO_MATCH, "... another identity cannot");
        if (sizes[s] == 12) {
            ct.data[ct.len - 1] ^= 1;
            ns_buf_reset(&o1);
            CHECK(dec(&o1, ct.data, ct.len, K1) == NS_E_AUTH, "... a flipped payload bit fails");
        }
        ns_buf_free(&ct);
        ns_buf_free(&o1);
        ns_buf_free(&o2);
    }
    free(pt);
    static const struct {
        const char *r, *why;
    } bad[] = {
        {"age195d4fzxtjz6fcqsumetp2s2qkwkza3h65993tncqwgkyvcrt4pcs9texe3", "checksum"},
        {"age195D4fzxtjz6fcqsumetp2s2qkwkza3h65993tncqwgkyvcrt4pcs9texe2", "mixed case"},
        {"age195d4fzxtjz6fcqsumetp2s2qkwkza3h65993tncqwgkyvcrt4pcs9texe", "length"},
        {K1, "an identity, not a recipient"},
        {"ssh-ed25519 AAAA", "an SSH key"},
        {"", "empty"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ns_buf ct;
        ns_buf_init(&ct, 1u << 20);
        const char *r[] = {R1, bad[i].r};
        CHECK(ns_age_encrypt_mem(&ct, (const uint8_t *)"x", 1, r, 2) == NS_E_PARSE && ct.len == 0,
              "encrypt refuses a bad recipient (%s): %s", bad[i].why, ns_err_msg());
        ns_buf_free(&ct);
    }
    uint8_t pk[32];
    CHECK(ns_age_parse_x25519_recipient(pk, R1, strlen(R1)) == NS_OK, "recipient parses");
    uint8_t sk[32], want[32];
    CHECK(ns_age_parse_x25519_identity(sk, K1, strlen(K1)) == NS_OK &&
              crypto_scalarmult_base(want, sk) == 0 && memcmp(want, pk, 32) == 0,
          "the recipient is the identity's public key");
}

int main(void)
{
    if (sodium_init() < 0) {
        return 1;
    }
    test_identity();
    test_header();
    test_armor();
    test_decrypt_mem();
    test_payload();
    test_encrypt();
    T_DONE();
}
