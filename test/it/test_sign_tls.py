"""test_sign_tls: sign-service over TLS with mutual TLS and a version-2 keys file, against real
peers: python3-grpcio with client certificates (P-256 and P-384 client keys) signing with each
algorithm (every signature verified with python3-cryptography); Attest binds the TLS key
(the document's public_key is the SPKI of the certificate this session ended on, checked with
`nsign attest-verify --public-key-of`, and AttestResponse.certificate is that certificate); the
negatives of issue 13: no client certificate, an unknown one, allowed on key A calling key B,
over the rate, ListKeys filtered, a broken v2 policy, a cleartext client on the TLS port, a
client without ALPN h2, TLS 1.1 alone, a non-AEAD suite alone; a version-1 file serves TLS
without client authentication; audit lines name the client; `nsign sign` verifies before it
signs, and refuses a swapped server and wrong measurements without sending a Sign; it needs
PCR16 pinned (--pcr 16=HEX, checked against the document) or waived (--no-pcr16, warned), and
checks the keys file behind the enclave (issue 22): an anonymous (version-1) service, a
policy_epoch below --min-policy-epoch and another --policy-commitment are refused.
"""
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

import mtls
from tap import NSIGN, check, done, free_port, kill_all

ROOT = os.environ.get("NS_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
TMP = tempfile.mkdtemp(prefix="nsign-tls-")
procs = []
subprocess.run(["protoc", "-I" + os.path.join(ROOT, "proto"), "--python_out=" + TMP,
                "nsign.proto"], check=True)
sys.path.insert(0, TMP)
import nsign_pb2 as pb  # noqa: E402

PEM = serialization.Encoding.PEM


def write(name, data):
    return mtls.write(TMP, name, data)


def client_cert(name, key):
    return mtls.client_cert(TMP, name, key)


pay = client_cert("payments-api", ec.generate_private_key(ec.SECP256R1()))
ops = client_cert("ops", ec.generate_private_key(ec.SECP384R1()))
stranger = client_cert("stranger", ec.generate_private_key(ec.SECP256R1()))

ed = ed25519.Ed25519PrivateKey.generate()
p256 = ec.generate_private_key(ec.SECP256R1())
k1 = ec.generate_private_key(ec.SECP256K1())


def scalar(k):
    return "%064x" % k.private_numbers().private_value


import base64  # noqa: E402
KEYS = {"version": 2, "policy_epoch": 3,
        "clients": [{"id": "payments-api", "spki_sha256": pay["pin"]},
                    {"id": "ops", "spki_sha256": ops["pin"], "max_signs_per_second": 2}],
        "keys": [{"id": "payments", "algorithm": "ed25519",
                  "private_key": base64.b64encode(ed.private_bytes(
                      serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                      serialization.NoEncryption())).decode(),
                  "allow": ["payments-api", "ops"]},
                 {"id": "api", "algorithm": "ecdsa-p256", "private_key": scalar(p256),
                  "allow": ["payments-api"]},
                 {"id": "eth-hot", "algorithm": "ecdsa-secp256k1", "private_key": scalar(k1),
                  "allow": ["ops"]}]}
keys_v2 = write("keys2.json", json.dumps(KEYS).encode())
keys_v1 = write("keys1.json", json.dumps({"version": 1, "keys": [
    {k: v for k, v in KEYS["keys"][0].items() if k != "allow"}]}).encode())

# the software NSM (attestation documents under a test root)
nsm_sock, ca_dir = mtls.start_nsm(TMP, procs)


def start(keys, args=()):
    return mtls.start_sign_service(TMP, procs, nsm_sock, keys, args)


def tls_probe(port, cert=None, alpn=("h2",), minv=None, maxv=None, ciphers=None):
    """A raw TLS handshake with python's ssl (OpenSSL); returns (ok, peer_der or error)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if ciphers:
        ctx.set_ciphers(ciphers)
    if minv:
        ctx.minimum_version = minv
    if maxv:
        ctx.maximum_version = maxv
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if cert:
        ctx.load_cert_chain(cert["cert"], cert["key"])
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            with ctx.wrap_socket(s, server_hostname="nsign-enclave") as t:
                der = t.getpeercert(binary_form=True)
                # TLS 1.3: the server judges our certificate and ALPN after our Finished; a
                # refusal shows as an alert or a close on the first read.
                t.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
                t.settimeout(5)
                data = t.recv(9)
                if not data:
                    return False, "closed"
                return True, der
    except (ssl.SSLError, OSError) as e:
        return False, str(e)


def channel(port, cert, server_pem):
    creds = grpc.ssl_channel_credentials(root_certificates=server_pem,
                                         private_key=cert["key_pem"] if cert else None,
                                         certificate_chain=cert["cert_pem"] if cert else None)
    return grpc.secure_channel("127.0.0.1:%d" % port, creds,
                               options=[("grpc.ssl_target_name_override", "nsign-enclave")])


def unary(ch, name, req_cls, resp_cls):
    return ch.unary_unary("/nsign.v1.Signer/" + name, request_serializer=req_cls.SerializeToString,
                          response_deserializer=resp_cls.FromString)


def code_of(fn, req):
    try:
        return grpc.StatusCode.OK, fn(req, timeout=15)
    except grpc.RpcError as e:
        return e.code(), e.details()


try:
    mport = free_port()
    srv, port, log = start(keys_v2, ["--metrics", "tcp:127.0.0.1:%d" % mport])

    def tls_failures():
        """nsign_tls_handshake_failures_total as the server's /metrics says it."""
        import urllib.request
        body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=10).read()
        for line in body.decode().splitlines():
            if line.startswith("nsign_tls_handshake_failures_total "):
                return float(line.split()[1])
        return None

    ok, server_der = tls_probe(port, pay)
    check(ok, "TLS with a known client certificate and ALPN h2", server_der)
    server_cert = x509.load_der_x509_certificate(server_der)
    server_pem = server_cert.public_bytes(PEM)
    write("server.pem", server_pem)
    check(isinstance(server_cert.public_key(), ec.EllipticCurvePublicKey)
          and server_cert.public_key().curve.name == "secp256r1"
          and server_cert.issuer == server_cert.subject,
          "the server certificate is self-signed with a P-256 key")

    # --- grpcio with client certificates, each algorithm, verified independently ---
    ch = channel(port, pay, server_pem)
    sign = unary(ch, "Sign", pb.SignRequest, pb.SignResponse)
    msg = b"transfer 10 to bob"
    c, r = code_of(sign, pb.SignRequest(key_id="payments", message=msg))
    ok = c == grpc.StatusCode.OK
    if ok:
        try:
            ed.public_key().verify(r.signature, msg)
        except Exception:
            ok = False
    check(ok, "grpcio (P-256 client cert): Ed25519 Sign verifies with python3-cryptography", c)
    c, r = code_of(sign, pb.SignRequest(key_id="api", message=msg))
    ok = c == grpc.StatusCode.OK
    if ok:
        try:
            p256.public_key().verify(r.signature_der, msg, ec.ECDSA(hashes.SHA256()))
        except Exception:
            ok = False
    check(ok, "grpcio (P-256 client cert): ECDSA P-256 Sign verifies", c)
    ch_ops = channel(port, ops, server_pem)
    sign_ops = unary(ch_ops, "Sign", pb.SignRequest, pb.SignResponse)
    c, r = code_of(sign_ops, pb.SignRequest(key_id="eth-hot", message=msg))
    ok = c == grpc.StatusCode.OK
    if ok:
        try:
            k1.public_key().verify(encode_dss_signature(int.from_bytes(r.signature[:32], "big"),
                                                        int.from_bytes(r.signature[32:], "big")),
                                   msg, ec.ECDSA(hashes.SHA256()))
        except Exception:
            ok = False
    check(ok, "grpcio (P-384 client cert): ECDSA secp256k1 Sign verifies", c)

    # --- policy ---
    c, d = code_of(sign, pb.SignRequest(key_id="eth-hot", message=msg))
    check(c == grpc.StatusCode.PERMISSION_DENIED and "payments-api" in d,
          "allowed on key A, calling key B: PERMISSION_DENIED", (c, d))
    lk = unary(ch, "ListKeys", pb.ListKeysRequest, pb.ListKeysResponse)
    c, r = code_of(lk, pb.ListKeysRequest())
    check(c == grpc.StatusCode.OK and sorted(k.key_id for k in r.keys) == ["api", "payments"],
          "ListKeys shows payments-api only its keys", c)
    c, r = code_of(unary(ch_ops, "ListKeys", pb.ListKeysRequest, pb.ListKeysResponse),
                   pb.ListKeysRequest())
    check(c == grpc.StatusCode.OK and sorted(k.key_id for k in r.keys) == ["eth-hot", "payments"],
          "ListKeys shows ops only its keys", c)
    codes = [code_of(sign_ops, pb.SignRequest(key_id="payments", message=b"x"))[0]
             for _ in range(8)]
    check(grpc.StatusCode.RESOURCE_EXHAUSTED in codes and grpc.StatusCode.OK in codes,
          "over max_signs_per_second: RESOURCE_EXHAUSTED", codes)
    text = open(log).read()
    check("client=payments-api" in text and "client=ops" in text
          and "status=PERMISSION_DENIED" in text,
          "audit lines name the client", text[-600:])

    # --- Attest binds the TLS key ---
    nonce = os.urandom(32)
    c, r = code_of(unary(ch, "Attest", pb.AttestRequest, pb.AttestResponse),
                   pb.AttestRequest(nonce=nonce))
    check(c == grpc.StatusCode.OK and r.certificate == server_der,
          "Attest answers the certificate of this TLS session", c)
    if c == grpc.StatusCode.OK:
        docp = write("doc.cbor", r.attestation_document)
        v = subprocess.run([NSIGN, "attest-verify", "--root", os.path.join(ca_dir, "root.pem"),
                            "--nonce", nonce.hex(), "--user-data", r.user_data.hex(),
                            "--public-key-of", os.path.join(TMP, "server.pem"), "--no-pcr16",
                            docp],
                           capture_output=True, text=True)
        check(v.returncode == 0, "attest-verify: document public_key = the TLS key, nonce",
              v.stderr)
        v = subprocess.run([NSIGN, "attest-verify", "--root", os.path.join(ca_dir, "root.pem"),
                            "--public-key-of", pay["cert"], "--no-pcr16", docp],
                           capture_output=True, text=True)
        check(v.returncode == 1 and "check public_key failed" in v.stderr,
              "attest-verify: another certificate's key is refused", v.stderr)

    # --- handshake negatives ---
    fail0 = tls_failures()
    check(fail0 == 0, "metrics: no TLS handshake failure counted after good clients", fail0)
    for desc, kw in (("no client certificate", {}),
                     ("an unknown client certificate", {"cert": stranger})):
        ok, why = tls_probe(port, **kw)
        check(not ok, "TLS: %s: the handshake fails" % desc, why)
        c, d = code_of(unary(channel(port, kw.get("cert"), server_pem), "ListKeys",
                             pb.ListKeysRequest, pb.ListKeysResponse), pb.ListKeysRequest())
        check(c == grpc.StatusCode.UNAVAILABLE, "grpcio: %s: the call fails (%s)" % (desc, c), d)
    ok, why = tls_probe(port, pay, alpn=None)
    check(not ok, "TLS without ALPN h2: refused", why)
    ok, why = tls_probe(port, pay, alpn=("http/1.1",))
    check(not ok, "TLS offering only http/1.1: refused", why)
    ok, why = tls_probe(port, pay, minv=ssl.TLSVersion.TLSv1_1, maxv=ssl.TLSVersion.TLSv1_1,
                        ciphers="DEFAULT:@SECLEVEL=0")
    check(not ok, "TLS 1.1 alone: refused", why)
    ok, why = tls_probe(port, pay, maxv=ssl.TLSVersion.TLSv1_2,
                        ciphers="ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA")
    check(not ok, "TLS 1.2 with only non-AEAD suites: refused", why)
    ok, why = tls_probe(port, pay, maxv=ssl.TLSVersion.TLSv1_2,
                        ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")
    check(ok, "TLS 1.2 with ECDHE-ECDSA-AES128-GCM-SHA256: accepted", why)

    # --- a reconnecting client that offers its session: its identity survives resumption ---
    def reconnect(version):
        """Two connections of one client, the second offering the first's session; returns
        (the second was accepted, it resumed, why)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        ctx.minimum_version = ctx.maximum_version = version
        ctx.set_alpn_protocols(["h2"])
        ctx.load_cert_chain(pay["cert"], pay["key"])
        preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"
        sess = None
        for _ in range(2):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as s, \
                        ctx.wrap_socket(s, server_hostname="nsign-enclave", session=sess) as t:
                    t.sendall(preface)
                    t.settimeout(5)
                    if not t.recv(9):  # the server's SETTINGS (TLS 1.3: after any ticket)
                        return False, False, "closed"
                    sess, reused = t.session, t.session_reused
            except (ssl.SSLError, OSError) as e:
                return False, False, str(e)
        return True, reused, ""

    ok, reused, why = reconnect(ssl.TLSVersion.TLSv1_2)
    check(ok and reused, "TLS 1.2: a known client resumes its session (ticket) and is accepted",
          (ok, reused, why))
    ok, reused, why = reconnect(ssl.TLSVersion.TLSv1_3)
    check(ok, "TLS 1.3: a known client's second connection is accepted (no 1.3 tickets with "
          "client authentication: a 1.3 ticket would not carry its certificate)", (reused, why))
    text = open(log).read()
    check(text.count("tls handshake") >= 3 and "ALPN h2" in text,
          "the server logs why handshakes were refused", text[-800:])
    fails = tls_failures()
    check(fails is not None and fails >= 4,
          "metrics: nsign_tls_handshake_failures_total counts the refused handshakes", fails)
    c, d = code_of(unary(grpc.insecure_channel("127.0.0.1:%d" % port), "ListKeys",
                         pb.ListKeysRequest, pb.ListKeysResponse), pb.ListKeysRequest())
    check(c == grpc.StatusCode.UNAVAILABLE, "a cleartext (h2c) client on the TLS port fails", d)
    check(srv.poll() is None, "the server is still up after the refused clients")

    # --- nsign sign: verify, then sign ---
    meas = write("measurements.json", json.dumps({"Measurements": {
        "HashAlgorithm": "Sha384 { ... }", "PCR0": "00" * 48, "PCR1": "00" * 48,
        "PCR2": "00" * 48}}).encode())
    msgf = write("msg.bin", msg)
    # sign-service alone does not measure: its documents carry no PCR16, so --no-pcr16 here
    # (PCR16 pinned for real in test_measured_boot.sh).
    nopin = [NSIGN, "sign", "--addr", "tcp:127.0.0.1:%d" % port, "--cert", pay["cert"],
             "--client-key", pay["key"], "--expect", meas, "--root",
             os.path.join(ca_dir, "root.pem")]
    base = nopin + ["--no-pcr16"]

    def sign_payments(argv):
        """Runs nsign sign for key payments; (result, True when it signed and verifies)."""
        r = subprocess.run(argv + ["--key", "payments", "--message-file", msgf],
                           capture_output=True, text=True, timeout=60)
        try:
            ed.public_key().verify(bytes.fromhex(r.stdout.strip()), msg)
            return r, r.returncode == 0
        except Exception:
            return r, False

    r, ok = sign_payments(base)
    check(ok and "instead of the AWS" in r.stderr and "--no-pcr16: PCR16 is not checked" in r.stderr,
          "nsign sign: attests, then signs (hex), --root and --no-pcr16 warned",
          r.stderr + r.stdout)
    before = open(log).read().count("sign key=")

    def sign_usage(args, needle, what):
        r = subprocess.run(nopin + args + ["--key", "payments", "--message-file", msgf],
                           capture_output=True, text=True, timeout=60)
        check(r.returncode == 2 and needle in r.stderr and r.stdout == "", what, r.stderr)

    sign_usage([], "PCR16 is not pinned",
               "nsign sign: PCR16 neither pinned nor waived: usage error, nothing sent")
    sign_usage(["--pcr", "16=" + "aa" * 48, "--no-pcr16"], "--no-pcr16 with PCR16 pinned",
               "nsign sign: --pcr 16 and --no-pcr16 together: usage error")
    sign_usage(["--no-pcr16", "--pcr", "0=" + "11" * 48], "PCR0 is expected twice",
               "nsign sign: --pcr 0 differing from --expect's PCR0: usage error")
    sign_usage(["--no-pcr16", "--pcr", "16"], "expected N=HEX",
               "nsign sign: --pcr without =HEX: usage error")
    r = subprocess.run([a for a in base if a not in ("--expect", meas)] +
                       ["--key", "payments", "--message-file", msgf],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 2 and "PCR0 is not pinned" in r.stderr,
          "nsign sign: neither --expect nor --pcr 0: usage error", r.stderr)
    r = subprocess.run(nopin + ["--pcr", "16=" + "aa" * 48, "--pcr", "0=" + "00" * 48,
                                "--key", "payments", "--message-file", msgf],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 1 and "check pcr16 failed" in r.stderr and r.stdout == "",
          "nsign sign --pcr 16=HEX: a document without that PCR16 is refused (--pcr 0 equal "
          "to --expect's is fine)", r.stderr)
    check(open(log).read().count("sign key=") == before,
          "nothing was sent to sign without a pinned (or waived) PCR16")

    # --- the keys file behind the enclave: user_data, epoch, policy commitment ---
    cm = subprocess.run([NSIGN, "sign-service", "--keys", keys_v2, "--commitments"],
                        capture_output=True, text=True, timeout=20)
    cj = json.loads(cm.stdout) if cm.returncode == 0 else {}
    check(cj.get("policy_epoch") == 3 and cj.get("client_auth_required") is True
          and len(cj.get("policy_commitment", "")) == 64 and "private" not in cm.stdout,
          "sign-service --commitments: the policy commitment, epoch 3, client auth",
          cm.stdout + cm.stderr)
    r = subprocess.run(base + ["--min-policy-epoch", "3", "--policy-commitment",
                               cj.get("policy_commitment", "00" * 32), "--key", "payments",
                               "--message-file", msgf], capture_output=True, text=True,
                       timeout=60)
    check(r.returncode == 0 and "policy_epoch=3" in r.stderr,
          "nsign sign --min-policy-epoch 3 --policy-commitment (published): signs", r.stderr)
    before = open(log).read().count("sign key=")
    r = subprocess.run(base + ["--min-policy-epoch", "4", "--key", "payments",
                               "--message-file", msgf], capture_output=True, text=True,
                       timeout=60)
    check(r.returncode == 1 and "policy_epoch 3 is below 4" in r.stderr and r.stdout == "",
          "nsign sign --min-policy-epoch 4 on an epoch-3 keys file: refused", r.stderr)
    r = subprocess.run(base + ["--policy-commitment", "ab" * 32, "--key", "payments",
                               "--message-file", msgf], capture_output=True, text=True,
                       timeout=60)
    check(r.returncode == 1 and "policy_commitment differs" in r.stderr,
          "nsign sign --policy-commitment of another policy: refused", r.stderr)
    check(open(log).read().count("sign key=") == before,
          "nothing was sent to sign to an enclave with an older or other policy")

    # Behind a load balancer (issue 23): the first connection reaches a replica that is gone
    # (accepted and closed before any TLS byte); --retries opens a new connection, attests the
    # replica it reaches, and signs once. --retries 0 gives up; two --expect accept either set.
    drop = socket.socket()
    drop.bind(("127.0.0.1", 0))
    drop.listen(8)
    dropped = []

    def drop_first():
        while True:
            try:
                cl, _ = drop.accept()
            except OSError:
                return
            if not dropped:
                dropped.append(1)
                cl.close()
                continue
            up = socket.create_connection(("127.0.0.1", port))
            for a, b in ((cl, up), (up, cl)):
                threading.Thread(target=pipe, args=(a, b), daemon=True).start()

    def pipe(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    threading.Thread(target=drop_first, daemon=True).start()
    via = [a if a != "tcp:127.0.0.1:%d" % port else "tcp:127.0.0.1:%d" % drop.getsockname()[1]
           for a in base]
    before_r = open(log).read().count("sign key=")
    r, ok = sign_payments(via)
    check(ok and dropped and "retrying on a new connection" in r.stderr and
          open(log).read().count("sign key=") == before_r + 1,
          "nsign sign: a connection closed before TLS is retried on a new one, signed once",
          r.stderr)
    dropped.clear()
    r = subprocess.run(via + ["--retries", "0", "--key", "payments", "--message-file", msgf],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 1 and "retrying" not in r.stderr, "nsign sign --retries 0: no retry",
          r.stderr)
    drop.close()
    other = write("other.json", json.dumps({"Measurements": {"PCR0": "11" * 48}}).encode())
    r = subprocess.run([a if a != meas else other for a in base] +
                       ["--expect", meas, "--key", "payments", "--message-file", msgf],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "nsign sign --expect new --expect old (a rolling upgrade): the old image passes",
          r.stderr)
    r = subprocess.run(base + ["--key", "api", "--message-file", msgf, "--format", "json"],
                       capture_output=True, text=True, timeout=60)
    ok = r.returncode == 0
    if ok:
        j = json.loads(r.stdout)
        try:
            p256.public_key().verify(bytes.fromhex(j["signature_der"]), msg,
                                     ec.ECDSA(hashes.SHA256()))
        except Exception:
            ok = False
    check(ok, "nsign sign --format json: ECDSA P-256 verifies", r.stderr + r.stdout)
    before = open(log).read().count("sign key=")
    wrong = write("wrong.json", json.dumps({"Measurements": {"PCR0": "11" * 48}}).encode())
    r = subprocess.run([a if a != meas else wrong for a in base] +
                       ["--key", "payments", "--message-file", msgf],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 1 and "check pcr0 failed" in r.stderr and r.stdout == "",
          "nsign sign: wrong measurements: refused", r.stderr)
    r = subprocess.run([a for a in base if a not in ("--root", os.path.join(ca_dir, "root.pem"))]
                       + ["--key", "payments", "--message-file", msgf],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 1 and "check chain failed" in r.stderr,
          "nsign sign: a document not from AWS hardware: refused", r.stderr)
    check(open(log).read().count("sign key=") == before,
          "nothing was sent to sign after a failed verification")

    r = subprocess.run(base + ["--user-data", "00" * 32, "--key", "payments",
                               "--message-file", msgf], capture_output=True, text=True, timeout=60)
    check(r.returncode == 1 and "check user_data failed" in r.stderr
          and open(log).read().count("sign key=") == before,
          "nsign sign: an unexpected key set (user_data) is refused before any Sign", r.stderr)

    # --- the README's Python example, run as written ---
    readme = open(os.path.join(ROOT, "README.md")).read()
    i = readme.find("<!-- attest-then-sign.py -->")
    code = readme[readme.find("```python\n", i) + 10:readme.find("```\n", i + 40)] if i >= 0 else ""
    ex = os.path.join(TMP, "example")
    os.makedirs(ex)
    shutil.copy(pay["cert"], os.path.join(ex, "client.pem"))
    shutil.copy(pay["key"], os.path.join(ex, "client.key"))
    shutil.copy(meas, os.path.join(ex, "measurements.json"))
    shutil.copy(os.path.join(TMP, "nsign_pb2.py"), ex)
    with open(os.path.join(ex, "example.py"), "w") as f:
        f.write(code)
    env = dict(os.environ, NSIGN_PORT=str(port), NSIGN_ROOT=os.path.join(ca_dir, "root.pem"),
               PATH=os.path.dirname(NSIGN) + "/bin:" + os.environ["PATH"])
    r = subprocess.run([sys.executable, "example.py"], cwd=ex, env=env, capture_output=True,
                       text=True, timeout=60)
    ok = r.returncode == 0 and "attest-verify" in code
    if ok:
        try:
            ed.public_key().verify(bytes.fromhex(r.stdout.strip()), b"transfer 10 to bob")
        except Exception:
            ok = False
    check(ok, "the README's Python example attests, then signs; the signature verifies",
          r.stderr[-800:])

    # --- a broken v2 policy, and a version-1 file ---
    bad = dict(KEYS, keys=[dict(KEYS["keys"][0], allow=["nobody"])])
    r = subprocess.run([NSIGN, "sign-service", "--keys", write("bad.json", json.dumps(bad).encode()),
                        "--listen", "tcp:127.0.0.1:%d" % free_port()],
                       capture_output=True, text=True, timeout=20)
    check(r.returncode == 1 and "allow[0] names \"nobody\"" in r.stderr,
          "a v2 file with a broken policy is refused, naming the entry", r.stderr)
    srv1, port1, log1 = start(keys_v1)
    ok, der1 = tls_probe(port1)
    c, r = code_of(unary(channel(port1, None, x509.load_der_x509_certificate(der1).public_bytes(
        PEM)) if ok else grpc.insecure_channel("127.0.0.1:1"), "Sign", pb.SignRequest,
        pb.SignResponse), pb.SignRequest(key_id="payments", message=msg))
    check(ok and c == grpc.StatusCode.OK,
          "version-1 file: TLS without a client certificate signs", (ok, c))
    check("without client authentication" in open(log1).read(),
          "version-1 file: the server warns that anyone reaching it can sign")
    v1sign = [NSIGN, "sign", "--addr", "tcp:127.0.0.1:%d" % port1, "--cert", pay["cert"],
              "--client-key", pay["key"], "--expect", meas, "--no-pcr16", "--root",
              os.path.join(ca_dir, "root.pem"), "--key", "payments", "--message-file", msgf]
    n1 = open(log1).read().count("sign key=")
    r = subprocess.run(v1sign, capture_output=True, text=True, timeout=60)
    check(r.returncode == 1 and "without client pinning" in r.stderr
          and open(log1).read().count("sign key=") == n1,
          "nsign sign: a service that does not pin clients (a rolled-back version-1 file) is "
          "refused before any Sign", r.stderr)
    r = subprocess.run(v1sign + ["--allow-anonymous-service"], capture_output=True, text=True,
                       timeout=60)
    check(r.returncode == 0, "nsign sign --allow-anonymous-service: signs on it", r.stderr)

    # --- a swapped server: a man in the middle ends the client's TLS with its own key and
    # relays the calls to the real service, so Attest returns the real document and
    # certificate; the session the client signs on is not the attested one: refused. ---
    import select
    import threading
    mkey = ec.generate_private_key(ec.SECP256R1())
    mitm = client_cert("nsign-enclave", mkey)
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(mitm["cert"], mitm["key"])
    sctx.set_alpn_protocols(["h2"])
    uctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    uctx.check_hostname = False
    uctx.verify_mode = ssl.CERT_NONE
    uctx.set_alpn_protocols(["h2"])
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    relayed = []

    def relay(cl, up):
        # One thread per relayed connection: an SSL socket must not be read and written from
        # two threads at once (OpenSSL's SSL objects are not thread-safe).
        try:
            while True:
                ready = [x for x in (cl, up) if x.pending()]
                if not ready:
                    ready = select.select([cl, up], [], [], 30)[0]
                    if not ready:
                        break
                for x in ready:
                    d = x.recv(65536)
                    if not d:
                        raise OSError("closed")
                    relayed.append(("up" if x is cl else "down", len(d)))
                    (up if x is cl else cl).sendall(d)
        except OSError:
            pass
        for x in (cl, up):
            try:
                x.close()
            except OSError:
                pass

    def mitm_loop():
        while True:
            try:
                raw, _ = lsock.accept()
                cl = sctx.wrap_socket(raw, server_side=True)
                up = uctx.wrap_socket(socket.create_connection(("127.0.0.1", port1)),
                                      server_hostname="nsign-enclave")
            except OSError:
                return
            threading.Thread(target=relay, args=(cl, up), daemon=True).start()

    threading.Thread(target=mitm_loop, daemon=True).start()
    before1 = open(log1).read().count("sign key=")
    r = subprocess.run([NSIGN, "sign", "--addr", "tcp:127.0.0.1:%d" % lsock.getsockname()[1],
                        "--cert", pay["cert"], "--client-key", pay["key"], "--expect", meas,
                        "--no-pcr16", "--allow-anonymous-service",
                        "--root", os.path.join(ca_dir, "root.pem"), "--key", "payments",
                        "--message-file", msgf], capture_output=True, text=True, timeout=60)
    check(r.returncode == 1 and "not the one that ended this TLS session" in r.stderr
          and any(t == "down" for t, _ in relayed)
          and open(log1).read().count("sign key=") == before1,
          "swapped server (a relay with its own TLS key): Attest got through, Sign never sent",
          r.stderr)
    lsock.close()

    # --- --pseudonymous-clients: no client id in what the host receives (issue 22 item 10) ---
    import re
    import urllib.request
    trail = os.path.join(TMP, "pseudo-audit.jsonl")
    mport2 = free_port()
    srv2, port2, log2 = start(keys_v2, ["--pseudonymous-clients", "--audit-out", trail,
                                        "--metrics", "tcp:127.0.0.1:%d" % mport2])
    ok2, der2 = tls_probe(port2, pay)
    pem2 = x509.load_der_x509_certificate(der2).public_bytes(PEM) if ok2 else b""
    codes = []
    for cert in (pay, pay, ops):  # two connections of one client, then another client
        ch2 = channel(port2, cert, pem2)
        c, _ = code_of(unary(ch2, "Sign", pb.SignRequest, pb.SignResponse),
                       pb.SignRequest(key_id="payments", message=b"pseudonymous"))
        codes.append(c)
        ch2.close()
    mbody = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport2, timeout=10).read()
    srv2.terminate()
    srv2.wait(timeout=30)
    logtext, audtext, mtext = open(log2).read(), open(trail).read(), mbody.decode()
    check(codes == [grpc.StatusCode.OK] * 3, "pseudonymous: both clients still sign", codes)
    names = re.findall(r"sign key=payments digest=\S+ client=(\S+) ", logtext)
    check(len(names) == 3 and all(re.fullmatch(r"c-[0-9a-f]{12}", n) for n in names)
          and names[0] == names[1] != names[2],
          "pseudonymous: log lines name c-<12 hex>, one per client, stable across connections",
          names)
    entries = [json.loads(x) for x in audtext.splitlines() if '"type":"entry"' in x]
    check([e["client"] for e in entries] == names, "pseudonymous: the audit trail uses them too",
          entries)
    check(all('client="%s"' % n in mtext for n in set(names)),
          "pseudonymous: and the metrics' client label")
    leaked = [w for w in ("payments-api", "client=ops", '"ops"', "ops\"")
              if w in logtext or w in audtext or w in mtext]
    check(not leaked, "pseudonymous: no client id in the log, the audit trail or the metrics",
          leaked)
    v = subprocess.run([NSIGN, "audit-verify", trail, "--no-attestation"], capture_output=True,
                       text=True, timeout=60)
    check(v.returncode == 0, "pseudonymous: the trail still verifies", v.stderr)
finally:
    kill_all(procs)
    shutil.rmtree(TMP, ignore_errors=True)

done()
