/* test_aws: SDK environment conventions, retry policy, signed headers, AWS JSON errors, S3 URIs. */
#include <stdlib.h>
#include <string.h>

#include "aws.h"
#include "s3.h"
#include "t.h"

int main(void)
{
    char reg[NS_AWS_REGION_MAX];
    unsetenv("AWS_REGION");
    unsetenv("AWS_DEFAULT_REGION");
    CHECK(ns_aws_region(reg, NULL) == NS_OK && strcmp(reg, "us-east-1") == 0,
          "default region us-east-1");
    setenv("AWS_DEFAULT_REGION", "eu-west-1", 1);
    CHECK(ns_aws_region(reg, NULL) == NS_OK && strcmp(reg, "eu-west-1") == 0, "AWS_DEFAULT_REGION");
    setenv("AWS_REGION", "ap-south-1", 1);
    CHECK(ns_aws_region(reg, NULL) == NS_OK && strcmp(reg, "ap-south-1") == 0,
          "AWS_REGION wins over AWS_DEFAULT_REGION");
    CHECK(ns_aws_region(reg, "us-west-2") == NS_OK && strcmp(reg, "us-west-2") == 0,
          "the option wins over the environment");
    CHECK_ERR(ns_aws_region(reg, "us-east-1/../x"), NS_E_USAGE, "bad region refused");

    ns_url u;
    int custom;
    unsetenv("AWS_ENDPOINT_URL");
    unsetenv("AWS_ENDPOINT_URL_KMS");
    CHECK(ns_aws_endpoint(&u, "kms", "eu-west-1", &custom) == NS_OK && !custom && u.tls &&
              strcmp(u.host, "kms.eu-west-1.amazonaws.com") == 0,
          "default endpoint https://kms.REGION.amazonaws.com");
    setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566", 1);
    CHECK(ns_aws_endpoint(&u, "kms", "eu-west-1", &custom) == NS_OK && custom && !u.tls &&
              u.port == 4566,
          "AWS_ENDPOINT_URL");
    setenv("AWS_ENDPOINT_URL_KMS", "https://localhost:9443", 1);
    CHECK(ns_aws_endpoint(&u, "kms", "eu-west-1", &custom) == NS_OK && custom && u.tls &&
              u.port == 9443,
          "AWS_ENDPOINT_URL_KMS wins");
    setenv("AWS_ENDPOINT_URL_KMS", "localhost:9443", 1);
    CHECK_ERR(ns_aws_endpoint(&u, "kms", "eu-west-1", &custom), NS_E_USAGE,
              "endpoint without scheme refused");

    ns_retry r;
    setenv("AWS_MAX_ATTEMPTS", "3", 1);
    ns_retry_default(&r);
    CHECK(r.max_attempts == 3, "AWS_MAX_ATTEMPTS");
    int ok = 1;
    for (int a = 1; a < 12; a++) {
        for (int i = 0; i < 50; i++) {
            int d = ns_retry_delay_ms(&r, a);
            int cap = NS_AWS_RETRY_BASE_MS << (a - 1);
            if (cap > NS_AWS_RETRY_CAP_MS || a > 8) {
                cap = NS_AWS_RETRY_CAP_MS;
            }
            ok &= d >= 0 && d <= cap;
        }
    }
    CHECK(ok, "backoff delays within [0, min(cap, base*2^n)]");
    CHECK(ns_aws_retryable_status(503, NULL) &&
              ns_aws_retryable_status(400, "ThrottlingException") &&
              ns_aws_retryable_status(429, NULL) &&
              !ns_aws_retryable_status(400, "ValidationException") &&
              !ns_aws_retryable_status(403, "AccessDeniedException"),
          "retryable statuses and codes");
    CHECK(ns_aws_retryable_err(NS_E_TIMEOUT) && ns_aws_retryable_err(NS_E_CONNECT) &&
              !ns_aws_retryable_err(NS_E_TLS) && !ns_aws_retryable_err(NS_E_AUTH),
          "retryable transport errors (not TLS verification)");

    char code[64], msg[128];
    const char *jerr =
        "{\"__type\":\"com.amazonaws.kms#AccessDeniedException\",\"message\":\"no\"}";
    ns_aws_json_error((const uint8_t *)jerr, strlen(jerr), code, sizeof code, msg, sizeof msg);
    CHECK(strcmp(code, "AccessDeniedException") == 0 && strcmp(msg, "no") == 0,
          "AWS JSON error: code after '#' and message");
    ns_aws_json_error((const uint8_t *)"<html>", 6, code, sizeof code, msg, sizeof msg);
    CHECK(code[0] == '\0' && msg[0] == '\0', "non-JSON error body gives empty strings");

    ns_creds *c;
    CHECK(ns_creds_new(&c) == NS_OK, "creds");
    strcpy(c->access_key_id, "AKIDEXAMPLE");
    strcpy(c->secret_access_key, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
    strcpy(c->session_token, "TOKEN");
    CHECK(ns_url_parse(&u, "https://kms.us-east-1.amazonaws.com") == NS_OK, "url");
    ns_aws_client cl = {"kms", "us-east-1", c, &u, NULL, NULL, 0, r, 0};
    ns_aws_signed s;
    ns_http_hdr ex[] = {{"X-Amz-Target", "TrentService.Decrypt"}};
    CHECK(ns_aws_sign(&cl, &s, "POST", "/", NULL, ex, 1, (const uint8_t *)"{}", 2, 1440938160) ==
                  NS_OK &&
              strcmp(s.amz_date, "20150830T123600Z") == 0 &&
              strstr(s.authz, "SignedHeaders=host;x-amz-date;x-amz-security-token;x-amz-target,") !=
                  NULL,
          "signed headers of a KMS call");
    int has_token = 0;
    for (size_t i = 0; i < s.n; i++) {
        has_token |= strcmp(s.hdrs[i].name, "X-Amz-Security-Token") == 0;
    }
    CHECK(has_token, "session token header sent");
    ns_creds_free(c);

    ns_s3_uri s3;
    CHECK(ns_s3_uri_parse(&s3, "s3://my-bucket/a/b c.txt") == NS_OK &&
              strcmp(s3.bucket, "my-bucket") == 0 && strcmp(s3.key, "a/b c.txt") == 0,
          "s3 URI");
    CHECK_ERR(ns_s3_uri_parse(&s3, "s3://my-bucket"), NS_E_USAGE, "s3 URI without key");
    CHECK_ERR(ns_s3_uri_parse(&s3, "s3://my-bucket/"), NS_E_USAGE, "s3 URI with empty key");
    CHECK_ERR(ns_s3_uri_parse(&s3, "https://b/k"), NS_E_USAGE, "not s3://");
    CHECK_ERR(ns_s3_uri_parse(&s3, "s3://b/k"), NS_E_USAGE, "bucket name too short");
    CHECK_ERR(ns_s3_uri_parse(&s3, "s3://bu cket/k"), NS_E_USAGE, "bucket with a space");
    T_DONE();
}
