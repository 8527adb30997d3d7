"""sign-service's bound on what it holds for clients (issue 22, item 1): the zero-window attack.

60 connections advertise SETTINGS_INITIAL_WINDOW_SIZE=0, never send WINDOW_UPDATE and open up to
128 ServerReflectionInfo streams of 40 requests each (test/lib/zerowindow.py), in cleartext and
over mutual TLS with a pinned client certificate; then the same with one unary ListKeys per
stream. The server's peak RSS (VmHWM) must stay under the README's 96 MiB while a grpcio client
keeps calling ListKeys and Health/Check, every call answered OK, and every attacking connection
must be sent GOAWAY(ENHANCE_YOUR_CALM) and closed once --stall-timeout (2 s here) has passed, not
before. Half-open TLS handshakes are counted in the same budget: with --max-output 8M, 250
ClientHellos that never go on are mostly refused, and a client is served once they go away. The
per-connection cap of 128 concurrent streams holds for reflection streams as for any other.
The legitimate client's latency is printed, not asserted (bench/zerowindow.sh measures it).
"""
import base64
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.request

import grpc
import h2.config
import h2.connection
import h2.events
from cryptography.hazmat.primitives.asymmetric import ec

import mtls
import zerowindow as zw
from tap import NSIGN, check, done, free_port, kill_all

TMP = tempfile.mkdtemp(prefix="nsign-h2out-")
procs = []
RSS_LIMIT_KB = 96 * 1024
STALL_S = 2.0
CONNS = 60
ENHANCE_YOUR_CALM = 11

pay = mtls.client_cert(TMP, "payments-api", ec.generate_private_key(ec.SECP256R1()))
KEY = {"id": "api", "algorithm": "ed25519",
       "private_key": base64.b64encode(os.urandom(32)).decode()}
keys_v1 = mtls.write(TMP, "keys1.json", json.dumps({"version": 1, "keys": [KEY]}).encode())
keys_v2 = mtls.write(TMP, "keys2.json", json.dumps({
    "version": 2, "clients": [{"id": "payments-api", "spki_sha256": pay["pin"]}],
    "keys": [dict(KEY, allow=["payments-api"])]}).encode())


def start(args, tls=False):
    """sign-service on a free port with /metrics; returns (process, port, metrics port, log)."""
    port, mport = free_port(), free_port()
    log = os.path.join(TMP, "server-%d.log" % port)
    cmd = [NSIGN, "sign-service", "--keys", keys_v2 if tls else keys_v1, "--listen",
           "tcp:127.0.0.1:%d" % port, "--threads", "2", "--metrics", "tcp:127.0.0.1:%d" % mport]
    p = subprocess.Popen(cmd + ([] if tls else ["--plaintext"]) + list(args),
                         stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    procs.append(p)
    t0 = time.time()
    while time.time() - t0 < 15:
        if "serving addr=" in open(log).read():
            return p, port, mport, log
        if p.poll() is not None:
            break
        time.sleep(0.05)
    raise SystemExit("not ok - sign-service did not start %s\n# %s" % (args, open(log).read()))


def metric(mport, name):
    try:
        body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=10).read()
    except OSError:
        return None
    m = re.search(r"^%s (\S+)$" % re.escape(name), body.decode(), re.M)
    return float(m.group(1)) if m else None


def server_pem(port):
    ctx = zw.tls_context(pay)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="nsign-enclave") as t:
            return ssl.DER_cert_to_PEM_cert(t.getpeercert(binary_form=True)).encode()


class Good(threading.Thread):
    """The well-behaved client: grpcio calling ListKeys and Health/Check in turn."""

    def __init__(self, port, pem=None):
        super().__init__(daemon=True)
        self.port, self.pem = port, pem
        self.stop, self.results, self.latency = threading.Event(), [], []

    def run(self):
        target = "127.0.0.1:%d" % self.port
        if self.pem:
            creds = grpc.ssl_channel_credentials(root_certificates=self.pem,
                                                 private_key=pay["key_pem"],
                                                 certificate_chain=pay["cert_pem"])
            ch = grpc.secure_channel(target, creds,
                                     options=[("grpc.ssl_target_name_override", "nsign-enclave")])
        else:
            ch = grpc.insecure_channel(target)
        calls = [ch.unary_unary("/nsign.v1.Signer/ListKeys"),
                 ch.unary_unary("/grpc.health.v1.Health/Check")]
        i = 0
        while not self.stop.is_set():
            t0 = time.time()
            try:
                calls[i % 2](b"", timeout=20)
                self.results.append("OK")
            except grpc.RpcError as e:
                self.results.append("%s %s" % (e.code(), e.details()))
            self.latency.append(time.time() - t0)
            i += 1
            time.sleep(0.02)
        ch.close()


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))] * 1000 if xs else -1


def zero_window(name, mode, tls=False):
    p, port, mport, log = start(["--stall-timeout", "%g" % STALL_S], tls)
    good = Good(port, server_pem(port) if tls else None)
    good.start()
    t0 = time.time()
    while not good.results and time.time() - t0 < 20:
        time.sleep(0.05)
    stop = threading.Event()
    attackers = zw.run_attack(port, CONNS, stop, mode=mode,
                              tls=zw.tls_context(pay) if tls else None)
    peak_held, t0, blown = 0, time.time(), False
    while time.time() - t0 < 60:
        if zw.status_kb(p.pid, "VmRSS") > 4 * RSS_LIMIT_KB:
            blown = True  # far over: stop before the machine suffers
            break
        held = metric(mport, "nsign_output_bytes") or 0
        peak_held = max(peak_held, held)
        if all(a.closed_at is not None or a.error for a in attackers):
            break
        time.sleep(0.2)
    time.sleep(0.5)  # the well-behaved client goes on once the attackers are gone
    hwm = zw.status_kb(p.pid, "VmHWM")
    good.stop.set()
    stop.set()
    good.join(timeout=30)
    for a in attackers:
        a.join(timeout=10)
    errors = [a.error for a in attackers if a.error]
    closed = [a for a in attackers if a.closed_at is not None]
    calm = [a for a in closed if a.goaway == ENHANCE_YOUR_CALM]
    early = [round(a.closed_at - a.started_at, 2) for a in closed
             if a.closed_at - a.started_at < STALL_S - 0.1]
    opened = sum(a.opened for a in attackers)
    print("# %s: %d streams opened, peak output held %.1f MiB, VmHWM %d KiB; well-behaved "
          "client: %d calls, p50 %.1f ms, p99 %.1f ms, max %.1f ms"
          % (name, opened, peak_held / 2**20, hwm, len(good.results), pct(good.latency, 0.5),
             pct(good.latency, 0.99), pct(good.latency, 1.0)))
    check(not blown and not errors and opened >= CONNS * 32 and peak_held > 4 * 2**20,
          "%s: %d connections of up to 128 zero-window streams held the server's answers"
          % (name, CONNS), "blown=%s opened=%d peak_held=%d errors=%s"
          % (blown, opened, peak_held, errors[:3]))
    check(hwm < RSS_LIMIT_KB, "%s: peak RSS %d KiB stays under 96 MiB" % (name, hwm))
    check(len(closed) == CONNS and len(calm) == CONNS and not early,
          "%s: every stalled connection got GOAWAY(ENHANCE_YOUR_CALM) and was closed after the "
          "%g s stall timeout" % (name, STALL_S),
          "closed=%d calm=%d early=%s goaways=%s" % (len(closed), len(calm), early[:5],
                                                     sorted(set(a.goaway for a in closed))))
    reaped = metric(mport, "nsign_stalled_connections_closed_total")
    held = metric(mport, "nsign_output_bytes")
    check(reaped is not None and reaped >= CONNS and held is not None and held < 2**20,
          "%s: metrics count the closed connections and the budget is returned" % name,
          "reaped=%s held=%s" % (reaped, held))
    bad = [r for r in good.results if r != "OK"]
    check(len(good.results) >= 20 and not bad,
          "%s: the well-behaved client was served throughout (%d calls)"
          % (name, len(good.results)), bad[:5])
    p.terminate()
    p.wait(timeout=10)


def client_hello():
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    o = zw.tls_context().wrap_bio(inc, out, server_hostname="nsign-enclave")
    try:
        o.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def half_open_handshakes():
    """250 ClientHellos that never go on, against --max-output 8M (~56 KiB each counted): most
    are refused at once, memory stays near 8 MiB above the start, and once they are gone a
    client is served again."""
    p, port, mport, log = start(["--max-output", "8M"], tls=True)
    check(metric(mport, "nsign_output_limit_bytes") == 8 * 2**20,
          "metrics: nsign_output_limit_bytes is --max-output")
    base = zw.status_kb(p.pid, "VmRSS")
    hello = client_hello()
    socks = []
    for _ in range(250):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(hello)
        socks.append(s)
    refused, t0 = None, time.time()
    while time.time() - t0 < 10:  # until every connection was taken or refused
        time.sleep(0.5)
        now = metric(mport, "nsign_output_refusals_total")
        if now is not None and now == refused and \
                (metric(mport, "nsign_connections_open") or 0) + now >= 250:
            break
        refused = now
    rss = zw.status_kb(p.pid, "VmRSS")
    dropped = 0
    for s in socks:
        s.settimeout(0.01)
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    dropped += 1
                    break
        except socket.timeout:
            pass
        except OSError:  # closed with the hello unread: a reset
            dropped += 1
    print("# half-open handshakes: rss before %d KiB, with 250 %d KiB, refused %s, closed %d"
          % (base, rss, refused, dropped))
    check(refused is not None and refused >= 80 and dropped >= 80,
          "half-open TLS handshakes count in the output budget: %d of 250 refused" % dropped,
          "refused=%s dropped=%d" % (refused, dropped))
    check(rss - base < 16 * 1024, "half-open TLS handshakes: RSS grew %d KiB (< 16 MiB)"
          % (rss - base))
    for s in socks:
        s.close()
    good = Good(port, server_pem(port))
    good.start()
    t0 = time.time()
    while len(good.results) < 4 and time.time() - t0 < 20:
        time.sleep(0.05)
    good.stop.set()
    good.join(timeout=30)
    check(good.results[:4] == ["OK"] * 4, "half-open handshakes gone: a client is served",
          good.results[:4])
    p.terminate()
    p.wait(timeout=10)


def stream_cap():
    """Reflection streams count against the 128 concurrent streams of a connection."""
    p, port, mport, log = start([])
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    for _ in range(140):  # all before the server's SETTINGS arrive: h2 does not stop us
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, zw.headers(zw.REFLECT, "http"))
        conn.send_data(sid, zw.grpc_frame(zw.reflect_request()))
    sock.sendall(conn.data_to_send())
    refused, answered, t0 = set(), set(), time.time()
    while len(refused) + len(answered) < 140 and time.time() - t0 < 10:
        sock.settimeout(1)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.StreamReset):
                refused.add(ev.stream_id)
            elif isinstance(ev, h2.events.ResponseReceived):
                answered.add(ev.stream_id)
            elif isinstance(ev, h2.events.DataReceived):
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        sock.sendall(conn.data_to_send())
    check(len(answered) == 128 and len(refused) == 12,
          "140 reflection streams at once: 128 answered, 12 refused",
          "answered=%d refused=%d" % (len(answered), len(refused)))
    sock.close()
    p.terminate()
    p.wait(timeout=10)


def help_text():
    r = subprocess.run([NSIGN, "sign-service", "--help"], capture_output=True, text=True)
    check("--max-output" in r.stdout and "--stall-timeout" in r.stdout,
          "--help documents --max-output and --stall-timeout", r.stdout[-600:])
    for opt, v in (("--max-output", "1M"), ("--max-output", "x"), ("--stall-timeout", "0"),
                   ("--stall-timeout", "-1")):
        r = subprocess.run([NSIGN, "sign-service", "--plaintext", "--keys", keys_v1, opt, v],
                           capture_output=True, text=True)
        check(r.returncode == 2 and opt in r.stderr, "%s %s: usage error" % (opt, v), r.stderr)


try:
    help_text()
    stream_cap()
    zero_window("h2c reflection", "reflect")
    zero_window("h2c ListKeys", "unary")
    zero_window("mTLS reflection", "reflect", tls=True)
    half_open_handshakes()
finally:
    kill_all(procs)
    shutil.rmtree(TMP, ignore_errors=True)
done()
