/*
 * Unit tests for h2client against the real server side in memory: h2server's connection state
 * machine with signsvc's handler. Several unary calls on one connection, gRPC error statuses,
 * the client identity a transport sets reaching the policy, a signature that verifies, and a
 * server that closes mid-call.
 */
#include <pb_decode.h>
#include <pb_encode.h>
#include <sodium.h>
#include <string.h>

#include "grpc.h"
#include "h2client.h"
#include "h2server.h"
#include "nsign.pb.h"
#include "signsvc.h"
#include "t.h"

#define SEED "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="
#define PIN_A "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

static const char V2[] = "{\"version\":2,\"clients\":["
                         "{\"id\":\"payments-api\",\"spki_sha256\":\"" PIN_A "\"}],"
                         "\"keys\":["
                         "{\"id\":\"payments\",\"algorithm\":\"ed25519\",\"private_key\":\"" SEED
                         "\",\"allow\":[\"payments-api\"]}]}";

typedef struct {
    ns_h2_conn *srv;
    int fail_after; /* reads before the "server" disappears; -1 never */
} mem;

static ns_err mem_write(void *arg, const uint8_t *p, size_t n)
{
    mem *m = arg;
    ns_err e = ns_h2_conn_recv(m->srv, p, n);
    return e == NS_E_CLOSED ? NS_OK : e;
}

static ns_err mem_read(void *arg, uint8_t *p, size_t n, size_t *got)
{
    mem *m = arg;
    const uint8_t *q;
    size_t k;
    *got = 0;
    if (m->fail_after == 0) {
        return NS_OK;
    }
    if (m->fail_after > 0) {
        m->fail_after--;
    }
    GUARD(ns_h2_conn_pending(m->srv, &q, &k));
    if (k > n) {
        k = n;
    }
    memcpy(p, q, k);
    ns_h2_conn_sent(m->srv, k);
    *got = k;
    return NS_OK;
}

int main(void)
{
    ns_signkeys *ks = NULL;
    if (ns_signkeys_load(&ks, (const uint8_t *)V2, sizeof V2 - 1) != NS_OK) {
        printf("not ok - keys: %s\n", ns_err_msg());
        return 1;
    }
    static ns_signsvc_ctx ctx;
    ctx.keys = ks;
    ns_h2_handler h;
    ns_signsvc_handler(&h, &ctx, 64 * 1024);
    mem m = {NULL, -1};
    CHECK(ns_h2_conn_new(&m.srv, &h, "mem", 0) == NS_OK, "server connection");
    ns_h2c_io io = {&m, mem_write, mem_read};
    ns_h2c *c = NULL;
    CHECK(ns_h2c_new(&c, &io, "nsign-enclave") == NS_OK, "client connection");
    ns_buf resp;
    ns_buf_init(&resp, 64 * 1024);
    int st = -1;
    char msg[NS_H2C_MSG_MAX];
    uint8_t req[256];

    /* without a client identity the policy answers UNAUTHENTICATED */
    CHECK(ns_h2c_unary(c, "/nsign.v1.Signer/ListKeys", NULL, 0, &resp, &st, msg) == NS_OK &&
              st == NS_GRPC_UNAUTHENTICATED && strstr(msg, "client") != NULL,
          "call 1: ListKeys without a client: UNAUTHENTICATED (%s)", msg);

    ns_h2_conn_set_client(m.srv, 0, "payments-api");
    CHECK(ns_h2c_unary(c, "/nsign.v1.Signer/ListKeys", NULL, 0, &resp, &st, msg) == NS_OK &&
              st == 0,
          "call 2 on the same connection: ListKeys OK (%d %s)", st, msg);
    nsign_v1_ListKeysResponse lk;
    memset(&lk, 0, sizeof lk);
    pb_istream_t is = pb_istream_from_buffer(resp.data, resp.len);
    CHECK(pb_decode(&is, nsign_v1_ListKeysResponse_fields, &lk) && lk.keys_count == 1 &&
              strcmp(lk.keys[0].key_id, "payments") == 0,
          "ListKeys answer decodes: payments");

    static uint8_t mb[sizeof(pb_bytes_array_t) + 16];
    pb_bytes_array_t *mm = (pb_bytes_array_t *)mb;
    mm->size = 5;
    memcpy(mm->bytes, "hello", 5);
    nsign_v1_SignRequest sq = nsign_v1_SignRequest_init_zero;
    snprintf(sq.key_id, sizeof sq.key_id, "payments");
    sq.which_input = nsign_v1_SignRequest_message_tag;
    sq.input.message = mm;
    pb_ostream_t os = pb_ostream_from_buffer(req, sizeof req);
    CHECK(pb_encode(&os, nsign_v1_SignRequest_fields, &sq), "encode SignRequest");
    CHECK(ns_h2c_unary(c, "/nsign.v1.Signer/Sign", req, os.bytes_written, &resp, &st, msg) ==
                  NS_OK &&
              st == 0,
          "call 3: Sign OK (%d %s)", st, msg);
    nsign_v1_SignResponse sr = nsign_v1_SignResponse_init_zero;
    is = pb_istream_from_buffer(resp.data, resp.len);
    CHECK(pb_decode(&is, nsign_v1_SignResponse_fields, &sr) && sr.signature.size == 64 &&
              crypto_sign_verify_detached(sr.signature.bytes, (const uint8_t *)"hello", 5,
                                          ks->keys[0].pub) == 0,
          "the Ed25519 signature verifies");

    CHECK(ns_h2c_unary(c, "/nsign.v1.Signer/Nope", NULL, 0, &resp, &st, msg) == NS_OK &&
              st == NS_GRPC_UNIMPLEMENTED,
          "unknown method: UNIMPLEMENTED status, not an error");
    CHECK(ns_h2c_unary(c, "/nsign.v1.Signer/Attest", NULL, 0, &resp, &st, msg) == NS_OK &&
              st == NS_GRPC_UNAVAILABLE,
          "Attest without an NSM: UNAVAILABLE (%d %s)", st, msg);
    /* the response limit */
    ns_buf small;
    ns_buf_init(&small, 8);
    CHECK(ns_h2c_unary(c, "/nsign.v1.Signer/Sign", req, os.bytes_written, &small, &st, msg) ==
              NS_E_TOO_BIG,
          "an answer above the response limit is refused");
    ns_buf_free(&small);
    /* the server goes away mid-call */
    m.fail_after = 0;
    CHECK(ns_h2c_unary(c, "/nsign.v1.Signer/ListKeys", NULL, 0, &resp, &st, msg) == NS_E_CLOSED,
          "a server that closes mid-call: NS_E_CLOSED (%s)", ns_err_msg());
    ns_h2c_free(c);
    ns_h2_conn_free(m.srv);
    ns_buf_free(&resp);
    ns_signkeys_free(ks);
    T_DONE();
}
