#!/usr/bin/python3
"""test/vm/e2e/host.py: the host-machine side of test/vm/test_e2e.sh (runs under /usr/bin/python3).

  prepare DIR tls        writes kms-ca.pem, kms-cert.pem, kms-key.pem: the KMS endpoint's TLS
                         chain (SAN kms.eu-west-1.amazonaws.com), before the KMS fake starts
  prepare DIR KMS_PORT   writes the test material into DIR, using the running KMS fake (TLS,
                         trusting DIR/kms-ca.pem) to encrypt the age identity:
      s3/e2e-bucket/age.key.kms               the age identity, KMS-encrypted (alias/nsign-test)
      s3/e2e-bucket/shares.age                the shares (keys) file, version 2: both keys
                                              allowed to one pinned client, whose certificate
                                              and key (client.pem, client.key) stay in DIR
      s3/e2e-bucket/shares-v1.age             the same keys as a version-1 file (no policy)
      s3/e2e-bucket/shares-corrupt.age        the same with one payload byte flipped
      s3/e2e-bucket/shares-badkey.age         a keys file with a 31-byte seed, age-encrypted
      pub.json                                {key_id: public key hex} derived from the shares
      secrets.txt                             every secret value, one per line, as it could
                                              appear in a log or file (for grep -F -f)
  sign PORT DIR SECONDS  over mutual TLS pinned to the certificate the enclave presents (client
                         certificate DIR/client.pem), through a recording relay to
                         127.0.0.1:PORT (the VM's host-side ingress bridge, forwarded by qemu):
                         Attest (the document binds that certificate), then Sign until it
                         answers or SECONDS pass; verifies each signature against
                         DIR/pub.json, and that the relayed bytes hold neither the message
                         nor a signature; prints TAP lines. Stops retrying early when DIR/stop
                         exists (the VM is gone).

The AWS credentials come from the environment (E2E_AKID, E2E_SECRET, E2E_TOKEN), never argv.
"""
import base64
import datetime
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time

import botocore.session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
import pinned  # noqa: E402
from enclave_demo import client_cert  # noqa: E402
from testca import write_tls  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
REGION = "eu-west-1"  # the parent's region; the enclave learns it from the configuration frame
KMS_HOST = "kms.%s.amazonaws.com" % REGION
MESSAGE = b"nsign end-to-end: signed inside the VM's enclave"


def tls_material(d):
    write_tls(d, KMS_HOST, [KMS_HOST, "localhost"], prefix="kms-", ca_cn="nsign e2e kms ca")


def prepare(d, kms_port):
    s3 = os.path.join(d, "s3", "e2e-bucket")
    os.makedirs(s3, exist_ok=True)
    # The signing keys: one ed25519, one P-256.
    seed = os.urandom(32)
    p256 = ec.generate_private_key(ec.SECP256R1())
    scalar = "%064x" % p256.private_numbers().private_value
    keys = {"version": 1, "keys": [
        {"id": "e2e-ed", "algorithm": "ed25519", "private_key": base64.b64encode(seed).decode()},
        {"id": "e2e-p256", "algorithm": "ecdsa-p256", "private_key": scalar}]}
    shares_v1 = json.dumps(keys).encode()
    pin = client_cert(d, "e2e-client")
    keys = {"version": 2, "clients": [{"id": "e2e-client", "spki_sha256": pin}],
            "keys": [dict(k, allow=["e2e-client"]) for k in keys["keys"]]}
    shares = json.dumps(keys).encode()
    ed_pub = ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    p_pub = p256.public_key().public_bytes(serialization.Encoding.X962,
                                           serialization.PublicFormat.UncompressedPoint)
    with open(os.path.join(d, "pub.json"), "w") as f:
        json.dump({"e2e-ed": ed_pub.hex(), "e2e-p256": p_pub.hex()}, f)

    # The age identity, and the shares encrypted to it with the reference `age` tool.
    with tempfile.TemporaryDirectory(dir=d) as t:
        idf = os.path.join(t, "id.txt")
        subprocess.run(["age-keygen", "-o", idf], check=True, capture_output=True)
        with open(idf) as f:
            lines = f.read().splitlines()
        identity = [x for x in lines if x.startswith("AGE-SECRET-KEY-1")][0]
        recipient = [x.split(": ", 1)[1] for x in lines if x.startswith("# public key: ")][0]
        r = subprocess.run(["age", "-r", recipient], input=shares, check=True,
                           capture_output=True)
    age_ct = r.stdout
    with open(os.path.join(s3, "shares.age"), "wb") as f:
        f.write(age_ct)
    r1 = subprocess.run(["age", "-r", recipient], input=shares_v1, check=True,
                        capture_output=True)
    with open(os.path.join(s3, "shares-v1.age"), "wb") as f:
        f.write(r1.stdout)
    bad = bytearray(age_ct)
    bad[-20] ^= 0x01  # inside the last payload chunk: the header still parses, the MAC fails
    with open(os.path.join(s3, "shares-corrupt.age"), "wb") as f:
        f.write(bytes(bad))

    # A keys file that decrypts but does not load (a 31-byte ed25519 seed): load-keys must
    # fail without echoing it.
    bad_seed = base64.b64encode(os.urandom(31)).decode()
    badkeys = json.dumps({"version": 1, "keys": [
        {"id": "e2e-bad", "algorithm": "ed25519", "private_key": bad_seed}]}).encode()
    r = subprocess.run(["age", "-r", recipient], input=badkeys, check=True, capture_output=True)
    with open(os.path.join(s3, "shares-badkey.age"), "wb") as f:
        f.write(r.stdout)

    # The identity, KMS-encrypted under alias/nsign-test (the test's "right" key).
    sess = botocore.session.get_session()
    c = sess.create_client("kms", region_name=REGION,
                           endpoint_url="https://localhost:%d" % kms_port,
                           verify=os.path.join(d, "kms-ca.pem"),
                           aws_access_key_id=os.environ["E2E_AKID"],
                           aws_secret_access_key=os.environ["E2E_SECRET"],
                           aws_session_token=os.environ["E2E_TOKEN"])
    blob = c.encrypt(KeyId="alias/nsign-test", Plaintext=identity.encode())["CiphertextBlob"]
    with open(os.path.join(s3, "age.key.kms"), "wb") as f:
        f.write(blob)

    secrets = [os.environ["E2E_SECRET"], os.environ["E2E_TOKEN"], identity, identity.lower(),
               identity[16:48], keys["keys"][0]["private_key"], seed.hex(), scalar,
               scalar.upper(), base64.b64encode(bytes.fromhex(scalar)).decode(),
               shares.decode()[:40], bad_seed]
    with open(os.path.join(d, "secrets.txt"), "w") as f:
        f.write("\n".join(secrets) + "\n")


def sign(port, d, seconds):
    import grpc
    subprocess.run(["protoc", "-I" + os.path.join(ROOT, "proto"), "--python_out=" + d,
                    "nsign.proto"], check=True)
    sys.path.insert(0, d)
    import nsign_pb2 as pb
    with open(os.path.join(d, "pub.json")) as f:
        pubs = json.load(f)
    cert, key = os.path.join(d, "client.pem"), os.path.join(d, "client.key")
    rec = pinned.Recorder("127.0.0.1", port)

    def channel():
        ch, der = pinned.channel("127.0.0.1", rec.port, cert, key)
        return ch, der, ch.unary_unary("/nsign.v1.Signer/Sign",
                                       request_serializer=pb.SignRequest.SerializeToString,
                                       response_deserializer=pb.SignResponse.FromString)

    deadline = time.time() + seconds
    last = None
    resp = None
    while time.time() < deadline and not os.path.exists(os.path.join(d, "stop")):
        # A new channel per attempt: a channel's reconnect backoff grows to minutes, and qemu's
        # hostfwd accepts and then resets connections until the guest listens.
        ch = None
        try:
            ch, der, call = channel()
            pinned.attest(ch, pb, der)
            resp = call(pb.SignRequest(key_id="e2e-ed", message=MESSAGE), timeout=10)
            break
        except (grpc.RpcError, OSError, ssl.SSLError) as e:
            last = "%s %s" % (e.code(), e.details()) if isinstance(e, grpc.RpcError) else repr(e)
            if ch is not None:
                ch.close()
            time.sleep(1)
    if resp is None:
        print("not ok - gRPC Sign through the host-side ingress bridge answers (last: %s)" % last)
        return 1
    print("ok - over mutual TLS pinned to the enclave's certificate, which Attest binds, "
          "Sign through the host-side ingress bridge -> vsock -> enclave answers")
    rc = 0
    pub = ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(pubs["e2e-ed"]))
    try:
        pub.verify(resp.signature, MESSAGE)
        print("ok - the ed25519 signature verifies against the public key from the shares file")
    except Exception as e:  # noqa: BLE001 (any failure is the finding)
        print("not ok - the ed25519 signature verifies against the shares file's key (%r)" % e)
        rc = 1
    sigs = [resp.signature]
    try:
        r2 = call(pb.SignRequest(key_id="e2e-p256", message=MESSAGE), timeout=20)
        sigs.append(r2.signature)
        pk = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(),
                                                          bytes.fromhex(pubs["e2e-p256"]))
        pk.verify(r2.signature_der, MESSAGE, ec.ECDSA(hashes.SHA256()))
        print("ok - the ECDSA P-256 signature verifies against the public key from the shares file")
    except Exception as e:  # noqa: BLE001
        print("not ok - the ECDSA P-256 signature verifies against the shares file's key (%r)" % e)
        rc = 1
    # Without the pinned client certificate the enclave signs nothing: the handshake fails.
    try:
        ch2, _ = pinned.channel("127.0.0.1", port)
        ch2.unary_unary("/nsign.v1.Signer/Sign",
                        request_serializer=pb.SignRequest.SerializeToString,
                        response_deserializer=pb.SignResponse.FromString)(
            pb.SignRequest(key_id="e2e-ed", message=MESSAGE), timeout=10)
        print("not ok - a client without the pinned certificate is refused (it was served)")
        rc = 1
    except (grpc.RpcError, OSError, ssl.SSLError) as e:
        print("ok - a client without the pinned certificate is refused (%s)" % (
            e.code() if isinstance(e, grpc.RpcError) else type(e).__name__))
    ch.close()
    rec.close()
    streams = rec.streams()
    seen = [x for x in [MESSAGE] + sigs if any(x in b for b in streams)]
    tls = bool(streams) and all(b[:1] in (b"", b"\x16") for b in streams)
    print("%s - a capture of the bytes the host relayed (%d bytes) is TLS only, without the "
          "message or a signature%s" % ("ok" if tls and not seen else "not ok",
                                        sum(len(b) for b in streams),
                                        "" if tls and not seen else " (found in clear)"))
    rc |= 0 if tls and not seen else 1
    return rc


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "prepare":
        tls_material(sys.argv[2]) if sys.argv[3] == "tls" else prepare(sys.argv[2],
                                                                       int(sys.argv[3]))
        return 0
    if len(sys.argv) == 5 and sys.argv[1] == "sign":
        return sign(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
