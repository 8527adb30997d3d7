#!/usr/bin/env bash
# bench/fleet.sh [BUILD_DIR]: Sign through HAProxy (dist/haproxy/nsign.cfg, TCP mode) in front of
# 1, 2 and 3 sign-service replicas, against the same load sent straight to one replica (the
# peer), in one run; then the p99 and the failed calls while one of three replicas is SIGKILLed
# in the middle of a run. h2load drives Ed25519 Sign over h2c (replicas run --plaintext: TCP mode
# passes bytes, so TLS would only add the handshakes bench/sign.sh measures), STREAMS concurrent
# streams over CONNS connections; each replica runs THREADS event loops (default 1).
# Prints rpc/s, the ratio to the direct run, p50/p99 latency (h2load's per-request log) and
# errors. Every process (replicas, HAProxy, h2load) shares this host's cores: on a host with
# fewer cores than replicas + 2, more replicas cannot add throughput and the ratios measure the
# balancer's overhead, not scaling (docs/fleet.md: the fleet's ceiling is per-host x hosts).
# On a shared host the figures move by 2x from run to run: compare rows of one run only, and
# repeat it. The kill run's errors are what h2load counted failed (it does not retry calls).
# Not a test: numbers only. Needs h2load (nghttp2-client), haproxy and /usr/bin/python3.
set -euo pipefail
cd "$(dirname "$0")/.."
O=${1:-build}
DUR=${SECONDS_PER_RUN:-8}
STREAMS=${STREAMS:-48}
CONNS=${CONNS:-6}
THREADS=${THREADS:-1}
NSIGN=$O/nsign
PY=/usr/bin/python3
for t in h2load haproxy; do
    command -v $t >/dev/null || { echo "bench/fleet.sh: $t missing (scripts/apt-packages.txt)" >&2; exit 1; }
done
[ -x "$NSIGN" ] || { echo "bench/fleet.sh: $NSIGN missing: run make O=$O" >&2; exit 1; }
work=$(mktemp -d /tmp/nsign-bench-fleet.XXXXXX)
pids=()
lb=
cleanup() {
    for p in "${pids[@]}" $lb; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
freeport() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

"$PY" - "$work" <<'PYEOF'
import json, os, subprocess, sys
w = sys.argv[1]
json.dump({"version": 1, "keys": [{"id": "ed25519", "algorithm": "ed25519",
           "private_key": "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="}]},
          open(os.path.join(w, "keys.json"), "w"))
subprocess.run(["protoc", "-Iproto", "--python_out=" + w, "nsign.proto"], check=True)
sys.path.insert(0, w)
import nsign_pb2 as pb
m = pb.SignRequest(key_id="ed25519", message=b"benchmark message, 32 bytes ...").SerializeToString()
open(os.path.join(w, "sign.req"), "wb").write(b"\0" + len(m).to_bytes(4, "big") + m)
PYEOF

declare -a P M R
for i in 1 2 3; do P[$i]=$(freeport); M[$i]=$(freeport); R[$i]=; done
start_replica() {  # start_replica I
    local i=$1
    "$NSIGN" sign-service --plaintext --keys "$work/keys.json" --threads "$THREADS" \
        --listen "tcp:127.0.0.1:${P[$i]}" --metrics "tcp:127.0.0.1:${M[$i]}" 2>"$work/r$i.log" &
    R[$i]=$!
    pids+=("${R[$i]}")
    for _ in $(seq 100); do grep -q "serving addr=" "$work/r$i.log" && return; sleep 0.1; done
    cat "$work/r$i.log"; exit 1
}
stop_replica() { [ -z "${R[$1]}" ] || { kill "${R[$1]}" 2>/dev/null || true; wait "${R[$1]}" 2>/dev/null || true; R[$1]=; }; }
LBP=$(freeport)
export NSIGN_LB_BIND=127.0.0.1:$LBP NSIGN_LB_STATS=$work/haproxy.sock
for i in 1 2 3; do export NSIGN_ENCLAVE$i=127.0.0.1:${P[$i]} NSIGN_READY$i=${M[$i]}; done
haproxy -db -f dist/haproxy/nsign.cfg 2>"$work/haproxy.log" &
lb=$!
ups() {  # the number of servers HAProxy has UP
    echo "show stat" | "$PY" -c 'import socket,sys
s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"show stat\n")
d=b""
while True:
    b=s.recv(65536)
    if not b: break
    d+=b
print(sum(1 for l in d.decode().splitlines() if l.startswith("nsign_enclaves,enclave") and ",UP" in l))' "$work/haproxy.sock" 2>/dev/null || echo 0
}
wait_ups() { for _ in $(seq 200); do [ "$(ups)" = "$1" ] && return; sleep 0.1; done; echo "bench: HAProxy did not reach $1 UP" >&2; exit 1; }

# run LABEL PORT [KILL_AFTER_S]: one h2load run, one row; RPS is kept for the ratio.
DIRECT=
run() {
    local label=$1 port=$2 kill_after=${3:-}
    rm -f "$work/h2load.log"
    if [ -n "$kill_after" ]; then (sleep "$kill_after"; kill -9 "${R[1]}") & fi
    h2load -D "$DUR" -c "$CONNS" -m $((STREAMS / CONNS)) -t 1 --warm-up-time=1 \
        -H 'content-type: application/grpc' -H 'te: trailers' -d "$work/sign.req" \
        --log-file="$work/h2load.log" "http://127.0.0.1:$port/nsign.v1.Signer/Sign" >"$work/h2load.out" 2>&1 || true
    "$PY" - "$work/h2load.out" "$work/h2load.log" "$label" "${DIRECT:-0}" >"$work/row" <<'PYEOF'
import re, sys
out = open(sys.argv[1]).read()
m = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", out)
rps = float(m.group(3)) if m else 0.0
m2 = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
errs = int(m2.group(2)) + int(m2.group(3)) if m2 else -1
lat = sorted(int(l.split()[2]) for l in open(sys.argv[2]) if l.strip()) if rps else []
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] / 1000.0 if lat else float("nan")
direct = float(sys.argv[4])
ratio = "%8.2f" % (rps / direct) if direct else "%8s" % "1.00"
print("%-34s %10.0f %s %9.2f %9.2f %8d" % (sys.argv[3], rps, ratio, p(0.50), p(0.99), errs))
open(sys.argv[1] + ".rps", "w").write("%.0f" % rps)
PYEOF
    cat "$work/row"
    [ -n "$DIRECT" ] || DIRECT=$(cat "$work/h2load.out.rps")
}

echo "fleet benchmark: $(nproc) cores, $DUR s per run, $STREAMS streams over $CONNS connections, $THREADS loop(s) per replica"
printf '%-34s %10s %8s %9s %9s %8s\n' run rpc/s ratio p50_ms p99_ms errors
start_replica 1
run "direct, 1 replica (the peer)" "${P[1]}"
wait_ups 1
run "HAProxy, 1 replica" "$LBP"
start_replica 2; wait_ups 2
run "HAProxy, 2 replicas" "$LBP"
start_replica 3; wait_ups 3
run "HAProxy, 3 replicas" "$LBP"
run "HAProxy, 3 replicas, 1 SIGKILLed" "$LBP" $(((DUR + 1) / 2))
echo "after the kill HAProxy has $(ups) of 3 servers UP (errors: the calls h2load counted as failed"
echo "or errored; it opens new connections through HAProxy for the ones the kill reset)"
