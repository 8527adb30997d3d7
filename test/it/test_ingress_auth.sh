#!/usr/bin/env bash
# test_ingress_auth: who run-enclave believes about the enclave's client policy (issue 22 item 4).
#
# The whole flow (test/lib/enclave_flow.sh: fake nitro-cli, the enclave as a local process, unix
# sockets for vsock) with NSIGN_HOST_GRPC_LISTEN=tcp:0.0.0.0:PORT, so the ingress starts on
# 127.0.0.1 and may widen. It runs in a network namespace of its own (unshare -n: only its own
# loopback), so the all-addresses listener reaches nothing outside.
#   1. version-2 keys (only pinned clients sign): a process of another user that reaches the log
#      and audit sockets is refused (counted on GET /metrics, none of its lines in
#      ENCLAVE_LOG_FILE); the ingress widens once the enclave's own status says
#      client_auth=required and its TLS server, asked through 127.0.0.1, refuses a client without
#      a certificate; a pinned client signs through it.
#   2. version-1 keys (anyone could sign) and a local process forging
#      "status ... client_auth=required" lines: the ingress stays on 127.0.0.1 (the probe finds a
#      server that serves a client without a certificate) and run-enclave says so.
set -uo pipefail
. "$(dirname "$0")/../lib/tap.sh"
if [ -z "${NS_IN_NETNS:-}" ]; then
    for tool in ip ss setpriv unshare; do
        command -v "$tool" >/dev/null || { skip "ingress authentication" "$tool is not installed"; exit 0; }
    done
    if ! unshare -n true 2>/dev/null; then
        skip "ingress authentication" "needs unshare -n (root or user namespaces)"
        exit 0
    fi
    exec unshare -n env NS_IN_NETNS=1 bash "$0" "$@"
fi
ip link set lo up || { fail "loopback up in the test's network namespace"; exit 1; }
export NSIGN=${NSIGN:?} PY=${PY:-/usr/bin/python3} NS_ROOT=${NS_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
T=$(mktemp -d /tmp/ns-ia.XXXXXX)
. "$NS_ROOT/test/lib/enclave_flow.sh"
trap flow_cleanup EXIT
flow_begin "ingress authentication"
export NSIGN_HOST_GRPC_LISTEN=tcp:0.0.0.0:$GRPC_PORT

# forge USER SECONDS LINE: connects to the log socket as USER every 0.1 s and sends LINE.
forge() {
    setpriv --reuid="$1" --regid="$1" --clear-groups "$PY" - "$T/parent-7110.sock" "$T/parent-7111.sock" "$2" "$3" <<'PY' &
import socket, sys, time
end = time.time() + float(sys.argv[3])
while time.time() < end:
    for path in sys.argv[1:3]:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            s.sendall(sys.argv[4].encode() + b"\n")
            s.close()
        except OSError:
            pass
    time.sleep(0.1)
PY
    FLOW_PIDS+=($!)
}
listening_on() { ss -Hltn "sport = :$GRPC_PORT" | grep -q " $1:$GRPC_PORT "; }
wait_log() {  # wait_log FILE TEXT SECONDS
    local i=0
    while ! grep -q "$2" "$1" 2>/dev/null && [ $i -lt $(($3 * 10)) ]; do sleep 0.1; i=$((i + 1)); done
    grep -q "$2" "$1" 2>/dev/null
}

# ---- 1. version-2 keys; a peer of another user on the log and audit sockets ----
flow_start_run v2
if flow_wait_serving 120; then ok "v2: enclave reaches SERVING"; else
    fail "v2: enclave reaches SERVING"; sed 's/^/# /' "$T/v2.log" "$CONSOLE"; fi
# The sockets are the run's own (0700 directory); open them up so another user can reach them.
chmod 755 "$T" && chmod 777 "$T/parent-7110.sock" "$T/parent-7111.sock"
forge 65534 3 "nsign enclave-entrypoint: info FORGED by another user"
check "v2: the ingress widens (status from the enclave, confirmed by its TLS server)" \
    wait_log "$T/v2.log" "moving the ingress from tcp:127.0.0.1:$GRPC_PORT to tcp:0.0.0.0:$GRPC_PORT" 30
i=0; while ! listening_on 0.0.0.0 && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
check "v2: the ingress bridge listens on 0.0.0.0:$GRPC_PORT" listening_on 0.0.0.0
check "v2: a pinned client signs through the widened ingress" \
    "$PY" "$NS_ROOT/test/lib/enclave_demo.py" sign-verify "127.0.0.1:$GRPC_PORT" "$T/service_key_shares.json"
sleep 3
curl -s "http://127.0.0.1:$READY_PORT/metrics" >"$T/metrics.txt"
check "v2: refused peers counted on GET /metrics (log and audit channels)" bash -c \
    "grep -Eq '^nsign_host_log_refused_peers_total [1-9]' '$T/metrics.txt' && grep -Eq '^nsign_host_audit_refused_peers_total [1-9]' '$T/metrics.txt'" ||
    sed 's/^/# /' "$T/metrics.txt"
check "v2: the refusal is logged, naming the peer" grep -q 'warn refused peer=unix:uid=65534' "$T/v2.log"
check "v2: nothing of the other user's in ENCLAVE_LOG_FILE or on stderr" bash -c \
    "! grep -q FORGED '$T/enclave.log' '$T/v2.log'"
flow_stop_run

# ---- 2. version-1 keys; a local process forges client_auth=required ----
# A version-1 file boots only in an image built with the explicit opt-out (docs/rollback.md): the
# stand-in nitro-cli gives the enclave that image's env (a fake kernel: it reads only the env).
head -c 4096 /dev/urandom >"$T/kernel"
ALLOW_ANONYMOUS_CLIENTS=1 KERNEL=$T/kernel bash "$NS_ROOT/eif/build.sh" "$T/eif-anon" "$NSIGN" \
    >"$T/eif-anon.json" 2>"$T/eif-anon.err" && export EIF_PATH=$T/eif-anon/nsign.eif ||
    fail "an image with ALLOW_ANONYMOUS_CLIENTS=1 built"
"$PY" "$NS_ROOT/test/lib/enclave_demo.py" keys "$T/service_key_shares.json" v1 &&
    age -r "$(age-keygen -y "$T/age-private.key")" -o \
        "$T/s3/demo-bucket/enclave/service_key_shares.json.age" "$T/service_key_shares.json" ||
    fail "v1 keys file made"
: >"$T/enclave.log"
flow_start_run v1
if flow_wait_serving 120; then ok "v1: enclave reaches SERVING"; else
    fail "v1: enclave reaches SERVING"; sed 's/^/# /' "$T/v1.log" "$CONSOLE"; fi
forge "$(id -u)" 8 "nsign enclave-entrypoint: status state=SERVING seq=999 client_auth=required"
check "v1: the forged status meets the probe: the server served a client without a certificate" \
    wait_log "$T/v1.log" "served a client without a certificate through tcp:127.0.0.1:$GRPC_PORT" 30
sleep 6
check "v1: the ingress never widened" bash -c "! grep -q 'moving the ingress' '$T/v1.log'"
check "v1: the ingress bridge listens on 127.0.0.1 only" bash -c \
    "ss -Hltn 'sport = :$GRPC_PORT' | grep -q ' 127.0.0.1:$GRPC_PORT ' && ! ss -Hltn 'sport = :$GRPC_PORT' | grep -q ' 0.0.0.0:$GRPC_PORT '"
check "v1: the version-1 warning still given" grep -q 'has no client policy (version 1)' "$T/v1.log"
flow_stop_run
tap_done
