"""mtls.py: shared pieces of the mutual-TLS sign-service tests (test_sign_tls.py,
test_sign_grpcjs.py): self-signed client certificates with their keys-file pins, the software
NSM (test/it/fakes/nsm_fake.py: attestation documents under a test root in CA_DIR), and a
sign-service started on a free port that uses it.
"""
import datetime
import hashlib
import os
import subprocess
import sys
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from tap import NSIGN, free_port

PEM = serialization.Encoding.PEM
DER = serialization.Encoding.DER
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
FAKES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "it", "fakes")


def write(tmp, name, data):
    path = os.path.join(tmp, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def client_cert(tmp, name, key):
    """A self-signed client certificate (any issuer works: the pin authorises), written to
    TMP/NAME.pem and TMP/NAME.key: {"cert", "key" (paths), "pin", "cert_pem", "key_pem"}."""
    now = datetime.datetime.now(datetime.timezone.utc)
    n = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    c = (x509.CertificateBuilder().subject_name(n).issuer_name(n).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(1))
         .not_valid_after(now + datetime.timedelta(1)).sign(key, hashes.SHA256()))
    kp = key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    pin = hashlib.sha256(key.public_key().public_bytes(DER, SPKI)).hexdigest()
    return {"cert": write(tmp, name + ".pem", c.public_bytes(PEM)),
            "key": write(tmp, name + ".key", kp), "pin": pin, "cert_pem": c.public_bytes(PEM),
            "key_pem": kp}


def start_nsm(tmp, procs):
    """Starts the software NSM; returns (its socket path, its CA folder: root.pem)."""
    sock = os.path.join(tmp, "nsm.sock")
    ca_dir = os.path.join(tmp, "ca")
    procs.append(subprocess.Popen([sys.executable, os.path.join(FAKES, "nsm_fake.py"),
                                   "--socket", sock, "--ca-dir", ca_dir],
                                  stderr=subprocess.DEVNULL))
    for _ in range(200):
        if os.path.exists(sock):
            break
        time.sleep(0.05)
    return sock, ca_dir


def start_sign_service(tmp, procs, nsm_sock, keys, args=()):
    """sign-service (TLS) with KEYS on a free port and the software NSM; returns (process, port,
    log path) once it serves, or ends the test with a "not ok" line and the log."""
    port = free_port()
    log = os.path.join(tmp, "server-%d.log" % port)
    env = dict(os.environ, NSM_DEVICE="unix:" + nsm_sock)
    p = subprocess.Popen([NSIGN, "sign-service", "--keys", keys, "--listen",
                          "tcp:127.0.0.1:%d" % port, "--threads", "2"] + list(args),
                         stdout=subprocess.DEVNULL, stderr=open(log, "w"), env=env)
    procs.append(p)
    for _ in range(300):
        if "serving addr=" in open(log).read():
            return p, port, log
        if p.poll() is not None:
            break
        time.sleep(0.05)
    raise SystemExit("not ok - sign-service did not start\n# " + open(log).read())
