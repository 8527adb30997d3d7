/*
 * Unit tests for signsvc's client policy (keys file version 2), through the handler the
 * transport calls: the authenticated client (as the TLS transport sets it) decides what
 * ListKeys shows, which keys Sign and GetPublicKey may use, and the per-client rate; without a
 * client a policy answers UNAUTHENTICATED; a version-1 file has no policy.
 */
#include <pb_decode.h>
#include <pb_encode.h>
#include <string.h>

#include "grpc.h"
#include "grpc_health.pb.h"
#include "nsign.pb.h"
#include "signsvc.h"
#include "t.h"

#define SEED "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="
#define PIN_A "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define PIN_B "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"

static const char V2[] =
    "{\"version\":2,\"clients\":["
    "{\"id\":\"payments-api\",\"spki_sha256\":\"" PIN_A "\"},"
    "{\"id\":\"slow\",\"spki_sha256\":\"" PIN_B "\",\"max_signs_per_second\":1}],"
    "\"keys\":["
    "{\"id\":\"payments\",\"algorithm\":\"ed25519\",\"private_key\":\"" SEED "\","
    "\"allow\":[\"payments-api\",\"slow\"]},"
    "{\"id\":\"treasury\",\"algorithm\":\"ed25519\",\"private_key\":\"" SEED "\","
    "\"allow\":[\"slow\"]}]}";

static const char V1[] =
    "{\"version\":1,\"keys\":["
    "{\"id\":\"payments\",\"algorithm\":\"ed25519\",\"private_key\":\"" SEED "\"}]}";

static ns_h2_handler h;

static int method(const char *path)
{
    int streaming = 0;
    return h.route(h.app, path, &streaming);
}

/* Calls a method as client (index, id); returns the gRPC status, the response in out. */
static int call(const char *path, int client, const char *id, const pb_msgdesc_t *f,
                const void *req, ns_buf *out, char *msg)
{
    uint8_t in[512];
    pb_ostream_t os = pb_ostream_from_buffer(in, sizeof in);
    if (!pb_encode(&os, f, req)) {
        return -1;
    }
    ns_h2_req r = {
        .peer = "test", .client = client, .client_id = id, .msg = in, .len = os.bytes_written};
    ns_buf_reset(out);
    msg[0] = 0;
    return h.call(h.app, method(path), &r, out, msg, NS_GRPC_MSG_MAX);
}

static int sign(int client, const char *id, const char *key, ns_buf *out, char *msg)
{
    static pb_bytes_array_t *m;
    static uint8_t mbuf[sizeof(pb_bytes_array_t) + 8];
    nsign_v1_SignRequest q = nsign_v1_SignRequest_init_zero;
    snprintf(q.key_id, sizeof q.key_id, "%s", key);
    m = (pb_bytes_array_t *)mbuf;
    m->size = 3;
    memcpy(m->bytes, "abc", 3);
    q.which_input = nsign_v1_SignRequest_message_tag;
    q.input.message = m;
    return call("/nsign.v1.Signer/Sign", client, id, nsign_v1_SignRequest_fields, &q, out, msg);
}

static int list(int client, const char *id, ns_buf *out, char *msg, char names[2][66], int *n)
{
    nsign_v1_ListKeysRequest q = nsign_v1_ListKeysRequest_init_zero;
    int st = call("/nsign.v1.Signer/ListKeys", client, id, nsign_v1_ListKeysRequest_fields, &q, out,
                  msg);
    *n = -1;
    if (st == NS_GRPC_OK) {
        static nsign_v1_ListKeysResponse r;
        memset(&r, 0, sizeof r);
        pb_istream_t is = pb_istream_from_buffer(out->data, out->len);
        if (pb_decode(&is, nsign_v1_ListKeysResponse_fields, &r)) {
            *n = (int)r.keys_count;
            for (int i = 0; i < *n && i < 2; i++) {
                snprintf(names[i], 66, "%s", r.keys[i].key_id);
            }
        }
    }
    return st;
}

int main(void)
{
    ns_signkeys *ks = NULL;
    ns_buf out;
    char msg[NS_GRPC_MSG_MAX];
    char names[2][66];
    int n;
    ns_buf_init(&out, 1 << 20);
    if (ns_signkeys_load(&ks, (const uint8_t *)V2, sizeof V2 - 1) != NS_OK) {
        printf("not ok - v2 keys load: %s\n", ns_err_msg());
        return 1;
    }
    static ns_signsvc_ctx ctx;
    ctx.keys = ks;
    ns_signsvc_handler(&h, &ctx, 64 * 1024);

    CHECK(sign(0, "payments-api", "payments", &out, msg) == NS_GRPC_OK,
          "policy: an allowed client signs (%s)", msg);
    CHECK(sign(0, "payments-api", "treasury", &out, msg) == NS_GRPC_PERMISSION_DENIED &&
              strstr(msg, "\"payments-api\" may not use key \"treasury\"") != NULL,
          "policy: allowed on key A, calling key B: PERMISSION_DENIED (%s)", msg);
    CHECK(sign(-1, "-", "payments", &out, msg) == NS_GRPC_UNAUTHENTICATED,
          "policy: no authenticated client: UNAUTHENTICATED (%s)", msg);
    CHECK(sign(0, "payments-api", "nope", &out, msg) == NS_GRPC_NOT_FOUND,
          "policy: unknown key stays NOT_FOUND");

    CHECK(list(0, "payments-api", &out, msg, names, &n) == NS_GRPC_OK && n == 1 &&
              strcmp(names[0], "payments") == 0,
          "ListKeys: payments-api sees only its key (%d)", n);
    CHECK(list(1, "slow", &out, msg, names, &n) == NS_GRPC_OK && n == 2,
          "ListKeys: slow sees both keys");
    CHECK(list(-1, "-", &out, msg, names, &n) == NS_GRPC_UNAUTHENTICATED,
          "ListKeys: no client: UNAUTHENTICATED");

    nsign_v1_GetPublicKeyRequest g = nsign_v1_GetPublicKeyRequest_init_zero;
    snprintf(g.key_id, sizeof g.key_id, "treasury");
    CHECK(call("/nsign.v1.Signer/GetPublicKey", 0, "payments-api",
               nsign_v1_GetPublicKeyRequest_fields, &g, &out, msg) == NS_GRPC_PERMISSION_DENIED,
          "GetPublicKey: a key the client may not use: PERMISSION_DENIED");
    CHECK(call("/nsign.v1.Signer/GetPublicKey", 1, "slow", nsign_v1_GetPublicKeyRequest_fields, &g,
               &out, msg) == NS_GRPC_OK,
          "GetPublicKey: an allowed key");

    /* slow: 1 signature per second, a bucket of one. Five calls in a row: the first passes, and
     * unless four seconds pass between them, one at least is refused. */
    int ok = 0, exhausted = 0, other = 0;
    for (int i = 0; i < 5; i++) {
        int st = sign(1, "slow", "treasury", &out, msg);
        ok += st == NS_GRPC_OK;
        exhausted += st == NS_GRPC_RESOURCE_EXHAUSTED && strstr(msg, "max_signs_per_second");
        other += st != NS_GRPC_OK && st != NS_GRPC_RESOURCE_EXHAUSTED;
    }
    CHECK(ok >= 1 && exhausted >= 1 && other == 0,
          "rate: over max_signs_per_second is RESOURCE_EXHAUSTED (ok=%d exhausted=%d)", ok,
          exhausted);
    int unlimited = 0;
    for (int i = 0; i < 20; i++) {
        unlimited += sign(0, "payments-api", "payments", &out, msg) == NS_GRPC_OK;
    }
    CHECK(unlimited == 20, "rate: a client without a limit is not limited");

    /* Health/Check follows the drain flag: SERVING, then NOT_SERVING once a drain began. */
    static ns_stop drain;
    ctx.draining = &drain;
    grpc_health_v1_HealthCheckRequest hq = grpc_health_v1_HealthCheckRequest_init_zero;
    for (int d = 0; d < 2; d++) {
        drain = d;
        grpc_health_v1_HealthCheckResponse hr = grpc_health_v1_HealthCheckResponse_init_zero;
        int st = call("/grpc.health.v1.Health/Check", -1, "-",
                      grpc_health_v1_HealthCheckRequest_fields, &hq, &out, msg);
        pb_istream_t is = pb_istream_from_buffer(out.data, out.len);
        int decoded =
            st == NS_GRPC_OK && pb_decode(&is, grpc_health_v1_HealthCheckResponse_fields, &hr);
        CHECK(decoded &&
                  hr.status == (d ? grpc_health_v1_HealthCheckResponse_ServingStatus_NOT_SERVING
                                  : grpc_health_v1_HealthCheckResponse_ServingStatus_SERVING),
              "Health/Check: %s while %s", d ? "NOT_SERVING" : "SERVING",
              d ? "draining" : "serving");
    }
    ctx.draining = NULL;
    ns_signkeys_free(ks);

    /* version 1: no policy, anyone */
    ks = NULL;
    if (ns_signkeys_load(&ks, (const uint8_t *)V1, sizeof V1 - 1) != NS_OK) {
        printf("not ok - v1 keys load\n");
        return 1;
    }
    static ns_signsvc_ctx ctx1;
    ctx1.keys = ks;
    ns_signsvc_handler(&h, &ctx1, 64 * 1024);
    CHECK(sign(-1, "-", "payments", &out, msg) == NS_GRPC_OK, "v1: no client needed");
    CHECK(list(-1, "-", &out, msg, names, &n) == NS_GRPC_OK && n == 1, "v1: ListKeys all");
    ns_signkeys_free(ks);
    ns_buf_free(&out);
    T_DONE();
}
