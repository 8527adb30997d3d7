#!/usr/bin/env bash
# test_measured_boot: the whole flow with the software NSM (test/it/fakes/nsm_fake.py, real PCR
# semantics): the enclave extends PCR16 with SHA-384 of the age-key ciphertext, the shares
# ciphertext and the configuration frame, locks it before decrypting anything, and its Attest
# documents carry it; it equals an independent computation (Python hashlib) from the bytes
# pushed, `nsign eif pcr16` and what run-enclave predicts (--dry-run --fetch, and its log); one
# changed byte in the configuration or a ciphertext changes it; a frame after the lock is
# refused; the fail-closed checks stop the boot with one line naming the check: a debug-mode
# enclave (PCR0 all zero) unless its image was built with ALLOW_DEBUG_MODE=1, an NSM that does
# not answer, and a random pool not initialised (the kernel's answer injected by seccomp). The
# EIFs are real (eif/build.sh): the stand-in nitro-cli gives the enclave the environment in the
# image, so the debug-mode allowance comes from the image only.
set -uo pipefail
. "$(dirname "$0")/../lib/tap.sh"
export NSIGN=${NSIGN:?} PY=${PY:-/usr/bin/python3} NS_ROOT=${NS_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
T=$(mktemp -d /tmp/ns-measured.XXXXXX)
. "$NS_ROOT/test/lib/enclave_flow.sh"
trap flow_cleanup EXIT
flow_begin "measured boot"
S3=$T/s3/demo-bucket/enclave
DEMO=$NS_ROOT/test/lib/enclave_demo.py

head -c 4096 /dev/urandom >"$T/kernel"
KERNEL=$T/kernel bash "$NS_ROOT/eif/build.sh" "$T/eif" "$NSIGN" >"$T/eif.json" 2>/dev/null
KERNEL=$T/kernel ALLOW_DEBUG_MODE=1 bash "$NS_ROOT/eif/build.sh" "$T/eif-debug" "$NSIGN" \
    >"$T/eif-debug.json" 2>/dev/null
check "ALLOW_DEBUG_MODE=1 is in the image, so in its measurements (PCR0 differs)" bash -c \
    "[ -s '$T/eif.json' ] && ! cmp -s '$T/eif.json' '$T/eif-debug.json'"
export EIF_PATH=$T/eif/nsign.eif

config='{"region":"us-east-1"}'
want=$(flow_expect_pcr16 "$S3/age-private.key.enc" "$S3/service_key_shares.json.age" "$config")
"$NSIGN" eif pcr16 "$S3/age-private.key.enc" "$S3/service_key_shares.json.age" \
    <(printf '%s' "$config") >"$T/pcr16.json"
check "nsign eif pcr16 equals the independent computation" \
    grep -q "\"PCR16\": \"$want\"" "$T/pcr16.json"
"$NSIGN" run-enclave --dry-run --fetch >"$T/dry" 2>"$T/dry.err"
check "run-enclave --dry-run --fetch predicts the same PCR16" grep -q -- "-- pcr16 *$want" "$T/dry"
check "... and runs nothing but the read-only steps" bash -c \
    "! grep -q 'run-enclave --eif-path' '$T/nitro/calls.log' 2>/dev/null"

# 1. The good path: measured, locked, attested.
flow_start_run good
if flow_wait_serving 120; then ok "the enclave serves"; else
    fail "the enclave serves"; sed 's/^/# /' "$T/good.log" "$CONSOLE" | tail -20; fi
check "fail-closed checks passed before the measurement" grep -q 'step=preflight ok' "$CONSOLE"
check "console: PCR16 measured from age-key, shares and config, and locked" \
    grep -q "step=measure ok .*pcr16=$want inputs=age-key,shares,config locked=1" "$CONSOLE"
check "measured before the first decryption" bash -c \
    "[ \$(grep -n 'step=measure ok' '$CONSOLE' | cut -d: -f1) -lt \$(grep -n 'step=kms-decrypt ok' '$CONSOLE' | cut -d: -f1) ]"
check "run-enclave logs the expected PCR16" grep -q "expected pcr16=$want" "$T/good.log"
got=$("$PY" "$DEMO" attest-pcr "127.0.0.1:$GRPC_PORT" 16 2>"$T/attest.err")
check "the Attest document carries PCR16 = the independent computation" test "$got" = "$want"
check "the NSM saw ExtendPCR x3 then LockPCR on index 16" "$PY" -c '
import json,sys
ops=[(r["kind"],r["index"]) for r in json.load(open(sys.argv[1])) if r["kind"] in ("ExtendPCR","LockPCR")]
sys.exit(0 if ops==[("ExtendPCR",16)]*3+[("LockPCR",16)] else 1)' "$T/nsm.log"
# A frame after the lock: refused with status 06, the enclave keeps serving.
printf '{"region":"eu-west-1"}' | "$NSIGN" vsock-push --timeout 10 "$NSIGN_HOST_CONFIG_ADDR" - \
    2>"$T/late.err"; rc=$?
check "a configuration frame after the lock is refused (exit 1, status 06)" bash -c \
    "[ $rc = 1 ] && grep -q 'takes no more frames' '$T/late.err'"
printf 'x' | "$NSIGN" vsock-push --timeout 10 "$NSIGN_HOST_SHARES_ADDR" - 2>"$T/late2.err"; rc=$?
check "a shares frame after the lock is refused too" bash -c \
    "[ $rc = 1 ] && grep -q 'takes no more frames' '$T/late2.err'"
check "the enclave logs the refusal" grep -q 'refused a frame after the inputs were measured' "$CONSOLE"
check "PCR16 unchanged after the refused frames" test \
    "$("$PY" "$DEMO" attest-pcr "127.0.0.1:$GRPC_PORT" 16 2>/dev/null)" = "$want"
flow_stop_run

# 2. Configurations one byte apart (the key id's last letter): two PCR16s, each as predicted.
for key in alias/nsign-test alias/nsign-tesT; do
    c="{\"region\":\"us-east-1\",\"kms_key_id\":\"$key\"}"
    w=$(flow_expect_pcr16 "$S3/age-private.key.enc" "$S3/service_key_shares.json.age" "$c")
    KMS_KEY_ID=$key flow_start_run "key-${key#alias/}"
    flow_wait_serving 60
    check "configuration $c: PCR16 $w, measured" grep -q "step=measure ok .*pcr16=$w" "$CONSOLE"
    flow_stop_run
    eval "w_${key#alias/nsign-}=\$w"
done
check "configurations one byte apart: different PCR16s, both differ from the first" bash -c \
    "[ '$w_test' != '$w_tesT' ] && [ '$w_test' != '$want' ] && [ '$w_tesT' != '$want' ]"

# 3. One changed byte in each ciphertext: another PCR16, measured before the decryption fails.
for f in service_key_shares.json.age age-private.key.enc; do
    cp "$S3/$f" "$T/$f.orig"
    flow_flip_byte "$S3/$f"
    w=$(flow_expect_pcr16 "$S3/age-private.key.enc" "$S3/service_key_shares.json.age" "$config")
    flow_start_run "flip-$f"
    flow_wait_serving 60
    check "one flipped byte in $f: PCR16 $w (not $want), measured before decrypting" bash -c \
        "[ '$w' != '$want' ] && grep -q 'step=measure ok .*pcr16=$w' '$CONSOLE' && grep -q 'boot failed step=\(kms\|age\)-decrypt' '$CONSOLE'"
    flow_stop_run
    cp "$T/$f.orig" "$S3/$f"
done

# 4. Fail closed: a debug-mode enclave (PCR0 all zero) is refused, unless its image allows it.
"$PY" "$FAKES/nsm_fake.py" --socket "$T/nsm0.sock" --ca-dir "$T/nsmca0" --log "$T/nsm0.log" \
    2>/dev/null & FLOW_PIDS+=($!)
flow_wait_file "$T/nsmca0/root.pem" 20
NSM_DEVICE=unix:$T/nsm0.sock flow_start_run debug
flow_wait_serving 60; r=$?
check "debug mode (PCR0 all zero): refused by default" bash -c \
    "[ $r = 1 ] && grep -q 'step=preflight failed.*refusing to decrypt: check=debug-mode' '$CONSOLE'"
check "debug mode: nothing measured, nothing decrypted" bash -c \
    "! grep -q 'step=measure ok\|step=kms-decrypt' '$CONSOLE'"
flow_stop_run
pkill_nsm0() { kill "${FLOW_PIDS[-1]}" 2>/dev/null; }
pkill_nsm0
"$PY" "$FAKES/nsm_fake.py" --socket "$T/nsm1.sock" --ca-dir "$T/nsmca1" 2>/dev/null & FLOW_PIDS+=($!)
flow_wait_file "$T/nsmca1/root.pem" 20
EIF_PATH=$T/eif-debug/nsign.eif NSM_DEVICE=unix:$T/nsm1.sock flow_start_run debug-ok
flow_wait_serving 60
check "debug mode: preflight passes for an image built with ALLOW_DEBUG_MODE=1" \
    grep -q 'step=preflight ok' "$CONSOLE"
flow_stop_run

# 5. Fail closed: an NSM that does not answer.
"$PY" "$FAKES/nsm_fake.py" --socket "$T/nsm2.sock" --ca-dir "$T/nsmca2" --no-answer 2>/dev/null &
FLOW_PIDS+=($!)
flow_wait_file "$T/nsmca2/root.pem" 20
NSM_DEVICE=unix:$T/nsm2.sock flow_start_run nonsm
flow_wait_serving 60; r=$?
check "an NSM that does not answer: refused, one line naming check=nsm" bash -c \
    "[ $r = 1 ] && grep -q 'refusing to decrypt: check=nsm' '$CONSOLE'"
flow_stop_run

# 6. Fail closed: the kernel's random pool not initialised. A running kernel's pool cannot be
# un-initialised, and in an enclave nsign (PID 1) credits NSM randomness to it before the checks
# (test_measured_boot_emu.sh says why QEMU cannot show it either), so the kernel's answer is
# injected: the real binary runs under a seccomp filter that answers getrandom(GRND_NONBLOCK)
# with EAGAIN, as the kernel does until its pool is initialised.
if ${CC:-cc} -O2 -o "$T/no_random_pool" "$NS_ROOT/test/lib/no_random_pool.c" 2>"$T/cc.err"; then
    check "the filter answers getrandom(GRND_NONBLOCK) with EAGAIN and leaves blocking calls alone" \
        "$T/no_random_pool" "$PY" -c '
import os, sys
try:
    os.getrandom(1, os.GRND_NONBLOCK)
    sys.exit(1)
except BlockingIOError:
    pass
sys.exit(0 if len(os.getrandom(16)) == 16 else 1)'
    FAKE_ENCLAVE_CMD="$T/no_random_pool $NSIGN enclave-entrypoint" flow_start_run nopool
    flow_wait_serving 60; r=$?
    check "the random pool not initialised: refused, one line naming check=random-pool" bash -c \
        "[ $r = 1 ] && grep -q 'step=preflight failed.*refusing to decrypt: check=random-pool' '$CONSOLE'"
    grep -m1 'check=random-pool' "$CONSOLE" | sed 's/^/# console: /'
    check "random pool: nothing measured, nothing decrypted" bash -c \
        "! grep -q 'step=measure\|step=kms-decrypt' '$CONSOLE'"
    flow_stop_run
else
    fail "compile test/lib/no_random_pool.c"; sed 's/^/# /' "$T/cc.err"
fi
tap_done
