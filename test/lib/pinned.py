"""pinned: the test clients' way to reach sign-service as issue 13 says a client must, with
python3-grpcio, and a recorder for what the host relays.

  server_cert(host, port, cert, key)  the DER certificate the server presents (the handshake is
                                      a real one, with our client certificate when given)
  channel(host, port, cert, key)      (grpc channel trusting exactly that certificate, its DER)
  check_binding(att, server_der)      AttestResponse.certificate is the pinned certificate and
                                      the document's public_key is its SubjectPublicKeyInfo;
                                      returns the document's payload (dict). The document's
                                      signature and chain are attest-verify's job.
  attest(ch, pb, server_der)          Attest on ch with a fresh nonce, checked as above and for
                                      the nonce; returns the document's payload
  Recorder(host, port)                a TCP relay on 127.0.0.1 that keeps every byte both ways
                                      (what a host in the middle, run-enclave's bridge
                                      included, sees); .port, .streams() (one bytes per
                                      connection and direction), .close()

cert and key are PEM file paths, or None for a server without a client policy.
"""
import socket
import ssl
import threading

NAME = "nsign-enclave"  # the name in sign-service's self-signed certificate


def server_cert(host, port, cert=None, key=None, timeout=10):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    if cert:
        ctx.load_cert_chain(cert, key)
    with socket.create_connection((host, port), timeout=timeout) as s:
        with ctx.wrap_socket(s, server_hostname=NAME) as t:
            return t.getpeercert(binary_form=True)


def channel(host, port, cert=None, key=None):
    import grpc
    der = server_cert(host, port, cert, key)
    pem = ssl.DER_cert_to_PEM_cert(der).encode()
    creds = grpc.ssl_channel_credentials(
        root_certificates=pem, private_key=open(key, "rb").read() if key else None,
        certificate_chain=open(cert, "rb").read() if cert else None)
    ch = grpc.secure_channel("%s:%d" % (host, port), creds,
                             options=[("grpc.ssl_target_name_override", NAME)])
    return ch, der


def check_binding(att, server_der):
    import cbor2
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    if att.certificate != server_der:
        raise AssertionError("Attest names another certificate than the one this channel pinned")
    cose = cbor2.loads(att.attestation_document)
    cose = cose.value if isinstance(cose, cbor2.CBORTag) else cose
    doc = cbor2.loads(cose[2])
    spki = x509.load_der_x509_certificate(server_der).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if doc.get("public_key") != spki:
        raise AssertionError("the attestation document's public_key is not the pinned "
                             "certificate's key")
    return doc


def attest(ch, pb, server_der, timeout=20):
    import os
    call = ch.unary_unary("/nsign.v1.Signer/Attest",
                          request_serializer=pb.AttestRequest.SerializeToString,
                          response_deserializer=pb.AttestResponse.FromString)
    nonce = os.urandom(32)
    doc = check_binding(call(pb.AttestRequest(nonce=nonce), timeout=timeout), server_der)
    if doc.get("nonce") != nonce:
        raise AssertionError("the attestation document does not carry our nonce")
    return doc


class Recorder:
    def __init__(self, host, port):
        self.target = (host, port)
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.port = self.ls.getsockname()[1]
        self.recorded = []  # one bytearray per connection and direction
        self.mu = threading.Lock()
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(self.target, timeout=10)
                u.settimeout(None)
            except OSError:
                c.close()
                continue
            self.socks += [c, u]
            for a, b in ((c, u), (u, c)):
                buf = bytearray()
                with self.mu:
                    self.recorded.append(buf)
                threading.Thread(target=self._pipe, args=(a, b, buf), daemon=True).start()

    def _pipe(self, a, b, buf):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                with self.mu:
                    buf += d
                b.sendall(d)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def streams(self):
        with self.mu:
            return [bytes(b) for b in self.recorded]

    def close(self):
        self.ls.close()
        for s in self.socks:
            s.close()
