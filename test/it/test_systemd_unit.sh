#!/usr/bin/env bash
# test_systemd_unit: dist/systemd/nsign-enclave.service and nsign-enclave.env.
#  - `systemd-analyze verify` is clean on the unit as shipped, installed into a scratch root
#    (--root: the unit, the allocator's unit it requires, the binaries its Exec lines name), and
#    reports a broken copy (so the check can fail); `systemd-analyze security` rates it OK;
#  - what the issue asks of it: the allocator ordering and requirement, Restart=on-failure with a
#    back-off, absolute paths, StateDirectory, the sandbox, readiness;
#  - it starts run-enclave the way the unit does: a clean environment holding only the
#    EnvironmentFile= (parsed with systemd's rules, test/lib/systemd_unit.py), what systemd adds
#    (STATE_DIRECTORY...), and the fake machine's endpoints and addresses; ExecStartPre (the
#    preflight, against a faked host), ExecStart, ExecStartPost (readiness via /ready), a Sign,
#    SIGTERM as `systemctl stop` sends it, ExecStopPost; the audit trail lands in the state
#    directory.
set -uo pipefail
. "$(dirname "$0")/../lib/tap.sh"
export NSIGN=${NSIGN:?} PY=${PY:-/usr/bin/python3} NS_ROOT=${NS_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
T=$(mktemp -d /tmp/ns-sd.XXXXXX)
. "$NS_ROOT/test/lib/enclave_flow.sh"
. "$NS_ROOT/test/lib/preflight_root.sh"
trap flow_cleanup EXIT
UNIT=$NS_ROOT/dist/systemd/nsign-enclave.service
ENVF=$NS_ROOT/dist/systemd/nsign-enclave.env
SU="$PY $NS_ROOT/test/lib/systemd_unit.py"

# ---- systemd-analyze ----
if ! command -v systemd-analyze >/dev/null; then
    skip "systemd-analyze verify" "systemd-analyze not installed (Debian package systemd)"
else
    R=$T/sdroot
    mkdir -p "$R/etc/systemd/system" "$R/etc/nsign" "$R/usr/local/bin" "$R/usr/lib/systemd" \
        "$R/bin" "$R/usr/bin"
    cp "$UNIT" "$R/etc/systemd/system/" && cp "$ENVF" "$R/etc/nsign/"
    # The targets systemd's own units need (sysinit.target...), and a stand-in for the unit of
    # aws-nitro-enclaves-cli's allocator that this one requires.
    cp -r /usr/lib/systemd/system "$R/usr/lib/systemd/"
    printf '[Unit]\nDescription=stand-in for aws-nitro-enclaves-cli allocator\n[Service]\nType=oneshot\nExecStart=/bin/sh -c :\n' \
        >"$R/etc/systemd/system/nitro-enclaves-allocator.service"
    # verify resolves the Exec paths inside --root (a symlink out of it would not resolve).
    ln "$NSIGN" "$R/usr/local/bin/nsign" 2>/dev/null || cp "$NSIGN" "$R/usr/local/bin/nsign"
    cp /bin/sh "$R/bin/sh" && cp "$(command -v curl)" "$R/usr/bin/curl"
    systemd-analyze --root="$R" verify --man=no /etc/systemd/system/nsign-enclave.service \
        >"$T/verify.out" 2>&1; rc=$?
    check "systemd-analyze verify: clean (exit 0, not one warning)" bash -c "[ $rc = 0 ] && [ ! -s '$T/verify.out' ]" ||
        sed 's/^/# /' "$T/verify.out"
    sed 's/^Restart=on-failure/Restart=on-failure\nRestartSteps=5/; s|^ExecStart=/usr/local/bin/nsign|ExecStart=/usr/local/bin/nsgn|' \
        "$UNIT" >"$R/etc/systemd/system/nsign-broken.service"
    systemd-analyze --root="$R" verify --man=no /etc/systemd/system/nsign-broken.service \
        >"$T/broken.out" 2>&1
    check "systemd-analyze verify: reports an unknown key and a missing ExecStart binary" bash -c \
        "grep -q \"Unknown key 'RestartSteps'\" '$T/broken.out' && grep -q 'nsgn is not executable' '$T/broken.out'" ||
        sed 's/^/# /' "$T/broken.out"
    systemd-analyze --root="$R" security --offline=yes /etc/systemd/system/nsign-enclave.service \
        >"$T/security.out" 2>&1
    level=$(sed -n 's/.*Overall exposure level for nsign-enclave.service: \([0-9.]*\) .*/\1/p' "$T/security.out")
    check "systemd-analyze security: exposure rated OK (at most 5.0; got ${level:-none})" \
        "$PY" -c 'import sys; sys.exit(0 if sys.argv[1] and float(sys.argv[1]) <= 5.0 else 1)' "${level:-}"
fi

# ---- what the unit says ----
check "After= and Requires= the allocator" bash -c \
    "get() { $SU get '$UNIT' \"\$1\" \"\$2\"; }; get Unit Requires | grep -qw nitro-enclaves-allocator.service && get Unit After | grep -qw nitro-enclaves-allocator.service"
check "Restart=on-failure with a back-off (RestartSec, StartLimitIntervalSec, StartLimitBurst)" bash -c \
    "[ \"\$($SU get '$UNIT' Service Restart)\" = on-failure ] && [ -n \"\$($SU get '$UNIT' Service RestartSec)\" ] && [ -n \"\$($SU get '$UNIT' Unit StartLimitIntervalSec)\" ] && [ -n \"\$($SU get '$UNIT' Unit StartLimitBurst)\" ]"
check "the audit trail under StateDirectory=nsign; the lock in RuntimeDirectory=nsign" bash -c \
    "[ \"\$($SU get '$UNIT' Service StateDirectory)\" = nsign ] && [ \"\$($SU get '$UNIT' Service RuntimeDirectory)\" = nsign ] && ! $SU envfile '$ENVF' | tr '\0' '\n' | grep -q '^AUDIT_LOG_FILE='"
check "sandboxing: ProtectSystem=strict, PrivateTmp, NoNewPrivileges, a capability bound, only /dev/nitro_enclaves, vsock allowed" bash -c \
    "[ \"\$($SU get '$UNIT' Service ProtectSystem)\" = strict ] && [ \"\$($SU get '$UNIT' Service PrivateTmp)\" = yes ] && [ \"\$($SU get '$UNIT' Service NoNewPrivileges)\" = yes ] && [ -n \"\$($SU get '$UNIT' Service CapabilityBoundingSet)\" ] && [ \"\$($SU get '$UNIT' Service DeviceAllow)\" = '/dev/nitro_enclaves rw' ] && $SU get '$UNIT' Service RestrictAddressFamilies | grep -qw AF_VSOCK"
$SU envfile "$ENVF" >"$T/env0" || fail "the environment file parses as systemd's EnvironmentFile="
check "every path in the environment file is absolute" bash -c \
    "tr '\0' '\n' <'$T/env0' | grep -E '^(EIF_PATH|CONSOLE_FILE|NITRO_CLI|NSIGN_RUN_DIR)=' | grep -v '=/' | { ! grep -q .; } && [ \$(tr '\0' '\n' <'$T/env0' | grep -cE '^(EIF_PATH|CONSOLE_FILE|NITRO_CLI|NSIGN_RUN_DIR)=/') = 4 ]"
check "ExecStartPre is the preflight, ExecStart run-enclave, both by absolute path" bash -c \
    "[ \"\$($SU exec '$UNIT' ExecStartPre | tr '\0' ' ')\" = '/usr/local/bin/nsign run-enclave --preflight ' ] && [ \"\$($SU exec '$UNIT' ExecStart | tr '\0' ' ')\" = '/usr/local/bin/nsign run-enclave ' ]"

# ---- run-enclave started the way the unit starts it, against the fakes ----
pf_real_eif "$T/unit.eif" 2>"$T/eif.err" || { fail "a real EIF for the preflight"; cat "$T/eif.err"; }
pf_policy "$PF_PCR0" >"$T/policy.json"
# shellcheck disable=SC2034 # read by enclave_flow.sh
FLOW_KMS_ARGS="--key-policy $T/policy.json"
FLOW_NAME=$(tr '\0' '\n' <"$T/env0" | sed -n 's/^ENCLAVE_NAME=//p')
flow_begin "nsign-enclave.service's run-enclave against the fakes"
if ! pf_fake_root "$T/host"; then
    skip "the unit's ExecStartPre" "mknod is not permitted here"; tap_done; exit
fi
# The objects where the environment file says they are (its bucket), the KMS key it names.
age_uri=$(tr '\0' '\n' <"$T/env0" | sed -n 's/^AGE_KEY_S3_URI=//p')
bucket=${age_uri#s3://}; bucket=${bucket%%/*}
ln -s "$T/s3/demo-bucket" "$T/s3/$bucket"
mkdir -p "$T/state" "$T/runtime" "$T/logs"
# systemd's clean environment: the EnvironmentFile= assignments, then what systemd itself sets,
# then this machine's stand-ins (fake endpoints, unix sockets for vsock, the fake nitro-cli, a
# local EIF), each named here; nothing else of the test's environment.
overrides=(EIF_PATH="$T/unit.eif" NITRO_CLI="$NITRO_CLI" NSIGN_RUN_DIR="$T/runtime"
    NSIGN_HOST_READY_LISTEN="$NSIGN_HOST_READY_LISTEN" NSIGN_HOST_METRICS_LISTEN="$NSIGN_HOST_METRICS_LISTEN"
    AWS_ENDPOINT_URL_KMS="https://localhost:$KMS_PORT" NSIGN_PREFLIGHT_ROOT="$T/host")
machine=()
while IFS= read -r -d '' kv; do machine+=("$kv"); done < <(env -0 | grep -zE \
    '^(NSIGN_HOST_[A-Z_]*_(ADDR|LISTEN|CONNECT)|NSIGN_ENCLAVE_[A-Z_]*|FAKE_[A-Z_]*|NSM_DEVICE|AWS_EC2_METADATA_SERVICE_ENDPOINT|AWS_ENDPOINT_URL_S3|AWS_CA_BUNDLE|NSIGN_HOST_WATCH_SECONDS)=' |
    grep -zvE '^(NSIGN_HOST_READY_LISTEN|NSIGN_HOST_METRICS_LISTEN)=')
fileenv=()
while IFS= read -r -d '' kv; do fileenv+=("$kv"); done <"$T/env0"
unit_env_argv() {  # UENV: the env(1) command line that gives the unit's environment
    UENV=(env -i PATH=/usr/local/bin:/usr/bin:/bin NSIGN="$NSIGN" "${fileenv[@]}"
        STATE_DIRECTORY="$T/state" RUNTIME_DIRECTORY="$T/runtime" LOGS_DIRECTORY="$T/logs"
        "${machine[@]}" "${overrides[@]}")
}
unit_env() { unit_env_argv; "${UENV[@]}" "$@"; }
exec_line() { local a=(); while IFS= read -r -d '' w; do a+=("$w"); done < <($SU exec "$UNIT" "$1"); printf '%s\0' "${a[@]}"; }
mapfile -d '' pre < <(exec_line ExecStartPre)
mapfile -d '' start < <(exec_line ExecStart)
mapfile -d '' post < <(exec_line ExecStartPost)
mapfile -d '' stoppost < <(exec_line ExecStopPost)
# /usr/local/bin/nsign is this build's binary.
pre[0]=$NSIGN start[0]=$NSIGN stoppost[0]=$NSIGN

unit_env "${pre[@]}" >"$T/pre.out" 2>&1; rc=$?
check "ExecStartPre: the preflight passes on the faked host with the unit's environment" test $rc = 0 ||
    sed 's/^/# /' "$T/pre.out"
check "ExecStartPre: it checked the environment file's KMS key and S3 objects" bash -c \
    "grep -q '^ok    kms-policy  the key policy of arn:aws:kms:us-east-1:111122223333:key/' '$T/pre.out' && grep -q '^ok    s3          AGE_KEY_S3_URI s3://$bucket/' '$T/pre.out'"

: >"$CONSOLE"
# (not through the function: a background job's pid must be run-enclave's own for SIGTERM)
unit_env_argv
"${UENV[@]}" "${start[@]}" 2>"$T/start.log" & RUNPID=$!
unit_env "${post[@]}" >"$T/post.out" 2>&1; rc=$?
check "ExecStartPost: returns 0 once /ready answers 200 (the unit becomes active)" test $rc = 0 ||
    sed 's/^/# /' "$T/post.out" "$T/start.log"
check "ExecStartPost returned only after the enclave reported SERVING" bash -c \
    "grep -q 'SERVING' '$CONSOLE' && [ \"\$(curl -s -o /dev/null -w '%{http_code}' http://${NSIGN_HOST_READY_LISTEN#tcp:}/ready)\" = 200 ]"
check "run-enclave used the environment file's settings (name, CID, resources, region)" bash -c \
    "grep -q 'run-enclave --eif-path $T/unit.eif --cpu-count 2 --memory 512 --enclave-cid 16 --enclave-name $FLOW_NAME' '$T/nitro/calls.log' && grep -q 'kms_key_id=arn:aws:kms:us-east-1:111122223333:key/1234abcd' '$CONSOLE'"
check "Sign through the ingress verifies" \
    "$PY" "$NS_ROOT/test/lib/enclave_demo.py" sign-verify "${NSIGN_HOST_GRPC_LISTEN#tcp:}" "$T/service_key_shares.json"
# systemctl stop: SIGTERM to the main process (KillMode=mixed), then ExecStopPost.
kill -TERM "$RUNPID"
i=0; while kill -0 "$RUNPID" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
wait "$RUNPID"; rc=$?; RUNPID=
check "stop: run-enclave exits 0 after terminating the enclave" test $rc = 0 ||
    { echo "# exit $rc"; tail -5 "$T/start.log" | sed 's/^/# /'; }
unit_env "${stoppost[@]}" >"$T/stoppost.out" 2>&1; rc=$?
check "ExecStopPost (stop-enclave): nothing left to stop, exit 0" bash -c \
    "[ $rc = 0 ] && grep -q 'is not running' '$T/stoppost.out' && ! grep -q 'stopping run-enclave' '$T/stoppost.out'" ||
    sed 's/^/# /' "$T/stoppost.out"
check "the audit trail is in the state directory (StateDirectory=nsign), ended by the final head" bash -c \
    "tail -1 '$T/state/$FLOW_NAME.audit.jsonl' | grep -q '\"final\":true'"
check "the enclave's log lines went to run-enclave's stderr (the journal)" \
    grep -q '^enclave: nsign enclave-entrypoint: info SERVING' "$T/start.log"
# Readiness that never comes: ExecStartPost gives up after NSIGN_READY_WAIT_SECONDS, saying why.
overrides+=(NSIGN_READY_WAIT_SECONDS=2)
unit_env "${post[@]}" >"$T/post2.out" 2>&1; rc=$?
check "ExecStartPost without readiness: fails after NSIGN_READY_WAIT_SECONDS, naming /ready" bash -c \
    "[ $rc = 1 ] && grep -q 'nsign-enclave: /ready on .* not 200 after 2 s' '$T/post2.out'"
tap_done
