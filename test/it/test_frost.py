"""test_frost: FROST threshold signing end to end (issue 26, docs/frost.md). Three sign-service
processes on loopback (mutual TLS, the software NSM), each holding one share of a 2-of-3
FROST(Ed25519, SHA-512) key dealt by test/lib/frost_dealer.py (pure python, test data only):
`nsign frost-sign` with every 2-subset (and all three) makes signatures that verify under the
group key with python3-cryptography and with libsodium (ctypes); one signer alone is refused;
2-of-2 with --local-share; the coordinator path allocates no secret memory (its own log line,
which counts secret.h's allocations, and is nonzero with --local-share). Then every refusal of
FrostCommit / FrostSign through python3-grpcio: a replayed commitment, one consumed by a failed
call, an unknown one, another client's or key's, an expired one, the own commitment missing or
altered, duplicate identifiers, fewer than T, identity and off-curve points, count limits, the
per-client bound, the allow list and the rate; then metrics and the signed audit trail
(commitment id, signing set, message digest; `nsign audit-verify` accepts it).
"""
import ctypes
import ctypes.util
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import grpc
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import frost_dealer  # noqa: E402
import mtls  # noqa: E402
from tap import NSIGN, check, done, free_port, kill_all, skip  # noqa: E402

ROOT = os.environ.get("NS_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
TMP = tempfile.mkdtemp(prefix="nsign-frost-")
procs = []
subprocess.run(["protoc", "-I" + os.path.join(ROOT, "proto"), "--python_out=" + TMP,
                "nsign.proto"], check=True)
sys.path.insert(0, TMP)
import nsign_pb2 as pb  # noqa: E402


def write(name, data):
    return mtls.write(TMP, name, data if isinstance(data, bytes) else data.encode())


coord = mtls.client_cert(TMP, "coordinator", ec.generate_private_key(ec.SECP256R1()))
other = mtls.client_cert(TMP, "other", ec.generate_private_key(ec.SECP256R1()))
slow = mtls.client_cert(TMP, "slow", ec.generate_private_key(ec.SECP256R1()))
stranger = mtls.client_cert(TMP, "stranger", ec.generate_private_key(ec.SECP256R1()))
CLIENTS = [{"id": "coordinator", "spki_sha256": coord["pin"]},
           {"id": "other", "spki_sha256": other["pin"]},
           {"id": "slow", "spki_sha256": slow["pin"], "max_signs_per_second": 1},
           {"id": "stranger", "spki_sha256": stranger["pin"]}]
ALLOW = ["coordinator", "other", "slow"]

gpk, shares = frost_dealer.keys_entries(2, 3, "treasury", ALLOW)
dgpk, dshares = frost_dealer.keys_entries(2, 2, "device", ["coordinator"])
plain = ed25519.Ed25519PrivateKey.generate()
import base64  # noqa: E402
plain_entry = {"id": "plain", "algorithm": "ed25519", "allow": ["coordinator"],
               "private_key": base64.b64encode(plain.private_bytes(
                   serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                   serialization.NoEncryption())).decode()}


# nsign frost-keygen (the operator's dealer): an Ed25519 and a secp256k1 2-of-3 key, each share
# age-encrypted to its participant; decrypted here with Debian's age.
def keygen(key_id, suite):
    idents, recips = [], []
    for i in range(3):
        r = subprocess.run(["age-keygen"], capture_output=True, text=True, check=True)
        path = write("%s-age%d.key" % (key_id, i + 1), r.stdout)
        idents.append(path)
        recips.append([ln for ln in r.stdout.splitlines() if ln.startswith("# public key: ")][0]
                      .split(": ")[1])
    out = os.path.join(TMP, "kg-" + key_id)
    args = [NSIGN, "frost-keygen", "-t", "2", "-n", "3", "-o", out, "--id", key_id,
            "--ciphersuite", suite] + sum([["--allow", c] for c in ALLOW], [])
    for rc in recips:
        args += ["-r", rc]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("not ok - frost-keygen failed\n# " + r.stderr)
    ents = []
    for i in range(3):
        d = subprocess.run(["age", "-d", "-i", idents[i], os.path.join(out, "%s.%d.age" % (
            key_id, i + 1))], capture_output=True, check=True).stdout
        ents.append(json.loads(d))
    return r.stdout.strip(), ents, os.path.join(out, key_id + ".group.json")


kg_gpk, kg_ents, kg_group = keygen("vault", "frost-ed25519-sha512")
k1_gpk, k1_ents, k1_group = keygen("btc-vault", "frost-secp256k1-sha256")


def keys_file(i, extra=()):
    return write("keys%d.json" % i, json.dumps({
        "version": 2, "clients": CLIENTS,
        "keys": [shares[i - 1], kg_ents[i - 1], k1_ents[i - 1]] + list(extra)}))


nsm_sock, ca_dir = mtls.start_nsm(TMP, procs)
root = os.path.join(ca_dir, "root.pem")
meas = write("measurements.json", json.dumps({"Measurements": {
    "HashAlgorithm": "Sha384 { ... }", "PCR0": "00" * 48, "PCR1": "00" * 48, "PCR2": "00" * 48}}))
audit1 = os.path.join(TMP, "audit1.jsonl")


def libsodium_verify(sig, msg, pk):
    name = ctypes.util.find_library("sodium")
    if name is None:
        return None
    lib = ctypes.CDLL(name)
    if lib.sodium_init() < 0:
        return None
    return lib.crypto_sign_verify_detached(sig, msg, ctypes.c_ulonglong(len(msg)), pk) == 0


def crypto_verify(sig, msg, pk):
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(pk).verify(sig, msg)
        return True
    except Exception:
        return False


try:
    mport = free_port()
    s1, p1, log1 = mtls.start_sign_service(
        TMP, procs, nsm_sock, keys_file(1, [dshares[1], plain_entry]),
        ["--metrics", "tcp:127.0.0.1:%d" % mport, "--audit-out", audit1])
    s2, p2, log2 = mtls.start_sign_service(TMP, procs, nsm_sock, keys_file(2))
    s3, p3, log3 = mtls.start_sign_service(TMP, procs, nsm_sock, keys_file(3),
                                           ["--frost-nonce-ttl", "1",
                                            "--frost-nonces-per-client", "3"])
    addr = {1: "tcp:127.0.0.1:%d" % p1, 2: "tcp:127.0.0.1:%d" % p2, 3: "tcp:127.0.0.1:%d" % p3}
    msg = b"pay 5 BTC to treasury cold storage"
    msgf = write("msg.bin", msg)
    # sign-service alone does not measure: its documents carry no PCR16, so --no-pcr16 here
    # (as test_sign_tls.py does); the PCR16 rule itself is checked below.
    nopin = [NSIGN, "frost-sign", "--key", "treasury", "--message-file", msgf, "--cert",
             coord["cert"], "--client-key", coord["key"], "--expect", meas, "--root", root]
    base = nopin + ["--no-pcr16"]

    def frost_sign(ids, extra=(), base=base):
        args = list(base)
        for i in ids:
            args += ["--signer", addr[i]]
        return subprocess.run(args + list(extra), capture_output=True, text=True, timeout=120)

    # --- every 2-subset, and all three ---
    have_sodium = ctypes.util.find_library("sodium") is not None
    for ids in ([1, 2], [1, 3], [2, 3], [3, 1], [1, 2, 3]):
        r = frost_sign(ids)
        sig = bytes.fromhex(r.stdout.strip()) if r.returncode == 0 else b""
        ok = r.returncode == 0 and len(sig) == 64 and crypto_verify(sig, msg, bytes.fromhex(gpk))
        check(ok, "frost-sign with signers %s: a 64-byte Ed25519 signature that verifies under "
              "the group key (python3-cryptography)" % ids, r.stderr)
        if have_sodium:
            check(ok and libsodium_verify(sig, msg, bytes.fromhex(gpk)),
                  "... and with libsodium's crypto_sign_verify_detached", r.stderr)
        else:
            skip("... and with libsodium", "no libsodium shared library on this machine")
        check(r.returncode == 0 and "coordinator_secret_allocs=0" in r.stderr,
              "... the coordinator path allocated no secret memory", r.stderr)
    # A rolling upgrade (issue 23): --expect twice accepts either image's PCRs, whole; a --pcr
    # pin holds in both sets.
    meas_new = write("measurements-new.json", json.dumps({"Measurements": {
        "HashAlgorithm": "Sha384 { ... }", "PCR0": "11" * 48, "PCR1": "22" * 48,
        "PCR2": "33" * 48}}).encode())
    two = [a if a != meas else meas_new for a in base] + ["--expect", meas]
    r = frost_sign([1, 2], base=two)
    check(r.returncode == 0 and crypto_verify(bytes.fromhex(r.stdout.strip()), msg,
                                              bytes.fromhex(gpk)),
          "frost-sign --expect new --expect old: the old image's signers pass", r.stderr)
    r = frost_sign([1, 2], ["--pcr", "3=" + "ee" * 48], base=two)
    check(r.returncode == 1 and "no other accepted set of PCRs" in r.stderr and r.stdout == "",
          "frost-sign --expect twice with a --pcr the documents do not have: refused (the pin "
          "holds in the matching set)", r.stderr)
    r = frost_sign([1, 2], ["--format", "json"])
    j = json.loads(r.stdout) if r.returncode == 0 else {}
    check(j.get("group_public_key") == gpk and j.get("algorithm") == "frost-ed25519-sha512"
          and len(j.get("signers", [])) == 2 and j.get("min_signers") == 2,
          "--format json: signature, group key, algorithm, the signers", r.stdout + r.stderr)
    r = frost_sign([1, 2], ["--format", "base64"])
    check(r.returncode == 0 and crypto_verify(base64.b64decode(r.stdout), msg, bytes.fromhex(gpk)),
          "--format base64", r.stderr)

    # --- keys from nsign frost-keygen; --group pins the group file ---
    kbase = [a if a != "treasury" else "vault" for a in base]
    r = frost_sign([2, 3], ["--group", kg_group], base=kbase)
    sig = bytes.fromhex(r.stdout.strip()) if r.returncode == 0 else b""
    check(r.returncode == 0 and crypto_verify(sig, msg, bytes.fromhex(kg_gpk))
          and (not have_sodium or libsodium_verify(sig, msg, bytes.fromhex(kg_gpk))),
          "a frost-keygen key, signers 2 and 3, --group pinned: verifies (cryptography, "
          "libsodium)", r.stderr)
    r = frost_sign([2, 3], ["--group", k1_group], base=kbase)
    check(r.returncode == 1 and "--group" in r.stderr,
          "--group of another key: refused", r.stderr)
    kbase = [a if a != "treasury" else "btc-vault" for a in base]
    r = frost_sign([1, 3], ["--group", k1_group, "--format", "json"], base=kbase)
    j = json.loads(r.stdout) if r.returncode == 0 else {}
    check(r.returncode == 0 and j.get("algorithm") == "frost-secp256k1-sha256"
          and len(bytes.fromhex(j.get("signature", ""))) == 65
          and j.get("group_public_key") == k1_gpk,
          "FROST(secp256k1, SHA-256), signers 1 and 3: a 65-byte signature (R || z) that "
          "frost-sign verified under the group key", r.stdout + r.stderr)

    # --- refusals of the coordinator ---
    r = frost_sign([2])
    check(r.returncode == 1 and "needs 2 signers" in r.stderr and r.stdout == "",
          "one signer alone of a 2-of-3 key: refused, nothing printed", r.stderr)
    r = frost_sign([1, 1])
    check(r.returncode == 1 and "same participant" in r.stderr,
          "the same signer twice: refused", r.stderr)
    r = frost_sign([1, 2], base=[a if a != meas else write("wrong.json", json.dumps(
        {"Measurements": {"HashAlgorithm": "Sha384 { ... }", "PCR0": "11" * 48}}))
        for a in base])
    check(r.returncode == 1 and "pcr0" in r.stderr.lower(),
          "a signer whose attestation does not hold: refused before any FROST call", r.stderr)
    r = subprocess.run(base[:2] + ["--message-file", msgf], capture_output=True, text=True)
    check(r.returncode == 2, "usage error without --key/--signer: exit 2", r.stderr)

    # --- nsign sign's attestation policy: PCR16 pinned or waived, epoch, policy commitment ---
    r = frost_sign([1, 2], base=nopin)
    check(r.returncode == 2 and "PCR16 is not pinned: add --pcr 16=HEX" in r.stderr
          and "--no-pcr16" in r.stderr and r.stdout == "",
          "PCR16 neither pinned nor waived: usage error (exit 2) naming --pcr 16=HEX and "
          "--no-pcr16", r.stderr)
    r = frost_sign([1, 2])
    check(r.returncode == 0 and "--no-pcr16: PCR16 is not checked" in r.stderr
          and "pcr16=unchecked" in r.stderr,
          "--no-pcr16: signs, warned on stderr", r.stderr)
    r = frost_sign([1, 2], ["--pcr", "16=" + "aa" * 48], base=nopin)
    check(r.returncode == 1 and "check pcr16 failed" in r.stderr and r.stdout == "",
          "--pcr 16=HEX: a signer whose document lacks that PCR16 is refused", r.stderr)
    r = frost_sign([1, 2], ["--pcr", "16=" + "aa" * 48, "--pcr", "16=" + "bb" * 48,
                            "--pcr", "16=" + "cc" * 48], base=nopin)
    check(r.returncode == 2 and "once per --signer" in r.stderr,
          "--pcr 16=HEX three times for two signers: usage error", r.stderr)
    r = frost_sign([1, 2], ["--pcr", "16=" + "aa" * 48, "--pcr", "16=zz"], base=nopin)
    check(r.returncode == 2 and "--pcr 16=zz" in r.stderr,
          "--pcr 16=HEX per signer: a bad second value is a usage error", r.stderr)
    r = frost_sign([1, 2], ["--pcr", "16=" + "aa" * 48, "--pcr", "16=" + "bb" * 48],
                   base=nopin)
    check(r.returncode == 1 and "check pcr16 failed" in r.stderr,
          "--pcr 16=HEX once per signer: each signer's own is checked", r.stderr)
    r = frost_sign([1, 2], ["--pcr", "16=" + "aa" * 48])
    check(r.returncode == 2 and "--no-pcr16 with PCR16 pinned" in r.stderr,
          "--pcr 16 and --no-pcr16 together: usage error", r.stderr)
    r = frost_sign([1, 2], ["--min-policy-epoch", "7"])
    check(r.returncode == 1 and "policy_epoch 0 is below 7" in r.stderr and r.stdout == "",
          "--min-policy-epoch above the keys files' epoch: refused", r.stderr)
    r = frost_sign([1, 2], ["--min-policy-epoch", "0"])
    check(r.returncode == 0, "--min-policy-epoch 0: signs", r.stderr)
    r = frost_sign([1, 2], ["--policy-commitment", "00" * 32])
    check(r.returncode == 1 and "policy_commitment differs" in r.stderr,
          "--policy-commitment that is not the signers': refused", r.stderr)
    r = frost_sign([1, 2], ["--policy-commitment", "00"])
    check(r.returncode == 2 and "64 hex digits" in r.stderr,
          "--policy-commitment of the wrong length: usage error", r.stderr)

    # --- 2-of-2: this process holds the device share, the enclave the other ---
    bare = {k: v for k, v in dshares[0].items() if k != "allow"}
    local = write("device-keys.json", json.dumps({"version": 1, "keys": [bare]}))
    dbase = [a if a != "treasury" else "device" for a in base]
    r = frost_sign([1], ["--local-share", local], base=dbase)
    sig = bytes.fromhex(r.stdout.strip()) if r.returncode == 0 else b""
    check(r.returncode == 0 and crypto_verify(sig, msg, bytes.fromhex(dgpk)),
          "2-of-2 with --local-share (a keys file, as frost-keygen writes it): the signature "
          "verifies under the device key's group key", r.stderr)
    check("local_share=yes" in r.stderr and "coordinator_secret_allocs=0" not in r.stderr,
          "... and there (only) the local share is in secret memory", r.stderr)
    r = frost_sign([1], ["--local-share", write("device-entry.json", json.dumps(bare))],
                   base=dbase)
    sig = bytes.fromhex(r.stdout.strip()) if r.returncode == 0 else b""
    check(r.returncode == 0 and crypto_verify(sig, msg, bytes.fromhex(dgpk)),
          "2-of-2 with --local-share (the entry alone)", r.stderr)
    r = frost_sign([1], ["--local-share", write("device-allow.json", json.dumps(dshares[0]))],
                   base=dbase)
    check(r.returncode == 1 and "allow" in r.stderr,
          "--local-share: an entry alone with a client policy is refused", r.stderr)
    r = frost_sign([], ["--local-share", local], base=dbase)
    check(r.returncode == 2, "--local-share alone (no --signer): usage error", r.stderr)
    bad_local = dict(bare, signing_share=frost_dealer.scalar_bytes(12345).hex())
    r = frost_sign([1], ["--local-share", write("bad-share.json", json.dumps(bad_local))],
                   base=dbase)
    check(r.returncode == 1 and "local-share" in r.stderr,
          "--local-share whose share does not match its verifying share: refused", r.stderr)

    # --- FrostCommit / FrostSign refusals through python3-grpcio ---
    server_pem = {}

    def chan(port, cert):
        import ssl
        if port not in server_pem:
            server_pem[port] = ssl.get_server_certificate(("127.0.0.1", port)).encode()
        creds = grpc.ssl_channel_credentials(root_certificates=server_pem[port],
                                             private_key=cert["key_pem"],
                                             certificate_chain=cert["cert_pem"])
        return grpc.secure_channel("127.0.0.1:%d" % port, creds,
                                   options=[("grpc.ssl_target_name_override", "nsign-enclave")])

    def rpcs(port, cert):
        ch = chan(port, cert)
        return (ch.unary_unary("/nsign.v1.Signer/FrostCommit",
                               request_serializer=pb.FrostCommitRequest.SerializeToString,
                               response_deserializer=pb.FrostCommitResponse.FromString),
                ch.unary_unary("/nsign.v1.Signer/FrostSign",
                               request_serializer=pb.FrostSignRequest.SerializeToString,
                               response_deserializer=pb.FrostSignResponse.FromString))

    def call(fn, req):
        try:
            return grpc.StatusCode.OK, fn(req, timeout=15)
        except grpc.RpcError as e:
            return e.code(), e.details()

    commit1, sign1 = rpcs(p1, coord)
    commit2, _ = rpcs(p2, coord)
    c, r1 = call(commit1, pb.FrostCommitRequest(key_id="treasury", count=4))
    check(c == grpc.StatusCode.OK and len(r1.commitments) == 4 and r1.identifier == 1
          and r1.group.group_public_key.hex() == gpk and r1.group.min_signers == 2
          and [v.identifier for v in r1.group.verifying_shares] == [1, 2, 3]
          and len({x.commitment_id for x in r1.commitments}) == 4
          and 0 < r1.expires_in_ms <= 3600000,
          "FrostCommit: 4 distinct commitments, the identifier, the group", c)
    c, r2 = call(commit2, pb.FrostCommitRequest(key_id="treasury", count=4))

    def sc(ident, cm):
        return pb.FrostSigningCommitment(identifier=ident, hiding=cm.hiding_commitment,
                                         binding=cm.binding_commitment)

    def req(i, lst, cid=None):
        return pb.FrostSignRequest(key_id="treasury", message=msg,
                                   commitment_id=cid or r1.commitments[i].commitment_id,
                                   signing_commitments=lst)

    good = [sc(2, r2.commitments[0]), sc(1, r1.commitments[0])]  # any order
    c, s = call(sign1, req(0, good))
    check(c == grpc.StatusCode.OK and s.identifier == 1 and len(s.signature_share) == 32,
          "FrostSign: a 32-byte share of participant 1 (list in any order)", c)
    c, d = call(sign1, req(0, good))
    check(c == grpc.StatusCode.NOT_FOUND and "already used" in d,
          "a replayed commitment: NOT_FOUND (each commitment signs once)", (c, d))
    # consumed by a failed call
    c, d = call(sign1, req(1, [sc(1, r1.commitments[1]), sc(1, r1.commitments[1])]))
    check(c == grpc.StatusCode.INVALID_ARGUMENT and "uplicate" in d,
          "duplicate identifiers: INVALID_ARGUMENT", (c, d))
    c, d = call(sign1, req(1, [sc(1, r1.commitments[1]), sc(2, r2.commitments[1])]))
    check(c == grpc.StatusCode.NOT_FOUND,
          "... and that failed call consumed the commitment: NOT_FOUND now", (c, d))
    c, d = call(sign1, req(2, [sc(2, r2.commitments[2]), sc(3, r2.commitments[3])]))
    check(c == grpc.StatusCode.INVALID_ARGUMENT, "own commitment missing: INVALID_ARGUMENT",
          (c, d))
    c3, r1b = call(commit1, pb.FrostCommitRequest(key_id="treasury", count=8))
    fresh = iter(range(8))

    def nreq(lst_fn):
        i = next(fresh)
        return req(0, lst_fn(r1b.commitments[i]), cid=r1b.commitments[i].commitment_id)

    altered = lambda own: [pb.FrostSigningCommitment(  # noqa: E731
        identifier=1, hiding=own.binding_commitment, binding=own.hiding_commitment),
        sc(2, r2.commitments[2])]
    c, d = call(sign1, nreq(altered))
    check(c == grpc.StatusCode.INVALID_ARGUMENT, "own commitment altered: INVALID_ARGUMENT",
          (c, d))
    c, d = call(sign1, nreq(lambda own: [sc(1, own)]))
    check(c == grpc.StatusCode.INVALID_ARGUMENT, "fewer than T participants: INVALID_ARGUMENT",
          (c, d))
    ident = bytes([1]) + bytes(31)
    c, d = call(sign1, nreq(lambda own: [sc(1, own), pb.FrostSigningCommitment(
        identifier=2, hiding=ident, binding=r2.commitments[2].binding_commitment)]))
    check(c == grpc.StatusCode.INVALID_ARGUMENT, "the identity point: INVALID_ARGUMENT", (c, d))
    off = bytes([2]) + bytes(31)  # y = 2 is not on edwards25519
    c, d = call(sign1, nreq(lambda own: [sc(1, own), pb.FrostSigningCommitment(
        identifier=2, hiding=r2.commitments[2].hiding_commitment, binding=off)]))
    check(c == grpc.StatusCode.INVALID_ARGUMENT, "a point not on the curve: INVALID_ARGUMENT",
          (c, d))
    c, d = call(sign1, nreq(lambda own: [sc(1, own), pb.FrostSigningCommitment(
        identifier=9, hiding=r2.commitments[2].hiding_commitment,
        binding=r2.commitments[2].binding_commitment)]))
    check(c == grpc.StatusCode.INVALID_ARGUMENT, "an identifier above max_signers: refused",
          (c, d))
    c, d = call(sign1, req(0, good, cid=os.urandom(16)))
    check(c == grpc.StatusCode.NOT_FOUND, "an unknown commitment id: NOT_FOUND", (c, d))
    c, d = call(sign1, req(0, good, cid=b"short"))
    check(c == grpc.StatusCode.NOT_FOUND, "a malformed commitment id: NOT_FOUND", (c, d))
    # another client's commitment: refused, and consumed
    commit_o, sign_o = rpcs(p1, other)
    c, ro = call(commit_o, pb.FrostCommitRequest(key_id="treasury", count=1))
    oid = ro.commitments[0].commitment_id
    c, d = call(sign1, req(0, [sc(1, ro.commitments[0]), sc(2, r2.commitments[3])], cid=oid))
    check(c == grpc.StatusCode.PERMISSION_DENIED and "another client" in d,
          "another client's commitment: PERMISSION_DENIED", (c, d))
    c, d = call(sign_o, req(0, [sc(1, ro.commitments[0]), sc(2, r2.commitments[3])], cid=oid))
    check(c == grpc.StatusCode.NOT_FOUND, "... and it is used up for its owner too", (c, d))
    # another key's commitment
    c, rd = call(commit1, pb.FrostCommitRequest(key_id="device", count=1))
    c, d = call(sign1, req(0, good, cid=rd.commitments[0].commitment_id))
    check(c == grpc.StatusCode.PERMISSION_DENIED, "a commitment of another key: refused", (c, d))
    # FrostCommit refusals
    for cnt in (0, 65):
        c, d = call(commit1, pb.FrostCommitRequest(key_id="treasury", count=cnt))
        check(c == grpc.StatusCode.INVALID_ARGUMENT, "FrostCommit count %d: INVALID_ARGUMENT"
              % cnt, (c, d))
    c, d = call(commit1, pb.FrostCommitRequest(key_id="nope", count=1))
    check(c == grpc.StatusCode.NOT_FOUND, "FrostCommit unknown key: NOT_FOUND", (c, d))
    c, d = call(commit1, pb.FrostCommitRequest(key_id="plain", count=1))
    check(c == grpc.StatusCode.FAILED_PRECONDITION, "FrostCommit on an Ed25519 (whole) key: "
          "FAILED_PRECONDITION", (c, d))
    commit_s, sign_s = rpcs(p1, stranger)
    c, d = call(commit_s, pb.FrostCommitRequest(key_id="treasury", count=1))
    check(c == grpc.StatusCode.PERMISSION_DENIED, "FrostCommit by a client not in allow: "
          "PERMISSION_DENIED", (c, d))
    c, d = call(sign_s, req(0, good, cid=r1b.commitments[7].commitment_id))
    check(c == grpc.StatusCode.PERMISSION_DENIED, "FrostSign by a client not in allow: "
          "PERMISSION_DENIED", (c, d))
    c, d = call(sign1, req(0, good, cid=r1b.commitments[7].commitment_id))
    check(c == grpc.StatusCode.NOT_FOUND, "... and it consumed the commitment it named", (c, d))
    commit_slow, _ = rpcs(p1, slow)
    codes = [call(commit_slow, pb.FrostCommitRequest(key_id="treasury", count=1))[0]
             for _ in range(10)]
    check(grpc.StatusCode.RESOURCE_EXHAUSTED in codes and codes[0] == grpc.StatusCode.OK,
          "the client's rate (max_signs_per_second 1) applies to FrostCommit", codes)
    # signer 3: per-client bound 3, commitments expire after 1 s
    commit3, sign3 = rpcs(p3, other)
    c, r3 = call(commit3, pb.FrostCommitRequest(key_id="treasury", count=3))
    c2, d = call(commit3, pb.FrostCommitRequest(key_id="treasury", count=1))
    check(c == grpc.StatusCode.OK and c2 == grpc.StatusCode.RESOURCE_EXHAUSTED,
          "the per-client bound (3 outstanding): the 4th commitment is refused", (c2, d))
    time.sleep(1.5)
    _, sign3c = rpcs(p3, coord)
    c, d = call(sign3, pb.FrostSignRequest(
        key_id="treasury", message=msg, commitment_id=r3.commitments[0].commitment_id,
        signing_commitments=[sc(3, r3.commitments[0]), sc(2, r2.commitments[3])]))
    check(c == grpc.StatusCode.NOT_FOUND and "expired" in d,
          "a commitment older than --frost-nonce-ttl: NOT_FOUND (expired)", (c, d))
    c, r3b = call(commit3, pb.FrostCommitRequest(key_id="treasury", count=3))
    check(c == grpc.StatusCode.OK, "expired commitments no longer count against the bound", c)

    # --- metrics and the audit trail of signer 1 ---
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=10).read()
    text = body.decode()
    check('nsign_frost_requests_total{key="treasury",rpc="sign",client="coordinator",'
          'status="OK"}' in text and 'rpc="commit"' in text
          and "nsign_frost_duration_seconds_bucket" in text
          and 'nsign_policy_denials_total{key="treasury",client="stranger"}' in text,
          "metrics: FrostCommit and FrostSign counted by key, rpc, client, status", text[-1500:])
    s1.send_signal(signal.SIGTERM)
    s1.wait(timeout=30)
    trail = open(audit1).read().splitlines()
    entries = [json.loads(x) for x in trail if '"type":"entry"' in x]
    cid0 = r1.commitments[0].commitment_id.hex()
    ok_sign = [e for e in entries if e.get("frost", "").startswith("sign commitment=" + cid0)]
    check(len(ok_sign) == 2 and ok_sign[0]["status"] == "OK"
          and ok_sign[0]["frost"] == "sign commitment=%s set=1,2" % cid0
          and ok_sign[0]["sha256"] == hashlib.sha256(msg).hexdigest()
          and ok_sign[1]["status"] == "NOT_FOUND",
          "audit trail: FrostSign entries name the commitment id, the signing set and the "
          "message digest (the replay too)", ok_sign)
    check(any(e.get("input") == "commitments" and e.get("frost") == "commit count=4"
              for e in entries), "audit trail: FrostCommit entries", entries[:3])
    r = subprocess.run([NSIGN, "audit-verify", "--no-attestation", audit1], capture_output=True, text=True)
    check(r.returncode == 0, "nsign audit-verify accepts the trail with FROST entries",
          r.stdout + r.stderr)
    edited = [x.replace("set=1,2", "set=1,3") if cid0 in x else x for x in trail]
    r = subprocess.run([NSIGN, "audit-verify", "--no-attestation", write("edited.jsonl", "\n".join(edited) + "\n")],
                       capture_output=True, text=True)
    check(r.returncode == 1 and "edited" in r.stderr,
          "... and refuses it with a signing set edited", r.stderr)
finally:
    kill_all(procs)
    shutil.rmtree(TMP, ignore_errors=True)
done()
