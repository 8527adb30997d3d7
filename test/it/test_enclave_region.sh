#!/usr/bin/env bash
# test_enclave_region: the whole flow in eu-west-1, for the EIFs of both layouts. The parent runs
# in eu-west-1 (AWS_REGION, its KMS proxy); the enclave's environment is its image's (the fake
# nitro-cli reads the `env` file out of the EIF and drops the parent's AWS_REGION, as Nitro
# does), so the region can only come from the configuration frame run-enclave pushes on 7103.
# The KMS fake runs in eu-west-1 and checks the SigV4 credential scope, the Host header and the
# TLS server name (SNI): the enclave must sign for eu-west-1 and name kms.eu-west-1.amazonaws.com.
# Without the configuration frame the same image falls back to us-east-1 and KMS refuses it.
set -uo pipefail
. "$(dirname "$0")/../lib/tap.sh"
export NSIGN=${NSIGN:?} PY=${PY:-/usr/bin/python3} NS_ROOT=${NS_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
T=$(mktemp -d /tmp/ns-region.XXXXXX)
FLOW_REGION=eu-west-1
. "$NS_ROOT/test/lib/enclave_flow.sh"
trap flow_cleanup EXIT

flow_begin "the flow in eu-west-1"

# The two images: nsign layout (nsign is PID 1; /env in the app ramdisk) and nitro layout (AWS's
# init, rootfs/ + cmd + env). The fake nitro-cli does not boot the kernel, so any file will do.
head -c 4096 /dev/urandom >"$T/kernel"
mkdir -p "$T/blobs"
cp "$T/kernel" "$T/blobs/bzImage"
printf 'reboot=k panic=30 pci=off nomodules console=ttyS0\n' >"$T/blobs/cmdline"
printf 'aws-init' >"$T/blobs/init"
printf 'nsm-module' >"$T/blobs/nsm.ko"
KERNEL=$T/kernel bash "$NS_ROOT/eif/build.sh" "$T/eif-nsign" "$NSIGN" >/dev/null 2>"$T/eif1.err"
LAYOUT=nitro NITRO_BLOBS=$T/blobs KERNEL=$T/blobs/bzImage bash "$NS_ROOT/eif/build.sh" "$T/eif-nitro" "$NSIGN" \
    >/dev/null 2>"$T/eif2.err"
check "both layouts build (nsign, nitro)" bash -c \
    "grep -q layout=nsign '$T/eif1.err' && grep -q layout=nitro '$T/eif2.err'"
check "neither image sets AWS_REGION" bash -c \
    "! (cd '$T' && cpio -i --quiet --to-stdout env <eif-nsign/app.cpio; cpio -i --quiet --to-stdout env <eif-nitro/app.cpio) | grep -q AWS_REGION"

# dry run: the configuration is pushed first, with the parent's region.
"$NSIGN" run-enclave --dry-run >"$T/dry" 2>&1
check "dry run: the configuration frame first, region eu-west-1" bash -c \
    "grep -m1 'vsock-push' '$T/dry' | grep -q 'enclave-7103.sock - .*{\"region\":\"eu-west-1\"}'"
check "dry run: the KMS proxy forwards to kms.eu-west-1" grep -q 'tcp:127.0.0.1:' "$T/dry"

# kms_saw FIELD VALUE: the attested Decrypt request carried FIELD=VALUE in the KMS fake's log.
kms_saw() {
    "$PY" - "$T/kms.log" "$1" "$2" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
dec = [r for r in recs if r.get("target") == "TrentService.Decrypt"]
sys.exit(0 if dec and all(str(r.get(sys.argv[2])) == sys.argv[3] for r in dec) else 1)
PY
}

for layout in nsign nitro; do
    export EIF_PATH=$T/eif-$layout/nsign.eif
    : >"$T/kms.log"
    flow_start_run "$layout"
    if flow_wait_serving 120; then ok "$layout layout, eu-west-1: the enclave reaches SERVING"; else
        fail "$layout layout, eu-west-1: the enclave reaches SERVING"
        sed 's/^/# /' "$T/$layout.log" "$CONSOLE" | tail -30; fi
    check "$layout layout: the enclave's region came from the configuration frame" \
        grep -q 'step=configure ok .*region=eu-west-1 region_from=config document=yes' "$CONSOLE"
    check "$layout layout: KMS saw SigV4 scoped to eu-west-1" kms_saw scope_region eu-west-1
    check "$layout layout: KMS saw Host kms.eu-west-1.amazonaws.com" \
        kms_saw host kms.eu-west-1.amazonaws.com
    check "$layout layout: KMS saw the TLS server name kms.eu-west-1.amazonaws.com" \
        kms_saw sni kms.eu-west-1.amazonaws.com
    check "$layout layout: Decrypt succeeded, attested" kms_saw status 200
    check "$layout layout: Sign verifies against the shares file" \
        "$PY" "$NS_ROOT/test/lib/enclave_demo.py" sign-verify "127.0.0.1:$GRPC_PORT" \
        "$T/service_key_shares.json"
    flow_stop_run
done

# Without the frame (a host that does not send it), the same image runs in us-east-1: the
# eu-west-1 endpoint refuses the server name it asks for, and the boot stops at kms-decrypt.
export EIF_PATH=$T/eif-nitro/nsign.eif
NSIGN_HOST_CONFIG_ADDR=none flow_start_run noconfig
flow_wait_serving 60; r=$?
check "no configuration frame: the enclave does not serve" test $r = 1
check "no configuration frame: the enclave falls back to us-east-1, and says so" \
    grep -q 'region=us-east-1 region_from=default document=none' "$CONSOLE"
check "no configuration frame: KMS in eu-west-1 refuses it (kms-decrypt fails on TLS)" \
    grep -q 'step=kms-decrypt failed.*kms.us-east-1.amazonaws.com' "$CONSOLE"
flow_stop_run
tap_done
