"""h2drain: a raw HTTP/2 (python3-h2) client that holds a Sign call in flight across a drain,
shared by test_drain.py (sign-service) and test_run_enclave_drain.sh (run-enclave, through the
host's ingress and TLS ending in the enclave).

  Call(sock, req_bytes)  opens the connection (plain socket, or an ssl socket with ALPN h2) and
                         sends Sign's headers and the first 7 bytes of its body: stream 1 is
                         taken by the server but cannot be answered yet
  .wait_goaways(n)       the last_stream_id of each GOAWAY received, once n arrived (or timeout)
  .finish()              sends the rest of the body; returns (headers dict, response bytes)
  .wait_closed()         True once the server closed the connection
  tls_socket(host, port, cert, key)  an ssl socket (ALPN h2; the test's own pinning is not the
                         point here, so the server certificate is not checked)
  ready(url)             (HTTP status or None, body) of a GET
"""
import socket
import ssl
import time
import urllib.error
import urllib.request

import h2.config
import h2.connection
import h2.events

HDRS = [(":method", "POST"), (":scheme", "http"), (":authority", "x"),
        (":path", "/nsign.v1.Signer/Sign"), ("content-type", "application/grpc"),
        ("te", "trailers")]


def tls_socket(host, port, cert=None, key=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    if cert:
        ctx.load_cert_chain(cert, key)
    s = socket.create_connection((host, port), timeout=10)
    return ctx.wrap_socket(s, server_hostname="nsign-enclave")


def ready(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return None, str(e)


class Call:
    def __init__(self, sock, req, send_call=True):
        self.sock = sock
        self.sock.settimeout(1)
        self.framed = b"\x00" + len(req).to_bytes(4, "big") + req
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        if send_call:
            self.conn.send_headers(1, HDRS)
            self.conn.send_data(1, self.framed[:7])
        self.sock.sendall(self.conn.data_to_send())
        self.events = []
        self.eof = False
        self.pump(lambda: any(isinstance(e, h2.events.SettingsAcknowledged)
                              for e in self.events))

    def pump(self, until, limit=15):
        t0 = time.time()
        while time.time() - t0 < limit and not self.eof:
            if until():
                return True
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            except OSError:
                self.eof = True
                break
            if not data:
                self.eof = True
                break
            for ev in self.conn.receive_data(data):
                self.events.append(ev)
                if isinstance(ev, h2.events.DataReceived):
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            out = self.conn.data_to_send()
            if out:
                self.sock.sendall(out)
        return until()

    def goaways(self):
        return [e.last_stream_id for e in self.events
                if isinstance(e, h2.events.ConnectionTerminated)]

    def wait_goaways(self, n, limit=15):
        self.pump(lambda: len(self.goaways()) >= n, limit)
        return self.goaways()

    def finish(self):
        # h2 refuses to send after a GOAWAY: the server named stream 1 as taken (RFC 9113 6.8
        # lets the client finish it), so put the connection back in its open state for it.
        self.conn.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
        self.conn.send_data(1, self.framed[7:], end_stream=True)
        self.sock.sendall(self.conn.data_to_send())
        self.pump(lambda: any(isinstance(e, h2.events.StreamEnded) and e.stream_id == 1
                              for e in self.events))
        hdr, data = {}, b""
        for e in self.events:
            if isinstance(e, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                hdr.update({(k.decode() if isinstance(k, bytes) else k):
                            (v.decode() if isinstance(v, bytes) else v) for k, v in e.headers})
            if isinstance(e, h2.events.DataReceived) and e.stream_id == 1:
                data += e.data
        return hdr, data[5:] if len(data) > 5 else b""

    def wait_closed(self, limit=10):
        self.pump(lambda: False, limit)
        return self.eof
