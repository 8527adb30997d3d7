#!/usr/bin/python3
"""enclave_demo: the user-side pieces of the enclave flow, for test/demo.sh and the run-enclave
integration test (which share test/lib/enclave_flow.sh).

  keys OUT                       a new service_key_shares.json (Ed25519 + ECDSA P-256 keys)
  tls DIR                        a test CA and a server certificate for localhost, 127.0.0.1
                                 and kms.{us-east-1,eu-west-1}.amazonaws.com (DIR/ca.pem,
                                 cert.pem, key.pem)
  kms-encrypt PORT CA IN OUT     KMS Encrypt of IN under alias/nsign-test with botocore against
                                 the KMS fake (credentials from AWS_* of the IMDS fake)
  sign-verify HOST:PORT KEYS     gRPC ListKeys + Sign for every key through HOST:PORT, each
                                 signature verified against the public key derived from KEYS
  attest-pcr HOST:PORT N         gRPC Attest; prints PCR N of the document (hex) or "absent"
"""
import base64
import datetime
import json
import os
import subprocess
import sys
import tempfile

from testca import write_tls

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
MESSAGE = b"nsign demo: signed inside the enclave"


def keys(out):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    seed = os.urandom(32)
    p256 = ec.generate_private_key(ec.SECP256R1())
    doc = {"version": 1, "keys": [
        {"id": "payments", "algorithm": "ed25519", "private_key": base64.b64encode(seed).decode()},
        {"id": "api", "algorithm": "ecdsa-p256",
         "private_key": "%064x" % p256.private_numbers().private_value}]}
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f)
    del serialization


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
    import grpc
    pb = pb_module()
    with grpc.insecure_channel(target) as ch:
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
    import grpc
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
    pb = pb_module()
    with open(keys_path) as f:
        doc = json.load(f)
    ok = True
    with grpc.insecure_channel(target) as ch:
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
    return 0 if ok else 1


def attest_health(target, out):
    """Writes the Attest document (base64) to out; exit 0 when health is SERVING too."""
    import grpc
    tmp = tempfile.mkdtemp(prefix="nsign-demo-pb-")
    subprocess.run(["protoc", "-I" + os.path.join(ROOT, "proto"), "--python_out=" + tmp,
                    "nsign.proto", "grpc_health.proto"], check=True)
    sys.path.insert(0, tmp)
    import grpc_health_pb2 as hpb
    import nsign_pb2 as pb
    with grpc.insecure_channel(target) as ch:
        at = ch.unary_unary("/nsign.v1.Signer/Attest",
                            request_serializer=pb.AttestRequest.SerializeToString,
                            response_deserializer=pb.AttestResponse.FromString)
        hc = ch.unary_unary("/grpc.health.v1.Health/Check",
                            request_serializer=hpb.HealthCheckRequest.SerializeToString,
                            response_deserializer=hpb.HealthCheckResponse.FromString)
        r = at(pb.AttestRequest(nonce=os.urandom(16)), timeout=20)
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
    import grpc
    tmp = tempfile.mkdtemp(prefix="nsign-demo-pb-")
    subprocess.run(["protoc", "-I" + os.path.join(ROOT, "proto"), "--python_out=" + tmp,
                    "nsign.proto"], check=True)
    sys.path.insert(0, tmp)
    import nsign_pb2 as pb
    with grpc.insecure_channel(target) as ch:
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
