# shellcheck shell=bash
# emu_flow.sh: the enclave flow under `nsign run-enclave --emulator` (QEMU's nitro-enclave
# machine, a real EIF, nsign vhost-vsock as its vsock), shared by test/it/test_run_enclave_emu.sh
# and test/it/test_measured_boot_emu.sh. Sourcing it sources tap.sh and enclave_flow.sh (the
# fakes), defaults NS_ROOT (this checkout), NSIGN (build/nsign) and PY (/usr/bin/python3), makes
# T (a scratch dir, kept with KEEP=1) and sets the EXIT trap.
#
#   emu_begin WHAT     finds QEMU with the nitro-enclave machine (NSIGN_QEMU, else make qemu's)
#                      and an enclave kernel (NSIGN_EMU_KERNEL, else make kernel's); without
#                      them skips WHAT (a skip, not a pass) and ends the test; then the fakes and
#                      the user's material (flow_setup) with KMS in its explicit emulator mode
#                      (QEMU's NSM does not sign). Sets EMU_QEMU (exported as NSIGN_QEMU),
#                      EMU_KERNEL.
#   emu_build_eif DIR  eif/build.sh with that kernel, this nsign and (tests only) the fake KMS's
#                      CA; the caller's environment reaches build.sh (ALLOW_DEBUG_MODE=1 ...)
#   emu_env CONSOLE KMS_PORT   exports what run-enclave --emulator needs (EIF_PATH: T/eif)
#   emu_start_run NAME runs run-enclave --emulator in the background (RUNPID), its log T/NAME.log
#   emu_stop_run       SIGTERM, wait; EMU_RC is its exit status
#   emu_wait_console FILE PATTERN SECONDS   until the console shows PATTERN (0), or a boot
#                      failure or run-enclave's end (1)
#   EMU_DIR            the emulator's socket folder (enclave-PORT.sock reach the enclave's ports)
: "${NS_ROOT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${NSIGN:=$NS_ROOT/build/nsign}"
PY=${PY:-/usr/bin/python3}
T=$(mktemp -d /tmp/nsign-emu.XXXXXX)
# shellcheck source=tap.sh
. "$NS_ROOT/test/lib/tap.sh"
# shellcheck source=enclave_flow.sh
. "$NS_ROOT/test/lib/enclave_flow.sh"
RUNPID=
emu_cleanup() {
    [ -n "$RUNPID" ] && kill "$RUNPID" 2>/dev/null && wait "$RUNPID" 2>/dev/null
    for p in "${FLOW_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    [ -n "${KEEP:-}" ] && echo "# kept $T" || rm -rf "$T"
}
trap emu_cleanup EXIT

emu_begin() {
    EMU_QEMU=${NSIGN_QEMU:-$NS_ROOT/build/qemu/qemu-system-x86_64}
    EMU_KERNEL=${NSIGN_EMU_KERNEL:-}
    if [ -z "$EMU_KERNEL" ]; then
        # make kernel's (this checkout's configuration and patches) first; any cached one else
        for k in "$NS_ROOT/build/kernel/bzImage" "${NSIGN_CACHE:-/var/cache/nsign}"/kernel-*/bzImage; do
            [ -f "$k" ] && { EMU_KERNEL=$k; break; }
        done
    fi
    if ! [ -x "$EMU_QEMU" ] || ! "$EMU_QEMU" -M help 2>/dev/null | grep -q nitro-enclave; then
        skip "$1" "no QEMU with the nitro-enclave machine (make qemu, or NSIGN_QEMU)"
        exit 0
    fi
    if [ -z "$EMU_KERNEL" ]; then
        skip "$1" "no enclave kernel (make kernel, or NSIGN_EMU_KERNEL)"
        exit 0
    fi
    local msg
    if ! msg=$(flow_have_fakes); then
        fail "test dependencies: $msg"
        exit 1
    fi
    export NSIGN_QEMU=$EMU_QEMU
    # The user's material and the fakes; KMS in its explicit emulator mode.
    # shellcheck disable=SC2034 # read by flow_setup
    FLOW_KMS_ARGS=--accept-emulator-attestation
    flow_setup >"$T/setup.log" 2>&1 || {
        fail "fakes and material set up"
        sed 's/^/# /' "$T/setup.log"
        exit 1
    }
    EMU_DIR=$T/run/nsign-emu.emu
}

emu_build_eif() {
    printf 'AWS_CA_BUNDLE=/etc/nsign-test-ca.pem\nNSIGN_ENCLAVE_RECV_TIMEOUT=600\n' >"$T/enclave.env"
    KERNEL=$EMU_KERNEL ENCLAVE_ENV=$T/enclave.env ENCLAVE_FILES="$T/ca.pem:etc/nsign-test-ca.pem" \
        bash "$NS_ROOT/eif/build.sh" "$1" "$NSIGN" >"$1.log" 2>&1
}

emu_env() {
    unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_ENDPOINT_URL \
        AWS_ENDPOINT_URL_KMS AWS_PROFILE NSIGN_EMULATOR
    export AGE_KEY_S3_URI=s3://demo-bucket/enclave/age-private.key.enc
    export KEY_SHARES_S3_URI=s3://demo-bucket/enclave/service_key_shares.json.age
    export AWS_REGION=us-east-1 ENCLAVE_NAME=nsign-emu ENCLAVE_CID=16 CPU_COUNT=2 MEMORY_MIB=512
    export EIF_PATH=$T/eif/nsign.eif NSIGN_RUN_DIR=$T/run CONSOLE_FILE=$1
    export READINESS_TIMEOUT_SECONDS=600 NSIGN_EMU_BOOT_TIMEOUT_SECONDS=600
    export AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:$IMDS_PORT
    export AWS_ENDPOINT_URL_S3=https://localhost:$S3_PORT AWS_CA_BUNDLE=$T/ca.pem
    GRPC_PORT=$(flow_free_port)
    export NSIGN_HOST_GRPC_LISTEN=tcp:127.0.0.1:$GRPC_PORT
    export NSIGN_HOST_KMS_PROXY_CONNECT=tcp:127.0.0.1:$2
    export NSIGN_HOST_EGRESS_CONNECT=tcp:127.0.0.1:$(flow_free_port)
    # The host's metrics bridge and readiness check on free ports (not 9100/9101: other tests
    # may run beside this one); logs, audit and metrics keep the emulator's default sockets.
    export NSIGN_HOST_METRICS_LISTEN=tcp:127.0.0.1:$(flow_free_port)
    export NSIGN_HOST_READY_LISTEN=tcp:127.0.0.1:$(flow_free_port) ENCLAVE_LOG_FILE=$T/enclave.log
    # The client the keys file pins (mutual TLS with the enclave).
    export DEMO_CLIENT_CERT=$T/client.pem DEMO_CLIENT_KEY=$T/client.key
}

emu_start_run() { "$NSIGN" run-enclave --emulator 2>"$T/$1.log" & RUNPID=$!; }
emu_stop_run() {
    kill -TERM "$RUNPID" 2>/dev/null
    wait "$RUNPID"
    EMU_RC=$?
    RUNPID=
}

emu_wait_console() {
    local i=0
    while [ $i -lt $(($3 * 10)) ]; do
        grep -q "$2" "$1" 2>/dev/null && return 0
        grep -q 'boot failed' "$1" 2>/dev/null && return 1
        kill -0 "$RUNPID" 2>/dev/null || return 1
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}
