"""kms_fake: a local AWS KMS (JSON 1.1 protocol) as strict as KMS for Decrypt with Recipient.

Checks on every request: POST /, Content-Type application/x-amz-json-1.1, X-Amz-Target
TrentService.<Op>, a SigV4 Authorization for service kms in our region whose signature botocore's
SigV4Auth recomputes identically over the signed headers (host, x-amz-date, x-amz-target and
the session token header must be among them), an X-Amz-Date within 15 minutes, and a JSON body
with only the members KMS defines. Errors are KMS's: {"__type": "...", "message": "..."}.

Operations: Encrypt (so tests can make ciphertexts with botocore), Decrypt, DescribeKey (id,
ARN, alias or alias ARN -> KeyMetadata) and GetKeyPolicy
(KeyId a key id or key ARN, as KMS: an alias is NotFoundException; PolicyName "default" only;
the policy is --key-policy FILE's text, else the account root's default policy;
--deny-get-key-policy answers AccessDeniedException as for a role without kms:GetKeyPolicy). Ciphertext blobs
are ours ("NSFK" | key index | 12-byte nonce | AES-GCM(plaintext, aad = sorted context JSON)).
Decrypt with Recipient verifies the attestation document (COSE_Sign1 ES384, chain from its
cabundle to --nsm-root, validity now, cabundle[0] == root), applies --require-pcr0 and
--require-attestation, and answers CiphertextForRecipient made by `openssl cms -encrypt -binary
-recip CERT -keyid -keyopt rsa_padding_mode:oaep -keyopt rsa_oaep_md:sha256 -aes256 -stream
-outform DER` for a certificate carrying the document's public_key (32-byte SKI).

The endpoint is checked as AWS's is: the TLS server name (SNI) and the Host header must be one of
--host (repeatable; default kms.REGION.amazonaws.com), so a client that talks to the wrong
region's endpoint fails the handshake (unrecognized_name) or gets a 400, and every request's
SNI, Host and credential scope region are logged.

Credentials come from the environment (KMS_FAKE_AKID, KMS_FAKE_SECRET, KMS_FAKE_TOKEN), never
argv; the data keys derive from KMS_FAKE_KEYSEED (fakes with different policies share keys). Every request is appended to --log as one JSON line (no secrets: the fake only logs what
the test needs to see passed through).

usage: kms_fake.py --port-file F [--tls-cert PEM --tls-key PEM] [--region R] [--host NAME]...
       [--nsm-root PEM]
       [--throttle N] [--require-pcr0 HEX] [--require-attestation] [--require-grant TOKEN]
       [--key-policy FILE] [--deny-get-key-policy] [--log FILE]
"""
import argparse
import base64
import datetime
import hashlib
import http.server
import json
import os
import ssl
import subprocess
import sys
import tempfile
import threading

import cbor2
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

ACCOUNT = "111122223333"
KEYS = ["1234abcd-12ab-34cd-56ef-1234567890ab", "0987dcba-09fe-87dc-65ba-ab0987654321"]
ALIASES = {"alias/nsign-test": 0, "alias/other": 1}
ALLOWED = {
    "Decrypt": {"CiphertextBlob", "EncryptionContext", "GrantTokens", "KeyId",
                "EncryptionAlgorithm", "Recipient", "DryRun"},
    "Encrypt": {"KeyId", "Plaintext", "EncryptionContext", "GrantTokens",
                "EncryptionAlgorithm", "DryRun"},
    "GetKeyPolicy": {"KeyId", "PolicyName"},
    "DescribeKey": {"KeyId", "GrantTokens"},
}


class KmsError(Exception):
    def __init__(self, status, code, msg):
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


def arn(i, region):
    return "arn:aws:kms:%s:%s:key/%s" % (region, ACCOUNT, KEYS[i])


class State:
    def __init__(self, args):
        self.args = args
        # Keys derive from KMS_FAKE_KEYSEED so several fakes (one per policy) share them.
        seed = os.environ.get("KMS_FAKE_KEYSEED", "").encode() or os.urandom(16)
        self.keys = [hashlib.sha256(seed + bytes([i])).digest() for i in range(len(KEYS))]
        self.lock = threading.Lock()
        self.throttle_left = args.throttle
        self.root = None
        if args.nsm_root:
            with open(args.nsm_root, "rb") as f:
                self.root = x509.load_pem_x509_certificate(f.read())
        self.akid = os.environ["KMS_FAKE_AKID"]
        self.secret = os.environ["KMS_FAKE_SECRET"]
        self.token = os.environ.get("KMS_FAKE_TOKEN") or None

    def key_index(self, key_id):
        region = self.args.region
        for i, k in enumerate(KEYS):
            if key_id in (k, arn(i, region)):
                return i
        if key_id in ALIASES:
            return ALIASES[key_id]
        if key_id.startswith("arn:aws:kms:%s:%s:" % (region, ACCOUNT)):
            alias = key_id.split(":", 5)[5]
            if alias in ALIASES:
                return ALIASES[alias]
        raise KmsError(400, "NotFoundException", "Key '%s' does not exist" % key_id)


def aad(ctx):
    return json.dumps(ctx or {}, sort_keys=True, separators=(",", ":")).encode()


def check_endpoint(st, h, logrec):
    """The Host header and the TLS server name name this endpoint, as AWS's front end checks."""
    sni = getattr(h.connection, "nsign_sni", None)
    host = h.headers.get("Host", "")
    logrec.update({"sni": sni, "host": host})
    name, _, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
    if name not in st.args.host or (port and name.endswith(".amazonaws.com")):
        raise KmsError(400, "UnrecognizedClientException",
                       "Host header %r is not this endpoint (%s)" % (host, st.args.host))
    if st.args.tls_cert and sni != name:
        raise KmsError(400, "UnrecognizedClientException",
                       "TLS server name %r does not match Host %r" % (sni, host))


def check_sigv4(st, h, body, logrec):
    authz = h.headers.get("Authorization", "")
    if not authz.startswith("AWS4-HMAC-SHA256 "):
        raise KmsError(400, "MissingAuthenticationTokenException", "Missing Authentication Token")
    parts = {}
    for p in authz[len("AWS4-HMAC-SHA256 "):].split(","):
        k, _, v = p.strip().partition("=")
        parts[k] = v
    cred = parts.get("Credential", "").split("/")
    if len(cred) == 5:
        logrec["scope_region"] = cred[2]
    if len(cred) != 5 or cred[3] != "kms" or cred[4] != "aws4_request":
        raise KmsError(400, "IncompleteSignatureException", "bad Credential scope")
    if cred[0] != st.akid:
        raise KmsError(400, "UnrecognizedClientException",
                       "The security token included in the request is invalid.")
    if cred[2] != st.args.region:
        raise KmsError(400, "InvalidSignatureException", "Credential should be scoped to a valid "
                       "region, not '%s'." % cred[2])
    amz_date = h.headers.get("X-Amz-Date", "")
    try:
        t = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc)
    except ValueError:
        raise KmsError(400, "IncompleteSignatureException", "bad X-Amz-Date")
    if cred[1] != amz_date[:8]:
        raise KmsError(400, "InvalidSignatureException", "scope date != X-Amz-Date")
    if abs((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds()) > 900:
        raise KmsError(400, "InvalidSignatureException", "Signature expired")
    signed = parts.get("SignedHeaders", "").split(";")
    need = {"host", "x-amz-date", "x-amz-target"}
    if st.token:
        need.add("x-amz-security-token")
        if h.headers.get("X-Amz-Security-Token") != st.token:
            raise KmsError(400, "UnrecognizedClientException",
                           "The security token included in the request is invalid.")
    if not need <= set(signed):
        raise KmsError(400, "InvalidSignatureException",
                       "SignedHeaders lacks %s" % sorted(need - set(signed)))
    headers = {}
    for name in signed:
        vals = h.headers.get_all(name)
        if vals is None:
            raise KmsError(400, "InvalidSignatureException", "signed header %s missing" % name)
        headers[name] = ",".join(vals)
    req = AWSRequest(method=h.command, url="https://%s%s" % (h.headers["Host"], h.path),
                     data=body, headers=headers)
    auth = SigV4Auth(Credentials(st.akid, st.secret, st.token), "kms", st.args.region)
    req.context["timestamp"] = amz_date
    creq = auth.canonical_request(req)
    sts = auth.string_to_sign(req, creq)
    if auth.signature(sts, req) != parts.get("Signature"):
        raise KmsError(400, "InvalidSignatureException",
                       "The request signature we calculated does not match the signature you "
                       "provided. Check your AWS Secret Access Key and signing method.")


def emulator_document(doc_b):
    """The payload of an attestation document shaped like QEMU's emulated NSM's (nitro-enclave
    machine, hw/virtio/virtio-nsm.c): protected header {1: -1}, and signature, certificate and
    every cabundle entry all zero bytes (QEMU does not sign). None for anything else."""
    try:
        cose = cbor2.loads(doc_b)
        if isinstance(cose, cbor2.CBORTag):
            cose = cose.value
        protected, _unprot, payload_b, sig = cose
        doc = cbor2.loads(payload_b)
        if cbor2.loads(protected) != {1: -1} or not isinstance(doc, dict):
            return None
        blobs = [sig, doc["certificate"]] + list(doc["cabundle"])
        if all(isinstance(b, bytes) and b and not any(b) for b in blobs) and \
                isinstance(doc.get("pcrs"), dict):
            return doc
    except Exception:
        pass
    return None


def verify_attestation(st, doc_b):
    if st.args.accept_emulator_attestation:
        doc = emulator_document(doc_b)
        if doc is not None:
            sys.stderr.write("kms_fake: EMULATOR MODE: accepting an UNSIGNED attestation document "
                             "(QEMU's NSM); real KMS refuses it\n")
            return doc
    try:
        cose = cbor2.loads(doc_b)
        if isinstance(cose, cbor2.CBORTag):
            cose = cose.value
        protected, _unprot, payload_b, sig = cose
        if cbor2.loads(protected) != {1: -35} or len(sig) != 96:
            raise ValueError("not ES384")
        doc = cbor2.loads(payload_b)
        leaf = x509.load_der_x509_certificate(doc["certificate"])
        chain = [x509.load_der_x509_certificate(c) for c in doc["cabundle"]]
    except Exception as e:
        raise KmsError(400, "ValidationException", "invalid attestation document: %s" % e)
    if st.root is None or chain[0].public_bytes(serialization.Encoding.DER) != \
            st.root.public_bytes(serialization.Encoding.DER):
        raise KmsError(400, "ValidationException", "attestation document not rooted in the "
                       "Nitro root")
    now = datetime.datetime.utcnow()  # naive UTC, like not_valid_before/after
    certs = chain + [leaf]
    for issuer, cert in zip(certs, certs[1:]):
        try:
            issuer.public_key().verify(cert.signature, cert.tbs_certificate_bytes,
                                       ec.ECDSA(cert.signature_hash_algorithm))
        except Exception:
            raise KmsError(400, "ValidationException", "attestation chain does not verify")
    for c in certs:
        if not (c.not_valid_before <= now <= c.not_valid_after):
            raise KmsError(400, "ValidationException", "attestation certificate expired")
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
    sig_der = encode_dss_signature(int.from_bytes(sig[:48], "big"), int.from_bytes(sig[48:], "big"))
    try:
        leaf.public_key().verify(sig_der, cbor2.dumps(["Signature1", protected, b"", payload_b]),
                                 ec.ECDSA(hashes.SHA384()))
    except Exception:
        raise KmsError(400, "ValidationException", "attestation document signature is invalid")
    return doc


def cms_for_recipient(spki_der, plaintext):
    pub = serialization.load_der_public_key(spki_der)
    if not isinstance(pub, rsa.RSAPublicKey) or pub.key_size < 2048:
        raise KmsError(400, "ValidationException", "public_key must be RSA 2048+")
    signer = ec.generate_private_key(ec.SECP256R1())
    nm = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kms recipient")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(nm).issuer_name(nm).public_key(pub)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(minutes=5))
            .add_extension(x509.SubjectKeyIdentifier(hashlib.sha256(spki_der).digest()), False)
            .sign(signer, hashes.SHA256()))
    with tempfile.TemporaryDirectory(prefix="kms-fake-") as d:
        cp = os.path.join(d, "recip.pem")
        with open(cp, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        out = subprocess.run(["openssl", "cms", "-encrypt", "-binary", "-recip", cp, "-keyid",
                              "-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256",
                              "-aes256", "-stream", "-outform", "DER"],
                             input=plaintext, capture_output=True, timeout=30)
    if out.returncode != 0:
        raise KmsError(500, "KMSInternalException", "openssl cms failed")
    return out.stdout


def b64field(body, name):
    v = body.get(name)
    if not isinstance(v, str):
        raise KmsError(400, "ValidationException", "%s is required" % name)
    try:
        return base64.b64decode(v, validate=True)
    except Exception:
        raise KmsError(400, "SerializationException", "%s is not base64" % name)


def check_context(ctx):
    if ctx is None:
        return {}
    if not isinstance(ctx, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                            for k, v in ctx.items()):
        raise KmsError(400, "SerializationException", "EncryptionContext must map strings")
    return ctx


def op_encrypt(st, body):
    i = st.key_index(body.get("KeyId") or "")
    pt = b64field(body, "Plaintext")
    ctx = check_context(body.get("EncryptionContext"))
    nonce = os.urandom(12)
    blob = b"NSFK" + bytes([i]) + nonce + AESGCM(st.keys[i]).encrypt(nonce, pt, aad(ctx))
    return {"CiphertextBlob": base64.b64encode(blob).decode(), "KeyId": arn(i, st.args.region),
            "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}


def op_decrypt(st, body, logrec):
    blob = b64field(body, "CiphertextBlob")
    ctx = check_context(body.get("EncryptionContext"))
    grants = body.get("GrantTokens") or []
    logrec.update({"context": ctx, "key_id": body.get("KeyId"), "grants": grants})
    if not isinstance(grants, list) or len(grants) > 10:
        raise KmsError(400, "ValidationException", "GrantTokens")
    if len(blob) < 5 + 12 + 16 or blob[:4] != b"NSFK" or blob[4] >= len(KEYS):
        raise KmsError(400, "InvalidCiphertextException", None)
    i = blob[4]
    if body.get("KeyId") is not None and st.key_index(body["KeyId"]) != i:
        raise KmsError(400, "IncorrectKeyException", "The key ID in the request does not "
                       "identify a CMK that can perform this operation.")
    try:
        pt = AESGCM(st.keys[i]).decrypt(blob[5:17], blob[17:], aad(ctx))
    except Exception:
        raise KmsError(400, "InvalidCiphertextException", None)
    if st.args.require_grant and st.args.require_grant not in grants:
        raise KmsError(400, "AccessDeniedException", "User is not authorized to perform: "
                       "kms:Decrypt (no grant)")
    rcp = body.get("Recipient")
    logrec["recipient"] = rcp is not None
    if rcp is None:
        if st.args.require_attestation or st.args.require_pcr0:
            raise KmsError(400, "AccessDeniedException", "User is not authorized to perform: "
                           "kms:Decrypt with an explicit deny in a resource-based policy")
        return {"KeyId": arn(i, st.args.region), "Plaintext": base64.b64encode(pt).decode(),
                "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}
    if not isinstance(rcp, dict) or set(rcp) - {"AttestationDocument", "KeyEncryptionAlgorithm"}:
        raise KmsError(400, "ValidationException", "Recipient")
    if rcp.get("KeyEncryptionAlgorithm") != "RSAES_OAEP_SHA_256":
        raise KmsError(400, "ValidationException", "KeyEncryptionAlgorithm must be "
                       "RSAES_OAEP_SHA_256")
    doc = verify_attestation(st, b64field(rcp, "AttestationDocument"))
    logrec["pcr0"] = doc["pcrs"][0].hex() if 0 in doc["pcrs"] else ""
    logrec["unsigned_emulator_document"] = doc.get("certificate", b"x").count(0) == \
        len(doc.get("certificate", b"x"))
    if st.args.require_pcr0 and doc["pcrs"][0].hex() != st.args.require_pcr0.lower():
        raise KmsError(400, "AccessDeniedException", "User is not authorized to perform: "
                       "kms:Decrypt (kms:RecipientAttestation:PCR0 does not match)")
    if not doc.get("public_key"):
        raise KmsError(400, "ValidationException", "attestation document has no public_key")
    cms = cms_for_recipient(doc["public_key"], pt)
    return {"KeyId": arn(i, st.args.region), "CiphertextForRecipient":
            base64.b64encode(cms).decode(), "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}


def op_describe_key(st, body, logrec):
    key_id = body.get("KeyId")
    logrec["key_id"] = key_id
    if not isinstance(key_id, str) or not key_id:
        raise KmsError(400, "ValidationException", "KeyId is required")
    i = st.key_index(key_id)
    return {"KeyMetadata": {
        "AWSAccountId": ACCOUNT, "KeyId": KEYS[i], "Arn": arn(i, st.args.region),
        "CreationDate": 1700000000.0, "Enabled": True, "Description": "", "KeyUsage":
        "ENCRYPT_DECRYPT", "KeyState": "Enabled", "Origin": "AWS_KMS", "KeyManager": "CUSTOMER",
        "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT", "KeySpec": "SYMMETRIC_DEFAULT",
        "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"], "MultiRegion": False}}


def op_get_key_policy(st, body, logrec):
    key_id = body.get("KeyId")
    logrec["key_id"] = key_id
    if not isinstance(key_id, str) or not key_id:
        raise KmsError(400, "ValidationException", "KeyId is required")
    if key_id.startswith("alias/") or ":alias/" in key_id:
        raise KmsError(400, "NotFoundException", "Invalid keyId %s" % key_id)
    i = st.key_index(key_id)
    if body.get("PolicyName", "default") != "default":
        raise KmsError(400, "NotFoundException", "No such policy exists")
    if st.args.deny_get_key_policy:
        raise KmsError(400, "AccessDeniedException", "User is not authorized to perform: "
                       "kms:GetKeyPolicy on resource: %s" % arn(i, st.args.region))
    if st.args.key_policy:
        with open(st.args.key_policy) as f:
            policy = f.read()
    else:
        policy = json.dumps({"Version": "2012-10-17", "Id": "key-default-1", "Statement": [{
            "Sid": "Enable IAM User Permissions", "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::%s:root" % ACCOUNT}, "Action": "kms:*",
            "Resource": "*"}]}, indent=2)
    return {"Policy": policy, "PolicyName": "default"}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", os.urandom(8).hex())
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.reply(400, {"__type": "UnknownOperationException"})

    def do_POST(self):
        st = self.server.st
        logrec = {"target": self.headers.get("X-Amz-Target")}
        try:
            n = int(self.headers.get("Content-Length", "-1"))
            if n < 0 or n > 1 << 20:
                raise KmsError(400, "SerializationException", "Content-Length")
            body_b = self.rfile.read(n)
            if self.path != "/":
                raise KmsError(400, "UnknownOperationException", "path %s" % self.path)
            if self.headers.get("Content-Type") != "application/x-amz-json-1.1":
                raise KmsError(400, "SerializationException", "Content-Type")
            target = self.headers.get("X-Amz-Target", "")
            op = target[len("TrentService."):] if target.startswith("TrentService.") else ""
            if op not in ALLOWED:
                raise KmsError(400, "UnknownOperationException", target)
            check_endpoint(st, self, logrec)
            check_sigv4(st, self, body_b, logrec)
            try:
                body = json.loads(body_b)
            except ValueError:
                raise KmsError(400, "SerializationException", "body is not JSON")
            if not isinstance(body, dict) or set(body) - ALLOWED[op]:
                raise KmsError(400, "SerializationException", "unexpected members %s" %
                               sorted(set(body) - ALLOWED[op]) if isinstance(body, dict) else "")
            if op == "Decrypt":
                with st.lock:
                    throttle = st.throttle_left > 0
                    st.throttle_left -= 1 if throttle else 0
                if throttle:
                    raise KmsError(400, "ThrottlingException", "Rate exceeded")
                out = op_decrypt(st, body, logrec)
            elif op == "GetKeyPolicy":
                out = op_get_key_policy(st, body, logrec)
            elif op == "DescribeKey":
                out = op_describe_key(st, body, logrec)
            else:
                out = op_encrypt(st, body)
            logrec["status"] = 200
            self.reply(200, out)
        except Exception as e:  # a bug in the fake must be a 500, not a dropped connection
            if not isinstance(e, KmsError):
                print("kms_fake: %r" % e, file=sys.stderr)
                e = KmsError(500, "KMSInternalException", "fake: %r" % e)
            logrec.update({"status": e.status, "error": e.code})
            obj = {"__type": e.code}
            if e.msg is not None:
                obj["message"] = e.msg
            self.reply(e.status, obj)
        finally:
            if st.args.log:
                with st.lock, open(st.args.log, "a") as f:
                    f.write(json.dumps(logrec) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--host", action="append", default=[])
    ap.add_argument("--nsm-root")
    ap.add_argument("--throttle", type=int, default=0)
    ap.add_argument("--require-pcr0")
    ap.add_argument("--require-attestation", action="store_true")
    ap.add_argument("--require-grant")
    ap.add_argument("--log")
    ap.add_argument("--key-policy")
    ap.add_argument("--deny-get-key-policy", action="store_true")
    ap.add_argument("--accept-emulator-attestation", action="store_true",
                    help="also accept unsigned documents shaped like QEMU's NSM (nitro-enclave "
                    "machine): for the local emulator only; real KMS never does")
    args = ap.parse_args()
    args.host = args.host or ["kms.%s.amazonaws.com" % args.region]
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.st = State(args)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)

        def on_sni(sock, name, _ctx):
            sock.nsign_sni = name
            if name not in args.host:
                return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
            return None
        ctx.sni_callback = on_sni
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(args.port_file + ".tmp", args.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
