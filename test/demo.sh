#!/usr/bin/env bash
# demo.sh [BUILD_DIR]: `make demo`. The whole nsign enclave flow for a new user, on this machine,
# step by step, ending with a verified signature:
#   1. the user's secrets: an age identity (encrypted with KMS) and the service's signing keys
#      (encrypted with age), uploaded to S3 (a local S3 that checks SigV4 like S3)
#   2. `nsign run-enclave` on the host: fetch-creds from IMDS, s3-get of both ciphertexts, the
#      KMS proxy bridge, `nitro-cli run-enclave` (a stand-in that starts `nsign
#      enclave-entrypoint` as a local process), the ingress/egress bridges, the pushes
#   3. inside the "enclave": receive, KMS Decrypt with an NSM attestation (local KMS and NSM
#      fakes), age-decrypt, wipe, sign-service
#   4. a gRPC Sign call through the host's ingress bridge, verified with the public keys of the
#      shares file; then `nsign stop-enclave`
# Here vsock is replaced by unix sockets. Then, where qemu is available (and DEMO_VM is not 0),
#   7. the same flow over real AF_VSOCK: the EIF's own kernel and ramdisks booted in a qemu guest
#      (test/vm/test_e2e.sh), ending with a Sign call verified on this side
#   8. the real EIF on QEMU's nitro-enclave machine (run-enclave --emulator), when make qemu and
#      make kernel have run: the PCRs QEMU measured beside nsign eif describe's
set -uo pipefail
cd "$(dirname "$0")/.."
O=${1:-build}
export NS_ROOT=$PWD NSIGN=$(cd "$O" && pwd)/nsign PY=${PY:-/usr/bin/python3}
T=$(mktemp -d /tmp/nsign-demo.XXXXXX)
RUNPID=
cleanup() {
    [ -n "$RUNPID" ] && kill "$RUNPID" 2>/dev/null && wait "$RUNPID" 2>/dev/null
    for p in "${FLOW_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    [ -n "${KEEP:-}" ] && echo "(kept $T)" || rm -rf "$T"
}
trap cleanup EXIT
. test/lib/enclave_flow.sh

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { printf '\ndemo FAILED: %s\n' "$*"; exit 1; }

[ -x "$NSIGN" ] || die "no $NSIGN: run make first"
flow_have_fakes || die "missing test dependencies (run: make deps)"

say "1. A new user's secrets (nothing of this reaches the host in plaintext)"
flow_setup || die "setting up the user's material and the local AWS fakes"
echo "  age identity:        $(age-keygen -y "$T/age-private.key")"
echo "  service keys:        $("$PY" -c 'import json,sys; print(", ".join(k["id"]+" ("+k["algorithm"]+")" for k in json.load(open(sys.argv[1]))["keys"]))' "$T/service_key_shares.json")"
echo "  uploaded to S3:      $(cd "$T/s3" && find demo-bucket -type f | sort | sed 's|^|s3://|' | tr '\n' ' ')"
echo "  fakes:               IMDS 127.0.0.1:$IMDS_PORT, S3 https://localhost:$S3_PORT,"
echo "                       KMS https://localhost:$KMS_PORT (attestation required), NSM $T/nsm.sock"
flow_env

say "2. The plan: nsign run-enclave --dry-run"
"$NSIGN" run-enclave --dry-run | sed 's|'"$T"'|$T|g; s|'"$NSIGN"'|nsign|g'

say "3. nsign run-enclave (host side), the enclave's console follows"
"$NSIGN" run-enclave 2>"$T/run-enclave.log" &
RUNPID=$!
if ! flow_wait_serving 120; then
    echo "--- run-enclave:"; cat "$T/run-enclave.log"
    echo "--- enclave console:"; cat "$T/nitro/$FLOW_NAME.console" 2>/dev/null
    die "the enclave did not reach SERVING"
fi
sleep 0.5
echo "--- host (run-enclave):"
grep -v '^nsign \(bridge\): info \(closed\|listening\)' "$T/run-enclave.log" | sed 's|'"$T"'|$T|g; s/^/  /'
echo "--- enclave console:"
sed 's|'"$T"'|$T|g; s/^/  /' "$T/nitro/$FLOW_NAME.console"
echo "--- KMS saw:"
"$PY" -c '
import json,sys
for l in open(sys.argv[1]):
    r=json.loads(l); print("  ", {k: r[k] for k in r if k in ("op","operation","target","attested","recipient","status","key_id")})' "$T/kms.log" 2>/dev/null | tail -3

say "4. gRPC over mutual TLS that ends in the enclave, through the host's bridge (127.0.0.1:$GRPC_PORT)"
"$PY" test/lib/enclave_demo.py sign-verify "127.0.0.1:$GRPC_PORT" "$T/service_key_shares.json" ||
    die "signature verification"
# nsign sign: attests on the same TLS connection (PCRs, nonce, the session's key) before it sends
# anything to sign. The flow's NSM fake measures PCR0 = FLOW_PCR0 and signs with a test root.
# PCR16 (what the host loaded: the age key, the keys file, the configuration) is pinned to what
# run-enclave predicted, and the keys file's client policy to what the operator publishes.
expected=$(sed -n 's/.*expected pcr16=\([0-9a-f]*\).*/\1/p' "$T/run-enclave.log")
policy=$("$NSIGN" sign-service --keys "$T/service_key_shares.json" --commitments |
    "$PY" -c 'import json, sys; print(json.load(sys.stdin)["policy_commitment"])')
"$PY" -c 'import json, sys
z = "00" * 48
json.dump({"Measurements": {"HashAlgorithm": "Sha384 { ... }", "PCR0": sys.argv[1], "PCR1": z,
                            "PCR2": z}}, open(sys.argv[2], "w"))' "$FLOW_PCR0" "$T/measurements.json"
printf 'transfer 10 to bob' >"$T/message.txt"
sig=$("$NSIGN" sign --addr "tcp:127.0.0.1:$GRPC_PORT" --key payments --message-file "$T/message.txt" \
    --cert "$T/client.pem" --client-key "$T/client.key" --expect "$T/measurements.json" \
    --pcr "16=$expected" --policy-commitment "$policy" \
    --root "$T/nsmca/root.pem" 2>"$T/sign.err") || { cat "$T/sign.err"; die "nsign sign"; }
"$PY" -c 'import base64, json, sys
from cryptography.hazmat.primitives.asymmetric import ed25519
k = [k for k in json.load(open(sys.argv[1]))["keys"] if k["id"] == "payments"][0]
ed25519.Ed25519PrivateKey.from_private_bytes(base64.b64decode(k["private_key"])).public_key().verify(
    bytes.fromhex(sys.argv[2]), open(sys.argv[3], "rb").read())' \
    "$T/service_key_shares.json" "$sig" "$T/message.txt" || die "nsign sign: the signature does not verify"
echo "  nsign sign --expect measurements.json --pcr 16=... --policy-commitment ...: attested"
echo "  (image, measured inputs, client policy), then signed: ${sig:0:32}... (verified)"
pcr16=$("$PY" test/lib/enclave_demo.py attest-pcr "127.0.0.1:$GRPC_PORT" 16)
echo "  Attest: PCR16 = $pcr16"
echo "  (measured boot: the ciphertexts and configuration run-enclave sent; it predicted $expected)"
[ -n "$pcr16" ] && [ "$pcr16" = "$expected" ] || die "PCR16 in the attestation is not the predicted one"

say "5. Secrets on the host: none"
if grep -rl "AGE-SECRET-KEY-1" "$T" --exclude=age-private.key --exclude='*.json' >/dev/null 2>&1; then
    die "the age identity was found in a file"
fi
echo "  no plaintext age identity or key share in any file the flow wrote"

say "6. nsign stop-enclave"
"$NSIGN" stop-enclave 2>&1 | sed 's/^/  /'
wait "$RUNPID"; rc=$?; RUNPID=
echo "  run-enclave exited with status $rc"
"$NITRO_CLI" describe-enclaves | grep -q "$FLOW_NAME" && die "the enclave still runs"
echo "  enclave terminated, bridges stopped"

if [ "${DEMO_VM:-auto}" != 0 ] && command -v qemu-system-x86_64 >/dev/null &&
    [ -f test/vm/test_e2e.sh ]; then
    say "7. The same flow over real AF_VSOCK, in a qemu guest booted from the EIF's kernel"
    NS_BUILD=$(cd "$O" && pwd) NS_SHARED=${NS_SHARED:-$(cd .. && pwd)/shared} \
        PYTHONPATH=$PWD/test/lib${PYTHONPATH:+:$PYTHONPATH} \
        bash test/vm/test_e2e.sh >"$T/vm.log" 2>&1
    vrc=$?
    grep -E '^(ok|not ok) ' "$T/vm.log" | sed 's/^/  /'
    if [ $vrc != 0 ] || grep -q '^not ok' "$T/vm.log"; then
        tail -20 "$T/vm.log" | sed 's/^/  | /'
        die "the AF_VSOCK flow in the VM"
    fi
else
    say "7. (the AF_VSOCK variant in a qemu guest is skipped: no qemu, or DEMO_VM=0)"
fi

emu_qemu=$O/qemu/qemu-system-x86_64
if [ "${DEMO_EMU:-auto}" != 0 ] && [ -x "$emu_qemu" ] &&
    "$emu_qemu" -M help 2>/dev/null | grep -q nitro-enclave &&
    ls "$O"/kernel/bzImage "${NSIGN_CACHE:-/var/cache/nsign}"/kernel-*/bzImage >/dev/null 2>&1; then
    say "8. The real EIF on QEMU's nitro-enclave machine (run-enclave --emulator, a local Nitro)"
    echo "  QEMU loads the EIF itself, measures PCR0/1/2 into its NSM; nsign vhost-vsock serves its vsock"
    # A clean environment: the variables this demo exported for its own flow must not reach it.
    env -i PATH="$PATH" HOME="${HOME:-/root}" LANG=C.UTF-8 NS_ROOT="$PWD" \
        NSIGN="$(cd "$O" && pwd)/nsign" NS_BUILD="$(cd "$O" && pwd)" \
        NS_SHARED="${NS_SHARED:-$(cd .. && pwd)/shared}" PYTHONPATH="$PWD/test/lib" \
        bash test/it/test_run_enclave_emu.sh >"$T/emu.log" 2>&1
    erc=$?
    grep -E '^(ok|not ok) |^# (PCR|boot)' "$T/emu.log" | sed 's/^# //; s/^/  /'
    if [ $erc != 0 ] || grep -q '^not ok' "$T/emu.log"; then
        tail -20 "$T/emu.log" | sed 's/^/  | /'
        die "the flow under the emulator"
    fi
else
    say "8. (the emulator variant is skipped: no QEMU with nitro-enclave or no enclave kernel: make qemu kernel; or DEMO_EMU=0)"
fi

printf '\n\033[1mdemo OK: signatures made inside the enclave verified against the shares file.\033[0m\n'
