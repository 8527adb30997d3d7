#!/usr/bin/env bash
# test_early_logs: a production enclave has no console, so the log lines enclave-entrypoint
# writes before its observability step (which reads where log lines go) must reach the host
# too. With run-enclave, a fake nitro-cli starting `nsign enclave-entrypoint` locally, the
# IMDS/S3/KMS/NSM fakes and unix sockets in place of vsock (test/lib/enclave_flow.sh), in
# production mode (no DEBUG_MODE: run-enclave streams no console):
#   - a successful boot: its first lines (start, loopback, heartbeat, bridges) reach the host,
#     in order, before the later ones (observability, receive, SERVING);
#   - a boot that fails before its configuration is read (a bad image variable): the reason
#     reaches run-enclave's stderr as an `enclave:` line, sent to the log address the image
#     names (no configuration to take it from);
#   - a boot that fails after reading it but before the observability step (the ingress bridge
#     cannot listen): the reason reaches run-enclave's stderr, sent to the configured address;
#   - a failure after that step (KMS refuses the key) reaches it as before, after the early lines;
#   - no credential, age identity or signing key in any of those lines.
set -uo pipefail
. "$(dirname "$0")/../lib/tap.sh"
export NSIGN=${NSIGN:?} PY=${PY:-/usr/bin/python3} NS_ROOT=${NS_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
T=$(mktemp -d /tmp/ns-early.XXXXXX)
. "$NS_ROOT/test/lib/enclave_flow.sh"
trap flow_cleanup EXIT

flow_begin "early enclave log lines"
unset DEBUG_MODE CONSOLE_FILE

# wait_log FILE PATTERN SECONDS: until FILE has a line matching PATTERN (0) or the time is up.
wait_log() {
    local i=0
    while [ $i -lt $(( $3 * 10 )) ]; do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1; i=$((i + 1))
    done
    return 1
}
# wait_exit: run-enclave exits by itself (bounded); RC is its status.
wait_exit() {
    local i=0
    while kill -0 "$RUNPID" 2>/dev/null && [ $i -lt 1200 ]; do sleep 0.1; i=$((i + 1)); done
    if kill -0 "$RUNPID" 2>/dev/null; then RC=timeout; kill -9 "$RUNPID"; else wait "$RUNPID"; RC=$?; fi
    RUNPID=
}
# first_line FILE PATTERN: the number of the first line matching PATTERN, else 0.
first_line() { grep -n -m1 -- "$2" "$1" | cut -d: -f1 | grep . || echo 0; }
# no_secrets FILE...: no credential, age identity or signing key in the files.
no_secrets() {
    local k1
    k1=$("$PY" -c 'import json,sys;print(json.load(open(sys.argv[1]))["keys"][0]["private_key"])' \
        "$T/service_key_shares.json") || return 1
    [ -n "$k1" ] || return 1
    ! grep -lF -e "AGE-SECRET-KEY-1" -e "$k1" -e "$FLOW_SECRET" -e "$FLOW_TOKEN" "$@"
}
E='^enclave: nsign enclave-entrypoint: '

# ---- a successful boot: the first lines arrive first, in order ----
flow_start_run ok
if wait_log "$T/ok.log" "${E}info SERVING addr=" 120; then ok "production boot reaches SERVING"
else fail "production boot reaches SERVING"; sed 's/^/# /' "$T/ok.log"; fi
check "production mode: run-enclave streams no console" grep -q 'console not streamed (production mode has no console)' "$T/ok.log"
# The order in which the host received them (ENCLAVE_LOG_FILE has them unprefixed).
order_ok() {  # FILE PREFIX: each pattern's first line comes after the previous one's
    local prev=0 n p
    for p in "info starting pid=" "info step=loopback ok" "info step=heartbeat ok" \
        "info step=bridges ok" "info step=observability ok" "info waiting for secrets" \
        "info step=receive ok" "info SERVING addr="; do
        n=$(first_line "$1" "${2}nsign enclave-entrypoint: $p")
        [ "$n" -gt "$prev" ] || { echo "# '$p' at line $n, after line $prev"; return 1; }
        prev=$n
    done
}
check "ENCLAVE_LOG_FILE starts with the enclave's first line" \
    bash -c "head -1 '$T/enclave.log' | grep -q '^nsign enclave-entrypoint: info starting pid='"
check "the lines before the observability step reach the host in order, before the later ones" \
    order_ok "$T/enclave.log" ""
check "the same order on run-enclave's stderr, prefixed 'enclave: '" order_ok "$T/ok.log" "^enclave: "
check "each early line reaches the host once" bash -c \
    "[ \$(grep -c 'info step=bridges ok' '$T/enclave.log') = 1 ] && [ \$(grep -c 'info starting pid=' '$T/enclave.log') = 1 ]"
check "the early lines are in what the secret search reads" grep -q "${E}info step=heartbeat ok" "$T/ok.log"
check "no secret in the shipped lines (early ones included)" no_secrets "$T/ok.log" "$T/enclave.log"
flow_stop_run

# ---- the boot fails before its configuration is read (a bad image variable) ----
# The fake nitro-cli waits FAKE_HEARTBEAT_TIMEOUT_S for a heartbeat that never comes.
: >"$T/enclave.log"
NSIGN_ENCLAVE_SIGN_THREADS=lots FAKE_HEARTBEAT_TIMEOUT_S=5 flow_start_run cfgfail
wait_exit
check "bad image variable: run-enclave exits 1 (no heartbeat)" test "$RC" = 1
check "bad image variable: the reason reaches run-enclave's stderr as an 'enclave:' line" \
    grep -q "${E}error step=config failed.*NSIGN_ENCLAVE_SIGN_THREADS=lots: want 0\.\." "$T/cfgfail.log" ||
    sed 's/^/# /' "$T/cfgfail.log"
before() {  # FILE A B: a line matching A comes before one matching B (both present)
    local a b
    a=$(first_line "$1" "$2") b=$(first_line "$1" "$3")
    [ "$a" -gt 0 ] && [ "$b" -gt "$a" ]
}
check "bad image variable: the lines before it too, in order" \
    before "$T/cfgfail.log" "${E}info starting pid=" "${E}error step=config failed"
check "bad image variable: the enclave said where it sent them" \
    grep -q "${E}info boot failed before the observability step: sending its log lines to unix:$T/parent-7110.sock" "$T/cfgfail.log"
check "bad image variable: in ENCLAVE_LOG_FILE too" grep -q 'error step=config failed' "$T/enclave.log"
check "bad image variable: no secret in the shipped lines" no_secrets "$T/cfgfail.log" "$T/enclave.log"

# ---- the boot fails after reading its configuration, before the observability step ----
: >"$T/enclave.log"
NSIGN_ENCLAVE_INGRESS_ADDR=unix:$T/no-such-dir/ingress.sock READINESS_TIMEOUT_SECONDS=3 \
    flow_start_run bridgefail
wait_exit
check "ingress cannot listen: run-enclave exits 1" test "$RC" = 1
check "ingress cannot listen: the reason reaches run-enclave's stderr as an 'enclave:' line" \
    grep -q "${E}error step=bridges failed.*no-such-dir" "$T/bridgefail.log" ||
    sed 's/^/# /' "$T/bridgefail.log"
check "ingress cannot listen: the earlier steps' lines too" grep -q "${E}info step=heartbeat ok" "$T/bridgefail.log"
check "ingress cannot listen: no secret in the shipped lines" no_secrets "$T/bridgefail.log" "$T/enclave.log"

# ---- a failure after the observability step (KMS refuses the key): shipped as before ----
: >"$T/enclave.log"
KMS_KEY_ID=alias/other flow_start_run kmsfail
wait_exit
check "KMS refuses: run-enclave exits 1" test "$RC" = 1
check "KMS refuses: the reason reaches run-enclave's stderr, after the early lines" \
    before "$T/kmsfail.log" "${E}info step=bridges ok" "${E}error step=kms-decrypt failed"
check "KMS refuses: no secret in the shipped lines" no_secrets "$T/kmsfail.log" "$T/enclave.log"

tap_done
