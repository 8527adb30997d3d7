#!/usr/bin/env bash
# bench/obs.sh [BUILD_DIR]: what observability costs sign-service. h2load drives Ed25519 Sign (the
# cheapest signature, so per-request overhead shows most) against two servers in alternation:
# plain, and with --metrics, --audit-out and --log-out (each to a reader over a unix socket, as
# in the enclave), ROUNDS times each, SECONDS_PER_RUN each. Prints req/s per run and the ratio of the
# medians. Not a test: numbers only; other load on the host makes them noisy (the alternation is
# there so that drift hits both sides alike). Needs h2load (nghttp2-client), socat.
set -euo pipefail
cd "$(dirname "$0")/.."
O=${1:-build}
DUR=${SECONDS_PER_RUN:-5}
ROUNDS=${ROUNDS:-3}
NSIGN=$O/nsign
PY=/usr/bin/python3
command -v h2load >/dev/null || { echo "bench/obs.sh: h2load missing: apt-get install nghttp2-client" >&2; exit 1; }
work=$(mktemp -d /tmp/nsign-bench-obs.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

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
open(os.path.join(w, "req"), "wb").write(b"\0" + len(m).to_bytes(4, "big") + m)
PYEOF

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start() {  # start NAME ARGS...: sets $port (no command substitution: the pid must stay ours)
    local name=$1; shift
    port=$(free_port)
    "$NSIGN" sign-service --keys "$work/keys.json" --listen "tcp:127.0.0.1:$port" "$@" \
        >/dev/null 2>"$work/$name.log" &
    pids+=($!)
    for _ in $(seq 100); do grep -q "serving addr=" "$work/$name.log" && break; sleep 0.1; done
}
socat -u UNIX-LISTEN:"$work/logs.sock",fork OPEN:/dev/null &
pids+=($!)
sleep 0.3
start plain
p_plain=$port
# As in the enclave: the trail and the logs through their rings to readers (socat to a file and
# to /dev/null); OBS_ARGS replaces this set (e.g. "--metrics tcp:127.0.0.1:0" alone).
socat -u UNIX-LISTEN:"$work/audit.sock",fork OPEN:"$work/audit.jsonl",creat,append &
pids+=($!)
sleep 0.3
# shellcheck disable=SC2086
start obs ${OBS_ARGS:---metrics tcp:127.0.0.1:$(free_port) --audit-out unix:$work/audit.sock --log-out unix:$work/logs.sock}
p_obs=$port

run() {
    h2load -D "$DUR" -c 4 -m 16 -t 1 --warm-up-time=1 -H 'content-type: application/grpc' \
        -H 'te: trailers' -d "$work/req" "http://127.0.0.1:$1/nsign.v1.Signer/Sign" 2>&1 |
        sed -n 's/.*finished in [0-9.]*m\?s, \([0-9.]*\) req\/s.*/\1/p'
}
plain=() obs=()
echo "sign-service Ed25519 Sign, $(nproc) cores, $DUR s per run, 64 streams; plain vs --metrics --audit-out --log-out"
for r in $(seq "$ROUNDS"); do
    a=$(run "$p_plain"); b=$(run "$p_obs")
    plain+=("$a"); obs+=("$b")
    printf 'round %d: plain %10.0f req/s   observed %10.0f req/s\n' "$r" "$a" "$b"
done
"$PY" - "${plain[*]}" "${obs[*]}" "$work/audit.jsonl" <<'PYEOF'
import statistics, sys
a = [float(x) for x in sys.argv[1].split()]
b = [float(x) for x in sys.argv[2].split()]
try:
    n = sum(1 for l in open(sys.argv[3]) if '"type":"entry"' in l)
except OSError:
    n = 0
print("median: plain %.0f req/s, observed %.0f req/s, ratio %.3f (%d audit entries written)"
      % (statistics.median(a), statistics.median(b), statistics.median(b) / statistics.median(a), n))
PYEOF
