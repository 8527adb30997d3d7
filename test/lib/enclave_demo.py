#!/usr/bin/python3
"""enclave_demo: the user-side pieces of the enclave flow, for test/demo.sh and the run-enclave
integration test (which share test/lib/enclave_flow.sh).

  keys OUT [v1]                  a new service_key_shares.json (Ed25519 + ECDSA P-256 keys),
                                 version 2: both keys allowed to one client, "demo-client",
                                 whose certificate and key are written next to OUT
                                 (client.pem, client.key); "v1": a version-1 file (no policy)
  tls DIR                        a test CA and a server certificate for localhost, 127.0.0.1
                                 and kms.{us-east-1,eu-west-1}.amazonaws.com (DIR/ca.pem,
                                 cert.pem, key.pem)
  kms-encrypt PORT CA IN OUT     KMS Encrypt of IN under alias/nsign-test with botocore against
                                 the KMS fake (credentials from AWS_* of the IMDS fake)
  sign-verify HOST:PORT KEYS     over TLS pinned to the certificate the server presents (with
                                 the client certificate of DEMO_CLIENT_CERT/DEMO_CLIENT_KEY when
                                 set): Attest with a fresh nonce, checked to bind that
                                 certificate, then ListKeys + Sign for every key, each signature
                                 verified against the public key derived from KEYS. Every byte
                                 goes through a recording relay (what run-enclave's host bridge
                                 relays): neither the message nor any signature may be in it.
  attest-pcr HOST:PORT N         gRPC Attest; prints PCR N of the document (hex) or "absent"
Every gRPC call here goes over TLS pinned to the server's certificate (test/lib/pinned.py).
"""
import base64
import datetime
import json
import os
import subprocess
import sys
import tempfile

import pinned
from testca import write_tls

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
MESSAGE = b"nsign demo: signed inside the enclave"


def client_cert(d, name):
    """A self-signed client certificate and key in d (client.pem, client.key); returns the
    SHA-256 pin of its SubjectPublicKeyInfo (any issuer works: the pin authorises)."""
    import hashlib
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    k = ec.generate_private_key(ec.SECP256R1())
    n = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    c = (x509.CertificateBuilder().subject_name(n).issuer_name(n).public_key(k.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(1))
         .not_valid_after(now + datetime.timedelta(30)).sign(k, hashes.SHA256()))
    with open(os.path.join(d, "client.pem"), "wb") as f:
        f.write(c.public_bytes(serialization.Encoding.PEM))
    fd = os.open(os.path.join(d, "client.key"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()))
    return hashlib.sha256(k.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest()


def keys(out, version="v2"):
    from cryptography.hazmat.primitives.asymmetric import ec
    seed = os.urandom(32)
    p256 = ec.generate_private_key(ec.SECP256R1())
    doc = {"version": 1, "keys": [
        {"id": "payments", "algorithm": "ed25519", "private_key": base64.b64encode(seed).decode()},
        {"id": "api", "algorithm": "ecdsa-p256",
         "private_key": "%064x" % p256.private_numbers().private_value}]}
    if version != "v1":
        pin = client_cert(os.path.dirname(os.path.abspath(out)), "demo-client")
        doc = {"version": 2, "clients": [{"id": "demo-client", "spki_sha256": pin}],
               "keys": [dict(k, allow=["demo-client"]) for k in doc["keys"]]}
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f)


def open_channel(target):
    """A pinned TLS channel to HOST:PORT, with the client certificate of DEMO_CLIENT_CERT and
    DEMO_CLIENT_KEY when they are set; returns (channel, the server's certificate DER)."""
    host, port = target.rsplit(":", 1)
    return pinned.channel(host, int(port), os.environ.get("DEMO_CLIENT_CERT"),
                          os.environ.get("DEMO_CLIENT_KEY"))


def tls(d):
    write_tls(d, "localhost", ["localhost", "kms.us-east-1.amazonaws.com",
                               "kms.eu-west-1.amazonaws.com"], ips=["127.0.0.1"],
              ca_cn="nsign demo CA")


def kms_encrypt(port, ca, src, dst):
    import botocore.session
    s = botocore.session.get_session()
    c = s.create_client("kms", region_name=os.environ.get("DEMO_REGION", "us-east-1"),
                        endpoint_url="https://localhost:%s" % port,
                        verify=ca, aws_access_key_id=os.environ["DEMO_AKID"],
                        aws_secret_access_key=os.environ["DEMO_SECRET"],
                        aws_session_token=os.environ["DEMO_TOKEN"])
    with open(src, "rb") as f:
        blob = c.encrypt(KeyId="alias/nsign-test", Plaintext=f.read())["CiphertextBlob"]
    with open(dst, "wb") as f:
        f.write(blob)


def pb_module():
    tmp = tempfile.mkdtemp(prefix="nsign-demo-pb-")
    subprocess.run(["protoc", "-I" + os.path.join(ROOT, "proto"), "--python_out=" + tmp,
                    "nsign.proto"], check=True)
    sys.path.insert(0, tmp)
    import nsign_pb2
    return nsign_pb2


def attest_pcr(target, index):
    """Prints PCR<index> of the document the enclave's Attest answers (hex, or "absent")."""
    import cbor2
    pb = pb_module()
    ch, _ = open_channel(target)
    with ch:
        att = ch.unary_unary("/nsign.v1.Signer/Attest",
                             request_serializer=pb.AttestRequest.SerializeToString,
                             response_deserializer=pb.AttestResponse.FromString)
        r = att(pb.AttestRequest(nonce=os.urandom(16)), timeout=10)
    cose = cbor2.loads(r.attestation_document)
    cose = cose.value if isinstance(cose, cbor2.CBORTag) else cose
    pcrs = cbor2.loads(cose[2])["pcrs"]
    print(pcrs[int(index)].hex() if int(index) in pcrs else "absent")
    return 0


def sign_verify(target, keys_path):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
    pb = pb_module()
    with open(keys_path) as f:
        doc = json.load(f)
    ok = True
    host, port = target.rsplit(":", 1)
    rec = pinned.Recorder(host, int(port))
    ch, server_der = open_channel("127.0.0.1:%d" % rec.port)
    signatures = []
    with ch:
        pinned.attest(ch, pb, server_der)
        print("  Attest -> the document binds the TLS certificate this channel is pinned to")
        lk = ch.unary_unary("/nsign.v1.Signer/ListKeys",
                            request_serializer=pb.ListKeysRequest.SerializeToString,
                            response_deserializer=pb.ListKeysResponse.FromString)
        sign = ch.unary_unary("/nsign.v1.Signer/Sign",
                              request_serializer=pb.SignRequest.SerializeToString,
                              response_deserializer=pb.SignResponse.FromString)
        listed = sorted(k.key_id for k in lk(pb.ListKeysRequest(), timeout=10).keys)
        print("  ListKeys -> %s" % ", ".join(listed))
        for k in doc["keys"]:
            r = sign(pb.SignRequest(key_id=k["id"], message=MESSAGE), timeout=10)
            signatures.append(r.signature)
            try:
                if k["algorithm"] == "ed25519":
                    pub = ed25519.Ed25519PrivateKey.from_private_bytes(
                        base64.b64decode(k["private_key"])[:32]).public_key()
                    pub.verify(r.signature, MESSAGE)
                else:
                    priv = ec.derive_private_key(int(k["private_key"], 16), ec.SECP256R1())
                    rr = int.from_bytes(r.signature[:32], "big")
                    ss = int.from_bytes(r.signature[32:], "big")
                    priv.public_key().verify(encode_dss_signature(rr, ss), MESSAGE,
                                             ec.ECDSA(hashes.SHA256()))
                print("  Sign(%s, %s) -> %s...  verified against the shares file's public key"
                      % (k["id"], k["algorithm"], r.signature.hex()[:32]))
            except Exception as e:  # noqa: BLE001 - any verification failure is a failure
                print("  Sign(%s) -> signature does NOT verify: %r" % (k["id"], e))
                ok = False
    rec.close()
    streams = rec.streams()
    seen = [x for x in [MESSAGE] + signatures if any(x in b for b in streams)]
    total = sum(len(b) for b in streams)
    tls_only = bool(streams) and all(b[:1] in (b"", b"\x16") for b in streams)
    if seen or not tls_only:
        print("  capture of the %d relayed bytes: %s" % (
            total, "NOT TLS" if not tls_only else "the message or a signature in clear"))
        return 1
    print("  capture of the %d relayed bytes (what the host's bridge sees): TLS records only, "
          "neither the message nor any signature" % total)
    return 0 if ok else 1


def attest_health(target, out):
    """Writes the Attest document (base64) to out; exit 0 when health is SERVING too."""
    tmp = tempfile.mkdtemp(prefix="nsign-demo-pb-")
    subprocess.run(["protoc", "-I" + os.path.join(ROOT, "proto"), "--python_out=" + tmp,
                    "nsign.proto", "grpc_health.proto"], check=True)
    sys.path.insert(0, tmp)
    import grpc_health_pb2 as hpb
    import nsign_pb2 as pb
    ch, server_der = open_channel(target)
    with ch:
        at = ch.unary_unary("/nsign.v1.Signer/Attest",
                            request_serializer=pb.AttestRequest.SerializeToString,
                            response_deserializer=pb.AttestResponse.FromString)
        hc = ch.unary_unary("/grpc.health.v1.Health/Check",
                            request_serializer=hpb.HealthCheckRequest.SerializeToString,
                            response_deserializer=hpb.HealthCheckResponse.FromString)
        r = at(pb.AttestRequest(nonce=os.urandom(16)), timeout=20)
        pinned.check_binding(r, server_der)
        with open(out, "w") as f:
            f.write(base64.b64encode(r.attestation_document).decode() + "\n")
        h = hc(hpb.HealthCheckRequest(service="nsign.v1.Signer"), timeout=10)
        print("  Attest -> %d-byte document, audit key %s; health %s" % (
            len(r.attestation_document), r.audit_public_key.hex()[:16],
            hpb.HealthCheckResponse.ServingStatus.Name(h.status)))
        return 0 if h.status == hpb.HealthCheckResponse.SERVING and r.audit_public_key else 1


def attest_pcrs(target):
    """Calls Attest and prints the document's PCRs as JSON {index: hex} (the document is parsed,
    not verified: under the emulator QEMU's NSM does not sign)."""
    import cbor2
    tmp = tempfile.mkdtemp(prefix="nsign-demo-pb-")
    subprocess.run(["protoc", "-I" + os.path.join(ROOT, "proto"), "--python_out=" + tmp,
                    "nsign.proto"], check=True)
    sys.path.insert(0, tmp)
    import nsign_pb2 as pb
    ch, _ = open_channel(target)
    with ch:
        attest = ch.unary_unary("/nsign.v1.Signer/Attest",
                                request_serializer=pb.AttestRequest.SerializeToString,
                                response_deserializer=pb.AttestResponse.FromString)
        r = attest(pb.AttestRequest(nonce=os.urandom(16)), timeout=30)
    cose = cbor2.loads(r.attestation_document)
    if isinstance(cose, cbor2.CBORTag):
        cose = cose.value
    doc = cbor2.loads(cose[2])
    print(json.dumps({str(k): v.hex() for k, v in sorted(doc["pcrs"].items())}))
    return 0


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "keys":
        keys(*args)
    elif cmd == "tls":
        tls(*args)
    elif cmd == "kms-encrypt":
        kms_encrypt(*args)
    elif cmd == "sign-verify":
        sys.exit(sign_verify(*args))
    elif cmd == "attest-health":
        sys.exit(attest_health(*args))


    elif cmd == "attest-pcrs":
        sys.exit(attest_pcrs(*args))
    elif cmd == "attest-pcr":
        sys.exit(attest_pcr(*args))
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
