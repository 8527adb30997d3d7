# enclave_flow.sh: the whole enclave flow on one machine, shared by test/demo.sh and
# test/it/test_run_enclave.sh. Source it with T (a scratch dir), NSIGN, PY and NS_ROOT set.
#
#   flow_setup     a new user's material (age identity, service key shares, KMS ciphertext,
#                  age ciphertext) and the fakes: IMDS, S3 (TLS, SigV4-checking), KMS (TLS,
#                  attestation required), NSM (unix socket); the fakes come from test/it/fakes
#   flow_env       exports what run-enclave needs: the seed's variables, fake endpoints, the fake
#                  nitro-cli (which starts `nsign enclave-entrypoint` locally) and every address
#                  as a unix socket or 127.0.0.1 port instead of vsock
#   flow_wait_serving SECONDS   until the enclave's console says SERVING
#   flow_begin WHAT  flow_have_fakes, flow_setup and flow_env for a TAP test (CONSOLE is the
#                  enclave's console); without the fakes it skips WHAT, on a setup failure it
#                  fails, and either way ends the test
#   flow_expect_pcr16 AGE_CT SHARES_CT [CONFIG_TEXT]   prints the PCR16 an enclave measures from
#                  these bytes, computed independently of nsign (Python hashlib)
#   flow_flip_byte FILE   flips one bit of the 20th byte from FILE's end, in place
#   flow_cleanup   the EXIT trap: kills RUNPID (run-enclave), terminates fake enclaves, stops the
#                  fakes and removes T
# Background processes are appended to FLOW_PIDS; flow_cleanup kills them.
FLOW_PIDS=()
RUNPID=
flow_cleanup() {
    [ -n "$RUNPID" ] && kill -9 "$RUNPID" 2>/dev/null
    [ -n "${FAKE_NITRO_STATE:-}" ] && "$NITRO_CLI" terminate-enclave --all >/dev/null 2>&1
    for p in "${FLOW_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$T"
}
FLOW_AKID=ASIAIMDSFAKE0000001
FLOW_SECRET='imds/fake+secret/key/0123456789abcdefABCDEF'
FLOW_TOKEN='IQoJb3JpZ2luX2VjEFAKE//////////wEaCXVzLWVhc3QtMSJHMEUCIQ=='
FLOW_NAME=nsign-demo
FLOW_REGION=${FLOW_REGION:-us-east-1}  # the parent's AWS_REGION, and the fakes' region
FAKES=$NS_ROOT/test/it/fakes

flow_free_port() { "$PY" -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# flow_wait_file PATH SECONDS
flow_wait_file() {
    local i=0
    while [ ! -s "$1" ] && [ $i -lt $(( $2 * 20 )) ]; do sleep 0.05; i=$((i + 1)); done
    [ -s "$1" ]
}

flow_expect_pcr16() {
    "$PY" - "$@" <<'PY'
import hashlib, sys
p = bytes(48)
ins = [open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()]
if len(sys.argv) > 3:
    ins.append(sys.argv[3].encode())
for b in ins:
    p = hashlib.sha384(p + hashlib.sha384(b).digest()).digest()
print(p.hex())
PY
}

flow_flip_byte() {
    "$PY" -c 'import sys;p=sys.argv[1];b=bytearray(open(p,"rb").read());b[-20]^=1;open(p,"wb").write(b)' "$1"
}

flow_have_fakes() {
    for f in imds_fake.py s3_fake.py kms_fake.py nsm_fake.py; do
        [ -f "$FAKES/$f" ] || { echo "missing $FAKES/$f"; return 1; }
    done
    "$PY" -c 'import botocore, cryptography, grpc' 2>/dev/null || {
        echo "python3-botocore, python3-cryptography and python3-grpcio are needed"; return 1; }
    command -v age >/dev/null && command -v age-keygen >/dev/null || { echo "age is needed"; return 1; }
    command -v protoc >/dev/null || { echo "protoc is needed"; return 1; }
}

flow_setup() {
    local h=$NS_ROOT/test/lib/enclave_demo.py
    mkdir -p "$T/s3/demo-bucket/enclave" "$T/nitro" "$T/run" "$T/nsmca" || return 1
    "$PY" "$h" tls "$T" || return 1
    # The user's secrets: an age identity and the service's signing keys.
    age-keygen -o "$T/age-private.key" 2>/dev/null || return 1
    "$PY" "$h" keys "$T/service_key_shares.json" || return 1
    age -r "$(age-keygen -y "$T/age-private.key")" -o \
        "$T/s3/demo-bucket/enclave/service_key_shares.json.age" "$T/service_key_shares.json" ||
        return 1
    # Fakes.
    # PCR0 of a production enclave (not all zero: the enclave refuses a debug-mode one).
    FLOW_PCR0=$("$PY" -c 'import hashlib;print(hashlib.sha384(b"nsign flow image").hexdigest())')
    "$PY" "$FAKES/nsm_fake.py" --socket "$T/nsm.sock" --ca-dir "$T/nsmca" --pcr0 "$FLOW_PCR0" \
        --reset-port-file "$T/nsm-reset.port" --log "$T/nsm.log" 2>"$T/nsm.err" & FLOW_PIDS+=($!)
    flow_wait_file "$T/nsm-reset.port" 20 || { echo "NSM fake did not start"; return 1; }
    "$PY" "$FAKES/imds_fake.py" --akid "$FLOW_AKID" --secret "$FLOW_SECRET" \
        --token "$FLOW_TOKEN" >"$T/imds.port" 2>"$T/imds.log" & FLOW_PIDS+=($!)
    # FLOW_KMS_ARGS: extra options (the emulator test's --accept-emulator-attestation).
    FLOW_KMS_KEYSEED=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
    # shellcheck disable=SC2086 # FLOW_KMS_ARGS is a list of options
    KMS_FAKE_AKID=$FLOW_AKID KMS_FAKE_SECRET=$FLOW_SECRET KMS_FAKE_TOKEN=$FLOW_TOKEN \
        KMS_FAKE_KEYSEED=$FLOW_KMS_KEYSEED \
        "$PY" "$FAKES/kms_fake.py" --port-file "$T/kms.port" --tls-cert "$T/cert.pem" \
        --tls-key "$T/key.pem" --nsm-root "$T/nsmca/root.pem" --require-attestation \
        --region "$FLOW_REGION" --host "kms.$FLOW_REGION.amazonaws.com" --host localhost \
        ${FLOW_KMS_ARGS:-} --log "$T/kms.log" 2>"$T/kms.err" & FLOW_PIDS+=($!)
    "$PY" "$FAKES/s3_fake.py" --root "$T/s3" --creds "$FLOW_AKID:$FLOW_SECRET:$FLOW_TOKEN" \
        --region "$FLOW_REGION" \
        --tls "$T/cert.pem" "$T/key.pem" >"$T/s3.port" 2>"$T/s3.log" & FLOW_PIDS+=($!)
    flow_wait_file "$T/imds.port" 20 && flow_wait_file "$T/kms.port" 20 &&
        flow_wait_file "$T/s3.port" 20 || { echo "a fake did not start"; return 1; }
    IMDS_PORT=$(head -1 "$T/imds.port") KMS_PORT=$(head -1 "$T/kms.port")
    S3_PORT=$(head -1 "$T/s3.port")
    # The age identity, encrypted under the KMS key (what the user uploads next to the shares).
    DEMO_AKID=$FLOW_AKID DEMO_SECRET=$FLOW_SECRET DEMO_TOKEN=$FLOW_TOKEN DEMO_REGION=$FLOW_REGION \
        "$PY" "$h" kms-encrypt \
        "$KMS_PORT" "$T/ca.pem" "$T/age-private.key" \
        "$T/s3/demo-bucket/enclave/age-private.key.enc" || return 1
}

flow_env() {
    unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_ENDPOINT_URL \
        AWS_ENDPOINT_URL_KMS AWS_PROFILE
    export NSIGN NS_ROOT
    # The seed's variables.
    export AGE_KEY_S3_URI=s3://demo-bucket/enclave/age-private.key.enc
    export KEY_SHARES_S3_URI=s3://demo-bucket/enclave/service_key_shares.json.age
    export AWS_REGION=$FLOW_REGION ENCLAVE_NAME=$FLOW_NAME ENCLAVE_CID=16 CPU_COUNT=2 MEMORY_MIB=512
    export READINESS_TIMEOUT_SECONDS=60
    # An EIF stand-in (the fake nitro-cli checks it exists and fits 4x in MEMORY_MIB).
    head -c 4096 /dev/zero >"$T/nsign-demo.eif"
    export EIF_PATH=$T/nsign-demo.eif
    export NITRO_CLI=$NS_ROOT/test/it/fake_nitro_cli.py FAKE_NITRO_STATE=$T/nitro
    export NSIGN_RUN_DIR=$T/run NSIGN_HOST_WATCH_SECONDS=1
    # Fake AWS endpoints and the test CA (host side: fetch-creds, s3-get; enclave: KMS TLS).
    export AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:$IMDS_PORT
    export AWS_ENDPOINT_URL_S3=https://localhost:$S3_PORT AWS_CA_BUNDLE=$T/ca.pem
    export NSM_DEVICE=unix:$T/nsm.sock
    # Every enclave the stand-in nitro-cli starts boots with a fresh NSM (PCR16 unlocked).
    export FAKE_NSM_RESET_URL=http://127.0.0.1:$(head -1 "$T/nsm-reset.port")/
    # vsock replaced by unix sockets: host side ...
    GRPC_PORT=$(flow_free_port)
    export NSIGN_HOST_CREDS_ADDR=unix:$T/enclave-7100.sock
    export NSIGN_HOST_AGE_KEY_ADDR=unix:$T/enclave-7101.sock
    export NSIGN_HOST_SHARES_ADDR=unix:$T/enclave-7102.sock
    export NSIGN_HOST_CONFIG_ADDR=unix:$T/enclave-7103.sock
    export NSIGN_HOST_GRPC_LISTEN=tcp:127.0.0.1:$GRPC_PORT
    export NSIGN_HOST_GRPC_CONNECT=unix:$T/enclave-50051.sock
    export NSIGN_HOST_EGRESS_LISTEN=unix:$T/parent-8080.sock
    export NSIGN_HOST_EGRESS_CONNECT=tcp:127.0.0.1:$(flow_free_port)
    export NSIGN_HOST_KMS_PROXY_LISTEN=unix:$T/parent-5000.sock
    export NSIGN_HOST_KMS_PROXY_CONNECT=tcp:127.0.0.1:$KMS_PORT
    # ... and enclave side (inherited through the fake nitro-cli).
    export NSIGN_ENCLAVE_CREDS_ADDR=$NSIGN_HOST_CREDS_ADDR
    export NSIGN_ENCLAVE_AGE_KEY_ADDR=$NSIGN_HOST_AGE_KEY_ADDR
    export NSIGN_ENCLAVE_SHARES_ADDR=$NSIGN_HOST_SHARES_ADDR
    export NSIGN_ENCLAVE_CONFIG_ADDR=$NSIGN_HOST_CONFIG_ADDR
    export NSIGN_ENCLAVE_INGRESS_ADDR=$NSIGN_HOST_GRPC_CONNECT
    export NSIGN_ENCLAVE_SIGN_ADDR=tcp:127.0.0.1:$(flow_free_port)
    export NSIGN_ENCLAVE_EGRESS_LISTEN_ADDR=tcp:127.0.0.1:$(flow_free_port)
    export NSIGN_ENCLAVE_EGRESS_CONNECT_ADDR=$NSIGN_HOST_EGRESS_LISTEN
    export NSIGN_ENCLAVE_KMS_PROXY_ADDR=$NSIGN_HOST_KMS_PROXY_LISTEN
    export NSIGN_ENCLAVE_HEARTBEAT_ADDR=unix:$T/parent-9000.sock
    export NSIGN_ENCLAVE_RECV_TIMEOUT=120 NSIGN_ENCLAVE_SIGN_THREADS=2
    # Observability: logs, audit trail and metrics over unix sockets in place of vsock
    # 7110/7111/7112; the host's metrics bridge and readiness check on free loopback ports.
    METRICS_PORT=$(flow_free_port) READY_PORT=$(flow_free_port)
    export NSIGN_HOST_LOG_LISTEN=unix:$T/parent-7110.sock
    export NSIGN_HOST_AUDIT_LISTEN=unix:$T/parent-7111.sock
    export NSIGN_HOST_METRICS_LISTEN=tcp:127.0.0.1:$METRICS_PORT
    export NSIGN_HOST_METRICS_CONNECT=unix:$T/enclave-7112.sock
    export NSIGN_HOST_READY_LISTEN=tcp:127.0.0.1:$READY_PORT READY_MAX_AGE_SECONDS=2
    export ENCLAVE_LOG_FILE=$T/enclave.log AUDIT_LOG_FILE=$T/audit.jsonl
    export NSIGN_ENCLAVE_LOG_ADDR=$NSIGN_HOST_LOG_LISTEN
    export NSIGN_ENCLAVE_AUDIT_ADDR=$NSIGN_HOST_AUDIT_LISTEN
    export NSIGN_ENCLAVE_METRICS_ADDR=$NSIGN_HOST_METRICS_CONNECT
    export NSIGN_ENCLAVE_AUDIT_EVERY=2 NSIGN_ENCLAVE_AUDIT_INTERVAL=1
    export NSIGN_ENCLAVE_STATUS_INTERVAL=0.3
    # The client the keys file pins (enclave_demo.py keys): its certificate for mutual TLS.
    export DEMO_CLIENT_CERT=$T/client.pem DEMO_CLIENT_KEY=$T/client.key
}

flow_begin() {
    local why
    if ! why=$(flow_have_fakes); then
        skip "$1" "$why"
        tap_done; exit
    fi
    if ! flow_setup >"$T/setup.log" 2>&1; then
        fail "flow setup for $1 (fakes, material)"; sed 's/^/# /' "$T/setup.log"; tap_done; exit
    fi
    flow_env
    CONSOLE=$T/nitro/$FLOW_NAME.console
}

# flow_start_run NAME: run-enclave in the background (RUNPID), its log T/NAME.log, the console
# emptied first; flow_stop_run: SIGTERM, a bounded wait, then SIGKILL.
flow_start_run() { : >"$CONSOLE"; "$NSIGN" run-enclave 2>"$T/$1.log" & RUNPID=$!; }
flow_stop_run() {
    kill -TERM "$RUNPID" 2>/dev/null
    local i=0
    while kill -0 "$RUNPID" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    kill -9 "$RUNPID" 2>/dev/null
    wait "$RUNPID" 2>/dev/null
    RUNPID=
}

# flow_wait_serving SECONDS: until the enclave console shows SERVING (0) or a failure (1).
flow_wait_serving() {
    local c=$T/nitro/$FLOW_NAME.console i=0
    while [ $i -lt $(( $1 * 10 )) ]; do
        grep -q 'SERVING' "$c" 2>/dev/null && return 0
        grep -q 'boot failed' "$c" 2>/dev/null && return 1
        sleep 0.1; i=$((i + 1))
    done
    return 1
}
