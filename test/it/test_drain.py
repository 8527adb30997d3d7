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
import urllib.error
import urllib.request

from tap import NSIGN, check, done, free_port, kill_all, skip

try:
    import h2.config
    import h2.connection
    import h2.events
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


def ready(mport):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/ready" % mport, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return None, str(e)


def h2conn(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    return sock, conn


HDRS = [(":method", "POST"), (":scheme", "http"), (":authority", "x"),
        (":path", "/nsign.v1.Signer/Sign"), ("content-type", "application/grpc"),
        ("te", "trailers")]


def pump(sock, conn, until, limit=15):
    """Reads events until until(events_so_far) is true or the peer closes; returns (events, eof)."""
    evs = []
    t0 = time.time()
    while time.time() - t0 < limit:
        if until(evs):
            return evs, False
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            return evs, True
        if not data:
            return evs, True
        for ev in conn.receive_data(data):
            evs.append(ev)
            if isinstance(ev, h2.events.DataReceived):
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        out = conn.data_to_send()
        if out:
            sock.sendall(out)
    return evs, False


def goaways(evs):
    return [e.last_stream_id for e in evs if isinstance(e, h2.events.ConnectionTerminated)]


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return False
    except ConnectionRefusedError:
        return True


try:
    # --- a drain with a call in flight ---
    p, port, mport, log = start(20)
    st, body = ready(mport)
    check(st == 200 and body.startswith("SERVING"), "GET /ready is 200 SERVING while serving",
          (st, body))
    msg = b"drained but answered"
    req = pb.SignRequest(key_id="k", message=msg).SerializeToString()
    framed = b"\x00" + len(req).to_bytes(4, "big") + req
    a, ca = h2conn(port)
    ca.send_headers(1, HDRS)
    ca.send_data(1, framed[:7])  # the call is taken (stream 1 open) but its body is not complete
    a.sendall(ca.data_to_send())
    b, cb = h2conn(port)  # an idle connection
    pump(a, ca, lambda evs: any(isinstance(e, h2.events.SettingsAcknowledged) for e in evs))
    pump(b, cb, lambda evs: any(isinstance(e, h2.events.SettingsAcknowledged) for e in evs))

    p.send_signal(signal.SIGTERM)
    st = None
    for _ in range(100):
        st, body = ready(mport)
        if st == 503:
            break
        time.sleep(0.05)
    check(st == 503 and body.startswith("DRAINING"), "drain: GET /ready turns 503 DRAINING",
          (st, body))

    # h2 reports each GOAWAY as ConnectionTerminated; both come before the call is finished.
    evs, eof = pump(a, ca, lambda evs: len(goaways(evs)) >= 2)
    g = goaways(evs)
    check(len(g) >= 2 and g[0] == 2**31 - 1 and g[1] == 1,
          "drain: notice GOAWAY (2^31-1), then the final one naming stream 1", (g, eof))
    check(refused(port), "drain: a new connection is refused (listener closed)")

    # The call in flight finishes and is answered.
    ca._data_to_send = b""
    # h2 refuses to send after a GOAWAY: put the connection back in its open state for the
    # stream the server said it took (stream 1 <= last_stream_id), which RFC 9113 allows.
    ca.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
    ca.send_data(1, framed[7:], end_stream=True)
    a.sendall(ca.data_to_send())
    evs, eof = pump(a, ca, lambda evs: any(isinstance(e, h2.events.StreamEnded) and
                                           e.stream_id == 1 for e in evs))
    hdr = {}
    data = b""
    for e in evs:
        if isinstance(e, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
            hdr.update({(k.decode() if isinstance(k, bytes) else k):
                        (v.decode() if isinstance(v, bytes) else v) for k, v in e.headers})
        if isinstance(e, h2.events.DataReceived):
            data += e.data
    ok = hdr.get("grpc-status") == "0" and len(data) > 5
    if ok:
        sig = pb.SignResponse.FromString(data[5:]).signature
        try:
            ed.public_key().verify(sig, msg)
        except Exception:
            ok = False
    check(ok, "drain: the call in flight is answered OK with a valid signature", (hdr, data[:40]))
    evs, eof = pump(b, cb, lambda evs: False, limit=10)
    check(eof and len(goaways(evs)) >= 1, "drain: the idle connection gets GOAWAY and is "
          "closed", (goaways(evs), eof))
    try:
        rc = p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        rc = None
    check(rc == 0, "drain: the process exits 0 once no call is left", rc)

    # --- the drain's bound: a call that never completes is cut at --drain ---
    p, port, mport, log = start(2)
    a, ca = h2conn(port)
    ca.send_headers(1, HDRS)
    ca.send_data(1, framed[:7])
    a.sendall(ca.data_to_send())
    pump(a, ca, lambda evs: any(isinstance(e, h2.events.SettingsAcknowledged) for e in evs))
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        rc = None
    check(rc == 0, "drain: a call that never completes does not hold the process past --drain",
          rc)
    evs, eof = pump(a, ca, lambda evs: False, limit=5)
    check(eof, "drain: its connection is closed at the end")

    # --- --drain 0: SIGTERM stops at once, as before ---
    p, port, mport, log = start(0)
    a, ca = h2conn(port)
    ca.send_headers(1, HDRS)
    ca.send_data(1, framed[:7])
    a.sendall(ca.data_to_send())
    pump(a, ca, lambda evs: any(isinstance(e, h2.events.SettingsAcknowledged) for e in evs))
    p.send_signal(signal.SIGTERM)
    evs, eof = pump(a, ca, lambda evs: False, limit=10)
    g = goaways(evs)
    check(eof and g and g[0] != 2**31 - 1, "--drain 0: one final GOAWAY and the connection "
          "closed with the call unanswered (the immediate stop)", (g, eof))
    try:
        rc = p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        rc = None
    check(rc == 0, "--drain 0: exits 0", rc)
finally:
    kill_all(procs)
    shutil.rmtree(TMP, ignore_errors=True)
done()
