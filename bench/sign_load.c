/*
 * sign_load: the gRPC load generator of bench/sign.sh. h2load cannot present a client
 * certificate, so mutual TLS needs a generator of its own; to compare like with like it drives
 * the h2c run too, with the same code. Links the nghttp2 and mbedtls of build/deps.
 *
 *   sign_load [--tls CERT KEY] [--conns N] [--streams M] [--seconds S] [--warmup W]
 *             HOST PORT PATH REQFILE
 *     N connections (default 4) x M concurrent streams each (default 16): every stream is one
 *     unary call, POST PATH with the body REQFILE (a framed gRPC message), and a new one starts
 *     on the connection as soon as a call ends. Requests that end during the S seconds after the
 *     W seconds of warm-up are counted; a call is an error unless it ends with :status 200 and
 *     grpc-status 0. Prints one line:
 *       rps=R p50_ms=A p99_ms=B ok=N errors=E all_ok=T proto=h2c|TLSv1.3/SUITE
 *     (all_ok: the calls that succeeded, warm-up and the last ones included)
 *     With --tls: TLS 1.3, ALPN h2, the client certificate CERT and its key KEY (PEM files); the
 *     server certificate is not verified (a benchmark; trust comes from attestation elsewhere).
 *
 *   sign_load --handshakes full|resumed [--tls12] --tls CERT KEY [--seconds S] HOST PORT
 *     Mutual TLS 1.3 (--tls12: 1.2) handshakes one after another for S seconds; each counts
 *     once the server's first HTTP/2 frame (its SETTINGS) arrives, i.e. once the server has
 *     checked the client's certificate and the connection could carry a call. resumed: every
 *     connection offers the session (ticket) of a first, untimed one. Prints
 *       handshakes_per_s=H handshakes=N full=F resumed=R
 *     (F: handshakes in which the server sent its certificate, i.e. not resumed).
 *
 * Single-threaded (one epoll loop), like `h2load -t 1`: on a small host it competes with the
 * server for the same cores.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "mbedtls/error.h"
#include "mbedtls/net_sockets.h"
#include "mbedtls/pk.h"
#include "mbedtls/ssl.h"
#include "mbedtls/x509_crt.h"
#include "psa/crypto.h"
#include "rng.h"

#define OUT_CAP (256u << 10)

typedef struct conn conn;
typedef struct {
    conn *c;
    double t0;
    int status;      /* :status */
    int grpc_status; /* -1 until seen */
    size_t sent;     /* request body bytes handed to nghttp2 */
} call;

struct conn {
    int fd;
    int tls;
    mbedtls_ssl_context ssl;
    nghttp2_session *h2;
    uint8_t *out;
    size_t out_len, out_off;
    size_t tls_wlen; /* the length of a write mbedtls reported WANT_WRITE for */
    int want_out;    /* EPOLLOUT armed */
    int dead;
    long inflight; /* calls started, not yet closed */
};

static struct {
    const char *host, *port, *path;
    uint8_t *req;
    size_t req_len;
    int conns, streams;
    double seconds, warmup;
    int tls;
    const char *cert, *key, *handshakes;
    int tls12; /* handshakes: TLS 1.2 instead of 1.3 */
} opt = {.conns = 4, .streams = 16, .seconds = 10, .warmup = 1};

static mbedtls_ssl_config conf;
static mbedtls_x509_crt own_cert;
static mbedtls_pk_context own_key;
static const char *alpn[] = {"h2", NULL};
/* BoringSSL's order on a host with AES instructions (grpcio's), rather than mbedtls's own. */
static const int suites[] = {MBEDTLS_TLS1_3_AES_128_GCM_SHA256,
                             MBEDTLS_TLS1_3_AES_256_GCM_SHA384,
                             MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256,
                             MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                             MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                             MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                             0};
static double t_start, t_end;
static double *lat;
static size_t nlat, caplat;
static unsigned long errors;
static unsigned long all_ok; /* warm-up included: for CPU time per call */
static int epfd;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int r)
{
    char m[160] = "";
    if (r < 0) {
        mbedtls_strerror(r, m, sizeof m);
    } else if (r > 0) {
        snprintf(m, sizeof m, "%s", strerror(r));
    }
    fprintf(stderr, "sign_load: %s%s%s\n", what, m[0] ? ": " : "", m);
    exit(1);
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        die(path, errno);
    }
    uint8_t *b = malloc((1 << 20) + 1);
    *len = fread(b, 1, 1 << 20, f);
    fclose(f);
    b[*len] = 0; /* PEM: mbedtls wants the NUL, counted */
    return b;
}

static int tcp_connect(void)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    int r = getaddrinfo(opt.host, opt.port, &hints, &ai);
    if (r != 0) {
        fprintf(stderr, "sign_load: %s:%s: %s\n", opt.host, opt.port, gai_strerror(r));
        exit(1);
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        die("connect", errno);
    }
    freeaddrinfo(ai);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* Blocking until the load starts: a server that does not answer ends the run. */
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

static int bio_send(void *ctx, const unsigned char *p, size_t n)
{
    ssize_t r = send(*(int *)ctx, p, n, MSG_NOSIGNAL);
    if (r >= 0) {
        return (int)r;
    }
    return errno == EAGAIN ? MBEDTLS_ERR_SSL_WANT_WRITE : MBEDTLS_ERR_NET_SEND_FAILED;
}

static int bio_recv(void *ctx, unsigned char *p, size_t n)
{
    ssize_t r = recv(*(int *)ctx, p, n, 0);
    if (r >= 0) {
        return (int)r;
    }
    return errno == EAGAIN ? MBEDTLS_ERR_SSL_WANT_READ : MBEDTLS_ERR_NET_RECV_FAILED;
}

static void tls_setup(void)
{
    psa_status_t ps = psa_crypto_init();
    if (ps != PSA_SUCCESS) {
        die("psa_crypto_init failed", 0);
    }
    mbedtls_ssl_config_init(&conf);
    mbedtls_x509_crt_init(&own_cert);
    mbedtls_pk_init(&own_key);
    int r;
    size_t n;
    uint8_t *pem = read_file(opt.cert, &n);
    if ((r = mbedtls_x509_crt_parse(&own_cert, pem, n + 1)) != 0) {
        die(opt.cert, r);
    }
    free(pem);
    pem = read_file(opt.key, &n);
    if ((r = mbedtls_pk_parse_key(&own_key, pem, n + 1, NULL, 0, ns_rng_mbedtls, NULL)) != 0) {
        die(opt.key, r);
    }
    free(pem);
    if ((r = mbedtls_ssl_config_defaults(&conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                         MBEDTLS_SSL_PRESET_DEFAULT)) != 0 ||
        (r = mbedtls_ssl_conf_own_cert(&conf, &own_cert, &own_key)) != 0 ||
        (r = mbedtls_ssl_conf_alpn_protocols(&conf, alpn)) != 0) {
        die("TLS configuration", r);
    }
    mbedtls_ssl_conf_authmode(&conf, MBEDTLS_SSL_VERIFY_NONE);
    mbedtls_ssl_conf_rng(&conf, ns_rng_mbedtls, NULL);
    mbedtls_ssl_conf_ciphersuites(&conf, suites);
    mbedtls_ssl_protocol_version v =
        opt.tls12 ? MBEDTLS_SSL_VERSION_TLS1_2 : MBEDTLS_SSL_VERSION_TLS1_3;
    mbedtls_ssl_conf_min_tls_version(&conf, v);
    mbedtls_ssl_conf_max_tls_version(&conf, v);
    mbedtls_ssl_conf_session_tickets(&conf, MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
    mbedtls_ssl_conf_tls13_enable_signal_new_session_tickets(
        &conf, MBEDTLS_SSL_TLS1_3_SIGNAL_NEW_SESSION_TICKETS_ENABLED);
}

/* A blocking TLS handshake on c->fd (resuming sess if given); dies on failure. */
static void tls_handshake(conn *c, const mbedtls_ssl_session *sess)
{
    mbedtls_ssl_init(&c->ssl);
    int r;
    if ((r = mbedtls_ssl_setup(&c->ssl, &conf)) != 0 ||
        (r = mbedtls_ssl_set_hostname(&c->ssl, "nsign-enclave")) != 0 ||
        (sess != NULL && (r = mbedtls_ssl_set_session(&c->ssl, sess)) != 0)) {
        die("TLS setup", r);
    }
    mbedtls_ssl_set_bio(&c->ssl, &c->fd, bio_send, bio_recv, NULL);
    if ((r = mbedtls_ssl_handshake(&c->ssl)) != 0) {
        /* a blocking socket: WANT_READ/WRITE is its 10 s timeout */
        die("TLS handshake", r);
    }
    const char *p = mbedtls_ssl_get_alpn_protocol(&c->ssl);
    if (p == NULL || strcmp(p, "h2") != 0) {
        die("the server did not select ALPN h2", 0);
    }
}

/* --- output: nghttp2 frames into c->out, flushed to the socket or TLS --- */

static int flush_out(conn *c)
{
    while (c->out_off < c->out_len) {
        size_t n = c->out_len - c->out_off;
        ssize_t w;
        if (c->tls) {
            if (c->tls_wlen != 0 && n > c->tls_wlen) {
                n = c->tls_wlen; /* mbedtls: retry a WANT_WRITE with the same length */
            }
            int r = mbedtls_ssl_write(&c->ssl, c->out + c->out_off, n);
            if (r == MBEDTLS_ERR_SSL_WANT_WRITE || r == MBEDTLS_ERR_SSL_WANT_READ) {
                c->tls_wlen = n;
                return 1;
            }
            if (r < 0) {
                die("TLS write", r);
            }
            c->tls_wlen = 0;
            w = r;
        } else {
            w = send(c->fd, c->out + c->out_off, n, MSG_NOSIGNAL);
            if (w < 0 && errno == EAGAIN) {
                return 1;
            }
            if (w < 0) {
                die("send", errno);
            }
        }
        c->out_off += (size_t)w;
    }
    c->out_off = c->out_len = 0;
    return 0;
}

static void arm(conn *c, int out)
{
    if (out == c->want_out) {
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = out;
}

static void pump_out(conn *c)
{
    for (;;) {
        if (flush_out(c)) {
            arm(c, 1);
            return;
        }
        const uint8_t *data;
        ssize_t n;
        /* Gather every pending frame into one buffer, so that TLS writes full records. */
        while (c->out_len < OUT_CAP / 2 && (n = nghttp2_session_mem_send(c->h2, &data)) != 0) {
            if (n < 0) {
                die("nghttp2_session_mem_send failed", 0);
            }
            if (c->out_len + (size_t)n > OUT_CAP) {
                die("output buffer overflow", 0);
            }
            memcpy(c->out + c->out_len, data, (size_t)n);
            c->out_len += (size_t)n;
        }
        if (c->out_len == 0) {
            arm(c, 0);
            return;
        }
    }
}

/* --- calls --- */

static ssize_t body_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *ud)
{
    (void)s, (void)id, (void)ud;
    call *k = src->ptr;
    size_t n = opt.req_len - k->sent;
    if (n > len) {
        n = len;
    }
    memcpy(buf, opt.req + k->sent, n);
    k->sent += n;
    if (k->sent == opt.req_len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    }
    return (ssize_t)n;
}

static void start_call(conn *c)
{
    call *k = calloc(1, sizeof *k);
    k->c = c;
    k->grpc_status = -1;
    k->t0 = now();
    c->inflight++;
    const char *scheme = c->tls ? "https" : "http";
#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE}
    nghttp2_nv h[] = {NV(":method", "POST"),
                      NV(":scheme", scheme),
                      NV(":path", opt.path),
                      NV(":authority", "nsign-enclave"),
                      NV("content-type", "application/grpc"),
                      NV("te", "trailers")};
#undef NV
    nghttp2_data_provider dp = {.source.ptr = k, .read_callback = body_read};
    if (nghttp2_submit_request(c->h2, NULL, h, sizeof h / sizeof h[0], &dp, k) < 0) {
        die("nghttp2_submit_request failed", 0);
    }
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
                     const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
    (void)flags, (void)ud;
    call *k = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (k == NULL) {
        return 0;
    }
    char v[16];
    size_t m = vlen < sizeof v - 1 ? vlen : sizeof v - 1;
    memcpy(v, value, m);
    v[m] = 0;
    if (nlen == 7 && memcmp(name, ":status", 7) == 0) {
        k->status = atoi(v);
    } else if (nlen == 11 && memcmp(name, "grpc-status", 11) == 0) {
        k->grpc_status = atoi(v);
    }
    return 0;
}

static int on_close(nghttp2_session *s, int32_t id, uint32_t err, void *ud)
{
    conn *c = ud;
    call *k = nghttp2_session_get_stream_user_data(s, id);
    if (k == NULL) {
        return 0;
    }
    c->inflight--;
    double t = now();
    all_ok += err == 0 && k->status == 200 && k->grpc_status == 0;
    if (k->t0 >= t_start && t <= t_end) {
        if (err == 0 && k->status == 200 && k->grpc_status == 0) {
            if (nlat == caplat) {
                caplat = caplat ? caplat * 2 : 1 << 16;
                lat = realloc(lat, caplat * sizeof *lat);
            }
            lat[nlat++] = t - k->t0;
        } else {
            errors++;
        }
    } else if (err != 0 || k->status != 200 || k->grpc_status != 0) {
        errors++; /* warm-up: an error still counts */
    }
    free(k);
    if (t < t_end && !c->dead) {
        start_call(c);
    }
    return 0;
}

static void read_in(conn *c)
{
    uint8_t buf[16384];
    for (;;) {
        ssize_t n;
        if (c->tls) {
            int r = mbedtls_ssl_read(&c->ssl, buf, sizeof buf);
            if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE ||
                r == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) {
                if (r == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) {
                    continue;
                }
                break;
            }
            if (r == 0 || r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
                c->dead = 1;
                return;
            }
            if (r < 0) {
                die("TLS read", r);
            }
            n = r;
        } else {
            n = recv(c->fd, buf, sizeof buf, 0);
            if (n < 0 && errno == EAGAIN) {
                break;
            }
            if (n < 0) {
                die("recv", errno);
            }
            if (n == 0) {
                c->dead = 1;
                return;
            }
        }
        if (nghttp2_session_mem_recv(c->h2, buf, (size_t)n) < 0) {
            die("HTTP/2 protocol error from the server", 0);
        }
    }
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void run_load(void)
{
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    conn *cs = calloc((size_t)opt.conns, sizeof *cs);
    for (int i = 0; i < opt.conns; i++) {
        conn *c = &cs[i];
        c->fd = tcp_connect();
        c->tls = opt.tls;
        if (c->tls) {
            tls_handshake(c, NULL);
        }
        fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
        c->out = malloc(OUT_CAP);
        nghttp2_session_client_new(&c->h2, cb, c);
        nghttp2_settings_entry s[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100},
                                      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20}};
        nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, s, 2);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
    }
    t_start = now() + opt.warmup;
    t_end = t_start + opt.seconds;
    for (int i = 0; i < opt.conns; i++) {
        for (int j = 0; j < opt.streams; j++) {
            start_call(&cs[i]);
        }
        pump_out(&cs[i]);
    }
    struct epoll_event evs[64];
    for (;;) {
        int n = epoll_wait(epfd, evs, 64, 100);
        if (n < 0 && errno != EINTR) {
            die("epoll_wait", errno);
        }
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                read_in(c);
            }
            if (!c->dead) {
                pump_out(c);
            }
        }
        double t = now();
        long open = 0;
        for (int i = 0; i < opt.conns; i++) {
            if (cs[i].dead && cs[i].inflight > 0) {
                errors += (unsigned long)cs[i].inflight; /* the server closed with calls open */
                cs[i].inflight = 0;
            }
            open += cs[i].inflight;
        }
        if (t > t_end && open == 0) {
            break;
        }
        if (t > t_end + 5) {
            errors += (unsigned long)open; /* no answer 5 s after the end */
            break;
        }
    }
    qsort(lat, nlat, sizeof *lat, cmp_d);
    double p50 = nlat ? lat[nlat / 2] : 0, p99 = nlat ? lat[(size_t)((double)nlat * 0.99)] : 0;
    printf("rps=%.0f p50_ms=%.2f p99_ms=%.2f ok=%zu errors=%lu all_ok=%lu proto=%s%s%s\n",
           (double)nlat / opt.seconds, p50 * 1e3, p99 * 1e3, nlat, errors, all_ok,
           opt.tls ? mbedtls_ssl_get_version(&cs[0].ssl) : "h2c", opt.tls ? "/" : "",
           opt.tls ? mbedtls_ssl_get_ciphersuite(&cs[0].ssl) : "");
}

/* --- handshakes per second --- */

/* A TLS 1.3 handshake that resumes a session (PSK) carries no server certificate: the verify
 * callback runs on full handshakes only, which tells the two apart. */
static unsigned long certs_seen;

static int accept_any(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    (void)arg, (void)crt;
    certs_seen += depth == 0;
    *flags = 0; /* a benchmark: the server's self-signed certificate is not judged */
    return 0;
}

/* One connection: TLS handshake, the HTTP/2 preface, until the server's first frame. */
static void one_handshake(const mbedtls_ssl_session *resume, mbedtls_ssl_session *save)
{
    static const uint8_t preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4\0\0\0\0\0";
    conn c = {.fd = tcp_connect(), .tls = 1};
    tls_handshake(&c, resume);
    int r;
    while ((r = mbedtls_ssl_write(&c.ssl, preface, sizeof preface - 1)) ==
           MBEDTLS_ERR_SSL_WANT_WRITE) {
    }
    if (r < 0) {
        die("TLS write", r);
    }
    uint8_t buf[512];
    while ((r = mbedtls_ssl_read(&c.ssl, buf, sizeof buf)) <= 0) {
        if (r != MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) { /* WANT_READ: the timeout */
            die("no HTTP/2 SETTINGS from the server after the handshake", r);
        }
    }
    /* TLS 1.2: the ticket came in the handshake; 1.3: before the server's first frame. */
    if (save != NULL && (r = mbedtls_ssl_get_session(&c.ssl, save)) != 0) {
        die("no session to resume (did the server send a ticket?)", r);
    }
    (void)mbedtls_ssl_close_notify(&c.ssl);
    mbedtls_ssl_free(&c.ssl);
    close(c.fd);
}

static void run_handshakes(void)
{
    mbedtls_ssl_conf_authmode(&conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_ca_chain(&conf, &own_cert, NULL);
    mbedtls_ssl_conf_verify(&conf, accept_any, NULL);
    int resumed = strcmp(opt.handshakes, "resumed") == 0;
    mbedtls_ssl_session sess;
    mbedtls_ssl_session_init(&sess);
    if (resumed) {
        one_handshake(NULL, &sess); /* the ticket every timed connection resumes */
    }
    unsigned long n = 0, certs0 = certs_seen;
    double t0 = now(), t;
    do {
        one_handshake(resumed ? &sess : NULL, NULL);
        n++;
        t = now();
    } while (t - t0 < opt.seconds);
    unsigned long full = certs_seen - certs0;
    printf("handshakes_per_s=%.0f handshakes=%lu full=%lu resumed=%lu\n", (double)n / (t - t0), n,
           full, n - full);
    mbedtls_ssl_session_free(&sess);
}

static void usage(void)
{
    fprintf(stderr, "usage: sign_load [--tls CERT KEY] [--conns N] [--streams M] [--seconds S] "
                    "[--warmup W] HOST PORT PATH REQFILE\n"
                    "       sign_load --handshakes full|resumed --tls CERT KEY [--seconds S] "
                    "HOST PORT\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--tls") == 0 && i + 2 < argc) {
            opt.tls = 1;
            opt.cert = argv[++i];
            opt.key = argv[++i];
        } else if (strcmp(a, "--conns") == 0 && i + 1 < argc) {
            opt.conns = atoi(argv[++i]);
        } else if (strcmp(a, "--streams") == 0 && i + 1 < argc) {
            opt.streams = atoi(argv[++i]);
        } else if (strcmp(a, "--seconds") == 0 && i + 1 < argc) {
            opt.seconds = atof(argv[++i]);
        } else if (strcmp(a, "--warmup") == 0 && i + 1 < argc) {
            opt.warmup = atof(argv[++i]);
        } else if (strcmp(a, "--tls12") == 0) {
            opt.tls12 = 1;
        } else if (strcmp(a, "--handshakes") == 0 && i + 1 < argc) {
            opt.handshakes = argv[++i];
        } else {
            usage();
        }
    }
    if (opt.handshakes != NULL) {
        if (!opt.tls || argc - i != 2 ||
            (strcmp(opt.handshakes, "full") != 0 && strcmp(opt.handshakes, "resumed") != 0)) {
            usage();
        }
        opt.host = argv[i];
        opt.port = argv[i + 1];
        tls_setup();
        run_handshakes();
        return 0;
    }
    if (argc - i != 4 || opt.conns < 1 || opt.streams < 1 || opt.seconds <= 0) {
        usage();
    }
    opt.host = argv[i];
    opt.port = argv[i + 1];
    opt.path = argv[i + 2];
    opt.req = read_file(argv[i + 3], &opt.req_len);
    if (opt.tls) {
        tls_setup();
    }
    run_load();
    return errors != 0 || nlat == 0;
}
