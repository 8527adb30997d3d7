"""Integration tests of `nsign bridge` over tcp and unix on this machine (AF_VSOCK runs in test/vm).

Real peers are Python sockets: an echo server that sends a trailer after it sees EOF (proves
client->target half-close while the other way stays open), a server that half-closes first,
servers that reset, a listener with a full backlog (connect timeout, stays on loopback).
Checks data integrity (0 B, 1 B, 64 KiB +-1, 64 MiB), half-close both ways, 200 concurrent
connections, resets, refused target, connect and idle timeouts, --max-conns, --allow, the
close log line, and a clean exit on SIGTERM/SIGINT. No timing assertions: every wait is bounded
and only decides failure when the bound passes.
"""
import hashlib
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

from tap import NSIGN, check, done, free_port, kill_all, recv_all

TRAILER = b"<eof-seen>"
TMP = tempfile.mkdtemp(prefix="ns-it-bridge-")
procs = []


def addr_str(a):
    return "unix:%s" % a if isinstance(a, str) else "tcp:127.0.0.1:%d" % a


def sock_for(a):
    if isinstance(a, str):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return s


def connect(a, timeout=30):
    s = sock_for(a)
    s.settimeout(timeout)
    s.connect(a if isinstance(a, str) else ("127.0.0.1", a))
    return s


def ends_without_data(s, reset_ok):
    """Reads s to its end and closes it: True when the peer closed it without sending anything
    (or reset it, if reset_ok); False on data, a read timeout or an unexpected reset."""
    try:
        ok = recv_all(s) == b""
    except ConnectionResetError:
        ok = reset_ok
    except socket.timeout:
        ok = False
    s.close()
    return ok


class Server:
    """Accepts in a thread and runs handler(conn) per connection in its own thread."""

    def __init__(self, handler, unix=False, backlog=512, accept=True):
        self.addr = os.path.join(TMP, "srv%d.sock" % id(self)) if unix else free_port()
        self.sock = sock_for(self.addr)
        self.sock.bind(self.addr if unix else ("127.0.0.1", self.addr))
        self.sock.listen(backlog)
        self.handler = handler
        self.seen = []
        if accept:
            threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            c.settimeout(60)
            threading.Thread(target=self.run, args=(c,), daemon=True).start()

    def run(self, c):
        try:
            self.handler(self, c)
        except OSError as e:
            self.seen.append(("error", str(e)))
        finally:
            c.close()


def echo(srv, c):
    """Echo until EOF, then send a trailer and close: the trailer proves the EOF arrived while
    the client could still read."""
    while True:
        d = c.recv(1 << 20)
        if not d:
            break
        c.sendall(d)
    c.sendall(TRAILER)
    c.shutdown(socket.SHUT_WR)


def speaks_first(srv, c):
    """Sends a greeting and half-closes at once, then collects what the client sends."""
    c.sendall(b"hello-from-target")
    c.shutdown(socket.SHUT_WR)
    srv.seen.append(("late", recv_all(c)))


def resets(srv, c):
    c.recv(10)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def drains(srv, c):
    srv.seen.append(("drained", recv_all(c)))


class Bridge:
    def __init__(self, *args):
        self.log = []
        self.p = subprocess.Popen([NSIGN, "bridge"] + list(args), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(self.p)
        self.listening = threading.Event()
        positional, skip = 0, False
        for a in args:
            if skip:
                skip = False
            elif a.startswith("--"):
                skip = True
            else:
                positional += 1
        self.n_pairs = positional // 2
        threading.Thread(target=self.read, daemon=True).start()
        self.ready = self.wait_for(lambda: len(self.grep("listening on=")) >= self.n_pairs, 10)

    def read(self):
        for line in self.p.stderr:
            self.log.append(line.decode(errors="replace").rstrip())

    def grep(self, pat):
        return [l for l in list(self.log) if re.search(pat, l)]

    def wait_for(self, cond, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if cond():
                return True
            if self.p.poll() is not None:
                time.sleep(0.1)
                return cond()
            time.sleep(0.02)
        return cond()

    def stop(self, sig=signal.SIGTERM):
        self.p.send_signal(sig)
        try:
            rc = self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            rc = "hung"
        time.sleep(0.05)
        return rc


def roundtrip(front, payload):
    """Sends payload through the bridge to the echo server while reading; returns the reply."""
    s = connect(front, timeout=60)
    got = {}

    def reader():
        try:
            got["data"] = recv_all(s)
        except OSError as e:
            got["err"] = e

    t = threading.Thread(target=reader)
    t.start()
    view = memoryview(payload)
    for i in range(0, len(view), 1 << 20):
        s.sendall(view[i:i + (1 << 20)])
    s.shutdown(socket.SHUT_WR)
    t.join(120)
    s.close()
    return got.get("data", b"<error %r>" % got.get("err"))


def main():
    tcp_echo = Server(echo)
    unix_echo = Server(echo, unix=True)
    f_tt, f_tu, f_ut, f_uu = free_port(), free_port(), os.path.join(TMP, "fu.sock"), \
        os.path.join(TMP, "fuu.sock")
    b = Bridge(addr_str(f_tt), addr_str(tcp_echo.addr), addr_str(f_tu), addr_str(unix_echo.addr),
               addr_str(f_ut), addr_str(tcp_echo.addr), addr_str(f_uu), addr_str(unix_echo.addr))
    check(b.ready, "bridge with four pairs (tcp/unix both sides) listens", "\n".join(b.log))
    big = os.urandom(64 << 20)
    for name, front in (("tcp->tcp", f_tt), ("tcp->unix", f_tu), ("unix->tcp", f_ut),
                        ("unix->unix", f_uu)):
        for n in (0, 1, 65535, 65536, 65537, 1000003):
            data = big[:n]
            r = roundtrip(front, data)
            check(r == data + TRAILER, "%s: %d bytes intact both ways, EOF propagated" % (name, n),
                  "got %d bytes" % len(r))
    for name, front in (("tcp->tcp", f_tt), ("unix->unix", f_uu)):
        r = roundtrip(front, big)
        check(len(r) == len(big) + len(TRAILER) and
              hashlib.sha256(r[:len(big)]).digest() == hashlib.sha256(big).digest() and
              r.endswith(TRAILER), "%s: 64 MiB intact both ways" % name,
              "got %d bytes\n%s\n%r" % (len(r), "\n".join(b.log[-3:]), tcp_echo.seen))
    # the read/write fallback (used where a family refuses splice, e.g. vsock on older kernels)
    fns = free_port()
    bns = Bridge(addr_str(fns), addr_str(unix_echo.addr), "--no-splice")
    check(bns.ready, "--no-splice bridge listens")
    for n in (0, 1, 65535, 65537, 1000003):
        check(roundtrip(fns, big[:n]) == big[:n] + TRAILER, "--no-splice: %d bytes intact" % n)
    r = roundtrip(fns, big)
    check(r == big + TRAILER, "--no-splice: 64 MiB intact both ways", "got %d bytes" % len(r))
    bns.stop()
    del big

    # the close log line: one per connection, bytes each way, duration
    b.wait_for(lambda: len(b.grep("closed id=")) >= 26, 10)
    lines = b.grep(r"closed id=\d+ .* up=65537 down=%d ms=\d+ reason=done" % (65537 + len(TRAILER)))
    check(len(lines) == 4, "one close line per connection with up/down bytes and ms",
          "\n".join(b.log[-5:]))

    # half-close the other way: the target half-closes first, the client still sends after
    first = Server(speaks_first)
    fb = free_port()
    b2 = Bridge(addr_str(fb), addr_str(first.addr))
    check(b2.ready, "second bridge listens")
    s = connect(fb)
    greeting = recv_all(s)  # EOF from the target while our write side is still open
    s.sendall(b"late-data-after-target-eof")
    s.shutdown(socket.SHUT_WR)
    s.settimeout(10)
    tail = recv_all(s)
    s.close()
    b2.wait_for(lambda: first.seen, 10)
    check(greeting == b"hello-from-target" and tail == b"", "target->client EOF reaches the client")
    check(first.seen == [("late", b"late-data-after-target-eof")],
          "client->target keeps flowing after the target half-closed", repr(first.seen))

    # 200 concurrent connections, all open at once
    socks = []
    for i in range(200):
        socks.append(connect(f_tt))
    payloads = [os.urandom(4096 + i) for i in range(200)]
    results = [None] * 200

    def one(i):
        try:
            socks[i].sendall(payloads[i])
            socks[i].shutdown(socket.SHUT_WR)
            results[i] = recv_all(socks[i])
        except OSError as e:
            results[i] = e
        socks[i].close()

    ts = [threading.Thread(target=one, args=(i,)) for i in range(200)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    good = sum(1 for i in range(200) if results[i] == payloads[i] + TRAILER)
    check(good == 200, "200 concurrent connections all intact", "%d of 200" % good)

    # backpressure: a target that never reads stalls the client instead of filling memory
    stall_evt = threading.Event()

    def never_reads(srv, c):
        stall_evt.wait(60)

    stall = Server(never_reads)
    fs = free_port()
    bs = Bridge(addr_str(fs), addr_str(stall.addr))
    s = connect(fs)
    s.setblocking(False)
    chunk = b"z" * (1 << 20)
    accepted, stalls = 0, 0
    while accepted < (512 << 20) and stalls < 20:
        try:
            accepted += s.send(chunk)
            stalls = 0
        except BlockingIOError:
            stalls += 1
            time.sleep(0.05)
    rss = 0
    for line in open("/proc/%d/status" % bs.p.pid):
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) // 1024
    check(accepted < (128 << 20), "a reader that never reads stalls its writer",
          "%d MiB accepted" % (accepted >> 20))
    check(rss < 16, "the bridge does not buffer what it cannot deliver", "RSS %d MiB" % rss)
    stall_evt.set()
    s.close()
    bs.stop()

    # peer reset by the target
    rst = Server(resets)
    fr = free_port()
    b3 = Bridge(addr_str(fr), addr_str(rst.addr), "--idle-timeout", "1")
    check(b3.ready, "third bridge listens")
    s = connect(fr, timeout=10)
    s.sendall(b"x" * 10)
    try:
        r = recv_all(s)
        ended = True
    except (ConnectionResetError, socket.timeout) as e:
        ended = not isinstance(e, socket.timeout)
    s.close()
    check(ended, "a target reset ends the client's connection")
    check(b3.wait_for(lambda: b3.grep(r"closed id=1 .*reason=.*(reset|Connection reset)"), 10),
          "the reset is logged as the close reason", "\n".join(b3.log))
    # reset by the client: the target sees its connection end
    dr = Server(drains)
    fd2 = free_port()
    b4 = Bridge(addr_str(fd2), addr_str(dr.addr))
    s = connect(fd2)
    s.sendall(b"some bytes")
    time.sleep(0.2)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    check(b4.wait_for(lambda: dr.seen, 10), "a client reset ends the target's connection",
          repr(dr.seen))
    check(b4.wait_for(lambda: b4.grep(r"closed id=1 .*reason="), 10),
          "client reset logged", "\n".join(b4.log))
    check(roundtrip(f_tt, b"still alive") == b"still alive" + TRAILER,
          "other connections unaffected by resets")

    # refused target
    dead_port = free_port()
    fref = free_port()
    b5 = Bridge(addr_str(fref), addr_str(dead_port), addr_str(free_port()),
                "unix:" + os.path.join(TMP, "nobody.sock"))
    check(ends_without_data(connect(fref, timeout=10), reset_ok=True),
          "refused target: the client's connection is closed")
    check(b5.wait_for(lambda: b5.grep(r"closed id=1 .*reason=.*refused"), 10),
          "refused target logged with the reason", "\n".join(b5.log))
    fn = int(b5.grep("listening on=")[1].split("port=")[1].split()[0])
    s = connect(fn, timeout=10)
    try:
        recv_all(s)
    except ConnectionResetError:
        pass
    s.close()
    check(b5.wait_for(lambda: b5.grep(r"closed id=2 .*reason=.*(No such file|refused)"), 10),
          "missing unix target logged", "\n".join(b5.log))
    check(b5.p.poll() is None, "bridge keeps running after failed connects")

    # connect timeout: a listener whose accept queue is full drops SYNs (loopback only)
    full = Server(None, backlog=0, accept=False)
    fillers = []
    for _ in range(4):
        f = socket.socket()
        f.setblocking(False)
        try:
            f.connect(("127.0.0.1", full.addr))
        except BlockingIOError:
            pass
        fillers.append(f)
    time.sleep(0.2)
    fct = free_port()
    b6 = Bridge(addr_str(fct), addr_str(full.addr), "--connect-timeout", "1")
    check(ends_without_data(connect(fct, timeout=20), reset_ok=False),
          "connect timeout: the client's connection is closed")
    check(b6.wait_for(lambda: b6.grep(r"closed id=1 .*reason=connect-timeout"), 10),
          "connect timeout logged", "\n".join(b6.log))
    for f in fillers:
        f.close()

    # idle timeout (b3 has --idle-timeout 1 and a target that resets on data only)
    hold = Server(drains)
    fi = free_port()
    b7 = Bridge(addr_str(fi), addr_str(hold.addr), "--idle-timeout", "0.5")
    check(ends_without_data(connect(fi, timeout=20), reset_ok=False),
          "idle connection closed by the bridge")
    check(b7.wait_for(lambda: b7.grep(r"closed id=1 .*reason=idle-timeout"), 10),
          "idle timeout logged", "\n".join(b7.log))

    # max-conns
    fm = free_port()
    b8 = Bridge(addr_str(fm), addr_str(tcp_echo.addr), "--max-conns", "2")
    c1, c2 = connect(fm), connect(fm)
    c1.sendall(b"a")
    c2.sendall(b"b")
    c1.recv(1), c2.recv(1)  # both are through: the bridge counted them
    check(ends_without_data(connect(fm, timeout=10), reset_ok=True),
          "third connection over --max-conns 2 is closed at once")
    check(b8.wait_for(lambda: b8.grep(r"rejected .*reason=max-conns"), 10),
          "the rejection is logged", "\n".join(b8.log))
    c1.shutdown(socket.SHUT_WR)
    check(recv_all(c1) == TRAILER, "the first two connections keep working")
    c1.close()
    b8.wait_for(lambda: b8.grep(r"closed id=1 "), 10)
    check(roundtrip(fm, b"again") == b"again" + TRAILER, "a slot freed is usable again")
    c2.close()

    # --max-per-peer: counted per client IP on a tcp listener
    fp = free_port()
    b10 = Bridge(addr_str(fp), addr_str(tcp_echo.addr), "--max-per-peer", "2")
    d1, d2 = connect(fp), connect(fp)
    d1.sendall(b"a")
    d2.sendall(b"b")
    d1.recv(1), d2.recv(1)
    check(ends_without_data(connect(fp, timeout=10), reset_ok=True),
          "third connection from one address over --max-per-peer 2 is closed at once")
    check(b10.wait_for(lambda: b10.grep(r"rejected from=tcp:127\.0\.0\.1:\d+ .*"
                                        r"reason=max-per-peer max=2"), 10),
          "the per-peer rejection is logged", "\n".join(b10.log))
    other = socket.socket()
    other.settimeout(30)
    other.bind(("127.0.0.2", 0))
    other.connect(("127.0.0.1", fp))
    other.sendall(b"other")
    other.shutdown(socket.SHUT_WR)
    check(recv_all(other) == b"other" + TRAILER,
          "another client address is still served while the first is at its cap")
    other.close()
    d1.close()
    d2.close()

    # descriptors (issue 15): an idle connection holds its two sockets and no pipe; pipes come
    # with the first byte of a direction (2 descriptors each)
    fd_ = free_port()
    b11 = Bridge(addr_str(fd_), addr_str(tcp_echo.addr))

    def fds(pid):
        kinds = {"pipe": 0, "socket": 0}
        for f in os.listdir("/proc/%d/fd" % pid):
            try:
                link = os.readlink("/proc/%d/fd/%s" % (pid, f))
            except OSError:
                continue
            for k in kinds:
                kinds[k] += link.startswith(k + ":")
        return kinds

    base = fds(b11.p.pid)  # the listener; stderr is a pipe to this test
    idle = [connect(fd_) for _ in range(20)]
    b11.wait_for(lambda: fds(b11.p.pid)["socket"] >= base["socket"] + 40, 10)
    got = fds(b11.p.pid)
    got = {k: got[k] - base[k] for k in got}
    check(got == {"pipe": 0, "socket": 40},
          "20 idle connections: 2 sockets each, no pipe", got)
    for c in idle:
        c.sendall(b"x")
    for c in idle:
        c.recv(1)
    got = fds(b11.p.pid)
    got = {k: got[k] - base[k] for k in got}
    check(got == {"pipe": 80, "socket": 40},
          "after data both ways: 2 pipes (4 descriptors) more per connection", got)
    for c in idle:
        c.close()

    # SIGUSR1 (run-enclave's drain, issue 23): the listener closes, a new connection is refused,
    # an open one keeps relaying both ways; SIGTERM still stops.
    fq = free_port()
    bq = Bridge(addr_str(fq), addr_str(tcp_echo.addr))
    held = connect(fq)
    held.sendall(b"before ")
    first = held.recv(7)
    bq.p.send_signal(signal.SIGUSR1)
    bq.wait_for(lambda: bq.grep("quiesced: listeners closed"), 10)
    try:
        connect(fq, timeout=5).close()
        refused = False
    except ConnectionRefusedError:
        refused = True
    except OSError:
        refused = False
    held.sendall(b"after")
    got = b""
    while len(got) < 5:
        d = held.recv(5 - len(got))
        if not d:
            break
        got += d
    check(first == b"before " and refused and got == b"after",
          "SIGUSR1: new connections refused, the open one still relayed", (first, refused, got))
    held.close()
    check(bq.stop() == 0, "SIGUSR1 then SIGTERM: exits 0")

    # --allow
    p = subprocess.run([NSIGN, "bridge", addr_str(free_port()), "tcp:127.0.0.1:9",
                        "--allow", "127.0.0.1:10"], stderr=subprocess.PIPE, timeout=10)
    check(p.returncode == 1 and b"not on the --allow list" in p.stderr,
          "a target outside --allow is refused at start", p.stderr)
    fa = free_port()
    b9 = Bridge(addr_str(fa), "tcp:localhost:%d" % tcp_echo.addr,
                "--allow", "localhost:%d" % tcp_echo.addr, "--allow", "vsock:3:8000")
    check(b9.ready, "allowed name target accepted")
    check(roundtrip(fa, b"by-name") == b"by-name" + TRAILER,
          "target name resolved at connect time")
    p = subprocess.run([NSIGN, "bridge", addr_str(free_port())], stderr=subprocess.PIPE,
                       timeout=10)
    check(p.returncode == 2, "odd number of addresses is a usage error")
    p = subprocess.run([NSIGN, "bridge", "--max-conns", "x", "tcp:127.0.0.1:1", "tcp:127.0.0.1:2"],
                       stderr=subprocess.PIPE, timeout=10)
    check(p.returncode == 2, "bad --max-conns is a usage error")
    p = subprocess.run([NSIGN, "bridge", "--help"], stdout=subprocess.PIPE, timeout=10)
    check(p.returncode == 0 and b"--idle-timeout" in p.stdout, "--help documents the options")

    # clean exit on SIGTERM / SIGINT with connections open
    open1 = connect(f_tt)
    open1.sendall(b"pending")
    open1.recv(7)
    rc = b.stop(signal.SIGTERM)
    check(rc == 0, "SIGTERM: exit 0 with a connection open", "rc=%r" % rc)
    check(b.grep("reason=shutdown") and b.grep("info stopped"), "SIGTERM closes and logs")
    open1.close()
    check(not os.path.exists(f_ut), "unix listener socket file removed on exit")
    rc = b9.stop(signal.SIGINT)
    check(rc == 0, "SIGINT: exit 0", "rc=%r" % rc)


try:
    main()
finally:
    kill_all(procs)
    shutil.rmtree(TMP, ignore_errors=True)
done()
