"""vsock-recv's end of frame (issue 15): a frame followed by trailing bytes is rejected (the
sender must end its side after the payload), and a sender dripping the frame slowly enough to
dodge the 30 s stall timer is cut off by the total transfer deadline (--transfer-timeout), even
with --timeout 0. Frames are built here with hashlib, independently of the C code; a rejected
frame leaves no output file and the sender reads the negative status."""
import hashlib
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time

from tap import NSIGN, check, done, free_port, kill_all

TMP = tempfile.mkdtemp(prefix="ns-it-trail-")
procs = []
BOUND = 60  # seconds: far above the deadlines under test; reaching it means "hung"


def frame(payload):
    return (b"NSFR" + bytes([1]) + b"\0\0\0" + struct.pack(">Q", len(payload)) +
            hashlib.sha256(payload).digest() + payload)


def recv_proc(port, out, *extra):
    p = subprocess.Popen([NSIGN, "vsock-recv", "--timeout", "0"] + list(extra) +
                         ["tcp:127.0.0.1:%d" % port, out], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    procs.append(p)
    return p


def connect(port):
    end = time.monotonic() + 10
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), 5)
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


def finish(p):
    try:
        _, err = p.communicate(timeout=BOUND)
        return p.returncode, err.decode(errors="replace")
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        return "hung", ""


def status_of(s):
    s.settimeout(BOUND)
    try:
        st = s.recv(1)
        return st[0] if st else None
    except OSError as e:
        return "error %s" % e


try:
    payload = os.urandom(4096)

    # control: the same frame, ended properly, is accepted
    port, out = free_port(), os.path.join(TMP, "ok.bin")
    p = recv_proc(port, out)
    s = connect(port)
    s.sendall(frame(payload))
    s.shutdown(socket.SHUT_WR)
    st = status_of(s)
    s.close()
    rc, err = finish(p)
    check(rc == 0 and st == 0 and open(out, "rb").read() == payload,
          "a frame followed by end of stream is acknowledged", "rc=%s st=%s %s" % (rc, st, err))

    # trailing bytes after a valid frame
    port, out = free_port(), os.path.join(TMP, "trail.bin")
    p = recv_proc(port, out)
    s = connect(port)
    s.sendall(frame(payload) + b"trailing")
    s.shutdown(socket.SHUT_WR)
    st = status_of(s)
    s.close()
    rc, err = finish(p)
    check(rc == 1 and st == 1 and "trailing data after the frame payload" in err,
          "a frame followed by trailing bytes is rejected (status 1), says why",
          "rc=%s st=%s %s" % (rc, st, err))
    check(not os.path.exists(out) and not [f for f in os.listdir(TMP) if "trail" in f],
          "no output (and no temp file) for the rejected frame")

    # a sender dripping one byte at a time, under the stall timer
    port, out = free_port(), os.path.join(TMP, "drip.bin")
    p = recv_proc(port, out, "--transfer-timeout", "2")
    s = connect(port)
    data = frame(payload)
    s.sendall(data[:60])
    sent_all, gone = False, False
    for i in range(60, len(data)):
        try:
            s.sendall(data[i:i + 1])
        except OSError:
            gone = True
            break
        if p.poll() is not None:
            gone = True
            break
        time.sleep(0.25)
    else:
        sent_all = True
    rc, err = finish(p)
    s.close()
    check(rc == 1 and not sent_all and "timed out" in err,
          "a dripping sender is cut off by --transfer-timeout despite --timeout 0",
          "rc=%s sent_all=%s %s" % (rc, sent_all, err))
    check(not os.path.exists(out), "no output for the cut-off transfer")
    r = subprocess.run([NSIGN, "vsock-recv", "--help"], capture_output=True, text=True)
    check("--transfer-timeout" in r.stdout and "trailing bytes" in r.stdout,
          "--help documents the transfer deadline and the end of frame", r.stdout)
finally:
    kill_all(procs)
    shutil.rmtree(TMP, ignore_errors=True)
done()
