#!/usr/bin/env bash
# test_preflight: `run-enclave --preflight`. On this machine (no Nitro) it fails naming
# /dev/nitro_enclaves and the fix; against faked prerequisites it passes: a fake host tree
# (NSIGN_PREFLIGHT_ROOT: /dev/nitro_enclaves as a character device, the driver's sysfs with its
# CPU pool, free hugepages, allocator.yaml), the fake nitro-cli (--version), the IMDS, S3 and KMS
# fakes of test/it/fakes (S3 HeadObject and KMS GetKeyPolicy SigV4-checked as the real services
# do) and a real EIF whose PCR0 the key policy names. Then each prerequisite broken alone fails
# its own check, with the fix, and nothing else.
set -uo pipefail
. "$(dirname "$0")/../lib/tap.sh"
export NSIGN=${NSIGN:?} PY=${PY:-/usr/bin/python3} NS_ROOT=${NS_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
T=$(mktemp -d /tmp/ns-pf.XXXXXX)
. "$NS_ROOT/test/lib/enclave_flow.sh"
trap flow_cleanup EXIT

# ---- this machine: no Nitro device; nothing reaches a real AWS endpoint ----
closed=$(free_port)
(
    unset NSIGN_PREFLIGHT_ROOT
    AGE_KEY_S3_URI=s3://b/a KEY_SHARES_S3_URI=s3://b/s NITRO_CLI=/nonexistent/nitro-cli \
        AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:$closed AWS_MAX_ATTEMPTS=1 \
        NSIGN_HOST_GRPC_LISTEN=tcp:127.0.0.1:$(free_port) \
        NSIGN_HOST_METRICS_LISTEN=tcp:127.0.0.1:$(free_port) \
        NSIGN_HOST_READY_LISTEN=tcp:127.0.0.1:$(free_port) \
        "$NSIGN" run-enclave --preflight >"$T/here.out" 2>"$T/here.err"
    echo $? >"$T/here.rc"
)
check "this machine: exit 1" test "$(cat "$T/here.rc")" = 1 || sed 's/^/# /' "$T/here.out" "$T/here.err"
check "this machine: FAIL naming /dev/nitro_enclaves and the fix" \
    grep -q "^FAIL  device      /dev/nitro_enclaves: not found; fix: .*--enclave-options 'Enabled=true'.*modprobe nitro_enclaves" "$T/here.out"
check "this machine: nitro-cli missing says what to install" \
    grep -q '^FAIL  nitro-cli .*install the AWS Nitro Enclaves CLI' "$T/here.out"
check "this machine: vsock listeners are not bound without the Nitro device (skipped, never passed)" \
    grep -q '^skip  port        KMS proxy vsock:any:5000: not checked' "$T/here.out"
check "this machine: S3 and KMS skipped without credentials, the last line counts the failures" bash -c \
    "grep -q '^skip  s3 .*no credentials' '$T/here.out' && tail -1 '$T/here.out' | grep -q '^preflight: [0-9]* checks FAILED'"
"$NSIGN" run-enclave --preflight --dry-run >/dev/null 2>&1; rc=$?
check "--preflight with --dry-run: usage error (exit 2)" test $rc = 2
check "--help documents --preflight and NSIGN_PREFLIGHT_ROOT" bash -c \
    "'$NSIGN' run-enclave --help | grep -q -- '--preflight' && '$NSIGN' run-enclave --help | grep -q NSIGN_PREFLIGHT_ROOT"

# ---- faked prerequisites ----
. "$NS_ROOT/test/lib/preflight_root.sh"
# A real EIF and its PCR0 as `eif describe` prints it; a key policy naming it.
pf_real_eif "$T/pf.eif" 2>"$T/eif.err"
PCR0=$PF_PCR0
check "a real EIF to check" test -n "$PCR0" || cat "$T/eif.err"
KEY_ARN=arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab
policy() { pf_policy "$@"; }
policy "$PCR0" >"$T/policy.json"
# shellcheck disable=SC2034 # read by enclave_flow.sh
FLOW_KMS_ARGS="--key-policy $T/policy.json"
flow_begin "run-enclave --preflight against faked prerequisites"

R=$T/root
if ! pf_fake_root "$R"; then
    skip "faked prerequisites" "mknod (a character device for /dev/nitro_enclaves) is not permitted here"
    tap_done; exit
fi
export NSIGN_PREFLIGHT_ROOT=$R EIF_PATH=$T/pf.eif KMS_KEY_ID=$KEY_ARN
export AWS_ENDPOINT_URL_KMS=https://localhost:$KMS_PORT AWS_MAX_ATTEMPTS=1
# Every host listener on a free port or a unix socket of its own (flow_env's).
NSIGN_HOST_GRPC_LISTEN=tcp:127.0.0.1:$(free_port)
export NSIGN_HOST_GRPC_LISTEN
pf() {  # pf NAME [VAR=VALUE...]: --preflight with these changes; T/NAME.out, T/NAME.rc
    local name=$1; shift
    env "$@" "$NSIGN" run-enclave --preflight >"$T/$name.out" 2>"$T/$name.err"
    echo $? >"$T/$name.rc"
}
only_fail() {  # only_fail NAME CHECK REGEX: exit 1, CHECK fails matching REGEX, nothing else fails
    [ "$(cat "$T/$1.rc")" = 1 ] && grep -q "^FAIL  $2 .*$3" "$T/$1.out" &&
        [ "$(grep -c '^FAIL' "$T/$1.out")" = 1 ] || { sed 's/^/# /' "$T/$1.out" "$T/$1.err"; return 1; }
}

pf good
check "faked prerequisites: exit 0" test "$(cat "$T/good.rc")" = 0 || sed 's/^/# /' "$T/good.out" "$T/good.err"
check "faked prerequisites: every check ok, none skipped" bash -c \
    "! grep -qv '^ok  ' <(head -n -1 '$T/good.out') && tail -1 '$T/good.out' | grep -q 'every check passed'"
for c in eif device driver allocator cpu-pool hugepages memory nitro-cli port imds s3 kms-policy; do
    grep -q "^ok    $c " "$T/good.out" || { fail "faked prerequisites: check $c ran"; continue; }
done
ok "faked prerequisites: each of the twelve checks reported"
check "eif: the PCR0 equals eif describe's" grep -q "^ok    eif .*pcr0=$PCR0" "$T/good.out"
check "imds: names the instance role" grep -q '^ok    imds .*instance role ' "$T/good.out"
check "s3: both objects readable through a SigV4-checked HeadObject" bash -c \
    "[ \$(grep -c '^ok    s3 ' '$T/good.out') = 2 ] && [ \$(grep -c 'verified HEAD /demo-bucket/enclave/.* 200' '$T/s3.log') -ge 2 ]"
check "kms-policy: GetKeyPolicy (SigV4-checked) names the EIF's PCR0" bash -c \
    "grep -q '^ok    kms-policy  the key policy of $KEY_ARN names PCR0 $PCR0' '$T/good.out' && grep -q '\"target\": \"TrentService.GetKeyPolicy\", .*\"status\": 200' '$T/kms.log'"
check "port: each host listener checked" bash -c "[ \$(grep -c '^ok    port ' '$T/good.out') -ge 6 ]"

# ---- each prerequisite broken alone ----
mv "$R/dev/nitro_enclaves" "$R/dev/gone"
pf nodev
mv "$R/dev/gone" "$R/dev/nitro_enclaves"
# Without the device the vsock listeners are skipped; here every listener is a unix socket or tcp.
check "no /dev/nitro_enclaves: FAIL with the fix" only_fail nodev device "/dev/nitro_enclaves: not found; fix: "
touch "$T/plainfile"
mv "$R/dev/nitro_enclaves" "$R/dev/chr" && cp "$T/plainfile" "$R/dev/nitro_enclaves"
pf notchr
rm "$R/dev/nitro_enclaves" && mv "$R/dev/chr" "$R/dev/nitro_enclaves"
check "/dev/nitro_enclaves not a character device: FAIL" only_fail notchr device "not a character device"
mv "$R/sys/module/nitro_enclaves" "$R/sys/module/ne.off"
pf nodriver
mv "$R/sys/module/ne.off" "$R/sys/module/nitro_enclaves"
check "driver not loaded (no CPU pool either): FAIL naming modprobe and the allocator" bash -c \
    "grep -q '^FAIL  driver .*modprobe nitro_enclaves' '$T/nodriver.out' && grep -q '^FAIL  cpu-pool .*nitro-enclaves-allocator.service' '$T/nodriver.out'"
pf bigmem MEMORY_MIB=2048
check "MEMORY_MIB above allocator.yaml: allocator and hugepages FAIL, naming allocator.yaml" bash -c \
    "grep -q '^FAIL  allocator   allocator.yaml reserves memory_mib=1024 and 2 CPUs, the enclave needs MEMORY_MIB=2048.*fix: set memory_mib: 2048' '$T/bigmem.out' && grep -q '^FAIL  hugepages .*MEMORY_MIB=2048' '$T/bigmem.out' && [ \$(grep -c '^FAIL' '$T/bigmem.out') = 2 ]" ||
    sed 's/^/# /' "$T/bigmem.out"
pf cpus CPU_COUNT=4
check "CPU_COUNT above the pool: allocator and cpu-pool FAIL" bash -c \
    "grep -q '^FAIL  allocator .*CPU_COUNT=4' '$T/cpus.out' && grep -q '^FAIL  cpu-pool .*has 2 CPUs' '$T/cpus.out' && [ \$(grep -c '^FAIL' '$T/cpus.out') = 2 ]"
need=$(( ($(stat -c %s "$T/pf.eif") * 4 + 1048575) / 1048576 ))
pf small MEMORY_MIB=$((need - 1))
check "MEMORY_MIB below 4x the EIF: FAIL naming E26 and the minimum" \
    only_fail small memory "MEMORY_MIB=$((need - 1)) is below 4x the EIF size ($need MiB; nitro-cli refuses it with E26); fix: set MEMORY_MIB=$need"
pf oldcli FAKE_NITRO_VERSION=1.1.0
check "an old nitro-cli: FAIL" only_fail oldcli nitro-cli "version 1.1.0, older than 1.2.0"
"$PY" -c 'import socket,sys,time
s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(("127.0.0.1",int(sys.argv[1])));s.listen(1)
open(sys.argv[2],"w").close();time.sleep(60)' "$READY_PORT" "$T/busy.ready" & busy=$!
FLOW_PIDS+=("$busy")
flow_wait_file "$T/busy.ready" 10 || sleep 1
pf busy
kill "$busy" 2>/dev/null
check "a port in use: FAIL naming the listener and its variable" \
    only_fail busy port "readiness tcp:127.0.0.1:$READY_PORT is in use .*NSIGN_HOST_READY_LISTEN"
pf nos3 KEY_SHARES_S3_URI=s3://demo-bucket/enclave/missing.age
check "an S3 object missing: FAIL with S3's 404" only_fail nos3 s3 "KEY_SHARES_S3_URI: s3://demo-bucket/enclave/missing.age: 404"
pf noimds AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:$closed
check "IMDS unreachable: FAIL, and S3/KMS skipped (never passed) without credentials" bash -c \
    "grep -q '^FAIL  imds ' '$T/noimds.out' && [ \$(grep -c '^skip  s3 .*no credentials' '$T/noimds.out') = 2 ] && grep -q '^skip  kms-policy  not checked: no credentials' '$T/noimds.out' && [ \"\$(cat '$T/noimds.rc')\" = 1 ]"
policy "$(printf '%096d' 0 | tr 0 a)" >"$T/policy.json"
pf wrongpcr
check "the key policy names another PCR0: FAIL naming this EIF's PCR0" \
    only_fail wrongpcr kms-policy "the key policy of $KEY_ARN does not name this EIF's PCR0 $PCR0"
# The policy `nsign kms-policy` writes (when this build has the applet): during a rolling
# upgrade it lists both EIFs' PCRs; one written for another EIF only does not admit this one.
if "$NSIGN" kms-policy --help >/dev/null 2>&1; then
    pf_real_eif "$T/other.eif" 2>>"$T/eif.err"
    kp() { "$NSIGN" kms-policy --role-arn arn:aws:iam::111122223333:role/nsign-host \
        --admin-arn arn:aws:iam::111122223333:role/nsign-admin -o "$T/policy.json" "$@"; }
    kp --eif "$T/other.eif" --eif "$T/pf.eif" 2>"$T/kp.err"
    pf kp2
    check "nsign kms-policy with both EIFs (a rolling upgrade): kms-policy ok" bash -c \
        "grep -q '^ok    kms-policy  the key policy of $KEY_ARN names PCR0 $PCR0' '$T/kp2.out' && [ \"\$(cat '$T/kp2.rc')\" = 0 ]" ||
        sed 's/^/# /' "$T/kp2.out" "$T/kp.err"
    kp --eif "$T/other.eif" 2>"$T/kp.err"
    pf kp1
    check "nsign kms-policy for another EIF only: kms-policy FAIL" \
        only_fail kp1 kms-policy "does not name this EIF's PCR0 $PCR0"
else
    skip "the policies nsign kms-policy writes" "this build has no kms-policy applet"
fi
policy "$PCR0" >"$T/policy.json"
pf alias KMS_KEY_ID=alias/nsign-test
check "KMS_KEY_ID an alias: DescribeKey names the key, whose policy is then checked" bash -c \
    "grep -q '^ok    kms-policy  the key policy of $KEY_ARN names PCR0 $PCR0' '$T/alias.out' && [ \"\$(cat '$T/alias.rc')\" = 0 ] && grep -q '\"target\": \"TrentService.DescribeKey\", .*\"key_id\": \"alias/nsign-test\", \"status\": 200' '$T/kms.log'" ||
    sed 's/^/# /' "$T/alias.out"
pf noalias KMS_KEY_ID=alias/none
check "KMS_KEY_ID an unknown alias: FAIL naming KMS_KEY_ID" only_fail noalias kms-policy "alias/none not found.*check KMS_KEY_ID"
pf nokey KMS_KEY_ID=
check "KMS_KEY_ID unset: kms-policy skipped saying so, exit 0" bash -c \
    "grep -q '^skip  kms-policy  not checked: KMS_KEY_ID is not set' '$T/nokey.out' && [ \"\$(cat '$T/nokey.rc')\" = 0 ]"
# A role without kms:GetKeyPolicy: a second KMS fake that denies it.
KMS_FAKE_AKID=$FLOW_AKID KMS_FAKE_SECRET=$FLOW_SECRET KMS_FAKE_TOKEN=$FLOW_TOKEN \
    "$PY" "$FAKES/kms_fake.py" --port-file "$T/kms2.port" --tls-cert "$T/cert.pem" \
    --tls-key "$T/key.pem" --region "$FLOW_REGION" --host localhost --deny-get-key-policy \
    --log "$T/kms2.log" 2>"$T/kms2.err" & FLOW_PIDS+=($!)
flow_wait_file "$T/kms2.port" 20
pf denied "AWS_ENDPOINT_URL_KMS=https://localhost:$(cat "$T/kms2.port")"
check "kms:GetKeyPolicy denied: skipped with a note naming PCR0, exit 0" bash -c \
    "grep -q '^skip  kms-policy  not checked: the instance role may not read the key (KMS denied GetKeyPolicy.*$PCR0' '$T/denied.out' && [ \"\$(cat '$T/denied.rc')\" = 0 ] && grep -q 'AccessDeniedException' '$T/kms2.log'"
check "no key material or credentials on the preflight's output" bash -c \
    "! grep -qF -e '$FLOW_SECRET' -e '$FLOW_TOKEN' '$T'/*.out '$T'/*.err"
tap_done
