#!/usr/bin/env bash
# bench/sign.sh [BUILD_DIR]: sign-service throughput and latency against the raw signer, in one
# run. For Ed25519, secp256k1 and P-256:
#   (a) raw signatures/s on all cores with the exact call the service makes per request;
#   (b) h2load driving nsign.v1.Signer/Sign at 64 concurrent streams (4 connections x 16).
# Prints RPS, p50/p99 latency (from h2load's per-request log) and RPS/raw. It also measures
# libsecp256k1's own recoverable signing (the library nsign links, built from the same Debian
# source into build/deps) on the same cores: the secp256k1 goal is RPC/s >= 0.5 x that, p99 <=
# 5 ms. BEFORE=NSIGN_BINARY (optional) runs (b) for a previous binary too, in the same run and
# conditions, one server at a time (e.g. the last mbedtls 2.28 build), for before/after figures.
# Mutual TLS (issue 13): h2load cannot present a client certificate, so bench/sign_load.c (a
# small nghttp2 + mbedtls load generator, the same code over h2c and over TLS) drives Ed25519
# Sign at the same 64 streams over h2c (a --plaintext server) and over mutual TLS 1.3 (a
# version-2 keys file); the goal is mTLS RPC/s >= 0.85 x h2c, p99 <= 5 ms. It also counts full
# (TLS 1.3 and 1.2) and resumed (TLS 1.2 ticket) mutual-TLS handshakes per second, each up to
# the server's first HTTP/2 frame, one connection at a time.
# Env: SECONDS_PER_RUN (default 10), STREAMS (64), CONNS (4), THREADS (cores), ROUNDS (3: the
# alternating h2c and mutual-TLS sign_load runs; medians are reported).
# h2load (one thread) runs on the same host and competes with the server for cores, and the
# server writes its audit line per Sign to a file, as in production: on a small host read the
# ratio as a lower bound. Other load on the host makes every figure noisy; run it on an idle one.
# Not a test: no pass/fail, numbers only. Needs h2load (nghttp2-client) and /usr/bin/python3.
set -euo pipefail
cd "$(dirname "$0")/.."
O=${1:-build}
DUR=${SECONDS_PER_RUN:-10}
STREAMS=${STREAMS:-64}
CONNS=${CONNS:-4}
CORES=$(nproc)
THREADS=${THREADS:-$CORES}
NSIGN=$O/nsign
BEFORE=${BEFORE:-}
PY=/usr/bin/python3
command -v h2load >/dev/null || { echo "bench/sign.sh: h2load missing: apt-get install nghttp2-client" >&2; exit 1; }
[ -x "$NSIGN" ] || { echo "bench/sign.sh: $NSIGN missing: run make O=$O" >&2; exit 1; }
[ -z "$BEFORE" ] || [ -x "$BEFORE" ] || { echo "bench/sign.sh: BEFORE=$BEFORE is not an executable" >&2; exit 1; }
work=$(mktemp -d /tmp/nsign-bench-sign.XXXXXX)
srv=
stop_server() { if [ -n "$srv" ]; then kill "$srv" 2>/dev/null; wait "$srv" 2>/dev/null || true; srv=; fi; }
srv_plain=
cleanup() { stop_server; [ -z "$srv_plain" ] || kill "$srv_plain" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# The raw signer and the libsecp256k1 reference, linked against the same libraries as the binary.
LIBS="-Wl,-u,mbedtls_hardware_poll -Lbuild/deps/lib -lnghttp2 -lmbedtls -lmbedx509 -lmbedcrypto \
    -lsecp256k1 -lsodium -lcjson -lprotobuf-nanopb -lpthread"
# shellcheck disable=SC2086
musl-gcc -std=c11 -D_GNU_SOURCE -O2 $(printf -- "-I%s " src src/*/) -Ibuild/deps/include -o "$work/sign_raw" bench/sign_raw.c \
    "$O/libnsign.a" $LIBS -static
musl-gcc -std=c11 -D_GNU_SOURCE -O2 -Ibuild/deps/include -o "$work/sign_ref" \
    bench/sign_ref_secp256k1.c -Lbuild/deps/lib -lsecp256k1 -lpthread -static
# shellcheck disable=SC2086
musl-gcc -std=c11 -D_GNU_SOURCE -O2 -DMBEDTLS_CONFIG_FILE='"nsign_mbedtls_config.h"' \
    $(printf -- "-I%s " src src/*/) -Ibuild/deps/include -o "$work/sign_load" bench/sign_load.c \
    "$O/libnsign.a" $LIBS -static

# Keys and framed requests.
"$PY" - "$work" <<'PYEOF'
import json, os, subprocess, sys
w = sys.argv[1]
json.dump({"version": 1, "keys": [
    {"id": "ed25519", "algorithm": "ed25519", "private_key": "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="},
    {"id": "secp256k1", "algorithm": "ecdsa-secp256k1", "private_key": "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"},
    {"id": "p256", "algorithm": "ecdsa-p256", "private_key": "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721"}]},
    open(os.path.join(w, "keys.json"), "w"))
subprocess.run(["protoc", "-Iproto", "--python_out=" + w, "nsign.proto"], check=True)
sys.path.insert(0, w)
import nsign_pb2 as pb
for kid in ("ed25519", "secp256k1", "p256"):
    m = pb.SignRequest(key_id=kid, message=b"benchmark message, 32 bytes ...").SerializeToString()
    open(os.path.join(w, kid + ".req"), "wb").write(b"\0" + len(m).to_bytes(4, "big") + m)
PYEOF

port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_server() {
    # sign-service serves TLS by default now; the h2c comparison needs --plaintext, which a
    # binary from before TLS (BEFORE=...) does not know and does not need.
    local plain=
    "$1" sign-service --help 2>&1 | grep -q -- --plaintext && plain=--plaintext
    "$1" sign-service $plain --keys "$work/keys.json" --listen "tcp:127.0.0.1:$port" 2>"$work/server.log" &
    srv=$!
    for _ in $(seq 100); do grep -q "serving addr=" "$work/server.log" && break; sleep 0.1; done
    grep -q "serving addr=" "$work/server.log" || { cat "$work/server.log"; exit 1; }
}

# rpc LABEL ALG RAW: one h2load run against the running server, one table row.
rpc() {
    local label=$1 alg=$2 raw=$3
    # Sanity: one call answered with grpc-status 0 before timing anything.
    curl -s --http2-prior-knowledge -H 'content-type: application/grpc' -H 'te: trailers' \
        --data-binary @"$work/$alg.req" -D "$work/hdr" -o /dev/null "http://127.0.0.1:$port/nsign.v1.Signer/Sign"
    grep -qi '^grpc-status: 0' "$work/hdr" || { echo "bench: Sign $alg did not return OK"; cat "$work/hdr"; exit 1; }
    rm -f "$work/h2load.log"
    h2load -D "$DUR" -c "$CONNS" -m $((STREAMS / CONNS)) -t 1 --warm-up-time=1 \
        -H 'content-type: application/grpc' -H 'te: trailers' -d "$work/$alg.req" \
        --log-file="$work/h2load.log" "http://127.0.0.1:$port/nsign.v1.Signer/Sign" >"$work/h2load.out" 2>&1 || true
    "$PY" - "$work/h2load.out" "$work/h2load.log" "$raw" "$label $alg" "$alg" <<'PYEOF'
import re, sys
out = open(sys.argv[1]).read()
raw = float(sys.argv[3]) if sys.argv[3] != "-" else 0.0
m = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", out)
rps = float(m.group(3)) if m else 0.0
m2 = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
errs = int(m2.group(2)) + int(m2.group(3)) if m2 else -1
lat = sorted(int(l.split()[2]) for l in open(sys.argv[2]) if l.strip())
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] / 1000.0 if lat else float("nan")
rawtxt = "%12.0f" % raw if raw else "%12s" % "-"
ratio = "%10.2f" % (rps / raw) if raw else "%10s" % "-"
print("%-17s %s %12.0f %s %9.2f %9.2f %8d" % (sys.argv[4], rawtxt, rps, ratio, p(0.50), p(0.99), errs))
open(sys.argv[1] + "." + sys.argv[5] + ".rps", "w").write("%.0f" % rps)
PYEOF
}

echo "sign-service benchmark: $CORES cores, $DUR s per run, $STREAMS concurrent streams ($CONNS connections), server threads = cores"
printf '%-17s %12s %12s %10s %9s %9s %8s\n' run raw/s rpc/s ratio p50_ms p99_ms errors
if [ -n "$BEFORE" ]; then
    start_server "$BEFORE"
    for alg in ed25519 secp256k1 p256; do rpc before "$alg" -; done
    stop_server
fi
start_server "$NSIGN"
for alg in ed25519 secp256k1 p256; do
    raw=$("$work/sign_raw" "$alg" "$THREADS" "$DUR")
    rpc "$([ -n "$BEFORE" ] && echo after || echo nsign)" "$alg" "$raw"
done
stop_server
ref=$("$work/sign_ref" "$THREADS" "$DUR")
ours=$("$work/sign_raw" secp256k1 "$THREADS" "$DUR")
printf 'secp256k1 raw: nsign (ns_signkey_sign: RFC 6979, low-S, recovery id) %s/s; libsecp256k1 recoverable signing %s/s (ratio %s); the goal for rpc/s is >= 0.5 x %s = %s\n' \
    "$ours" "$ref" "$("$PY" -c "print('%.2f' % ($ours / $ref))")" "$ref" "$("$PY" -c "print('%.0f' % ($ref * 0.5))")"
# TLS (issue 13). h2load over server-authenticated TLS 1.3 (a version-1 keys file: h2load
# cannot present a client certificate), then sign_load over h2c and over mutual TLS.
stop_server
"$PY" - "$work" <<'PYEOF'
import datetime, hashlib, json, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
w = sys.argv[1]
k = ec.generate_private_key(ec.SECP256R1())
n = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])
now = datetime.datetime.now(datetime.timezone.utc)
c = (x509.CertificateBuilder().subject_name(n).issuer_name(n).public_key(k.public_key())
     .serial_number(1).not_valid_before(now - datetime.timedelta(1))
     .not_valid_after(now + datetime.timedelta(1)).sign(k, hashes.SHA256()))
open(w + "/client.pem", "wb").write(c.public_bytes(serialization.Encoding.PEM))
open(w + "/client.key", "wb").write(k.private_bytes(serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
pin = hashlib.sha256(k.public_key().public_bytes(serialization.Encoding.DER,
    serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest()
keys = json.load(open(w + "/keys.json"))["keys"]
json.dump({"version": 2, "clients": [{"id": "bench", "spki_sha256": pin}],
           "keys": [dict(x, allow=["bench"]) for x in keys]}, open(w + "/keys2.json", "w"))
PYEOF
start_srv() {
    : >"$work/server.log"
    "$NSIGN" sign-service "$@" --listen "tcp:127.0.0.1:$port" 2>"$work/server.log" &
    srv=$!
    for _ in $(seq 100); do grep -q "serving addr=" "$work/server.log" && break; sleep 0.1; done
    grep -q "serving addr=" "$work/server.log" || { cat "$work/server.log"; exit 1; }
}
start_srv --keys "$work/keys.json"
rm -f "$work/h2load.log"
h2load -D "$DUR" -c "$CONNS" -m $((STREAMS / CONNS)) -t 1 --warm-up-time=1 \
    -H 'content-type: application/grpc' -H 'te: trailers' -d "$work/ed25519.req" \
    --log-file="$work/h2load.log" "https://127.0.0.1:$port/nsign.v1.Signer/Sign" >"$work/h2load.out" 2>&1 || true
"$PY" - "$work/h2load.out" "$work/h2load.log" "$(cat "$work/h2load.out.ed25519.rps")" <<'PYEOF'
import re, sys
out = open(sys.argv[1]).read()
h2c = float(sys.argv[3])
m = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", out)
rps = float(m.group(3)) if m else 0.0
proto = re.search(r"TLS Protocol: (\S+)", out)
lat = sorted(int(l.split()[2]) for l in open(sys.argv[2]) if l.strip())
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] / 1000.0 if lat else float("nan")
print("h2load ed25519 over %s, server authentication only: %.0f rpc/s, %.2f x h2c (%.0f), p50 %.2f ms, p99 %.2f ms"
      % (proto.group(1) if proto else "TLS?", rps, rps / h2c if h2c else 0, h2c, p(0.5), p(0.99)))
PYEOF
stop_server
# cpu_ticks PID: the process's user + system CPU time so far, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# load LABEL PORT PID ARGS...: one sign_load run of Ed25519 Sign against the server PID, one
# line; with the server's CPU time per call (which other load on the host moves less than RPC/s).
load() {
    local label=$1 p=$2 pid=$3; shift 3
    local out c0 c1
    c0=$(cpu_ticks "$pid")
    out=$("$work/sign_load" "$@" --conns "$CONNS" --streams $((STREAMS / CONNS)) --seconds "$DUR" \
        --warmup 1 127.0.0.1 "$p" /nsign.v1.Signer/Sign "$work/ed25519.req") ||
        { echo "bench: sign_load $label failed: $out" >&2; exit 1; }
    c1=$(cpu_ticks "$pid")
    out="$out server_us_per_call=$(awk -v t=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v o="$out" \
        'BEGIN { n = o; sub(/.*all_ok=/, "", n); sub(/ .*/, "", n); printf "%.1f", n ? t / hz / n * 1e6 : 0 }')"
    echo "$out" >>"$work/load.$label"
    echo "$out" | awk -v l="$label" '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
        printf "  %-12s %8s rpc/s  p50 %6s ms  p99 %6s ms  errors %s  server CPU %s us/call\n", l, f["rps"], f["p50_ms"], f["p99_ms"], f["errors"], f["server_us_per_call"] }'
}
# Both servers run side by side (an idle one costs nothing) and the runs alternate, ROUNDS times,
# so that load that comes and goes on the host touches both; the figures are the medians.
ROUNDS=${ROUNDS:-3}
echo "sign_load, Ed25519 Sign, $STREAMS streams ($CONNS connections x $((STREAMS / CONNS))), the same generator for h2c and mutual TLS 1.3, $ROUNDS rounds:"
port2=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_srv --plaintext --keys "$work/keys.json"
srv_plain=$srv
mv "$work/server.log" "$work/server-h2c.log"
port_plain=$port
port=$port2
start_srv --keys "$work/keys2.json"
for _ in $(seq "$ROUNDS"); do
    load h2c "$port_plain" "$srv_plain"
    load mutual-TLS "$port" "$srv" --tls "$work/client.pem" "$work/client.key"
done
kill "$srv_plain"; wait "$srv_plain" 2>/dev/null || true
srv_plain=
"$PY" - "$work/load.h2c" "$work/load.mutual-TLS" <<'PYEOF'
import statistics, sys
def runs(path):
    return [dict(kv.split("=") for kv in line.split()) for line in open(path) if line.strip()]
def med(rs, k):
    return statistics.median(float(r[k]) for r in rs)
h2c, mtls = runs(sys.argv[1]), runs(sys.argv[2])
ratio = med(mtls, "rps") / med(h2c, "rps")
p99 = med(mtls, "p99_ms")
print("median: h2c %.0f rpc/s (p50 %.2f ms, p99 %.2f ms, server %.1f us/call); mutual TLS %.0f "
      "rpc/s (p50 %.2f ms, p99 %.2f ms, server %.1f us/call)"
      % (med(h2c, "rps"), med(h2c, "p50_ms"), med(h2c, "p99_ms"), med(h2c, "server_us_per_call"),
         med(mtls, "rps"), med(mtls, "p50_ms"), p99, med(mtls, "server_us_per_call")))
print("mutual TLS / h2c: %.2f (goal >= 0.85: %s); mutual TLS p99 %.2f ms (goal <= 5 ms: %s)" % (
    ratio, "met" if ratio >= 0.85 else "NOT met", p99, "met" if p99 <= 5 else "NOT met"))
print("server CPU per call, h2c / mutual TLS: %.2f (the RPC/s ratio a CPU-bound server tends to; "
      "other load on the host moves it far less than RPC/s)"
      % (med(h2c, "server_us_per_call") / med(mtls, "server_us_per_call")))
PYEOF
# Handshakes: each up to the server's first HTTP/2 frame, i.e. including its check of the client
# certificate. The server issues no TLS 1.3 tickets with client authentication (a 1.3 ticket
# cannot carry the client's certificate in mbedtls 3.6), so resumption is TLS 1.2's.
for run in "full, TLS 1.3:full" "full, TLS 1.2:full --tls12" "resumed, TLS 1.2 ticket:resumed --tls12"; do
    # shellcheck disable=SC2086
    out=$("$work/sign_load" --handshakes ${run#*:} --tls "$work/client.pem" "$work/client.key" \
        --seconds "$DUR" 127.0.0.1 "$port") || { echo "bench: handshakes ${run%%:*} failed" >&2; exit 1; }
    printf 'mutual TLS handshakes, %s: %s/s (one connection at a time; %s)\n' "${run%%:*}" \
        "$(echo "$out" | sed -n 's/.*handshakes_per_s=\([0-9]*\).*/\1/p')" \
        "$(echo "$out" | sed -n 's/.*\(full=[0-9]* resumed=[0-9]*\).*/\1/p')"
done
stop_server
srv=
