#!/usr/bin/env bash
# test_run_enclave: run-enclave and stop-enclave with a fake nitro-cli (NITRO_CLI) that starts
# `nsign enclave-entrypoint` as a local process, the IMDS/S3/KMS/NSM fakes of test/it/fakes, and
# unix sockets in place of vsock: --dry-run output, configuration errors, nitro-cli missing, the
# allocator error, the whole flow to a verified Sign, SIGTERM stopping everything it started,
# stop-enclave, a second run refused, and the failure paths (no IMDS role, wrong KMS key,
# corrupted shares file): each names its step and leaves no key material in any file.
set -uo pipefail
. "$(dirname "$0")/../lib/tap.sh"
export NSIGN=${NSIGN:?} PY=${PY:-/usr/bin/python3} NS_ROOT=${NS_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
T=$(mktemp -d /tmp/ns-re.XXXXXX)
. "$NS_ROOT/test/lib/enclave_flow.sh"
trap flow_cleanup EXIT

# ---- without any AWS: help, dry run, configuration errors ----
check "help" bash -c "'$NSIGN' run-enclave --help | grep -q AGE_KEY_S3_URI"
check "stop-enclave help" bash -c "'$NSIGN' stop-enclave --help | grep -q ENCLAVE_NAME"
"$NSIGN" run-enclave --bogus 2>/dev/null; check "unknown option: exit 2" test $? = 2

(
    unset NSIGN_HOST_CREDS_ADDR ENCLAVE_CID KMS_PROXY_ENABLE DEBUG_MODE HOST_EGRESS_ENABLED
    AGE_KEY_S3_URI=s3://b/age.enc KEY_SHARES_S3_URI=s3://b/shares.age NITRO_CLI=nitro-cli \
        "$NSIGN" run-enclave --dry-run >"$T/dry1" 2>&1
    echo $? >"$T/dry1.rc"
    AGE_KEY_S3_URI=s3://b/age.enc KEY_SHARES_S3_URI=s3://b/shares.age NITRO_CLI=nitro-cli \
        ENCLAVE_CID=21 CPU_COUNT=4 MEMORY_MIB=2048 DEBUG_MODE=1 KMS_PROXY_ENABLE=0 \
        HOST_EGRESS_ENABLED=0 HOST_GRPC_PORT=6000 AWS_CREDS_VSOCK_PORT=9100 \
        "$NSIGN" run-enclave --dry-run >"$T/dry2" 2>&1
)
check "dry run exits 0" test "$(cat "$T/dry1.rc")" = 0
has() { grep -qF -- "$2" "$T/$1" || { echo "# missing in $1: $2"; return 1; }; }
check "dry run: nitro-cli with the seed's defaults" has dry1 \
    "nitro-cli run-enclave --eif-path target/sign-service.enclave.eif --cpu-count 2 --memory 512 --enclave-cid 16 --enclave-name sign-service-enclave"
check "dry run: fetch-creds" has dry1 " fetch-creds"
check "dry run: s3-get of both URIs" bash -c "grep -q 's3-get --creds - s3://b/age.enc -' '$T/dry1' && grep -q 's3-get --creds - s3://b/shares.age -' '$T/dry1'"
check "dry run: KMS proxy allow-listed to kms.us-east-1" has dry1 \
    "bridge --allow kms.us-east-1.amazonaws.com:443 vsock:any:5000 tcp:kms.us-east-1.amazonaws.com:443"
check "dry run: ingress and egress bridges, the ingress on loopback first" has dry1 \
    "bridge --idle-timeout 120 --max-per-peer 32 tcp:127.0.0.1:50051 vsock:16:50051 vsock:any:8080 tcp:127.0.0.1:8080"
check "dry run: the ingress moves to 0.0.0.0 only once the enclave requires client certificates" has dry1 \
    "the ingress moves to tcp:0.0.0.0:50051 once the enclave reports client_auth=required"
check "dry run: three pushes to 7100/7101/7102" bash -c \
    "grep -q 'vsock-push --timeout 60 vsock:16:7100 -' '$T/dry1' && grep -q 'vsock:16:7101 -' '$T/dry1' && grep -q 'vsock:16:7102 -' '$T/dry1'"
check "dry run: the configuration frame is pushed first, to 7103, with the parent's region" bash -c \
    "grep -m1 'vsock-push' '$T/dry1' | grep -q 'vsock:16:7103 - .*configuration first: {\"region\":\"us-east-1\"}'"
check "dry run: order check, creds, s3, proxy, nitro-cli, bridges, push" bash -c \
    "[ \"\$(awk '{print \$2}' '$T/dry1' | grep -v '^plan' | uniq | tr '\n' ' ')\" = 'check fetch-creds s3-get pcr16 kms-proxy observe nitro-cli bridges push supervise ' ]"
check "dry run: variables honoured" bash -c "grep -q -- '--cpu-count 4 --memory 2048 --enclave-cid 21 --enclave-name sign-service-enclave --debug-mode' '$T/dry2' && grep -q 'vsock:21:9100' '$T/dry2' && grep -q 'bridge --idle-timeout 120 --max-per-peer 32 tcp:127.0.0.1:6000 vsock:21:50051 .*moves to tcp:0.0.0.0:6000 ' '$T/dry2'"
check "dry run: metrics bridged from tcp:127.0.0.1:9100 to vsock:16:7112, logs and audit on 7110/7111, readiness on 9101" bash -c \
    "grep -q 'bridge .*tcp:127.0.0.1:50051 vsock:16:50051 vsock:any:8080 tcp:127.0.0.1:8080 tcp:127.0.0.1:9100 vsock:16:7112' '$T/dry1' && grep -q 'logs vsock:any:7110 .* audit vsock:any:7111 .* readiness tcp:127.0.0.1:9101' '$T/dry1'"
check "dry run: KMS_PROXY_ENABLE=0 and HOST_EGRESS_ENABLED=0" bash -c \
    "grep -q 'kms-proxy    skipped' '$T/dry2' && ! grep -q 'vsock:any:8080' '$T/dry2'"

AGE_KEY_S3_URI=s3://b/a KEY_SHARES_S3_URI=s3://b/s AWS_REGION='eu-west-1"' "$NSIGN" run-enclave 2>"$T/err"; rc=$?
check "malformed AWS_REGION: exit 2 naming it" bash -c "[ $rc = 2 ] && grep -q 'AWS_REGION=eu-west-1\": not a region name' '$T/err'"
env -u AGE_KEY_S3_URI -u KEY_SHARES_S3_URI "$NSIGN" run-enclave 2>"$T/err"; rc=$?
check "S3 URIs missing: exit 2 naming them" bash -c "[ $rc = 2 ] && grep -q 'AGE_KEY_S3_URI and KEY_SHARES_S3_URI must be set' '$T/err'"
AGE_KEY_S3_URI=s3://b/a KEY_SHARES_S3_URI=s3://b/s ENCLAVE_CID=2 "$NSIGN" run-enclave 2>"$T/err"; rc=$?
check "reserved CID: exit 2" bash -c "[ $rc = 2 ] && grep -q 'ENCLAVE_CID=2' '$T/err'"
AGE_KEY_S3_URI=s3://b/a KEY_SHARES_S3_URI=s3://b/s NITRO_CLI=/nonexistent/nitro-cli \
    NSIGN_RUN_DIR=$T/run0 "$NSIGN" run-enclave 2>"$T/err"; rc=$?
check "nitro-cli missing: exit 1 with what to install" bash -c \
    "[ $rc = 1 ] && grep -q 'install the AWS Nitro Enclaves CLI' '$T/err'"
NSIGN_RUN_DIR=$T/run0 NITRO_CLI=$NS_ROOT/test/it/fake_nitro_cli.py FAKE_NITRO_STATE=$T \
    "$NSIGN" stop-enclave 2>"$T/err"; rc=$?
check "stop-enclave with nothing running: exit 0" bash -c "[ $rc = 0 ] && grep -q 'not running' '$T/err'"

# ---- the whole flow ----
flow_begin "run-enclave end to end"
no_secrets() {  # no plaintext age identity or signing key in any file but the user's own
    local k1 k2
    k1=$("$PY" -c 'import json,sys;print(json.load(open(sys.argv[1]))["keys"][0]["private_key"])' "$T/service_key_shares.json")
    ! grep -rlF -e "AGE-SECRET-KEY-1" -e "$k1" "$T" --exclude=age-private.key \
        --exclude=service_key_shares.json >/dev/null 2>&1
}
start_run() { : >"$CONSOLE"; "$NSIGN" run-enclave 2>"$T/$1.log" & RUNPID=$!; }
stop_run() {  # SIGTERM, bounded wait; RC = exit status or "timeout"
    kill -TERM "$RUNPID" 2>/dev/null
    local i=0
    while kill -0 "$RUNPID" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    if kill -0 "$RUNPID" 2>/dev/null; then RC=timeout; kill -9 "$RUNPID"; else wait "$RUNPID"; RC=$?; fi
    RUNPID=
}
wait_exit() {  # waits for run-enclave to exit by itself; RC
    local i=0
    while kill -0 "$RUNPID" 2>/dev/null && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
    if kill -0 "$RUNPID" 2>/dev/null; then RC=timeout; kill -9 "$RUNPID"; else wait "$RUNPID"; RC=$?; fi
    RUNPID=
}
enclave_listed() { "$NITRO_CLI" describe-enclaves | grep -q "\"EnclaveName\": \"$FLOW_NAME\""; }
export -f enclave_listed
export FLOW_NAME

start_run ok
if flow_wait_serving 120; then ok "enclave reaches SERVING"; else
    fail "enclave reaches SERVING"; sed 's/^/# /' "$T/ok.log" "$CONSOLE"; fi
i=0; while ! grep -q 'is serving: gRPC at' "$T/ok.log" && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
check "run-enclave says the enclave is booting until it reports SERVING, then that it serves" bash -c \
    "grep -n 'enclave $FLOW_NAME is booting: it took its secrets; waiting for it to report SERVING' '$T/ok.log' | cut -d: -f1 >'$T/l1' && grep -n 'enclave $FLOW_NAME is serving: gRPC at' '$T/ok.log' | cut -d: -f1 >'$T/l2' && [ -s '$T/l1' ] && [ -s '$T/l2' ] && [ \$(cat '$T/l1') -lt \$(cat '$T/l2') ] && ! grep -q 'is running: gRPC' '$T/ok.log'"
check "the enclave logs its own PCR0 at start (as the NSM measured it)" \
    grep -q "info pcr0=$FLOW_PCR0 " "$CONSOLE"
check "each host step logged with its duration" bash -c \
    "for s in check fetch-creds s3-get nitro-cli push; do grep -q \"step=\$s ok ms=\" '$T/ok.log' || exit 1; done"
check "each enclave step logged with its duration" bash -c \
    "for s in loopback heartbeat bridges receive kms-decrypt wipe-credentials age-decrypt load-keys; do grep -q \"step=\$s ok ms=\" '$CONSOLE' || exit 1; done"
check "KMS Decrypt was attested (Recipient)" grep -q '"recipient": true' "$T/kms.log"
check "Sign through the ingress bridge verifies against the shares file" \
    "$PY" "$NS_ROOT/test/lib/enclave_demo.py" sign-verify "127.0.0.1:$GRPC_PORT" "$T/service_key_shares.json"
# Observability: the enclave's logs on the host's stderr and in ENCLAVE_LOG_FILE, readiness,
# metrics through the host's bridge, gRPC health, the audit trail.
ready() { curl -s -o "$T/ready.out" -w '%{http_code}' "http://127.0.0.1:$READY_PORT/ready"; }
i=0; while [ "$(ready)" != 200 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
check "readiness: 200 once the enclave reports SERVING" bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$READY_PORT/ready)\" = 200 ] && grep -q 'ready state=SERVING' '$T/ready.out'"
# A stalled enclave (SIGSTOP: no status line for longer than READY_MAX_AGE_SECONDS) is not
# ready; once it runs again it is.
epid=$("$NITRO_CLI" describe-enclaves | "$PY" -c 'import json,sys;print(json.load(sys.stdin)[0]["ProcessID"])')
kill -STOP "$epid"
i=0; while [ "$(ready)" != 503 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
check "readiness: 503 when the last status line is too old (enclave stalled)" \
    grep -q 'not ready state=SERVING' "$T/ready.out"
kill -CONT "$epid"
i=0; while [ "$(ready)" != 200 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
check "readiness: 200 again once status lines resume" grep -q '^ready state=SERVING' "$T/ready.out"
check "enclave log lines on run-enclave's stderr, prefixed 'enclave: '" \
    grep -q '^enclave: nsign enclave-entrypoint: info SERVING addr=' "$T/ok.log"
check "enclave log lines in ENCLAVE_LOG_FILE" grep -q '^nsign enclave-entrypoint: info step=load-keys ok' "$T/enclave.log"
check "status lines feed readiness, not the log" bash -c "! grep -q 'status state=' '$T/ok.log' '$T/enclave.log'"
check "Attest through the ingress bridge, gRPC health SERVING" \
    "$PY" "$NS_ROOT/test/lib/enclave_demo.py" attest-health "127.0.0.1:$GRPC_PORT" "$T/attest.b64"
curl -s "http://127.0.0.1:$METRICS_PORT/metrics" >"$T/metrics.txt"
check "metrics through the host's bridge: Sign counted, boot steps timed" bash -c \
    "grep -q '^nsign_sign_requests_total{key=\"payments\",algorithm=\"ed25519\",client=\"[^\"]*\",status=\"OK\"} 1' '$T/metrics.txt' && grep -q '^nsign_boot_step_duration_seconds{step=\"kms-decrypt\"} ' '$T/metrics.txt'"
check "metrics through the host's bridge: promtool check metrics" bash -c "promtool check metrics <'$T/metrics.txt'"
check "lock file holds run-enclave's pid" bash -c "[ \"\$(cat '$T/run/$FLOW_NAME.pid')\" = $RUNPID ]"
"$NSIGN" run-enclave 2>"$T/second.log"; rc=$?
check "a second run-enclave is refused" bash -c "[ $rc = 1 ] && grep -q 'another run-enclave for $FLOW_NAME is running' '$T/second.log'"
check "no key material in any file" no_secrets
check "credentials never in a child's argv (log of commands)" bash -c "! grep -q '$FLOW_SECRET' '$T/ok.log' '$T/nitro/calls.log'"
stop_run
check "SIGTERM: run-enclave exits 0" test "$RC" = 0
check "SIGTERM: enclave terminated" bash -c "! enclave_listed"
check "SIGTERM: ingress bridge stopped" bash -c "! (exec 3<>/dev/tcp/127.0.0.1/$GRPC_PORT) 2>/dev/null"
check "SIGTERM: KMS proxy stopped" bash -c "! $PY -c 'import socket,sys;s=socket.socket(socket.AF_UNIX);s.connect(sys.argv[1])' '${NSIGN_HOST_KMS_PROXY_LISTEN#unix:}' 2>/dev/null"
check "SIGTERM: lock released" test ! -e "$T/run/$FLOW_NAME.pid"
# SIGTERM drains by default (NSIGN_HOST_DRAIN_SECONDS=30): the enclave, asked over POST /drain,
# exits by itself; terminate-enclave is for an enclave that does not.
check "SIGTERM: the enclave drained and exited, or terminate-enclave was called by name" bash -c \
    "grep -q 'drained: the enclave finished its calls and exited' '$T/ok.log' || grep -q 'terminate-enclave --enclave-name $FLOW_NAME' '$T/nitro/calls.log'"
check "readiness: refused once run-enclave stopped" bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$READY_PORT/ready)\" = 000 ]"
check "audit trail in AUDIT_LOG_FILE verifies against the enclave's Attest document" \
    "$NSIGN" audit-verify "$T/audit.jsonl" --attestation "$T/attest.b64"
check "audit trail: one entry per Sign (2), ended by the final head" bash -c \
    "[ \$(grep -c '\"type\":\"entry\"' '$T/audit.jsonl') = 2 ] && tail -1 '$T/audit.jsonl' | grep -q '\"final\":true'"
rm -f "$T/audit.jsonl" "$T/enclave.log"

# describe-enclaves failing (a nitro-cli that cannot read a running EIF's metadata) is logged and
# retried; it never stops the enclave. Once it answers again, a vanished enclave is noticed.
start_run desc
flow_wait_serving 120
touch "$T/nitro/describe-fail"
i=0; while [ "$(grep -c 'describe-enclaves failed' "$T/desc.log")" -lt 3 ] && [ $i -lt 300 ]; do
    sleep 0.1; i=$((i + 1)); done
check "describe-enclaves failing: logged, with the count, and retried" \
    grep -q 'describe-enclaves failed (.*3 in a row)' "$T/desc.log"
check "describe-enclaves failing: run-enclave keeps running" kill -0 "$RUNPID"
check "describe-enclaves failing: the enclave is not terminated" \
    bash -c "! grep -q 'terminate-enclave' <(tail -1 '$T/nitro/calls.log')"
check "describe-enclaves failing: the enclave still serves" \
    "$PY" "$NS_ROOT/test/lib/enclave_demo.py" sign-verify "127.0.0.1:$GRPC_PORT" "$T/service_key_shares.json"
rm -f "$T/nitro/describe-fail"
"$PY" -c 'import json,os,signal,sys; d=json.load(open(sys.argv[1]))
os.killpg(d[sys.argv[2]]["pid"], signal.SIGKILL)' "$T/nitro/enclaves.json" "$FLOW_NAME"
wait_exit
check "describe-enclaves answers again: the vanished enclave is noticed (exit 1)" bash -c \
    "[ '$RC' = 1 ] && grep -q 'answers again after' '$T/desc.log' && grep -q 'no longer running' '$T/desc.log'"

# stop-enclave stops a running run-enclave and its enclave.
start_run stop
flow_wait_serving 120
"$NSIGN" stop-enclave 2>"$T/stop.err"; rc=$?
wait_exit
check "stop-enclave: exit 0" test "$rc" = 0
check "stop-enclave: run-enclave exited 0" test "$RC" = 0
check "stop-enclave: enclave gone" bash -c "! enclave_listed"

# Debug mode: the console is streamed into CONSOLE_FILE while run-enclave supervises.
DEBUG_MODE=1 CONSOLE_FILE=$T/console.log start_run debug
flow_wait_serving 120
i=0; while ! grep -q SERVING "$T/console.log" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
check "debug mode: --debug-mode passed to nitro-cli" grep -q 'run-enclave .*--debug-mode' "$T/nitro/calls.log"
check "debug mode: console streamed into CONSOLE_FILE" grep -q 'SERVING' "$T/console.log"
stop_run
check "debug mode: SIGTERM exits 0" test "$RC" = 0

# SIGTERM while the pushes wait for an enclave that never listens: stops at once, not after the
# readiness timeout, and still terminates the enclave.
FAKE_ENCLAVE_CMD="sleep 300" NSIGN_ENCLAVE_HEARTBEAT_ADDR= start_run hang
i=0; while ! grep -q 'step=push run=' "$T/hang.log" && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
sleep 0.5
echo "hang-ready=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$READY_PORT/ready")" >"$T/hang.ready"
kill -TERM "$RUNPID"
i=0; while kill -0 "$RUNPID" 2>/dev/null && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 "$RUNPID" 2>/dev/null; then RC=timeout; kill -9 "$RUNPID"; else wait "$RUNPID"; RC=$?; fi
RUNPID=
check "SIGTERM during the pushes: run-enclave stops well before the readiness timeout" \
    test "$RC" != timeout
check "SIGTERM during the pushes: the enclave is terminated" bash -c "! enclave_listed"
check "readiness: 503 while the enclave has not reported (never booted)" \
    grep -q 'hang-ready=503' "$T/hang.ready"

# The allocator has too little memory: nitro-cli fails, the error says what to configure.
FAKE_NITRO_FAIL=allocator start_run alloc
wait_exit
check "allocator error: exit 1" test "$RC" = 1
check "allocator error: says how to configure the allocator" grep -q "allocator.yaml" "$T/alloc.log" || sed "s/^/# /" "$T/alloc.log"
# MEMORY_MIB below 4x the EIF: nitro-cli's E26 names MEMORY_MIB, not the allocator.
head -c $((3 * 1024 * 1024)) /dev/zero >"$T/big.eif"
EIF_PATH=$T/big.eif MEMORY_MIB=4 start_run e26
wait_exit
check "E26 (MEMORY_MIB below 4x the EIF): exit 1, says to raise MEMORY_MIB, not to edit the allocator" bash -c \
    "[ '$RC' = 1 ] && grep -q 'MEMORY_MIB=4 is below 4x the EIF size (nitro-cli.s E26' '$T/e26.log' && ! grep -q 'set memory_mib >= 4' '$T/e26.log'" ||
    sed "s/^/# /" "$T/e26.log"
check "allocator error: KMS proxy stopped" bash -c "! $PY -c 'import socket,sys;s=socket.socket(socket.AF_UNIX);s.connect(sys.argv[1])' '${NSIGN_HOST_KMS_PROXY_LISTEN#unix:}' 2>/dev/null"

# Wrong KMS key: KMS refuses, the enclave console names kms-decrypt, no key material anywhere.
KMS_KEY_ID=alias/other start_run wrongkey
flow_wait_serving 60; r=$?
check "wrong KMS key: enclave does not serve" test $r = 1
check "wrong KMS key: console names kms-decrypt and KMS's error" \
    grep -q 'step=kms-decrypt failed.*Incorrect\|step=kms-decrypt failed.*key' "$CONSOLE"
check "wrong KMS key: the hint names the variable KMS_KEY_ID, not an applet flag" bash -c \
    "grep -q 'step=kms-decrypt failed.*check KMS_KEY_ID' '$CONSOLE' && ! grep -q 'check --key-id' '$CONSOLE'"
check "wrong KMS key: no key material in any file" no_secrets
wait_exit
check "wrong KMS key: run-enclave notices the enclave is gone and exits 1" bash -c \
    "[ '$RC' = 1 ] && grep -q 'no longer running' '$T/wrongkey.log'"

# Debug mode, wrong KMS key, a console that delivers the last lines late: run-enclave lets
# `nitro-cli console` finish, so CONSOLE_FILE says why the boot failed once run-enclave has exited.
KMS_KEY_ID=alias/other DEBUG_MODE=1 CONSOLE_FILE=$T/console-late.log FAKE_CONSOLE_LAG_S=2 \
    start_run late
wait_exit
check "debug mode, enclave gone: run-enclave exits 1" test "$RC" = 1
check "debug mode, enclave gone: CONSOLE_FILE has the boot error (console drained first)" \
    grep -q 'boot failed step=kms-decrypt' "$T/console-late.log"

# The age key uploaded as base64 text (what `aws kms encrypt` prints without `| base64
# --decode`): KMS rejects it; the console says to upload the raw ciphertext, naming the variable.
A=$T/s3/demo-bucket/enclave/age-private.key.enc
cp "$A" "$T/age.orig"
base64 -w0 "$T/age.orig" >"$A"
start_run b64
flow_wait_serving 60; r=$?
check "age key ciphertext as base64 text: the enclave does not serve and says to upload the raw ciphertext" bash -c \
    "[ $r = 1 ] && grep -q 'step=kms-decrypt failed.*InvalidCiphertextException.*check that the object at AGE_KEY_S3_URI is the raw KMS ciphertext' '$CONSOLE' && ! grep -q 'encryption-context' '$CONSOLE'" ||
    grep 'kms-decrypt' "$CONSOLE" | sed 's/^/# /'
stop_run
cp "$T/age.orig" "$A"

# Corrupted shares file: age-decrypt fails in the enclave.
S=$T/s3/demo-bucket/enclave/service_key_shares.json.age
cp "$S" "$T/shares.orig"
"$PY" -c 'import sys;p=sys.argv[1];b=bytearray(open(p,"rb").read());b[-20]^=1;open(p,"wb").write(b)' "$S"
start_run corrupt
flow_wait_serving 60; r=$?
check "corrupted shares: enclave does not serve" test $r = 1
check "corrupted shares: console names age-decrypt" grep -q 'step=age-decrypt failed' "$CONSOLE"
check "corrupted shares: no key material in any file" no_secrets
stop_run
cp "$T/shares.orig" "$S"

# Missing credentials: the IMDS role is gone; run-enclave stops at fetch-creds.
kill "${FLOW_PIDS[1]}" 2>/dev/null
"$PY" "$FAKES/imds_fake.py" --no-role >"$T/imds2.port" 2>/dev/null & FLOW_PIDS+=($!)
flow_wait_file "$T/imds2.port" 20
AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:$(head -1 "$T/imds2.port") start_run nocreds
wait_exit
check "no IMDS role: exit 1" test "$RC" = 1
check "no IMDS role: names fetch-creds" grep -q 'fetch-creds' "$T/nocreds.log"
check "no IMDS role: no enclave started" bash -c "! grep -q 'run-enclave --eif-path' <(tail -1 '$T/nitro/calls.log')"

tap_done
