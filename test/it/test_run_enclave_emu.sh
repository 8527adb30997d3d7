#!/usr/bin/env bash
# run-enclave --emulator: the real EIF (eif/build.sh, a kernel with virtio-mmio command-line
# devices, vsock and the NSM driver built in) booted by QEMU's nitro-enclave machine, its vsock
# served by nsign vhost-vsock, nothing of the enclave faked:
#   - the whole flow: heartbeat answered, secrets pushed, kms-decrypt attests through QEMU's NSM
#     (/dev/nsm; the KMS fake accepts its unsigned documents only in its explicit emulator mode),
#     age-decrypt, sign-service; ListKeys/Sign through the ingress bridge, every signature
#     verified against the shares file
#   - Attest through the real driver: PCR0/1/2 in QEMU's document equal `nsign eif describe`'s
#   - SIGTERM stops QEMU and the backend; run-enclave exits 0
#   - a second run whose backend is killed mid-run: run-enclave exits 1 naming the backend, QEMU
#     stopped
#   - a third run with a KMS that refuses unsigned documents (no emulator mode): the error on the
#     enclave's console, the enclave stopped, run-enclave exits 1
# Needs QEMU with the nitro-enclave machine (make qemu; NSIGN_QEMU) and such a kernel
# (NSIGN_EMU_KERNEL, else make kernel's); without them it reports a skip, not a pass.
. "$(dirname "$0")/../lib/emu_flow.sh"
emu_begin "the emulator flow"
# A second KMS with the same keys that, like real KMS, refuses unsigned documents.
KMS_FAKE_AKID=$FLOW_AKID KMS_FAKE_SECRET=$FLOW_SECRET KMS_FAKE_TOKEN=$FLOW_TOKEN \
    KMS_FAKE_KEYSEED=$FLOW_KMS_KEYSEED "$PY" "$FAKES/kms_fake.py" --port-file "$T/kms-strict.port" \
    --tls-cert "$T/cert.pem" --tls-key "$T/key.pem" --nsm-root "$T/nsmca/root.pem" \
    --require-attestation --log "$T/kms-strict.log" 2>"$T/kms-strict.err" &
FLOW_PIDS+=($!)
flow_wait_file "$T/kms-strict.port" 20 || fail "strict KMS fake started"

# The EIF: this nsign, the kernel, and (tests only) the fake KMS's CA so the enclave's TLS to the
# fake verifies; KMS is reached the Nitro way, through vsock:3:5000 and run-enclave's proxy.
emu_build_eif "$T/eif"
check "eif/build.sh builds the EIF with kernel $(basename "$EMU_KERNEL")" test -f "$T/eif/nsign.eif" ||
    { sed 's/^/# /' "$T/eif.log" | tail -20; exit 1; }
check "its metadata passes the strict EifIdentityInfo reader (nitro-cli can read it)" \
    "$PY" "$NS_ROOT/test/lib/eif_identity.py" eif "$T/eif/nsign.eif"
"$NSIGN" eif describe "$T/eif/nsign.eif" >"$T/describe.json"

# --- 1. the whole flow -------------------------------------------------------------------------
emu_env "$T/console1.log" "$KMS_PORT"
emu_start_run run1
if emu_wait_console "$T/console1.log" SERVING 900; then
    ok "the EIF boots under QEMU and reaches SERVING (secrets pushed, KMS, age, sign-service)"
else
    fail "the EIF boots under QEMU and reaches SERVING"
    sed 's/^/# run-enclave: /' "$T/run1.log" | tail -20
    sed 's/^/# console: /' "$T/console1.log" | tail -30
fi
boot=$(sed -n 's/.*heartbeat answered boot_ms=\([0-9]*\).*/\1/p' "$T/run1.log" | head -1)
check "run-enclave answered the enclave's heartbeat over vsock (boot ${boot:-?} ms under TCG)" \
    test -n "$boot"
echo "# boot to heartbeat under TCG: ${boot:-?} ms"
rec=$("$PY" -c '
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r.get("target") == "TrentService.Decrypt":
        print(r.get("recipient"), r.get("unsigned_emulator_document"), r.get("status"))' \
    "$T/kms.log" 2>/dev/null | tail -1)
check "KMS got a Recipient with QEMU's unsigned document, accepted only in emulator mode ($rec)" \
    test "$rec" = "True True 200"
"$PY" "$NS_ROOT/test/lib/enclave_demo.py" sign-verify "127.0.0.1:$GRPC_PORT" \
    "$T/service_key_shares.json" >"$T/sign.out" 2>&1
check "Sign through the ingress bridge: every signature verifies against the shares file" \
    test $? = 0 || sed 's/^/# /' "$T/sign.out"
"$PY" "$NS_ROOT/test/lib/enclave_demo.py" attest-pcrs "127.0.0.1:$GRPC_PORT" >"$T/pcrs.json" \
    2>"$T/attest.err"
same=$("$PY" -c '
import json, sys
got = json.load(open(sys.argv[1]))
want = json.load(open(sys.argv[2]))["Measurements"]
print(all(got[str(i)] == want["PCR%d" % i].lower() for i in (0, 1, 2)))' \
    "$T/pcrs.json" "$T/describe.json" 2>>"$T/attest.err")
"$PY" -c 'import json, sys
got = json.load(open(sys.argv[1])); want = json.load(open(sys.argv[2]))["Measurements"]
for i in (0, 1, 2):
    print("# PCR%d measured by QEMU %s" % (i, got.get(str(i), "absent")))
    print("# PCR%d from eif describe %s" % (i, want["PCR%d" % i].lower()))' \
    "$T/pcrs.json" "$T/describe.json" 2>/dev/null || true
check "PCR0/1/2 in QEMU's Attest document equal nsign eif describe's" test "$same" = True ||
    sed 's/^/# /' "$T/attest.err" "$T/pcrs.json" | tail -10
# The NSM driven through the real driver (/dev/nsm, QEMU's virtio-nsm): GetRandom seeds the pool,
# DescribePCR/ExtendPCR/LockPCR measure the inputs into PCR16, and QEMU's document carries the
# locked PCR16 run-enclave predicted from the bytes it pushed.
check "GetRandom through /dev/nsm: the enclave seeded its random pool from QEMU's NSM" \
    grep -q "step=entropy ok" "$T/console1.log"
check "ExtendPCR/LockPCR/DescribePCR through /dev/nsm: PCR16 measured and locked" \
    grep -q "step=measure ok .*locked=1" "$T/console1.log"
want16=$(sed -n 's/.*expected pcr16=\([0-9a-f]*\).*/\1/p' "$T/run1.log" | head -1)
got16=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1])).get("16", ""))' \
    "$T/pcrs.json" 2>/dev/null)
check "PCR16 in QEMU's Attest document equals run-enclave's prediction" \
    test -n "$want16" -a "$got16" = "$want16" || echo "# want $want16 got $got16"
emu_stop_run
check "SIGTERM: run-enclave exits 0" test "$EMU_RC" = 0
check "QEMU is stopped" test -z "$(pgrep -f -- "-kernel $T/eif/nsign.eif")"
check "the vsock backend is stopped" test -z "$(pgrep -f -- "vhost-vsock --socket $T/run/")"

# --- 2. the backend killed mid-run -------------------------------------------------------------
emu_env "$T/console2.log" "$KMS_PORT"
emu_start_run run2
if emu_wait_console "$T/console2.log" SERVING 900; then
    # The backend is run-enclave's child: found by its parent's id, killed by its own.
    for p in $(cat /proc/"$RUNPID"/task/*/children 2>/dev/null); do
        tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q " vhost-vsock " && kill -KILL "$p"
    done
    wait "$RUNPID"
    rc=$?
    RUNPID=
    check "backend killed: run-enclave exits 1" test "$rc" = 1
    check "naming the vsock backend" grep -q "vsock backend (nsign vhost-vsock) exited" "$T/run2.log"
    check "and QEMU is stopped" test -z "$(pgrep -f -- "-kernel $T/eif/nsign.eif")"
else
    fail "second boot reached SERVING"
fi

# --- 3. a KMS that refuses unsigned documents --------------------------------------------------
port_strict=$(head -1 "$T/kms-strict.port" 2>/dev/null)
emu_env "$T/console3.log" "${port_strict:-1}"
emu_start_run run3
wait "$RUNPID"
rc=$?
RUNPID=
check "a KMS without emulator mode: run-enclave exits 1" test "$rc" = 1
check "the enclave's console says why (KMS refused the document)" \
    grep -q "ValidationException" "$T/console3.log"
check "the enclave stopped: run-enclave says QEMU exited" grep -q "the enclave (QEMU) exited" \
    "$T/run3.log"
check "QEMU is gone" test -z "$(pgrep -f -- "-kernel $T/eif/nsign.eif")"
tap_done
