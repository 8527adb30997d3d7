/* test_creds: the strict flat JSON reader, credentials documents, times, env, output formats. */
#include <stdlib.h>
#include <string.h>

#include "creds.h"
#include "json.h"
#include "t.h"

static ns_err parse(ns_creds *c, const char *j)
{
    return ns_creds_parse_json(c, (const uint8_t *)j, strlen(j));
}

static ns_err get(const char *j, const char *k, char *out, size_t cap)
{
    ns_buf b;
    ns_buf_init(&b, 256);
    ns_err e = ns_json_get_string((const uint8_t *)j, strlen(j), k, &b);
    if (e == NS_OK) {
        e = ns_buf_cstr(&b);
    }
    if (e == NS_OK) {
        snprintf(out, cap, "%s", (const char *)b.data);
    }
    ns_buf_free(&b);
    return e;
}

static ns_err validate(const char *j)
{
    return ns_json_validate((const uint8_t *)j, strlen(j));
}

int main(void)
{
    ns_creds *c;
    CHECK(ns_creds_new(&c) == NS_OK, "credentials allocated in secret memory");
    const char *imds =
        "{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : \"2026-11-24T15:00:00Z\",\n"
        "  \"Type\" : \"AWS-HMAC\",\n  \"AccessKeyId\" : \"ASIAEXAMPLE\",\n"
        "  \"SecretAccessKey\" : \"se\\/cret+key\",\n  \"Token\" : \"tok==\",\n"
        "  \"Expiration\" : \"2026-11-24T21:00:00Z\", \"n\": [1, {\"a\": [true, "
        "null, -1.5e3]}]\n}\n";
    CHECK(parse(c, imds) == NS_OK && strcmp(c->access_key_id, "ASIAEXAMPLE") == 0 &&
              strcmp(c->secret_access_key, "se/cret+key") == 0 &&
              strcmp(c->session_token, "tok==") == 0 && c->expires_at == 1795554000,
          "IMDS document parsed (escapes, nested values skipped)");
    CHECK(ns_creds_check_fresh(c, 1795554000 - 3600) == NS_OK, "fresh an hour before expiry");
    CHECK_ERR(ns_creds_check_fresh(c, 1795554000 - 30), NS_E_EXPIRED, "refused within the margin");
    CHECK_ERR(ns_creds_check_fresh(c, 1795554000 + 1), NS_E_EXPIRED, "refused after expiry");
    CHECK(strstr(ns_err_msg(), "se/cret") == NULL, "expiry message holds no secret");

    ns_buf out;
    ns_buf_init_secret(&out, 8192);
    CHECK(ns_creds_to_json(c, &out) == NS_OK, "to_json");
    ns_creds *c2;
    CHECK(ns_creds_new(&c2) == NS_OK && ns_creds_parse_json(c2, out.data, out.len) == NS_OK &&
              memcmp(c, c2, sizeof *c) == 0,
          "to_json round-trips");
    ns_buf_reset(&out);
    CHECK(ns_creds_to_env(c, &out) == NS_OK && ns_buf_cstr(&out) == NS_OK &&
              strstr((char *)out.data, "export AWS_SECRET_ACCESS_KEY='se/cret+key'\n") != NULL,
          "to_env quotes for the shell");
    ns_buf_free(&out);

    CHECK(parse(c, "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\"}") == NS_OK &&
              c->session_token[0] == '\0' && c->expires_at == 0,
          "long-term keys without token and expiration");
    CHECK(parse(c, "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\",\"SessionToken\":\"T\"}") ==
                  NS_OK &&
              strcmp(c->session_token, "T") == 0,
          "SessionToken accepted as Token");
    char v[64];
    CHECK(get("{\"k\":\"\\u00e9\\ud83d\\ude00\\n\"}", "k", v, sizeof v) == NS_OK &&
              strcmp(v, "\xc3\xa9\xf0\x9f\x98\x80\n") == 0,
          "\\u escapes and surrogate pairs to UTF-8");

    /* negative cases: every one must fail, and wipe */
    static const struct {
        const char *doc;
        ns_err want;
        const char *what;
    } bad[] = {
        {"", NS_E_PARSE, "empty document"},
        {"[]", NS_E_PARSE, "not an object"},
        {"{\"AccessKeyId\":\"A\"}", NS_E_NOT_FOUND, "missing SecretAccessKey"},
        {"{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\"", NS_E_PARSE, "truncated"},
        {"{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\"} x", NS_E_PARSE, "trailing data"},
        {"{\"AccessKeyId\":\"A\",\"AccessKeyId\":\"B\",\"SecretAccessKey\":\"S\"}", NS_E_PARSE,
         "duplicate member"},
        {"{\"AccessKeyId\":1,\"SecretAccessKey\":\"S\"}", NS_E_PARSE, "non-string key id"},
        {"{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\",\"Expiration\":\"tomorrow\"}",
         NS_E_PARSE, "bad Expiration"},
        {"{\"AccessKeyId\":\"\",\"SecretAccessKey\":\"S\"}", NS_E_PARSE, "empty key id"},
        {"{\"AccessKeyId\":\"A\\u0000\",\"SecretAccessKey\":\"S\"}", NS_E_PARSE, "NUL in a value"},
        {"{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\",\"x\":01}", NS_E_PARSE, "leading zero"},
        {"{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\",\"x\":tru}", NS_E_PARSE, "bad literal"},
        {"{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\",\"x\":\"\\ud800\"}", NS_E_PARSE,
         "lone surrogate"},
        {"{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\",\"x\":\"a\nb\"}", NS_E_PARSE,
         "raw control character"},
        {"{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\",\"x\":[1,]}", NS_E_PARSE,
         "trailing comma"},
        {"{\"Code\":\"Failure\",\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\"}", NS_E_REMOTE,
         "Code other than Success"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_ERR(parse(c, bad[i].doc), bad[i].want, "refused: %s", bad[i].what);
        CHECK(c->access_key_id[0] == '\0' && c->secret_access_key[0] == '\0', "wiped after: %s",
              bad[i].what);
    }
    char deep[200];
    memset(deep, '[', sizeof deep);
    char doc[400];
    snprintf(doc, sizeof doc, "{\"x\":%.*s}", 100, deep);
    CHECK_ERR(get(doc, "y", v, sizeof v), NS_E_PARSE, "nesting beyond the depth bound refused");
    /* issue 15: a NUL would cut the C string; refused in values, names and skipped members */
    CHECK_ERR(get("{\"k\":\"a\\u0000b\"}", "k", v, sizeof v), NS_E_PARSE,
              "\\u0000 in the value read refused");
    CHECK_ERR(get("{\"z\":\"\\u0000\",\"k\":\"v\"}", "k", v, sizeof v), NS_E_PARSE,
              "\\u0000 in a skipped member refused");
    CHECK_ERR(get("{\"k\\u0000\":\"v\",\"k\":\"v\"}", "k", v, sizeof v), NS_E_PARSE,
              "\\u0000 in a member name refused");
    CHECK(get("{\"k\":\"\\u0001\"}", "k", v, sizeof v) == NS_OK && v[0] == 1,
          "\\u0001 still accepted (only NUL is refused)");
    CHECK_ERR(parse(c, "{\"AccessKeyId\":\"AKID\\u0000X\",\"SecretAccessKey\":\"s\"}"),
              NS_E_PARSE, "credentials with \\u0000 in a value refused");
    CHECK_ERR(validate("{\"a\":[\"\\u0000\"]}"), NS_E_PARSE,
              "validate: \\u0000 nested in an array refused");
    CHECK_ERR(validate("{\"a\":[\"x\"]} "), NS_OK,
              "validate: a whole document with trailing whitespace");
    CHECK_ERR(validate("{} {}"), NS_E_PARSE,
              "validate: trailing data refused");
    char big[NS_CREDS_SECRET_MAX + 64];
    memset(big, 'k', sizeof big);
    snprintf(doc, sizeof doc, "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"%.*s\"}",
             NS_CREDS_SECRET_MAX + 1, big);
    CHECK_ERR(parse(c, doc), NS_E_TOO_BIG, "over-long secret refused");

    int64_t t;
    CHECK(ns_creds_parse_time("1970-01-01T00:00:00Z", &t) == NS_OK && t == 0, "epoch");
    CHECK(ns_creds_parse_time("2026-11-24T21:00:00.123Z", &t) == NS_OK && t == 1795554000,
          "fractional seconds");
    CHECK(ns_creds_parse_time("2026-11-24T22:00:00+01:00", &t) == NS_OK && t == 1795554000,
          "offset");
    CHECK_ERR(ns_creds_parse_time("2026-13-24T21:00:00Z", &t), NS_E_PARSE, "month 13 refused");
    CHECK_ERR(ns_creds_parse_time("2026-11-24T21:00:00", &t), NS_E_PARSE, "no zone refused");

    setenv("AWS_ACCESS_KEY_ID", "AKENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "SKENV", 1);
    setenv("AWS_SESSION_TOKEN", "TKENV", 1);
    CHECK(ns_creds_from_env(c) == NS_OK && strcmp(c->session_token, "TKENV") == 0,
          "from the environment");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    CHECK_ERR(ns_creds_from_env(c), NS_E_USAGE, "key id without secret refused");
    unsetenv("AWS_ACCESS_KEY_ID");
    CHECK_ERR(ns_creds_from_env(c), NS_E_NOT_FOUND, "nothing in the environment");
    ns_creds_free(c);
    ns_creds_free(c2);
    T_DONE();
}
