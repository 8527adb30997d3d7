"""nsm_fake: a software Nitro Secure Module on a unix socket (NSM_DEVICE=unix:PATH).

Protocol (as nsign's nsm.c speaks it): one CBOR request per connection; the client writes it and
shuts down its write side; we answer one CBOR response and close. Requests are checked as the
real NSM does (serde externally tagged): "GetRandom" -> {"GetRandom": {"random": 256 bytes}};
{"Attestation": {"user_data", "nonce", "public_key": bstr(<=1024) | null}} -> {"Attestation":
{"document": COSE_Sign1}}; anything else -> {"Error": "InvalidArgument"}.

The document is signed like the real one: COSE_Sign1 [bstr{1: -35}, {}, payload, r||s] with
ES384 by a fresh leaf certificate (valid 3 h) under a test chain root -> intermediate -> leaf;
payload keys in the NSM's order, cabundle root first, 16 PCRs of 48 bytes (all zero unless
--pcr0 HEX). The test root is written to CA_DIR/root.pem (and .der) for the KMS fake to trust.

usage: nsm_fake.py --socket PATH --ca-dir DIR [--pcr0 HEX] [--error CODE] [--log FILE]
                   [--no-answer]
                   [--swap-public-key]  (a misbehaving NSM: binds some other RSA key)
"""
import argparse
import datetime
import hashlib
import json
import os
import socket
import sys
import time
import threading

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

MAX_REQ = 0x1000
FIELD_MAX = 1024
NPCR = 32


class Pcrs:
    """The NSM's PCR bank: 0-15 locked at boot, as Nitro (and QEMU's NSM) starts an enclave."""

    def __init__(self, pcr0):
        self.value = [bytes(48) for _ in range(NPCR)]
        self.value[0] = pcr0
        self.locked = [i < 16 for i in range(NPCR)]

    def locked_map(self):
        return {i: self.value[i] for i in range(NPCR) if self.locked[i]}


def index_of(body, keys):
    if not isinstance(body, dict) or set(body) != keys:
        return None
    i = body["index"]
    if not isinstance(i, int) or isinstance(i, bool) or i < 0 or i > 0xFFFF:
        return None
    return i


def pcr_op(op, body, pcrs):
    if op == "DescribePCR":
        i = index_of(body, {"index"})
        if i is None:
            return {"Error": "InvalidArgument"}
        if i >= NPCR:
            return {"Error": "InvalidIndex"}
        return {"DescribePCR": {"lock": pcrs.locked[i], "data": pcrs.value[i]}}
    if op == "ExtendPCR":
        i = index_of(body, {"index", "data"})
        if i is None or not isinstance(body["data"], bytes):
            return {"Error": "InvalidArgument"}
        if i >= NPCR:
            return {"Error": "InvalidIndex"}
        if len(body["data"]) > FIELD_MAX:
            return {"Error": "InputTooLarge"}
        if pcrs.locked[i]:
            return {"Error": "ReadOnlyIndex"}
        pcrs.value[i] = hashlib.sha384(pcrs.value[i] + body["data"]).digest()
        return {"ExtendPCR": {"data": pcrs.value[i]}}
    i = index_of(body, {"index"})  # LockPCR
    if i is None:
        return {"Error": "InvalidArgument"}
    if i >= NPCR:
        return {"Error": "InvalidIndex"}
    if pcrs.locked[i]:
        return {"Error": "ReadOnlyIndex"}
    pcrs.locked[i] = True
    return "LockPCR"


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nsign test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_cert(subject, pub, issuer, issuer_key, ca, not_before, not_after):
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(pub)
         .serial_number(x509.random_serial_number()).not_valid_before(not_before)
         .not_valid_after(not_after)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                          False), critical=True)
    else:
        b = b.add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                          False), critical=True)
    return b.sign(issuer_key, hashes.SHA384())


class Chain:
    def __init__(self, ca_dir):
        now = datetime.datetime.now(datetime.timezone.utc)
        self.root_key = ec.generate_private_key(ec.SECP384R1())
        self.root = make_cert(name("nsign test nitro root"), self.root_key.public_key(),
                              name("nsign test nitro root"), self.root_key, True,
                              now - datetime.timedelta(days=1), now + datetime.timedelta(days=30))
        self.int_key = ec.generate_private_key(ec.SECP384R1())
        self.inter = make_cert(name("nsign test nitro zonal"), self.int_key.public_key(),
                               self.root.subject, self.root_key, True,
                               now - datetime.timedelta(days=1), now + datetime.timedelta(days=7))
        os.makedirs(ca_dir, exist_ok=True)
        with open(os.path.join(ca_dir, "root.pem"), "wb") as f:
            f.write(self.root.public_bytes(serialization.Encoding.PEM))
        with open(os.path.join(ca_dir, "root.der"), "wb") as f:
            f.write(self.root.public_bytes(serialization.Encoding.DER))


def attestation(chain, pcrs, user_data, nonce, public_key):
    now = datetime.datetime.now(datetime.timezone.utc)
    leaf_key = ec.generate_private_key(ec.SECP384R1())
    leaf = make_cert(name("i-0123456789abcdef0-enc0123456789abcdef.test"), leaf_key.public_key(),
                     chain.inter.subject, chain.int_key, False, now - datetime.timedelta(seconds=30),
                     now + datetime.timedelta(hours=3))
    der = serialization.Encoding.DER
    payload = {
        "module_id": "i-0123456789abcdef0-enc0123456789abcdef",
        "digest": "SHA384",
        "timestamp": int(now.timestamp() * 1000),
        "pcrs": pcrs,
        "certificate": leaf.public_bytes(der),
        "cabundle": [chain.root.public_bytes(der), chain.inter.public_bytes(der)],
        "public_key": public_key,
        "user_data": user_data,
        "nonce": nonce,
    }
    payload_b = cbor2.dumps(payload)
    protected = cbor2.dumps({1: -35})
    sig_structure = cbor2.dumps(["Signature1", protected, b"", payload_b])
    r, s = decode_dss_signature(leaf_key.sign(sig_structure, ec.ECDSA(hashes.SHA384())))
    sig = r.to_bytes(48, "big") + s.to_bytes(48, "big")
    return cbor2.dumps([protected, {}, payload_b, sig])


def qemu_unsigned(pcrs, user_data, nonce, public_key):
    """A document shaped like QEMU's emulated NSM's (hw/virtio/virtio-nsm.c): protected header
    {1: -1} (QEMU's marker for "not signed"), no signature (zero bytes),
    zero certificate and a cabundle of one zero entry, only the locked PCRs."""
    payload = {
        "module_id": "i-234-enc5678",
        "digest": "SHA384",
        "timestamp": int(time.time() * 1000),
        "pcrs": pcrs,
        "certificate": bytes(64),
        "cabundle": [bytes(64)],
        "public_key": public_key,
        "user_data": user_data,
        "nonce": nonce,
    }
    return cbor2.dumps([cbor2.dumps({1: -1}), {}, cbor2.dumps(payload), bytes(64)])


def check_attestation_req(body):
    if not isinstance(body, dict) or set(body) != {"user_data", "nonce", "public_key"}:
        return None
    for k, v in body.items():
        if v is not None and (not isinstance(v, bytes) or len(v) > FIELD_MAX):
            return None
    return body


def handle(raw, chain, args, log, pcrs):
    try:
        req = cbor2.loads(raw)
    except Exception:
        return {"Error": "InvalidArgument"}, "undecodable"
    if args.error:
        return {"Error": args.error}, "forced-error"
    if req == "GetRandom":
        return {"GetRandom": {"random": os.urandom(256)}}, "GetRandom"
    if isinstance(req, dict) and len(req) == 1 and list(req)[0] in ("DescribePCR", "ExtendPCR",
                                                                    "LockPCR"):
        op = list(req)[0]
        resp = pcr_op(op, req[op], pcrs)
        body = req[op] if isinstance(req[op], dict) else {}
        log.append({"kind": op, "index": body.get("index"),
                    "data": body["data"].hex() if isinstance(body.get("data"), bytes) else None,
                    "error": resp.get("Error") if isinstance(resp, dict) else None})
        return resp, op
    if isinstance(req, dict) and list(req) == ["Attestation"]:
        body = check_attestation_req(req["Attestation"])
        if body is None:
            return {"Error": "InvalidArgument"}, "bad-attestation-request"
        pk = body["public_key"]
        if args.swap_public_key and pk is not None:
            from cryptography.hazmat.primitives.asymmetric import rsa
            pk = rsa.generate_private_key(65537, 2048).public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if args.qemu_unsigned:
            doc = qemu_unsigned(pcrs.locked_map(), body["user_data"], body["nonce"], pk)
        else:
            doc = attestation(chain, pcrs.locked_map(), body["user_data"], body["nonce"], pk)
        log.append({"kind": "Attestation",
                    "public_key": (body["public_key"] or b"").hex(),
                    "user_data": body["user_data"] is not None,
                    "nonce": body["nonce"] is not None})
        return {"Attestation": {"document": doc}}, "Attestation"
    return {"Error": "InvalidArgument"}, "unknown-request"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", required=True)
    ap.add_argument("--ca-dir", required=True)
    ap.add_argument("--pcr0")
    ap.add_argument("--error")
    ap.add_argument("--log")
    ap.add_argument("--swap-public-key", action="store_true")
    ap.add_argument("--qemu-unsigned", action="store_true",
                    help="answer unsigned documents shaped like QEMU's NSM")
    ap.add_argument("--no-answer", action="store_true")
    ap.add_argument("--reset-port-file")
    args = ap.parse_args()
    chain = Chain(args.ca_dir)
    pcr0 = bytes.fromhex(args.pcr0) if args.pcr0 else bytes(48)
    pcrs = Pcrs(pcr0)
    lock = threading.Lock()
    if args.reset_port_file:
        rs = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        rs.bind(("127.0.0.1", 0))
        rs.listen(8)

        def resetter():
            while True:
                c, _ = rs.accept()
                with lock:
                    pcrs.__init__(pcr0)
                try:
                    c.settimeout(5)
                    c.recv(4096)
                    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nreset\n")
                except OSError:
                    pass
                c.close()
        threading.Thread(target=resetter, daemon=True).start()
        with open(args.reset_port_file + ".tmp", "w") as f:
            f.write(str(rs.getsockname()[1]))
        os.rename(args.reset_port_file + ".tmp", args.reset_port_file)
    hung = []
    if os.path.exists(args.socket):
        os.unlink(args.socket)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(args.socket + ".tmp")
    srv.listen(16)
    os.rename(args.socket + ".tmp", args.socket)  # appears only when ready
    log = []
    while True:
        conn, _ = srv.accept()
        if args.no_answer:
            hung.append(conn)  # never answered, never closed
            continue
        conn.settimeout(10)
        try:
            raw = b""
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                raw += chunk
                if len(raw) > MAX_REQ:
                    break
            if len(raw) > MAX_REQ:
                resp, kind = {"Error": "InputTooLarge"}, "too-large"
            else:
                with lock:
                    resp, kind = handle(raw, chain, args, log, pcrs)
            if args.log:  # before answering, so a client that got its answer sees the log
                with open(args.log + ".tmp", "w") as f:
                    json.dump(log, f)
                os.rename(args.log + ".tmp", args.log)
            conn.sendall(cbor2.dumps(resp))
        except Exception as e:  # one bad client must not stop the fake
            print("nsm_fake: %s" % e, file=sys.stderr)
        finally:
            conn.close()


if __name__ == "__main__":
    main()
