#!/usr/bin/env bash
# bench/zerowindow.sh [BUILD_DIR]: the zero-window attack of issue 22 (item 1) against
# sign-service, with the defaults of production (--stall-timeout 10, --max-output 32M). CONNS
# connections (default 60) advertise SETTINGS_INITIAL_WINDOW_SIZE=0 and open 128 streams each
# (MODE=reflect: 40 ServerReflectionInfo requests per stream; MODE=unary: one ListKeys per stream;
# test/lib/zerowindow.py), in cleartext or with TLS=1 over mutual TLS with a pinned client
# certificate. Meanwhile a grpcio client calls ListKeys in a loop. Prints the bound, the server's
# peak RSS (VmHWM), the budget it reports, how long until the attackers were reaped, and the
# well-behaved client's latency (p50/p99/max) at rest and under attack with their ratio.
# BEFORE=path/to/an/older/nsign runs the same attack against it for comparison (an older build
# has no bound: the attack stops when its RSS passes 1 GiB). Not a test: numbers only.
set -euo pipefail
cd "$(dirname "$0")/.."
O=${1:-build}
export NSIGN=$O/nsign CONNS=${CONNS:-60} MODE=${MODE:-reflect} TLS=${TLS:-0} BEFORE=${BEFORE:-}
export SECONDS_AT_REST=${SECONDS_AT_REST:-5}
export PYTHONPATH=$PWD/test/lib${PYTHONPATH:+:$PYTHONPATH}
exec /usr/bin/python3 - <<'PYEOF'
import base64, json, os, re, shutil, socket, ssl, subprocess, tempfile, threading, time
import urllib.request

import grpc
from cryptography.hazmat.primitives.asymmetric import ec

import mtls
import zerowindow as zw
from tap import free_port

conns, mode, tls = int(os.environ["CONNS"]), os.environ["MODE"], os.environ["TLS"] == "1"
tmp = tempfile.mkdtemp(prefix="nsign-bench-zw-")
pay = mtls.client_cert(tmp, "bench", ec.generate_private_key(ec.SECP256R1()))
key = {"id": "api", "algorithm": "ed25519", "private_key": base64.b64encode(os.urandom(32)).decode()}
keys = mtls.write(tmp, "keys.json", json.dumps(
    {"version": 2, "clients": [{"id": "bench", "spki_sha256": pay["pin"]}],
     "keys": [dict(key, allow=["bench"])]} if tls else {"version": 1, "keys": [key]}).encode())


def start(nsign):
    port, mport = free_port(), free_port()
    log = os.path.join(tmp, "server-%d.log" % port)
    p = subprocess.Popen([nsign, "sign-service", "--keys", keys, "--listen",
                          "tcp:127.0.0.1:%d" % port, "--metrics", "tcp:127.0.0.1:%d" % mport]
                         + ([] if tls else ["--plaintext"]), stdout=subprocess.DEVNULL,
                         stderr=open(log, "w"))
    for _ in range(300):
        if "serving addr=" in open(log).read():
            return p, port, mport, log
        time.sleep(0.05)
    raise SystemExit("sign-service did not start: " + open(log).read())


def metric(mport, name):
    try:
        body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=5).read()
    except OSError:
        return None
    m = re.search(r"^%s (\S+)$" % name, body.decode(), re.M)
    return float(m.group(1)) if m else None


def channel(port):
    if not tls:
        return grpc.insecure_channel("127.0.0.1:%d" % port)
    with socket.create_connection(("127.0.0.1", port)) as s:
        with zw.tls_context(pay).wrap_socket(s, server_hostname="nsign-enclave") as t:
            pem = ssl.DER_cert_to_PEM_cert(t.getpeercert(binary_form=True)).encode()
    creds = grpc.ssl_channel_credentials(root_certificates=pem, private_key=pay["key_pem"],
                                         certificate_chain=pay["cert_pem"])
    return grpc.secure_channel("127.0.0.1:%d" % port, creds,
                               options=[("grpc.ssl_target_name_override", "nsign-enclave")])


def calls(ch, until, lat, fails):
    f = ch.unary_unary("/nsign.v1.Signer/ListKeys")
    while not until():
        t0 = time.perf_counter()
        try:
            f(b"", timeout=30)
            lat.append(time.perf_counter() - t0)
        except grpc.RpcError as e:
            fails.append(str(e.code()))
        time.sleep(0.01)


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))] * 1000 if xs else float("nan")


def run(nsign, label):
    p, port, mport, log = start(nsign)
    ch = channel(port)
    rest, fails = [], []
    t0 = time.time()
    calls(ch, lambda: time.time() - t0 > float(os.environ["SECONDS_AT_REST"]), rest, fails)
    base = zw.status_kb(p.pid, "VmRSS")
    stop, done = threading.Event(), threading.Event()
    under = []
    g = threading.Thread(target=calls, args=(ch, done.is_set, under, fails), daemon=True)
    g.start()
    attackers = zw.run_attack(port, conns, stop, mode=mode,
                              tls=zw.tls_context(pay) if tls else None)
    t0, peak_held, reaped_at, blown = time.time(), 0, None, False
    while time.time() - t0 < 60:
        if zw.status_kb(p.pid, "VmRSS") > 1024 * 1024:
            blown = True
            break
        peak_held = max(peak_held, metric(mport, "nsign_output_bytes") or 0)
        if all(a.closed_at is not None or a.error for a in attackers):
            reaped_at = max(a.closed_at or 0 for a in attackers) - t0
            break
        time.sleep(0.2)
    done.set()
    stop.set()
    g.join(timeout=60)
    hwm = zw.status_kb(p.pid, "VmHWM")
    limit = metric(mport, "nsign_output_limit_bytes")
    print("%s: %d %s connections (%s), %d streams opened" % (
        label, conns, "mTLS" if tls else "h2c", mode, sum(a.opened for a in attackers)))
    print("  RSS before %.1f MiB, peak (VmHWM) %.1f MiB%s" % (
        base / 1024, hwm / 1024, " (stopped at 1 GiB)" if blown else ""))
    if limit:
        print("  output budget %.0f MiB, peak held %.1f MiB" % (limit / 2**20, peak_held / 2**20))
    print("  attackers reaped after %s" % ("%.1f s" % reaped_at if reaped_at else "(not reaped)"))
    print("  ListKeys at rest:     p50 %.2f ms  p99 %.2f ms  max %.2f ms  (%d calls)" % (
        pct(rest, .5), pct(rest, .99), pct(rest, 1), len(rest)))
    print("  ListKeys under attack: p50 %.2f ms  p99 %.2f ms  max %.2f ms  (%d calls, %d failed)"
          % (pct(under, .5), pct(under, .99), pct(under, 1), len(under), len(fails)))
    if rest and under:
        print("  ratio under attack / at rest: p50 %.2fx  p99 %.2fx" % (
            pct(under, .5) / pct(rest, .5), pct(under, .99) / pct(rest, .99)))
    ch.close()
    p.kill()
    p.wait()


try:
    print("bound (README): --max-buffered 32M of requests + --max-output 32M of answers and "
          "connection state + ~4 MiB of code and keys: < 96 MiB RSS")
    run(os.environ["NSIGN"], "this build")
    if os.environ["BEFORE"]:
        run(os.environ["BEFORE"], "BEFORE=" + os.environ["BEFORE"])
finally:
    shutil.rmtree(tmp, ignore_errors=True)
PYEOF
