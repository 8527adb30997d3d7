#!/usr/bin/env bash
# bench/frost.sh [BUILD_DIR]: FROST threshold signing throughput and latency (issue 26), next to
# single-key Ed25519 Sign in the same run. Three sign-services on loopback (mutual TLS 1.3, the
# software NSM of the tests for attestation), each holding one share of a 2-of-3
# FROST(Ed25519, SHA-512) key (test data from test/lib/frost_dealer.py); bench/frost_load.c runs
# frost-sign's engine (src/service/frostcoord.c over signclient.c, the code `nsign frost-sign`
# runs: attested connections, commitments fetched in batches, every share verified, the
# aggregate verified) in THREADS threads against signers 1 and 2, then Ed25519 Sign (one whole
# key on signer 1) through the same client code in the same threads. Prints signatures/s, p50,
# p99 and the ratio FROST/Sign. Goal (issue 26): >= 1,000 FROST signatures/s, p99 < 20 ms on a
# 2-core machine. Everything (three servers, the load generator) shares this host's cores, and
# the load average is printed: read the figures with it.
# Env: SECONDS_PER_RUN (default 10), THREADS (8), BATCH (64), SERVER_THREADS (1 per server).
# Not a test: no pass/fail, numbers only. Needs musl-gcc and /usr/bin/python3 (cryptography).
set -euo pipefail
cd "$(dirname "$0")/.."
O=${1:-build}
DUR=${SECONDS_PER_RUN:-10}
THREADS=${THREADS:-8}
BATCH=${BATCH:-64}
STHREADS=${SERVER_THREADS:-1}
NSIGN=$O/nsign
PY=/usr/bin/python3
[ -x "$NSIGN" ] || { echo "bench/frost.sh: $NSIGN missing: run make O=$O" >&2; exit 1; }
work=$(mktemp -d /tmp/nsign-bench-frost.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

LIBS="-Wl,-u,mbedtls_hardware_poll -Lbuild/deps/lib -lnghttp2 -lmbedtls -lmbedx509 -lmbedcrypto \
    -lsecp256k1 -lsodium -lcjson -lprotobuf-nanopb -lpthread"
# shellcheck disable=SC2086,SC2046
musl-gcc -std=c11 -D_GNU_SOURCE -O2 $(printf -- "-I%s " src src/*/) -I"$O/gen" -Ibuild/deps/include \
    -o "$work/frost_load" bench/frost_load.c "$O/libnsign.a" $LIBS -static

# Keys (2-of-3 shares, one whole Ed25519 key on signer 1) and the client certificate.
"$PY" - "$work" <<'PYEOF'
import base64, json, os, sys
sys.path.insert(0, "test/lib")
import frost_dealer, mtls
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
w = sys.argv[1]
c = mtls.client_cert(w, "bench", ec.generate_private_key(ec.SECP256R1()))
gpk, shares = frost_dealer.keys_entries(2, 3, "treasury", ["bench"])
ed = ed25519.Ed25519PrivateKey.generate().private_bytes(
    serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
plain = {"id": "plain", "algorithm": "ed25519", "allow": ["bench"],
         "private_key": base64.b64encode(ed).decode()}
for i in range(3):
    keys = [shares[i]] + ([plain] if i == 0 else [])
    with open(os.path.join(w, "keys%d.json" % (i + 1)), "w") as f:
        json.dump({"version": 2, "clients": [{"id": "bench", "spki_sha256": c["pin"]}],
                   "keys": keys}, f)
PYEOF

"$PY" test/it/fakes/nsm_fake.py --socket "$work/nsm.sock" --ca-dir "$work/ca" 2>/dev/null &
pids+=($!)
for _ in $(seq 100); do [ -S "$work/nsm.sock" ] && break; sleep 0.05; done
ports=()
for i in 1 2 3; do
    port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    NSM_DEVICE="unix:$work/nsm.sock" "$NSIGN" sign-service --keys "$work/keys$i.json" \
        --listen "tcp:127.0.0.1:$port" --threads "$STHREADS" 2>"$work/server$i.log" &
    pids+=($!)
    ports+=("$port")
done
for i in 1 2 3; do
    for _ in $(seq 200); do grep -q "serving addr=" "$work/server$i.log" && break; sleep 0.05; done
done

echo "bench/frost.sh: $(nproc) cores, $THREADS coordinator threads, batch $BATCH, ${DUR}s per run,"
echo "  servers with $STHREADS thread(s) each; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
out=$("$work/frost_load" --cert "$work/bench.pem" --client-key "$work/bench.key" \
    --root "$work/ca/root.pem" --pcr "0=$(printf '00%.0s' $(seq 48))" --no-pcr16 \
    --key treasury --sign-key plain \
    --signer "tcp:127.0.0.1:${ports[0]}" --signer "tcp:127.0.0.1:${ports[1]}" \
    --threads "$THREADS" --seconds "$DUR" --batch "$BATCH")
echo "$out"
echo "  load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
frost=$(echo "$out" | sed -n 's/^FROST.* \([0-9][0-9]*\) sig\/s.*/\1/p')
plain=$(echo "$out" | sed -n 's/^Ed25519.* \([0-9][0-9]*\) sig\/s.*/\1/p')
awk -v f="$frost" -v p="$plain" 'BEGIN { if (p > 0) printf "FROST / single-key Sign: %.2f (goal: >= 1000 FROST sig/s, p99 < 20 ms)\n", f / p }'
