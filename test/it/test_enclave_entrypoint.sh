#!/usr/bin/env bash
# test_enclave_entrypoint: the in-enclave boot over unix sockets on this machine: each step is
# logged, and every failure path (bad credentials, malformed frame, receive timeout, missing
# heartbeat, SIGTERM while waiting, bad configuration) names its step, exits non-zero and leaves
# no payload on disk. The success path through KMS and sign-service is in test_enclave_flow.sh
# and the demo (they need the KMS/NSM fakes).
set -uo pipefail
. "$(dirname "$0")/../lib/tap.sh"
N=${NSIGN:?}
T=$(mktemp -d /tmp/ns-ee.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$T"; }
trap cleanup EXIT
cd "$T" || exit 1

base_env() {
    export NSIGN_ENCLAVE_CREDS_ADDR=unix:$T/c NSIGN_ENCLAVE_AGE_KEY_ADDR=unix:$T/a
    export NSIGN_ENCLAVE_SHARES_ADDR=unix:$T/s NSIGN_ENCLAVE_SIGN_ADDR=tcp:127.0.0.1:$(free_port)
    export NSIGN_ENCLAVE_CONFIG_ADDR=unix:$T/cf
    export NSIGN_ENCLAVE_INGRESS_ADDR=unix:$T/g NSIGN_ENCLAVE_EGRESS_LISTEN_ADDR=tcp:127.0.0.1:0
    export NSIGN_ENCLAVE_EGRESS_CONNECT_ADDR=unix:$T/eg NSIGN_ENCLAVE_KMS_PROXY_ADDR=unix:$T/k
    export NSIGN_ENCLAVE_ATTEST=0 NSIGN_ENCLAVE_RECV_TIMEOUT=30
    unset NSIGN_ENCLAVE_HEARTBEAT_ADDR AWS_REGION AWS_DEFAULT_REGION KMS_KEY_ID AWS_ENDPOINT_URL_KMS
}

# start_ee LOG: runs enclave-entrypoint in the background (pid in $EE).
start_ee() { "$N" enclave-entrypoint 2>"$1" & EE=$!; pids+=("$EE"); }
# wait_ee SECONDS: waits for it to exit (status in $RC); RC=timeout when it did not.
wait_ee() {
    local i=0
    while kill -0 "$EE" 2>/dev/null && [ $i -lt $(( $1 * 10 )) ]; do sleep 0.1; i=$((i + 1)); done
    if kill -0 "$EE" 2>/dev/null; then RC=timeout; kill -9 "$EE"; wait "$EE" 2>/dev/null; return; fi
    wait "$EE"; RC=$?
}
push() { printf '%s' "$2" | "$N" vsock-push --timeout 10 "unix:$T/$1" - 2>>"$T/push.log"; }
no_payload_on_disk() { ! grep -rl "AKIDTEST\|shares-ciphertext" "$T" --exclude='*.log' --exclude=push.log >/dev/null 2>&1; }

check "help" "$N" enclave-entrypoint --help
"$N" enclave-entrypoint --bogus 2>/dev/null; check "unknown option is a usage error (2)" test $? = 2

base_env
# 1. credentials without a secret key: fails at kms-decrypt, after the receive steps.
start_ee "$T/1.log"
push c '{"AccessKeyId":"AKIDTEST"}' && push a 'age-key-ciphertext' && push s 'shares-ciphertext'
wait_ee 20
check "bad credentials: exit 1" test "$RC" = 1
check "each receive step logged with a duration" \
    grep -q 'step=receive-credentials ok ms=[0-9]' "$T/1.log"
check "bridges and loopback steps logged" grep -q 'step=bridges ok' "$T/1.log"
check "ingress bridge has an idle timeout by default" \
    grep -q 'step=bridges ok .*idle_timeout_s=120' "$T/1.log"
check "failure names kms-decrypt and why" \
    grep -q 'step=kms-decrypt failed .*SecretAccessKey' "$T/1.log"
check "final line names the failed step" grep -q 'boot failed step=kms-decrypt' "$T/1.log"
check "no secret in the log" bash -c "! grep -q AKIDTEST '$T/1.log'"
check "no payload written to disk" no_payload_on_disk
check "listeners removed" test ! -e "$T/c" -a ! -e "$T/a" -a ! -e "$T/s" -a ! -e "$T/cf"
check "no configuration frame: its receiver closes once the rest is in" \
    grep -q 'step=receive-config ok ms=[0-9]* none sent' "$T/1.log"
check "no configuration, no AWS_REGION: us-east-1, and the log says so" \
    grep -q 'step=configure ok .*region=us-east-1 region_from=default document=none' "$T/1.log"

# 2. a malformed frame on the shares port fails that step at once (no waiting for the rest).
start_ee "$T/2.log"
wait_unix "$T/s" 10
$PY -c '
import socket,sys
s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"GARBAGE-NOT-A-FRAME"*4)
s.shutdown(socket.SHUT_WR); s.recv(1); s.close()' "$T/s" 2>/dev/null
wait_ee 20
check "malformed frame: exit 1 without waiting for the other payloads" test "$RC" = 1
check "failure names receive-shares" grep -q 'step=receive-shares failed' "$T/2.log"
check "boot failed line" grep -q 'boot failed step=receive-shares' "$T/2.log"

# 3. nothing arrives: the receive timeout fails the boot.
NSIGN_ENCLAVE_RECV_TIMEOUT=1 start_ee "$T/3.log"
wait_ee 20
check "receive timeout: exit 1" test "$RC" = 1
check "timeout names a receive step" grep -q 'step=receive-[a-z-]* failed' "$T/3.log"

# 4. SIGTERM while waiting for the secrets stops promptly.
start_ee "$T/4.log"
wait_unix "$T/c" 10
kill -TERM "$EE"
wait_ee 10
check "SIGTERM while waiting: exits (not killed by the timeout)" test "$RC" != timeout
check "SIGTERM: nothing after receive ran" bash -c "! grep -q 'step=kms-decrypt' '$T/4.log'"

# 4b. the descriptor limit is raised to the hard limit (bridges and sign-service need one or more
# descriptors per connection), like the bridge and sign-service applets do.
prlimit --nofile=64:4096 "$N" enclave-entrypoint 2>"$T/4b.log" & EE=$!; pids+=("$EE")
wait_unix "$T/c" 10
check "RLIMIT_NOFILE soft limit raised to the hard limit" \
    grep -Eq '^Max open files +4096 +4096' "/proc/$EE/limits"
kill -TERM "$EE"
wait_ee 10

# 5. heartbeat configured but nobody answers: boot fails before any listener.
NSIGN_ENCLAVE_HEARTBEAT_ADDR=unix:$T/hb start_ee "$T/5.log"
wait_ee 20
check "missing heartbeat peer: exit 1" test "$RC" = 1
check "failure names the heartbeat step" grep -q 'step=heartbeat failed' "$T/5.log"

# 6. heartbeat answered by an echo peer: boot proceeds to the receivers.
$PY -c '
import socket,sys
s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1); c,_=s.accept()
b=c.recv(1); c.sendall(b); c.close()' "$T/hb2" & pids+=($!)
wait_unix "$T/hb2" 10
NSIGN_ENCLAVE_HEARTBEAT_ADDR=unix:$T/hb2 NSIGN_ENCLAVE_RECV_TIMEOUT=1 start_ee "$T/6.log"
wait_ee 20
check "heartbeat echoed: step ok" grep -q 'step=heartbeat ok' "$T/6.log"

# 8. the run-time configuration frame (7103), sent first as run-enclave does.
# cfg_run NAME JSON [ENV=VALUE...]: one boot with that configuration; the bad credentials stop it
# at kms-decrypt at the latest.
cfg_run() {
    local name=$1 doc=$2
    shift 2
    env "$@" "$N" enclave-entrypoint 2>"$T/$name.log" & EE=$!; pids+=("$EE")
    push cf "$doc" && push c '{"AccessKeyId":"AKIDTEST"}' && push a 'age-key-ciphertext' &&
        push s 'shares-ciphertext'
    wait_ee 20
}
cfg_run c1 '{"region":"eu-west-1","kms_key_id":"alias/nsign","kms_endpoint":"https://kms.eu-west-1.amazonaws.com"}'
check "configuration: region from the document, logged with its source" \
    grep -q 'step=configure ok .*region=eu-west-1 region_from=config document=yes kms_key_id=alias/nsign kms_endpoint=https://kms.eu-west-1.amazonaws.com' "$T/c1.log"
check "configuration: the boot goes on to kms-decrypt" grep -q 'step=kms-decrypt failed' "$T/c1.log"
cfg_run c2 '{"region":"eu-west-1"}' AWS_REGION=sa-east-1
check "the document wins over the image's AWS_REGION" \
    grep -q 'region=eu-west-1 region_from=config' "$T/c2.log"
cfg_run c3 '{"region":"eu-west-1","kms_key_id":"arn:aws:kms:ap-south-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"}'
check "a full KMS key ARN's region wins over the document" \
    grep -q 'region=ap-south-1 region_from=key-arn' "$T/c3.log"
cfg_run c4 '{}' AWS_REGION=sa-east-1
check "an empty document: the image's AWS_REGION" grep -q 'region=sa-east-1 region_from=env' "$T/c4.log"
# Refusals: each names the member, nothing is decrypted.
bad_cfg() {  # bad_cfg NAME JSON PATTERN
    cfg_run "$1" "$2"
    check "configuration $2: refused (exit 1) naming the member" bash -c \
        "[ '$RC' = 1 ] && grep -q 'step=configure failed.*$3' '$T/$1.log' && ! grep -q 'step=kms-decrypt' '$T/$1.log'"
}
bad_cfg b1 '{"region":"eu-west-1","color":"blue"}' 'unknown member .color.'
bad_cfg b2 '{"region":"eu-west-1","region":"us-east-1"}' 'duplicate member region'
bad_cfg b3 '{"region":1}' 'region must be a string'
bad_cfg b4 '{"region":"eu-west-1; rm"}' 'region .* is not a region name'
bad_cfg b5 '{"kms_endpoint":"http://kms.eu-west-1.amazonaws.com"}' 'kms_endpoint .*must be https'
bad_cfg b6 '{"kms_key_id":42}' 'kms_key_id must be a string'
bad_cfg b7 'region=eu-west-1' 'not a JSON object'
$PY -c 'print("{\"region\":\"eu-west-1\"" + " " * 4100 + "}")' >"$T/big.json"
"$N" enclave-entrypoint 2>"$T/b8.log" & EE=$!; pids+=("$EE")
"$N" vsock-push --timeout 10 "unix:$T/cf" "$T/big.json" 2>"$T/b8.push"; prc=$?
wait_ee 20
check "a configuration over 4 KiB: the push is refused (payload too large)" bash -c \
    "[ $prc = 1 ] && grep -qi 'large' '$T/b8.push'"
check "... and the boot fails at receive-config" grep -q 'boot failed step=receive-config' "$T/b8.log"
NSIGN_ENCLAVE_CONFIG_ADDR=none start_ee "$T/c5.log"
push c '{"AccessKeyId":"AKIDTEST"}' && push a 'age-key-ciphertext' && push s 'shares-ciphertext'
wait_ee 20
check "NSIGN_ENCLAVE_CONFIG_ADDR=none: no configuration receiver" bash -c \
    "! grep -q 'receive-config' '$T/c5.log' && grep -q 'step=configure ok' '$T/c5.log'"

# 7. bad configuration is a usage error naming the variable.
AWS_CREDS_VSOCK_PORT=notaport start_ee "$T/7.log"
wait_ee 10
check "bad port variable: exit 2" test "$RC" = 2
check "error names the variable" grep -q 'AWS_CREDS_VSOCK_PORT' "$T/7.log"

tap_done
