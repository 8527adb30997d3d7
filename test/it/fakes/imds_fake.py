"""imds_fake: a local EC2 Instance Metadata Service that behaves like IMDSv2.

- PUT /latest/api/token needs X-aws-ec2-metadata-token-ttl-seconds (1..21600) and no
  X-Forwarded-For; answers a random token valid for that TTL.
- Every GET needs a valid, unexpired X-aws-ec2-metadata-token, else 401.
- /latest/meta-data/iam/security-credentials/ lists the role (404 when --no-role);
  .../ROLE answers the credentials document (404 for another name).
Modes: --v1-only (token PUT answers 405, GETs work without a token, like an IMDSv1-only
endpoint), --hang (accepts the connection and never answers, like a hop limit drop),
--malformed (a broken JSON document), --expired (Expiration in the past), --code Failure.
Prints the port on stdout once listening; logs one line per request on stderr.
"""
import argparse
import datetime
import json
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ap = argparse.ArgumentParser()
ap.add_argument("--role", default="nsign-test-role")
ap.add_argument("--no-role", action="store_true")
ap.add_argument("--v1-only", action="store_true")
ap.add_argument("--hang", action="store_true")
ap.add_argument("--malformed", action="store_true")
ap.add_argument("--expired", action="store_true")
ap.add_argument("--code", default="Success")
ap.add_argument("--akid", default="ASIAIMDSFAKE0000001")
ap.add_argument("--secret", default="imds/fake+secret/key/0123456789abcdefABCDEF")
ap.add_argument("--token", default="IQoJb3JpZ2luX2VjEFAKE//////////wEaCXVzLWVhc3QtMSJHMEUCIQ==")
args = ap.parse_args()

tokens = {}
lock = threading.Lock()
PREFIX = "/latest/meta-data/iam/security-credentials/"


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        sys.stderr.write("imds_fake: " + (fmt % a) + "\n")

    def reply(self, code, body=b"", ctype="text/plain"):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def do_PUT(self):
        if args.hang:
            time.sleep(3600)
        if self.path != "/latest/api/token":
            return self.reply(404, "Not Found")
        if args.v1_only:
            return self.reply(405, "Method Not Allowed")
        if self.headers.get("X-Forwarded-For") is not None:
            return self.reply(403, "Forbidden")
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        try:
            ttl = int(ttl)
        except (TypeError, ValueError):
            return self.reply(400, "Bad Request: missing or malformed TTL header")
        if not 1 <= ttl <= 21600:
            return self.reply(400, "Bad Request: TTL out of range")
        tok = "AQAEA" + secrets.token_urlsafe(40)
        with lock:
            tokens[tok] = time.time() + ttl
        self.reply(200, tok)

    def do_GET(self):
        if args.hang:
            time.sleep(3600)
        if not args.v1_only:
            tok = self.headers.get("X-aws-ec2-metadata-token")
            with lock:
                exp = tokens.get(tok) if tok else None
            if exp is None or exp < time.time():
                return self.reply(401, "Unauthorized")
        if self.path == PREFIX:
            if args.no_role:
                return self.reply(404, "Not Found")
            return self.reply(200, args.role)
        if self.path.startswith(PREFIX):
            if args.no_role or self.path[len(PREFIX):] != args.role:
                return self.reply(404, "Not Found")
            now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
            exp = now + datetime.timedelta(hours=-1 if args.expired else 6)
            doc = {"Code": args.code, "LastUpdated": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                   "Type": "AWS-HMAC", "AccessKeyId": args.akid,
                   "SecretAccessKey": args.secret, "Token": args.token,
                   "Expiration": exp.strftime("%Y-%m-%dT%H:%M:%SZ")}
            body = json.dumps(doc, indent=2)
            if args.malformed:
                body = body[: len(body) // 2]
            return self.reply(200, body)
        return self.reply(404, "Not Found")


srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
srv.daemon_threads = True
print(srv.server_address[1], flush=True)
srv.serve_forever()
