#!/usr/bin/env bash
# test_e2e: the whole nsign workflow end to end in one qemu boot of the EIF's own kernel and
# ramdisks (built here by eif/build.sh from the pinned Debian kernel and the binary under test;
# the harness adds the vsock loopback modules and runs the EIF's /bin/nsign, not its own copy).
#
# Inside the guest (test/vm/e2e/guest.sh), run-enclave (host side) and enclave-entrypoint
# (enclave side, started by test/vm/e2e/nitro-cli) talk over real AF_VSOCK at CID 1. IMDS, S3,
# KMS (TLS) and the NSM are the strict fakes of test/it/fakes on this machine's loopback, reached
# from the guest only through qemu user networking with restrict=on and guestfwd. After the good
# path reaches SERVING, this script calls Attest and Sign over mutual TLS that ends inside the
# enclave (pinned to the certificate Attest binds) through a second NIC (hostfwd to the guest's
# host-side ingress bridge, which carries it over vsock to the enclave), through a recording
# relay: the relayed bytes must hold neither the message nor a signature. It verifies the
# signatures against the public keys derived from the shares file (test/vm/e2e/host.py).
# Failure paths in the same boot: missing credentials (IMDS without a role), wrong KMS key
# (KMS_KEY_ID=alias/other), corrupted shares file (one flipped byte), a malformed key; a
# version-1 keys file is refused by a default (production) image at load-keys, and served by one
# that allows anonymous clients, whose ingress stays on 127.0.0.1 (with a warning). Finally every secret value
# (AWS secret and token, the age identity, the signing keys) is searched for in the console log,
# the fakes' logs and every file of the guest.
# The binary under test: $NSIGN, else $NS_BUILD/nsign (as `make demo` passes it), else build/.
if [ -z "${NSIGN:-}" ] && [ -n "${NS_BUILD:-}" ]; then
    export NSIGN=$NS_BUILD/nsign
fi
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/lib.sh"
vm_require_nsign
PY=/usr/bin/python3
E2E=$NS_ROOT/test/vm/e2e
T=$VM_TMP

for tool in age age-keygen socat protoc; do
    if ! command -v "$tool" >/dev/null; then
        fail "$tool is installed (scripts/deps.sh apt)"
        tap_done
        exit 1
    fi
done

# The EIF: the pinned kernel (booted by the harness as its uncompressed twin) and this nsign.
kernel=$(bash "$NS_ROOT/scripts/vm-kernel.sh" path bzImage) || { fail "pinned kernel"; exit 1; }
KERNEL=$kernel bash "$NS_ROOT/eif/build.sh" "$T/eif" "$NSIGN" >"$T/eif.log" 2>&1
check "eif/build.sh builds an EIF from the pinned kernel and the binary under test" \
    test -f "$T/eif/nsign.eif" || { sed 's/^/# /' "$T/eif.log"; tap_done; exit 1; }
check "its metadata passes the strict EifIdentityInfo reader (nitro-cli can read it)" \
    $PY "$NS_ROOT/test/lib/eif_identity.py" eif "$T/eif/nsign.eif"

# Credentials shared by the fakes (test values, but still treated as secrets below).
export E2E_AKID=ASIAE2EFAKE000000001
E2E_SECRET=$(head -c 30 /dev/urandom | base64 | tr -d '/+=')
E2E_TOKEN=IQoJE2E$(head -c 48 /dev/urandom | base64 | tr -d '/+=')
export E2E_SECRET E2E_TOKEN

# bg LOGNAME CMD...: a background process on this machine, killed on exit.
bg() {
    local log=$1
    shift
    "$@" >"$T/$log.out" 2>"$T/$log.err" &
    VM_BG_PIDS+=($!)
}
# port_of LOGNAME: the port a fake printed on its first stdout line (bounded wait).
port_of() {
    local _
    for _ in $(seq 100); do
        [ -s "$T/$1.out" ] && { head -1 "$T/$1.out"; return 0; }
        sleep 0.1
    done
    return 1
}

mkdir -p "$T/ctl" "$T/nsmca"
echo nsign-e2e-egress >"$T/ctl/egress.txt"
$PY "$E2E/host.py" prepare "$T" tls
bg nsm $PY "$NS_ROOT/test/it/fakes/nsm_fake.py" --socket "$T/nsm.sock" --ca-dir "$T/nsmca" \
    --log "$T/nsm.json" --pcr0 "$(sha384sum "$NSIGN" | cut -c1-96)" \
    --reset-port-file "$T/nsm-reset.port"
wait_unix "$T/nsm.sock" 20
nsm_port=$(free_port)
bg nsmfwd socat TCP-LISTEN:"$nsm_port",bind=127.0.0.1,reuseaddr,fork UNIX-CONNECT:"$T/nsm.sock"
KMS_FAKE_AKID=$E2E_AKID KMS_FAKE_SECRET=$E2E_SECRET KMS_FAKE_TOKEN=$E2E_TOKEN \
    KMS_FAKE_KEYSEED=e2e-$$ bg kms $PY "$NS_ROOT/test/it/fakes/kms_fake.py" \
    --port-file "$T/kms.port" --tls-cert "$T/kms-cert.pem" --tls-key "$T/kms-key.pem" \
    --nsm-root "$T/nsmca/root.pem" --require-attestation --log "$T/kms.json" \
    --region eu-west-1 --host kms.eu-west-1.amazonaws.com --host localhost
for _ in $(seq 100); do [ -s "$T/kms.port" ] && break; sleep 0.1; done
kms_port=$(cat "$T/kms.port" 2>/dev/null)
check "fakes: NSM and KMS started" test -S "$T/nsm.sock" -a -n "$kms_port"
$PY "$E2E/host.py" prepare "$T" "$kms_port" 2>"$T/prepare.err"
check "test material: age-encrypted shares, KMS-encrypted age identity" \
    test -s "$T/s3/e2e-bucket/age.key.kms" -a -s "$T/s3/e2e-bucket/shares.age" ||
    sed 's/^/# /' "$T/prepare.err"
bg s3 $PY "$NS_ROOT/test/it/fakes/s3_fake.py" --root "$T/s3" --region eu-west-1 \
    --creds "$E2E_AKID:$E2E_SECRET:$E2E_TOKEN"
bg imds $PY "$NS_ROOT/test/it/fakes/imds_fake.py" --akid "$E2E_AKID" --secret "$E2E_SECRET" \
    --token "$E2E_TOKEN"
bg imds0 $PY "$NS_ROOT/test/it/fakes/imds_fake.py" --no-role
s3_port=$(port_of s3) imds_port=$(port_of imds) imds0_port=$(port_of imds0)
ctl_port=$(free_port)
bg ctl $PY -m http.server --bind 127.0.0.1 --directory "$T/ctl" "$ctl_port"
wait_port "$ctl_port" 20
check "fakes: S3, IMDS, IMDS without a role, control server started" \
    test -n "$s3_port" -a -n "$imds_port" -a -n "$imds0_port"

grpc_port=$(free_port)
mac=52:54:00:e2:e0:02
# A second NIC, also restricted, that only carries the test machine's gRPC client in.
grpc_nic="user,restrict=on,model=virtio-net-pci,mac=$mac,net=10.0.3.0/24"
grpc_nic+=",hostfwd=tcp:127.0.0.1:$grpc_port-10.0.3.15:50052"
cp "$E2E/nitro-cli" "$T/nitro-cli"
chmod 755 "$T/nitro-cli"
# The Sign client retries until the guest's good path serves, then releases the guest.
(
    $PY "$E2E/host.py" sign "$grpc_port" "$T" 400 >"$T/sign.tap" 2>"$T/sign.err"
    touch "$T/ctl/done"
) &
VM_BG_PIDS+=($!)
sign_pid=$!

"$VM" --script "$E2E/guest.sh" --eif "$T/eif/nsign.eif" --nsign none --timeout 420 \
    --log "$T/console.log" \
    -f "$T/eif/nsign.eif:/work/nsign.eif" -f "$T/nitro-cli:/work/nitro-cli" \
    -f "$T/kms-ca.pem:/work/kms-ca.pem" -f "$T/secrets.txt:/vm/e2e-secrets" \
    -e "E2E_GRPC_MAC=$mac" -e "E2E_NSIGN_SHA256=$(sha256sum "$NSIGN" | cut -c1-64)" \
    --fwd "10.0.2.100:80=$s3_port" --fwd "10.0.2.100:81=$imds_port" \
    --fwd "10.0.2.100:82=$imds0_port" --fwd "10.0.2.100:443=$kms_port" \
    --fwd "10.0.2.100:9=$nsm_port" --fwd "10.0.2.100:8=$ctl_port" \
    --fwd "10.0.2.100:7=$(cat "$T/nsm-reset.port")" \
    --qemu -nic --qemu "$grpc_nic" \
    2>"$T/vm.err"
rc=$?
if [ "$rc" = 125 ]; then
    fail "the VM returned a result (harness: $(head -1 "$T/vm.err"))"
    sed 's/^/# /' "$T/vm.err"
else
    check "the guest script exits 0 (status $rc)" test "$rc" = 0
fi

# The Sign results (the client stops retrying once it sees $T/stop).
touch "$T/ctl/done" "$T/stop"
for _ in $(seq 300); do kill -0 "$sign_pid" 2>/dev/null || break; sleep 0.1; done
if grep -q '^ok - over mutual TLS' "$T/sign.tap"; then
    while IFS= read -r line; do
        case $line in
        "ok - "*) ok "${line#ok - }" ;;
        "not ok - "*) fail "${line#not ok - }" ;;
        *) echo "# $line" ;;
        esac
    done <"$T/sign.tap"
else
    fail "gRPC Sign (mutual TLS, attested certificate) through the host-side ingress bridge answers"
    sed 's/^/# /' "$T/sign.tap" "$T/sign.err"
fi
check "KMS saw an attested Decrypt (Recipient with a verified NSM document)" \
    grep -q '"recipient": *true' "$T/kms.json"
check "KMS (eu-west-1) saw the enclave's SigV4 scope, Host and TLS server name for eu-west-1" \
    $PY -c 'import json,sys
recs = [json.loads(l) for l in open(sys.argv[1])]
ok = [r for r in recs if r.get("recipient") and r.get("status") == 200]
sys.exit(0 if ok and all(r["scope_region"] == "eu-west-1" and r["sni"] == r["host"] ==
                         "kms.eu-west-1.amazonaws.com" for r in ok) else 1)' "$T/kms.json"

# No secret value in the console log or in the fakes' logs and output.
leaks=$(grep -lF -f "$T/secrets.txt" "$T/console.log" "$T"/*.err "$T"/*.json "$T/sign.tap" \
    "$T/vm.err" 2>/dev/null)
check "no secret value in the console log or the fakes' logs" test -z "$leaks"
[ -z "$leaks" ] || echo "# leaked into: $leaks"
tap_done
