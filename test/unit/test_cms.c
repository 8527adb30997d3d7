/*
 * Unit tests for cms: real `openssl cms -encrypt -stream` output (the shape of KMS's
 * CiphertextForRecipient: BER, indefinite lengths, chunked content, RSA-OAEP-SHA256, AES-256-CBC)
 * decrypts to the plaintext for several sizes; the definite-length form too; every other key
 * transport / cipher, a wrong key, a corrupted key blob, and every truncation is refused.
 */
#include <stdarg.h>
#include <unistd.h>

#include "cms.h"
#include "iox.h"
#include "rng.h"
#include "t.h"

static char dir[64];

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd) == 0;
}

static int slurp(const char *name, ns_buf *b)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    ns_buf_init(b, 8 << 20);
    return ns_read_path(path, b) == NS_OK;
}

#define OAEP "-keyid -keyopt rsa_padding_mode:oaep -keyopt rsa_oaep_md:sha256"

/* Encrypts pt (file) with extra openssl options into ct.der; returns its bytes. */
static int cms_encrypt(ns_buf *ct, const char *opts)
{
    return sh("openssl cms -encrypt -binary -in %s/pt -recip %s/cert.pem %s -outform DER -out "
              "%s/ct.der 2>%s/err",
              dir, dir, opts, dir, dir) &&
           slurp("ct.der", ct);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/nsign-test-cms-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        CHECK(0, "mkdtemp");
        T_DONE();
    }
    int have = sh("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out %s/key.pem "
                  "2>/dev/null && openssl req -x509 -new -key %s/key.pem -subj /CN=recipient "
                  "-days 1 -out %s/cert.pem 2>/dev/null && openssl req -x509 -new -newkey "
                  "rsa:2048 -nodes -keyout %s/key2.pem -subj /CN=other -days 1 -out "
                  "%s/cert2.pem 2>/dev/null",
                  dir, dir, dir, dir, dir);
    CHECK(have, "openssl made a recipient key and certificate");
    ns_buf keypem;
    ns_cms_key *key = NULL;
    CHECK(slurp("key.pem", &keypem) && ns_buf_cstr(&keypem) == NS_OK, "read key.pem");
    CHECK_ERR(ns_cms_key_parse(&key, keypem.data, keypem.len + 1), NS_OK, "parse key.pem");
    ns_buf_free(&keypem);
    if (key == NULL) {
        T_DONE();
    }

    static const size_t sizes[] = {0, 1, 15, 16, 17, 4096, 70000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        uint8_t *pt = malloc(n + 1);
        ns_buf ct, out;
        ns_cms_env env;
        if (ns_rng_bytes(pt, n + 1) != NS_OK) {
            CHECK(0, "rng");
        }
        char path[256];
        snprintf(path, sizeof path, "%s/pt", dir);
        ns_out o;
        CHECK(ns_out_open(&o, path) == NS_OK && ns_out_write(&o, pt, n) == NS_OK &&
                  ns_out_commit(&o) == NS_OK,
              "write %zu-byte plaintext", n);
        CHECK(cms_encrypt(&ct, "-aes256 -stream " OAEP), "openssl cms -stream, %zu bytes", n);
        CHECK(ct.len > 4 && ct.data[0] == 0x30 && ct.data[1] == 0x80,
              "%zu bytes: outer ContentInfo has an indefinite length", n);
        CHECK_ERR(ns_cms_parse(&env, ct.data, ct.len), NS_OK, "%zu bytes: parse", n);
        CHECK(env.rid_is_ski && env.enc_key_len == 256 && env.ciphertext_len == (n / 16 + 1) * 16,
              "%zu bytes: SKI recipient, 256-byte key blob, padded ciphertext length", n);
        ns_buf_init_secret(&out, 1 << 20);
        CHECK_ERR(ns_cms_decrypt(&out, key, ct.data, ct.len), NS_OK, "%zu bytes: decrypt", n);
        CHECK(out.len == n && (n == 0 || memcmp(out.data, pt, n) == 0),
              "%zu bytes: plaintext matches", n);
        ns_buf_free(&out);
        ns_buf_free(&ct);
        free(pt);
    }

    /* Definite lengths (no -stream) are BER too and must work. */
    {
        ns_buf ct, out;
        ns_buf_init_secret(&out, 1 << 20);
        CHECK(cms_encrypt(&ct, "-aes256 " OAEP), "openssl cms without -stream");
        CHECK_ERR(ns_cms_decrypt(&out, key, ct.data, ct.len), NS_OK, "definite-length form");
        CHECK(out.len == 70000, "definite-length plaintext size");
        ns_buf_free(&out);

        /* Every truncation fails cleanly (and never yields plaintext). */
        int all = 1;
        for (size_t cut = 0; cut < ct.len; cut += (cut < 600 ? 1 : 997)) {
            ns_cms_env env;
            if (ns_cms_parse(&env, ct.data, cut) == NS_OK) {
                all = 0;
                printf("# truncation at %zu parsed\n", cut);
            }
        }
        CHECK(all, "every truncation of the definite form is rejected");
        ns_buf_free(&ct);
    }

    /* Corruptions and other shapes. */
    {
        ns_buf ct, out;
        ns_cms_env env;
        ns_buf_init_secret(&out, 1 << 20);
        CHECK(cms_encrypt(&ct, "-aes256 -stream " OAEP), "stream form for corruption tests");
        int all = 1;
        for (size_t cut = 0; cut < ct.len; cut += (cut < 600 ? 1 : 997)) {
            if (ns_cms_parse(&env, ct.data, cut) == NS_OK) {
                all = 0;
            }
        }
        CHECK(all, "every truncation of the stream form is rejected");
        CHECK_ERR(ns_cms_parse(&env, ct.data, ct.len), NS_OK, "stream form parses");
        size_t off = (size_t)(env.enc_key - ct.data);
        ct.data[off + 100] ^= 1;
        CHECK_ERR(ns_cms_decrypt(&out, key, ct.data, ct.len), NS_E_AUTH,
                  "corrupted encryptedKey: OAEP unwrap fails");
        CHECK(out.len == 0, "no plaintext released");
        ct.data[off + 100] ^= 1;
        ns_cms_key *other = NULL;
        CHECK_ERR(ns_cms_key_generate(&other), NS_OK, "generate an RSA-2048 key");
        CHECK_ERR(ns_cms_decrypt(&out, other, ct.data, ct.len), NS_E_AUTH,
                  "a different key cannot unwrap");
        uint8_t spki[NS_CMS_SPKI_MAX];
        size_t spki_len = 0;
        CHECK_ERR(ns_cms_key_spki(other, spki, sizeof spki, &spki_len), NS_OK, "SPKI export");
        CHECK(spki_len == 294 && spki[0] == 0x30, "RSA-2048 SPKI is 294 bytes of DER");
        ns_cms_key_free(other);
        ct.data[ct.len - 1] = 0x01;
        CHECK_ERR(ns_cms_parse(&env, ct.data, ct.len), NS_E_PARSE, "broken end-of-contents");
        ns_buf_free(&ct);
        ns_buf_free(&out);
    }
    {
        ns_buf ct;
        ns_cms_env env;
        CHECK(cms_encrypt(&ct, "-aes256 -stream -keyid"), "PKCS#1 v1.5 key transport");
        CHECK_ERR(ns_cms_parse(&env, ct.data, ct.len), NS_E_UNSUPPORTED, "PKCS#1 v1.5 refused");
        ns_buf_free(&ct);
        CHECK(cms_encrypt(&ct, "-aes256 -stream -keyid -keyopt rsa_padding_mode:oaep"),
              "OAEP with SHA-1 defaults");
        CHECK_ERR(ns_cms_parse(&env, ct.data, ct.len), NS_E_UNSUPPORTED, "OAEP-SHA1 refused");
        ns_buf_free(&ct);
        CHECK(cms_encrypt(&ct, "-aes128 -stream " OAEP), "AES-128-CBC content");
        CHECK_ERR(ns_cms_parse(&env, ct.data, ct.len), NS_E_UNSUPPORTED, "AES-128 refused");
        ns_buf_free(&ct);
        char opts[512];
        snprintf(opts, sizeof opts, "-aes256 -stream " OAEP " -recip %s/cert2.pem " OAEP, dir);
        CHECK(cms_encrypt(&ct, opts), "two recipients");
        CHECK_ERR(ns_cms_parse(&env, ct.data, ct.len), NS_E_UNSUPPORTED, "two recipients refused");
        ns_buf_free(&ct);
        CHECK(cms_encrypt(&ct, "-aes256 -stream -keyopt rsa_padding_mode:oaep -keyopt "
                               "rsa_oaep_md:sha256"),
              "issuerAndSerialNumber recipient");
        CHECK_ERR(ns_cms_parse(&env, ct.data, ct.len), NS_OK,
                  "issuerAndSerialNumber recipient parses");
        CHECK(!env.rid_is_ski && env.rid[0] == 0x30, "rid is the issuerAndSerialNumber SEQUENCE");
        ns_buf_free(&ct);
    }
    {
        ns_cms_env env;
        const uint8_t deep_prefix[] = {0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
                                       0xf7, 0x0d, 0x01, 0x07, 0x03, 0xa0, 0x80, 0x30,
                                       0x80, 0x02, 0x01, 0x02, 0x31, 0x80};
        CHECK_ERR(ns_cms_parse(&env, deep_prefix, sizeof deep_prefix), NS_E_TRUNCATED,
                  "indefinite layers without end");
        const uint8_t longlen[] = {0x30, 0x85, 0x01, 0x00, 0x00, 0x00, 0x00};
        CHECK_ERR(ns_cms_parse(&env, longlen, sizeof longlen), NS_E_TOO_BIG,
                  "5-byte length rejected");
        const uint8_t prim_indef[] = {0x04, 0x80, 0x00, 0x00};
        CHECK_ERR(ns_cms_parse(&env, prim_indef, sizeof prim_indef), NS_E_PARSE,
                  "indefinite primitive rejected");
        const uint8_t hightag[] = {0x1f, 0x81, 0x00};
        CHECK_ERR(ns_cms_parse(&env, hightag, sizeof hightag), NS_E_UNSUPPORTED,
                  "multi-byte tag rejected");
    }
    ns_cms_key_free(key);
    sh("rm -rf %s", dir);
    T_DONE();
}
