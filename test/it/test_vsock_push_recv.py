"""Integration tests of vsock-push / vsock-recv over tcp and unix (AF_VSOCK runs in test/vm).

The frame format is checked against an independent Python implementation (hashlib): a fake
receiver parses what vsock-push sends, fake senders feed vsock-recv truncated, oversized,
corrupted and malformed frames. A rejected frame must leave no output file (and no temp file)
and the sender must see the failure. Also: stdout output, 0600 files, a sender started before
the receiver, a sender retrying through a bridge whose target is not up yet, timeouts.
"""
import hashlib
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time

from tap import NSIGN, check, done, free_port, kill_all, recv_all

TMP = tempfile.mkdtemp(prefix="ns-it-push-")
procs = []


def frame(payload, length=None, digest=None, magic=b"NSFR", version=1, reserved=b"\0\0\0"):
    n = len(payload) if length is None else length
    d = hashlib.sha256(payload).digest() if digest is None else digest
    return magic + bytes([version]) + reserved + struct.pack(">Q", n) + d + payload


def start(args, **kw):
    p = subprocess.Popen([NSIGN] + args, stdin=kw.get("stdin", subprocess.DEVNULL),
                         stdout=kw.get("stdout", subprocess.PIPE), stderr=subprocess.PIPE)
    procs.append(p)
    return p


def finish(p, timeout=60):
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        return "hung", out, err
    return p.returncode, out, err


def fake_send(addr, data, close_early=False):
    """Connects (retrying), sends data, half-closes, returns the status byte (or None)."""
    end = time.monotonic() + 10
    while True:
        try:
            if addr.startswith("unix:"):
                s = socket.socket(socket.AF_UNIX)
                s.connect(addr[5:])
            else:
                s = socket.create_connection(("127.0.0.1", int(addr.rsplit(":", 1)[1])), 5)
            break
        except OSError:
            if time.monotonic() > end:
                return "no-connect"
            time.sleep(0.05)
    s.settimeout(10)
    try:
        s.sendall(data)
        if close_early:
            s.close()
            return None
        s.shutdown(socket.SHUT_WR)
        st = s.recv(1)
        return st[0] if st else None
    except OSError as e:
        return "error %s" % e
    finally:
        s.close()


def dir_entries(d):
    return sorted(os.listdir(d))


def main():
    payload = os.urandom(1000003)
    src = os.path.join(TMP, "in.bin")
    with open(src, "wb") as f:
        f.write(payload)

    # tcp, file to file, receiver first
    outdir = os.path.join(TMP, "out")
    os.mkdir(outdir)
    port = free_port()
    a = "tcp:127.0.0.1:%d" % port
    dst = os.path.join(outdir, "secret.bin")
    r = start(["vsock-recv", "--timeout", "20", a, dst])
    time.sleep(0.2)
    rc_p, _, err_p = finish(start(["vsock-push", "--timeout", "20", a, src]))
    rc_r, _, err_r = finish(r)
    check(rc_p == 0 and rc_r == 0, "tcp: push and recv exit 0", err_p + err_r)
    check(open(dst, "rb").read() == payload, "tcp: file received intact")
    check(os.stat(dst).st_mode & 0o777 == 0o600, "received file is 0600")
    check(dir_entries(outdir) == ["secret.bin"], "no temp file left behind")

    # unix, stdin to stdout, sender started first (retries until the receiver listens)
    ua = "unix:" + os.path.join(TMP, "r.sock")
    p = start(["vsock-push", "--timeout", "20", "--retry-interval", "50", ua, "-"],
              stdin=open(src, "rb"))
    time.sleep(0.8)
    check(p.poll() is None, "sender waits for a receiver that is not up yet")
    rc_r, out, err_r = finish(start(["vsock-recv", "--timeout", "20", ua]))
    rc_p, _, err_p = finish(p)
    check(rc_r == 0 and out == payload, "unix: stdout gets the payload", err_r)
    check(rc_p == 0, "sender started before the receiver succeeds", err_p)

    # 0 bytes and 1 byte
    for n in (0, 1):
        data = payload[:n]
        a = "tcp:127.0.0.1:%d" % free_port()
        r = start(["vsock-recv", "--timeout", "20", a, "-"])
        p = start(["vsock-push", "--timeout", "20", a], stdin=subprocess.PIPE)
        try:
            out_p, err_p = p.communicate(data, timeout=60)
            rc_p = p.returncode
        except subprocess.TimeoutExpired:
            p.kill()
            rc_p, err_p = "hung", b""

        rc_r, out, err_r = finish(r)
        check(rc_p == 0 and rc_r == 0 and out == data, "%d-byte payload" % n, err_p + err_r)

    # the wire format, read by an independent implementation
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    got = {}

    def fake_recv(status):
        c, _ = srv.accept()
        c.settimeout(10)
        got["frame"] = recv_all(c)
        c.sendall(bytes([status]))
        c.close()

    t = threading.Thread(target=fake_recv, args=(0,))
    t.start()
    rc_p, _, err_p = finish(start(["vsock-push", "--timeout", "10",
                                   "tcp:127.0.0.1:%d" % srv.getsockname()[1], src]))
    t.join(20)
    check(got.get("frame") == frame(payload),
          "wire format: NSFR, version 1, zero reserved, BE length, SHA-256, payload, half-close")
    check(rc_p == 0, "push exits 0 on status 0", err_p)
    for status, word in ((4, "SHA-256 mismatch"), (2, "--max-size"), (9, "unknown status")):
        t = threading.Thread(target=fake_recv, args=(status,))
        t.start()
        rc_p, _, err_p = finish(start(["vsock-push", "--timeout", "10",
                                       "tcp:127.0.0.1:%d" % srv.getsockname()[1], src]))
        t.join(20)
        check(rc_p == 1 and word.encode() in err_p,
              "push exits 1 on negative status %d and says why" % status, err_p)
    srv.close()

    # rejected frames: nothing written, the sender sees the failure
    cases = [
        ("corrupted payload", frame(payload[:1000], digest=hashlib.sha256(b"x").digest()), 4),
        ("truncated payload", frame(payload[:1000])[:-10], 3),
        ("truncated header", frame(b"")[:30], 3),
        ("oversized length", frame(payload[:10], length=1 << 30), 2),
        ("bad magic", frame(payload[:10], magic=b"NSFX"), 1),
        ("bad version", frame(payload[:10], version=2), 1),
        ("non-zero reserved", frame(payload[:10], reserved=b"\0\1\0"), 1),
    ]
    for name, data, want in cases:
        odir = tempfile.mkdtemp(dir=TMP)
        out = os.path.join(odir, "o.bin")
        a = "tcp:127.0.0.1:%d" % free_port() if len(name) % 2 else \
            "unix:" + os.path.join(odir, "s")
        r = start(["vsock-recv", "--timeout", "20", "--max-size", "1M", a, out])
        st = fake_send(a, data)
        rc_r, _, err_r = finish(r)
        check(rc_r == 1, "%s (%s): receiver exits 1" % (name, a.split(":")[0]), err_r)
        check(st == want, "%s: sender gets status %d" % (name, want), "got %r" % (st,))
        check(dir_entries(odir) == [], "%s: nothing written" % name, dir_entries(odir))

    # a sender that vanishes mid-payload
    odir = tempfile.mkdtemp(dir=TMP)
    a = "tcp:127.0.0.1:%d" % free_port()
    r = start(["vsock-recv", "--timeout", "20", a, os.path.join(odir, "o.bin")])
    fake_send(a, frame(payload)[:5000], close_early=True)
    rc_r, _, err_r = finish(r)
    check(rc_r == 1 and dir_entries(odir) == [], "sender gone mid-payload: rejected, nothing written",
          err_r)

    # real push against a too-small receiver: both fail, nothing on stdout
    a = "unix:" + os.path.join(TMP, "small.sock")
    r = start(["vsock-recv", "--timeout", "20", "--max-size", "1000", a])
    rc_p, _, err_p = finish(start(["vsock-push", "--timeout", "5", a, src]))
    rc_r, out, err_r = finish(r)
    check(rc_r == 1 and out == b"", "oversized push: receiver fails, stdout empty", err_r)
    check(rc_p == 1 and b"rejected" in err_p, "oversized push: sender fails with the reason", err_p)

    # the same over tcp with a payload larger than the socket buffers: still the reason
    big = os.path.join(TMP, "big.bin")
    with open(big, "wb") as f:
        f.write(os.urandom(8 << 20))
    a = "tcp:127.0.0.1:%d" % free_port()
    r = start(["vsock-recv", "--timeout", "20", "--max-size", "1M", a])
    rc_p, _, err_p = finish(start(["vsock-push", "--timeout", "5", a, big]))
    rc_r, out, err_r = finish(r)
    check(rc_r == 1 and out == b"" and rc_p == 1 and b"--max-size" in err_p,
          "oversized 8 MiB push over tcp: both fail, the sender learns why", err_p + err_r)

    # a receiver that cannot store: status 05, the sender says so
    a = "unix:" + os.path.join(TMP, "nostore.sock")
    r = start(["vsock-recv", "--timeout", "20", a, os.path.join(TMP, "no-such-dir", "o.bin")])
    rc_p, _, err_p = finish(start(["vsock-push", "--timeout", "10", a, src]))
    rc_r, _, err_r = finish(r)
    check(rc_r == 1 and rc_p == 1 and b"could not store" in err_p,
          "unwritable output: both fail, the sender learns the receiver could not store",
          err_p + err_r)

    # timeouts
    a = "tcp:127.0.0.1:%d" % free_port()
    rc_p, _, err_p = finish(start(["vsock-push", "--timeout", "0.5", a, src]))
    check(rc_p == 1 and b"no receiver acknowledged" in err_p, "push times out with a clear error",
          err_p)
    rc_r, out, err_r = finish(start(["vsock-recv", "--timeout", "0.3", a]))
    check(rc_r == 1 and b"no sender" in err_r, "recv times out with a clear error", err_r)

    # through a bridge whose target is not up yet: the sender resends until acknowledged
    front = free_port()
    back = free_port()
    b = start(["bridge", "tcp:127.0.0.1:%d" % front, "tcp:127.0.0.1:%d" % back])
    time.sleep(0.3)
    p = start(["vsock-push", "--timeout", "20", "--retry-interval", "50",
               "tcp:127.0.0.1:%d" % front, src])
    time.sleep(0.8)
    r = start(["vsock-recv", "--timeout", "20", "tcp:127.0.0.1:%d" % back])
    rc_r, out, err_r = finish(r)
    rc_p, _, err_p = finish(p)
    check(rc_r == 0 and out == payload and rc_p == 0,
          "push through a bridge retries until the receiver behind it is up", err_p + err_r)
    b.terminate()
    finish(b)

    # usage
    for args in (["vsock-push"], ["vsock-recv"], ["vsock-push", "bogus:1"],
                 ["vsock-recv", "--max-size", "2G", "tcp:127.0.0.1:1"],
                 ["vsock-push", "--timeout", "x", "tcp:127.0.0.1:1"]):
        rc, _, _ = finish(start(args))
        check(rc == 2, "usage error exits 2: %s" % " ".join(args))
    for ap in ("vsock-push", "vsock-recv"):
        rc, out, _ = finish(start([ap, "--help"]))
        check(rc == 0 and b"--timeout" in out, "%s --help" % ap)


try:
    main()
finally:
    kill_all(procs)
    shutil.rmtree(TMP, ignore_errors=True)
done()
