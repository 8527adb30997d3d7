"""test_sign_grpcjs: sign-service over mutual TLS against a second real client, @grpc/grpc-js
(with @grpc/proto-loader; test/lib/grpcjs/client.js), pinned by test/lib/grpcjs/package-lock.json
and installed by test/lib/grpcjs/install.sh into the machine cache (the first run needs the npm
registry; without it and without a cache this test fails, it never skips). A version-2 keys file
with Ed25519, secp256k1 and P-256 keys; a client allowed on all of them signs with each
algorithm and every signature is verified with python3-cryptography; the grpc-js client fetches
the server certificate, pins it, and checks Attest answers the certificate its own gRPC
connection ended on (and `nsign attest-verify --public-key-of` that certificate against the
document of the software NSM); a client allowed on one key only sees that key in ListKeys and
gets PERMISSION_DENIED on another; a client without a certificate and an unknown one fail.
"""
import base64
import hashlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

import mtls
from tap import NSIGN, check, done, kill_all

ROOT = os.environ.get("NS_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
LIB = os.path.join(ROOT, "test", "lib", "grpcjs")
TMP = tempfile.mkdtemp(prefix="nsign-grpcjs-")
procs = []
DER = serialization.Encoding.DER
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


def write(name, data):
    return mtls.write(TMP, name, data)


def scalar(k):
    return "%064x" % k.private_numbers().private_value


def b64(data):
    return {"b64": base64.b64encode(data).decode()}


# The modules: installed (or found in the cache) first; a failure here fails the test.
inst = subprocess.run(["bash", os.path.join(LIB, "install.sh")], capture_output=True, text=True,
                      timeout=400)
node_modules = inst.stdout.strip()
if not check(inst.returncode == 0 and os.path.isdir(node_modules),
             "@grpc/grpc-js and @grpc/proto-loader installed from the pinned lock file",
             inst.stderr):
    done()
lock = json.load(open(os.path.join(LIB, "package-lock.json")))["packages"]
installed = {p: json.load(open(os.path.join(os.path.dirname(node_modules), p,
                                            "package.json")))["version"]
             for p in lock if p}
check(installed == {p: v["version"] for p, v in lock.items() if p}
      and installed["node_modules/@grpc/grpc-js"] == "1.14.7"
      and installed["node_modules/@grpc/proto-loader"] == "0.8.1",
      "every installed module is the version the lock file pins (grpc-js 1.14.7, proto-loader 0.8.1)",
      installed)

full = mtls.client_cert(TMP, "payments-api", ec.generate_private_key(ec.SECP256R1()))
narrow = mtls.client_cert(TMP, "ops", ec.generate_private_key(ec.SECP384R1()))
stranger = mtls.client_cert(TMP, "stranger", ec.generate_private_key(ec.SECP256R1()))
ed = ed25519.Ed25519PrivateKey.generate()
p256 = ec.generate_private_key(ec.SECP256R1())
k1 = ec.generate_private_key(ec.SECP256K1())
KEYS = {"version": 2,
        "clients": [{"id": "payments-api", "spki_sha256": full["pin"]},
                    {"id": "ops", "spki_sha256": narrow["pin"]}],
        "keys": [{"id": "ed", "algorithm": "ed25519",
                  "private_key": base64.b64encode(ed.private_bytes(
                      serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                      serialization.NoEncryption())).decode(),
                  "allow": ["payments-api", "ops"]},
                 {"id": "p256", "algorithm": "ecdsa-p256", "private_key": scalar(p256),
                  "allow": ["payments-api"]},
                 {"id": "k1", "algorithm": "ecdsa-secp256k1", "private_key": scalar(k1),
                  "allow": ["payments-api"]}]}
keys_v2 = write("keys2.json", json.dumps(KEYS).encode())

nsm_sock, ca_dir = mtls.start_nsm(TMP, procs)  # the software NSM (test_sign_tls.py's)


def node(port, cert, calls, server_cert=None):
    """Runs the grpc-js client; returns (its JSON output or None, stderr)."""
    plan = {"addr": "127.0.0.1:%d" % port, "proto": os.path.join(ROOT, "proto", "nsign.proto"),
            "server_name": "nsign-enclave", "cert": cert and cert["cert_pem"].decode(),
            "key": cert and cert["key_pem"].decode(), "server_cert": server_cert, "calls": calls}
    r = subprocess.run(["node", os.path.join(LIB, "client.js")], input=json.dumps(plan),
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, NODE_PATH=node_modules))
    try:
        return json.loads(r.stdout), r.stderr
    except ValueError:
        return None, "exit %d: %s%s" % (r.returncode, r.stdout, r.stderr)


def verify(alg, resp, msg):
    """The signature of a SignResponse checked with python3-cryptography; True when it holds."""
    sig = base64.b64decode(resp.get("signature", ""))
    try:
        if alg == "ed25519":
            ed.public_key().verify(sig, msg)
            return len(sig) == 64
        pub = {"ecdsa-p256": p256, "ecdsa-secp256k1": k1}[alg].public_key()
        rs = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        pub.verify(rs, msg, ec.ECDSA(hashes.SHA256()))
        der = base64.b64decode(resp.get("signature_der", ""))
        pub.verify(der, msg, ec.ECDSA(hashes.SHA256()))
        return len(sig) == 64 and resp.get("digest") == base64.b64encode(
            hashlib.sha256(msg).digest()).decode()
    except Exception:
        return False


try:
    srv, port, log = mtls.start_sign_service(TMP, procs, nsm_sock, keys_v2)
    # The server's certificate as python's own TLS (OpenSSL) sees it, to compare with grpc-js's.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    ctx.load_cert_chain(full["cert"], full["key"])
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                         server_hostname="nsign-enclave") as s:
        server_der = s.getpeercert(binary_form=True)
    server_pem = ssl.DER_cert_to_PEM_cert(server_der)
    write("server.pem", server_pem.encode())

    # --- the client allowed on every key: Attest, ListKeys, Sign with each algorithm ---
    nonce = os.urandom(32)
    msgs = {"ed": b"transfer 10 to bob (grpc-js, ed25519)",
            "p256": b"transfer 10 to bob (grpc-js, p-256)",
            "k1": b"transfer 10 to bob (grpc-js, secp256k1)"}
    calls = [{"method": "Attest", "request": {"nonce": b64(nonce)}},
             {"method": "ListKeys", "request": {}}]
    calls += [{"method": "Sign", "request": {"key_id": k, "message": b64(m)}}
              for k, m in msgs.items()]
    out, err = node(port, full, calls)
    check(out is not None and len(out["results"]) == len(calls),
          "grpc-js %s with a client certificate ran every call" % (out or {}).get("grpc_js"), err)
    if out is None:
        raise SystemExit(done())
    res = out["results"]
    sess = [base64.b64decode(c) for c in out["session_certs"]]
    check(base64.b64decode(out["fetched_cert"]) == server_der and sess and
          all(c == server_der for c in sess),
          "grpc-js fetched and pinned the server certificate; its gRPC connection ended on it",
          (len(sess), out.get("fetched_cert", "")[:40]))
    att = res[0]
    ok = att["code"] == "OK"
    check(ok and sess and base64.b64decode(att["response"]["certificate"]) == sess[-1],
          "grpc-js: Attest answers the certificate of this connection's TLS session", att)
    if ok:
        docp = write("doc.cbor", base64.b64decode(att["response"]["attestation_document"]))
        v = subprocess.run([NSIGN, "attest-verify", "--root", os.path.join(ca_dir, "root.pem"),
                            "--nonce", nonce.hex(), "--user-data",
                            base64.b64decode(att["response"]["user_data"]).hex(),
                            "--public-key-of", os.path.join(TMP, "server.pem"), "--no-pcr16",
                            docp],
                           capture_output=True, text=True)
        check(v.returncode == 0,
              "attest-verify: the document grpc-js got binds the TLS key, with its nonce", v.stderr)
    lk = res[1]
    want = {"ed": ("ED25519", ed.public_key().public_bytes(DER, SPKI)),
            "p256": ("ECDSA_P256", p256.public_key().public_bytes(DER, SPKI)),
            "k1": ("ECDSA_SECP256K1", k1.public_key().public_bytes(DER, SPKI))}
    got = {k["key_id"]: (k["algorithm"], base64.b64decode(k["public_key_der"]))
           for k in (lk.get("response") or {}).get("keys", [])}
    check(lk["code"] == "OK" and got == want,
          "grpc-js: ListKeys shows the three keys with their algorithms and public keys",
          (lk["code"], sorted(got)))
    for r, (kid, msg), alg in zip(res[2:], msgs.items(),
                                  ("ed25519", "ecdsa-p256", "ecdsa-secp256k1")):
        check(r["code"] == "OK" and verify(alg, r["response"], msg),
              "grpc-js: %s Sign verifies with python3-cryptography" % alg,
              (r["code"], r.get("details")))

    # --- a client allowed on one key only ---
    calls = [{"method": "ListKeys", "request": {}},
             {"method": "Sign", "request": {"key_id": "ed", "message": b64(msgs["ed"])}},
             {"method": "Sign", "request": {"key_id": "k1", "message": b64(msgs["k1"])}},
             {"method": "Sign", "request": {"key_id": "p256", "message": b64(msgs["p256"])}}]
    out, err = node(port, narrow, calls)
    res = out["results"] if out else [{}] * 4
    check(res[0].get("code") == "OK"
          and [k["key_id"] for k in res[0]["response"]["keys"]] == ["ed"],
          "grpc-js (client allowed on one key): ListKeys shows only that key", res[0] or err)
    check(res[1].get("code") == "OK" and verify("ed25519", res[1]["response"], msgs["ed"]),
          "grpc-js (client allowed on one key): Sign with it verifies", res[1] or err)
    for r, kid in ((res[2], "k1"), (res[3], "p256")):
        check(r.get("code") == "PERMISSION_DENIED" and "ops" in (r.get("details") or ""),
              "grpc-js: allowed on key ed, calling key %s: PERMISSION_DENIED" % kid, r or err)

    # --- no client certificate, an unknown one: the calls fail (the handshake is refused) ---
    before = open(log).read().count("sign key=")
    for desc, cert in (("no client certificate", None), ("an unknown client certificate", stranger)):
        out, err = node(port, cert, [{"method": "Sign", "request": {"key_id": "ed",
                                                                    "message": b64(b"x")}}],
                        server_cert=server_pem)
        r = out["results"][0] if out else {}
        check(r.get("code") == "UNAVAILABLE", "grpc-js with %s: Sign fails (%s)"
              % (desc, r.get("code")), r or err)
    text = open(log).read()
    check(text.count("sign key=") == before and "client=payments-api" in text
          and "client=ops" in text,
          "the refused clients signed nothing; audit lines name the grpc-js clients", text[-600:])
    check(srv.poll() is None, "the server is still up")
finally:
    kill_all(procs)
    shutil.rmtree(TMP, ignore_errors=True)

done()
