"""test_sigv4_botocore: src/aws/sigv4.c against botocore's own signers on random requests.

Signs a few hundred random requests (methods, odd paths with dots/slashes/reserved and unicode
characters, query strings with reserved characters and repeated keys, repeated and unsorted
headers with odd whitespace, unicode values, session tokens, bodies) with botocore's SigV4Auth
(generic services: path normalised and encoded again) and S3SigV4Auth (path as sent), then with
nsign's signer through the unit-test binary's "sign" mode on the same inputs, and compares the
Authorization headers byte for byte. The random seed is printed so a failure can be replayed
(NS_SIGV4_SEED=...).
"""
import datetime
import os
import random
import subprocess
import sys
from unittest import mock
from urllib.parse import quote, urlsplit

from tap import check, done, skip

try:
    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
except ImportError as e:  # pragma: no cover
    skip("botocore comparison", "python3-botocore missing: %s" % e)
    done()

BIN = os.path.join(os.environ.get("NS_BUILD", "build"), "test", "test_sigv4")
N = int(os.environ.get("NS_SIGV4_N", "400"))
SEED = int(os.environ.get("NS_SIGV4_SEED", random.randrange(1 << 30)))
print("# seed %d" % SEED)
rnd = random.Random(SEED)

SEG_CHARS = "abcXYZ019-._~ !$&'()*+,;=:@%éሴ中😀"
QUERY_CHARS = "abcXYZ019-._~ !$&'()*+,;=:@/?#[]%é中"
VAL_CHARS = "abc XYZ 019\t-._~!\"#$%&'()*+,/:;<=>?@[\\]^`{|}é中 "
NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"


def rstr(chars, lo, hi):
    return "".join(rnd.choice(chars) for _ in range(rnd.randint(lo, hi)))


def rpath(s3):
    segs = []
    for _ in range(rnd.randint(0, 5)):
        r = rnd.random()
        if r < 0.1 and not s3:
            segs.append(rnd.choice([".", ".."]))
        elif r < 0.15:
            segs.append("")
        else:
            # as on the wire: percent-encoded once (what a client sends)
            segs.append(quote(rstr(SEG_CHARS, 1, 8), safe="-_.~"))
    p = "/" + "/".join(segs)
    if rnd.random() < 0.3:
        p += "/"
    return p


def rquery():
    if rnd.random() < 0.3:
        return ""
    pairs = []
    keys = [rstr(QUERY_CHARS, 0, 6) for _ in range(rnd.randint(1, 4))]
    for _ in range(rnd.randint(1, 6)):
        k = rnd.choice(keys)
        ek = quote(k, safe="-_.~")
        if rnd.random() < 0.15:
            pairs.append(ek)  # no '='
        else:
            pairs.append(ek + "=" + quote(rstr(QUERY_CHARS, 0, 8), safe="-_.~"))
    return "&".join(pairs)


def rheaders():
    hs = []
    names = [rstr(NAME_CHARS, 1, 10) for _ in range(rnd.randint(1, 5))]
    for _ in range(rnd.randint(0, 8)):
        n = rnd.choice(names)
        if rnd.random() < 0.3:
            n = "".join(c.upper() if rnd.random() < 0.5 else c.lower() for c in n)
        hs.append((n, rstr(VAL_CHARS, 0, 20)))
    return hs


def hx(s):
    return s.encode("utf-8").hex() if s else "-"


def main():
    if not os.access(BIN, os.X_OK):
        check(False, "unit-test binary %s exists (build first)" % BIN)
        done()
    cases = []
    lines = []
    for i in range(N):
        s3 = rnd.random() < 0.4
        method = rnd.choice(["GET", "PUT", "POST", "DELETE", "HEAD", "PATCH"])
        host = rnd.choice(["example.amazonaws.com", "bucket.s3.us-west-2.amazonaws.com",
                           "127.0.0.1:9000"])
        path, query = rpath(s3), rquery()
        body = rstr("abc{}\"':\n", 0, 30).encode() if method in ("PUT", "POST") else b""
        token = rstr(NAME_CHARS + "+/=", 20, 200) if rnd.random() < 0.4 else None
        creds = Credentials("AKID" + rstr("ABCDEFGHIJ0123456789", 8, 16),
                            rstr(NAME_CHARS + "+/", 40, 40), token)
        region = rnd.choice(["us-east-1", "eu-west-3", "ap-southeast-2"])
        service = "s3" if s3 else rnd.choice(["kms", "service", "sts"])
        when = datetime.datetime(2015 + rnd.randint(0, 15), rnd.randint(1, 12),
                                 rnd.randint(1, 28), rnd.randint(0, 23), rnd.randint(0, 59),
                                 rnd.randint(0, 59))
        url = "https://" + host + path + ("?" + query if query else "")
        req = AWSRequest(method=method, url=url, data=body)
        for n, v in rheaders():
            if n.lower() in ("authorization", "x-amz-date", "x-amz-security-token",
                             "x-amz-content-sha256", "host", "user-agent", "expect",
                             "x-amzn-trace-id"):
                continue
            req.headers[n] = v
        auth = (botocore.auth.S3SigV4Auth if s3 else botocore.auth.SigV4Auth)(
            creds, service, region)
        with mock.patch("botocore.auth.datetime") as dt:
            dt.datetime.utcnow.return_value = when
            auth.add_auth(req)
        want = req.headers["Authorization"]
        # What botocore signed: every header but Authorization (and its blacklist), plus host.
        hdrs = [(n, v) for n, v in req.headers.items()
                if n.lower() != "authorization"
                and n.lower() not in botocore.auth.SIGNED_HEADERS_BLACKLIST]
        if not any(n.lower() == "host" for n, _ in hdrs):
            hdrs.append(("host", urlsplit(url).netloc))
        if s3:
            ph = req.headers["X-Amz-Content-SHA256"]
        else:
            ph = auth.payload(req)
        u = urlsplit(url)
        fields = ["1" if s3 else "0", method, u.path, u.query, creds.access_key,
                  creds.secret_key, token or "", region, service,
                  when.strftime("%Y%m%dT%H%M%SZ"), ph, str(len(hdrs))]
        line = " ".join(hx(f) for f in fields)
        for n, v in hdrs:
            line += " %s %s" % (hx(n), hx(v))
        lines.append(line)
        cases.append((want, "%s %s service=%s" % (method, url, service)))
    p = subprocess.run([BIN, "sign"], input="\n".join(lines) + "\n", capture_output=True,
                       text=True, timeout=60)
    got = p.stdout.splitlines()
    check(p.returncode == 0 and len(got) == len(cases), "signer ran on %d requests" % N,
          p.stderr)
    bad = [(c, g) for c, g in zip(cases, got) if c[0] != g]
    for (want, what), g in bad[:5]:
        print("#   %s\n#   want %s\n#   got  %s" % (what, want, g))
    nss3 = sum(1 for l in lines if l.startswith("31 "))
    check(not bad and len(got) == len(cases),
          "%d random requests (%d S3) signed like botocore %s" % (N, nss3, botocore.__version__))
    # A tampered input must change the signature (the comparison can fail).
    t = lines[0].split(" ")
    t[1] = hx("OPTIONS")
    p2 = subprocess.run([BIN, "sign"], input=" ".join(t) + "\n", capture_output=True, text=True,
                        timeout=10)
    check(p2.stdout.strip() != cases[0][0], "a changed method changes the signature")
    done()


main()
