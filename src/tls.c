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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mbedtls/error.h"
#include "mbedtls/net_sockets.h"
#include "mbedtls/ssl.h"
#include "mbedtls/x509_crt.h"
#include "psa/crypto.h"

#include "buf.h"
#include "iox.h"
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
    if ((r = mbedtls_ssl_setup(&t->ssl, &t->conf)) != 0 ||
        (r = mbedtls_ssl_set_hostname(&t->ssl, hostname)) != 0) {
        e = tls_fail(t, r, "setup");
        goto bad;
    }
    mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
    int64_t deadline = timeout_ms < 0 ? -1 : ns_now_ms() + timeout_ms;
    while ((r = mbedtls_ssl_handshake(&t->ssl)) != 0) {
        if (r != MBEDTLS_ERR_SSL_WANT_READ && r != MBEDTLS_ERR_SSL_WANT_WRITE) {
            e = tls_fail(t, r, "handshake");
            goto bad;
        }
        if (deadline >= 0 && ns_ms_left(deadline) == 0) {
            t->timed_out = 1;
            e = tls_fail(t, MBEDTLS_ERR_SSL_TIMEOUT, "handshake");
            goto bad;
        }
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
    if (t->fd >= 0) {
        close(t->fd);
    }
    free(t);
}
