#!/usr/bin/env bash
# test_rollback: issue 22 item 2, a host rolling the enclave back to an older keys file. The
# genuine age identity opens any shares ciphertext made for it, so a host can upload an older S3
# object version: a version-1 file of the same keys (no client pinning: anyone could sign), or
# an older version-2 file with a since-revoked client. The whole flow (run-enclave, the fake
# nitro-cli giving the enclave its image's env, KMS/NSM fakes) with real EIFs from eif/build.sh:
#   - the default image requires client authentication: a version-1 file is refused at
#     load-keys with one line (check=client-auth); an image built with ALLOW_ANONYMOUS_CLIENTS=1
#     serves it (the explicit opt-out of the demo and tests);
#   - an image built with MIN_POLICY_EPOCH=2 refuses an epoch-1 file (check=policy-epoch) and
#     serves the epoch-2 one; both allowances are in the image's measurements (PCR0/PCR2);
#   - on the image serving, `nsign sign` pins PCR16 (--pcr 16=, as run-enclave predicts it) and
#     the policy (--min-policy-epoch, --policy-commitment from sign-service --commitments), and
#     refuses another PCR16 or a higher epoch before sending anything to sign.
set -uo pipefail
. "$(dirname "$0")/../lib/tap.sh"
export NSIGN=${NSIGN:?} PY=${PY:-/usr/bin/python3} NS_ROOT=${NS_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
T=$(mktemp -d /tmp/ns-rollback.XXXXXX)
. "$NS_ROOT/test/lib/enclave_flow.sh"
trap flow_cleanup EXIT
flow_begin "rollback"
S3=$T/s3/demo-bucket/enclave

# Images: the default, one with the opt-out, one with a minimum epoch (a fake kernel: the
# stand-in nitro-cli reads only the image's env).
head -c 4096 /dev/urandom >"$T/kernel"
for v in default "ALLOW_ANONYMOUS_CLIENTS=1" "MIN_POLICY_EPOCH=2"; do
    d=$T/eif-${v%%=*}
    # shellcheck disable=SC2086 # $v is one assignment, or the word default
    env $([ "$v" = default ] || echo "$v") KERNEL=$T/kernel bash "$NS_ROOT/eif/build.sh" "$d" \
        "$NSIGN" >"$d.json" 2>"$d.err"
    check "eif/build.sh $v" test -s "$d/nsign.eif"
done
pcr() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["Measurements"][sys.argv[2]])' "$1" "$2"; }
check "ALLOW_ANONYMOUS_CLIENTS=1 is measured: PCR0 and PCR2 differ from the default image's" bash -c \
    "[ '$(pcr "$T/eif-default.json" PCR0)' != '$(pcr "$T/eif-ALLOW_ANONYMOUS_CLIENTS.json" PCR0)' ] &&
     [ '$(pcr "$T/eif-default.json" PCR2)' != '$(pcr "$T/eif-ALLOW_ANONYMOUS_CLIENTS.json" PCR2)' ]"
check "MIN_POLICY_EPOCH=2 is measured: PCR0 and PCR2 differ from the default image's" bash -c \
    "[ '$(pcr "$T/eif-default.json" PCR0)' != '$(pcr "$T/eif-MIN_POLICY_EPOCH.json" PCR0)' ] &&
     [ '$(pcr "$T/eif-default.json" PCR2)' != '$(pcr "$T/eif-MIN_POLICY_EPOCH.json" PCR2)' ]"
check "the build names the image's minimum policy" \
    grep -q 'client_auth=required min_policy_epoch=2' "$T/eif-MIN_POLICY_EPOCH.err"
MIN_POLICY_EPOCH=x KERNEL=$T/kernel bash "$NS_ROOT/eif/build.sh" "$T/eif-bad" "$NSIGN" \
    >/dev/null 2>"$T/bad.err"
check "MIN_POLICY_EPOCH that is not a number: the build stops (2), naming it" bash -c \
    "[ $? = 2 ] && grep -q 'MIN_POLICY_EPOCH=x: want an integer' '$T/bad.err'"

# The same keys in three older and newer files, each age-encrypted to the genuine identity.
"$PY" - "$T/service_key_shares.json" "$T" <<'PY'
import json, sys
cur = json.load(open(sys.argv[1]))
keys = [{k: v for k, v in e.items() if k != "allow"} for e in cur["keys"]]
out = {"v1": {"version": 1, "keys": keys},
       # an older policy: one more client, since revoked
       "epoch1": dict(cur, policy_epoch=1, clients=cur["clients"] + [
           {"id": "revoked", "spki_sha256": "ab" * 32}],
           keys=[dict(e, allow=e["allow"] + ["revoked"]) for e in cur["keys"]]),
       "epoch2": dict(cur, policy_epoch=2)}
for name, doc in out.items():
    with open("%s/keys-%s.json" % (sys.argv[2], name), "w") as f:
        json.dump(doc, f)
PY
recipient=$(age-keygen -y "$T/age-private.key")
for n in v1 epoch1 epoch2; do
    age -r "$recipient" -o "$S3/keys-$n.json.age" "$T/keys-$n.json"
done

# boot NAME IMAGE FILE: run-enclave with that image and keys file; FLOW_R 0 serving, 1 failed.
boot() {
    export EIF_PATH=$T/eif-$2/nsign.eif KEY_SHARES_S3_URI=s3://demo-bucket/enclave/keys-$3.json.age
    flow_start_run "$1"
    flow_wait_serving 90; FLOW_R=$?
}

boot v1-default default v1
check "version-1 file, default image: refused at load-keys, one line naming check=client-auth" \
    bash -c "[ $FLOW_R = 1 ] && grep -q 'step=load-keys failed.*refusing the keys file: check=client-auth: it is version 1' '$CONSOLE' && grep -q 'boot failed step=load-keys' '$CONSOLE'"
check "... decrypted but never served: no SERVING, the keys wiped (no key material kept)" bash -c \
    "grep -q 'step=age-decrypt ok' '$CONSOLE' && ! grep -q SERVING '$CONSOLE' && grep -q 'no key material was kept' '$CONSOLE'"
grep -m1 'check=client-auth' "$CONSOLE" | sed 's/^/# console: /'
flow_stop_run

boot v1-anon ALLOW_ANONYMOUS_CLIENTS v1
check "version-1 file, image built with ALLOW_ANONYMOUS_CLIENTS=1: serves (the explicit opt-out)" \
    bash -c "[ $FLOW_R = 0 ] && grep -q 'keys policy client_auth=none policy_epoch=0 image_requires=nothing' '$CONSOLE'"
flow_stop_run

boot epoch1 MIN_POLICY_EPOCH epoch1
check "epoch-1 file (a since-revoked client), image with MIN_POLICY_EPOCH=2: refused, check=policy-epoch" \
    bash -c "[ $FLOW_R = 1 ] && grep -q 'step=load-keys failed.*check=policy-epoch: its policy_epoch 1 is below this image.s minimum 2' '$CONSOLE'"
flow_stop_run

boot v1-epoch MIN_POLICY_EPOCH v1
check "version-1 file, image with MIN_POLICY_EPOCH=2: refused" bash -c \
    "[ $FLOW_R = 1 ] && grep -q 'step=load-keys failed.*refusing the keys file' '$CONSOLE'"
flow_stop_run

boot epoch2 MIN_POLICY_EPOCH epoch2
check "epoch-2 file, image with MIN_POLICY_EPOCH=2: serves" bash -c \
    "[ $FLOW_R = 0 ] && grep -q 'keys policy client_auth=required policy_epoch=2 image_requires=client-auth image_min_policy_epoch=2' '$CONSOLE'"
pcr16=$(sed -n 's/.*expected pcr16=\([0-9a-f]*\).*/\1/p' "$T/epoch2.log" | head -1)
"$PY" -c 'import json, sys
json.dump({"Measurements": {"HashAlgorithm": "Sha384 { ... }", "PCR0": sys.argv[1]}},
          open(sys.argv[2], "w"))' "$FLOW_PCR0" "$T/m.json"
policy=$("$NSIGN" sign-service --keys "$T/keys-epoch2.json" --commitments |
    "$PY" -c 'import json,sys; print(json.load(sys.stdin)["policy_commitment"])')
printf 'transfer 10 to bob' >"$T/msg"
sign_bare() {
    "$NSIGN" sign --addr "tcp:127.0.0.1:$GRPC_PORT" --key payments --message-file "$T/msg" \
        --cert "$T/client.pem" --client-key "$T/client.key" --root "$T/nsmca/root.pem" "$@"
}
sign() { sign_bare --expect "$T/m.json" "$@"; }
sign --pcr "16=$pcr16" --min-policy-epoch 2 --policy-commitment "$policy" >"$T/sig" 2>"$T/sign.err"
check "nsign sign --pcr 16=(predicted) --min-policy-epoch 2 --policy-commitment: attested, signed" \
    bash -c "[ -n '$pcr16' ] && [ \$(wc -c <'$T/sig') = 129 ] && grep -q 'pcr16=pinned policy_epoch=2' '$T/sign.err'"
sign --pcr "16=$(printf '%096d' 0)" >/dev/null 2>"$T/sign2.err"; r=$?
check "nsign sign with another PCR16 (other inputs): refused" bash -c \
    "[ $r = 1 ] && grep -q 'check pcr16 failed' '$T/sign2.err'"
sign --pcr "16=$pcr16" --min-policy-epoch 3 >/dev/null 2>"$T/sign3.err"; r=$?
check "nsign sign --min-policy-epoch 3 on an epoch-2 enclave: refused" bash -c \
    "[ $r = 1 ] && grep -q 'policy_epoch 2 is below 3' '$T/sign3.err'"
sign >/dev/null 2>"$T/sign4.err"; r=$?
check "nsign sign without PCR16 pinned or --no-pcr16: usage error" bash -c \
    "[ $r = 2 ] && grep -q 'PCR16 is not pinned' '$T/sign4.err'"
sign_bare --pcr "0=$FLOW_PCR0" --pcr "16=$pcr16" >"$T/sig5" 2>"$T/sign5.err"
check "nsign sign --pcr 0=HEX --pcr 16=HEX (no measurements file): attested, signed" \
    test "$(wc -c <"$T/sig5")" = 129
sign --pcr "0=$(printf '%096d' 1)" --pcr "16=$pcr16" >/dev/null 2>"$T/sign6.err"; r=$?
check "nsign sign --pcr 0 differing from --expect's PCR0: usage error" bash -c \
    "[ $r = 2 ] && grep -q 'PCR0 is expected twice with different values' '$T/sign6.err'"
check "only the two verified requests were signed" \
    test "$(grep -c 'sign key=payments' "$CONSOLE")" = 2
flow_stop_run
tap_done
