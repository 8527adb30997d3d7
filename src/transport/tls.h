/*
 * tls: TLS 1.3 and 1.2 client sessions over an already connected descriptor (mbedtls), and the
 * trust store. The only module that includes mbedtls's TLS and X.509 headers.
 *
 * Every session verifies the server's chain against the trust store and the certificate name
 * against the hostname given (which is also sent as SNI); there is no "insecure" switch. The
 * descriptor may be any nsign address (tcp, unix, vsock), so TLS to kms.REGION.amazonaws.com can
 * run end to end through a vsock proxy. Trust store: the Amazon Trust Services roots embedded in
 * the binary (Amazon Root CA 1-4, Starfield Services Root CA G2: a FROM-scratch enclave has no
 * /etc/ssl), or a PEM bundle file that replaces them (--ca-bundle, AWS_CA_BUNDLE).
 * Failures say which host and why ("certificate expired", "name mismatch", ...).
 */
#ifndef NS_TLS_H
#define NS_TLS_H

#include <stddef.h>

#include "err.h"
#include "h2loop.h"

#define NS_TLS_BUNDLE_MAX (4u << 20) /* a CA bundle file; Debian's is ~220 KB */

typedef struct ns_tls_ca ns_tls_ca;
typedef struct ns_tls ns_tls;

/* The embedded Amazon Trust Services roots. */
ns_err ns_tls_ca_embedded(ns_tls_ca **ca) NS_MUST_CHECK;
/* Every certificate of a PEM (or single DER) file; fails if none parses. */
ns_err ns_tls_ca_from_file(ns_tls_ca **ca, const char *path) NS_MUST_CHECK;
/* Safe on NULL. */
void ns_tls_ca_free(ns_tls_ca *ca);

/*
 * Handshakes over fd (ownership of fd passes to the session; closed by ns_tls_close, also on
 * failure). hostname: SNI and the name the certificate must match. timeout_ms bounds the whole
 * handshake (< 0: none). ca must outlive the session.
 */
ns_err ns_tls_connect(ns_tls **t, int fd, const char *hostname, const ns_tls_ca *ca,
                      int timeout_ms) NS_MUST_CHECK;
/* Writes all of p. */
ns_err ns_tls_write(ns_tls *t, const void *p, size_t n, int timeout_ms) NS_MUST_CHECK;
/* Reads up to n bytes; *got = 0 on a clean close (close_notify or EOF). */
ns_err ns_tls_read(ns_tls *t, void *p, size_t n, size_t *got, int timeout_ms) NS_MUST_CHECK;
/* Sends close_notify (best effort), frees, closes the fd. Safe on NULL. */
void ns_tls_close(ns_tls *t);

/*
 * Client of an attested server (`nsign sign`): the server's certificate is NOT verified here
 * (sign-service's is self-signed); the caller must check ns_tls_peer_cert against an attestation
 * document obtained on this same session before it trusts anything it sends. ALPN h2 is offered
 * and required. With cert_pem, the client authenticates with that certificate and key (PEM or
 * DER; the key is secret: the caller wipes its copy).
 */
typedef struct {
    const char *server_name; /* SNI */
    const uint8_t *cert_pem; /* PEM with its NUL counted, or DER; NULL: no client certificate */
    size_t cert_len;
    const uint8_t *key_pem; /* likewise */
    size_t key_len;
} ns_tls_attested_opts;

ns_err ns_tls_connect_attested(ns_tls **t, int fd, const ns_tls_attested_opts *o,
                               int timeout_ms) NS_MUST_CHECK;
/* The server certificate (DER) of the session; valid while t is. */
ns_err ns_tls_peer_cert(const ns_tls *t, const uint8_t **der, size_t *len) NS_MUST_CHECK;

/*
 * Server (sign-service): TLS 1.3, and 1.2 with ECDHE-ECDSA and AEAD suites only; ALPN h2
 * required (a client without it is refused after the handshake with no_application_protocol).
 * The key pair is a P-256 key generated at ns_tls_server_new from the kernel CSPRNG (in the
 * enclave seeded from the NSM by enclave-entrypoint) and never leaves the process; the
 * certificate is self-signed (CN and DNS name o->name): trust comes from attestation, which binds
 * its SubjectPublicKeyInfo. With require_client, a client certificate is required and only its
 * SPKI SHA-256 counts (any issuer): client_by_pin returns the client's index and name, or -1 to
 * fail the handshake. Session tickets (TLS 1.2 and 1.3) allow resumption, whose sessions keep the
 * client certificate. Connections plug into h2server as an ns_h2_transport.
 */
typedef struct ns_tls_server ns_tls_server;

typedef struct {
    const char *name; /* certificate CN and DNS SAN; NULL: "nsign-enclave" */
    int require_client;
    int (*client_by_pin)(void *arg, const uint8_t spki_sha256[32], char *id, size_t idcap);
    void *arg;
} ns_tls_server_opts;

ns_err ns_tls_server_new(ns_tls_server **s, const ns_tls_server_opts *o) NS_MUST_CHECK;
const ns_h2_transport *ns_tls_server_transport(const ns_tls_server *s);
/* The certificate (DER) and its SubjectPublicKeyInfo (DER), for Attest. */
const uint8_t *ns_tls_server_cert(const ns_tls_server *s, size_t *len);
const uint8_t *ns_tls_server_spki(const ns_tls_server *s, size_t *len);
/* After ns_h2_serve returned. Safe on NULL. */
void ns_tls_server_free(ns_tls_server *s);
/* Server handshakes that failed or were refused (no ALPN h2, no known client certificate, a
 * protocol or certificate error) since start, over every server of the process. A client that
 * just disconnects is not counted. */
unsigned long ns_tls_server_handshake_failures(void);

#endif
