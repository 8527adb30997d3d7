"""HTTP client deadlines (issue 15), through s3-get against hostile loopback servers: endless
100 Continue answers (a cap on interim responses), a response head dripped one byte at a time
(the whole head must arrive within --timeout), a body dripped one byte at a time (--max-time
bounds the whole request; without it, the default speed floor --min-speed ends it). Each case must end with exit 1 and a message naming the cause; a
client that never gives up is killed by the test's generous bound and fails the check."""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

from tap import NSIGN, check, done

TMP = tempfile.mkdtemp(prefix="nsign-httpdl-")
BOUND = 60  # seconds: far above every deadline under test; reaching it means "hung"
stop = threading.Event()


def serve(mode):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(8)
    ls.settimeout(0.2)

    def one(c):
        try:
            c.settimeout(1)
            c.recv(65536)  # the request (small, one segment on loopback)
            if mode == "continue":
                while not stop.is_set():
                    c.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                    time.sleep(0.05)
            elif mode == "head-drip":
                c.sendall(b"HTTP/1.1 200 OK\r\n")
                while not stop.is_set():
                    for b in b"X-Slow: aaaaaaaa\r\n":
                        c.sendall(bytes([b]))
                        time.sleep(0.3)
                        if stop.is_set():
                            break
            elif mode == "body-drip":
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                while not stop.is_set():
                    c.sendall(b"x")
                    time.sleep(0.3)
        except OSError:
            pass
        finally:
            c.close()

    def loop():
        while not stop.is_set():
            try:
                c, _ = ls.accept()
            except socket.timeout:
                continue
            threading.Thread(target=one, args=(c,), daemon=True).start()
        ls.close()

    threading.Thread(target=loop, daemon=True).start()
    return ls.getsockname()[1]


creds = os.path.join(TMP, "creds.json")
with open(creds, "w") as f:
    json.dump({"AccessKeyId": "AKIDTEST", "SecretAccessKey": "secretkey", "Token": "tok",
               "Expiration": "2099-01-01T00:00:00Z"}, f)


def s3get(port, *args):
    env = dict(os.environ, AWS_MAX_ATTEMPTS="1", AWS_EC2_METADATA_DISABLED="true")
    try:
        r = subprocess.run([NSIGN, "s3-get", "--creds", creds, "--endpoint",
                            "http://127.0.0.1:%d" % port] + list(args) +
                           ["s3://bkt/obj", os.path.join(TMP, "out")],
                           capture_output=True, text=True, env=env, timeout=BOUND)
        return r.returncode, r.stderr
    except subprocess.TimeoutExpired:
        return "hung", ""


try:
    rc, err = s3get(serve("continue"), "--timeout", "3")
    check(rc == 1 and "more than 8 interim (1xx) responses" in err,
          "endless 100 Continue: refused after 8 interim responses", "rc=%s %s" % (rc, err))
    rc, err = s3get(serve("head-drip"), "--timeout", "2")
    check(rc == 1 and "the response head from 127.0.0.1 did not complete in time" in err,
          "a response head dripped byte by byte: the whole head must arrive within --timeout",
          "rc=%s %s" % (rc, err))
    rc, err = s3get(serve("body-drip"), "--timeout", "2", "--max-time", "2")
    check(rc == 1 and "the exchange from 127.0.0.1 did not complete in time" in err,
          "a body dripped byte by byte: --max-time bounds the whole request",
          "rc=%s %s" % (rc, err))
    # No --max-time: the default speed floor (1024 bytes/s over each --timeout window) ends it.
    rc, err = s3get(serve("body-drip"), "--timeout", "2")
    check(rc == 1 and "under the minimum of 1024 bytes/s" in err,
          "a body dripped byte by byte, no --max-time: the default speed floor ends it",
          "rc=%s %s" % (rc, err))
    rc, err = s3get(serve("body-drip"), "--timeout", "2", "--min-speed", "4096")
    check(rc == 1 and "under the minimum of 4096 bytes/s" in err, "--min-speed sets the floor",
          "rc=%s %s" % (rc, err))
    rc, err = s3get(serve("body-drip"), "--min-speed", "x")
    check(rc == 2 and "invalid --min-speed" in err, "a bad --min-speed is a usage error (exit 2)",
          "rc=%s %s" % (rc, err))
    check(not os.path.exists(os.path.join(TMP, "out")), "no partial output file left behind")
    r = subprocess.run([NSIGN, "s3-get", "--help"], capture_output=True, text=True)
    check("--max-time" in r.stdout and "--min-speed" in r.stdout,
          "--help documents --max-time and --min-speed", r.stdout)
finally:
    stop.set()
    shutil.rmtree(TMP, ignore_errors=True)
done()
