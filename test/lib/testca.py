"""testca.py: a throwaway test CA and one server certificate signed by it, for the TLS fakes.

write_tls(d, cn, dns, ips=(), prefix="", ca_cn=...) writes PEM files d/<prefix>ca.pem,
d/<prefix>cert.pem and d/<prefix>key.pem (P-256, valid from an hour ago for a day) and returns
their paths keyed "ca.pem", "cert.pem", "key.pem". Tests trust the CA through --ca-bundle or
AWS_CA_BUNDLE, never through the binary's embedded roots.
"""
import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def write_tls(d, cn, dns, ips=(), prefix="", ca_cn="nsign test CA"):
    now = datetime.datetime.now(datetime.timezone.utc)
    valid_from = now - datetime.timedelta(hours=1)
    valid_to = now + datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_cn)])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(valid_from).not_valid_after(valid_to)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName(n) for n in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(valid_from).not_valid_after(valid_to)
            .add_extension(x509.SubjectAlternativeName(sans), False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    blobs = {
        "ca.pem": ca.public_bytes(pem),
        "cert.pem": cert.public_bytes(pem),
        "key.pem": key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()),
    }
    paths = {}
    for name, data in blobs.items():
        paths[name] = os.path.join(d, prefix + name)
        with open(paths[name], "wb") as f:
            f.write(data)
    return paths
