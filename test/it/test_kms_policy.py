"""test_kms_policy: `nsign kms-policy` on EIFs built here (a dummy kernel and cpio ramdisks, as
test_eif.sh does), one of them signed afterwards (a signature section with a self-signed
certificate, the way nitro-cli's signer appends it). The key policy's PCR values must equal
what `nsign eif describe` prints (PCR8 for the signed one), PCR16 what `nsign eif pcr16`
prints; two EIFs give lists; a small evaluator of IAM's StringEqualsIgnoreCase semantics (every
key must match, any listed value) shows which attestations the Decrypt statement admits. The
IAM policy's shape, the debug-mode policy and its warning, determinism, -o, and the refusals
(bad ARNs, missing or conflicting options, a file that is not an EIF) with their exit codes.
When cfn-lint is installed (not a Debian package: skipped otherwise), its IAM policy schemas
check both documents' grammar independently.
"""
import datetime
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tap import NSIGN, check, done, skip

T = tempfile.mkdtemp(prefix="nsign-kmspol-")
ROLE = "arn:aws:iam::111122223333:role/nsign-enclave-host"
ADMIN = "arn:aws:iam::111122223333:role/KeyAdmins"
KEY = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ZERO = "0" * 96


def run(args, **kw):
    p = subprocess.run([NSIGN] + args, capture_output=True, timeout=120, **kw)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def path(name):
    return os.path.join(T, name)


def build_eif(name, payload):
    """An EIF from a random kernel and two ramdisks; payload makes the second one differ."""
    os.makedirs(path(name + "-rd0"), exist_ok=True)
    os.makedirs(path(name + "-rd1/bin"), exist_ok=True)
    open(path(name + "-rd0/init"), "w").write("boot")
    open(path(name + "-rd1/bin/app"), "w").write(payload)
    if not os.path.exists(path("kernel")):
        open(path("kernel"), "wb").write(os.urandom(20000))
    for rd in ("rd0", "rd1"):
        rc, _, err = run(["eif", "cpio", path(name + "-" + rd), "-o", path(name + "-" + rd + ".cpio")])
        assert rc == 0, err
    rc, _, err = run(["eif", "build", "--kernel", path("kernel"), "--cmdline", "console=ttyS0",
                      "--ramdisk", path(name + "-rd0.cpio"), "--ramdisk", path(name + "-rd1.cpio"),
                      "-o", path(name + ".eif")])
    assert rc == 0, err
    return path(name + ".eif")


def sign_eif(src, dst):
    """Appends a signature section (FORMAT.md section 7: CBOR arrays of byte-sized uints) with a
    self-signed certificate; fixes the header's section table and the CRC."""
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nsign test signer")])
    now = datetime.datetime(2026, 1, 1)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(7).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=365)).sign(key, hashes.SHA384()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    der = cert.public_bytes(serialization.Encoding.DER)
    cose = cbor2.dumps([cbor2.dumps({1: -35}), {}, b"payload", b"\x01" * 96])
    body = cbor2.dumps([{"signing_certificate": list(pem), "signature": list(cose)}])
    f = bytearray(open(src, "rb").read())
    n = struct.unpack(">H", f[26:28])[0]
    off = len(f)
    f += struct.pack(">HHQ", 4, 0, len(body)) + body
    struct.pack_into(">H", f, 26, n + 1)
    struct.pack_into(">Q", f, 28 + 8 * n, off)
    struct.pack_into(">Q", f, 284 + 8 * n, len(body))
    struct.pack_into(">I", f, 544, zlib.crc32(bytes(f[0:544] + f[548:])))
    open(dst, "wb").write(bytes(f))
    return hashlib.sha384(b"\0" * 48 + hashlib.sha384(der).digest()).hexdigest()


def describe(eif):
    rc, out, err = run(["eif", "describe", eif])
    assert rc == 0, err
    return json.loads(out)["Measurements"]


def policy(args):
    rc, out, err = run(["kms-policy"] + args)
    doc = None
    if rc == 0:
        try:
            doc = json.loads(out)
        except ValueError as e:
            check(False, "output parses as JSON (python json)", "%s\n%s" % (e, out))
    return rc, doc, out, err


def statement(doc, sid):
    return next((s for s in doc["Statement"] if s.get("Sid") == sid), None)


def as_list(v):
    return v if isinstance(v, list) else [v]


def admits(st, pcrs):
    """IAM's StringEqualsIgnoreCase: every condition key must match one of its values; a key
    absent from the request (no attestation) never matches."""
    cond = st["Condition"]["StringEqualsIgnoreCase"]
    for k, v in cond.items():
        idx = k[len("kms:RecipientAttestation:PCR"):]
        got = pcrs.get("PCR" + idx)
        if got is None or got.lower() not in [x.lower() for x in as_list(v)]:
            return False
    return True


a = build_eif("a", "version one")
b = build_eif("b", "version two")
ma, mb = describe(a), describe(b)
check(ma["PCR0"] != mb["PCR0"] and ma["PCR1"] == mb["PCR1"] and ma["PCR2"] != mb["PCR2"],
      "two EIFs built: same kernel and bootstrap (PCR1), different application (PCR0, PCR2)")

# --- one EIF ---
base = ["--role-arn", ROLE, "--admin-arn", ADMIN]
rc, doc, out1, err = policy(["--eif", a] + base)
check(rc == 0 and doc is not None, "one EIF: exit 0 and valid JSON", err)
dec = statement(doc, "EnclaveDecrypt") if doc else None
check(dec is not None, "an EnclaveDecrypt statement")
cond = dec["Condition"]["StringEqualsIgnoreCase"] if dec else {}
for p in ("PCR0", "PCR1", "PCR2"):
    check(cond.get("kms:RecipientAttestation:" + p) == ma[p],
          "%s equals `eif describe`'s" % p, "%s vs %s" % (cond.get("kms:RecipientAttestation:" + p), ma[p]))
check(set(cond) == {"kms:RecipientAttestation:PCR0", "kms:RecipientAttestation:PCR1",
                    "kms:RecipientAttestation:PCR2"}, "unsigned, no --pcr16: exactly PCR0-2", cond)
check(dec and dec["Action"] == "kms:Decrypt" and dec["Principal"] == {"AWS": ROLE} and
      dec["Effect"] == "Allow", "Decrypt for the instance role only")
check(dec and admits(dec, ma) and not admits(dec, mb) and not admits(dec, {}),
      "it admits EIF a's attestation, not b's, not a request without one")
check(dec and admits(dec, {k: v.upper() for k, v in ma.items()}),
      "the comparison ignores case (StringEqualsIgnoreCase)")
check(dec and not admits(dec, {"PCR0": ZERO, "PCR1": ZERO, "PCR2": ZERO}),
      "a debug-mode enclave (all-zero PCRs) is not admitted")
adm = statement(doc, "KeyAdministrators") if doc else None
actions = set(as_list(adm["Action"])) if adm else set()
check(adm and adm["Principal"] == {"AWS": ADMIN} and "kms:PutKeyPolicy" in actions,
      "KeyAdministrators: the admin manages the key")
check(not any(x.startswith(("kms:Decrypt", "kms:CreateGrant", "kms:ReEncrypt", "kms:GenerateDataKey"))
              or "*" in x for x in actions),
      "administrators can neither decrypt nor grant, and no wildcard action", actions)
enc = statement(doc, "AdministratorsEncryptInputs") if doc else None
check(enc and enc["Action"] == "kms:Encrypt" and enc["Principal"] == {"AWS": ADMIN},
      "the admin may encrypt (to wrap the age key)")
rp = statement(doc, "InstanceRoleReadsKeyPolicy") if doc else None
check(rp and set(as_list(rp["Action"])) == {"kms:DescribeKey", "kms:GetKeyPolicy"} and
      rp["Principal"] == {"AWS": ROLE}, "the role may read the key policy (preflight)")
check(doc and doc["Version"] == "2012-10-17" and
      all(s["Effect"] == "Allow" and s["Resource"] == "*" for s in doc["Statement"]),
      "policy Version 2012-10-17, every statement Allow on the key itself")
check(doc and not any("*" in json.dumps(s.get("Principal")) for s in doc["Statement"]),
      "no wildcard principal")

rc, _, out2, _ = policy(["--eif", a] + base)
check(rc == 0 and out1 == out2, "deterministic: the same command prints the same bytes")
rc, out, _ = run(["kms-policy", "--eif", a] + base + ["-o", path("kp.json")])
check(rc == 0 and out == "" and open(path("kp.json")).read() == out1, "-o FILE writes the same document")

# --- two EIFs: a rolling upgrade ---
rc, doc2, _, err = policy(["--eif", a, "--eif", b] + base)
dec2 = statement(doc2, "EnclaveDecrypt") if doc2 else None
c2 = dec2["Condition"]["StringEqualsIgnoreCase"] if dec2 else {}
check(rc == 0 and c2.get("kms:RecipientAttestation:PCR0") == [ma["PCR0"], mb["PCR0"]],
      "two EIFs: PCR0 is the list of both, in --eif order", c2)
check(c2.get("kms:RecipientAttestation:PCR2") == [ma["PCR2"], mb["PCR2"]],
      "PCR2 lists both")
check(c2.get("kms:RecipientAttestation:PCR1") == ma["PCR1"],
      "PCR1, the same for both, is written once")
check(dec2 and admits(dec2, ma) and admits(dec2, mb), "both EIFs' attestations are admitted")
rc, doc3, _, _ = policy(["--eif", b, "--eif", a, "--eif", b] + base)
c3 = statement(doc3, "EnclaveDecrypt")["Condition"]["StringEqualsIgnoreCase"] if doc3 else {}
check(rc == 0 and c3.get("kms:RecipientAttestation:PCR0") == [mb["PCR0"], ma["PCR0"]],
      "a repeated EIF is listed once; order follows --eif")

# --- PCR16 pins ---
open(path("age.enc"), "wb").write(b"kms-ciphertext-1")
open(path("shares.age"), "wb").write(b"age-ciphertext-1")
open(path("shares2.age"), "wb").write(b"age-ciphertext-2")
p16 = [json.loads(run(["eif", "pcr16", path("age.enc"), path(s)])[1])["PCR16"]
       for s in ("shares.age", "shares2.age")]
rc, doc4, _, err = policy(["--eif", a] + base + ["--pcr16", p16[0].upper()])
c4 = statement(doc4, "EnclaveDecrypt")["Condition"]["StringEqualsIgnoreCase"] if doc4 else {}
check(rc == 0 and c4.get("kms:RecipientAttestation:PCR16") == p16[0],
      "--pcr16 (given upper-case) is pinned, lower-case, equal to `eif pcr16`'s", err)
check(doc4 and not admits(statement(doc4, "EnclaveDecrypt"), dict(ma, PCR16=p16[1])),
      "an attestation with other inputs (another PCR16) is not admitted")
check(doc4 and admits(statement(doc4, "EnclaveDecrypt"), dict(ma, PCR16=p16[0])),
      "the pinned inputs are admitted")
rc, doc5, _, _ = policy(["--eif", a] + base + ["--pcr16", p16[0], "--pcr16", p16[1]])
c5 = statement(doc5, "EnclaveDecrypt")["Condition"]["StringEqualsIgnoreCase"] if doc5 else {}
check(rc == 0 and c5.get("kms:RecipientAttestation:PCR16") == p16, "two --pcr16: a list")

# --- a signed EIF ---
pcr8 = sign_eif(b, path("b-signed.eif"))
ms = describe(path("b-signed.eif"))
check(ms.get("PCR8") == pcr8 and ms["PCR0"] == mb["PCR0"],
      "the signed copy: describe shows PCR8 (the certificate's), PCR0 unchanged")
rc, doc6, _, err = policy(["--eif", a, "--eif", path("b-signed.eif")] + base)
u6, s6 = (statement(doc6, "EnclaveDecrypt"), statement(doc6, "EnclaveDecryptSigned")) if doc6 else (None, None)
check(rc == 0 and u6 and s6, "unsigned and signed EIFs: two Decrypt statements", err)
cs = s6["Condition"]["StringEqualsIgnoreCase"] if s6 else {}
check(cs.get("kms:RecipientAttestation:PCR8") == ms["PCR8"] and
      cs.get("kms:RecipientAttestation:PCR0") == ms["PCR0"],
      "the signed statement pins PCR8 and PCR0 as `eif describe` prints them")
check(u6 and admits(u6, ma) and not admits(u6, ms) and s6 and admits(s6, ms) and
      not admits(s6, dict(ms, PCR8=ZERO)),
      "each statement admits its own image; the signed one needs the signer's PCR8")

# --- debug mode ---
rc, doc7, _, err = policy(["--debug-mode"] + base)
d7 = statement(doc7, "EnclaveDecrypt")["Condition"]["StringEqualsIgnoreCase"] if doc7 else {}
check(rc == 0 and all(d7.get("kms:RecipientAttestation:PCR%d" % i) == ZERO for i in range(3)),
      "--debug-mode: all-zero PCR0-2", err)
check("warn" in err and "debug-mode" in err and "production" in err,
      "--debug-mode warns on stderr", err)
rc, _, _, err = policy(["--eif", a] + base)
check("warn" not in err, "no warning without --debug-mode", err)
rc, _, out, err = policy(["--debug-mode", "--eif", a] + base)
check(rc == 2 and out == "", "--debug-mode with --eif: exit 2, nothing printed", err)

# --- the IAM policy ---
rc, iam, _, err = policy(["--iam", "--bucket-uri", "s3://my-bucket/enclave", "--key-arn", KEY])
check(rc == 0 and iam is not None, "--iam: exit 0 and valid JSON", err)
if iam:
    st = {s["Sid"]: s for s in iam["Statement"]}
    check(set(st) == {"ReadEnclaveCiphertexts", "DecryptInsideEnclave", "PreflightReadsKeyPolicy"},
          "three statements", list(st))
    s3s = st.get("ReadEnclaveCiphertexts", {})
    check(s3s.get("Action") == "s3:GetObject" and s3s.get("Resource") == [
        "arn:aws:s3:::my-bucket/enclave/age-private.key.enc",
        "arn:aws:s3:::my-bucket/enclave/service_key_shares.json.age"],
        "s3:GetObject on exactly the two objects", s3s)
    check(st.get("DecryptInsideEnclave", {}).get("Action") == "kms:Decrypt" and
          st["DecryptInsideEnclave"].get("Resource") == KEY, "kms:Decrypt on exactly the key")
    check(all("Principal" not in s and s["Effect"] == "Allow" for s in iam["Statement"]),
          "an identity policy: no Principal")
rc, iam2, _, err = policy(["--iam", "--key-arn", KEY, "--age-key-uri", "s3://b-1/x/age.enc",
                           "--shares-uri", "s3://b-2/y/shares.age"])
check(rc == 0 and iam2 and iam2["Statement"][0]["Resource"] ==
      ["arn:aws:s3:::b-1/x/age.enc", "arn:aws:s3:::b-2/y/shares.age"],
      "--age-key-uri/--shares-uri: the exact objects (AGE_KEY_S3_URI, KEY_SHARES_S3_URI)", err)

# --- an independent grammar check: cfn-lint's IAM schemas (E3510 identity policies, E3512
# resource policies such as a KMS key policy), when cfn-lint is installed ---
def cfn_lint(key_policies, iam_policy, name):
    res = {"Key%d" % i: {"Type": "AWS::KMS::Key", "Properties": {"KeyPolicy": k}}
           for i, k in enumerate(key_policies)}
    res["RolePolicy"] = {"Type": "AWS::IAM::ManagedPolicy",
                         "Properties": {"PolicyDocument": iam_policy}}
    json.dump({"AWSTemplateFormatVersion": "2010-09-09", "Resources": res}, open(path(name), "w"))
    p = subprocess.run([CFN_LINT, path(name)], capture_output=True, timeout=120)
    return p.returncode, p.stdout.decode() + p.stderr.decode()


CFN_LINT = shutil.which("cfn-lint")
if CFN_LINT is None:
    skip("cfn-lint accepts the key and IAM policies", "cfn-lint is not installed")
elif doc5 and doc6 and doc7 and iam:
    rc, out = cfn_lint([doc6, doc5, doc7], iam, "cfn.json")
    check(rc == 0, "cfn-lint accepts the key policies (signed + unsigned EIFs, PCR16 lists, "
          "debug mode) and the IAM policy", out)
    bad = json.loads(json.dumps(doc6))
    cond = statement(bad, "EnclaveDecrypt")["Condition"]
    cond["StringEqualsIgnoreCasee"] = cond.pop("StringEqualsIgnoreCase")
    rc, out = cfn_lint([bad], iam, "cfn-bad.json")
    check(rc != 0 and "E3512" in out, "and refuses a misspelt condition operator (the check can fail)",
          out)

# --- refusals ---
def refused(desc, args, code=2, want=None):
    rc, out, err = run(["kms-policy"] + args)
    lines = [l for l in err.splitlines() if l and not l.startswith("try ")]
    ok = rc == code and out == "" and len(lines) == 1 and (want is None or want in lines[0])
    check(ok, "%s: exit %d, one error line%s" % (desc, code, " naming " + want if want else ""),
          "rc=%d out=%r err=%r" % (rc, out[:200], err))


refused("a malformed role ARN", ["--eif", a, "--role-arn", "arn:aws:iam::12345:role/x",
                                 "--admin-arn", ADMIN], want="--role-arn")
refused("a user as the role", ["--eif", a, "--role-arn", "arn:aws:iam::111122223333:user/u",
                               "--admin-arn", ADMIN], want="role/NAME")
refused("an STS session as admin", ["--eif", a, "--role-arn", ROLE, "--admin-arn",
                                    "arn:aws:sts::111122223333:assumed-role/Admin/me"],
        want="--admin-arn")
refused("a wildcard admin", ["--eif", a, "--role-arn", ROLE, "--admin-arn", "*"])
refused("no --role-arn", ["--eif", a, "--admin-arn", ADMIN], want="--role-arn")
refused("no --admin-arn", ["--eif", a, "--role-arn", ROLE], want="--admin-arn")
refused("no --eif", base, want="--eif")
refused("a positional EIF", [a] + base, want="--eif")
refused("a short --pcr16", ["--eif", a, "--pcr16", "abcd"] + base, want="--pcr16")
refused("an all-zero --pcr16", ["--eif", a, "--pcr16", ZERO] + base, want="PCR16")
refused("--key-arn without --iam", ["--eif", a, "--key-arn", KEY] + base, want="--iam")
refused("--iam with --eif", ["--iam", "--eif", a, "--key-arn", KEY,
                             "--bucket-uri", "s3://my-bucket"], want="--iam")
refused("--iam without --key-arn", ["--iam", "--bucket-uri", "s3://my-bucket"], want="--key-arn")
refused("--iam without objects", ["--iam", "--key-arn", KEY], want="--bucket-uri")
refused("--iam with only --age-key-uri", ["--iam", "--key-arn", KEY, "--age-key-uri",
                                          "s3://b-1/k"], want="--shares-uri")
refused("an alias as --key-arn", ["--iam", "--key-arn",
                                  "arn:aws:kms:eu-west-1:111122223333:alias/nsign",
                                  "--bucket-uri", "s3://my-bucket"], want="describe-key")
refused("a wildcard object key", ["--iam", "--key-arn", KEY, "--age-key-uri", "s3://b-1/*",
                                  "--shares-uri", "s3://b-1/k"], want="wildcard")
refused("an unknown option", ["--eif", a, "--pcr", "16=00"] + base)
open(path("not.eif"), "wb").write(b"\x7fELF" + os.urandom(4000))
refused("a file that is not an EIF", ["--eif", path("not.eif")] + base, code=1, want="not.eif")
refused("a missing EIF", ["--eif", path("nope.eif")] + base, code=1, want="nope.eif")
trunc = open(a, "rb").read()
open(path("cut.eif"), "wb").write(trunc[:len(trunc) - 100])
refused("a truncated EIF", ["--eif", path("cut.eif")] + base, code=1, want="cut.eif")
rc, _, _ = run(["kms-policy", "--eif", path("not.eif")] + base + ["-o", path("out.json")])
check(rc == 1 and not os.path.exists(path("out.json")), "a failure leaves no -o file")

rc, out, _ = run(["kms-policy", "--help"])
check(rc == 0 and all(o in out for o in ("--eif", "--role-arn", "--admin-arn", "--pcr16",
                                         "--debug-mode", "--iam", "--bucket-uri", "--key-arn",
                                         "Exit:")),
      "--help: exit 0, every option and the exit codes")
done()
