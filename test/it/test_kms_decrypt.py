"""test_kms_decrypt: nsign kms-decrypt against the local KMS fake and the software NSM.

The fake checks SigV4 with botocore, the JSON protocol, the attestation document (signature and
chain to the software NSM's test root) and answers CiphertextForRecipient made by `openssl cms`.
Ciphertexts are made with botocore's own KMS client (Encrypt) against the same fake. Covers:
attested decrypt over HTTPS (AWS_ENDPOINT_URL_KMS + AWS_CA_BUNDLE), the default endpoint
kms.us-east-1.amazonaws.com reached through --proxy, pass-through of encryption context, KeyId
and grant tokens, --no-attest, -o FILE (0600), and each KMS error the user can act on.
"""
import base64
import datetime
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

from tap import NSIGN, check, done, skip
from testca import write_tls

HERE = os.path.dirname(os.path.abspath(__file__))
PY = os.environ.get("PY", "/usr/bin/python3")
try:
    import botocore.session
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
except ImportError as e:
    skip("kms-decrypt tests", "python3-botocore/cryptography missing: %s" % e)
    done()

AKID, SECRET, TOKEN = "AKIDNSIGNTEST0000001", "nsign/test/secret+key/0123456789abcdefghij", \
    "FwoGZXIvYXdzEnsign-test-session-token//+=="
tmp = tempfile.mkdtemp(prefix="nsign-kms-")
KEYSEED = os.urandom(16).hex()
procs = []


def cleanup():
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
    shutil.rmtree(tmp, ignore_errors=True)


def wait_file(path, proc, secs=30):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if os.path.exists(path):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def tls_material():
    return write_tls(tmp, "localhost", ["localhost", "kms.us-east-1.amazonaws.com"],
                     ca_cn="nsign test kms ca")


def start_nsm(name, *extra):
    sock = os.path.join(tmp, name + ".sock")
    p = subprocess.Popen([PY, os.path.join(HERE, "fakes", "nsm_fake.py"), "--socket", sock,
                          "--ca-dir", os.path.join(tmp, "nsmca-" + name),
                          "--log", os.path.join(tmp, name + ".json")] + list(extra))
    procs.append(p)
    if not wait_file(sock, p):
        return None
    return "unix:" + sock


def start_kms(name, tls, *extra):
    pf = os.path.join(tmp, name + ".port")
    log = os.path.join(tmp, name + ".log")
    env = dict(os.environ, KMS_FAKE_AKID=AKID, KMS_FAKE_SECRET=SECRET, KMS_FAKE_TOKEN=TOKEN,
               KMS_FAKE_KEYSEED=KEYSEED)
    p = subprocess.Popen([PY, os.path.join(HERE, "fakes", "kms_fake.py"), "--port-file", pf,
                          "--tls-cert", tls["cert.pem"], "--tls-key", tls["key.pem"],
                          "--nsm-root", os.path.join(tmp, "nsmca-nsm", "root.pem"),
                          "--log", log, "--host", "localhost", "--host",
                          "kms.us-east-1.amazonaws.com"] + list(extra), env=env)
    procs.append(p)
    if not wait_file(pf, p):
        return None, None
    with open(pf) as f:
        return int(f.read()), log


def log_lines(log):
    try:
        with open(log) as f:
            return [json.loads(line) for line in f]
    except FileNotFoundError:
        return []


def encrypt(port, tls, plaintext, key_id, ctx=None):
    s = botocore.session.get_session()
    c = s.create_client("kms", region_name="us-east-1", endpoint_url="https://localhost:%d" % port,
                        verify=tls["ca.pem"], aws_access_key_id=AKID, aws_secret_access_key=SECRET,
                        aws_session_token=TOKEN)
    kw = {"KeyId": key_id, "Plaintext": plaintext}
    if ctx:
        kw["EncryptionContext"] = ctx
    return c.encrypt(**kw)["CiphertextBlob"]


def run(args, env_extra, stdin=None, prefix=()):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AWS_ACCESS_KEY_ID": AKID,
           "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": TOKEN, "AWS_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true"}
    env.update(env_extra)
    return subprocess.run(list(prefix) + [NSIGN, "kms-decrypt"] + args, input=stdin,
                          capture_output=True, env=env, timeout=120)


def main():
    tls = tls_material()
    nsm = start_nsm("nsm")
    if not check(nsm is not None, "software NSM started"):
        return
    port, log = start_kms("kms", tls)
    if not check(port is not None, "KMS fake started"):
        return
    endpoint = "https://localhost:%d" % port
    base_env = {"NSM_DEVICE": nsm, "AWS_ENDPOINT_URL_KMS": endpoint, "AWS_CA_BUNDLE": tls["ca.pem"]}
    secret = os.urandom(32) + b"\x00 binary \xff"
    ctx = {"purpose": "nsign-test", "tenant": "a=b \"quoted\" \u00e9"}
    blob = encrypt(port, tls, secret, "alias/nsign-test", ctx)
    ctfile = os.path.join(tmp, "ct.bin")
    with open(ctfile, "wb") as f:
        f.write(blob)
    ctx_args = ["--encryption-context", "purpose=nsign-test",
                "--encryption-context", "tenant=a=b \"quoted\" \u00e9"]

    # 1. attested decrypt, ciphertext on stdin, plaintext on stdout
    r = run(ctx_args + ["--key-id", "alias/nsign-test", "--grant-token", "g1",
                        "--grant-token", "g2"], base_env, stdin=blob)
    check(r.returncode == 0 and r.stdout == secret, "attested decrypt returns the plaintext",
          r.stderr.decode(errors="replace"))
    recs = [x for x in log_lines(log) if x.get("target") == "TrentService.Decrypt"]
    last = recs[-1] if recs else {}
    check(last.get("recipient") is True and last.get("status") == 200,
          "KMS saw a Recipient with a verified attestation document", last)
    check(last.get("context") == ctx and last.get("key_id") == "alias/nsign-test" and
          last.get("grants") == ["g1", "g2"], "context, KeyId and grant tokens passed through",
          last)
    check(SECRET.encode() not in r.stderr and TOKEN.encode() not in r.stderr,
          "no credential in the log output")

    # 1b. grant tokens kept out of argv: --grant-token-file and KMS_GRANT_TOKENS add up
    gfile = os.path.join(tmp, "grants.txt")
    with open(gfile, "w") as f:
        f.write("gf1\n\ngf2,gf3\n")
    r = run(ctx_args + ["--grant-token", "g1", "--grant-token-file", gfile], dict(
        base_env, KMS_GRANT_TOKENS="ge1,ge2"), stdin=blob)
    recs = [x for x in log_lines(log) if x.get("target") == "TrentService.Decrypt"]
    last = recs[-1] if recs else {}
    check(r.returncode == 0 and r.stdout == secret and
          last.get("grants") == ["g1", "gf1", "gf2", "gf3", "ge1", "ge2"],
          "grant tokens from argv, --grant-token-file and KMS_GRANT_TOKENS, in that order",
          "%s %s" % (last.get("grants"), r.stderr.decode(errors="replace")))
    r = run(ctx_args + ["--grant-token-file", gfile], dict(
        base_env, KMS_GRANT_TOKENS=",".join("t%d" % i for i in range(8))), stdin=blob)
    check(r.returncode == 1 and b"more than 10 grant tokens" in r.stderr,
          "more than 10 grant tokens over all sources refused", r.stderr)
    h = subprocess.run([NSIGN, "kms-decrypt", "--help"], capture_output=True, text=True)
    check("--grant-token-file" in h.stdout and "KMS_GRANT_TOKENS" in h.stdout and
          "/proc/PID/cmdline" in h.stdout, "--help says argv is visible and names the other "
          "sources", h.stdout)

    # 2. the default endpoint (kms.us-east-1.amazonaws.com) through --proxy; -o FILE; base64 input
    b64file = os.path.join(tmp, "ct.b64")
    with open(b64file, "w") as f:
        f.write(base64.b64encode(blob).decode() + "\n")
    outp = os.path.join(tmp, "out.bin")
    env = {"NSM_DEVICE": nsm, "AWS_CA_BUNDLE": tls["ca.pem"]}
    r = run(ctx_args + ["--proxy", "tcp:127.0.0.1:%d" % port, "--base64", "-o", outp, b64file],
            env)
    ok = r.returncode == 0 and os.path.exists(outp)
    check(ok and open(outp, "rb").read() == secret,
          "TLS to kms.us-east-1.amazonaws.com end to end through --proxy, -o FILE",
          r.stderr.decode(errors="replace"))
    check(ok and stat.S_IMODE(os.stat(outp).st_mode) == 0o600, "-o FILE is 0600")

    # 2b. plain http:// (issue 15): never with --no-attest (the Plaintext would travel in
    # cleartext), and otherwise only to loopback; a namespace with lo only keeps an unfixed
    # binary from reaching anything
    r = run(ctx_args + ["--no-attest", "--endpoint", "http://127.0.0.1:%d" % port, ctfile],
            base_env)
    check(r.returncode == 1 and b"plain http:// with --no-attest refused" in r.stderr,
          "http:// endpoint with --no-attest refused", r.stderr)
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0:
        r = run(["--endpoint", "http://192.0.2.1:80", ctfile], base_env,
                prefix=["unshare", "-n"])
        check(r.returncode == 1 and b"plain http:// to 192.0.2.1 refused" in r.stderr,
              "attested, http:// to a non-loopback endpoint refused", r.stderr)
    else:
        skip("attested, http:// to a non-loopback endpoint refused", "no network namespace")

    # 3. --no-attest uses Plaintext
    r = run(ctx_args + ["--no-attest", ctfile], base_env)
    last = log_lines(log)[-1]
    check(r.returncode == 0 and r.stdout == secret and last.get("recipient") is False,
          "--no-attest decrypts via Plaintext", r.stderr.decode(errors="replace"))

    # 4. errors the user can act on
    r = run(["--encryption-context", "purpose=other", ctfile], base_env)
    check(r.returncode == 1 and b"InvalidCiphertextException" in r.stderr and
          b"encryption-context" in r.stderr and r.stdout == b"",
          "wrong encryption context -> InvalidCiphertextException message", r.stderr)
    r = run(ctx_args + ["--key-id", "alias/other", ctfile], base_env)
    check(r.returncode == 1 and b"IncorrectKeyException" in r.stderr and b"--key-id" in r.stderr,
          "wrong --key-id -> IncorrectKeyException message", r.stderr)
    r = run(ctx_args + [ctfile], dict(base_env, AWS_SECRET_ACCESS_KEY="wrong" + SECRET))
    check(r.returncode == 1 and b"InvalidSignatureException" in r.stderr,
          "wrong secret key -> signature rejected by botocore's check", r.stderr)
    r = run(ctx_args + [ctfile], dict(base_env, AWS_CA_BUNDLE="/etc/ssl/certs/ca-certificates.crt"
                                      if os.path.exists("/etc/ssl/certs/ca-certificates.crt")
                                      else tls["cert.pem"]))
    check(r.returncode == 1 and r.stdout == b"", "untrusted server certificate refused", r.stderr)

    nsm_err = start_nsm("nsmerr", "--error", "InternalError")
    r = run(ctx_args + [ctfile], dict(base_env, NSM_DEVICE=nsm_err))
    check(r.returncode == 1 and b"InternalError" in r.stderr and b"attestation" in r.stderr,
          "NSM failure is reported as an attestation failure", r.stderr)

    nsm_swap = start_nsm("nsmswap", "--swap-public-key")
    before = len(log_lines(log))
    r = run(ctx_args + [ctfile], dict(base_env, NSM_DEVICE=nsm_swap))
    check(r.returncode == 1 and b"ephemeral public key" in r.stderr and
          len(log_lines(log)) == before,
          "a document binding another key is refused before anything is sent to KMS", r.stderr)

    # 5. a key policy on PCR0 (the software NSM reports zeros) -> AccessDenied
    port2, log2 = start_kms("kms-pcr", tls, "--require-pcr0", "11" * 48)
    r = run(ctx_args + [ctfile], dict(base_env, AWS_ENDPOINT_URL_KMS="https://localhost:%d" %
                                      port2))
    check(r.returncode == 1 and b"AccessDeniedException" in r.stderr and b"PCR" in r.stderr,
          "PCR0 policy mismatch -> AccessDenied with a hint about measurements", r.stderr)
    sent = log_lines(log2)[-1].get("pcr0", "")
    line = [ln for ln in r.stderr.splitlines() if b"AccessDeniedException" in ln]
    check(sent != "" and ("the attestation document sent: PCR0=%s PCR1=" % sent).encode()
          in r.stderr and b" PCR2=" in r.stderr and len(line) == 1 and len(line[0]) < 1024 and
          line[0].endswith(b"PCR2=" + b"00" * 48),
          "AccessDenied names the PCRs the attestation document sent (PCR0 as KMS saw it), "
          "whole, within one log line", r.stderr)
    port3, log3 = start_kms("kms-att", tls, "--require-attestation")
    r = run(ctx_args + ["--no-attest", ctfile],
            dict(base_env, AWS_ENDPOINT_URL_KMS="https://localhost:%d" % port3))
    check(r.returncode == 1 and b"AccessDeniedException" in r.stderr,
          "policy requiring attestation denies --no-attest", r.stderr)

    # 6. throttling: retried, then given up with a clear message
    port4, log4 = start_kms("kms-thr", tls, "--throttle", "2")
    blob4 = encrypt(port4, tls, secret, "alias/nsign-test", ctx)
    with open(ctfile + "4", "wb") as f:
        f.write(blob4)
    r = run(ctx_args + [ctfile + "4"],
            dict(base_env, AWS_ENDPOINT_URL_KMS="https://localhost:%d" % port4))
    dec = [x for x in log_lines(log4) if x.get("target") == "TrentService.Decrypt"]
    check(r.returncode == 0 and r.stdout == secret and
          [x.get("error") for x in dec] == ["ThrottlingException", "ThrottlingException", None],
          "two ThrottlingExceptions are retried", r.stderr.decode(errors="replace"))
    port5, log5 = start_kms("kms-thr2", tls, "--throttle", "1000")
    blob5 = encrypt(port5, tls, secret, "alias/nsign-test", ctx)
    with open(ctfile + "5", "wb") as f:
        f.write(blob5)
    r = run(ctx_args + [ctfile + "5"], dict(base_env, AWS_MAX_ATTEMPTS="3",
                                           AWS_ENDPOINT_URL_KMS="https://localhost:%d" % port5))
    dec = [x for x in log_lines(log5) if x.get("target") == "TrentService.Decrypt"]
    check(r.returncode == 1 and b"ThrottlingException" in r.stderr and len(dec) == 3,
          "persistent throttling gives up after AWS_MAX_ATTEMPTS", r.stderr)

    # 7. the NSM saw a fresh RSA-2048 public key each time (ephemeral)
    with open(os.path.join(tmp, "nsm.json")) as f:
        keys = [x["public_key"] for x in json.load(f) if x["kind"] == "Attestation"]
    check(len(keys) >= 2 and all(len(k) == 2 * 294 and k.startswith("30820122") for k in keys),
          "attestation requests carry a 294-byte RSA-2048 SubjectPublicKeyInfo")
    check(len(set(keys)) == len(keys), "a new key for every run")

    # 8. credentials from --creds FILE (the seed's JSON document); expired ones refused
    cj = os.path.join(tmp, "creds.json")
    exp = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1))
    with open(cj, "w") as f:
        json.dump({"AccessKeyId": AKID, "SecretAccessKey": SECRET, "Token": TOKEN,
                   "Expiration": exp.strftime("%Y-%m-%dT%H:%M:%SZ")}, f)
    env = dict(base_env, AWS_ACCESS_KEY_ID="", AWS_SECRET_ACCESS_KEY="", AWS_SESSION_TOKEN="")
    r = run(ctx_args + ["--creds", cj, ctfile], env)
    check(r.returncode == 0 and r.stdout == secret, "--creds FILE", r.stderr)
    with open(cj, "w") as f:
        json.dump({"AccessKeyId": AKID, "SecretAccessKey": SECRET, "Token": TOKEN,
                   "Expiration": "2020-01-01T00:00:00Z"}, f)
    r = run(ctx_args + ["--creds", cj, ctfile], env)
    check(r.returncode == 1 and b"expired" in r.stderr.lower() and r.stdout == b"",
          "expired --creds refused", r.stderr)

    # 9. QEMU's emulated NSM (the local Nitro): unsigned documents; only an explicit emulator mode
    # of the fake accepts them, and says so; signed documents are still verified there.
    nsm_q = start_nsm("nsmqemu", "--qemu-unsigned")
    r = run(ctx_args + [ctfile], dict(base_env, NSM_DEVICE=nsm_q,
                                      AWS_ENDPOINT_URL_KMS="https://localhost:%d" % port3))
    check(r.returncode == 1 and b"ValidationException" in r.stderr and r.stdout == b"",
          "an unsigned (QEMU-shaped) document is refused by a normal KMS", r.stderr)
    port6, log6 = start_kms("kms-emu", tls, "--require-attestation",
                            "--accept-emulator-attestation")
    emu_env = dict(base_env, NSM_DEVICE=nsm_q, AWS_ENDPOINT_URL_KMS="https://localhost:%d" % port6)
    r = run(ctx_args + [ctfile], emu_env)
    dec = [x for x in log_lines(log6) if x.get("target") == "TrentService.Decrypt"]
    check(r.returncode == 0 and r.stdout == secret and dec and
          dec[-1].get("unsigned_emulator_document") is True,
          "the KMS fake's explicit emulator mode accepts it and logs it as unsigned",
          r.stderr.decode(errors="replace"))
    r = run(ctx_args + [ctfile], dict(emu_env, NSM_DEVICE=nsm))
    dec = [x for x in log_lines(log6) if x.get("target") == "TrentService.Decrypt"]
    check(r.returncode == 0 and dec and dec[-1].get("unsigned_emulator_document") is False,
          "in emulator mode a signed document is still verified as signed", r.stderr)

    # 10. usage
    r = run(["--encryption-context", "novalue", ctfile], base_env)
    check(r.returncode == 2, "malformed --encryption-context is a usage error")
    r = run(["--creds", "-"], base_env, stdin=b"")
    check(r.returncode == 2, "--creds - with ciphertext on stdin is a usage error")
    r = run(["--help"], {})
    check(r.returncode == 0 and b"--encryption-context" in r.stdout, "--help")


try:
    main()
finally:
    cleanup()
done()
