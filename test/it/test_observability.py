"""sign-service observability against real peers: Prometheus metrics scraped by Debian's
prometheus server and checked with promtool; hostile HTTP clients on the metrics port; log lines
shipped through logship while the host reader stalls (signing continues; the drop count is
reported when reading resumes; a start that fails before log shipping runs still ships its
error); the audit trail verified by `nsign audit-verify` against an Attest
document from the software NSM, and by an independent Python implementation of README's
definitions; drop, edit, reorder, append and a replaced audit key are each detected; no secret
in any log, trail or metric."""
import base64
import datetime
import http.client
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import grpc
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tap import NSIGN, check, done, free_port, kill_all, skip

ROOT = os.environ.get("NS_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
TMP = tempfile.mkdtemp(prefix="nsign-obs-")
procs = []

subprocess.run(["protoc", "-I" + os.path.join(ROOT, "proto"), "--python_out=" + TMP,
                "nsign.proto", "grpc_health.proto"], check=True)
sys.path.insert(0, TMP)
import grpc_health_pb2 as hpb  # noqa: E402
import nsign_pb2 as pb  # noqa: E402

# --- keys and every encoding of every secret ---
ed = ed25519.Ed25519PrivateKey.generate()
seed = ed.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                        serialization.NoEncryption())
p2 = ec.generate_private_key(ec.SECP256R1())
k1 = ec.generate_private_key(ec.SECP256K1())
p2_hex = "%064x" % p2.private_numbers().private_value
k1_hex = "%064x" % k1.private_numbers().private_value
KEYS = {"version": 1, "keys": [
    {"id": "payments", "algorithm": "ed25519", "private_key": base64.b64encode(seed).decode()},
    {"id": "api", "algorithm": "ecdsa-p256", "private_key": p2_hex},
    {"id": "eth-hot", "algorithm": "ecdsa-secp256k1", "private_key": k1_hex}]}
SECRETS = [base64.b64encode(seed).decode(), seed.hex(), p2_hex, p2_hex.upper(), k1_hex,
           k1_hex.upper(), bytes.fromhex(p2_hex).hex(), base64.b64encode(bytes.fromhex(k1_hex)).decode()]
keys_path = os.path.join(TMP, "keys.json")
with open(keys_path, "w") as f:
    json.dump(KEYS, f)
os.chmod(keys_path, 0o600)


def unary(ch, path, req_cls, resp_cls):
    return ch.unary_unary(path, request_serializer=req_cls.SerializeToString,
                          response_deserializer=resp_cls.FromString)


def http_get(port, path="/metrics", timeout=10, tolerate=False):
    try:
        return _http_get(port, path, timeout)
    except (OSError, http.client.HTTPException):
        if not tolerate:
            raise
        return None, {}, ""


def _http_get(port, path, timeout):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def raw_http(port, data, half_close=False, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    if half_close:
        s.shutdown(socket.SHUT_WR)
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except socket.timeout:
        out += b"<timeout>"
    s.close()
    return out


def metric_value(text, name, labels=None):
    total, found = 0.0, False
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        lab = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if labels and any(lab.get(k) != v for k, v in labels.items()):
            continue
        total += float(m.group(4))
        found = True
    return total if found else None


class LogReader:
    """The host side of --log-out: a unix listener that reads lines, and can stall."""

    def __init__(self, path):
        self.lines = []
        self.reading = threading.Event()
        self.reading.set()
        self.stop = threading.Event()
        self.ls = socket.socket(socket.AF_UNIX)
        self.ls.bind(path)
        self.ls.listen(2)
        self.ls.settimeout(0.2)
        self.th = threading.Thread(target=self.run, daemon=True)
        self.th.start()

    def run(self):
        buf = b""
        conn = None
        while not self.stop.is_set():
            if conn is None:
                try:
                    conn, _ = self.ls.accept()
                    conn.settimeout(0.2)
                except socket.timeout:
                    continue
            if not self.reading.is_set():
                time.sleep(0.05)
                continue
            try:
                d = conn.recv(65536)
            except socket.timeout:
                continue
            if not d:
                conn.close()
                conn = None
                continue
            buf += d
            *full, buf = buf.split(b"\n")
            self.lines.extend(x.decode("utf-8", "replace") for x in full)

    def text(self):
        return "\n".join(self.lines)


def start_service(args, env_extra=None, name="svc"):
    port = free_port()
    log = os.path.join(TMP, name + ".log")
    env = dict(os.environ)
    env.update(env_extra or {})
    p = subprocess.Popen([NSIGN, "sign-service", "--plaintext", "--keys", keys_path, "--listen",
                          "tcp:127.0.0.1:%d" % port, "--threads", "2"] + args,
                         stdout=subprocess.DEVNULL, stderr=open(log, "w"), env=env)
    procs.append(p)
    t0 = time.time()
    while time.time() - t0 < 15:
        if "serving addr=" in open(log).read():
            return p, port, log
        if p.poll() is not None:
            break
        time.sleep(0.05)
    raise SystemExit("not ok - sign-service did not start\n# " + open(log).read())


def main():
    # --- a software NSM so that Attest works ---
    nsm_sock = os.path.join(TMP, "nsm.sock")
    nsm = subprocess.Popen(["/usr/bin/python3", os.path.join(ROOT, "test/it/fakes/nsm_fake.py"),
                            "--socket", nsm_sock, "--ca-dir", TMP],
                           stdout=subprocess.DEVNULL, stderr=open(os.path.join(TMP, "nsm.log"), "w"))
    procs.append(nsm)
    for _ in range(200):
        if os.path.exists(nsm_sock):
            break
        time.sleep(0.05)

    mport = free_port()
    trail = os.path.join(TMP, "audit.jsonl")
    logsock = os.path.join(TMP, "logs.sock")
    reader = LogReader(logsock)
    svc, port, svclog = start_service(
        ["--metrics", "tcp:127.0.0.1:%d" % mport, "--audit-out", trail, "--audit-every", "7",
         "--audit-interval", "1", "--log-out", "unix:" + logsock],
        {"NSM_DEVICE": "unix:" + nsm_sock})
    ch = grpc.insecure_channel("127.0.0.1:%d" % port)
    sign = unary(ch, "/nsign.v1.Signer/Sign", pb.SignRequest, pb.SignResponse)
    health = unary(ch, "/grpc.health.v1.Health/Check", hpb.HealthCheckRequest,
                   hpb.HealthCheckResponse)

    # --- signing, with a known mix of outcomes ---
    signed = []  # (key, input kind, signing input, status)
    for i in range(12):
        m = b"message %d" % i
        sign(pb.SignRequest(key_id="payments", message=m), timeout=10)
        signed.append(("payments", "message", m, "OK"))
    for i in range(5):
        d = hashlib.sha256(b"d%d" % i).digest()
        sign(pb.SignRequest(key_id="api", digest=d), timeout=10)
        signed.append(("api", "digest", d, "OK"))
    for i in range(3):
        try:
            sign(pb.SignRequest(key_id="nope\n\"}", message=b"x"), timeout=10)
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.NOT_FOUND, "unknown key is NOT_FOUND")
        signed.append(("nope???", "message", b"x", "NOT_FOUND"))
    r = health(hpb.HealthCheckRequest(service=""), timeout=10)
    check(r.status == hpb.HealthCheckResponse.SERVING, "gRPC health: SERVING with observability on")

    # --- metrics ---
    st, hdr, body = http_get(mport)
    check(st == 200 and hdr.get("Content-Type", "").startswith("text/plain; version=0.0.4"),
          "GET /metrics: 200, text format 0.0.4", (st, hdr))
    check(metric_value(body, "nsign_sign_requests_total",
                       {"key": "payments", "algorithm": "ed25519", "client": "tcp:127.0.0.1",
                        "status": "OK"}) == 12,
          "sign_requests_total by key, algorithm, client and status", body[:2000])
    check(metric_value(body, "nsign_sign_requests_total", {"key": "api", "status": "OK"}) == 5,
          "sign_requests_total for the P-256 key")
    check(metric_value(body, "nsign_sign_requests_total", {"key": "(unknown)", "algorithm": "-",
                                                           "status": "NOT_FOUND"}) == 3,
          "an unknown key id is counted under one fixed label")
    check("nope" not in body, "a client-chosen key id never becomes a label value")
    check(metric_value(body, "nsign_sign_duration_seconds_count", {"key": "payments"}) == 12 and
          metric_value(body, "nsign_sign_duration_seconds_bucket",
                       {"key": "payments", "le": "+Inf"}) == 12,
          "latency histogram counts every Sign")
    check(metric_value(body, "nsign_build_info", {"version": re.search(
        r'version="([^"]+)"', body).group(1)}) == 1, "build_info")
    check(metric_value(body, "nsign_audit_entries_total") == 20, "audit_entries_total")
    for name in ["nsign_requests_in_flight", "nsign_connections_open",
                 "nsign_tls_handshake_failures_total", "nsign_log_lines_dropped_total"]:
        check(metric_value(body, name) is not None, "%s exposed" % name)
    check(metric_value(body, "nsign_connections_open") >= 1, "the open gRPC connection counted")
    pt = subprocess.run(["promtool", "check", "metrics"], input=body.encode(),
                        capture_output=True, timeout=60)
    check(pt.returncode == 0, "promtool check metrics: no problems",
          pt.stdout.decode() + pt.stderr.decode())
    check(b"not in the" not in pt.stdout, "promtool lint clean", pt.stdout)

    # --- a real Prometheus server scrapes it ---
    pport = free_port()
    cfg = os.path.join(TMP, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n"
                "  - job_name: nsign\n    static_configs:\n      - targets: ['127.0.0.1:%d']\n"
                % mport)
    prom = subprocess.Popen(["prometheus", "--config.file=" + cfg,
                             "--storage.tsdb.path=" + os.path.join(TMP, "tsdb"),
                             "--web.listen-address=127.0.0.1:%d" % pport],
                            stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(TMP, "prometheus.log"), "w"))
    procs.append(prom)
    val, health_s, last = None, None, ""
    t0 = time.time()
    while time.time() - t0 < 60:
        try:
            _, _, tj = http_get(pport, "/api/v1/targets", timeout=2)
            tg = json.loads(tj)["data"]["activeTargets"]
            health_s = tg[0]["health"] if tg else None
            last = tg[0].get("lastError", "") if tg else ""
            _, _, qj = http_get(pport, "/api/v1/query?query=sum(nsign_sign_requests_total)",
                                timeout=2)
            res = json.loads(qj)["data"]["result"]
            if health_s == "up" and res:
                val = float(res[0]["value"][1])
                break
        except (OSError, ValueError, KeyError, IndexError):
            pass
        time.sleep(0.5)
    check(health_s == "up", "Prometheus scrapes the target: up", "%s %s" % (health_s, last))
    check(val == 20, "Prometheus query sum(nsign_sign_requests_total) = 20", val)
    _, _, qj = http_get(pport, "/api/v1/query?query=nsign_sign_duration_seconds_count", timeout=5)
    check(len(json.loads(qj)["data"]["result"]) == 3,
          "Prometheus sees one latency histogram per (key, algorithm)", qj[:500])
    prom.terminate()
    prom.wait(timeout=20)

    # --- label exhaustion: made-up key ids never push real keys into "_other" (issue 22) ---
    for i in range(300):
        try:
            sign(pb.SignRequest(key_id="made-up-%d" % i, message=b"x"), timeout=10)
        except grpc.RpcError:
            pass
        signed.append(("made-up-%d" % i, "message", b"x", "NOT_FOUND"))
    try:
        sign(pb.SignRequest(key_id="api"), timeout=10)  # no input: a new (key, status) series
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.INVALID_ARGUMENT, "Sign without input: INVALID_ARGUMENT")
    signed.append(("api", "digest", b"", "INVALID_ARGUMENT"))
    _, _, bodyx = http_get(mport)
    check(metric_value(bodyx, "nsign_sign_requests_total",
                       {"key": "(unknown)", "status": "NOT_FOUND"}) == 303,
          "303 made-up ids: one series")
    check(metric_value(bodyx, "nsign_sign_requests_total",
                       {"key": "api", "status": "INVALID_ARGUMENT"}) == 1 and
          "_other" not in bodyx, "a real key's new series is still labelled by its id")

    # --- hostile clients on the metrics port ---
    out = raw_http(mport, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    check(out.startswith(b"HTTP/1.1 400 "), "TLS hello to /metrics: 400", out[:60])
    out = raw_http(mport, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 10000 + b"\r\n\r\n")
    check(out.startswith(b"HTTP/1.1 431 "), "oversized head: 431", out[:60])
    out = raw_http(mport, b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
    check(out.startswith(b"HTTP/1.1 400 "), "a body: 400", out[:60])
    out = raw_http(mport, b"GET /admin HTTP/1.1\r\n\r\n")
    check(out.startswith(b"HTTP/1.1 404 "), "unknown path: 404", out[:60])
    idle = [socket.create_connection(("127.0.0.1", mport)) for _ in range(60)]
    for s in idle[:40]:
        s.sendall(b"GET /metr")  # slow clients that never finish
    st, _, body2 = http_get(mport, tolerate=True)  # refused while full: that is the bound
    for s in idle:
        s.close()
    t0 = time.time()
    while st != 200 and time.time() - t0 < 15:  # the server closes the idle ones within 5 s
        time.sleep(0.5)
        st, _, body2 = http_get(mport, tolerate=True)
    check(st == 200 and "nsign_sign_requests_total" in body2,
          "metrics served again after 60 idle/slow connections")
    r = sign(pb.SignRequest(key_id="payments", message=b"after the flood"), timeout=10)
    signed.append(("payments", "message", b"after the flood", "OK"))
    check(len(r.signature) == 64, "signing unaffected by the metrics flood")

    # --- logs: shipped lines; the host reader stalls and signing continues ---
    t0 = time.time()
    while "serving addr=" not in reader.text() and time.time() - t0 < 10:
        time.sleep(0.1)
    check("nsign sign-service: info serving addr=" in reader.text(),
          "log lines arrive at the --log-out reader")
    check(any("sign key=payments" in x for x in reader.lines), "the per-Sign line is shipped")
    reader.reading.clear()
    n_stall, ok_stall = 4000, 0
    t_stall = time.time()
    for i in range(n_stall):
        m = b"stalled %d" % i
        r = sign(pb.SignRequest(key_id="payments", message=m), timeout=10)
        signed.append(("payments", "message", m, "OK"))
        ok_stall += len(r.signature) == 64
    stall_s = time.time() - t_stall
    check(ok_stall == n_stall, "%d Sign calls answered while the log reader was stalled "
          "(%.1f s)" % (n_stall, stall_s), ok_stall)
    _, _, body3 = http_get(mport)
    dropped = metric_value(body3, "nsign_log_lines_dropped_total")
    check(dropped is not None and dropped > 0, "dropped lines counted in the metrics (%s)" % dropped)
    reader.reading.set()
    prev_n, t0 = -1, time.time()
    while len(reader.lines) != prev_n and time.time() - t0 < 15:  # the backlog drains
        prev_n = len(reader.lines)
        time.sleep(0.5)
    sign(pb.SignRequest(key_id="payments", message=b"resumed"), timeout=10)
    signed.append(("payments", "message", b"resumed", "OK"))
    resumed = "digest=%s " % hashlib.sha256(b"resumed").hexdigest()[:16]
    t0 = time.time()
    while time.time() - t0 < 15 and not any(resumed in x for x in reader.lines):
        time.sleep(0.1)
    at = [i for i, x in enumerate(reader.lines) if resumed in x]
    notes = [x for x in reader.lines[:at[0] if at else 0] if "log lines dropped count=" in x]
    reported = sum(int(re.search(r"count=(\d+)", x).group(1)) for x in notes)
    # Read again now: a status line may have been dropped after the first scrape.
    _, _, body4 = http_get(mport)
    dropped = metric_value(body4, "nsign_log_lines_dropped_total")
    check(at and notes and reported == dropped,
          "the drop count is reported when sending resumes, before the next line (%d notices, "
          "total %d of %s)" % (len(notes), reported, dropped), reader.lines[-5:])

    # --- Attest binds the audit key ---
    attest = unary(ch, "/nsign.v1.Signer/Attest", pb.AttestRequest, pb.AttestResponse)
    ar = attest(pb.AttestRequest(nonce=b"n" * 16), timeout=20)
    listk = unary(ch, "/nsign.v1.Signer/ListKeys", pb.ListKeysRequest, pb.ListKeysResponse)
    lk = listk(pb.ListKeysRequest(), timeout=10)
    v1 = hashlib.sha256(b"nsign-keys-v1\n")
    algs = {pb.ED25519: "ed25519", pb.ECDSA_P256: "ecdsa-p256",
            pb.ECDSA_SECP256K1: "ecdsa-secp256k1"}
    for k in lk.keys:
        a = algs[k.algorithm].encode()
        v1.update(bytes([len(k.key_id)]) + k.key_id.encode() + bytes([len(a)]) + a +
                  bytes([len(k.public_key)]) + k.public_key)
    check(ar.key_set_commitment == v1.digest(), "Attest: key_set_commitment is the v1 commitment")
    # A version-1 file: no clients, no allow lists, epoch 0 (signkeys.h, nsign.proto).
    pol = b"nsign-policy-v1\n" + b"\x01" + bytes(8) + b"\x00" + bytes([len(lk.keys)])
    for k in sorted(lk.keys, key=lambda k: k.key_id.encode()):
        pol += bytes([len(k.key_id)]) + k.key_id.encode() + b"\x00"
    pol = hashlib.sha256(pol).digest()
    kc = hashlib.sha256(b"nsign-keys-v2\n" + b"\x07key-set\x20" + v1.digest() +
                        b"\x06policy\x20" + pol + b"\x05epoch\x08" + bytes(8) +
                        b"\x0bclient-auth\x01\x00").digest()
    check(ar.policy_commitment == pol and ar.policy_epoch == 0 and not ar.client_auth_required
          and ar.keys_commitment == kc,
          "Attest: the policy commitment (none: version 1), epoch 0, and the keys commitment of "
          "the key set, policy, epoch and client-auth (computed here from the README's format)")
    want_ud = hashlib.sha256(b"nsign-attest-v2\n" + b"\x04keys\x20" + kc +
                             b"\x0daudit-ed25519\x20" + ar.audit_public_key).digest()
    check(len(ar.audit_public_key) == 32 and ar.user_data == want_ud,
          "Attest: user_data is the v2 commitment of the keys and the audit key (README)")
    doc_path = os.path.join(TMP, "attest.b64")
    with open(doc_path, "w") as f:
        f.write(base64.b64encode(ar.attestation_document).decode() + "\n")
    doc_raw = os.path.join(TMP, "attest.cbor")
    with open(doc_raw, "wb") as f:
        f.write(ar.attestation_document)

    # live trail (service still running)
    v = subprocess.run([NSIGN, "audit-verify", trail, "--attestation", doc_path, "--live"],
                       capture_output=True, text=True, timeout=60)
    check(v.returncode == 0, "audit-verify --live on the running service's trail", v.stderr)

    # --- stop: the final head ---
    svc.send_signal(signal.SIGTERM)
    check(svc.wait(timeout=30) == 0, "sign-service stops cleanly on SIGTERM")
    reader.stop.set()
    lines = open(trail).read().splitlines(keepends=True)
    recs = [json.loads(x) for x in lines]
    check(recs[-1]["type"] == "head" and recs[-1]["final"] is True, "the trail ends with the "
          "final head")
    entries = [x for x in recs if x["type"] == "entry"]
    check(len(entries) == len(signed), "one entry per Sign (%d)" % len(signed), len(entries))
    same = all(e["key"] == s[0] and e["input"] == s[1] and
               e["sha256"] == hashlib.sha256(s[2]).hexdigest() and e["status"] == s[3]
               for e, s in zip(entries, signed))
    check(same, "entries name key, input kind, SHA-256 of what was signed and status, in order")
    check(all(e["client"].startswith("tcp:127.0.0.1:") for e in entries), "client recorded")

    # independent implementation of README's definitions
    pub = bytes.fromhex(recs[0]["audit_pub"])
    prev = hashlib.sha256(b"nsign-audit-genesis-v1\n" + pub +
                          bytes.fromhex(recs[0]["keys_commitment"])).digest()
    okchain, okheads, nheads = True, True, 0
    vk = ed25519.Ed25519PublicKey.from_public_bytes(pub)
    count = 0
    for rcd in recs[1:]:
        if rcd["type"] == "entry":
            s8 = lambda s: bytes([len(s)]) + s.encode()  # noqa: E731
            h = hashlib.sha256(b"nsign-audit-entry-v1\n" + rcd["seq"].to_bytes(8, "big") +
                               rcd["time_ms"].to_bytes(8, "big") + s8(rcd["client"]) +
                               s8(rcd["key"]) + bytes([rcd["input"] == "digest"]) +
                               bytes.fromhex(rcd["sha256"]) + s8(rcd["status"]) + prev).digest()
            okchain &= rcd["prev"] == prev.hex() and rcd["hash"] == h.hex() and rcd["seq"] == count
            prev = h
            count += 1
        else:
            msg = (b"nsign-audit-head-v1\n" + rcd["count"].to_bytes(8, "big") +
                   rcd["time_ms"].to_bytes(8, "big") + bytes([rcd["final"]]) +
                   bytes.fromhex(rcd["head"]))
            try:
                vk.verify(bytes.fromhex(rcd["sig"]), msg)
            except Exception:
                okheads = False
            okheads &= rcd["count"] == count and rcd["head"] == prev.hex()
            nheads += 1
    check(okchain, "chain recomputed by an independent implementation")
    check(okheads and nheads >= len(entries) // 7, "every head verified with python-cryptography "
          "(%d heads)" % nheads)

    def verify(path, doc=doc_path, extra=()):
        return subprocess.run([NSIGN, "audit-verify", path, "--attestation", doc] + list(extra),
                              capture_output=True, text=True, timeout=120)

    v = verify(trail)
    check(v.returncode == 0 and v.stdout.startswith("ok entries=%d " % len(entries)),
          "audit-verify: the complete trail verifies against the Attest document (base64)",
          v.stdout + v.stderr)
    v = verify(trail, doc_raw)
    check(v.returncode == 0, "audit-verify: raw CBOR document accepted", v.stderr)

    def tampered(name, new_lines, want_line, desc):
        p = os.path.join(TMP, name)
        with open(p, "w") as f:
            f.writelines(new_lines)
        v = verify(p)
        check(v.returncode == 1 and ("line %d" % want_line) in v.stderr,
              "audit-verify detects %s, at line %d" % (desc, want_line), v.stdout + v.stderr)

    idx = [i for i, x in enumerate(recs) if x["type"] == "entry"]
    i5 = idx[5]
    tampered("drop", lines[:i5] + lines[i5 + 1:], i5 + 1, "a dropped entry")
    ed_rec = dict(recs[i5])
    ed_rec["status"] = "DENIED"
    tampered("edit", lines[:i5] + [json.dumps(ed_rec, separators=(",", ":")) + "\n"] +
             lines[i5 + 1:], i5 + 1, "an edited entry")
    tampered("reorder", lines[:i5] + [lines[i5 + 1], lines[i5]] + lines[i5 + 2:], i5 + 1,
             "two swapped entries")
    tampered("append", lines + [lines[i5]], len(lines) + 1, "an appended line")
    tampered("truncate", lines[:-1], idx[-1] + 1 if recs[-2]["type"] == "entry" else len(lines),
             "a trail cut before its final head")

    # A trail cut exactly at a signed head still verifies with --live: the report says how far
    # the signed heads reach and when, and --expect-entries / --since turn a cut into a failure
    # (issue 22 item 9).
    h1 = [i for i, x in enumerate(recs) if x["type"] == "head"][0]
    cut = os.path.join(TMP, "cut.jsonl")
    with open(cut, "w") as f:
        f.writelines(lines[:h1 + 1] + lines[h1 + 1:h1 + 3])
    n_cut = recs[h1]["count"]
    tail = sum(1 for x in recs[h1 + 1:h1 + 3] if x["type"] == "entry")
    hms = recs[h1]["time_ms"]
    htime = datetime.datetime.fromtimestamp(hms / 1000, datetime.timezone.utc)
    v = verify(cut, extra=["--live"])
    check(v.returncode == 0 and " signed=%d unsigned_tail=%d " % (n_cut, tail) in v.stdout and
          " last_head=%s.%03dZ " % (htime.strftime("%Y-%m-%dT%H:%M:%S"), hms % 1000) in v.stdout,
          "--live on a cut trail: verifies, reporting the signed count, the tail and the head's "
          "time", v.stdout + v.stderr)
    v = verify(cut, extra=["--live", "--expect-entries", str(len(entries))])
    check(v.returncode == 1 and "fewer than the %d expected" % len(entries) in v.stderr,
          "--live --expect-entries: a trail cut at a signed head fails", v.stdout + v.stderr)
    v = verify(cut, extra=["--live", "--expect-entries", str(n_cut)])
    check(v.returncode == 0, "--expect-entries met by the signed heads: ok", v.stderr)
    v = verify(cut, extra=["--live", "--since", str(hms // 1000 + 1)])
    check(v.returncode == 1 and "older than --since" in v.stderr,
          "--live --since after the last signed head: fails", v.stdout + v.stderr)
    v = verify(cut, extra=["--live", "--since", htime.strftime("%Y-%m-%dT%H:%M:%SZ")])
    check(v.returncode == 0, "--since at the head's second (UTC form): ok", v.stderr)
    v = verify(trail, extra=["--expect-entries", str(len(entries)), "--since",
                             str(recs[-1]["time_ms"] // 1000)])
    check(v.returncode == 0, "the complete trail meets both bounds", v.stderr)
    v = verify(cut, extra=["--live", "--since", "yesterday"])
    check(v.returncode == 2, "--since with a bad time: usage error", v.stderr)

    # --audit-out through a symbolic link: refused, the link's target untouched (issue 22 item 5)
    victim = os.path.join(TMP, "victim.txt")
    with open(victim, "w") as f:
        f.write("precious\n")
    link = os.path.join(TMP, "audit-link.jsonl")
    os.symlink(victim, link)
    try:
        r = subprocess.run([NSIGN, "sign-service", "--plaintext", "--keys", keys_path, "--listen",
                            "tcp:127.0.0.1:%d" % free_port(), "--audit-out", link],
                           capture_output=True, text=True, timeout=15)
        rc, err = r.returncode, r.stderr
    except subprocess.TimeoutExpired as e:
        rc, err = None, "still serving after 15 s: %s" % e
    check(rc == 1 and "--audit-out" in err and "symbolic link" in err,
          "--audit-out naming a symbolic link: refused with a clear error", err)
    check(open(victim).read() == "precious\n", "the link's target is untouched")

    # A replaced audit key: a second service run (another audit key) and a trail forged in
    # Python with a key of our own, each self-consistent; neither matches the document.
    trail2 = os.path.join(TMP, "audit2.jsonl")
    svc2, port2, _ = start_service(["--audit-out", trail2], name="svc2")
    ch2 = grpc.insecure_channel("127.0.0.1:%d" % port2)
    unary(ch2, "/nsign.v1.Signer/Sign", pb.SignRequest, pb.SignResponse)(
        pb.SignRequest(key_id="payments", message=b"m"), timeout=10)
    svc2.send_signal(signal.SIGTERM)
    svc2.wait(timeout=30)
    v = subprocess.run([NSIGN, "audit-verify", trail2, "--no-attestation"], capture_output=True,
                       text=True, timeout=60)
    check(v.returncode == 0 and "(not attested)" in v.stdout,
          "the other run's trail is self-consistent", v.stderr)
    v = verify(trail2)
    check(v.returncode == 1 and "line 1" in v.stderr and "replaced audit key" in v.stderr,
          "audit-verify detects another audit key, at line 1", v.stderr)
    fk = ed25519.Ed25519PrivateKey.generate()
    fpub = fk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    start_rec = dict(recs[0])
    start_rec["audit_pub"] = fpub.hex()
    fprev = hashlib.sha256(b"nsign-audit-genesis-v1\n" + fpub +
                           bytes.fromhex(recs[0]["keys_commitment"])).digest()
    s8 = lambda s: bytes([len(s)]) + s.encode()  # noqa: E731
    forged = [json.dumps(start_rec, separators=(",", ":")) + "\n"]
    for n, e in enumerate(entries[:3]):
        e = dict(e, prev=fprev.hex(), seq=n)
        h = hashlib.sha256(b"nsign-audit-entry-v1\n" + n.to_bytes(8, "big") +
                           e["time_ms"].to_bytes(8, "big") + s8(e["client"]) + s8(e["key"]) +
                           bytes([e["input"] == "digest"]) + bytes.fromhex(e["sha256"]) +
                           s8(e["status"]) + fprev).digest()
        e["hash"] = h.hex()
        fprev = h
        forged.append(json.dumps(e, separators=(",", ":")) + "\n")
    msg = (b"nsign-audit-head-v1\n" + (3).to_bytes(8, "big") + (1).to_bytes(8, "big") + b"\x01" +
           fprev)
    forged.append(json.dumps({"type": "head", "count": 3, "time_ms": 1, "head": fprev.hex(),
                              "final": True, "sig": fk.sign(msg).hex()},
                             separators=(",", ":")) + "\n")
    fpath = os.path.join(TMP, "forged.jsonl")
    with open(fpath, "w") as f:
        f.writelines(forged)
    v = subprocess.run([NSIGN, "audit-verify", fpath, "--no-attestation"], capture_output=True,
                       text=True, timeout=60)
    check(v.returncode == 0, "a trail forged in Python under another key is self-consistent "
          "(so the check below is not vacuous)", v.stderr)
    v = verify(fpath)
    check(v.returncode == 1 and "line 1" in v.stderr, "audit-verify refuses the forged trail's "
          "key against the attestation", v.stderr)
    v = subprocess.run([NSIGN, "audit-verify", trail], capture_output=True, text=True)
    check(v.returncode == 2, "audit-verify without --attestation/--no-attestation: usage error")

    # --- a client policy (keys file v2) refusing a client: counted as a policy denial ---
    v2 = {"version": 2, "clients": [{"id": "payments-api", "spki_sha256": "ab" * 32}],
          "keys": [dict(KEYS["keys"][0], allow=["payments-api"])]}
    v2_path = os.path.join(TMP, "keys-v2.json")
    with open(v2_path, "w") as f:
        json.dump(v2, f)
    mport3 = free_port()
    port3 = free_port()
    log3 = os.path.join(TMP, "svc3.log")
    # --plaintext: a cleartext client carries no certificate, so the policy (not the TLS
    # handshake, which test_sign_tls covers) is what refuses it.
    svc3 = subprocess.Popen([NSIGN, "sign-service", "--plaintext", "--keys", v2_path, "--listen",
                             "tcp:127.0.0.1:%d" % port3, "--metrics", "tcp:127.0.0.1:%d" % mport3],
                            stdout=subprocess.DEVNULL, stderr=open(log3, "w"))
    procs.append(svc3)
    t0 = time.time()
    while "serving addr=" not in open(log3).read() and time.time() - t0 < 15:
        time.sleep(0.05)
    ch3 = grpc.insecure_channel("127.0.0.1:%d" % port3)
    code = None
    try:
        unary(ch3, "/nsign.v1.Signer/Sign", pb.SignRequest, pb.SignResponse)(
            pb.SignRequest(key_id="payments", message=b"m"), timeout=10)
    except grpc.RpcError as e:
        code = e.code()
    check(code == grpc.StatusCode.UNAUTHENTICATED, "policy: a client without a certificate is "
          "refused (UNAUTHENTICATED)", code)
    _, _, body5 = http_get(mport3)
    check(metric_value(body5, "nsign_policy_denials_total",
                       {"key": "-", "client": "tcp:127.0.0.1"}) == 1,
          "policy_denials_total counts the refusal by client (key \"-\": refused before the "
          "request is read)", body5[-800:])
    svc3.send_signal(signal.SIGTERM)
    svc3.wait(timeout=30)

    # --- a start that fails before log shipping runs still ships its lines ---
    # The metrics port is taken: observability does not start, and the error (with the lines
    # before it) reaches the --log-out reader, not only stderr.
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    early_sock = os.path.join(TMP, "early.sock")
    early = LogReader(early_sock)
    log4 = os.path.join(TMP, "svc4.log")
    r4 = subprocess.run([NSIGN, "sign-service", "--plaintext", "--keys", keys_path, "--listen",
                         "tcp:127.0.0.1:%d" % free_port(), "--metrics",
                         "tcp:127.0.0.1:%d" % busy.getsockname()[1], "--log-out",
                         "unix:" + early_sock], stdout=subprocess.DEVNULL,
                        stderr=open(log4, "w"), timeout=60)
    t0 = time.time()
    while not any("observability" in x for x in early.lines) and time.time() - t0 < 10:
        time.sleep(0.05)
    early.stop.set()
    busy.close()
    check(r4.returncode == 1 and "error observability: --metrics" in open(log4).read(),
          "metrics port taken: sign-service exits 1 naming it", open(log4).read())
    check(any(x.startswith("nsign sign-service: error observability: --metrics tcp:127.0.0.1:")
              for x in early.lines),
          "metrics port taken: the error reaches the --log-out reader (logged before log "
          "shipping started)", early.lines)

    # --- no secret anywhere ---
    texts = {"shipped log lines": reader.text() + "\n" + early.text(),
             "stderr": open(svclog).read(),
             "audit trail": open(trail).read(), "metrics": body3}
    probe = json.dumps(KEYS)
    check(all(s in probe for s in SECRETS[0:6:2]), "the secret search finds the secrets where they "
          "are (keys file)")
    for what, t in texts.items():
        hits = [s[:6] for s in SECRETS if s in t]
        check(not hits, "no secret value in the %s (%d bytes)" % (what, len(t)), hits)


try:
    main()
finally:
    kill_all(procs)
    shutil.rmtree(TMP, ignore_errors=True)
done()
