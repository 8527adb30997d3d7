# test/vm/e2e/guest.sh: the guest half of test/vm/test_e2e.sh (busybox sh, run by test/vm/vm.sh
# in a guest booted from the EIF's own kernel and ramdisks, so /bin/nsign is the EIF's binary).
#
# Both sides run here and talk over real AF_VSOCK, CID 1 standing in for the parent (3) and the
# enclave (16): the host side is `run-enclave` (fetch-creds, s3-get, KMS proxy, the fake
# nitro-cli, ingress bridge, pushes); the enclave side is /bin/enclave-entrypoint, started by
# the fake nitro-cli. IMDS, S3, KMS and the NSM are fakes on the test machine's loopback,
# reached only through qemu's guestfwd on 10.0.2.100 (restrict=on):
#   :80 S3   :81 IMDS   :82 IMDS without a role   :443 KMS (TLS)   :9 NSM   :8 control
# The NSM is a unix socket for nsign (NSM_DEVICE=unix:...): a bridge carries it to :9.
# Scenarios, one after the other in this boot: missing credentials, wrong KMS key, corrupted
# shares file, a shares file with a malformed key, then the good path, after which the test
# machine calls Sign through the second NIC (hostfwd to the host-side ingress bridge) and says
# "done" on the control port.
# shellcheck shell=dash disable=SC1091
. /vm/guest.sh
F=10.0.2.100

# The second NIC (hostfwd for the gRPC client): find it by the MAC the test gave it.
for n in /sys/class/net/eth*; do
    if [ "$(cat "$n/address")" = "$E2E_GRPC_MAC" ]; then
        ip link set "$(basename "$n")" up &&
            ip addr add 10.0.3.15/24 dev "$(basename "$n")" && grpc_nic=$(basename "$n")
    fi
done
check "the gRPC NIC ($E2E_GRPC_MAC) is configured" test -n "${grpc_nic:-}"
check "/bin/nsign is the EIF's binary (the one under test)" \
    test "$(sha256sum /bin/nsign | cut -c1-64)" = "$E2E_NSIGN_SHA256"

mkdir -p /tmp/nitro /tmp/run /tmp/logs
nsign bridge unix:/tmp/nsm.sock tcp:$F:9 2>/tmp/logs/nsm-bridge.log &
nsm_bridge=$!
wait_until 10 test -S /tmp/nsm.sock
check "NSM bridge unix:/tmp/nsm.sock -> guestfwd listens" test -S /tmp/nsm.sock
# s3-get speaks plain http:// only to loopback (a real endpoint is https): the fake S3 is
# reached through a loopback bridge, as a local S3-compatible store would be.
nsign bridge tcp:127.0.0.1:8000 tcp:$F:80 2>/tmp/logs/s3-bridge.log &
s3_bridge=$!
wait_until 10 sh -c 'netstat -ltn | grep -q ":8000 "'

# The host side's settings (the seed's variables; addresses overridden for CID 1) and the
# enclave side's (inherited through the fake nitro-cli, as /env would carry them).
# The parent runs in eu-west-1; the enclave's environment never has AWS_REGION (the fake
# nitro-cli drops it): its region comes only from the configuration frame on 7103.
export AWS_REGION=eu-west-1 EIF_PATH=/work/nsign.eif NITRO_CLI=/work/nitro-cli
export FAKE_NITRO_STATE=/tmp/nitro NSIGN_RUN_DIR=/tmp/run CONSOLE_FILE=/tmp/logs/console.log
export AGE_KEY_S3_URI=s3://e2e-bucket/age.key.kms KEY_SHARES_S3_URI=s3://e2e-bucket/shares.age
export AWS_ENDPOINT_URL_S3=http://127.0.0.1:8000 AWS_EC2_METADATA_SERVICE_ENDPOINT=http://$F:81
export NSIGN_HOST_KMS_PROXY_CONNECT=tcp:$F:443
export NSIGN_HOST_CREDS_ADDR=vsock:1:7100 NSIGN_HOST_AGE_KEY_ADDR=vsock:1:7101
export NSIGN_HOST_SHARES_ADDR=vsock:1:7102 NSIGN_HOST_GRPC_CONNECT=vsock:1:50051
export NSIGN_HOST_CONFIG_ADDR=vsock:1:7103 FAKE_NSM_RESET_URL=http://$F:7/
export HOST_GRPC_PORT=50052 READINESS_TIMEOUT_SECONDS=90
export HOST_EGRESS_TARGET_HOST=$F HOST_EGRESS_TARGET_PORT=8
export PARENT_CID=1 NSM_DEVICE=unix:/tmp/nsm.sock NSIGN_ENCLAVE_ATTEST=1
export AWS_CA_BUNDLE=/work/kms-ca.pem NSIGN_ENCLAVE_RECV_TIMEOUT=90 KMS_KEY_ID=alias/nsign-test
export NSIGN_HOST_WATCH_SECONDS=1
# Observability over real AF_VSOCK: logs 7110 and the audit trail 7111 to the parent, metrics on
# 7112 bridged by run-enclave to tcp:127.0.0.1:9100, readiness on tcp:127.0.0.1:9101 (defaults).
export NSIGN_ENCLAVE_LOG_ADDR=vsock:1:7110 NSIGN_ENCLAVE_AUDIT_ADDR=vsock:1:7111
export NSIGN_ENCLAVE_METRICS_ADDR=vsock:any:7112 NSIGN_HOST_METRICS_CONNECT=vsock:1:7112
export NSIGN_ENCLAVE_STATUS_INTERVAL=1 READY_MAX_AGE_SECONDS=5 ENCLAVE_LOG_FILE=/tmp/logs/enclave.log
# The enclave is a local process here: its log connections come from CID 1 (vsock loopback),
# which run-enclave otherwise refuses (only ENCLAVE_CID may write them).
export NSIGN_HOST_LOG_PEER_CID=1

# start NAME [VAR=VALUE...]: run-enclave with ENCLAVE_NAME=NAME in the background (pid in $RE);
# its log is /tmp/logs/NAME.run.log, the enclave's console /tmp/nitro/NAME.console.
start() {
    name=$1
    shift
    env ENCLAVE_NAME="$name" "$@" nsign run-enclave >/tmp/logs/"$name".run.log 2>&1 &
    RE=$!
}
# stop: SIGTERM to run-enclave, bounded wait; status in $RC (timeout when it did not exit).
stop() {
    kill -TERM "$RE" 2>/dev/null
    if wait_until 20 exited "$RE"; then
        wait "$RE"
        RC=$?
    else
        RC=timeout
        kill -9 "$RE"
    fi
}
console_has() { grep -q "$2" "/tmp/nitro/$1.console" 2>/dev/null; }
exited() { ! kill -0 "$1" 2>/dev/null; }
# settled NAME: the enclave's boot failed, or run-enclave is gone (then nothing more will come).
settled() { console_has "$1" 'boot failed' || exited "$RE"; }

# 1. Missing credentials: IMDS has no role. run-enclave stops at fetch-creds, starts no enclave.
start nocreds AWS_EC2_METADATA_SERVICE_ENDPOINT=http://$F:82
wait_until 60 exited "$RE"
wait "$RE"
rc=$?
check "missing credentials: run-enclave exits 1" test "$rc" = 1
check "missing credentials: the error names fetch-creds" \
    grep -q 'fetch-creds' /tmp/logs/nocreds.run.log
check "missing credentials: the error says no IAM role / credentials" \
    grep -qi 'role\|credential' /tmp/logs/nocreds.run.log
check "missing credentials: no enclave was started" \
    sh -c '! grep -q "^run-enclave" /tmp/nitro/calls.log 2>/dev/null'
show /tmp/logs/nocreds.run.log

# 2. Wrong KMS key: the enclave asks KMS with KeyId alias/other; KMS refuses.
start wrongkey KMS_KEY_ID=alias/other DEBUG_MODE=1 CONSOLE_FILE=/tmp/logs/wrongkey.console.log
wait_until 120 settled wrongkey
check "wrong KMS key: the enclave's boot fails at kms-decrypt" \
    console_has wrongkey 'boot failed step=kms-decrypt'
check "wrong KMS key: the console names KMS's IncorrectKeyException" \
    console_has wrongkey 'step=kms-decrypt failed.*IncorrectKeyException'
check "wrong KMS key: the payloads were received first" \
    console_has wrongkey 'step=receive-shares ok'
wait_until 10 grep -q 'boot failed' /tmp/logs/wrongkey.console.log
check "wrong KMS key, debug mode: run-enclave streams the error to CONSOLE_FILE" \
    grep -q 'boot failed step=kms-decrypt' /tmp/logs/wrongkey.console.log
wait_until 30 exited "$RE"
stop
check "wrong KMS key: run-enclave notices the enclave is gone and exits 1" test "$RC" = 1
check "wrong KMS key: run-enclave says where the console is" \
    grep -q 'no longer running.*console' /tmp/logs/wrongkey.run.log
show /tmp/nitro/wrongkey.console /tmp/logs/wrongkey.run.log

# 3. Corrupted shares file: KMS decrypts the age identity, age-decrypt rejects the shares.
start corrupt KEY_SHARES_S3_URI=s3://e2e-bucket/shares-corrupt.age DEBUG_MODE=1 \
    CONSOLE_FILE=/tmp/logs/corrupt.console.log
wait_until 120 settled corrupt
check "corrupted shares: kms-decrypt (attested) succeeds" console_has corrupt 'step=kms-decrypt ok'
check "corrupted shares: the boot fails at age-decrypt" \
    console_has corrupt 'boot failed step=age-decrypt'
check "corrupted shares: the credentials and age key were wiped anyway" \
    console_has corrupt 'step=wipe-credentials ok'
check "corrupted shares: sign-service never started" \
    sh -c '! grep -q "SERVING" /tmp/nitro/corrupt.console'
wait_until 10 grep -q 'boot failed' /tmp/logs/corrupt.console.log
check "corrupted shares, debug mode: run-enclave streams the error to CONSOLE_FILE" \
    grep -q 'boot failed step=age-decrypt' /tmp/logs/corrupt.console.log
wait_until 30 exited "$RE"
stop
check "corrupted shares: run-enclave notices the enclave is gone and exits 1" test "$RC" = 1
check "corrupted shares: run-enclave says where the console is" \
    grep -q 'no longer running.*console' /tmp/logs/corrupt.run.log
show /tmp/nitro/corrupt.console /tmp/logs/corrupt.run.log

# 4. A shares file that decrypts but holds a malformed key: load-keys fails without echoing it.
start badkey KEY_SHARES_S3_URI=s3://e2e-bucket/shares-badkey.age
wait_until 120 settled badkey
check "malformed key in the shares file: age-decrypt succeeds" \
    console_has badkey 'step=age-decrypt ok'
check "malformed key in the shares file: the boot fails at load-keys, naming the entry" \
    console_has badkey 'step=load-keys failed.*e2e-bad'
wait_until 30 exited "$RE"
stop
check "malformed key in the shares file: run-enclave notices the enclave is gone and exits 1" \
    test "$RC" = 1
check "malformed key in the shares file: run-enclave says where the console is" \
    grep -q 'no longer running.*console' /tmp/logs/badkey.run.log
show /tmp/nitro/badkey.console

# 5. A version-1 keys file (no client policy: anyone reaching the port could sign): an image
# built for production (the default) refuses it at load-keys, with one line (issue 22: a host
# rolling back to an older file gets no anonymous signing) ...
start v1refused KEY_SHARES_S3_URI=s3://e2e-bucket/shares-v1.age
wait_until 150 sh -c "grep -q 'boot failed' /tmp/nitro/v1refused.console || ! kill -0 $RE" 2>/dev/null
check "version-1 keys file, default image: refused at load-keys, naming the check"     console_has v1refused 'step=load-keys failed.*refusing the keys file: check=client-auth: it is version 1'
check "version-1 keys file, default image: never serves" sh -c '! grep -q SERVING /tmp/nitro/v1refused.console'
wait_until 30 exited "$RE"
stop
show /tmp/nitro/v1refused.console
# ... while an image built with ALLOW_ANONYMOUS_CLIENTS=1 (here: the same variable in the
# enclave's environment, as that image's /env carries it) serves it. The enclave says so in its
# status lines, and run-enclave keeps the ingress on 127.0.0.1, with a warning.
start v1 KEY_SHARES_S3_URI=s3://e2e-bucket/shares-v1.age NSIGN_ALLOW_ANONYMOUS_CLIENTS=1
wait_until 150 sh -c "grep -q SERVING /tmp/nitro/v1.console || ! kill -0 $RE" 2>/dev/null
check "version-1 keys file: the enclave serves (TLS without client authentication)" \
    console_has v1 'SERVING'
wait_until 20 grep -q 'no client policy (version 1)' /tmp/logs/v1.run.log
check "version-1 keys file: run-enclave warns that anyone could sign, and why the ingress stays" \
    grep -q 'no client policy (version 1): anyone who reached tcp:0.0.0.0:50052 could sign with every key, so the ingress stays on tcp:127.0.0.1:50052' \
    /tmp/logs/v1.run.log
check "version-1 keys file: the ingress listens on 127.0.0.1:50052 only" \
    sh -c 'netstat -ltn | grep -q "127.0.0.1:50052 " && ! netstat -ltn | grep -q "0.0.0.0:50052 "'
stop
check "version-1 keys file: run-enclave exits 0 on SIGTERM" test "$RC" = 0
show /tmp/logs/v1.run.log

# 5b. Only the enclave's CID may write the log, status and audit channels (issue 22 item 4):
# told to expect CID 16, run-enclave refuses this enclave's connections from CID 1 over real
# AF_VSOCK (as it would another enclave's or a local process's): closed unread, logged, counted;
# no status line is believed, so the ingress stays on 127.0.0.1.
start strange NSIGN_HOST_LOG_PEER_CID=16 ENCLAVE_LOG_FILE=/tmp/logs/strange.enclave.log
wait_until 150 sh -c "grep -q SERVING /tmp/nitro/strange.console || ! kill -0 $RE" 2>/dev/null
check "another CID expected: the enclave still boots" console_has strange 'SERVING'
wait_until 20 grep -q 'warn refused peer=vsock:1:' /tmp/logs/strange.run.log
check "another CID expected: run-enclave refuses the vsock peer from CID 1, naming it" \
    grep -q 'warn refused peer=vsock:1:[0-9]* on=vsock:any:7110 refused_total=1: not the enclave' \
    /tmp/logs/strange.run.log
wget -q -O /tmp/strange.metrics http://127.0.0.1:9101/metrics
check "another CID expected: refused peers counted on the readiness listener's /metrics" \
    grep -q '^nsign_host_log_refused_peers_total [1-9]' /tmp/strange.metrics
check "another CID expected: nothing reached ENCLAVE_LOG_FILE, the ingress stayed on loopback" \
    sh -c '! [ -s /tmp/logs/strange.enclave.log ] && ! grep -q "moving the ingress" /tmp/logs/strange.run.log'
stop
show /tmp/strange.metrics

# 6. The whole flow (a version-2 keys file: one pinned client); the test machine then signs
# through the ingress bridge, which run-enclave opened to all addresses once the enclave said
# that only pinned clients can sign.
start good
wait_until 150 sh -c "grep -q SERVING /tmp/nitro/good.console || ! kill -0 $RE" 2>/dev/null
check "good path: enclave-entrypoint reaches SERVING" console_has good 'SERVING'
for s in receive-credentials receive-age-key receive-shares kms-decrypt wipe-credentials \
    age-decrypt load-keys; do
    check "good path: step $s ok, with its duration" console_has good "step=$s ok ms=[0-9]"
done
check "good path: run-enclave pushed all three payloads" \
    grep -q 'step=push ok' /tmp/logs/good.run.log
wait_until 20 grep -q 'moving the ingress' /tmp/logs/good.run.log
check "good path: the enclave requires client certificates, so the ingress moves to 0.0.0.0" \
    grep -q 'refused a client without a certificate through tcp:127.0.0.1:50052): moving the ingress from tcp:127.0.0.1:50052 to tcp:0.0.0.0:50052' \
    /tmp/logs/good.run.log
wait_until 10 sh -c 'netstat -ltn | grep -q "0.0.0.0:50052 "'
check "good path: the ingress listens on 0.0.0.0:50052" sh -c 'netstat -ltn | grep -q "0.0.0.0:50052 "'
check "good path: PCR16 measured (ciphertexts and configuration) and locked before decrypting" \
    console_has good "step=measure ok .*inputs=age-key,shares,config locked=1"
check "good path: the configuration frame set the region eu-west-1 (the image has none)" \
    console_has good "step=configure ok .*region=eu-west-1 region_from=config document=yes"
# Egress: the enclave's tcp:127.0.0.1:8080 -> vsock:1:8080 -> run-enclave's egress bridge ->
# HOST_EGRESS_TARGET (the control server on the test machine).
wget -q -O /tmp/egress.txt http://127.0.0.1:8080/egress.txt 2>/tmp/logs/egress.err
check "good path: egress from the enclave reaches the host's target through both bridges" \
    grep -q 'nsign-e2e-egress' /tmp/egress.txt
show /tmp/logs/egress.err
wait_until 20 sh -c 'wget -q -O /tmp/ready.txt http://127.0.0.1:9101/ready'
check "good path: readiness 200 on tcp:127.0.0.1:9101 (SERVING, recent status over vsock)" \
    grep -q '^ready state=SERVING' /tmp/ready.txt
check "good path: enclave log lines on run-enclave's stderr, prefixed 'enclave: '" \
    grep -q '^enclave: nsign enclave-entrypoint: info SERVING' /tmp/logs/good.run.log
check "good path: and in ENCLAVE_LOG_FILE" grep -q 'step=load-keys ok' /tmp/logs/enclave.log
wget -q -O /tmp/metrics.txt http://127.0.0.1:9100/metrics 2>/tmp/logs/metrics.err
check "good path: metrics from the enclave (vsock 7112) on tcp:127.0.0.1:9100" \
    grep -q '^nsign_boot_step_duration_seconds{step="kms-decrypt"} ' /tmp/metrics.txt
echo "# serving: waiting for the test machine's Sign calls"
console_has good SERVING && wait_until 200 wget -q -O /tmp/done http://$F:8/done
check "the test machine finished its Sign calls" test -f /tmp/done
stop
check "good path: run-enclave exits 0 on SIGTERM" test "$RC" = 0
# SIGTERM drains (NSIGN_HOST_DRAIN_SECONDS=30): the enclave, asked over POST /drain, exits by
# itself; terminate-enclave is for an enclave that does not (as in test_run_enclave.sh).
check "good path: the enclave is gone" sh -c \
    '! [ -f /tmp/nitro/good.pid ] || ! kill -0 "$(cat /tmp/nitro/good.pid)" 2>/dev/null'
check "good path: the enclave drained and exited, or terminate-enclave was called by name" sh -c \
    "grep -q 'drained: the enclave finished its calls and exited' /tmp/logs/good.run.log ||
     grep -q '^terminate-enclave --enclave-name good' /tmp/nitro/calls.log"
check "good path: the audit trail reached the parent with one entry per Sign and a final head" \
    sh -c 'grep -q "\"type\":\"entry\"" /tmp/run/good.audit.jsonl &&
        tail -1 /tmp/run/good.audit.jsonl | grep -q "\"final\":true"'
check "good path: audit-verify accepts the trail" \
    nsign audit-verify /tmp/run/good.audit.jsonl --no-attestation
show /tmp/run/good.audit.jsonl
show /tmp/nitro/good.console /tmp/logs/good.run.log
kill "$nsm_bridge" "$s3_bridge" 2>/dev/null

# No secret in any file of the guest (logs, state, run dir, the EIF's tree). /vm holds the
# harness's own files, among them the list of secret values this grep looks for.
check "the secret search works (it finds the list of secrets itself)" \
    grep -qF -f /vm/e2e-secrets /vm/e2e-secrets
leaks=$(grep -rlsF -f /vm/e2e-secrets /tmp /work /bin /root /etc /run /sbin 2>/dev/null)
check "no secret value in any file of the guest" test -z "$leaks"
[ -z "$leaks" ] || echo "# leaked into: $leaks"
show /tmp/logs/nsm-bridge.log
tap_done
