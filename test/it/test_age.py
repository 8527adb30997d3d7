#!/usr/bin/python3
"""age-decrypt interop with the real `age` tool (Debian age 1.1.1).

Random files of 0, 1, 64 KiB - 1, 64 KiB, 64 KiB + 1 and 10 MiB are encrypted by `age` to one
X25519 recipient, to several, and to a passphrase, binary and armored; `nsign age-decrypt` must
give them back byte-identical. `age -p` reads its passphrase from a terminal only, so it runs on
a pseudo-terminal here (pty.fork), and so does nsign's own no-echo prompt. Then: every single-byte
change of the header and many of the payload must fail and leave no output file; truncations,
wrong keys, wrong passphrases and unsupported identities fail with the right error.
"""
import glob
import os
import pty
import select
import shutil
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import tap  # noqa: E402

NSIGN = os.environ["NSIGN"]
AGE = shutil.which("age")
AGE_KEYGEN = shutil.which("age-keygen")
SIZES = [0, 1, 65535, 65536, 65537, 10 * 1024 * 1024]
PASS = "correct horse battery staple"


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, timeout=120, **kw)


def on_pty(argv, answers, timeout=60):
    """Runs argv on a pseudo-terminal; each time a prompt containing answers[i][0] appears,
    types answers[i][1]. Returns (exit status, transcript)."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    buf = b""
    i = 0
    end = time.time() + timeout
    status = None
    try:
        while time.time() < end:
            if i < len(answers) and answers[i][0] in buf:
                os.write(fd, answers[i][1])
                buf = buf.replace(answers[i][0], b"<answered>", 1)
                i += 1
                continue
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    d = os.read(fd, 4096)
                except OSError:
                    d = b""
                if not d:
                    break
                buf += d
            wpid, st = os.waitpid(pid, os.WNOHANG)
            if wpid == pid:
                status = st
                pid = None
                break
    finally:
        if pid is not None:
            w, st = os.waitpid(pid, os.WNOHANG)
            if w == 0:
                os.kill(pid, 9)
                w, st = os.waitpid(pid, 0)
            status = st
        os.close(fd)
    return (os.waitstatus_to_exitcode(status) if status is not None else -1), buf


def age_encrypt_pass(src, dst, armor):
    argv = [AGE, "-p"] + (["-a"] if armor else []) + ["-o", dst, src]
    rc, out = on_pty(argv, [(b"passphrase", PASS.encode() + b"\n"),
                            (b"Confirm passphrase", PASS.encode() + b"\n")])
    return rc == 0 and os.path.exists(dst), out


def no_leftovers(d, name):
    return not os.path.exists(os.path.join(d, name)) and not glob.glob(
        os.path.join(d, "." + name + ".nsign-*"))


def main():
    t = tap
    if not AGE or not AGE_KEYGEN:
        t.skip("age interop", "the age tool is not installed (apt-get install age)")
        t.done()
    tmp = tempfile.mkdtemp(prefix="nsign-age-it-")
    try:
        body(t, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    t.done()


def body(t, tmp):
    keys = []
    for i in range(3):
        k = os.path.join(tmp, "key%d" % i)
        run([AGE_KEYGEN, "-o", k]).check_returncode()
        pub = run([AGE_KEYGEN, "-y", k]).stdout.decode().strip()
        keys.append((k, pub))
    # One identity file as users write them: comments, blank lines, CRLF, several keys.
    ids = os.path.join(tmp, "identities.txt")
    with open(ids, "w") as f:
        f.write("# nsign test identities\n\n")
        for k, _ in keys:
            lines = open(k).read().splitlines()
            f.write("\r\n".join(lines) + "\r\n\n")
    key2_only = keys[2][0]
    other = os.path.join(tmp, "other")
    run([AGE_KEYGEN, "-o", other]).check_returncode()
    passfile = os.path.join(tmp, "pass")
    with open(passfile, "w") as f:
        f.write(PASS + "\n")

    outdir = os.path.join(tmp, "out")
    os.mkdir(outdir)
    for size in SIZES:
        src = os.path.join(tmp, "plain-%d" % size)
        with open(src, "wb") as f:
            f.write(os.urandom(size))
        want = open(src, "rb").read()
        cases = [
            ("x25519 one recipient, binary", ["-r", keys[0][1]], ["-i", keys[0][0]]),
            ("x25519 one recipient, armored", ["-a", "-r", keys[1][1]], ["-i", ids]),
            ("x25519 three recipients, binary",
             ["-r", keys[0][1], "-r", keys[1][1], "-r", keys[2][1]], ["-i", key2_only]),
            ("x25519 three recipients, armored",
             ["-a", "-r", keys[0][1], "-r", keys[1][1], "-r", keys[2][1]],
             ["-i", other, "-i", ids]),
        ]
        for desc, eargs, dargs in cases:
            ct = os.path.join(tmp, "ct")
            r = run([AGE] + eargs + ["-o", ct, src])
            if not t.check(r.returncode == 0, "age encrypts %d bytes: %s" % (size, desc),
                           r.stderr):
                continue
            out = os.path.join(outdir, "pt")
            r = run([NSIGN, "age-decrypt"] + dargs + ["-o", out, ct])
            got = open(out, "rb").read() if os.path.exists(out) else None
            t.check(r.returncode == 0 and got == want,
                    "%d bytes, %s: -o file byte-identical" % (size, desc), r.stderr)
            os.unlink(out) if os.path.exists(out) else None
            if desc.startswith("x25519 one recipient") or size == SIZES[-1]:
                with open(ct, "rb") as f:
                    r = subprocess.run([NSIGN, "age-decrypt"] + dargs, stdin=f,
                                       capture_output=True, timeout=120)
                t.check(r.returncode == 0 and r.stdout == want,
                        "%d bytes, %s: stdin to stdout byte-identical" % (size, desc), r.stderr)
        for armor in (False, True):
            desc = "passphrase, %s" % ("armored" if armor else "binary")
            ct = os.path.join(tmp, "ct-pass")
            if os.path.exists(ct):
                os.unlink(ct)
            ok, tr = age_encrypt_pass(src, ct, armor)
            if not t.check(ok, "age -p encrypts %d bytes on a pty: %s" % (size, desc), tr):
                continue
            out = os.path.join(outdir, "pt")
            r = run([NSIGN, "age-decrypt", "--passphrase-file", passfile, "-o", out, ct])
            got = open(out, "rb").read() if os.path.exists(out) else None
            t.check(r.returncode == 0 and got == want,
                    "%d bytes, %s: byte-identical" % (size, desc), r.stderr)
            if os.path.exists(out):
                os.unlink(out)
    device_output(t, tmp, keys)
    tty_prompt(t, tmp, outdir)
    tampering(t, tmp, keys, outdir)
    failures(t, tmp, keys, other, passfile, outdir)


def device_output(t, tmp, keys):
    # -o naming a device (like /dev/null) or a FIFO is written in place, never replaced by a
    # renamed temp file. A private null device node keeps a regression away from /dev/null.
    ct = os.path.join(tmp, "dev.age")
    run([AGE, "-r", keys[0][1], "-o", ct, os.path.join(tmp, "plain-65537")]).check_returncode()
    dev = os.path.join(tmp, "null")
    try:
        os.mknod(dev, 0o666 | 0o020000, os.makedev(1, 3))
    except OSError as e:
        t.skip("-o to a device node", "mknod failed: %s" % e)
        return
    r = run([NSIGN, "age-decrypt", "-i", keys[0][0], "-o", dev, ct])
    t.check(r.returncode == 0 and stat.S_ISCHR(os.stat(dev).st_mode) and
            not glob.glob(os.path.join(tmp, ".null.nsign-*")),
            "-o to a device node writes through it and leaves it a device", r.stderr)


def tty_prompt(t, tmp, outdir):
    src = os.path.join(tmp, "plain-65537")
    ct = os.path.join(tmp, "ct-tty")
    ok, tr = age_encrypt_pass(src, ct, False)
    if not t.check(ok, "age -p encrypts for the prompt test", tr):
        return
    out = os.path.join(outdir, "tty")
    rc, tr = on_pty([NSIGN, "age-decrypt", "-o", out, ct],
                    [(b"Enter passphrase:", PASS.encode() + b"\n")])
    got = open(out, "rb").read() if os.path.exists(out) else None
    t.check(rc == 0 and got == open(src, "rb").read(),
            "passphrase typed at nsign's /dev/tty prompt decrypts", tr)
    t.check(PASS.encode() not in tr, "the prompt does not echo the passphrase", tr)
    if os.path.exists(out):
        os.unlink(out)
    rc, tr = on_pty([NSIGN, "age-decrypt", "-o", out, ct],
                    [(b"Enter passphrase:", b"wrong passphrase\n")])
    t.check(rc == 1 and b"wrong passphrase" in tr.replace(b"<answered>", b"")
            and no_leftovers(outdir, "tty"), "a wrong passphrase at the prompt fails", tr)
    r = run([NSIGN, "age-decrypt", "-o", out, ct], stdin=subprocess.DEVNULL,
            start_new_session=True)
    t.check(r.returncode == 1 and b"--passphrase-file" in r.stderr and no_leftovers(outdir, "tty"),
            "no terminal and no --passphrase-file: a clear error", r.stderr)


def tampering(t, tmp, keys, outdir):
    src = os.path.join(tmp, "tamper-plain")
    with open(src, "wb") as f:
        f.write(os.urandom(2 * 65536 + 100))  # three chunks
    for armor in (False, True):
        ct = os.path.join(tmp, "tamper.age")
        run([AGE] + (["-a"] if armor else []) + ["-r", keys[0][1], "-o", ct, src]
            ).check_returncode()
        data = open(ct, "rb").read()
        kind = "armored" if armor else "binary"
        if armor:
            # Every byte of the first armor lines (the header) and a sample of the rest.
            # Every 3rd byte of the first armor lines (the header), a sample of the rest.
            positions = list(range(0, 400, 3)) + list(range(400, len(data), 1999)) + [
                len(data) - 2]
        else:
            hdr_len = data.index(b"\n---") + 1
            hdr_len = data.index(b"\n", hdr_len) + 1
            positions = list(range(hdr_len))
            positions += list(range(hdr_len, hdr_len + 16))  # payload nonce
            for c in range(3):
                base = hdr_len + 16 + c * (65536 + 16)
                positions += [base, base + 1, base + 4321, base + 65535, base + 65536,
                              base + 65536 + 15]
            positions = sorted(p for p in set(positions) if p < len(data))
            positions.append(len(data) - 1)
        bad = []
        tampered = os.path.join(tmp, "tampered.age")
        out = os.path.join(outdir, "tampered")
        for pos in positions:
            b = bytearray(data)
            b[pos] ^= 0x01
            with open(tampered, "wb") as f:
                f.write(b)
            r = run([NSIGN, "age-decrypt", "-i", keys[0][0], "-o", out, tampered])
            if r.returncode != 1 or not no_leftovers(outdir, "tampered"):
                bad.append((pos, r.returncode, r.stderr[-200:]))
                if os.path.exists(out):
                    os.unlink(out)
        t.check(not bad, "%s: each of %d single-byte changes (every header byte, payload nonce, "
                "chunk starts/ends/tags) fails and leaves no output" % (kind, len(positions)),
                bad[:5])
        # Truncations and appended bytes.
        bad = []
        # (an armored file may lose its final newline: armor_no_eol in CCTV is valid)
        end = len(data) - (2 if armor else 1)
        cuts = [0, 10, 100, end, len(data) - 17, len(data) // 2]
        for cut in cuts:
            with open(tampered, "wb") as f:
                f.write(data[:cut])
            r = run([NSIGN, "age-decrypt", "-i", keys[0][0], "-o", out, tampered])
            if r.returncode != 1 or not no_leftovers(outdir, "tampered"):
                bad.append(("cut", cut, r.returncode))
                if os.path.exists(out):
                    os.unlink(out)
        with open(tampered, "wb") as f:
            f.write(data + (b"\n\n" if armor else b"") + b"x")
        r = run([NSIGN, "age-decrypt", "-i", keys[0][0], "-o", out, tampered])
        if r.returncode != 1 or not no_leftovers(outdir, "tampered"):
            bad.append(("appended", r.returncode))
        t.check(not bad, "%s: truncated or extended files fail and leave no output" % kind, bad)
        # To stdout, a tampered last chunk: the earlier chunks are out, the exit status is 1.
        b = bytearray(data)
        b[-3 if not armor else -40] ^= 0x01
        with open(tampered, "wb") as f:
            f.write(b)
        r = run([NSIGN, "age-decrypt", "-i", keys[0][0], tampered])
        t.check(r.returncode == 1 and b"error" in r.stderr and
                len(r.stdout) < os.path.getsize(src),
                "%s: tampered last chunk to stdout exits 1 with an error line" % kind, r.stderr)


def failures(t, tmp, keys, other, passfile, outdir):
    ct = os.path.join(tmp, "f.age")
    run([AGE, "-r", keys[0][1], "-r", keys[1][1], "-o", ct, "/etc/hostname"]).check_returncode()
    out = os.path.join(outdir, "f")
    r = run([NSIGN, "age-decrypt", "-i", other, "-o", out, ct])
    t.check(r.returncode == 1 and b"no match" in r.stderr and b"no identity matched" in r.stderr
            and no_leftovers(outdir, "f"), "no matching identity: says so, exit 1", r.stderr)
    r = run([NSIGN, "age-decrypt", "--passphrase-file", passfile, "-o", out, ct])
    t.check(r.returncode == 1 and no_leftovers(outdir, "f"),
            "X25519 file with only a passphrase fails", r.stderr)
    pq = os.path.join(tmp, "pq.txt")
    with open(pq, "w") as f:
        f.write("AGE-SECRET-KEY-PQ-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ\n")
    r = run([NSIGN, "age-decrypt", "-i", pq, "-o", out, ct])
    t.check(r.returncode == 1 and b"mlkem768x25519" in r.stderr,
            "post-quantum identities only: reported as unsupported", r.stderr)
    bad = os.path.join(tmp, "bad-id")
    with open(bad, "w") as f:
        f.write(open(keys[0][0]).read().replace("AGE-SECRET-KEY-1", "AGE-SECRET-KEY-1Q"))
    r = run([NSIGN, "age-decrypt", "-i", bad, "-o", out, ct])
    t.check(r.returncode == 1 and b"identities" in r.stderr and b"line" in r.stderr,
            "malformed identity file: names the line", r.stderr)
    with open(bad, "w") as f:
        k = [line for line in open(keys[0][0]).read().splitlines() if line.startswith("AGE-")][0]
        f.write(k[:-1] + ("Q" if k[-1] != "Q" else "P") + "\n")
    r = run([NSIGN, "age-decrypt", "-i", bad, "-o", out, ct])
    t.check(r.returncode == 1 and b"checksum" in r.stderr, "identity with a bad bech32 checksum",
            r.stderr)
    pct = os.path.join(tmp, "p.age")
    ok, tr = age_encrypt_pass("/etc/hostname", pct, True)
    if ok:
        wrong = os.path.join(tmp, "wrongpass")
        with open(wrong, "w") as f:
            f.write("nope\n")
        r = run([NSIGN, "age-decrypt", "--passphrase-file", wrong, "-o", out, pct])
        t.check(r.returncode == 1 and b"wrong passphrase" in r.stderr and no_leftovers(outdir, "f"),
                "wrong passphrase file fails", r.stderr)
        r = run([NSIGN, "age-decrypt", "--max-work-factor", "17", "--passphrase-file", passfile,
                 "-o", out, pct])
        t.check(r.returncode == 1 and b"work factor" in r.stderr,
                "--max-work-factor below the file's (18) refuses it", r.stderr)
    r = run([NSIGN, "age-decrypt", "-p", "secret", ct])
    t.check(r.returncode == 2, "no passphrase option on the command line (usage error)", r.stderr)
    r = run([NSIGN, "age-decrypt", "-i", "-"], stdin=subprocess.DEVNULL)
    t.check(r.returncode == 2, "identity file and input both on stdin: usage error", r.stderr)
    r = run([NSIGN, "age-decrypt", "--max-work-factor", "31", "-i", keys[0][0], ct])
    t.check(r.returncode == 2, "--max-work-factor above 30: usage error", r.stderr)
    r = run([NSIGN, "age-decrypt", "--help"])
    t.check(r.returncode == 0 and b"--passphrase-file" in r.stdout and b"exit codes" in r.stdout,
            "--help documents options and exit codes", r.stderr)
    r = run([NSIGN, "age-decrypt", "-i", keys[0][0], "-o", out, os.path.join(tmp, "missing")])
    t.check(r.returncode == 1 and no_leftovers(outdir, "f"), "missing input file fails",
            r.stderr)


if __name__ == "__main__":
    main()
