"""s3_fake: a local S3 (GetObject and HeadObject) that checks every request's SigV4 like S3 does.

Objects are files under --root: ROOT/BUCKET/KEY (path-style requests, as for any custom
endpoint). For each request the fake parses the Authorization header, requires host,
x-amz-date, x-amz-content-sha256 (and x-amz-security-token when the credentials have one) to be
signed, checks the date skew (15 min), the access key, the credential scope (region, s3), then
recomputes the signature with botocore's S3SigV4Auth over exactly the signed headers and the raw
request target, and compares. Errors are S3's XML errors (InvalidAccessKeyId,
SignatureDoesNotMatch, RequestTimeTooSkewed, AuthorizationHeaderMalformed with
x-amz-bucket-region, AccessDenied, NoSuchBucket, NoSuchKey, PreconditionFailed).
HEAD answers as S3 does: the GET's status and headers, no body (errors too).
GET supports "Range: bytes=N-" (206 + Content-Range) with If-Match on the ETag (412).
With x-amz-checksum-mode: ENABLED, objects up to 64 MiB get x-amz-checksum-sha256.

Options: --creds AKID:SECRET[:TOKEN], --region R (default us-east-1), --bucket-region B=R,
--deny BUCKET/KEY, --drop-after N (first full GET of an object larger than N sends N body bytes
and then drops the connection; with --mutate-after-drop the object's ETag changes right after,
as if it had been overwritten), --corrupt (flips one body byte, checksum still of the real
data), --slow-down N (the first N requests answer 503 SlowDown), --tls CERT KEY.
Prints the port once listening; one log line per request (stderr): "verified GET /b/k 200".
"""
import argparse
import base64
import datetime
import hashlib
import hmac
import os
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ap = argparse.ArgumentParser()
ap.add_argument("--root", required=True)
ap.add_argument("--creds", required=True)
ap.add_argument("--region", default="us-east-1")
ap.add_argument("--bucket-region", action="append", default=[])
ap.add_argument("--deny", action="append", default=[])
ap.add_argument("--drop-after", type=int, default=0)
ap.add_argument("--corrupt", action="store_true")
ap.add_argument("--mutate-after-drop", action="store_true")
ap.add_argument("--slow-down", type=int, default=0)
ap.add_argument("--tls", nargs=2)
args = ap.parse_args()

parts = args.creds.split(":", 2)
AKID, SECRET = parts[0], parts[1]
TOKEN = parts[2] if len(parts) > 2 and parts[2] else None
BUCKET_REGION = dict(x.split("=", 1) for x in args.bucket_region)
EMPTY = hashlib.sha256(b"").hexdigest()
dropped = set()
state = {"slow": args.slow_down}
lock = threading.Lock()


def etag_of(path):
    st = os.stat(path)
    return '"%s"' % hashlib.md5(("%d:%d" % (st.st_size, st.st_mtime_ns)).encode()).hexdigest()


class Reject(Exception):
    def __init__(self, status, code, msg, headers=None, extra=""):
        self.status, self.code, self.msg = status, code, msg
        self.headers, self.extra = headers or {}, extra


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        pass

    def log(self, what, status):
        sys.stderr.write("s3_fake: %s %s %s %d\n" % (what, self.command, self.path, status))
        sys.stderr.flush()

    def xml_error(self, e):
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s'
                '</Message>%s<RequestId>FAKE</RequestId></Error>' % (e.code, e.msg, e.extra))
        body = body.encode()
        self.send_response(e.status)
        for k, v in e.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def verify(self, bucket):
        az = self.headers.get("Authorization")
        if not az or not az.startswith("AWS4-HMAC-SHA256 "):
            raise Reject(403, "AccessDenied", "Anonymous or non-SigV4 request")
        try:
            fields = dict(p.strip().split("=", 1) for p in az[len("AWS4-HMAC-SHA256 "):].split(","))
            cred, signed, sig = fields["Credential"], fields["SignedHeaders"], fields["Signature"]
            akid, date8, region, service, term = cred.split("/")
        except (KeyError, ValueError):
            raise Reject(400, "AuthorizationHeaderMalformed", "malformed Authorization")
        if akid != AKID:
            raise Reject(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does "
                         "not exist in our records.")
        names = signed.split(";")
        need = ["host", "x-amz-date", "x-amz-content-sha256"] + (
            ["x-amz-security-token"] if TOKEN else [])
        for n in need:
            if n not in names:
                raise Reject(403, "AccessDenied", "header %s must be signed" % n)
        if names != sorted(names):
            raise Reject(403, "SignatureDoesNotMatch", "SignedHeaders not sorted")
        if TOKEN and self.headers.get("x-amz-security-token") != TOKEN:
            raise Reject(403, "InvalidToken", "The provided token is malformed or otherwise "
                         "invalid.")
        amz = self.headers.get("x-amz-date", "")
        try:
            t = datetime.datetime.strptime(amz, "%Y%m%dT%H%M%SZ")
        except ValueError:
            raise Reject(403, "AccessDenied", "bad x-amz-date")
        if abs((datetime.datetime.utcnow() - t).total_seconds()) > 900:
            raise Reject(403, "RequestTimeTooSkewed", "The difference between the request "
                         "time and the current time is too large.")
        if date8 != amz[:8] or service != "s3" or term != "aws4_request":
            raise Reject(403, "SignatureDoesNotMatch", "bad credential scope")
        want_region = BUCKET_REGION.get(bucket, args.region)
        if region != want_region:
            raise Reject(400, "AuthorizationHeaderMalformed",
                         "the region '%s' is wrong; expecting '%s'" % (region, want_region),
                         {"x-amz-bucket-region": want_region},
                         "<Region>%s</Region>" % want_region)
        if self.headers.get("x-amz-content-sha256") not in (EMPTY, "UNSIGNED-PAYLOAD"):
            raise Reject(400, "XAmzContentSHA256Mismatch", "bad payload hash for a GET")
        # botocore recomputes over exactly the signed headers, in the order received.
        req = AWSRequest(method=self.command, url="https://" + self.headers["host"] + self.path)
        for k, v in self.headers.items():
            if k.lower() in names:
                req.headers[k] = v
        req.context["timestamp"] = amz
        auth = S3SigV4Auth(Credentials(AKID, SECRET, TOKEN), "s3", region)
        cr = auth.canonical_request(req)
        sts = auth.string_to_sign(req, cr)
        mine = auth.signature(sts, req)
        if set(k.lower() for k in req.headers.keys()) != set(names):
            raise Reject(403, "SignatureDoesNotMatch", "a signed header is missing")
        if not hmac.compare_digest(mine, sig):
            raise Reject(403, "SignatureDoesNotMatch", "The request signature we calculated "
                         "does not match the signature you provided.", {},
                         "<CanonicalRequest>%s</CanonicalRequest>" % cr.replace("&", "&amp;")
                         .replace("<", "&lt;"))

    def do_HEAD(self):
        self.head_only = True
        self.do_GET()

    def xml_error_or_status(self, e):
        if not getattr(self, "head_only", False):
            return self.xml_error(e)
        self.send_response(e.status)
        for k, v in e.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def do_GET(self):
        u = urlsplit(self.path)
        segs = u.path.split("/", 2)
        bucket = unquote(segs[1]) if len(segs) > 1 else ""
        key = unquote(segs[2], errors="strict") if len(segs) > 2 else ""
        try:
            with lock:
                slow = state["slow"] > 0
                if slow:
                    state["slow"] -= 1
            self.verify(bucket)
            if slow:
                raise Reject(503, "SlowDown", "Please reduce your request rate.")
            bdir = os.path.join(args.root, bucket)
            if not bucket or not os.path.isdir(bdir):
                raise Reject(404, "NoSuchBucket", "The specified bucket does not exist")
            if bucket + "/" + key in args.deny:
                raise Reject(403, "AccessDenied", "Access Denied")
            path = os.path.join(bdir, key)
            if (not key or ".." in key.split("/") or not os.path.isfile(path)):
                raise Reject(404, "NoSuchKey", "The specified key does not exist.",
                             {}, "<Key>%s</Key>" % key)
            size = os.path.getsize(path)
            etag = etag_of(path)
            start = 0
            rng = self.headers.get("Range")
            if rng is not None:
                im = self.headers.get("If-Match")
                if im is not None and im != etag:
                    raise Reject(412, "PreconditionFailed", "At least one of the "
                                 "pre-conditions you specified did not hold")
                if not rng.startswith("bytes=") or not rng.endswith("-"):
                    raise Reject(400, "InvalidRange", "only bytes=N- is supported here")
                start = int(rng[6:-1])
                if start >= size:
                    raise Reject(416, "InvalidRange", "The requested range is not satisfiable")
        except Reject as e:
            self.log("rejected" if e.status in (400, 403) else "verified", e.status)
            return self.xml_error_or_status(e)
        status = 206 if rng is not None else 200
        self.log("verified", status)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size - start))
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, size - 1, size))
        elif (self.headers.get("x-amz-checksum-mode") == "ENABLED" and size <= 64 << 20):
            with open(path, "rb") as f:
                d = hashlib.sha256(f.read()).digest()
            self.send_header("x-amz-checksum-sha256", base64.b64encode(d).decode())
        self.send_header("Connection", "close")
        self.end_headers()
        if getattr(self, "head_only", False):
            self.close_connection = True
            return
        limit = None
        if status == 200 and args.drop_after and size > args.drop_after:
            with lock:
                if path not in dropped:
                    dropped.add(path)
                    limit = args.drop_after
        sent = 0
        with open(path, "rb") as f:
            if not args.tls and not args.corrupt:
                # zero-copy, so the fake is not the bottleneck of the 1 GiB test and the bench
                count = (limit if limit is not None else size - start)
                try:
                    self.wfile.flush()
                    self.connection.sendfile(f, start, count)
                    if limit is not None:
                        self.connection.shutdown(socket.SHUT_RDWR)
                        if args.mutate_after_drop:
                            st = os.stat(path)
                            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True
                return
            f.seek(start)
            while True:
                chunk = f.read(256 << 10)
                if not chunk:
                    break
                if limit is not None and sent + len(chunk) > limit:
                    chunk = chunk[: limit - sent]
                if args.corrupt and sent == 0 and chunk:
                    chunk = bytes([chunk[0] ^ 1]) + chunk[1:]
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    return
                sent += len(chunk)
                if limit is not None and sent >= limit:
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
        self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def get_request(self):
        sock, addr = super().get_request()
        if args.tls:
            sock = ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr


if args.tls:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.tls[0], args.tls[1])
srv = Server(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
