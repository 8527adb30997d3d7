/*
 * Unit tests for kmspolicy: ARN validation (accepted and refused shapes), the key policy and
 * the IAM policy against exact expected documents, lists for several images, deduplication,
 * signed images, PCR16 pins, the debug-mode policy, and every refused input.
 */
#include "kmspolicy.h"

#include <string.h>

#include "json.h"
#include "t.h"

static const char *ROLE = "arn:aws:iam::111122223333:role/nsign-enclave-host";
static const char *ADMIN = "arn:aws:iam::111122223333:role/KeyAdmins";

static int arn_ok(const char *s, ns_arn_kind k)
{
    ns_arn a;
    return ns_kmspolicy_arn_parse(&a, s, k) == NS_OK;
}

static void test_arns(void)
{
    static const char *const good_roles[] = {
        "arn:aws:iam::111122223333:role/r",
        "arn:aws:iam::111122223333:role/service-role/my.role+x=y,z@w_1",
        "arn:aws-cn:iam::111122223333:role/r",
        "arn:aws-us-gov:iam::111122223333:role/a/b/c",
    };
    for (size_t i = 0; i < sizeof good_roles / sizeof *good_roles; i++) {
        CHECK(arn_ok(good_roles[i], NS_ARN_IAM_ROLE), "role ARN accepted: %s", good_roles[i]);
        CHECK(arn_ok(good_roles[i], NS_ARN_IAM_PRINCIPAL), "role is a principal: %s",
              good_roles[i]);
    }
    static const char *const bad_roles[] = {
        "",
        "arn",
        "arn:aws:iam::111122223333",
        "arn:aws:iam::111122223333:role/",
        "arn:aws:iam::111122223333:role//x",
        "arn:aws:iam::111122223333:role/x/",
        "arn:aws:iam::11112222333:role/r",
        "arn:aws:iam::1111222233334:role/r",
        "arn:aws:iam::11112222333a:role/r",
        "arn:aws:iam:us-east-1:111122223333:role/r",
        "arn:aws:s3::111122223333:role/r",
        "arn:aws:sts::111122223333:assumed-role/r/session",
        "arn:amazon:iam::111122223333:role/r",
        "ARN:aws:iam::111122223333:role/r",
        "arn:aws:iam::111122223333:role/r*",
        "arn:aws:iam::111122223333:role/r x",
        "arn:aws:iam::111122223333:role/r\"",
        "arn:aws:iam::111122223333:user/u",
        "arn:aws:iam::111122223333:root",
        ("arn:aws:iam::111122223333:role/"
         "a234567890123456789012345678901234567890123456789012345678901234X"),
        " arn:aws:iam::111122223333:role/r",
    };
    for (size_t i = 0; i < sizeof bad_roles / sizeof *bad_roles; i++) {
        CHECK(!arn_ok(bad_roles[i], NS_ARN_IAM_ROLE), "role ARN refused: '%s'", bad_roles[i]);
    }
    CHECK(arn_ok("arn:aws:iam::111122223333:role/"
                 "a234567890123456789012345678901234567890123456789012345678901234",
                 NS_ARN_IAM_ROLE),
          "a 64-character role name is accepted");
    CHECK(arn_ok("arn:aws:iam::111122223333:user/ops/alice", NS_ARN_IAM_PRINCIPAL),
          "a user is a principal");
    CHECK(arn_ok("arn:aws:iam::111122223333:root", NS_ARN_IAM_PRINCIPAL),
          "the account root is a principal");
    CHECK(!arn_ok("arn:aws:iam::111122223333:group/g", NS_ARN_IAM_PRINCIPAL),
          "a group is not a principal");
    CHECK(!arn_ok("*", NS_ARN_IAM_PRINCIPAL), "'*' is not a principal");

    static const char *const good_keys[] = {
        "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws:kms:eu-central-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab",
        "arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    };
    for (size_t i = 0; i < sizeof good_keys / sizeof *good_keys; i++) {
        CHECK(arn_ok(good_keys[i], NS_ARN_KMS_KEY), "key ARN accepted: %s", good_keys[i]);
    }
    static const char *const bad_keys[] = {
        "arn:aws:kms:us-east-1:111122223333:alias/nsign",
        "arn:aws:kms::111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws:kms:useast1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws:kms:us-east-:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws:kms:us-east-1:111122223333:key/1234ABCD-12ab-34cd-56ef-1234567890ab",
        "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890a",
        "arn:aws:kms:us-east-1:111122223333:key/1234abcd+12ab-34cd-56ef-1234567890ab",
        "arn:aws:kms:us-east-1:111122223333:key/*",
        "arn:aws:kms:us-east-1:111122223333:key/mrk-1234",
        "arn:aws:iam:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "1234abcd-12ab-34cd-56ef-1234567890ab",
    };
    for (size_t i = 0; i < sizeof bad_keys / sizeof *bad_keys; i++) {
        CHECK(!arn_ok(bad_keys[i], NS_ARN_KMS_KEY), "key ARN refused: '%s'", bad_keys[i]);
    }
    ns_arn a;
    CHECK_ERR(ns_kmspolicy_arn_parse(&a, "arn:aws:kms:us-east-1:111122223333:alias/nsign",
                                     NS_ARN_KMS_KEY),
              NS_E_USAGE, "an alias is a usage error");
    CHECK(strstr(ns_err_msg(), "describe-key") != NULL && strchr(ns_err_msg(), '\n') == NULL,
          "the alias error is one line and says how to find the key ARN: %s", ns_err_msg());
    CHECK_ERR(
        ns_kmspolicy_arn_parse(&a, "arn:aws:sts::111122223333:assumed-role/r/s", NS_ARN_IAM_ROLE),
        NS_E_USAGE, "an STS session is refused");
    CHECK(strstr(ns_err_msg(), "role's own IAM ARN") != NULL, "and the error says what to use");
    CHECK(ns_kmspolicy_arn_parse(&a, good_keys[2], NS_ARN_KMS_KEY) == NS_OK &&
              strcmp(a.partition, "aws-us-gov") == 0 && strcmp(a.region, "us-gov-west-1") == 0 &&
              strcmp(a.account, "111122223333") == 0,
          "the parts of a key ARN are returned");
}

static void fill(uint8_t *p, uint8_t v)
{
    memset(p, v, NS_KMSPOLICY_PCR_LEN);
}

static ns_kmspolicy_image image(uint8_t a, uint8_t b, uint8_t c)
{
    ns_kmspolicy_image im;
    memset(&im, 0, sizeof im);
    fill(im.pcr0, a);
    fill(im.pcr1, b);
    fill(im.pcr2, c);
    return im;
}

#define H(x)                                                                                       \
    x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x

static const char *EXPECTED_ONE =
    "{\n"
    "  \"Version\": \"2012-10-17\",\n"
    "  \"Id\": \"nsign-enclave-key\",\n"
    "  \"Statement\": [\n"
    "    {\n"
    "      \"Sid\": \"KeyAdministrators\",\n"
    "      \"Effect\": \"Allow\",\n"
    "      \"Principal\": {\n"
    "        \"AWS\": \"arn:aws:iam::111122223333:role/KeyAdmins\"\n"
    "      },\n"
    "      \"Action\": [\n"
    "        \"kms:CancelKeyDeletion\",\n"
    "        \"kms:CreateAlias\",\n"
    "        \"kms:DeleteAlias\",\n"
    "        \"kms:DescribeKey\",\n"
    "        \"kms:DisableKey\",\n"
    "        \"kms:DisableKeyRotation\",\n"
    "        \"kms:EnableKey\",\n"
    "        \"kms:EnableKeyRotation\",\n"
    "        \"kms:GetKeyPolicy\",\n"
    "        \"kms:GetKeyRotationStatus\",\n"
    "        \"kms:ListAliases\",\n"
    "        \"kms:ListGrants\",\n"
    "        \"kms:ListKeyPolicies\",\n"
    "        \"kms:ListResourceTags\",\n"
    "        \"kms:PutKeyPolicy\",\n"
    "        \"kms:RevokeGrant\",\n"
    "        \"kms:ScheduleKeyDeletion\",\n"
    "        \"kms:TagResource\",\n"
    "        \"kms:UntagResource\",\n"
    "        \"kms:UpdateAlias\",\n"
    "        \"kms:UpdateKeyDescription\"\n"
    "      ],\n"
    "      \"Resource\": \"*\"\n"
    "    },\n"
    "    {\n"
    "      \"Sid\": \"AdministratorsEncryptInputs\",\n"
    "      \"Effect\": \"Allow\",\n"
    "      \"Principal\": {\n"
    "        \"AWS\": \"arn:aws:iam::111122223333:role/KeyAdmins\"\n"
    "      },\n"
    "      \"Action\": \"kms:Encrypt\",\n"
    "      \"Resource\": \"*\"\n"
    "    },\n"
    "    {\n"
    "      \"Sid\": \"EnclaveDecrypt\",\n"
    "      \"Effect\": \"Allow\",\n"
    "      \"Principal\": {\n"
    "        \"AWS\": \"arn:aws:iam::111122223333:role/nsign-enclave-host\"\n"
    "      },\n"
    "      \"Action\": \"kms:Decrypt\",\n"
    "      \"Resource\": \"*\",\n"
    "      \"Condition\": {\n"
    "        \"StringEqualsIgnoreCase\": {\n"
    "          \"kms:RecipientAttestation:PCR0\": \"" H(
        "0a") "\",\n"
              "          \"kms:RecipientAttestation:PCR1\": \"" H(
                  "0b") "\",\n"
                        "          \"kms:RecipientAttestation:PCR2\": \"" H(
                            "0c") "\"\n"
                                  "        }\n"
                                  "      }\n"
                                  "    },\n"
                                  "    {\n"
                                  "      \"Sid\": \"InstanceRoleReadsKeyPolicy\",\n"
                                  "      \"Effect\": \"Allow\",\n"
                                  "      \"Principal\": {\n"
                                  "        \"AWS\": "
                                  "\"arn:aws:iam::111122223333:role/nsign-enclave-host\"\n"
                                  "      },\n"
                                  "      \"Action\": [\n"
                                  "        \"kms:DescribeKey\",\n"
                                  "        \"kms:GetKeyPolicy\"\n"
                                  "      ],\n"
                                  "      \"Resource\": \"*\"\n"
                                  "    }\n"
                                  "  ]\n"
                                  "}\n";

static int make_policy(ns_buf *b, const ns_kmspolicy_key_input *in)
{
    ns_buf_free(b);
    ns_buf_init(b, NS_KMSPOLICY_DOC_MAX);
    if (ns_kmspolicy_key_policy(b, in) != NS_OK || ns_buf_cstr(b) != NS_OK) {
        printf("#   %s\n", ns_err_msg());
        return 0;
    }
    return ns_json_validate(b->data, b->len) == NS_OK;
}

static void test_key_policy(void)
{
    const char *roles[] = {ROLE};
    const char *admins[] = {ADMIN};
    ns_kmspolicy_image ims[4] = {image(0x0a, 0x0b, 0x0c), image(0x1a, 0x0b, 0x1c),
                                 image(0x0a, 0x0b, 0x0c), image(0x2a, 0x2b, 0x2c)};
    ns_kmspolicy_key_input in = {.roles = roles,
                                 .n_roles = 1,
                                 .admins = admins,
                                 .n_admins = 1,
                                 .images = ims,
                                 .n_images = 1};
    ns_buf b, b2;
    ns_buf_init(&b, 0);
    ns_buf_init(&b2, 0);
    CHECK(make_policy(&b, &in), "one image: a valid JSON document");
    CHECK(strcmp((char *)b.data, EXPECTED_ONE) == 0, "one image: exactly the expected document");
    if (strcmp((char *)b.data, EXPECTED_ONE) != 0) {
        printf("#   got:\n%s", (char *)b.data);
    }
    CHECK(make_policy(&b2, &in) && b.len == b2.len && memcmp(b.data, b2.data, b.len) == 0,
          "deterministic: the same input gives the same bytes");

    /* Two images sharing PCR1, a third equal to the first: lists without duplicates. */
    in.n_images = 3;
    CHECK(make_policy(&b, &in), "three images (one repeated): valid JSON");
    const char *pcr0_list = "\"kms:RecipientAttestation:PCR0\": [\n"
                            "            \"" H("0a") "\",\n"
                                                     "            \"" H("1a") "\"\n"
                                                                              "          ],\n";
    CHECK(strstr((char *)b.data, pcr0_list) != NULL, "PCR0 is a list of the two distinct values");
    CHECK(strstr((char *)b.data, "\"kms:RecipientAttestation:PCR1\": \"" H("0b") "\"") != NULL,
          "a PCR both images share stays one string");
    CHECK(strstr((char *)b.data,
                 "PCR2\": [\n            \"" H("0c") "\",\n            \"" H("1c") "\"\n") != NULL,
          "PCR2 lists both in --eif order");
    CHECK(strstr((char *)b.data, "PCR8") == NULL && strstr((char *)b.data, "Signed") == NULL,
          "unsigned images: no PCR8, no signed statement");

    /* A signed image next to unsigned ones: its own statement with PCR8. */
    ims[3].is_signed = 1;
    fill(ims[3].pcr8, 0x88);
    in.n_images = 4;
    CHECK(make_policy(&b, &in), "signed and unsigned images: valid JSON");
    const char *s = (char *)b.data;
    const char *signed_st = strstr(s, "\"Sid\": \"EnclaveDecryptSigned\"");
    CHECK(signed_st != NULL && strstr(s, "\"Sid\": \"EnclaveDecrypt\"") < signed_st,
          "the signed image has a statement of its own after the unsigned one");
    CHECK(signed_st && strstr(signed_st, "\"kms:RecipientAttestation:PCR8\": \"" H("88") "\"") &&
              strstr(signed_st, "\"kms:RecipientAttestation:PCR0\": \"" H("2a") "\""),
          "it pins PCR8 and the signed image's PCR0");
    CHECK(signed_st && strstr(s, H("2a")) > signed_st,
          "the signed image's PCR0 is not in the unsigned statement");

    /* PCR16 pins. */
    uint8_t p16[2][NS_KMSPOLICY_PCR_LEN];
    fill(p16[0], 0x16);
    fill(p16[1], 0x61);
    in.n_images = 1;
    in.pcr16 = (const uint8_t(*)[NS_KMSPOLICY_PCR_LEN])p16;
    in.n_pcr16 = 1;
    CHECK(make_policy(&b, &in), "with one PCR16: valid JSON");
    CHECK(strstr((char *)b.data, "\"" H("0c") "\",\n          \"kms:RecipientAttestation:PCR16\": "
                                              "\"" H("16") "\"\n") != NULL,
          "PCR16 follows PCR2 in the same condition");
    in.n_pcr16 = 2;
    CHECK(make_policy(&b, &in) &&
              strstr((char *)b.data, "PCR16\": [\n            \"" H("16") "\",\n            \"" H(
                                         "61") "\"\n") != NULL,
          "two PCR16 values: a list");
    uint8_t zero16[1][NS_KMSPOLICY_PCR_LEN] = {{0}};
    in.pcr16 = (const uint8_t(*)[NS_KMSPOLICY_PCR_LEN])zero16;
    in.n_pcr16 = 1;
    ns_buf_free(&b);
    ns_buf_init(&b, NS_KMSPOLICY_DOC_MAX);
    CHECK_ERR(ns_kmspolicy_key_policy(&b, &in), NS_E_USAGE, "an all-zero PCR16 is refused");
    in.n_pcr16 = 0;

    /* Several principals. */
    const char *roles2[] = {ROLE, "arn:aws:iam::444455556666:role/other"};
    in.roles = roles2;
    in.n_roles = 2;
    CHECK(make_policy(&b, &in) &&
              strstr((char *)b.data, "\"AWS\": [\n          \"arn:aws:iam::111122223333:role/"
                                     "nsign-enclave-host\",\n") != NULL,
          "two roles: Principal.AWS is a list");

    /* The debug-mode policy. */
    in.roles = roles;
    in.n_roles = 1;
    in.debug = 1;
    ns_buf_free(&b);
    ns_buf_init(&b, NS_KMSPOLICY_DOC_MAX);
    CHECK_ERR(ns_kmspolicy_key_policy(&b, &in), NS_E_USAGE, "debug mode with an image is refused");
    in.n_images = 0;
    CHECK(make_policy(&b, &in), "debug mode: valid JSON");
    CHECK(strstr((char *)b.data, "\"kms:RecipientAttestation:PCR0\": \"" H("00") "\"") &&
              strstr((char *)b.data, "\"kms:RecipientAttestation:PCR2\": \"" H("00") "\"") &&
              strstr((char *)b.data, "nsign-enclave-key-DEBUG-MODE"),
          "debug mode: all-zero PCR0-2 and an Id that says so");
    in.debug = 0;

    /* Refused inputs. */
    ns_buf_free(&b);
    ns_buf_init(&b, NS_KMSPOLICY_DOC_MAX);
    CHECK_ERR(ns_kmspolicy_key_policy(&b, &in), NS_E_USAGE, "no image is refused");
    in.n_images = 1;
    const char *bad_roles[] = {"arn:aws:iam::111122223333:user/alice"};
    in.roles = bad_roles;
    CHECK_ERR(ns_kmspolicy_key_policy(&b, &in), NS_E_USAGE, "a user as --role-arn is refused");
    CHECK(strncmp(ns_err_msg(), "--role-arn: ", 12) == 0, "the error names the option: %s",
          ns_err_msg());
    in.roles = roles;
    const char *cn_admin[] = {"arn:aws-cn:iam::111122223333:role/KeyAdmins"};
    in.admins = cn_admin;
    CHECK_ERR(ns_kmspolicy_key_policy(&b, &in), NS_E_USAGE, "principals in two partitions");
    in.admins = admins;
    in.n_roles = 0;
    CHECK_ERR(ns_kmspolicy_key_policy(&b, &in), NS_E_USAGE, "no role is refused");
    in.n_roles = 1;
    const char *twice[] = {ADMIN, ADMIN};
    in.admins = twice;
    in.n_admins = 2;
    CHECK_ERR(ns_kmspolicy_key_policy(&b, &in), NS_E_USAGE, "a repeated admin is refused");
    in.admins = admins;
    in.n_admins = 1;
    ns_kmspolicy_image many[NS_KMSPOLICY_MAX_IMAGES + 1];
    for (int i = 0; i <= NS_KMSPOLICY_MAX_IMAGES; i++) {
        many[i] = image((uint8_t)(i + 1), 1, 1);
    }
    in.images = many;
    in.n_images = NS_KMSPOLICY_MAX_IMAGES;
    CHECK(make_policy(&b, &in), "%d images: accepted", NS_KMSPOLICY_MAX_IMAGES);
    in.n_images = NS_KMSPOLICY_MAX_IMAGES + 1;
    ns_buf_free(&b);
    ns_buf_init(&b, NS_KMSPOLICY_DOC_MAX);
    CHECK_ERR(ns_kmspolicy_key_policy(&b, &in), NS_E_USAGE, "one image too many is refused");
    ns_buf_free(&b);
    ns_buf_init(&b, 64);
    in.n_images = 1;
    CHECK_ERR(ns_kmspolicy_key_policy(&b, &in), NS_E_TOO_BIG,
              "a buffer too small is an error, not a cut document");
    ns_buf_free(&b);
    ns_buf_free(&b2);
}

static const char *EXPECTED_IAM =
    "{\n"
    "  \"Version\": \"2012-10-17\",\n"
    "  \"Statement\": [\n"
    "    {\n"
    "      \"Sid\": \"ReadEnclaveCiphertexts\",\n"
    "      \"Effect\": \"Allow\",\n"
    "      \"Action\": \"s3:GetObject\",\n"
    "      \"Resource\": [\n"
    "        \"arn:aws:s3:::my-bucket/enclave/age-private.key.enc\",\n"
    "        \"arn:aws:s3:::my-bucket/enclave/service_key_shares.json.age\"\n"
    "      ]\n"
    "    },\n"
    "    {\n"
    "      \"Sid\": \"DecryptInsideEnclave\",\n"
    "      \"Effect\": \"Allow\",\n"
    "      \"Action\": \"kms:Decrypt\",\n"
    "      \"Resource\": "
    "\"arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab\"\n"
    "    },\n"
    "    {\n"
    "      \"Sid\": \"PreflightReadsKeyPolicy\",\n"
    "      \"Effect\": \"Allow\",\n"
    "      \"Action\": [\n"
    "        \"kms:DescribeKey\",\n"
    "        \"kms:GetKeyPolicy\"\n"
    "      ],\n"
    "      \"Resource\": "
    "\"arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab\"\n"
    "    }\n"
    "  ]\n"
    "}\n";

static void test_iam_policy(void)
{
    ns_kmspolicy_iam_input in = {
        .key_arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"};
    CHECK(ns_kmspolicy_default_objects(in.objects, "s3://my-bucket/enclave/") == NS_OK,
          "bucket URI with a prefix and a trailing slash");
    CHECK(strcmp(in.objects[0].key, "enclave/age-private.key.enc") == 0 &&
              strcmp(in.objects[1].key, "enclave/service_key_shares.json.age") == 0 &&
              strcmp(in.objects[1].bucket, "my-bucket") == 0,
          "the two default object names under the prefix");
    ns_buf b;
    ns_buf_init(&b, NS_KMSPOLICY_DOC_MAX);
    CHECK(ns_kmspolicy_iam_policy(&b, &in) == NS_OK && ns_buf_cstr(&b) == NS_OK &&
              ns_json_validate(b.data, b.len) == NS_OK,
          "IAM policy: valid JSON");
    CHECK(strcmp((char *)b.data, EXPECTED_IAM) == 0, "IAM policy: exactly the expected document");
    if (strcmp((char *)b.data, EXPECTED_IAM) != 0) {
        printf("#   got:\n%s", (char *)b.data);
    }
    ns_s3_uri o[2];
    CHECK(ns_kmspolicy_default_objects(o, "s3://my-bucket") == NS_OK &&
              strcmp(o[0].key, "age-private.key.enc") == 0,
          "a bucket without a prefix");
    CHECK_ERR(ns_kmspolicy_default_objects(o, "https://my-bucket/x"), NS_E_USAGE,
              "a bucket URI that is not s3:// is refused");
    CHECK_ERR(ns_kmspolicy_default_objects(o, "s3://"), NS_E_USAGE, "s3:// alone is refused");

    ns_buf_reset(&b);
    in.key_arn = "arn:aws-cn:kms:cn-north-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    CHECK(ns_kmspolicy_iam_policy(&b, &in) == NS_OK && ns_buf_cstr(&b) == NS_OK &&
              strstr((char *)b.data, "\"arn:aws-cn:s3:::my-bucket/enclave/age-private.key.enc\""),
          "the S3 ARNs take the key's partition");
    ns_buf_reset(&b);
    in.key_arn = "arn:aws:kms:us-east-1:111122223333:alias/nsign";
    CHECK_ERR(ns_kmspolicy_iam_policy(&b, &in), NS_E_USAGE, "an alias as --key-arn is refused");
    CHECK(strncmp(ns_err_msg(), "--key-arn: ", 11) == 0, "the error names --key-arn: %s",
          ns_err_msg());
    in.key_arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    static const char *const wild[] = {"s3://b-1/enclave/*", "s3://b-1/a?b", "s3://b-1/${aws:x}",
                                       "s3://b-1/a\tb"};
    for (size_t i = 0; i < sizeof wild / sizeof *wild; i++) {
        CHECK(ns_s3_uri_parse(&in.objects[0], wild[i]) == NS_OK, "parse %s", wild[i]);
        ns_buf_reset(&b);
        CHECK_ERR(ns_kmspolicy_iam_policy(&b, &in), NS_E_USAGE,
                  "an object key with a wildcard, variable or control byte is refused (%zu)", i);
    }
    CHECK(ns_s3_uri_parse(&in.objects[0], "s3://my-bucket/enclave/service_key_shares.json.age") ==
              NS_OK,
          "parse the shares URI");
    ns_buf_reset(&b);
    CHECK_ERR(ns_kmspolicy_iam_policy(&b, &in), NS_E_USAGE, "the same object twice is refused");
    ns_buf_free(&b);
}

int main(void)
{
    test_arns();
    test_key_policy();
    test_iam_policy();
    T_DONE();
}
