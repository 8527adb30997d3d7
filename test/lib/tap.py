"""tap.py: TAP-style checks for Python tests run by test/run.sh (under /usr/bin/python3).

Use check(cond, desc), skip(desc, why) and finally done() (exits non-zero if any check failed).
Helpers: free_port() (a free loopback TCP port), recv_all(sock) (reads until the peer closes),
kill_all(procs) (kills the subprocesses still running; for a test's finally/cleanup).
Environment from test/run.sh: NSIGN (the binary), NS_BUILD, NS_SHARED, NS_VECTORS.
"""
import os
import socket
import sys

_failed = 0
NSIGN = os.environ.get("NSIGN", os.path.abspath("build/nsign"))
VECTORS = os.environ.get("NS_VECTORS", os.path.abspath("../shared/vectors"))


def check(cond, desc, detail=None):
    global _failed
    if cond:
        print("ok - %s" % desc, flush=True)
    else:
        _failed += 1
        print("not ok - %s" % desc, flush=True)
        if detail:
            for line in str(detail).splitlines()[:20]:
                print("#   %s" % line, flush=True)
    return cond


def skip(desc, why):
    print("ok - %s # SKIP %s" % (desc, why), flush=True)


def done():
    sys.exit(1 if _failed else 0)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def kill_all(procs):
    """SIGKILLs every subprocess in procs that is still running and reaps it (bounded wait)."""
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)


def recv_all(sock):
    """Reads sock until the peer closes it (the socket's own timeout bounds each read)."""
    out = []
    while True:
        d = sock.recv(1 << 20)
        if not d:
            return b"".join(out)
        out.append(d)
