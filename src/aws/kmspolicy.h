/*
 * kmspolicy: the two policy documents an operator applies for an nsign enclave, written as
 * deterministic, pretty-printed JSON (no I/O; `nsign kms-policy` reads the EIFs and prints).
 *
 * The KMS key policy (AWS KMS developer guide, "Condition keys for Nitro Enclaves"):
 * - "KeyAdministrators": the --admin-arn principals manage the key (describe, policy, enable,
 *   disable, tags, aliases, rotation, deletion) and nothing cryptographic except Encrypt (a
 *   separate statement, "AdministratorsEncryptInputs": the operator wraps the age key with it).
 *   No kms:CreateGrant, kms:Decrypt, kms:ReEncrypt* or kms:GenerateDataKey*: an administrator
 *   cannot decrypt, nor grant decryption, without first changing the policy (PutKeyPolicy,
 *   which CloudTrail records).
 * - "EnclaveDecrypt": the instance role may call kms:Decrypt only when the request's Recipient
 *   carries a Nitro attestation document whose PCR0, PCR1, PCR2 (and PCR8 for a signed image,
 *   and PCR16 when pinned) equal one of the given values (StringEqualsIgnoreCase on
 *   kms:RecipientAttestation:PCRn; PCR0 is also what kms:RecipientAttestation:ImageSha384
 *   matches, so it is not repeated). A request without an attestation document has no such key
 *   in its context and is refused. Several images give lists (any one matches): PCR0 covers
 *   kernel, command line and every ramdisk, so mixing one image's PCR1 with another's PCR2
 *   admits nothing PCR0 does not. Signed and unsigned images are kept in two statements
 *   ("EnclaveDecrypt" and "EnclaveDecryptSigned") so the unsigned ones need no PCR8.
 * - "InstanceRoleReadsKeyPolicy": the role may DescribeKey and GetKeyPolicy (public facts), so
 *   `run-enclave --preflight` can check the running EIF's PCR0 is in the policy.
 * A debug-mode policy (PCR0-2 all zero: any debug-mode enclave, whoever built it) is written
 * only when asked for explicitly (debug = 1), never mixed with images.
 *
 * The instance role's IAM policy: s3:GetObject on exactly the two objects run-enclave fetches
 * (AGE_KEY_S3_URI, KEY_SHARES_S3_URI), kms:Decrypt and kms:DescribeKey/GetKeyPolicy on exactly
 * the key. Object keys holding IAM wildcards ('*', '?') or policy variables ('$') are refused:
 * in a Resource they would widen the grant.
 *
 * Invariants: every ARN is validated strictly before it is written (ns_kmspolicy_arn_parse);
 * values are lower-case hex; lists keep first-seen order without duplicates; the same input
 * gives the same bytes.
 */
#ifndef NS_KMSPOLICY_H
#define NS_KMSPOLICY_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "s3.h"

#define NS_KMSPOLICY_PCR_LEN 48
#define NS_KMSPOLICY_MAX_IMAGES 8
#define NS_KMSPOLICY_MAX_PRINCIPALS 8
#define NS_KMSPOLICY_MAX_PCR16 8
#define NS_KMSPOLICY_ARN_MAX 2048
#define NS_KMSPOLICY_DOC_MAX (256 * 1024)

typedef enum {
    NS_ARN_IAM_ROLE,      /* arn:P:iam::ACCOUNT:role/[PATH/]NAME */
    NS_ARN_IAM_PRINCIPAL, /* a role, arn:P:iam::ACCOUNT:user/[PATH/]NAME or arn:P:iam::ACCOUNT:root
                           */
    NS_ARN_KMS_KEY,       /* arn:P:kms:REGION:ACCOUNT:key/ID (a key id or an mrk- id, no alias) */
} ns_arn_kind;

typedef struct {
    char partition[16]; /* aws, aws-cn, aws-us-gov, ... */
    char region[32];    /* "" for IAM */
    char account[13];
} ns_arn;

/* Checks s strictly against kind; fills out. NS_E_USAGE with a one-line reason and the
 * expected shape otherwise. */
ns_err ns_kmspolicy_arn_parse(ns_arn *out, const char *s, ns_arn_kind kind) NS_MUST_CHECK;

typedef struct {
    uint8_t pcr0[NS_KMSPOLICY_PCR_LEN];
    uint8_t pcr1[NS_KMSPOLICY_PCR_LEN];
    uint8_t pcr2[NS_KMSPOLICY_PCR_LEN];
    uint8_t pcr8[NS_KMSPOLICY_PCR_LEN]; /* when is_signed */
    int is_signed;
} ns_kmspolicy_image;

typedef struct {
    const char *const *roles; /* principals of the Decrypt statement (IAM role ARNs) */
    size_t n_roles;
    const char *const *admins; /* key administrators (IAM principal ARNs) */
    size_t n_admins;
    const ns_kmspolicy_image *images;
    size_t n_images;
    const uint8_t (*pcr16)[NS_KMSPOLICY_PCR_LEN]; /* optional pins of the measured inputs */
    size_t n_pcr16;
    int debug; /* 1: PCR0-2 all zero instead of images (n_images must be 0) */
} ns_kmspolicy_key_input;

/* Checks everything but the images' contents (only n_images is read): principals, partition,
 * counts, PCR16 values, debug mode without images. NS_E_USAGE naming the option otherwise. */
ns_err ns_kmspolicy_key_check(const ns_kmspolicy_key_input *in) NS_MUST_CHECK;
/* Appends the key policy (see above) to out, ending with a newline; checks as above first. */
ns_err ns_kmspolicy_key_policy(ns_buf *out, const ns_kmspolicy_key_input *in) NS_MUST_CHECK;

typedef struct {
    const char *key_arn;
    ns_s3_uri objects[2]; /* the age key ciphertext and the key shares ciphertext */
} ns_kmspolicy_iam_input;

/* Appends the instance role's IAM policy (see above) to out, ending with a newline. */
ns_err ns_kmspolicy_iam_policy(ns_buf *out, const ns_kmspolicy_iam_input *in) NS_MUST_CHECK;

/* The two objects under s3://BUCKET[/PREFIX]: PREFIX/age-private.key.enc and
 * PREFIX/service_key_shares.json.age (the names run-enclave's documentation uses). */
ns_err ns_kmspolicy_default_objects(ns_s3_uri out[2], const char *bucket_uri) NS_MUST_CHECK;

#endif
