#!/usr/bin/env bash
# test_tls: nsign's TLS client (src/transport/tls.c through s3-get) against openssl s_server: a valid
# chain succeeds, over TLS 1.3 or 1.2 only servers too, and TLS 1.3 is what a server offering both
# gets (Python's ssl module, OpenSSL, reports the version); an expired or not-yet-valid
# certificate and a server that never answers each fail with a message naming the host and the
# reason. (Untrusted chains and
# name mismatches are in test_s3_get.sh.) Certificates are made here with python3-cryptography.
set -u
. "$(dirname "$0")/../lib/tap.sh"
T=$(mktemp -d /tmp/nsign-tls.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$T"; }
trap cleanup EXIT

"$PY" - "$T" <<'PYEOF' || { echo "not ok - certificates generated"; exit 1; }
import datetime, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID
d = sys.argv[1]
now = datetime.datetime.utcnow()
def name(cn): return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
def pem(path, data): open(path, "wb").write(data)
cakey = ec.generate_private_key(ec.SECP256R1())
ca = (x509.CertificateBuilder().subject_name(name("nsign tls test CA")).issuer_name(name("nsign tls test CA"))
      .public_key(cakey.public_key()).serial_number(1).not_valid_before(now - datetime.timedelta(days=30))
      .not_valid_after(now + datetime.timedelta(days=30))
      .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
      .sign(cakey, hashes.SHA256()))
pem(d + "/ca.pem", ca.public_bytes(serialization.Encoding.PEM))
for tag, nb, na in (("ok", -1, 1), ("expired", -10, -1), ("future", 5, 10)):
    k = ec.generate_private_key(ec.SECP256R1())
    c = (x509.CertificateBuilder().subject_name(name("localhost")).issuer_name(ca.subject)
         .public_key(k.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now + datetime.timedelta(days=nb)).not_valid_after(now + datetime.timedelta(days=na))
         .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
         .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
         .sign(cakey, hashes.SHA256()))
    pem(d + "/%s.pem" % tag, c.public_bytes(serialization.Encoding.PEM))
    pem(d + "/%s.key" % tag, k.private_bytes(serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
PYEOF
ok "certificates generated (valid, expired, not yet valid)"
printf '{"AccessKeyId":"AKIDTLSTEST","SecretAccessKey":"tls-test-secret"}' >"$T/creds.json"

# serve NAME ARGS...: openssl s_server on a free port, sets PORT_<NAME>.
serve() {
    local name=$1; shift
    local port; port=$(free_port)
    openssl s_server -quiet -accept "127.0.0.1:$port" -naccept 4 "$@" </dev/null >"$T/$name.log" 2>&1 &
    PIDS+=($!)
    wait_port "$port" 10 || echo "# s_server $name did not start"
    eval "PORT_$name=$port"
}
serve ok -cert "$T/ok.pem" -key "$T/ok.key" -www
serve expired -cert "$T/expired.pem" -key "$T/expired.key" -www
serve future -cert "$T/future.pem" -key "$T/future.key" -www
serve tls13 -cert "$T/ok.pem" -key "$T/ok.key" -www -tls1_3
serve tls12 -cert "$T/ok.pem" -key "$T/ok.key" -www -tls1_2
# A server offering TLS 1.2 and 1.3 that writes down what each handshake negotiated.
PORT_ver=$(free_port)
"$PY" - "$T" "$PORT_ver" <<'PYEOF' &
import socket, ssl, sys
d, port = sys.argv[1], int(sys.argv[2])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.minimum_version = ssl.TLSVersion.TLSv1_2
ctx.load_cert_chain(d + "/ok.pem", d + "/ok.key")
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port)); s.listen(4)
for _ in range(2):
    c, _ = s.accept()
    try:
        t = ctx.wrap_socket(c, server_side=True)
        open(d + "/ver.log", "a").write("%s %s\n" % (t.version(), t.cipher()[0]))
        t.recv(65536)
        t.sendall(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        t.close()
    except Exception as e:
        open(d + "/ver.log", "a").write("error %s\n" % e)
PYEOF
PIDS+=($!)
wait_port "$PORT_ver" 10
silent=$(free_port)
"$PY" -c 'import socket,sys,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8); c=[]; [c.append(s.accept()) for _ in range(8)]; time.sleep(60)' "$silent" &
PIDS+=($!)
wait_port "$silent" 10

get() {
    local port=$1; shift
    AWS_MAX_ATTEMPTS=1 "$NSIGN" s3-get --creds "$T/creds.json" --ca-bundle "$T/ca.pem" \
        --endpoint "https://localhost:$port" "$@" s3://bkt/key "$T/out" 2>"$T/err"
}
get "$PORT_ok"; cp "$T/err" "$T/err.ok"; sed "s/^/# /" "$T/err.ok"
check "valid chain: the handshake succeeds (the failure is past TLS, at HTTP)" \
    bash -c "! grep -qi tls '$T/err.ok' && grep -q s3-get '$T/err.ok'"
get "$PORT_expired"; rc=$?; sed 's/^/# /' "$T/err"
check "expired certificate: refused, names host and reason" \
    bash -c "[ $rc = 1 ] && grep -q 'certificate of localhost not accepted' '$T/err' && grep -qi 'expired' '$T/err'"
get "$PORT_future"; rc=$?; sed 's/^/# /' "$T/err"
check "not-yet-valid certificate: refused, says so" \
    bash -c "[ $rc = 1 ] && grep -qi 'future' '$T/err'"
get "$PORT_tls13"; sed 's/^/# /' "$T/err"
check "TLS 1.3-only server: the handshake succeeds (the failure is past TLS, at HTTP)" \
    bash -c "! grep -qi tls '$T/err' && grep -q s3-get '$T/err'"
get "$PORT_tls12"; sed 's/^/# /' "$T/err"
check "TLS 1.2-only server: the handshake succeeds (the failure is past TLS, at HTTP)" \
    bash -c "! grep -qi tls '$T/err' && grep -q s3-get '$T/err'"
get "$PORT_ver"; sed 's/^/# /' "$T/err" "$T/ver.log"
check "server offering TLS 1.2 and 1.3: TLS 1.3 is negotiated" \
    bash -c "grep -q '^TLSv1.3 TLS_' '$T/ver.log' && grep -q '403' '$T/err'"
get "$silent" --timeout 1; rc=$?
check "server that never answers the handshake: bounded timeout" \
    bash -c "[ $rc = 1 ] && grep -q 'TLS handshake with localhost timed out' '$T/err'"
check "no output file after any failure" test ! -e "$T/out"
tap_done
