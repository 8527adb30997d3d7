/*
 * tls: TLS 1.3 and 1.2 client sessions over an already connected descriptor (mbedtls), and the trust
 * store. The only module that includes mbedtls's TLS and X.509 headers.
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

#endif
