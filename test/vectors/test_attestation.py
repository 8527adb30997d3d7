"""test_attestation: every document in $NS_VECTORS/attestation against its summary.json entry.

Runs nsign's own COSE/CBOR code (the test_cose unit binary's "dump" mode, built from src/formats/cose.c
and src/formats/cbor.c) on each document and compares every decoded field with summary.json: sizes,
protected header, module_id, digest, timestamp, all PCRs in full, public_key, user_data,
nonce, cabundle length. The six real documents must verify against the AWS Nitro root at their
own timestamps; the self-signed negative sample must parse and must NOT verify.
"""
import json
import os
import subprocess
import tempfile

from tap import VECTORS, check, done, skip

BIN = os.path.join(os.environ.get("NS_BUILD", "build"), "test", "test_cose")
ADIR = os.path.join(VECTORS, "attestation")
FIELDS = ["cose_sign1_bytes", "protected_header_hex", "payload_bytes", "module_id", "digest",
          "timestamp_ms", "pcrs", "public_key_hex", "user_data_hex", "nonce_hex", "cabundle_len"]
NEGATIVE = "blocky-nitrite/selfsigned_attestation.b64"


def main():
    if not os.path.exists(BIN):
        skip("attestation vectors", "%s not built" % BIN)
        return
    with open(os.path.join(ADIR, "summary.json")) as f:
        summary = json.load(f)
    with open(os.path.join(ADIR, "aws-nitro-enclaves-root-G1.pem")) as f:
        pem = f.read()
    import base64
    body = "".join(l for l in pem.splitlines() if l and not l.startswith("-----"))
    with tempfile.NamedTemporaryFile(prefix="nsign-root-", suffix=".der") as root:
        root.write(base64.b64decode(body))
        root.flush()
        check(len(summary) == 7, "summary.json lists 7 documents")
        for name, want in sorted(summary.items()):
            r = subprocess.run([BIN, "dump", os.path.join(ADIR, name), root.name],
                               capture_output=True, timeout=60)
            try:
                got = json.loads(r.stdout)
            except ValueError:
                check(False, "%s: decoded" % name, r.stdout + r.stderr)
                continue
            check("parse_error" not in got, "%s: parses" % name, got.get("parse_error"))
            for field in FIELDS:
                check(got.get(field) == want.get(field), "%s: %s" % (name, field),
                      "got %r\nwant %r" % (got.get(field), want.get(field)))
            if name == NEGATIVE:
                check(got.get("verify") == "authentication failed",
                      "%s: does not verify against the AWS root (negative case)" % name,
                      got.get("verify"))
            else:
                check(got.get("verify") == "ok",
                      "%s: verifies against the AWS root at its timestamp" % name,
                      got.get("verify"))


main()
done()
