#!/usr/bin/env bash
# test_measured_boot_emu: measured boot on QEMU's NSM (hw/virtio/virtio-nsm.c, driven by the
# enclave kernel's nsm driver through /dev/nsm): the real EIF booted by `run-enclave --emulator`
# (QEMU's nitro-enclave machine, nsign vhost-vsock), the fakes of test/lib/enclave_flow.sh
# outside. Seven boots:
#   1. PCR16 in QEMU's Attest document (unsigned: QEMU's NSM does not sign; it carries only
#      locked PCRs) equals an independent computation (Python hashlib) from the exact bytes
#      pushed, `nsign eif pcr16` and `run-enclave --dry-run --fetch`; a configuration frame and a
#      shares frame after the lock are refused, the console says so, PCR16 is unchanged
#   2-4. one changed byte in the age-key ciphertext, in the shares ciphertext, in the
#      configuration frame (the KMS key id's last letter): each gives another PCR16, read back
#      from QEMU's NSM after the lock, measured before the decryption fails
#   5. check=hwrng: the same machine with a virtio-rng device the kernel prefers to nsm-hwrng
#   6-7. check=debug-mode: QEMU's nitro-enclave machine has no debug mode (it always measures
#      the image into PCR0 and locks PCRs 0-15 at reset, hw/i386/nitro_enclave.c); the same
#      EIF on QEMU's microvm machine with QEMU's NSM device, where nothing measured the image,
#      sees PCR0 all zero as a debug-mode enclave does: refused by the default image, accepted
#      by one built with ALLOW_DEBUG_MODE=1 (test/lib/emu_qemu_variant.sh says how)
# The random-pool check cannot be made to fail with this kernel and QEMU's NSM: nsign (PID 1)
# credits NSM GetRandom bytes to the pool (RNDADDENTROPY) before the checks, and an NSM that does
# not answer trips check=nsm first; test_measured_boot.sh shows it fail with the pool's answer
# injected. Skips (not passes) without QEMU's nitro-enclave machine or an enclave kernel.
set -uo pipefail
. "$(dirname "$0")/../lib/emu_flow.sh"
emu_begin "measured boot on QEMU's NSM"
S3=$T/s3/demo-bucket/enclave
DEMO=$NS_ROOT/test/lib/enclave_demo.py
VARIANT=$NS_ROOT/test/lib/emu_qemu_variant.sh

emu_build_eif "$T/eif"
ALLOW_DEBUG_MODE=1 emu_build_eif "$T/eif-debug"
check "EIFs built: the default image and one with ALLOW_DEBUG_MODE=1" \
    test -f "$T/eif/nsign.eif" -a -f "$T/eif-debug/nsign.eif" ||
    { tail -20 "$T/eif.log" "$T/eif-debug.log" | sed 's/^/# /'; exit 1; }

# measured CONSOLE: the console's PCR16 (what QEMU's NSM answered DescribePCR after the lock).
measured() { sed -n 's/.*step=measure ok .*pcr16=\([0-9a-f]*\) .*locked=1.*/\1/p' "$1" | head -1; }

# --- 1. the good path --------------------------------------------------------------------------
export KMS_KEY_ID=alias/nsign-test
config='{"region":"us-east-1","kms_key_id":"alias/nsign-test"}'
emu_env "$T/console-good.log" "$KMS_PORT"
want=$(flow_expect_pcr16 "$S3/age-private.key.enc" "$S3/service_key_shares.json.age" "$config")
"$NSIGN" eif pcr16 "$S3/age-private.key.enc" "$S3/service_key_shares.json.age" \
    <(printf '%s' "$config") >"$T/pcr16.json"
check "nsign eif pcr16 equals the independent computation" \
    grep -q "\"PCR16\": \"$want\"" "$T/pcr16.json"
"$NSIGN" run-enclave --emulator --dry-run --fetch >"$T/dry" 2>"$T/dry.err"
check "run-enclave --emulator --dry-run --fetch predicts the same PCR16" \
    grep -q -- "-- pcr16 *$want" "$T/dry"
emu_start_run good
if emu_wait_console "$CONSOLE_FILE" SERVING 600; then
    ok "the EIF boots on QEMU's nitro-enclave machine and serves"
else
    fail "the EIF boots on QEMU's nitro-enclave machine and serves"
    tail -20 "$T/good.log" "$CONSOLE_FILE" | sed 's/^/# /'
fi
check "console: preflight passed (NSM answers, PCR0 not zero, hwrng nsm-hwrng, pool ready)" \
    grep -q 'step=preflight ok' "$CONSOLE_FILE"
check "console: QEMU's NSM holds PCR16 = the computation, from age-key, shares, config; locked" \
    grep -q "step=measure ok .*pcr16=$want inputs=age-key,shares,config locked=1" "$CONSOLE_FILE"
check "measured before the first decryption" bash -c \
    "[ \$(grep -n 'step=measure ok' '$CONSOLE_FILE' | cut -d: -f1) -lt \$(grep -n 'step=kms-decrypt ok' '$CONSOLE_FILE' | cut -d: -f1) ]"
check "run-enclave logs the expected PCR16" grep -q "expected pcr16=$want" "$T/good.log"
got=$("$PY" "$DEMO" attest-pcr "127.0.0.1:$GRPC_PORT" 16 2>"$T/attest.err")
echo "# PCR16 in QEMU's document $got"
echo "# PCR16 from hashlib      $want"
check "QEMU's Attest document carries PCR16 (so it is locked) = the independent computation" \
    test "$got" = "$want" || sed 's/^/# /' "$T/attest.err"
# Frames after the lock, through the vsock backend to the enclave's ports: refused (status 06).
printf '{"region":"eu-west-1"}' | "$NSIGN" vsock-push --timeout 20 \
    "unix:$EMU_DIR/enclave-7103.sock" - 2>"$T/late.err"
rc=$?
check "a configuration frame after the lock is refused (exit 1, status 06)" bash -c \
    "[ $rc = 1 ] && grep -q 'takes no more frames' '$T/late.err'" || sed 's/^/# /' "$T/late.err"
printf 'x' | "$NSIGN" vsock-push --timeout 20 "unix:$EMU_DIR/enclave-7102.sock" - 2>"$T/late2.err"
rc=$?
check "a shares frame after the lock is refused too" bash -c \
    "[ $rc = 1 ] && grep -q 'takes no more frames' '$T/late2.err'" || sed 's/^/# /' "$T/late2.err"
emu_wait_console "$CONSOLE_FILE" 'refused a frame after the inputs were measured' 30
check "the enclave's console shows the refusal" \
    grep -q 'refused a frame after the inputs were measured' "$CONSOLE_FILE"
grep -m1 'refused a frame' "$CONSOLE_FILE" | sed 's/^/# console: /'
check "PCR16 in QEMU's document unchanged after the refused frames" test \
    "$("$PY" "$DEMO" attest-pcr "127.0.0.1:$GRPC_PORT" 16 2>/dev/null)" = "$want"
emu_stop_run
check "SIGTERM: run-enclave exits 0" test "$EMU_RC" = 0

# --- 2-4. one changed byte in each input -------------------------------------------------------
seen=" $want"
for what in age-private.key.enc service_key_shares.json.age config; do
    if [ $what = config ]; then
        export KMS_KEY_ID=alias/nsign-tesT
        c='{"region":"us-east-1","kms_key_id":"alias/nsign-tesT"}'
    else
        cp "$S3/$what" "$T/$what.orig"
        flow_flip_byte "$S3/$what"
        c=$config
    fi
    w=$(flow_expect_pcr16 "$S3/age-private.key.enc" "$S3/service_key_shares.json.age" "$c")
    emu_env "$T/console-$what.log" "$KMS_PORT"
    emu_start_run "flip-$what"
    emu_wait_console "$CONSOLE_FILE" 'boot failed' 600
    m=$(measured "$CONSOLE_FILE")
    echo "# one byte changed in $what: PCR16 $m"
    check "one changed byte in $what: QEMU's NSM holds PCR16 = the computation, a new value" \
        bash -c "[ -n '$m' ] && [ '$m' = '$w' ] && [[ '$seen' != *' $w'* ]]" ||
        { echo "# want $w"; tail -10 "$CONSOLE_FILE" "$T/flip-$what.log" | sed 's/^/# /'; }
    check "... measured before the decryption that then fails" \
        grep -q "boot failed step=\(kms\|age\)-decrypt" "$CONSOLE_FILE"
    seen="$seen $w"
    emu_stop_run
    if [ $what = config ]; then export KMS_KEY_ID=alias/nsign-test; else cp "$T/$what.orig" "$S3/$what"; fi
done

# --- 5. check=hwrng: a kernel whose hwrng is not the NSM's --------------------------------------
# run_variant NAME VARIANT EIF: one boot through emu_qemu_variant.sh; waits for the preflight.
run_variant() {
    emu_env "$T/console-$1.log" "$KMS_PORT"
    export EIF_PATH=$3
    EMU_QEMU_REAL=$EMU_QEMU EMU_QEMU_VARIANT=$2 EMU_QEMU_WORK=$T/$1.work NSIGN_QEMU=$VARIANT \
        emu_start_run "$1"
    emu_wait_console "$CONSOLE_FILE" 'step=preflight' 600
}
run_variant hwrng extra-rng "$T/eif/nsign.eif"
check "hwrng not the NSM's: refused, one console line naming check=hwrng" \
    grep -q 'step=preflight failed.*refusing to decrypt: check=hwrng: the kernel.s hwrng is .virtio_rng.0.' \
    "$CONSOLE_FILE" || tail -20 "$CONSOLE_FILE" | sed 's/^/# /'
grep -m1 'check=hwrng' "$CONSOLE_FILE" | sed 's/^/# console: /'
check "hwrng: nothing measured, nothing decrypted" bash -c \
    "! grep -q 'step=measure\|step=kms-decrypt' '$CONSOLE_FILE'"
emu_stop_run

# --- 6-7. check=debug-mode: PCR0 all zero ------------------------------------------------------
"$EMU_QEMU" -M nitro-enclave,help >"$T/machine-help" 2>&1
check "QEMU's nitro-enclave machine has no debug-mode option (its PCR0 is never zero)" bash -c \
    "grep -q 'parent-role=' '$T/machine-help' && ! grep -qi debug '$T/machine-help'"
run_variant debug unmeasured "$T/eif/nsign.eif"
check "PCR0 all zero (QEMU's NSM, image unmeasured): refused, one line naming check=debug-mode" \
    grep -q 'step=preflight failed.*refusing to decrypt: check=debug-mode' "$CONSOLE_FILE" ||
    tail -20 "$CONSOLE_FILE" "$T/debug.log" | sed 's/^/# /'
grep -m1 'check=debug-mode' "$CONSOLE_FILE" | sed 's/^/# console: /'
check "debug mode: nothing measured, nothing decrypted" bash -c \
    "! grep -q 'step=measure\|step=kms-decrypt' '$CONSOLE_FILE'"
emu_stop_run
run_variant debug-ok unmeasured "$T/eif-debug/nsign.eif"
check "PCR0 all zero, image built with ALLOW_DEBUG_MODE=1: the preflight passes" \
    grep -q 'step=preflight ok' "$CONSOLE_FILE" || tail -20 "$CONSOLE_FILE" | sed 's/^/# /'
emu_wait_console "$CONSOLE_FILE" SERVING 600
check "... and it measures the same PCR16 through QEMU's NSM and serves" bash -c \
    "grep -q 'step=measure ok .*pcr16=$want' '$CONSOLE_FILE' && grep -q SERVING '$CONSOLE_FILE'" ||
    tail -10 "$CONSOLE_FILE" | sed 's/^/# /'
emu_stop_run
tap_done
