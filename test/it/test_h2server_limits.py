"""sign-service under load (issue 15): the process-wide budget for buffered request bytes, the
smaller per-connection cap, the request-body idle timeout and the idle-connection timeout, each
driven by a real HTTP/2 client (python3-h2 for the attackers, grpcio for the well-behaved one).

The memory attack: 60 connections, each opening 3 streams that announce a 4 MiB message and send
all of it but the last byte, then hold. The server's peak RSS (VmHWM) must stay under 96 MiB while
a grpcio client keeps calling ListKeys and Health/Check, every call answered OK."""
import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import grpc
import h2.config
import h2.connection
import h2.events

from tap import NSIGN, check, done, free_port, kill_all

TMP = tempfile.mkdtemp(prefix="nsign-h2lim-")
procs = []
MIB = 1024 * 1024
RSS_LIMIT_KB = 96 * 1024
MSG = 4 * MIB - 16  # under the default --max-msg of 4 MiB

keys_path = os.path.join(TMP, "keys.json")
with open(keys_path, "w") as f:
    json.dump({"version": 1, "keys": [{"id": "api", "algorithm": "ed25519",
                                       "private_key": base64.b64encode(os.urandom(32)).decode()}]},
              f)


def start(args=()):
    port = free_port()
    log = os.path.join(TMP, "server-%d.log" % port)
    p = subprocess.Popen([NSIGN, "sign-service", "--plaintext", "--keys", keys_path, "--listen",
                          "tcp:127.0.0.1:%d" % port, "--threads", "2"] + list(args),
                         stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    procs.append(p)
    t0 = time.time()
    while time.time() - t0 < 15:
        with open(log) as f:
            if "serving addr=" in f.read():
                return p, port
        if p.poll() is not None:
            break
        time.sleep(0.05)
    with open(log) as f:
        raise SystemExit("not ok - sign-service did not start %s\n# %s" % (args, f.read()))


def status_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def hdrs(path):
    return [(":method", "POST"), (":scheme", "http"), (":authority", "x"), (":path", path),
            ("content-type", "application/grpc"), ("te", "trailers")]


def h2conn(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    return sock, conn


def pump(sock, conn, statuses, timeout):
    """Reads once (up to timeout): records grpc-status per stream; returns False on close."""
    sock.settimeout(timeout)
    try:
        data = sock.recv(1 << 16)
    except (socket.timeout, BlockingIOError):
        return True
    except OSError:
        return False
    if not data:
        return False
    for ev in conn.receive_data(data):
        if isinstance(ev, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
            for k, v in ev.headers:
                if k in (b"grpc-status", "grpc-status"):
                    statuses[ev.stream_id] = v.decode() if isinstance(v, bytes) else v
        elif isinstance(ev, h2.events.DataReceived):
            conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.ConnectionTerminated):
            statuses["goaway"] = ev.error_code
    out = conn.data_to_send()
    if out:
        sock.sendall(out)
    return True


class Attacker(threading.Thread):
    """One connection, 3 streams, each sending a 4 MiB message but its last byte, then holding.
    A stream the server answers is left alone (sending more would gain the attacker nothing)."""

    def __init__(self, port, stop):
        super().__init__(daemon=True)
        self.port, self.stop, self.statuses, self.settled, self.error = port, stop, {}, False, None

    def run(self):
        try:
            sock, conn = h2conn(self.port)
            left = {}
            for _ in range(3):
                sid = conn.get_next_available_stream_id()
                conn.send_headers(sid, hdrs("/nsign.v1.Signer/Sign"))
                conn.send_data(sid, b"\x00" + MSG.to_bytes(4, "big"))
                left[sid] = MSG - 1
            sock.sendall(conn.data_to_send())
            while not self.stop.is_set():
                sent = False
                for sid in list(left):
                    if sid in self.statuses or left[sid] == 0:
                        del left[sid]
                        continue
                    n = min(left[sid], conn.local_flow_control_window(sid),
                            conn.max_outbound_frame_size)
                    if n > 0:
                        conn.send_data(sid, b"A" * n)
                        left[sid] -= n
                        sent = True
                out = conn.data_to_send()
                if out:
                    sock.sendall(out)
                if not left:
                    self.settled = True
                if not pump(sock, conn, self.statuses, 0.0 if sent else 0.2):
                    break
            sock.close()
        except Exception as e:  # noqa: BLE001 - reported by the check below
            self.error = repr(e)
            self.settled = True


def good_client(port, stop, results):
    ch = grpc.insecure_channel("127.0.0.1:%d" % port)
    calls = [ch.unary_unary("/nsign.v1.Signer/ListKeys"),
             ch.unary_unary("/grpc.health.v1.Health/Check")]
    i = 0
    while not stop.is_set():
        try:
            calls[i % 2](b"", timeout=10)
            results.append("OK")
        except grpc.RpcError as e:
            results.append("%s %s" % (e.code(), e.details()))
        i += 1
        time.sleep(0.02)
    ch.close()


def memory_attack():
    p, port = start()
    base_kb = status_kb(p.pid, "VmRSS")
    stop, good_stop = threading.Event(), threading.Event()
    good = []
    gt = threading.Thread(target=good_client, args=(port, good_stop, good), daemon=True)
    gt.start()
    attackers = [Attacker(port, stop) for _ in range(60)]
    for a in attackers:
        a.start()
    peak, t0, settled_at, blown = 0, time.time(), None, False
    while time.time() - t0 < 120:
        rss = status_kb(p.pid, "VmRSS")
        peak = max(peak, rss)
        if rss > 4 * RSS_LIMIT_KB:
            blown = True  # far over: stop before the machine suffers
            break
        if settled_at is None and all(a.settled for a in attackers):
            settled_at = time.time()
        if settled_at is not None and time.time() - settled_at > 3:
            break
        time.sleep(0.05)
    held_kb = status_kb(p.pid, "VmRSS")
    hwm = status_kb(p.pid, "VmHWM")
    good_during = list(good)
    stop.set()
    good_stop.set()
    for a in attackers:
        a.join(timeout=10)
    gt.join(timeout=15)
    print("# memory attack: rss before=%d KiB, peak sampled=%d KiB, VmHWM=%d KiB, held=%d KiB"
          % (base_kb, peak, hwm, held_kb))
    refused = sum(1 for a in attackers for v in a.statuses.values() if v == "8")
    errors = [a.error for a in attackers if a.error]
    check(not blown and settled_at is not None and not errors,
          "memory attack: 60 connections x 3 streams of 4 MiB all sent or refused",
          "blown=%s settled=%s errors=%s" % (blown, settled_at, errors[:3]))
    check(hwm < RSS_LIMIT_KB, "memory attack: peak RSS %d KiB stays under 96 MiB" % hwm)
    check(refused > 0, "memory attack: messages over the budget refused RESOURCE_EXHAUSTED "
          "(%d streams)" % refused)
    bad = [r for r in good_during if r != "OK"]
    check(len(good_during) >= 10 and not bad,
          "memory attack: the well-behaved client was served throughout (%d calls)"
          % len(good_during), bad[:5])
    p.terminate()
    p.wait(timeout=10)


def per_connection_cap():
    """Two 4 MiB messages on one connection: the second is refused as it starts (one connection
    buffers at most --max-msg + 256 KiB); the first completes and is answered."""
    p, port = start()
    sock, conn = h2conn(port)
    st = {}
    conn.send_headers(1, hdrs("/nsign.v1.Signer/Sign"))
    conn.send_headers(3, hdrs("/nsign.v1.Signer/Sign"))
    conn.send_data(1, b"\x00" + MSG.to_bytes(4, "big") + b"A" * 1000)
    conn.send_data(3, b"\x00" + MSG.to_bytes(4, "big") + b"A" * 1000)
    sock.sendall(conn.data_to_send())
    t0 = time.time()
    while 3 not in st and time.time() - t0 < 10 and pump(sock, conn, st, 0.5):
        pass
    check(st.get(3) == "8", "per-connection cap: a second 4 MiB message on one connection is "
          "refused RESOURCE_EXHAUSTED as it starts", st)
    check(1 not in st, "per-connection cap: the first message is still being received", st)
    sock.close()
    p.terminate()
    p.wait(timeout=10)


def body_idle_timeout():
    p, port = start(["--body-timeout", "1"])
    sock, conn = h2conn(port)
    st = {}
    conn.send_headers(1, hdrs("/nsign.v1.Signer/Sign"))
    conn.send_data(1, b"\x00\x00\x00\x01\x00" + b"x" * 10)  # 256-byte message, 10 sent
    sock.sendall(conn.data_to_send())
    t0 = time.time()
    while 1 not in st and time.time() - t0 < 20 and pump(sock, conn, st, 0.5):
        pass
    check(st.get(1) == "4", "body timeout: a stalled request body is answered DEADLINE_EXCEEDED",
          st)
    # a request whose headers came but no message at all: the same
    conn.send_headers(3, hdrs("/nsign.v1.Signer/ListKeys"))
    sock.sendall(conn.data_to_send())
    t0 = time.time()
    while 3 not in st and time.time() - t0 < 20 and pump(sock, conn, st, 0.5):
        pass
    check(st.get(3) == "4", "body timeout: a unary request without its message is answered", st)
    sock.close()
    p.terminate()
    p.wait(timeout=10)


def idle_connection():
    """After the preface, a client that only PINGs is idle: GOAWAY and close; one with a stream
    open is not."""
    p, port = start(["--idle-timeout", "1", "--body-timeout", "30"])
    sock, conn = h2conn(port)
    busy, bconn = h2conn(port)
    bconn.send_headers(1, hdrs("/nsign.v1.Signer/Sign"))
    bconn.send_data(1, b"\x00\x00\x00\x01\x00" + b"x" * 10)
    busy.sendall(bconn.data_to_send())
    st, bst = {}, {}
    closed, t0 = False, time.time()
    while time.time() - t0 < 20:
        if "goaway" not in st:
            conn.ping(b"12345678")
            try:
                sock.sendall(conn.data_to_send())
            except OSError:
                closed = True
                break
        if not pump(sock, conn, st, 0.3):
            closed = True
            break
        pump(busy, bconn, bst, 0.0)
    check(closed and st.get("goaway") == 0,
          "idle timeout: a connection with only PINGs gets GOAWAY(NO_ERROR) and is closed", st)
    alive = pump(busy, bconn, bst, 0.2)
    bconn.ping(b"abcdefgh")
    busy.sendall(bconn.data_to_send())
    alive = alive and pump(busy, bconn, bst, 1.0)
    check(alive and "goaway" not in bst and 1 not in bst,
          "idle timeout: a connection with a request in progress stays open", bst)
    sock.close()
    busy.close()
    p.terminate()
    p.wait(timeout=10)


def idle_through_bridge():
    """The issue's case: clients that send the preface and then nothing, through a bridge with
    --max-conns 5, must not keep a legitimate ListKeys out: the server closes them after its
    idle timeout and the bridge's own idle timeout frees the slots the clients still hold."""
    p, port = start(["--idle-timeout", "1"])
    front = free_port()
    b = subprocess.Popen([NSIGN, "bridge", "--max-conns", "5", "--idle-timeout", "2",
                          "tcp:127.0.0.1:%d" % front, "tcp:127.0.0.1:%d" % port],
                         stdout=subprocess.DEVNULL, stderr=open(os.path.join(TMP, "bridge.log"), "w"))
    procs.append(b)
    t0 = time.time()
    while time.time() - t0 < 10:
        try:
            socket.create_connection(("127.0.0.1", front), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    time.sleep(0.5)  # the probe connection's slot is freed
    idle = []
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", front), timeout=10)
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        idle.append(s)
    ok, t0, last = False, time.time(), ""
    while time.time() - t0 < 30 and not ok:
        try:  # a fresh connection each try, as a client that was refused would make
            sock, conn = h2conn(front)
            st = {}
            conn.send_headers(1, hdrs("/nsign.v1.Signer/ListKeys"))
            conn.send_data(1, b"\x00\x00\x00\x00\x00", end_stream=True)
            sock.sendall(conn.data_to_send())
            t1 = time.time()
            while 1 not in st and time.time() - t1 < 5 and pump(sock, conn, st, 0.5):
                pass
            sock.close()
            ok = st.get(1) == "0"
            last = repr(st)
        except OSError as e:
            last = repr(e)
        if not ok:
            time.sleep(0.2)
    check(ok, "idle HTTP/2 clients holding every bridge slot: ListKeys gets through once they "
          "time out", last + "\n" + open(os.path.join(TMP, "bridge.log")).read())
    for s in idle:
        s.close()
    b.terminate()
    b.wait(timeout=10)
    p.terminate()
    p.wait(timeout=10)


def help_text():
    r = subprocess.run([NSIGN, "sign-service", "--help"], capture_output=True, text=True)
    check("--max-buffered" in r.stdout and "--idle-timeout" in r.stdout and "default 60" in
          r.stdout and "--body-timeout" in r.stdout, "--help documents the limits", r.stdout)
    r = subprocess.run([NSIGN, "sign-service", "--plaintext", "--keys", keys_path, "--max-buffered", "1M"],
                       capture_output=True, text=True)
    check(r.returncode == 2 and "--max-buffered" in r.stderr,
          "--max-buffered below one largest message: usage error", r.stderr)


try:
    help_text()
    per_connection_cap()
    body_idle_timeout()
    idle_connection()
    idle_through_bridge()
    memory_attack()
finally:
    kill_all(procs)
    shutil.rmtree(TMP, ignore_errors=True)
done()
