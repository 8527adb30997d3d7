"""test_attest_verify: `nsign attest-verify` on every real Nitro attestation document in
../shared/vectors/attestation (embedded AWS root G1, validity at each document's own time), its
JSON against summary.json, and on tampered copies: a flipped signature byte, each PCR, nonce,
user_data and public_key byte in the signed payload (signature fails), a chain to another root,
a leaf out of validity at the document time, wrong expectations for each PCR, nonce, user_data and
public_key (the check is named), measurements.json as `make eif` writes it, raw/base64/stdin
input, and usage errors. Forged documents come from the NSM fake's signer under a test root.
"""
import base64
import datetime
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "fakes"))
import cbor2  # noqa: E402
import nsm_fake  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature  # noqa: E402
from tap import NSIGN, VECTORS, check, done  # noqa: E402

ATT = os.path.join(VECTORS, "attestation")
SUMMARY = json.load(open(os.path.join(ATT, "summary.json")))
REAL = [k for k in SUMMARY if "selfsigned" not in k]
T = tempfile.mkdtemp(prefix="nsign-attv-")


def run(args, stdin=None):
    p = subprocess.run([NSIGN, "attest-verify"] + args, input=stdin, capture_output=True,
                       timeout=60)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def raw_of(rel):
    b = open(os.path.join(ATT, rel), "rb").read()
    return base64.b64decode(b) if rel.endswith(".b64") else b


def put(name, data):
    path = os.path.join(T, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def fails_with(args, needle, desc, stdin=None):
    rc, out, err = run(args, stdin)
    check(rc == 1 and needle in err and out == "", desc,
          "rc=%d stdout=%r stderr=%r" % (rc, out[:200], err))


# 1. every real document verifies against the embedded root, at its own timestamp, and the JSON
#    carries the fields summary.json lists.
for rel in REAL:
    s = SUMMARY[rel]
    rc, out, err = run([os.path.join(ATT, rel)])
    ok = rc == 0
    if ok:
        j = json.loads(out)
        ok = (j["module_id"] == s["module_id"] and j["timestamp"] == s["timestamp_ms"]
              and j["pcrs"] == s["pcrs"] and j["digest"] == "SHA384"
              and j["public_key"] == s.get("public_key_hex")
              and j["user_data"] == s.get("user_data_hex") and j["nonce"] == s.get("nonce_hex")
              and len(j["cabundle"]) == s["cabundle_len"])
    check(ok, "real document verifies and decodes like summary.json: %s" % rel, err + out[:300])

# the negative sample: self-signed, no cabundle
fails_with([os.path.join(ATT, "blocky-nitrite/selfsigned_attestation.b64")], "check chain failed",
           "self-signed document (no cabundle) fails the chain check")

# 2. input forms: raw file, base64 file with line breaks, standard input
full = "anjuna-go-nitro-attestation/attester/testdata/sample_attestation_doc_full.bin"
doc = raw_of(full)
b64 = base64.encodebytes(doc)  # 76-column lines
p_b64 = put("full.b64", b64)
rc, out, err = run([p_b64])
check(rc == 0 and json.loads(out)["nonce"] == "4e6f6e63650a", "base64 with line breaks", err)
rc, out, err = run(["-"], stdin=doc)
check(rc == 0 and json.loads(out)["user_data"] == "48656c6c6f20576f726c64210a",
      "raw document on standard input", err)
fails_with([put("garbage", b"not a document at all")], "neither raw COSE_Sign1",
           "garbage input is refused")
fails_with([put("trunc", doc[:-10])], "check parse failed", "truncated document fails to parse")

# 3. expectations that match: nonce, user_data, all 16 PCRs, measurements.json
s = SUMMARY[full]
pcr_args = []
for i in range(16):
    pcr_args += ["--pcr", "%d=%s" % (i, s["pcrs"][str(i)])]
rc, out, err = run(pcr_args + ["--nonce", s["nonce_hex"], "--user-data", s["user_data_hex"],
                               os.path.join(ATT, full)])
check(rc == 0, "matching --pcr x16, --nonce, --user-data pass", err)

prod = "anjuna-go-nitro-attestation/attestdoc/testdata/sample_prod_doc.bin"
sp = SUMMARY[prod]
meas = {"Measurements": {"HashAlgorithm": "Sha384 { ... }", "PCR0": sp["pcrs"]["0"],
                         "PCR1": sp["pcrs"]["1"], "PCR2": sp["pcrs"]["2"]}}
p_meas = put("measurements.json", json.dumps(meas, indent=2).encode())
rc, out, err = run(["--pcrs", p_meas, os.path.join(ATT, prod)])
check(rc == 0, "measurements.json (PCR0-2 as make eif writes them) passes", err)
# the same measurements against another enclave's document
fails_with(["--pcrs", p_meas, os.path.join(ATT, full)], "check pcr0 failed",
           "measurements.json of another image: pcr0 named (debug-mode zeros)")
rc, out, err = run(["--pcrs", p_meas, os.path.join(ATT, full)])
check("debug-mode" in err, "an all-zero PCR0 is called out as a debug-mode enclave", err)

# A rolling upgrade (issue 23): --pcrs twice accepts either image's PCRs, whole, never a mix.
other = {"Measurements": dict(meas["Measurements"], PCR0="ab" * 48, PCR1="cd" * 48)}
p_other = put("measurements-new.json", json.dumps(other).encode())
rc, out, err = run(["--pcrs", p_other, "--pcrs", p_meas, os.path.join(ATT, prod)])
check(rc == 0, "--pcrs new --pcrs old: the old image's document passes", err)
mix = {"Measurements": dict(meas["Measurements"], PCR1="cd" * 48)}
fails_with(["--pcrs", p_other, "--pcrs", put("mix.json", json.dumps(mix).encode()),
            os.path.join(ATT, prod)], "no other accepted set of PCRs (1 more) matches",
           "--pcrs twice: a document matching neither set whole is refused")
# A --pcr pin holds in every accepted set, whichever image the document matches (PCR16 pinned
# with --pcr must not be lost when the document matches the second --pcrs file).
bad3 = bytearray(bytes.fromhex(sp["pcrs"]["3"]))
bad3[-1] ^= 1
fails_with(["--pcr", "3=" + bad3.hex(), "--pcrs", p_other, "--pcrs", p_meas,
            os.path.join(ATT, prod)], "no other accepted set of PCRs (1 more) matches",
           "--pcr with --pcrs twice: the pin holds in the set the document matches")
rc, out, err = run(["--pcr", "3=" + sp["pcrs"]["3"], "--pcrs", p_other, "--pcrs", p_meas,
                    os.path.join(ATT, prod)])
check(rc == 0, "--pcr (the document's value) with --pcrs twice passes", err)

# 4. wrong expectations: each PCR, nonce, user_data, public_key is named
for i in range(16):
    v = bytearray(bytes.fromhex(s["pcrs"][str(i)]))
    v[-1] ^= 1
    args = list(pcr_args)
    args[2 * i + 1] = "%d=%s" % (i, v.hex())
    fails_with(args + [os.path.join(ATT, full)], "check pcr%d failed" % i,
               "wrong expectation for PCR%d is named" % i)
fails_with(["--nonce", "4e6f6e63650b", os.path.join(ATT, full)], "check nonce failed",
           "wrong --nonce is named")
fails_with(["--nonce", "00", os.path.join(ATT, prod)], "nonce is null",
           "--nonce on a document without a nonce fails")
fails_with(["--user-data", "48656c6c6f20576f726c64210b", os.path.join(ATT, full)],
           "check user_data failed", "wrong --user-data is named")
fails_with(["--pcr", "16=00", os.path.join(ATT, full)], "check pcr16 failed",
           "an expected PCR the document lacks fails")

# public_key: a certificate carrying the document's RSA key (forced) matches; another does not
pk_der = bytes.fromhex(s["public_key_hex"])
pub = serialization.load_der_public_key(pk_der)
signer = ec.generate_private_key(ec.SECP256R1())
now = datetime.datetime.now(datetime.timezone.utc)


def cert_for(pubkey, cn="attest-verify test"):
    n = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, cn)])
    return (x509.CertificateBuilder().subject_name(n).issuer_name(n).public_key(pubkey)
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(signer, hashes.SHA256()))


c_ok = cert_for(pub)
p_cert_pem = put("doc_key.pem", c_ok.public_bytes(serialization.Encoding.PEM))
p_cert_der = put("doc_key.der", c_ok.public_bytes(serialization.Encoding.DER))
for p in (p_cert_pem, p_cert_der):
    rc, out, err = run(["--public-key-of", p, "--no-pcr16", os.path.join(ATT, full)])
    check(rc == 0 and "--no-pcr16: PCR16 is not checked" in err,
          "--public-key-of a certificate holding the document's key (%s), --no-pcr16 warned"
          % p[-3:], err)
rc, out, err = run(["--public-key-of", p_cert_pem, os.path.join(ATT, full)])
check(rc == 2 and "without PCR16" in err and out == "",
      "--public-key-of (a sign-service client) without PCR16 pinned or --no-pcr16: usage error",
      err)
rc, out, err = run(["--no-pcr16", os.path.join(ATT, full)])
check(rc == 2 and "--no-pcr16 goes with --public-key-of" in err, "--no-pcr16 alone: usage error",
      err)
p_other = put("other.pem", cert_for(signer.public_key()).public_bytes(serialization.Encoding.PEM))
fails_with(["--public-key-of", p_other, "--no-pcr16", os.path.join(ATT, full)],
           "check public_key failed", "--public-key-of another certificate is named")
fails_with(["--public-key-of", p_other, "--no-pcr16", os.path.join(ATT, prod)],
           "public_key is null", "--public-key-of on a document without public_key fails")

# 5. tampered copies of a real document: every signed field and the signature itself
nit = "blocky-nitrite/nitro_attestation.b64"
nd = raw_of(nit)
ns = SUMMARY[nit]


bad = bytearray(nd)
bad[-1] ^= 1
fails_with([put("sig", bytes(bad))], "check signature failed", "flipped signature byte")
for i in range(16):
    # locate each PCR by its map key and bstr head (all-zero PCRs share their bytes)
    key = cbor2.dumps(i) + b"\x58\x30"
    j = nd.find(key + bytes.fromhex(ns["pcrs"][str(i)]))
    check(j > 0, "PCR%d located in the document" % i)
    b = bytearray(nd)
    b[j + len(key) + 10] ^= 0x01
    fails_with([put("pcr%d" % i, bytes(b))], "check signature failed",
               "tampered PCR%d in the signed payload" % i)
for field in ("public_key", "user_data", "nonce"):
    key = cbor2.dumps(field)
    j = nd.find(key)
    b = bytearray(nd)
    b[j + len(key) + 3 + 100] ^= 0x01  # inside the 1024-byte bstr
    fails_with([put(field, bytes(b))], "check signature failed",
               "tampered %s in the signed payload" % field)
# a byte inside the certificate chain (cabundle[1]): the payload changes, the signature fails
j = nd.find(cbor2.dumps("cabundle"))
b = bytearray(nd)
b[j + 200] ^= 0x01
fails_with([put("cab", bytes(b))], "check signature failed", "tampered cabundle byte")

# 6. the chain: documents signed correctly under a test root, verified with and without it
ca = os.path.join(T, "ca")
chain = nsm_fake.Chain(ca)
pcrs = {i: bytes([i]) * 48 for i in range(16)}
forged = nsm_fake.attestation(chain, pcrs, b"ud", b"nonce-1", pk_der)
p_forged = put("forged.cbor", forged)
fails_with([p_forged], "check chain failed",
           "a well-signed document under another root fails against the AWS root")
rc, out, err = run(["--root", os.path.join(ca, "root.pem"), "--pcr", "7=" + (b"\x07" * 48).hex(),
                    "--nonce", b"nonce-1".hex(), "--user-data", b"ud".hex(),
                    "--public-key-of", p_cert_pem, "--no-pcr16", p_forged])
check(rc == 0 and "instead of the AWS Nitro Enclaves root" in err,
      "--root: the test chain verifies, with a warning", err)
# PCR16 pinned: a document carrying it (a measured boot) passes only with the right value.
p16 = put("pcr16.cbor", nsm_fake.attestation(chain, {**pcrs, 16: b"\x16" * 48}, b"ud",
                                              b"nonce-1", pk_der))
rc, out, err = run(["--root", os.path.join(ca, "root.pem"), "--pcr", "16=" + (b"\x16" * 48).hex(),
                    "--public-key-of", p_cert_pem, p16])
check(rc == 0, "--public-key-of with --pcr 16=HEX: the document's PCR16 matches", err)
fails_with(["--root", os.path.join(ca, "root.pem"), "--pcr", "16=" + (b"\x17" * 48).hex(),
            "--public-key-of", p_cert_pem, p16], "check pcr16 failed",
           "--public-key-of with another PCR16: refused, named")
fails_with(["--root", os.path.join(ca, "root.pem"), "--pcr", "16=" + (b"\x16" * 48).hex(),
            "--public-key-of", p_cert_pem, p_forged], "pcr16",
           "--pcr 16 pinned on a document without PCR16 (no measured boot): refused")
# AWS root used as --root behaves like the embedded one
rc, out, err = run(["--root", os.path.join(ATT, "aws-nitro-enclaves-root-G1.pem"),
                    os.path.join(ATT, full)])
check(rc == 0, "--root with the AWS root PEM verifies a real document", err)
# a real document against the test root
fails_with(["--root", os.path.join(ca, "root.pem"), os.path.join(ATT, full)],
           "check chain failed", "a real document against another --root")


def resign(chain, payload_patch):
    """A document whose payload is changed and then signed again by a fresh leaf."""
    d = cbor2.loads(forged)
    payload = cbor2.loads(d[2])
    leaf_key = ec.generate_private_key(ec.SECP384R1())
    payload_patch(payload, leaf_key)
    payload_b = cbor2.dumps(payload)
    sig_structure = cbor2.dumps(["Signature1", d[0], b"", payload_b])
    r, s_ = decode_dss_signature(leaf_key.sign(sig_structure, ec.ECDSA(hashes.SHA384())))
    return cbor2.dumps([d[0], {}, payload_b, r.to_bytes(48, "big") + s_.to_bytes(48, "big")])


def late(payload, leaf_key):
    # a leaf valid for 3 h, a document timestamp 4 h later
    nb = now - datetime.timedelta(hours=5)
    leaf = nsm_fake.make_cert(nsm_fake.name("leaf"), leaf_key.public_key(), chain.inter.subject,
                              chain.int_key, False, nb, nb + datetime.timedelta(hours=3))
    payload["certificate"] = leaf.public_bytes(serialization.Encoding.DER)
    payload["timestamp"] = int(now.timestamp() * 1000)


def wrong_issuer(payload, leaf_key):
    other = nsm_fake.Chain(os.path.join(T, "ca2"))
    leaf = nsm_fake.make_cert(nsm_fake.name("leaf"), leaf_key.public_key(), other.inter.subject,
                              other.int_key, False, now - datetime.timedelta(minutes=1),
                              now + datetime.timedelta(hours=3))
    payload["certificate"] = leaf.public_bytes(serialization.Encoding.DER)


fails_with(["--root", os.path.join(ca, "root.pem"), put("late.cbor", resign(chain, late))],
           "at the document time", "a leaf expired at the document's timestamp fails the chain")
fails_with(["--root", os.path.join(ca, "root.pem"), put("wi.cbor", resign(chain, wrong_issuer))],
           "check chain failed", "a leaf issued by another chain's CA fails the chain")



def resign_raw(pairs):
    """A document whose payload is the CBOR map of PAIRS (key, value) as given, duplicates
    included (a dict cannot hold them), signed by a fresh leaf of the test chain."""
    leaf_key = ec.generate_private_key(ec.SECP384R1())
    leaf = nsm_fake.make_cert(nsm_fake.name("leaf"), leaf_key.public_key(), chain.inter.subject,
                              chain.int_key, False, now - datetime.timedelta(minutes=1),
                              now + datetime.timedelta(hours=3))
    d = cbor2.loads(forged)
    base = cbor2.loads(d[2])
    base["certificate"] = leaf.public_bytes(serialization.Encoding.DER)
    base["timestamp"] = int(now.timestamp() * 1000)
    items = [(k, base[k]) for k in ("module_id", "digest", "timestamp", "pcrs", "certificate")]
    items += pairs
    assert len(items) < 24  # a one-byte map head
    payload_b = bytes([0xa0 + len(items)]) + b"".join(cbor2.dumps(k) + cbor2.dumps(v) for k, v in items)
    sig_structure = cbor2.dumps(["Signature1", d[0], b"", payload_b])
    r, s_ = decode_dss_signature(leaf_key.sign(sig_structure, ec.ECDSA(hashes.SHA384())))
    return cbor2.dumps([d[0], {}, payload_b, r.to_bytes(48, "big") + s_.to_bytes(48, "big")])


# A duplicate key whose first value is null: the second used to win (issue 22 item 8). The
# document is otherwise genuine (signed by a leaf of the test chain); every key must be unique.
cab = [chain.root.public_bytes(serialization.Encoding.DER),
       chain.inter.public_bytes(serialization.Encoding.DER)]
rootp = os.path.join(ca, "root.pem")
ok_doc = resign_raw([("cabundle", cab), ("public_key", None), ("user_data", b"ud"),
                     ("nonce", b"n")])
rc, out, err = run(["--root", rootp, "--user-data", b"ud".hex(), put("ok.cbor", ok_doc)])
check(rc == 0, "resigned control document verifies", err)
for field in ("public_key", "user_data", "nonce"):
    dup = resign_raw([("cabundle", cab), ("public_key", None), ("user_data", None),
                      ("nonce", None), (field, b"evil")])
    fails_with(["--root", rootp, put("dup.cbor", dup)], "duplicate key",
               "%s first null then set: refused" % field)
dup = resign_raw([("cabundle", cab), ("x-extra", 1), ("x-extra", 1)])
fails_with(["--root", rootp, put("dup2.cbor", dup)], "duplicate key",
           "an unknown key twice, same value: refused")
# cabundle[0] (the root) was never parsed: garbage or another certificate passed
for c0, needle, desc in ((b"\x00" * 64, "cabundle[0] is not valid DER",
                          "cabundle[0] garbage: refused"),
                         (chain.inter.public_bytes(serialization.Encoding.DER),
                          "cabundle[0] is not the trusted root",
                          "cabundle[0] another certificate: refused")):
    bad = resign_raw([("cabundle", [c0] + cab[1:]), ("public_key", None)])
    fails_with(["--root", rootp, put("cab0.cbor", bad)], needle, desc)

# 7. usage and expectation-file errors
for args, desc in ((["--pcr", "x=00", p_forged], "--pcr without an index"),
                   (["--pcr", "32=00", p_forged], "--pcr index out of range"),
                   (["--pcr", "1=0g", p_forged], "--pcr with non-hex"),
                   (["--pcr", "1=00", "--pcr", "1=01", p_forged], "--pcr twice, different"),
                   (["--nonce", "abc", p_forged], "--nonce of odd length"),
                   ([], "no DOC"), ([p_forged, p_forged], "two DOCs")):
    rc, out, err = run(args)
    check(rc == 2 and "nsign attest-verify" in err, "usage error: %s" % desc, err)
for content, needle, desc in (
        (b"{", "not valid JSON", "measurements: bad JSON"),
        (b'{"PCR0":"00"}', "no \"Measurements\"", "measurements: no Measurements object"),
        (b'{"Measurements":{"PCR0":"00","PCRX":"00"}}', "unknown member", "unknown member"),
        (b'{"Measurements":{"HashAlgorithm":"Sha256"}}', "Sha384", "wrong hash algorithm"),
        (b'{"Measurements":{"HashAlgorithm":"Sha384 { ... }"}}', "no PCRn", "no PCR at all"),
        (b'{"Measurements":{"PCR0":12}}', "hex string", "PCR not a string")):
    fails_with(["--pcrs", put("m.json", content), p_forged], needle,
               "--pcrs refused: %s" % desc)
rc, out, err = run(["--help"])
check(rc == 0 and "--public-key-of" in out and "--pcrs" in out, "--help lists the options")

done()
