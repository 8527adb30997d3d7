#!/usr/bin/env bash
# test_run_enclave_drain: the graceful drain of issue 23 through the whole host flow (fake
# nitro-cli starting `nsign enclave-entrypoint` locally, the IMDS/S3/KMS/NSM fakes, unix sockets
# for vsock): with a Sign call in flight through the ingress (TLS ending in the enclave),
# `nsign stop-enclave --drain 20` makes the host's /ready 503, run-enclave asks the enclave to
# drain over its metrics address (POST /drain: a Nitro host cannot signal the enclave), the
# enclave sends GOAWAY, refuses new connections, answers the call in flight, and exits; then
# run-enclave stops, well inside the drain time. On the old code the call is cut.
set -uo pipefail
. "$(dirname "$0")/../lib/tap.sh"
export NSIGN=${NSIGN:?} PY=${PY:-/usr/bin/python3} NS_ROOT=${NS_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
T=$(mktemp -d /tmp/ns-red.XXXXXX)
. "$NS_ROOT/test/lib/enclave_flow.sh"
trap flow_cleanup EXIT

"$PY" -c 'import h2' 2>/dev/null || { skip "run-enclave drain" "python3-h2 is needed"; tap_done; exit; }
flow_begin "run-enclave drain"
flow_start_run drain
if ! flow_wait_serving 120; then
    fail "enclave reaches SERVING"; sed 's/^/# /' "$T/drain.log" "$CONSOLE"; tap_done; exit
fi
# /ready needs a status line; the ingress moves to its listen address once client_auth=required.
i=0; while [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$READY_PORT/ready")" != 200 ] &&
    [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
PYTHONPATH=$NS_ROOT/test/lib${PYTHONPATH:+:$PYTHONPATH} "$PY" "$NS_ROOT/test/lib/drain_probe.py" \
    "$GRPC_PORT" "$READY_PORT" "$T/service_key_shares.json" \
    "'$NSIGN' stop-enclave --drain 20 2>'$T/stop.err'" >"$T/probe.tap" 2>&1
sed 's/^\(\(not \)\{0,1\}ok - \)/\1run-enclave: /' "$T/probe.tap"
n=$(grep -c '^not ok' "$T/probe.tap"); TAP_FAILED=$((TAP_FAILED + n))
grep -q '^ok - stop-enclave' "$T/probe.tap" || fail "the drain probe ran to its end"
i=0; while kill -0 "$RUNPID" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 "$RUNPID" 2>/dev/null; then RC=timeout; else wait "$RUNPID"; RC=$?; fi
check "run-enclave exits 0 after the drain" test "$RC" = 0
check "run-enclave: the enclave drained and exited by itself (not cut at the drain's end)" \
    grep -q 'drained: the enclave finished its calls and exited' "$T/drain.log"
check "the enclave logged the host's drain request" grep -q 'drain requested: POST /drain' "$CONSOLE"
check "the host's bridges stopped accepting and kept relaying (SIGUSR1: quiesced)" \
    grep -q 'quiesced: listeners closed' "$T/drain.log"
tap_done
