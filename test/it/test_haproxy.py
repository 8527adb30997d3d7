"""Three sign-service replicas behind Debian's HAProxy with dist/haproxy/nsign.cfg (issue 23):
TCP mode, TLS passed through (the client sees each replica's own certificate, never one of the
balancer's), health checks on each replica's GET /ready, slowstart, on-marked-down
shutdown-sessions. Three client threads run a steady stream of Sign calls through HAProxy,
each message unique, while (a) one replica is SIGKILLed and (b) one is drained (SIGTERM) and
replaced by a new replica on the same address (the next build's stand-in: a new process with a
new TLS key). The client retries a call only when the server provably did not take it (connect or
TLS failure through the balancer, a GOAWAY whose last stream is below the call's, REFUSED_STREAM);
a call cut after it was sent, without such proof (only a SIGKILL can do that), is counted as
ambiguous and retried too.

Checks: every call ends OK (zero lost) and its signature verifies; server side, the replicas'
audit trails count each message: no message signed twice except at most the calls ambiguous at
the kill, and none in the drain phase; the drained replica's trail ends with its final head (it
exited cleanly); HAProxy marked the killed replica DOWN. Reported (not asserted: no timing
assertions): calls, retries by cause, ambiguous calls, time from the kill to HAProxy's DOWN.
Replicas here are sign-service processes whose metrics address serves /ready (run-enclave's host
/ready behaves the same, test_run_enclave_drain.sh); the replicas share one keys file, as
enclaves booted from one EIF and one KMS-wrapped input do."""
import base64
import collections
import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

from tap import NSIGN, check, done, free_port, kill_all, skip

if shutil.which("haproxy") is None:
    skip("haproxy", "Debian's haproxy is needed (scripts/apt-packages.txt)")
    done()
try:
    import h2.config
    import h2.connection
    import h2.events
    import h2.errors
    import h2.exceptions
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
except ImportError as e:
    skip("haproxy", "python3-h2 and python3-cryptography are needed (%s)" % e)
    done()

ROOT = os.environ.get("NS_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
TMP = tempfile.mkdtemp(prefix="nsign-lb-")
procs = []
subprocess.run(["protoc", "-I" + os.path.join(ROOT, "proto"), "--python_out=" + TMP,
                "nsign.proto"], check=True)
sys.path.insert(0, TMP)
import nsign_pb2 as pb  # noqa: E402

ed = ed25519.Ed25519PrivateKey.generate()
PUB = ed.public_key()
KEYS = os.path.join(TMP, "keys.json")
with open(KEYS, "w") as f:
    json.dump({"version": 1, "keys": [{"id": "k", "algorithm": "ed25519", "private_key":
              base64.b64encode(ed.private_bytes(serialization.Encoding.Raw,
                                                serialization.PrivateFormat.Raw,
                                                serialization.NoEncryption())).decode()}]}, f)

# --- replicas ---
known_spki = set()  # the SPKI SHA-256 each replica logs at start: the certificates a client may see


class Replica:
    n = 0

    def __init__(self, port, mport):
        Replica.n += 1
        self.port, self.mport = port, mport
        self.audit = os.path.join(TMP, "audit-%d.jsonl" % Replica.n)
        self.log = os.path.join(TMP, "replica-%d.log" % Replica.n)
        self.p = subprocess.Popen(
            [NSIGN, "sign-service", "--keys", KEYS, "--listen", "tcp:127.0.0.1:%d" % port,
             "--threads", "1", "--metrics", "tcp:127.0.0.1:%d" % mport, "--audit-out",
             self.audit, "--drain", "10"], stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))
        procs.append(self.p)
        for _ in range(300):
            text = open(self.log).read()
            if "serving addr=" in text:
                known_spki.add(text.split("spki_sha256=")[1].split()[0])
                return
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        raise SystemExit("not ok - replica did not start\n# " + open(self.log).read())


ports = [(free_port(), free_port()) for _ in range(3)]
replicas = [Replica(p, m) for p, m in ports]

# --- HAProxy with the shipped configuration ---
LB_PORT = free_port()
STATS = os.path.join(TMP, "haproxy.sock")
env = dict(os.environ, NSIGN_LB_BIND="127.0.0.1:%d" % LB_PORT, NSIGN_LB_STATS=STATS)
for i, (p, m) in enumerate(ports):
    env["NSIGN_ENCLAVE%d" % (i + 1)] = "127.0.0.1:%d" % p
    env["NSIGN_READY%d" % (i + 1)] = str(m)
cfg = os.path.join(ROOT, "dist/haproxy/nsign.cfg")
r = subprocess.run(["haproxy", "-c", "-f", cfg], env=env, capture_output=True, text=True)
check(r.returncode == 0, "haproxy -c accepts dist/haproxy/nsign.cfg", r.stdout + r.stderr)
lb = subprocess.Popen(["haproxy", "-db", "-f", cfg], env=env, stdout=subprocess.DEVNULL,
                      stderr=open(os.path.join(TMP, "haproxy.log"), "w"))
procs.append(lb)


def stats():
    """{server name: status} from HAProxy's admin socket (show stat, CSV)."""
    try:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(2)
        s.connect(STATS)
        s.sendall(b"show stat\n")
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
        s.close()
    except OSError:
        return {}
    rows = out.decode().splitlines()
    if not rows:
        return {}
    head = rows[0].lstrip("# ").split(",")
    si = head.index("status")
    return {c[1]: c[si] for c in (r.split(",") for r in rows[1:] if r)
            if c[0] == "nsign_enclaves" and c[1].startswith("enclave")}


def wait_status(name, want, limit=30):
    t0 = time.time()
    while time.time() - t0 < limit:
        if stats().get(name, "").startswith(want):
            return time.time() - t0
        time.sleep(0.05)
    return None


up = all(wait_status("enclave%d" % i, "UP") is not None for i in (1, 2, 3))
check(up, "HAProxy sees the three replicas UP through their /ready", stats())

# --- the client: a steady stream of Sign calls, retried only when not taken ---
HDRS = [(":method", "POST"), (":scheme", "https"), (":authority", "nsign"),
        (":path", "/nsign.v1.Signer/Sign"), ("content-type", "application/grpc"),
        ("te", "trailers")]


class Conn:
    def __init__(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", LB_PORT), timeout=5)
        self.sock = ctx.wrap_socket(raw, server_hostname="nsign-enclave")
        der = self.sock.getpeercert(binary_form=True)
        from cryptography import x509
        spki = x509.load_der_x509_certificate(der).public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.spki = hashlib.sha256(spki).hexdigest()
        self.h = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.h.initiate_connection()
        self.sock.sendall(self.h.data_to_send())
        self.goaway = None  # the last stream id of the latest GOAWAY
        self.sid = 1

    def call(self, req):
        """('ok', response bytes) | ('retry', cause) | ('ambiguous', cause) | ('error', status)"""
        if self.goaway is not None:
            return "retry", "reconnect"
        sid, self.sid = self.sid, self.sid + 2
        framed = b"\x00" + len(req).to_bytes(4, "big") + req
        try:
            self.h.send_headers(sid, HDRS)
            self.h.send_data(sid, framed, end_stream=True)
            self.sock.sendall(self.h.data_to_send())
        except Exception as e:  # noqa: BLE001 - a dead connection at send: nothing was taken
            return "retry", "send: %s" % type(e).__name__
        hdr, data = {}, b""
        t0 = time.time()
        while time.time() - t0 < 20:
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                d = b""
            if not d:
                return "ambiguous", "connection closed with the call in flight"
            try:
                evs = self.h.receive_data(d)
            except h2.exceptions.ProtocolError as e:
                return "ambiguous", "protocol error %s" % e
            for ev in evs:
                if isinstance(ev, h2.events.ConnectionTerminated):
                    self.goaway = ev.last_stream_id
                    if ev.last_stream_id < sid:
                        return "retry", "goaway"
                    # The server took this call and will answer it (RFC 9113 6.8); h2 closes
                    # the connection on any GOAWAY, so reopen it for the frames still due.
                    self.h.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
                elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == sid:
                    if ev.error_code == h2.errors.ErrorCodes.REFUSED_STREAM:
                        return "retry", "refused_stream"
                    return "ambiguous", "reset %s" % ev.error_code
                elif isinstance(ev, (h2.events.ResponseReceived, h2.events.TrailersReceived)) \
                        and ev.stream_id == sid:
                    hdr.update({k.decode(): v.decode() for k, v in ev.headers})
                elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid:
                    data += ev.data
                    self.h.acknowledge_received_data(ev.flow_controlled_length, sid)
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                    out = self.h.data_to_send()
                    if out:
                        self.sock.sendall(out)
                    st = hdr.get("grpc-status")
                    if st == "0":
                        return "ok", data[5:]
                    if st == "14":
                        return "retry", "unavailable"
                    return "error", st
            out = self.h.data_to_send()
            if out:
                self.sock.sendall(out)
        return "ambiguous", "no answer in 20 s"

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


stop = threading.Event()
phase = {"name": "steady"}
lock = threading.Lock()
results = []  # (message, phase, attempts)
retries = collections.Counter()
ambiguous = []  # (message, phase)
errors = []
spki_bad = []
conns_opened = collections.Counter()


def worker(wid):
    try:
        run_worker(wid)
    except Exception as e:  # noqa: BLE001 - a crashed client thread fails the test
        with lock:
            errors.append(("worker %d" % wid, repr(e)))


def run_worker(wid):
    conn = None
    i = 0
    while not stop.is_set():
        i += 1
        msg = b"lb-%d-%d" % (wid, i)
        req = pb.SignRequest(key_id="k", message=msg).SerializeToString()
        ph = phase["name"]
        for attempt in range(1, 200):
            if conn is None:
                try:
                    conn = Conn()
                except OSError as e:
                    with lock:
                        retries["connect: %s" % type(e).__name__] += 1
                    time.sleep(0.05)
                    continue
                with lock:
                    conns_opened[conn.spki] += 1
                    if conn.spki not in known_spki:
                        spki_bad.append(conn.spki)
            kind, what = conn.call(req)
            if kind == "ok":
                with lock:
                    results.append((msg, ph, attempt, what))
                break
            if kind == "error":
                with lock:
                    errors.append((msg, what))
                break
            with lock:
                if kind == "ambiguous":
                    ambiguous.append((msg, ph, what))
                else:
                    retries[what] += 1
            conn.close()
            conn = None
        else:
            with lock:
                errors.append((msg, "gave up"))
    if conn:
        conn.close()


threads = [threading.Thread(target=worker, args=(w,)) for w in range(3)]
for t in threads:
    t.start()
time.sleep(2)

# (a) kill one replica outright.
phase["name"] = "kill"
t_kill = time.time()
replicas[0].p.kill()
replicas[0].p.wait()
detect = wait_status("enclave1", "DOWN")
check(detect is not None, "kill: HAProxy marks the killed replica DOWN", stats())
time.sleep(1)
replicas[0] = Replica(*ports[0])  # back to three
wait_status("enclave1", "UP")

# (b) drain one replica and replace it with the next build's on the same address.
phase["name"] = "drain"
old = replicas[1]
old.p.send_signal(signal.SIGTERM)
t_drain = time.time()
mark_down = wait_status("enclave2", "DOWN")
try:
    rc = old.p.wait(timeout=30)
except subprocess.TimeoutExpired:
    rc = None
check(rc == 0, "drain: the drained replica exits 0 by itself", rc)
replicas[1] = Replica(*ports[1])
back = wait_status("enclave2", "UP")
check(back is not None, "drain: the replacement replica is UP in HAProxy (after slowstart's "
      "checks)", stats())
time.sleep(2)
stop.set()
for t in threads:
    t.join(timeout=60)

# --- client side ---
n = len(results)
check(n > 0 and not errors, "every call ended OK (zero lost): %d calls" % n, errors[:5])
bad = 0
for msg, ph, attempt, resp in results:
    try:
        PUB.verify(pb.SignResponse.FromString(resp).signature, msg)
    except Exception:  # noqa: BLE001
        bad += 1
check(bad == 0, "every signature verifies against the shared key", bad)
check(not spki_bad and len(conns_opened) >= 3,
      "TLS passed through: every connection saw a replica's own certificate, never the "
      "balancer's (%d distinct replica keys seen)" % len(conns_opened), spki_bad[:3])

# --- server side: the audit trails ---
signed = collections.Counter()
finals = {}
for i in range(1, Replica.n + 1):
    path = os.path.join(TMP, "audit-%d.jsonl" % i)
    if not os.path.exists(path):
        continue
    for line in open(path):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("type") == "entry" and rec.get("status") == "OK":
            signed[rec["sha256"]] += 1
        if rec.get("type") == "head":
            finals[i] = rec.get("final")
client_ok = {hashlib.sha256(m).hexdigest() for m, _, _, _ in results}
dups = {h: c for h, c in signed.items() if c > 1}
drain_msgs = {hashlib.sha256(m).hexdigest() for m, ph, _, _ in results if ph == "drain"}
amb_msgs = {hashlib.sha256(m).hexdigest() for m, _, _ in ambiguous}
check(not (set(dups) - amb_msgs), "no message signed twice, except calls cut in flight by the "
      "SIGKILL (%d duplicate(s), %d ambiguous)" % (len(dups), len(ambiguous)), dups)
check(not (set(dups) & drain_msgs) and not [a for a in ambiguous if a[1] == "drain"],
      "drain phase: no call ambiguous, none signed twice")
check(finals.get(2) is True, "drain: the drained replica's audit trail ends with its final head")
missing = client_ok - set(signed)
# The killed replica may lose its last trail lines with the process: only those may be missing.
check(len(missing) <= 5, "server side: the trails hold the calls the clients got (%d of %d "
      "missing, all from the SIGKILLed replica's last moments at most)" % (len(missing), n))
by_phase = collections.Counter(ph for _, ph, _, _ in results)
print("# calls: %d (%s); retried: %s; ambiguous: %d; replica keys seen: %d" % (
    n, ", ".join("%s %d" % kv for kv in sorted(by_phase.items())),
    dict(retries) or "none", len(ambiguous), len(conns_opened)))
print("# time from SIGKILL to HAProxy DOWN: %s s (inter 1s, fall 2); drain to DOWN: %s s" % (
    "%.2f" % detect if detect is not None else "n/a",
    "%.2f" % mark_down if mark_down is not None else "n/a"))
kill_all(procs)
shutil.rmtree(TMP, ignore_errors=True)
done()
