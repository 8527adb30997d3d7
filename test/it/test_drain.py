"""sign-service's graceful drain (issue 23) against python3-h2, a raw HTTP/2 client that shows
each frame: on SIGTERM /ready turns 503 (DRAINING), the listener closes (a new connection is
refused), every connection gets the notice GOAWAY (last stream 2^31-1) and then the final one
naming the last stream taken, a call in flight (its request body half sent when the drain began)
is still answered with a valid signature, an idle connection is closed, and the process exits by
itself once no call is left. A second server shows the drain's bound: a call that never completes
does not keep the process past --drain. --drain 0 keeps the old immediate stop.
On the old code (SIGTERM = stop at once) the in-flight call is never answered."""
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from tap import NSIGN, check, done, free_port, kill_all, skip

try:
    import h2drain
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
except ImportError as e:
    skip("drain", "python3-h2 and python3-cryptography are needed (%s)" % e)
    done()

ROOT = os.environ.get("NS_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
TMP = tempfile.mkdtemp(prefix="nsign-drain-")
procs = []
subprocess.run(["protoc", "-I" + os.path.join(ROOT, "proto"), "--python_out=" + TMP,
                "nsign.proto"], check=True)
sys.path.insert(0, TMP)
import nsign_pb2 as pb  # noqa: E402

ed = ed25519.Ed25519PrivateKey.generate()
seed = ed.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                        serialization.NoEncryption())
KEYS_PATH = os.path.join(TMP, "keys.json")
with open(KEYS_PATH, "w") as f:
    json.dump({"version": 1, "keys": [{"id": "k", "algorithm": "ed25519",
                                       "private_key": base64.b64encode(seed).decode()}]}, f)


def start(drain):
    port, mport = free_port(), free_port()
    log = os.path.join(TMP, "server-%d.log" % port)
    p = subprocess.Popen([NSIGN, "sign-service", "--plaintext", "--keys", KEYS_PATH, "--listen",
                          "tcp:127.0.0.1:%d" % port, "--threads", "2", "--metrics",
                          "tcp:127.0.0.1:%d" % mport, "--drain", str(drain)],
                         stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    procs.append(p)
    for _ in range(300):
        if "serving addr=" in open(log).read():
            return p, port, mport, log
        if p.poll() is not None:
            break
        time.sleep(0.05)
    raise SystemExit("not ok - sign-service did not start\n# " + open(log).read())


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return False
    except ConnectionRefusedError:
        return True


def ready(mport):
    return h2drain.ready("http://127.0.0.1:%d/ready" % mport)


def call(port):
    return h2drain.Call(socket.create_connection(("127.0.0.1", port), timeout=10), REQ)


def wait_rc(p):
    try:
        return p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        return None


MSG = b"drained but answered"
REQ = pb.SignRequest(key_id="k", message=MSG).SerializeToString()
try:
    # --- a drain with a call in flight ---
    p, port, mport, log = start(20)
    st, body = ready(mport)
    check(st == 200 and body.startswith("SERVING"), "GET /ready is 200 SERVING while serving",
          (st, body))
    a = call(port)  # the call is taken (stream 1 open) but its body is not complete
    b = h2drain.Call(socket.create_connection(("127.0.0.1", port), timeout=10), REQ,
                     send_call=False)  # an idle connection
    p.send_signal(signal.SIGTERM)
    st = None
    for _ in range(100):
        st, body = ready(mport)
        if st == 503:
            break
        time.sleep(0.05)
    check(st == 503 and body.startswith("DRAINING"), "drain: GET /ready turns 503 DRAINING",
          (st, body))
    g = a.wait_goaways(2)
    check(len(g) >= 2 and g[0] == 2**31 - 1 and g[1] == 1,
          "drain: notice GOAWAY (2^31-1), then the final one naming stream 1", g)
    check(refused(port), "drain: a new connection is refused (listener closed)")
    hdr, resp = a.finish()
    ok = hdr.get("grpc-status") == "0" and resp
    if ok:
        try:
            ed.public_key().verify(pb.SignResponse.FromString(resp).signature, MSG)
        except Exception:
            ok = False
    check(ok, "drain: the call in flight is answered OK with a valid signature", hdr)
    check(b.wait_closed() and b.goaways(), "drain: the idle connection gets GOAWAY and is closed",
          b.goaways())
    check(wait_rc(p) == 0, "drain: the process exits 0 once no call is left")

    # --- the drain's bound: a call that never completes is cut at --drain ---
    p, port, mport, log = start(2)
    a = call(port)
    p.send_signal(signal.SIGTERM)
    check(wait_rc(p) == 0, "drain: a call that never completes does not hold the process past "
          "--drain")
    check(a.wait_closed(5), "drain: its connection is closed at the end")

    # --- --drain 0: SIGTERM stops at once, as before ---
    p, port, mport, log = start(0)
    a = call(port)
    p.send_signal(signal.SIGTERM)
    closed = a.wait_closed()
    g = a.goaways()
    check(closed and g and g[0] != 2**31 - 1, "--drain 0: one final GOAWAY and the connection "
          "closed with the call unanswered (the immediate stop)", g)
    check(wait_rc(p) == 0, "--drain 0: exits 0")
finally:
    kill_all(procs)
    shutil.rmtree(TMP, ignore_errors=True)
done()
