#!/usr/bin/python3
"""CCTV age v1 conformance: every vector in $NS_VECTORS/age/testdata through `nsign age-decrypt`.

Each vector gives an expected outcome class; the real binary runs with the vector's identities
(an identity file) and passphrase (--passphrase-file), output to stdout. Success: exit 0 and the
SHA-256 of stdout equals `payload`. Failures: exit 1 and the stage named in the error line maps to
the class; for `payload failure` the plaintext released before the error must hash to `payload`.
Post-quantum hybrid vectors (mlkem768x25519) are reported as SKIP: nsign does not support them.
"""
import hashlib
import os
import subprocess
import sys
import tempfile
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import tap  # noqa: E402

NSIGN = os.environ["NSIGN"]
VEC = os.path.join(os.environ["NS_VECTORS"], "age", "testdata")
KNOWN_KEYS = {"expect", "payload", "identity", "passphrase", "armored", "compressed", "file key",
              "comment"}
# error line "nsign age-decrypt: error <stage>: ..." -> CCTV class
STAGE_CLASS = {"armor": "armor failure", "header": "header failure", "no match": "no match",
               "header MAC": "HMAC failure", "payload": "payload failure"}


def parse(path):
    raw = open(path, "rb").read()
    head, _, body = raw.partition(b"\n\n")
    meta = {}
    for line in head.decode().split("\n"):
        k, _, v = line.partition(": ")
        meta.setdefault(k, []).append(v)
    if meta.get("compressed") == ["zlib"]:
        body = zlib.decompress(body)
    return meta, body


def stage_of(stderr):
    for line in stderr.splitlines():
        if " error " not in line:
            continue
        rest = line.split(" error ", 1)[1]
        for stage in sorted(STAGE_CLASS, key=len, reverse=True):
            if rest.startswith(stage + ":"):
                return stage
    return None


def main():
    t = tap
    names = sorted(os.listdir(VEC))
    if not names:
        t.check(False, "vectors present in " + VEC)
    with tempfile.TemporaryDirectory(prefix="nsign-age-vec-") as tmp:
        for name in names:
            meta, body = parse(os.path.join(VEC, name))
            unknown = set(meta) - KNOWN_KEYS
            if unknown:
                t.skip(name, "unknown vector keys %s" % sorted(unknown))
                continue
            ids = meta.get("identity", [])
            if name.startswith("hybrid") or name == "armor_hybrid" or any(
                    i.upper().startswith("AGE-SECRET-KEY-PQ-") for i in ids):
                t.skip(name, "mlkem768x25519 (post-quantum hybrid) is not supported by nsign")
                continue
            expect = meta["expect"][0]
            ct = os.path.join(tmp, "ct")
            with open(ct, "wb") as f:
                f.write(body)
            idf = os.path.join(tmp, "ids")
            with open(idf, "w") as f:
                f.write("# identities of %s\n\n" % name)
                f.write("".join(i + "\n" for i in ids))
            cmd = [NSIGN, "age-decrypt", "-i", idf]
            if "passphrase" in meta:
                pf = os.path.join(tmp, "pass")
                with open(pf, "w") as f:
                    f.write(meta["passphrase"][0] + "\n")
                cmd += ["--passphrase-file", pf]
            cmd.append(ct)
            try:
                p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                                   timeout=60)
            except subprocess.TimeoutExpired:
                t.check(False, "%s: timed out" % name)
                continue
            digest = hashlib.sha256(p.stdout).hexdigest()
            err = p.stderr.decode(errors="replace").strip()
            want_hash = meta.get("payload", [None])[0]
            if expect == "success":
                ok = p.returncode == 0 and digest == want_hash
                t.check(ok, "%s: success, plaintext sha256 matches" % name,
                        "rc=%d sha256=%s want=%s %s" % (p.returncode, digest, want_hash, err))
                continue
            got = STAGE_CLASS.get(stage_of(err) or "", "rc=%d %s" % (p.returncode, err))
            ok = p.returncode == 1 and got == expect
            if ok and expect == "payload failure" and want_hash is not None:
                ok = digest == want_hash
                if not ok:
                    got = "released plaintext sha256 %s, want %s" % (digest, want_hash)
            t.check(ok, "%s: %s" % (name, expect), "got: %s" % got)
    t.done()


if __name__ == "__main__":
    main()
