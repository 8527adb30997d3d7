#!/usr/bin/env bash
# bench/boot.sh [BUILD_DIR] [RUNS]: how long the enclave side takes from enclave-entrypoint start
# to SERVING, with the local fakes (test/lib/enclave_flow.sh, as in `make demo`), and the sizes
# of what ships: the binary (the whole FROM-scratch image is this one file plus applet symlinks)
# and the EIF when one was built (`make eif`).
#
# Boot time is read from the enclave's own log: SERVING since_start_ms, minus the steps that
# measure the fakes and the host rather than nsign: the receive steps (waiting for the host's
# pushes) and kms-decrypt (the KMS fake's TLS handshake, its openssl-cms call and the NSM fake's
# signing in Python). The remainder is nsign's own boot work: lo, bridges, age-decrypt, key
# loading, sign-service start.
#
# The seed's figures, from its scripts (run-enclave.sh): the host sleeps READINESS_SLEEP_SECONDS
# (5 s) after `nitro-cli run-enclave` before pushing anything, then retries socat 1 s apart
# (VSOC_TRANSFER_RETRIES=20); nsign's pushes retry every 100 ms until the enclave listens
# instead. The seed's image (a Linux userland with the Rust sign-service, kmstool-enclave-cli,
# age, socat and the shell) was not measured here: its size is not published.
set -uo pipefail
cd "$(dirname "$0")/.."
O=${1:-build}
RUNS=${2:-5}
export NS_ROOT=$PWD NSIGN=$(cd "$O" && pwd)/nsign PY=${PY:-/usr/bin/python3}
T=$(mktemp -d /tmp/nsign-bench-boot.XXXXXX)
RUNPID=
cleanup() {
    [ -n "$RUNPID" ] && kill "$RUNPID" 2>/dev/null && wait "$RUNPID" 2>/dev/null
    for p in "${FLOW_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null; rm -rf "$T"
}
trap cleanup EXIT
. test/lib/enclave_flow.sh
flow_have_fakes || exit 1
flow_setup >"$T/setup.log" 2>&1 || { cat "$T/setup.log"; exit 1; }
flow_env
C=$T/nitro/$FLOW_NAME.console
printf '%-4s %10s %10s %10s %12s\n' run serving_ms receive_ms kms_ms nsign_own_ms
tot=0
for i in $(seq 1 "$RUNS"); do
    : >"$C"
    "$NSIGN" run-enclave 2>"$T/run.log" & RUNPID=$!
    flow_wait_serving 120 || { cat "$T/run.log" "$C"; exit 1; }
    s=$(sed -n 's/.*SERVING.*since_start_ms=\([0-9]*\).*/\1/p' "$C")
    r=$(sed -n 's/.*step=receive ok ms=\([0-9]*\).*/\1/p' "$C")
    k=$(sed -n 's/.*step=kms-decrypt ok ms=\([0-9]*\).*/\1/p' "$C")
    own=$((s - r - k))
    tot=$((tot + own))
    printf '%-4s %10s %10s %10s %12s\n' "$i" "$s" "$r" "$k" "$own"
    kill -TERM "$RUNPID"; wait "$RUNPID" 2>/dev/null; RUNPID=
done
echo "mean nsign-own boot time: $((tot / RUNS)) ms over $RUNS runs (seed: >= 5000 ms of fixed sleep before the first push)"
bin=$(stat -c %s "$NSIGN")
echo "image: nsign binary $bin bytes ($((bin / 1024)) KiB), the only file of the FROM-scratch image"
eif=$(ls -1 "$O"/eif/*.eif "$O"/*.eif 2>/dev/null | head -1)
if [ -n "$eif" ]; then
    e=$(stat -c %s "$eif")
    echo "EIF: $eif $e bytes ($((e / 1048576)) MiB); nitro-cli needs MEMORY_MIB >= 4x: $((e * 4 / 1048576 + 1)) MiB"
else
    echo "EIF: not built (run make eif O=$O)"
fi
