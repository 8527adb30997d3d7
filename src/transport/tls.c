/*
 * tls: see tls.h.
 *
 * The BIO callbacks do plain read/write on the descriptor after poll(2) with the session's
 * current timeout, so every wait is bounded and the descriptor can be any socket family. The
 * RNG is the kernel's (rng.h): no DRBG state to seed. A verification failure is reported with
 * mbedtls's own reasons ("The certificate validity has expired", "...CN mismatch...").
 * TLS 1.3 is preferred and 1.2 accepted; 1.3 runs its key schedule through PSA crypto, so
 * psa_crypto_init() (idempotent, thread-safe in mbedtls 3.6) runs before every handshake.
 */
#include "tls.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mbedtls/error.h"
#include "mbedtls/net_sockets.h"
#include "mbedtls/sha256.h"
#include "mbedtls/ssl.h"
#include "mbedtls/ssl_ticket.h"
#include "mbedtls/x509_crt.h"
#include "psa/crypto.h"

#include "buf.h"
#include "iox.h"
#include "log.h"
#include "rng.h"

extern const char ns_ca_roots_pem[];
extern const size_t ns_ca_roots_pem_len;

struct ns_tls_ca {
    mbedtls_x509_crt chain;
};

struct ns_tls {
    int fd;
    int timeout_ms;
    int io_errno; /* errno of the last failed read/write, 0 if none */
    int timed_out;
    char host[256];
    mbedtls_ssl_context ssl;
    mbedtls_ssl_config conf;
    mbedtls_x509_crt own; /* ns_tls_connect_attested: the client certificate and key */
    mbedtls_pk_context own_key;
};

static ns_err ca_parse(ns_tls_ca **out, const uint8_t *data, size_t len, const char *what)
{
    ns_tls_ca *ca = calloc(1, sizeof *ca);
    ENSURE(ca != NULL, NS_E_NOMEM, "out of memory");
    mbedtls_x509_crt_init(&ca->chain);
    int r = mbedtls_x509_crt_parse(&ca->chain, data, len);
    if (r < 0 || ca->chain.version == 0) {
        char m[128];
        mbedtls_strerror(r, m, sizeof m);
        ns_tls_ca_free(ca);
        BAIL(NS_E_TLS,
             "no certificate could be read from %s (%s): give a PEM bundle of CA "
             "certificates",
             what, m);
    }
    *out = ca;
    return NS_OK;
}

ns_err ns_tls_ca_embedded(ns_tls_ca **ca)
{
    return ca_parse(ca, (const uint8_t *)ns_ca_roots_pem, ns_ca_roots_pem_len,
                    "the embedded Amazon roots");
}

ns_err ns_tls_ca_from_file(ns_tls_ca **ca, const char *path)
{
    ns_buf b;
    ns_buf_init(&b, NS_TLS_BUNDLE_MAX);
    ns_err e = ns_read_path(path, &b);
    if (e == NS_OK) {
        e = ns_buf_cstr(&b);
    }
    if (e != NS_OK) {
        ns_buf_free(&b);
        return ns_fail_ctx(e, "reading the CA bundle %s", path);
    }
    /* PEM must be parsed with its NUL counted; DER without. */
    int pem = memmem(b.data, b.len, "-----BEGIN", 10) != NULL;
    e = ca_parse(ca, b.data, pem ? b.len + 1 : b.len, path);
    ns_buf_free(&b);
    return e;
}

void ns_tls_ca_free(ns_tls_ca *ca)
{
    if (ca) {
        mbedtls_x509_crt_free(&ca->chain);
        free(ca);
    }
}

/*
 * Waits up to t->timeout_ms for the socket to be ready for events (EINTR waits again): 0, or
 * MBEDTLS_ERR_SSL_TIMEOUT with t->timed_out set. A poll error is left to the read or write.
 */
static int bio_wait(ns_tls *t, short events)
{
    struct pollfd pfd = {.fd = t->fd, .events = events};
    int r;
    do {
        r = poll(&pfd, 1, t->timeout_ms);
    } while (r < 0 && errno == EINTR);
    if (r == 0) {
        t->timed_out = 1;
        return MBEDTLS_ERR_SSL_TIMEOUT;
    }
    return 0;
}

static int bio_send(void *ctx, const unsigned char *p, size_t n)
{
    ns_tls *t = ctx;
    for (;;) {
        int r = bio_wait(t, POLLOUT);
        if (r != 0) {
            return r;
        }
        ssize_t w = write(t->fd, p, n);
        if (w < 0 && (errno == EINTR || errno == EAGAIN)) {
            continue;
        }
        if (w < 0) {
            t->io_errno = errno;
            return MBEDTLS_ERR_NET_SEND_FAILED;
        }
        return (int)w;
    }
}

static int bio_recv(void *ctx, unsigned char *p, size_t n)
{
    ns_tls *t = ctx;
    for (;;) {
        int r = bio_wait(t, POLLIN);
        if (r != 0) {
            return r;
        }
        ssize_t got = read(t->fd, p, n);
        if (got < 0 && (errno == EINTR || errno == EAGAIN)) {
            continue;
        }
        if (got < 0) {
            t->io_errno = errno;
            return errno == ECONNRESET ? MBEDTLS_ERR_NET_CONN_RESET : MBEDTLS_ERR_NET_RECV_FAILED;
        }
        return (int)got;
    }
}

/* The ns_err for an mbedtls result, with the host and the reason. */
static ns_err tls_fail(ns_tls *t, int r, const char *during)
{
    if (t->timed_out || r == MBEDTLS_ERR_SSL_TIMEOUT) {
        BAIL(NS_E_TIMEOUT, "TLS %s with %s timed out after %d ms", during, t->host, t->timeout_ms);
    }
    if (t->io_errno) {
        BAIL(t->io_errno == ECONNRESET || t->io_errno == EPIPE ? NS_E_CLOSED : NS_E_IO,
             "TLS %s with %s: %s", during, t->host, strerror(t->io_errno));
    }
    if (r == MBEDTLS_ERR_SSL_CONN_EOF || r == MBEDTLS_ERR_NET_CONN_RESET) {
        BAIL(NS_E_CLOSED, "TLS %s with %s: the peer closed the connection", during, t->host);
    }
    uint32_t flags = mbedtls_ssl_get_verify_result(&t->ssl);
    if (r == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED && flags != 0 && flags != (uint32_t)-1) {
        char info[512];
        int n = mbedtls_x509_crt_verify_info(info, sizeof info, "", flags);
        for (int i = 0; i < n && info[i]; i++) {
            if (info[i] == '\n') {
                info[i] = (i == n - 1) ? '\0' : ';';
            }
        }
        BAIL(NS_E_TLS,
             "TLS certificate of %s not accepted: %s (trust store: --ca-bundle / AWS_CA_BUNDLE, "
             "else the embedded Amazon roots; check the clock too)",
             t->host, info);
    }
    char m[160];
    mbedtls_strerror(r, m, sizeof m);
    if (strcmp(during, "handshake") == 0 &&
        (r == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE || r == MBEDTLS_ERR_SSL_BAD_PROTOCOL_VERSION ||
         r == MBEDTLS_ERR_SSL_HANDSHAKE_FAILURE)) {
        BAIL(NS_E_TLS,
             "TLS handshake with %s failed: %s (the server may not offer TLS 1.3 or 1.2 with "
             "ECDHE and AES-GCM or ChaCha20-Poly1305, which is what nsign speaks)",
             t->host, m);
    }
    BAIL(NS_E_TLS, "TLS %s with %s failed: %s", during, t->host, m);
}

/* Binds the session to its config and descriptor and runs the handshake within timeout_ms. */
static ns_err setup_and_handshake(ns_tls *t, const char *hostname, int timeout_ms)
{
    int r;
    if ((r = mbedtls_ssl_setup(&t->ssl, &t->conf)) != 0 ||
        (r = mbedtls_ssl_set_hostname(&t->ssl, hostname)) != 0) {
        return tls_fail(t, r, "setup");
    }
    mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
    int64_t deadline = timeout_ms < 0 ? -1 : ns_now_ms() + timeout_ms;
    while ((r = mbedtls_ssl_handshake(&t->ssl)) != 0) {
        if (r != MBEDTLS_ERR_SSL_WANT_READ && r != MBEDTLS_ERR_SSL_WANT_WRITE) {
            return tls_fail(t, r, "handshake");
        }
        if (deadline >= 0 && ns_ms_left(deadline) == 0) {
            t->timed_out = 1;
            return tls_fail(t, MBEDTLS_ERR_SSL_TIMEOUT, "handshake");
        }
    }
    return NS_OK;
}

ns_err ns_tls_connect(ns_tls **out, int fd, const char *hostname, const ns_tls_ca *ca,
                      int timeout_ms)
{
    *out = NULL;
    ns_tls *t = calloc(1, sizeof *t);
    if (t == NULL) {
        close(fd);
        BAIL(NS_E_NOMEM, "out of memory");
    }
    t->fd = fd;
    t->timeout_ms = timeout_ms;
    snprintf(t->host, sizeof t->host, "%s", hostname);
    mbedtls_ssl_init(&t->ssl);
    mbedtls_ssl_config_init(&t->conf);
    mbedtls_x509_crt_init(&t->own);
    mbedtls_pk_init(&t->own_key);
    psa_status_t ps = psa_crypto_init();
    if (ps != PSA_SUCCESS) {
        ns_tls_close(t);
        BAIL(NS_E_CRYPTO, "TLS setup for %s: PSA crypto init failed (%d)", hostname, (int)ps);
    }
    int r = mbedtls_ssl_config_defaults(&t->conf, MBEDTLS_SSL_IS_CLIENT,
                                        MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
    ns_err e = NS_OK;
    if (r != 0) {
        e = tls_fail(t, r, "setup");
        goto bad;
    }
    mbedtls_ssl_conf_authmode(&t->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_ca_chain(&t->conf, (mbedtls_x509_crt *)&ca->chain, NULL);
    mbedtls_ssl_conf_rng(&t->conf, ns_rng_mbedtls, NULL);
    mbedtls_ssl_conf_min_tls_version(&t->conf, MBEDTLS_SSL_VERSION_TLS1_2);
    e = setup_and_handshake(t, hostname, timeout_ms);
    if (e != NS_OK) {
        goto bad;
    }
    *out = t;
    return NS_OK;
bad:
    ns_tls_close(t);
    return e;
}

ns_err ns_tls_write(ns_tls *t, const void *p, size_t n, int timeout_ms)
{
    const unsigned char *q = p;
    t->timeout_ms = timeout_ms;
    while (n > 0) {
        int r = mbedtls_ssl_write(&t->ssl, q, n);
        if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE) {
            continue;
        }
        if (r < 0) {
            return tls_fail(t, r, "write");
        }
        q += r;
        n -= (size_t)r;
    }
    return NS_OK;
}

ns_err ns_tls_read(ns_tls *t, void *p, size_t n, size_t *got, int timeout_ms)
{
    *got = 0;
    t->timeout_ms = timeout_ms;
    for (;;) {
        int r = mbedtls_ssl_read(&t->ssl, p, n);
        /* A TLS 1.3 NewSessionTicket arriving before data: this client does not resume. */
        if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE ||
            r == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) {
            continue;
        }
        if (r == 0 || r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || r == MBEDTLS_ERR_SSL_CONN_EOF) {
            return NS_OK; /* the HTTP framing tells a complete body from a cut one */
        }
        if (r < 0) {
            return tls_fail(t, r, "read");
        }
        *got = (size_t)r;
        return NS_OK;
    }
}

void ns_tls_close(ns_tls *t)
{
    if (t == NULL) {
        return;
    }
    t->timeout_ms = 1000;
    (void)mbedtls_ssl_close_notify(&t->ssl);
    mbedtls_ssl_free(&t->ssl);
    mbedtls_ssl_config_free(&t->conf);
    mbedtls_x509_crt_free(&t->own);
    mbedtls_pk_free(&t->own_key);
    if (t->fd >= 0) {
        close(t->fd);
    }
    free(t);
}

/* --- client of an attested server: no CA, the session's certificate is checked afterwards --- */

static const char *cli_alpn[] = {"h2", NULL};

/* Accepts any server certificate: the caller checks it against the attestation document. */
static int cli_accept_any(void *p, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    (void)p;
    (void)crt;
    (void)depth;
    *flags = 0;
    return 0;
}

ns_err ns_tls_connect_attested(ns_tls **out, int fd, const ns_tls_attested_opts *o, int timeout_ms)
{
    *out = NULL;
    ns_tls *t = calloc(1, sizeof *t);
    if (t == NULL) {
        close(fd);
        BAIL(NS_E_NOMEM, "out of memory");
    }
    t->fd = fd;
    t->timeout_ms = timeout_ms;
    snprintf(t->host, sizeof t->host, "%s", o->server_name);
    mbedtls_ssl_init(&t->ssl);
    mbedtls_ssl_config_init(&t->conf);
    mbedtls_x509_crt_init(&t->own);
    mbedtls_pk_init(&t->own_key);
    ns_err e = NS_OK;
    int r;
    psa_status_t ps = psa_crypto_init();
    if (ps != PSA_SUCCESS) {
        e = ns_fail(NS_E_CRYPTO, "TLS setup for %s: PSA crypto init failed (%d)", t->host, (int)ps);
        goto bad;
    }
    if (o->cert_pem != NULL) {
        r = mbedtls_x509_crt_parse(&t->own, o->cert_pem, o->cert_len);
        if (r != 0) {
            e = ns_fail(NS_E_PARSE, "the client certificate is not a PEM or DER certificate");
            goto bad;
        }
        r = mbedtls_pk_parse_key(&t->own_key, o->key_pem, o->key_len, NULL, 0, ns_rng_mbedtls,
                                 NULL);
        if (r != 0) {
            e = ns_fail(NS_E_PARSE, "the client key is not an unencrypted PEM or DER private key");
            goto bad;
        }
    }
    if ((r = mbedtls_ssl_config_defaults(&t->conf, MBEDTLS_SSL_IS_CLIENT,
                                         MBEDTLS_SSL_TRANSPORT_STREAM,
                                         MBEDTLS_SSL_PRESET_DEFAULT)) != 0 ||
        (o->cert_pem != NULL &&
         (r = mbedtls_ssl_conf_own_cert(&t->conf, &t->own, &t->own_key)) != 0) ||
        (r = mbedtls_ssl_conf_alpn_protocols(&t->conf, cli_alpn)) != 0) {
        e = tls_fail(t, r, "setup");
        goto bad;
    }
    mbedtls_ssl_conf_authmode(&t->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_verify(&t->conf, cli_accept_any, NULL);
    mbedtls_ssl_conf_ca_chain(&t->conf, &t->own, NULL);
    mbedtls_ssl_conf_rng(&t->conf, ns_rng_mbedtls, NULL);
    mbedtls_ssl_conf_min_tls_version(&t->conf, MBEDTLS_SSL_VERSION_TLS1_2);
    e = setup_and_handshake(t, o->server_name, timeout_ms);
    if (e != NS_OK) {
        goto bad;
    }
    const char *alpn = mbedtls_ssl_get_alpn_protocol(&t->ssl);
    if (alpn == NULL || strcmp(alpn, "h2") != 0) {
        e = ns_fail(NS_E_TLS, "TLS with %s: the server did not agree to ALPN h2", t->host);
        goto bad;
    }
    *out = t;
    return NS_OK;
bad:
    ns_tls_close(t);
    return e;
}

ns_err ns_tls_peer_cert(const ns_tls *t, const uint8_t **der, size_t *len)
{
    const mbedtls_x509_crt *pc = mbedtls_ssl_get_peer_cert(&t->ssl);
    ENSURE(pc != NULL, NS_E_TLS, "TLS with %s: the server sent no certificate", t->host);
    *der = pc->raw.p;
    *len = pc->raw.len;
    return NS_OK;
}

/* --- server: sign-service's TLS (see tls.h, "server") --- */

#define SRV_CERT_DER_MAX 1024
#define SRV_SPKI_DER_MAX 128
#define SRV_TICKET_LIFETIME_S 3600
/* Memory of one server session (measured: ~24 KiB while the handshake waits, ~33 KiB once
 * established with its two record buffers), counted in h2server's output budget from accept on,
 * so half-open handshakes cannot take more than the budget (issue 22). */
#define SRV_CONN_COST (40u * 1024)

struct ns_tls_server {
    mbedtls_ssl_config conf;
    mbedtls_pk_context key;
    mbedtls_x509_crt cert;
    mbedtls_ssl_ticket_context tickets;
    uint8_t cert_der[SRV_CERT_DER_MAX];
    size_t cert_len;
    uint8_t spki_der[SRV_SPKI_DER_MAX];
    size_t spki_len;
    ns_tls_server_opts o;
    ns_h2_transport tr;
};

typedef struct {
    ns_tls_server *srv;
    mbedtls_ssl_context ssl;
    ns_h2_conn *c;
    int fd;
    int done;       /* handshake over and checked */
    int want_write; /* the last BIO send would block */
    size_t wlen;    /* a write that returned WANT_WRITE: the length to retry with, else 0 */
    char peer[NS_H2_PEER_MAX];
} srv_conn;

/* TLS 1.3 suites, then TLS 1.2 ECDHE-ECDSA with AEAD (the server key is P-256). */
static const int srv_suites[] = {
    MBEDTLS_TLS1_3_AES_128_GCM_SHA256,
    MBEDTLS_TLS1_3_AES_256_GCM_SHA384,
    MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    0,
};
static const uint16_t srv_groups[] = {
    MBEDTLS_SSL_IANA_TLS_GROUP_X25519,
    MBEDTLS_SSL_IANA_TLS_GROUP_SECP256R1,
    MBEDTLS_SSL_IANA_TLS_GROUP_SECP384R1,
    MBEDTLS_SSL_IANA_TLS_GROUP_NONE,
};
static const char *srv_alpn[] = {"h2", NULL};

/* "YYYYMMDDhhmmss" of t (UTC). */
static void x509_time(char out[16], time_t t)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, 16, "%04d%02d%02d%02d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* A fresh P-256 key and its self-signed certificate (DER), valid from an hour ago for a year. */
static ns_err srv_make_identity(ns_tls_server *s)
{
    int r = mbedtls_pk_setup(&s->key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
    if (r == 0) {
        r = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(s->key), ns_rng_mbedtls,
                                NULL);
    }
    ENSURE(r == 0, NS_E_CRYPTO, "TLS server: cannot generate a P-256 key (mbedtls -0x%04x)", -r);
    uint8_t tmp[SRV_CERT_DER_MAX];
    int n = mbedtls_pk_write_pubkey_der(&s->key, tmp, sizeof tmp);
    ENSURE(n > 0 && (size_t)n <= sizeof s->spki_der, NS_E_CRYPTO,
           "TLS server: cannot write the public key");
    memcpy(s->spki_der, tmp + sizeof tmp - (size_t)n, (size_t)n);
    s->spki_len = (size_t)n;

    mbedtls_x509write_cert w;
    mbedtls_x509write_crt_init(&w);
    char nb[16], na[16];
    time_t now = time(NULL);
    x509_time(nb, now - 3600);
    x509_time(na, now + 365 * 24 * 3600);
    uint8_t serial[16];
    ns_err e = NS_OK;
    if (ns_rng_mbedtls(NULL, serial, sizeof serial) != 0) {
        e = ns_fail(NS_E_CRYPTO, "TLS server: no randomness for the certificate serial");
        goto out;
    }
    serial[0] &= 0x7f; /* a positive INTEGER */
    serial[0] |= 0x01;
    mbedtls_x509_san_list san = {
        .node = {.type = MBEDTLS_X509_SAN_DNS_NAME,
                 .san.unstructured_name = {.tag = MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2,
                                           .p = (unsigned char *)s->o.name,
                                           .len = strlen(s->o.name)}},
        .next = NULL};
    char subject[160];
    snprintf(subject, sizeof subject, "CN=%s,O=nsign", s->o.name);
    mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
    mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
    mbedtls_x509write_crt_set_subject_key(&w, &s->key);
    mbedtls_x509write_crt_set_issuer_key(&w, &s->key);
    if ((r = mbedtls_x509write_crt_set_serial_raw(&w, serial, sizeof serial)) != 0 ||
        (r = mbedtls_x509write_crt_set_validity(&w, nb, na)) != 0 ||
        (r = mbedtls_x509write_crt_set_subject_name(&w, subject)) != 0 ||
        (r = mbedtls_x509write_crt_set_issuer_name(&w, subject)) != 0 ||
        (r = mbedtls_x509write_crt_set_basic_constraints(&w, 1, 0)) != 0 ||
        (r = mbedtls_x509write_crt_set_key_usage(&w, MBEDTLS_X509_KU_DIGITAL_SIGNATURE |
                                                         MBEDTLS_X509_KU_KEY_CERT_SIGN)) != 0 ||
        (r = mbedtls_x509write_crt_set_subject_alternative_name(&w, &san)) != 0) {
        e = ns_fail(NS_E_CRYPTO, "TLS server: cannot build the certificate (mbedtls -0x%04x)", -r);
        goto out;
    }
    n = mbedtls_x509write_crt_der(&w, tmp, sizeof tmp, ns_rng_mbedtls, NULL);
    if (n <= 0) {
        e = ns_fail(NS_E_CRYPTO, "TLS server: cannot sign the certificate (mbedtls -0x%04x)", -n);
        goto out;
    }
    memcpy(s->cert_der, tmp + sizeof tmp - (size_t)n, (size_t)n);
    s->cert_len = (size_t)n;
    if ((r = mbedtls_x509_crt_parse_der(&s->cert, s->cert_der, s->cert_len)) != 0) {
        e = ns_fail(NS_E_CRYPTO, "TLS server: cannot read back the certificate (-0x%04x)", -r);
    }
out:
    mbedtls_x509write_crt_free(&w);
    return e;
}

/* SHA-256 of a certificate's DER SubjectPublicKeyInfo. */
static int spki_sha256(mbedtls_x509_crt *crt, uint8_t out[32])
{
    uint8_t tmp[1200];
    int n = mbedtls_pk_write_pubkey_der(&crt->pk, tmp, sizeof tmp);
    if (n <= 0) {
        return -1;
    }
    return mbedtls_sha256(tmp + sizeof tmp - (size_t)n, (size_t)n, out, 0) == 0 ? 0 : -1;
}

/* The client certificate decides, not its issuer: a known pin at depth 0 clears every flag; an
 * unknown one fails the handshake. Certificates above the leaf are not judged. */
static int srv_verify(void *p, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    srv_conn *sc = p;
    if (depth > 0) {
        *flags = 0;
        return 0;
    }
    uint8_t pin[32];
    char id[NS_H2_CLIENT_ID_MAX + 1];
    if (spki_sha256(crt, pin) == 0 &&
        sc->srv->o.client_by_pin(sc->srv->o.arg, pin, id, sizeof id) >= 0) {
        *flags = 0;
    } else {
        *flags |= MBEDTLS_X509_BADCERT_NOT_TRUSTED;
    }
    return 0;
}

static int srv_bio_send(void *ctx, const unsigned char *p, size_t n)
{
    srv_conn *sc = ctx;
    ssize_t w = send(sc->fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            sc->want_write = 1;
            return MBEDTLS_ERR_SSL_WANT_WRITE;
        }
        return MBEDTLS_ERR_NET_SEND_FAILED;
    }
    sc->want_write = 0;
    return (int)w;
}

static int srv_bio_recv(void *ctx, unsigned char *p, size_t n)
{
    srv_conn *sc = ctx;
    ssize_t r = recv(sc->fd, p, n, 0);
    if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            return MBEDTLS_ERR_SSL_WANT_READ;
        }
        return errno == ECONNRESET ? MBEDTLS_ERR_NET_CONN_RESET : MBEDTLS_ERR_NET_RECV_FAILED;
    }
    return r == 0 ? MBEDTLS_ERR_SSL_CONN_EOF : (int)r;
}

static ssize_t srv_again(void)
{
    errno = EAGAIN;
    return -1;
}

/* Server handshakes refused (a failed or refused handshake, not a peer that went away), for the
 * nsign_tls_handshake_failures_total metric. */
static atomic_ulong srv_refused;

unsigned long ns_tls_server_handshake_failures(void)
{
    return atomic_load_explicit(&srv_refused, memory_order_relaxed);
}

static void srv_count_refusal(void)
{
    atomic_fetch_add_explicit(&srv_refused, 1, memory_order_relaxed);
}

static ssize_t srv_fail(srv_conn *sc, int r, const char *during)
{
    char m[128];
    mbedtls_strerror(r, m, sizeof m);
    if (r == MBEDTLS_ERR_SSL_CONN_EOF || r == MBEDTLS_ERR_NET_CONN_RESET ||
        r == MBEDTLS_ERR_NET_SEND_FAILED || r == MBEDTLS_ERR_NET_RECV_FAILED) {
        ns_debug("tls %s: the peer went away peer=%s", during, sc->peer); /* not a refusal */
    } else {
        ns_info("tls %s failed peer=%s reason=\"%s\"", during, sc->peer, m);
        if (strcmp(during, "handshake") == 0) {
            srv_count_refusal();
        }
    }
    errno = EPROTO;
    return -1;
}

/* Drives the handshake; 0 once application data may flow, -1 with errno otherwise. */
static int srv_step(srv_conn *sc)
{
    if (sc->done) {
        return 0;
    }
    int r = mbedtls_ssl_handshake(&sc->ssl);
    if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE) {
        return (int)srv_again();
    }
    if (r != 0) {
        return (int)srv_fail(sc, r, "handshake");
    }
    const char *alpn = mbedtls_ssl_get_alpn_protocol(&sc->ssl);
    if (alpn == NULL || strcmp(alpn, "h2") != 0) {
        (void)mbedtls_ssl_send_alert_message(&sc->ssl, MBEDTLS_SSL_ALERT_LEVEL_FATAL,
                                             MBEDTLS_SSL_ALERT_MSG_NO_APPLICATION_PROTOCOL);
        ns_info("tls handshake refused peer=%s reason=\"the client did not offer ALPN h2 "
                "(gRPC needs HTTP/2)\"",
                sc->peer);
        srv_count_refusal();
        errno = EPROTO;
        return -1;
    }
    if (sc->srv->o.require_client) {
        /* Full handshakes were checked by srv_verify; resumed ones carry the peer certificate
         * in the session (MBEDTLS_SSL_KEEP_PEER_CERTIFICATE): the pin is looked up either way. */
        const mbedtls_x509_crt *pc = mbedtls_ssl_get_peer_cert(&sc->ssl);
        uint8_t pin[32];
        char id[NS_H2_CLIENT_ID_MAX + 1];
        int idx = -1;
        if (pc != NULL && spki_sha256((mbedtls_x509_crt *)pc, pin) == 0) {
            idx = sc->srv->o.client_by_pin(sc->srv->o.arg, pin, id, sizeof id);
        }
        if (idx < 0) {
            ns_info("tls handshake refused peer=%s reason=\"no client certificate the keys file "
                    "names\"",
                    sc->peer);
            srv_count_refusal();
            errno = EPROTO;
            return -1;
        }
        ns_h2_conn_set_client(sc->c, idx, id);
        ns_debug("tls client=%s peer=%s version=%s", id, sc->peer,
                 mbedtls_ssl_get_version(&sc->ssl));
    }
    sc->done = 1;
    return 0;
}

static void *srv_open(void *arg, int fd, ns_h2_conn *c, const char *peer)
{
    ns_tls_server *s = arg;
    srv_conn *sc = calloc(1, sizeof *sc);
    if (sc == NULL) {
        return NULL;
    }
    sc->srv = s;
    sc->fd = fd;
    sc->c = c;
    snprintf(sc->peer, sizeof sc->peer, "%s", peer);
    mbedtls_ssl_init(&sc->ssl);
    if (mbedtls_ssl_setup(&sc->ssl, &s->conf) != 0) {
        mbedtls_ssl_free(&sc->ssl);
        free(sc);
        return NULL;
    }
    if (s->o.require_client) {
        mbedtls_ssl_set_verify(&sc->ssl, srv_verify, sc);
    }
    mbedtls_ssl_set_bio(&sc->ssl, sc, srv_bio_send, srv_bio_recv, NULL);
    return sc;
}

static ssize_t srv_recv(void *t, uint8_t *buf, size_t n)
{
    srv_conn *sc = t;
    if (srv_step(sc) != 0) {
        return -1;
    }
    int r = mbedtls_ssl_read(&sc->ssl, buf, n);
    if (r > 0) {
        return r;
    }
    if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE) {
        return srv_again();
    }
    if (r == 0 || r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || r == MBEDTLS_ERR_SSL_CONN_EOF) {
        return 0;
    }
    return srv_fail(sc, r, "read");
}

static ssize_t srv_send(void *t, const uint8_t *p, size_t n)
{
    srv_conn *sc = t;
    if (srv_step(sc) != 0) {
        return -1;
    }
    if (n == 0) {
        return 0;
    }
    /* After WANT_WRITE mbedtls finishes the record it already holds and reports the length it
     * is given as written: retry with no more than the first attempt's length. */
    if (sc->wlen != 0 && n > sc->wlen) {
        n = sc->wlen;
    }
    int r = mbedtls_ssl_write(&sc->ssl, p, n);
    if (r > 0) {
        sc->wlen = 0;
        return r;
    }
    if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE) {
        sc->wlen = n;
        return srv_again();
    }
    return srv_fail(sc, r, "write");
}

static int srv_want_write(void *t)
{
    return ((srv_conn *)t)->want_write;
}

static int srv_ready(void *t)
{
    return ((srv_conn *)t)->done;
}

static int srv_pending(void *t)
{
    srv_conn *sc = t;
    return sc->done && mbedtls_ssl_get_bytes_avail(&sc->ssl) > 0;
}

static void srv_close(void *t)
{
    srv_conn *sc = t;
    if (sc->done) {
        (void)mbedtls_ssl_close_notify(&sc->ssl);
    }
    mbedtls_ssl_free(&sc->ssl);
    free(sc);
}

ns_err ns_tls_server_new(ns_tls_server **out, const ns_tls_server_opts *o)
{
    *out = NULL;
    ENSURE(!o->require_client || o->client_by_pin != NULL, NS_E_USAGE,
           "TLS server: client authentication needs a pin lookup");
    psa_status_t ps = psa_crypto_init();
    ENSURE(ps == PSA_SUCCESS, NS_E_CRYPTO, "TLS server: PSA crypto init failed (%d)", (int)ps);
    ns_tls_server *s = calloc(1, sizeof *s);
    ENSURE(s != NULL, NS_E_NOMEM, "TLS server: out of memory");
    s->o = *o;
    if (s->o.name == NULL || s->o.name[0] == 0) {
        s->o.name = "nsign-enclave";
    }
    mbedtls_ssl_config_init(&s->conf);
    mbedtls_pk_init(&s->key);
    mbedtls_x509_crt_init(&s->cert);
    mbedtls_ssl_ticket_init(&s->tickets);
    ns_err e = srv_make_identity(s);
    int r = 0;
    if (e == NS_OK &&
        (r = mbedtls_ssl_config_defaults(&s->conf, MBEDTLS_SSL_IS_SERVER,
                                         MBEDTLS_SSL_TRANSPORT_STREAM,
                                         MBEDTLS_SSL_PRESET_DEFAULT)) == 0 &&
        (r = mbedtls_ssl_conf_own_cert(&s->conf, &s->cert, &s->key)) == 0 &&
        (r = mbedtls_ssl_conf_alpn_protocols(&s->conf, srv_alpn)) == 0 &&
        (r = mbedtls_ssl_ticket_setup(&s->tickets, ns_rng_mbedtls, NULL, MBEDTLS_CIPHER_AES_256_GCM,
                                      SRV_TICKET_LIFETIME_S)) == 0) {
        mbedtls_ssl_conf_rng(&s->conf, ns_rng_mbedtls, NULL);
        mbedtls_ssl_conf_min_tls_version(&s->conf, MBEDTLS_SSL_VERSION_TLS1_2);
        mbedtls_ssl_conf_max_tls_version(&s->conf, MBEDTLS_SSL_VERSION_TLS1_3);
        mbedtls_ssl_conf_ciphersuites(&s->conf, srv_suites);
        mbedtls_ssl_conf_groups(&s->conf, srv_groups);
        mbedtls_ssl_conf_session_tickets_cb(&s->conf, mbedtls_ssl_ticket_write,
                                            mbedtls_ssl_ticket_parse, &s->tickets);
        if (o->require_client) {
            /* Any issuer: srv_verify judges the pin. mbedtls wants a CA list to verify against;
             * the server's own certificate serves (it signs no client certificate). */
            mbedtls_ssl_conf_authmode(&s->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
            mbedtls_ssl_conf_ca_chain(&s->conf, &s->cert, NULL);
            /* A TLS 1.3 ticket does not carry the client's certificate (mbedtls 3.6 saves it in
             * TLS 1.2 sessions only), so a resumed 1.3 session has no pin to look up and would
             * be refused: no 1.3 tickets then; 1.3 clients make full handshakes, 1.2 ones
             * still resume with their ticket. */
            mbedtls_ssl_conf_new_session_tickets(&s->conf, 0);
        } else {
            mbedtls_ssl_conf_authmode(&s->conf, MBEDTLS_SSL_VERIFY_NONE);
        }
    } else if (e == NS_OK) {
        char m[128];
        mbedtls_strerror(r, m, sizeof m);
        e = ns_fail(NS_E_TLS, "TLS server: configuration failed: %s", m);
    }
    if (e != NS_OK) {
        ns_tls_server_free(s);
        return e;
    }
    s->tr = (ns_h2_transport){.arg = s,
                              .open = srv_open,
                              .recv = srv_recv,
                              .send = srv_send,
                              .want_write = srv_want_write,
                              .ready = srv_ready,
                              .pending = srv_pending,
                              .close = srv_close,
                              .conn_cost = SRV_CONN_COST};
    *out = s;
    return NS_OK;
}

const ns_h2_transport *ns_tls_server_transport(const ns_tls_server *s)
{
    return &s->tr;
}

const uint8_t *ns_tls_server_cert(const ns_tls_server *s, size_t *len)
{
    *len = s->cert_len;
    return s->cert_der;
}

const uint8_t *ns_tls_server_spki(const ns_tls_server *s, size_t *len)
{
    *len = s->spki_len;
    return s->spki_der;
}

void ns_tls_server_free(ns_tls_server *s)
{
    if (s == NULL) {
        return;
    }
    mbedtls_ssl_ticket_free(&s->tickets);
    mbedtls_ssl_config_free(&s->conf);
    mbedtls_x509_crt_free(&s->cert);
    mbedtls_pk_free(&s->key);
    free(s);
}
