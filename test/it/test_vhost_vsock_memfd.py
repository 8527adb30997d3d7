"""test_vhost_vsock_memfd: a hostile vhost-user front-end against `nsign vhost-vsock` (issue 22,
item 7).

A front-end that declares a 1 MiB guest region backed by a 4 KiB memfd and puts a ring past the
file's end used to kill the back-end with SIGBUS on the first kick (exit 135), leaving its socket
file behind. Now SET_MEM_TABLE is refused (the region lies beyond its file): the back-end exits 1
with that reason and removes its socket. A fatal signal (SIGBUS sent by hand: a file truncated
under a mapping) also removes the socket file. The front-end here is Python speaking the
vhost-user wire format over the unix socket, with the memfd passed by SCM_RIGHTS.
"""
import os
import signal
import socket
import struct
import subprocess
import tempfile
import time

from tap import NSIGN, check, done

SET_MEM_TABLE, SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_KICK = 5, 8, 9, 12
GPA, UVA, DECLARED = 0x100000, 0x7f0000000000, 1 << 20


def msg(req, payload, fds=()):
    return struct.pack("<III", req, 1, len(payload)) + payload, list(fds)


def start(tmp, name):
    sock = os.path.join(tmp, name + ".sock")
    log = open(os.path.join(tmp, name + ".log"), "w+")
    p = subprocess.Popen([NSIGN, "vhost-vsock", "--socket", sock], stdout=subprocess.DEVNULL,
                         stderr=log)
    t0 = time.time()
    while not os.path.exists(sock) and time.time() - t0 < 10 and p.poll() is None:
        time.sleep(0.05)
    return p, sock, log


def main():
    tmp = tempfile.mkdtemp(prefix="nsign-vhost-memfd-")
    p, sock, log = start(tmp, "short")
    check(os.path.exists(sock), "vhost-vsock listens on its socket")
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    t0 = time.time()
    while True:  # the file exists from bind(2); listen(2) follows
        try:
            c.connect(sock)
            break
        except ConnectionRefusedError:
            if time.time() - t0 > 10:
                raise
            time.sleep(0.05)
    mfd = os.memfd_create("guest")
    os.ftruncate(mfd, 4096)
    kick = os.eventfd(0)
    region = struct.pack("<IIQQQQ", 1, 0, GPA, DECLARED, UVA, 0)
    # tx ring (1) laid out at 512 KiB: inside the declared region, past the file's end.
    ring = UVA + (512 << 10)
    for req, payload, fds in ((SET_MEM_TABLE, region, [mfd]),
                              (SET_VRING_NUM, struct.pack("<II", 1, 64), []),
                              (SET_VRING_ADDR, struct.pack("<IIQQQQ", 1, 0, ring, ring + 0x2000,
                                                           ring + 0x1000, 0), []),
                              (SET_VRING_KICK, struct.pack("<Q", 1), [kick])):
        data, fds = msg(req, payload, fds)
        try:
            socket.send_fds(c, [data], fds)
        except OSError:
            break  # the back-end already refused and closed
    try:
        os.eventfd_write(kick, 1)
    except OSError:
        pass
    try:
        rc = p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = p.wait()
    log.seek(0)
    err = log.read()
    check(rc == 1, "a region beyond its memfd: exit 1, not a SIGBUS (exit %d)" % rc, err)
    check("lies beyond its file" in err, "the reason is logged", err)
    check(not os.path.exists(sock), "the socket file is removed")
    c.close()
    for fd in (mfd, kick):
        os.close(fd)

    p, sock, log = start(tmp, "bus")
    check(os.path.exists(sock), "a second vhost-vsock listens")
    p.send_signal(signal.SIGBUS)
    rc = p.wait(timeout=20)
    check(rc == -signal.SIGBUS, "SIGBUS still ends it with SIGBUS's status (%d)" % rc)
    check(not os.path.exists(sock), "a fatal signal removes the socket file too")
    done()


if __name__ == "__main__":
    main()
