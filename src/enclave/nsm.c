/*
 * nsm: Nitro Secure Module client (see nsm.h).
 *
 * Transport: the real driver takes one ioctl, _IOWR(0x0A, 0, struct nsm_raw) = 0xC0200A00, with
 * the CBOR request (at most 4 KiB) and a response buffer that must be 12 KiB because the driver
 * silently truncates a reply that does not fit. NSM_DEVICE=unix:PATH carries the same bytes over
 * a unix socket for tests: write the request, shut down the write side, read the reply to EOF.
 * Messages are serde "externally tagged" CBOR: {"Attestation": {...}} -> {"Attestation":
 * {"document": bstr}}, "GetRandom" -> {"GetRandom": {"random": bstr}}, errors {"Error": tstr}.
 * Response buffers are wiped after use (GetRandom output seeds keys).
 */
#include "nsm.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addr.h"
#include "cbor.h"
#include "iox.h"
#include "secret.h"

#define NSM_DEV_PATH "/dev/nsm"
#define NSM_IOCTL_RAW 0xC0200A00u
#define NSM_REQUEST_MAX 0x1000
#define NSM_RESPONSE_MAX 0x3000
#define NSM_UNIX_TIMEOUT_MS 10000
#define NSM_RANDOM_TRIES 64 /* GetRandom calls per ns_nsm_random before giving up */

struct nsm_iovec {
    uint64_t addr;
    uint64_t len;
};
struct nsm_raw {
    struct nsm_iovec request;
    struct nsm_iovec response;
};

int ns_nsm_available(void)
{
    const char *dev = getenv("NSM_DEVICE");
    if (dev != NULL && dev[0] != 0) {
        return 1;
    }
    return access(NSM_DEV_PATH, F_OK) == 0;
}

static ns_err exchange_unix(const char *spec, const uint8_t *req, size_t req_len, uint8_t *resp,
                            size_t *resp_len)
{
    ns_addr a;
    int fd = -1;
    ns_err rc;
    GUARD(ns_addr_parse(&a, spec));
    ENSURE(a.kind == NS_ADDR_UNIX, NS_E_USAGE,
           "NSM_DEVICE=%s: only unix:PATH is supported "
           "(the real device is %s)",
           spec, NSM_DEV_PATH);
    rc = ns_addr_connect(&a, NSM_UNIX_TIMEOUT_MS, &fd);
    if (rc != NS_OK) {
        return ns_fail_ctx(rc, "nsm: software NSM at %s", spec);
    }
    GUARD_GOTO(ns_write_all(fd, req, req_len), rc, out);
    if (shutdown(fd, SHUT_WR) != 0) {
        rc = ns_fail_errno(NS_E_IO, "nsm: shutdown of the request to %s", spec);
        goto out;
    }
    *resp_len = 0;
    for (;;) {
        size_t got = 0;
        if (*resp_len == NSM_RESPONSE_MAX) {
            uint8_t extra;
            GUARD_GOTO(ns_read_some(fd, &extra, 1, &got, NSM_UNIX_TIMEOUT_MS), rc, out);
            if (got != 0) {
                rc = ns_fail(NS_E_TOO_BIG, "nsm: response from %s exceeds %d bytes", spec,
                             NSM_RESPONSE_MAX);
                goto out;
            }
            break;
        }
        GUARD_GOTO(ns_read_some(fd, resp + *resp_len, NSM_RESPONSE_MAX - *resp_len, &got,
                                NSM_UNIX_TIMEOUT_MS),
                   rc, out);
        if (got == 0) {
            break;
        }
        *resp_len += got;
    }
    rc = NS_OK;
out:
    close(fd);
    return rc;
}

static ns_err exchange_dev(const uint8_t *req, size_t req_len, uint8_t *resp, size_t *resp_len)
{
    int fd = open(NSM_DEV_PATH, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        return ns_fail_errno(NS_E_UNAVAILABLE,
                             "nsm: cannot open %s (not in a Nitro Enclave, or "
                             "nsm.ko not loaded)",
                             NSM_DEV_PATH);
    }
    struct nsm_raw raw = {{(uint64_t)(uintptr_t)req, req_len},
                          {(uint64_t)(uintptr_t)resp, NSM_RESPONSE_MAX}};
    int r = ioctl(fd, NSM_IOCTL_RAW, &raw);
    close(fd);
    if (r != 0) {
        return ns_fail_errno(NS_E_IO, "nsm: ioctl on %s", NSM_DEV_PATH);
    }
    ENSURE(raw.response.len <= NSM_RESPONSE_MAX, NS_E_PROTO,
           "nsm: driver reported %llu "
           "response bytes",
           (unsigned long long)raw.response.len);
    *resp_len = (size_t)raw.response.len;
    return NS_OK;
}

/* Sends req; on success the reply's inner value (after {"<name>": ...}) starts at *inner. */
static ns_err nsm_call(const ns_buf *req, const char *name, uint8_t *resp, size_t *resp_len,
                       ns_cur *inner)
{
    ENSURE(req->len <= NSM_REQUEST_MAX, NS_E_TOO_BIG, "nsm: request of %zu bytes exceeds %d",
           req->len, NSM_REQUEST_MAX);
    const char *dev = getenv("NSM_DEVICE");
    if (dev != NULL && dev[0] != 0) {
        GUARD(exchange_unix(dev, req->data, req->len, resp, resp_len));
    } else {
        GUARD(exchange_dev(req->data, req->len, resp, resp_len));
    }
    ns_cbor_item m, k;
    ns_cur_init(inner, resp, *resp_len);
    ns_cur peek = *inner;
    GUARD(ns_cbor_head(&peek, &m));
    if (m.major == NS_CBOR_TSTR) {
        /* A unit answer (serde's externally tagged unit variant): "LockPCR". */
        ENSURE(ns_cbor_tstr_eq(&m, name), NS_E_PROTO, "nsm: answer to %s is %.*s", name,
               (int)(m.val < 64 ? m.val : 64), (const char *)m.data);
        *inner = peek;
        return NS_OK;
    }
    GUARD(ns_cbor_expect(inner, NS_CBOR_MAP, &m, "NSM response"));
    ENSURE(m.val == 1, NS_E_PROTO, "nsm: response map has %llu entries, want 1",
           (unsigned long long)m.val);
    GUARD(ns_cbor_expect(inner, NS_CBOR_TSTR, &k, "NSM response kind"));
    if (ns_cbor_tstr_eq(&k, "Error")) {
        ns_cbor_item e;
        if (ns_cbor_head(inner, &e) == NS_OK && e.major == NS_CBOR_TSTR && e.val < 128) {
            /* A locked PCR refuses changes: ReadOnlyIndex (the caller may expect it). */
            BAIL(ns_cbor_tstr_eq(&e, "ReadOnlyIndex") ? NS_E_DENIED : NS_E_REMOTE,
                 "nsm: %s failed: %.*s", name, (int)e.val, (const char *)e.data);
        }
        BAIL(NS_E_REMOTE, "nsm: %s failed with an unreadable error", name);
    }
    ENSURE(ns_cbor_tstr_eq(&k, name), NS_E_PROTO, "nsm: answer to %s is %.*s", name,
           (int)(k.val < 64 ? k.val : 64), (const char *)k.data);
    return NS_OK;
}

/* Finds key in the map at c and leaves c at its value. */
static ns_err find_key(ns_cur *c, const char *key)
{
    ns_cbor_item m, k;
    GUARD(ns_cbor_expect(c, NS_CBOR_MAP, &m, "NSM response body"));
    for (uint64_t i = 0; i < m.val; i++) {
        GUARD(ns_cbor_expect(c, NS_CBOR_TSTR, &k, "NSM response key"));
        if (ns_cbor_tstr_eq(&k, key)) {
            return NS_OK;
        }
        GUARD(ns_cbor_skip(c));
    }
    BAIL(NS_E_PROTO, "nsm: response lacks %s", key);
}

static ns_err put_opt(ns_buf *b, const char *key, const uint8_t *p, size_t n)
{
    ENSURE(n <= NS_NSM_FIELD_MAX, NS_E_TOO_BIG, "nsm: %s of %zu bytes exceeds %d", key, n,
           NS_NSM_FIELD_MAX);
    GUARD(ns_cbor_put_tstr(b, key));
    return p != NULL ? ns_cbor_put_bstr(b, p, n) : ns_cbor_put_null(b);
}

ns_err ns_nsm_attest(ns_buf *doc, const uint8_t *user_data, size_t user_data_len,
                     const uint8_t *nonce, size_t nonce_len, const uint8_t *public_key,
                     size_t public_key_len)
{
    ns_buf req;
    ns_err rc;
    uint8_t *resp = malloc(NSM_RESPONSE_MAX);
    size_t resp_len = 0;
    ENSURE(resp != NULL, NS_E_NOMEM, "nsm: out of memory");
    ns_buf_init(&req, NSM_REQUEST_MAX);
    GUARD_GOTO(ns_cbor_put_head(&req, NS_CBOR_MAP, 1), rc, out);
    GUARD_GOTO(ns_cbor_put_tstr(&req, "Attestation"), rc, out);
    GUARD_GOTO(ns_cbor_put_head(&req, NS_CBOR_MAP, 3), rc, out);
    GUARD_GOTO(put_opt(&req, "user_data", user_data, user_data_len), rc, out);
    GUARD_GOTO(put_opt(&req, "nonce", nonce, nonce_len), rc, out);
    GUARD_GOTO(put_opt(&req, "public_key", public_key, public_key_len), rc, out);
    ns_cur c;
    GUARD_GOTO(nsm_call(&req, "Attestation", resp, &resp_len, &c), rc, out);
    GUARD_GOTO(find_key(&c, "document"), rc, out);
    ns_cbor_item d;
    GUARD_GOTO(ns_cbor_expect(&c, NS_CBOR_BSTR, &d, "attestation document"), rc, out);
    GUARD_GOTO(ns_buf_append(doc, d.data, (size_t)d.val), rc, out);
out:
    ns_buf_free(&req);
    ns_wipe(resp, NSM_RESPONSE_MAX);
    free(resp);
    return rc;
}

ns_err ns_nsm_random(uint8_t *out, size_t n)
{
    ns_buf req;
    ns_err rc = NS_OK;
    size_t done = 0;
    uint8_t *resp = malloc(NSM_RESPONSE_MAX);
    ENSURE(resp != NULL, NS_E_NOMEM, "nsm: out of memory");
    ns_buf_init(&req, 64);
    GUARD_GOTO(ns_cbor_put_tstr(&req, "GetRandom"), rc, out);
    for (int tries = 0; done < n; tries++) {
        if (tries == NSM_RANDOM_TRIES) {
            rc = ns_fail(NS_E_PROTO, "nsm: GetRandom returned too little randomness");
            goto out;
        }
        size_t resp_len = 0;
        ns_cur c;
        ns_cbor_item r;
        GUARD_GOTO(nsm_call(&req, "GetRandom", resp, &resp_len, &c), rc, out);
        GUARD_GOTO(find_key(&c, "random"), rc, out);
        GUARD_GOTO(ns_cbor_expect(&c, NS_CBOR_BSTR, &r, "GetRandom random"), rc, out);
        size_t take = (size_t)r.val < n - done ? (size_t)r.val : n - done;
        memcpy(out + done, r.data, take);
        done += take;
    }
out:
    ns_buf_free(&req);
    ns_wipe(resp, NSM_RESPONSE_MAX);
    free(resp);
    if (rc != NS_OK) {
        ns_wipe(out, n);
    }
    return rc;
}

/* {"<op>": {"index": index[, "data": data]}} */
static ns_err pcr_request(ns_buf *req, const char *op, uint16_t index, const uint8_t *data,
                          size_t n)
{
    GUARD(ns_cbor_put_head(req, NS_CBOR_MAP, 1));
    GUARD(ns_cbor_put_tstr(req, op));
    GUARD(ns_cbor_put_head(req, NS_CBOR_MAP, data != NULL ? 2 : 1));
    GUARD(ns_cbor_put_tstr(req, "index"));
    GUARD(ns_cbor_put_head(req, NS_CBOR_UINT, index));
    if (data != NULL) {
        GUARD(ns_cbor_put_tstr(req, "data"));
        GUARD(ns_cbor_put_bstr(req, data, n));
    }
    return NS_OK;
}

/* The 48-byte "data" member of a DescribePCR/ExtendPCR answer body at c. */
static ns_err pcr_data(ns_cur c, const char *op, uint8_t out[NS_NSM_PCR_LEN])
{
    ns_cbor_item d;
    GUARD(find_key(&c, "data"));
    GUARD(ns_cbor_expect(&c, NS_CBOR_BSTR, &d, "PCR data"));
    ENSURE(d.val == NS_NSM_PCR_LEN, NS_E_PROTO, "nsm: %s answered %llu bytes of PCR, want %d", op,
           (unsigned long long)d.val, NS_NSM_PCR_LEN);
    memcpy(out, d.data, NS_NSM_PCR_LEN);
    return NS_OK;
}

static ns_err pcr_op(const char *op, uint16_t index, const uint8_t *data, size_t n, int *locked,
                     uint8_t value[NS_NSM_PCR_LEN])
{
    ns_buf req;
    ns_err rc;
    size_t resp_len = 0;
    uint8_t *resp = malloc(NSM_RESPONSE_MAX);
    ENSURE(resp != NULL, NS_E_NOMEM, "nsm: out of memory");
    ENSURE(n <= NS_NSM_FIELD_MAX, NS_E_TOO_BIG, "nsm: %s data of %zu bytes exceeds %d", op, n,
           NS_NSM_FIELD_MAX);
    ns_buf_init(&req, NSM_REQUEST_MAX);
    ns_cur c;
    GUARD_GOTO(pcr_request(&req, op, index, data, n), rc, out);
    GUARD_GOTO(nsm_call(&req, op, resp, &resp_len, &c), rc, out);
    if (value != NULL) {
        GUARD_GOTO(pcr_data(c, op, value), rc, out);
    }
    if (locked != NULL) {
        ns_cbor_item b;
        GUARD_GOTO(find_key(&c, "lock"), rc, out);
        GUARD_GOTO(ns_cbor_expect(&c, NS_CBOR_SIMPLE, &b, "PCR lock"), rc, out);
        if (b.val != NS_CBOR_TRUE && b.val != NS_CBOR_FALSE) {
            rc = ns_fail(NS_E_PROTO, "nsm: DescribePCR lock is not a boolean");
            goto out;
        }
        *locked = b.val == NS_CBOR_TRUE;
    }
out:
    ns_buf_free(&req);
    free(resp);
    if (rc != NS_OK && rc != NS_E_DENIED) {
        rc = ns_fail_ctx(rc, "PCR%u", (unsigned)index);
    }
    return rc;
}

ns_err ns_nsm_describe_pcr(uint16_t index, int *locked, uint8_t value[NS_NSM_PCR_LEN])
{
    return pcr_op("DescribePCR", index, NULL, 0, locked, value);
}

ns_err ns_nsm_extend_pcr(uint16_t index, const uint8_t *data, size_t n,
                         uint8_t value[NS_NSM_PCR_LEN])
{
    return pcr_op("ExtendPCR", index, data, n, NULL, value);
}

ns_err ns_nsm_lock_pcr(uint16_t index)
{
    return pcr_op("LockPCR", index, NULL, 0, NULL, NULL);
}
