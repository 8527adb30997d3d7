"""nsign frost-keygen against real peers: Debian's `age` decrypts every participant's file (and
so does nsign's own age-decrypt), each decrypted file loads in sign-service (ListKeys over
grpcio reports the group key as FROST_ED25519_SHA512 with the participant's identifier, T and
N; Sign refuses a share), the group file's verifying shares are each share times the base point
(system libsodium through ctypes, not nsign's code), any T shares reconstruct the secret of the
group key (Lagrange interpolation in plain Python, mod L) and that secret makes an RFC 8032
signature python3-cryptography verifies under the group key, while fewer than T shares do
not. Refusals: T > N, T < 2, a bad recipient, a recipient count that is not N, --allow with
--format keys, an existing output file (never overwritten)."""
import ctypes
import hashlib
import itertools
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time

import grpc
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from tap import NSIGN, check, done, free_port, kill_all  # noqa: E402

ROOT = os.environ.get("NS_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
TMP = tempfile.mkdtemp(prefix="nsign-frostkg-")
AGE = shutil.which("age")
AGE_KEYGEN = shutil.which("age-keygen")
L = 2**252 + 27742317777372353535851937790883648493
N_K1 = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
procs = []

sodium = ctypes.CDLL("libsodium.so.23")
assert sodium.sodium_init() >= 0


def base_mult(scalar):
    out = ctypes.create_string_buffer(32)
    rc = sodium.crypto_scalarmult_ed25519_base_noclamp(out, scalar.to_bytes(32, "little"))
    return out.raw if rc == 0 else None


def point_add(p, q):
    out = ctypes.create_string_buffer(32)
    return out.raw if sodium.crypto_core_ed25519_add(out, p, q) == 0 else None


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)


def lagrange_secret(points, L=L):
    """The polynomial's value at 0 from {x: share} (plain Python ints mod L)."""
    s = 0
    for xi, yi in points.items():
        num, den = 1, 1
        for xj in points:
            if xj != xi:
                num = num * xj % L
                den = den * (xj - xi) % L
        s = (s + yi * num * pow(den, -1, L)) % L
    return s


def ed25519_sign_raw(secret, pub, msg):
    """RFC 8032 signing with a raw scalar (what the group key's secret would sign)."""
    r = int.from_bytes(hashlib.sha512(b"nonce" + secret.to_bytes(32, "little") + msg).digest(),
                       "little") % L
    big_r = base_mult(r)
    c = int.from_bytes(hashlib.sha512(big_r + pub + msg).digest(), "little") % L
    return big_r + ((r + c * secret) % L).to_bytes(32, "little")


def list_keys(keys_path, pb):
    """Starts sign-service on keys_path, returns ListKeys' keys (or [] with the log shown)."""
    port = free_port()
    log = open(keys_path + ".log", "w+")
    p = subprocess.Popen([NSIGN, "sign-service", "--plaintext", "--keys", keys_path, "--listen",
                          "tcp:127.0.0.1:%d" % port, "--threads", "1"],
                         stdout=subprocess.DEVNULL, stderr=log)
    procs.append(p)
    ch = grpc.insecure_channel("127.0.0.1:%d" % port)
    try:
        grpc.channel_ready_future(ch).result(timeout=15)
        lk = ch.unary_unary("/nsign.v1.Signer/ListKeys",
                            request_serializer=pb.ListKeysRequest.SerializeToString,
                            response_deserializer=pb.ListKeysResponse.FromString)
        return list(lk(pb.ListKeysRequest(), timeout=10).keys)
    except Exception as e:  # noqa: BLE001
        print("# sign-service: %r %s" % (e, open(log.name).read()))
        return []
    finally:
        ch.close()
        p.kill()
        p.wait(timeout=10)


def keygen(outdir, t, n, recips, *extra):
    args = [NSIGN, "frost-keygen", "--threshold", str(t), "--signers", str(n), "-o", outdir]
    for r in recips:
        args += ["--recipient", r]
    return run(args + list(extra))


def main():
    # --- participants' age keys ---
    ids, recips = [], []
    for i in range(3):
        path = os.path.join(TMP, "id%d.txt" % (i + 1))
        run([AGE_KEYGEN, "-o", path])
        ids.append(path)
        recips.append(run([AGE_KEYGEN, "-y", path]).stdout.strip())
    out = os.path.join(TMP, "out")
    r = keygen(out, 2, 3, recips, "--id", "treasury")
    check(r.returncode == 0, "frost-keygen 2-of-3: exit 0", r.stderr)
    gpk = bytes.fromhex(r.stdout.strip())
    check(len(gpk) == 32, "prints the 32-byte group public key")
    names = sorted(os.listdir(out))
    check(names == ["treasury.1.age", "treasury.2.age", "treasury.3.age",
                    "treasury.group.json"], "one file per participant and the group file", names)
    check(all(stat.S_IMODE(os.stat(os.path.join(out, f)).st_mode) == 0o600 for f in names) and
          stat.S_IMODE(os.stat(out).st_mode) == 0o700, "files 0600, directory 0700")
    check(all(b"signing_share" not in open(os.path.join(out, f), "rb").read() for f in names),
          "no share in the clear in any output file")

    # --- the real age decrypts each file; nsign's decryptor agrees; others' keys do not ---
    entries = {}
    plain = {}
    for i in range(1, 4):
        f = os.path.join(out, "treasury.%d.age" % i)
        r = subprocess.run([AGE, "-d", "-i", ids[i - 1], f], capture_output=True, timeout=30)
        ok = r.returncode == 0
        r2 = subprocess.run([NSIGN, "age-decrypt", "-i", ids[i - 1], f], capture_output=True,
                            timeout=30)
        other = subprocess.run([AGE, "-d", "-i", ids[i % 3], f], capture_output=True, timeout=30)
        check(ok and r2.returncode == 0 and r2.stdout == r.stdout and other.returncode != 0,
              "participant %d's file: age -d and nsign age-decrypt open it, another key "
              "cannot" % i, r.stderr + r2.stderr)
        doc = json.loads(r.stdout) if ok else {"keys": [{}]}
        plain[i] = r.stdout
        check(doc.get("version") == 1 and len(doc["keys"]) == 1,
              "participant %d: a version 1 keys file with one entry" % i)
        entries[i] = doc["keys"][0]
    e1 = entries[1]
    check(sorted(e1) == sorted(["id", "algorithm", "identifier", "signing_share",
                                "group_public_key", "verifying_shares", "min_signers",
                                "max_signers"]) and e1["algorithm"] == "frost-ed25519-sha512" and
          e1["min_signers"] == 2 and e1["max_signers"] == 3 and e1["id"] == "treasury",
          "the entry has exactly the issue's shape", e1)
    check([entries[i]["identifier"] for i in (1, 2, 3)] == [1, 2, 3],
          "recipient i holds identifier i")
    group = json.load(open(os.path.join(out, "treasury.group.json")))
    check(group["group_public_key"] == gpk.hex() and group["min_signers"] == 2 and
          group["max_signers"] == 3 and all(entries[i]["verifying_shares"] ==
                                            group["verifying_shares"] for i in (1, 2, 3)),
          "group file and entries agree")
    shares = {i: int.from_bytes(bytes.fromhex(entries[i]["signing_share"]), "little")
              for i in (1, 2, 3)}
    check(all(base_mult(shares[i]).hex() == group["verifying_shares"][str(i)] for i in (1, 2, 3)),
          "each verifying share is its share times the base point (system libsodium)")
    vss = [bytes.fromhex(h) for h in group["vss_commitment"]]
    check(len(vss) == 2 and vss[0] == gpk, "VSS commitment: T elements, the first the group key")
    # C0 + i*C1 for T = 2 (appendix C.2 vss_verify), with libsodium's scalar multiplication
    ok = True
    for i in (1, 2, 3):
        out_i = ctypes.create_string_buffer(32)
        ok &= sodium.crypto_scalarmult_ed25519_noclamp(out_i, i.to_bytes(32, "little"),
                                                       vss[1]) == 0
        ok &= point_add(vss[0], out_i.raw) == base_mult(shares[i])
    check(ok, "every share passes vss_verify against the VSS commitment")

    # --- any T shares reconstruct the key; fewer do not ---
    msg = b"reconstructed by the test"
    pub = ed25519.Ed25519PublicKey.from_public_bytes(gpk)
    for a, b in itertools.combinations((1, 2, 3), 2):
        s = lagrange_secret({a: shares[a], b: shares[b]})
        same = base_mult(s) == gpk
        try:
            pub.verify(ed25519_sign_raw(s, gpk, msg), msg)
            verified = True
        except Exception:
            verified = False
        check(same and verified, "shares {%d,%d} reconstruct the group secret; its signature "
              "verifies under the group key (python3-cryptography)" % (a, b))
    check(all(base_mult(shares[i]) != gpk for i in (1, 2, 3)), "no single share is the key")

    # --- each decrypted file loads in sign-service; ListKeys reports the group key ---
    subprocess.run(["protoc", "-I" + os.path.join(ROOT, "proto"), "--python_out=" + TMP,
                    "nsign.proto"], check=True)
    sys.path.insert(0, TMP)
    import nsign_pb2 as pb
    for i in (1, 3):
        kp = os.path.join(TMP, "keys%d.json" % i)
        fd = os.open(kp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, plain[i])
        os.close(fd)
        port = free_port()
        log = open(os.path.join(TMP, "svc%d.log" % i), "w+")
        p = subprocess.Popen([NSIGN, "sign-service", "--plaintext", "--keys", kp, "--listen",
                              "tcp:127.0.0.1:%d" % port, "--threads", "1"],
                             stdout=subprocess.DEVNULL, stderr=log)
        procs.append(p)
        t0 = time.time()
        while time.time() - t0 < 15 and p.poll() is None:
            if "serving addr=" in open(log.name).read():
                break
            time.sleep(0.05)
        ch = grpc.insecure_channel("127.0.0.1:%d" % port)
        try:
            grpc.channel_ready_future(ch).result(timeout=10)
            lk = ch.unary_unary("/nsign.v1.Signer/ListKeys",
                                request_serializer=pb.ListKeysRequest.SerializeToString,
                                response_deserializer=pb.ListKeysResponse.FromString)
            keys = lk(pb.ListKeysRequest(), timeout=10).keys
            vsh = hashlib.sha256(b"".join(bytes.fromhex(group["verifying_shares"][str(j)])
                                          for j in (1, 2, 3))).digest()
            check(len(keys) == 1 and keys[0].key_id == "treasury" and
                  keys[0].algorithm == pb.FROST_ED25519_SHA512 and keys[0].public_key == gpk and
                  keys[0].frost_identifier == i and keys[0].frost_min_signers == 2 and
                  keys[0].frost_max_signers == 3 and
                  keys[0].frost_verifying_shares_sha256 == vsh,
                  "participant %d's file loads in sign-service: ListKeys shows the group key, "
                  "identifier, T, N and the verifying shares' digest" % i, keys)
            sg = ch.unary_unary("/nsign.v1.Signer/Sign",
                                request_serializer=pb.SignRequest.SerializeToString,
                                response_deserializer=pb.SignResponse.FromString)
            try:
                sg(pb.SignRequest(key_id="treasury", message=b"x"), timeout=10)
                code = grpc.StatusCode.OK
            except grpc.RpcError as e:
                code = e.code()
            check(code == grpc.StatusCode.INVALID_ARGUMENT, "Sign refuses a FROST share", code)
        except Exception as e:  # noqa: BLE001
            check(False, "sign-service with participant %d's file" % i,
                  "%r\n%s" % (e, open(log.name).read()))
        finally:
            ch.close()
            p.kill()
            p.wait(timeout=10)

    # --- --allow: the entry alone, with its allow list ---
    out2 = os.path.join(TMP, "out2")
    r = keygen(out2, 3, 3, recips, "--id", "k2", "--allow", "payments-api", "--allow", "ops")
    dec = subprocess.run([AGE, "-d", "-i", ids[0], os.path.join(out2, "k2.1.age")],
                         capture_output=True, timeout=30)
    ent = json.loads(dec.stdout) if dec.returncode == 0 else {}
    check(r.returncode == 0 and ent.get("allow") == ["payments-api", "ops"] and
          ent.get("min_signers") == 3 and "version" not in ent,
          "--allow: each file is the entry alone with its allow list", r.stderr)

    # --- refusals ---
    def refused(desc, res, needle, code=2):
        check(res.returncode == code and needle in res.stderr, desc, res.stderr)

    bad = os.path.join(TMP, "bad")
    refused("T > N refused", keygen(bad, 4, 3, recips), "exceeds")
    refused("T < 2 refused", keygen(bad, 1, 3, recips), "at least 2")
    refused("a bad recipient refused", keygen(bad, 2, 3, recips[:2] + [recips[2][:-1] + "q"]),
            "--recipient")
    refused("an identity given as recipient refused",
            keygen(bad, 2, 3, recips[:2] + [open(ids[0]).read().split()[-1]]), "--recipient")
    refused("two recipients for three signers refused", keygen(bad, 2, 3, recips[:2]),
            "exactly one per participant")
    refused("--allow with --format keys refused",
            keygen(bad, 2, 3, recips, "--allow", "x", "--format", "keys"), "--format entry")
    check(not os.path.exists(bad), "nothing written on a usage error")
    before = open(os.path.join(out, "treasury.1.age"), "rb").read()
    r = keygen(out, 2, 3, recips, "--id", "treasury")
    check(r.returncode == 1 and "already exists" in r.stderr and
          open(os.path.join(out, "treasury.1.age"), "rb").read() == before,
          "a second run into the same directory refuses and overwrites nothing", r.stderr)
    secp256k1(ids, recips, pb)
    r = run([NSIGN, "frost-keygen", "--help"])
    check(r.returncode == 0 and "--threshold" in r.stdout and "exit codes" in r.stdout, "--help")


def secp256k1(ids, recips, pb):
    """--ciphersuite frost-secp256k1-sha256: the same checks on python3-cryptography's curve."""
    out = os.path.join(TMP, "k1")
    r = keygen(out, 2, 3, recips, "--id", "btc", "--ciphersuite", "frost-secp256k1-sha256")
    check(r.returncode == 0, "secp256k1: frost-keygen 2-of-3", r.stderr)
    gpk = bytes.fromhex(r.stdout.strip() or "00")
    group = json.load(open(os.path.join(out, "btc.group.json"))) if r.returncode == 0 else {}
    entries = {}
    plain = {}
    for i in (1, 2, 3):
        d = subprocess.run([AGE, "-d", "-i", ids[i - 1], os.path.join(out, "btc.%d.age" % i)],
                           capture_output=True, timeout=30)
        plain[i] = d.stdout
        entries[i] = json.loads(d.stdout)["keys"][0] if d.returncode == 0 else {}
    check(len(gpk) == 33 and group.get("algorithm") == "frost-secp256k1-sha256" and
          all(entries[i].get("algorithm") == "frost-secp256k1-sha256" for i in (1, 2, 3)),
          "secp256k1: 33-byte group key, entries and group file name the suite")

    def pub_of(k):
        return ec.derive_private_key(k, ec.SECP256K1()).public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)

    shares = {i: int.from_bytes(bytes.fromhex(entries[i]["signing_share"]), "big")
              for i in (1, 2, 3)}
    check(all(pub_of(shares[i]).hex() == group["verifying_shares"][str(i)] for i in (1, 2, 3)),
          "secp256k1: each verifying share is its share times G (python3-cryptography)")
    ok = True
    for a, b in itertools.combinations((1, 2, 3), 2):
        s = lagrange_secret({a: shares[a], b: shares[b]}, N_K1)
        ok &= pub_of(s) == gpk
    check(ok, "secp256k1: any 2 shares reconstruct the secret of the group key")
    kp = os.path.join(TMP, "k1keys.json")
    fd = os.open(kp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, plain[2])
    os.close(fd)
    keys = list_keys(kp, pb)
    check(len(keys) == 1 and keys[0].algorithm == pb.FROST_SECP256K1_SHA256 and
          keys[0].public_key == gpk and keys[0].frost_identifier == 2 and
          serialization.load_der_public_key(keys[0].public_key_der).public_bytes(
              serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint) == gpk,
          "secp256k1: loads in sign-service; ListKeys shows the group key and a DER SPKI "
          "python3-cryptography reads", keys)


try:
    main()
finally:
    kill_all(procs)
    shutil.rmtree(TMP, ignore_errors=True)
done()
