#!/usr/bin/env bash
# bench/bridge.sh [BUILD_DIR] [SECONDS]: loopback throughput direct, through `nsign bridge`
# tcp->tcp and through socat, in one run; prints each and the ratios (goals: nsign >= 2x socat,
# >= 60% of direct), then nsign's peak RSS with 1,000 idle connections open (goal < 32 MiB).
# Each figure is the receiver's iperf3 throughput over SECONDS (default 5), best of RUNS
# (default 2), forward and reverse (-R). Needs: iperf3, socat, /usr/bin/python3. Loopback only.
set -euo pipefail
O=${1:-build}
SECS=${2:-5}
RUNS=${RUNS:-2}
NSIGN=$(cd "$O" && pwd)/nsign
PY=/usr/bin/python3
for tool in iperf3 socat $PY; do
    command -v "$tool" >/dev/null || { echo "bench/bridge.sh: $tool is missing" >&2; exit 1; }
done
[ -x "$NSIGN" ] || { echo "bench/bridge.sh: build $NSIGN first (make O=$O)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/nsign-bench-bridge.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
free_port() { $PY -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done
    echo "bench/bridge.sh: nothing listens on port $1" >&2; exit 1
}

srv=$(free_port)
iperf3 -s -p "$srv" >/dev/null 2>&1 & pids+=($!)
nb=$(free_port)
"$NSIGN" bridge "tcp:127.0.0.1:$nb" "tcp:127.0.0.1:$srv" 2>"$work/bridge.log" & pids+=($!)
so=$(free_port)
socat "TCP-LISTEN:$so,bind=127.0.0.1,reuseaddr,fork" "TCP:127.0.0.1:$srv" & pids+=($!)
wait_port "$srv"; wait_port "$nb"; wait_port "$so"

# gbps PORT [-R]: best receiver throughput in Gbit/s over RUNS runs
gbps() {
    local best=0 v
    for _ in $(seq "$RUNS"); do
        v=$(iperf3 -c 127.0.0.1 -p "$1" -t "$SECS" -J ${2:-} | $PY -c \
            'import json,sys;print("%.2f"%(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))')
        best=$($PY -c "print(max($best,$v))")
    done
    echo "$best"
}
ratio() { $PY -c "print('%.2f' % ($1 / $2 if $2 else 0))"; }

for dir in "" "-R"; do
    label=${dir:+reverse}; label=${label:-forward}
    d=$(gbps "$srv" "$dir"); n=$(gbps "$nb" "$dir"); s=$(gbps "$so" "$dir")
    printf '%-8s direct %7s Gbit/s   nsign bridge %7s Gbit/s   socat %7s Gbit/s\n' "$label" "$d" "$n" "$s"
    printf '%-8s nsign/socat %s (goal >= 2)   nsign/direct %s (goal >= 0.60)\n' "$label" \
        "$(ratio "$n" "$s")" "$(ratio "$n" "$d")"
done

# peak RSS with 1,000 idle connections through a fresh bridge
hold=$(free_port)
nb2=$(free_port)
$PY - "$hold" <<'PYEOF' & pids+=($!)
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(2048)
held = []
while True:
    c, _ = s.accept(); held.append(c)
PYEOF
"$NSIGN" bridge "tcp:127.0.0.1:$nb2" "tcp:127.0.0.1:$hold" --max-conns 2000 2>"$work/bridge2.log" &
bpid=$!; pids+=($bpid)
wait_port "$hold"; wait_port "$nb2"
$PY - "$nb2" "$bpid" <<'PYEOF'
import socket, sys, time
port, pid = int(sys.argv[1]), sys.argv[2]
conns = []
for i in range(1000):
    c = socket.create_connection(("127.0.0.1", port)); c.sendall(b"x"); conns.append(c)
time.sleep(1.0)
st = dict(l.split(":", 1) for l in open("/proc/%s/status" % pid))
rss = int(st["VmHWM"].split()[0]) / 1024
fds = len(__import__("os").listdir("/proc/%s/fd" % pid))
print("nsign bridge, 1000 idle connections: peak RSS %.1f MiB (goal < 32), %d descriptors" % (rss, fds))
PYEOF
