#!/usr/bin/env bash
# test_fetch_creds: nsign fetch-creds against a local IMDSv2 fake (test/it/fakes/imds_fake.py):
# discovery, --role, json/env formats, atomic 0600 output, and every error a user must be able to
# act on (no role, IMDSv1-only, unreachable, hop-limit timeout, malformed/expired/failed
# documents, IMDS disabled).
set -u
. "$(dirname "$0")/../lib/tap.sh"
FAKE=$(dirname "$0")/fakes/imds_fake.py
T=$(mktemp -d /tmp/nsign-fc.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$T"; }
trap cleanup EXIT

# start_fake NAME ARGS...: runs the fake, sets URL_<NAME>.
start_fake() {
    local name=$1; shift
    "$PY" "$FAKE" "$@" >"$T/$name.port" 2>"$T/$name.log" &
    PIDS+=($!)
    local i=0
    while [ ! -s "$T/$name.port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
    eval "URL_$name=http://127.0.0.1:$(head -1 "$T/$name.port")"
}
start_fake ok
start_fake norole --no-role
start_fake v1 --v1-only
start_fake hang --hang
start_fake bad --malformed
start_fake exp --expired
start_fake fail --code Failure

fc() { AWS_EC2_METADATA_SERVICE_ENDPOINT=$1 "$NSIGN" fetch-creds "${@:2}"; }

out=$(fc "$URL_ok" 2>"$T/err")
check "discovers the role and prints the credentials JSON" \
    "$PY" -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["AccessKeyId"]=="ASIAIMDSFAKE0000001" and d["Token"].startswith("IQoJ") and d["Expiration"].endswith("Z") and d["SecretAccessKey"]' "$out"
check "PUT token then two GETs with the token" \
    bash -c "grep -c '\"PUT /latest/api/token' '$T/ok.log' | grep -qx 1 && grep -c '\"GET /latest/meta-data/iam/security-credentials/' '$T/ok.log' | grep -qx 2"
check "the secret never reaches the log" bash -c "! grep -q 'imds/fake' '$T/err'"
check "--role skips discovery" bash -c "AWS_EC2_METADATA_SERVICE_ENDPOINT=$URL_ok '$NSIGN' fetch-creds --role nsign-test-role >/dev/null 2>&1 && [ \$(grep -c 'security-credentials/ ' '$T/ok.log') = 1 ]"
check_fails "--role with a wrong name fails" fc "$URL_ok" --role other-role
fc "$URL_ok" --role other-role 2>"$T/err" >/dev/null
check "wrong role: message names the role" grep -q 'no credentials for role "other-role"' "$T/err"
out=$(fc "$URL_ok" --format env)
check "--format env exports the variables" bash -c "eval \"\$1\"; [ \"\$AWS_ACCESS_KEY_ID\" = ASIAIMDSFAKE0000001 ] && [ \"\$AWS_SECRET_ACCESS_KEY\" = 'imds/fake+secret/key/0123456789abcdefABCDEF' ] && [ -n \"\$AWS_SESSION_TOKEN\" ]" _ "$out"
check "--endpoint overrides the environment" bash -c "'$NSIGN' fetch-creds --endpoint '$URL_ok' >/dev/null 2>&1"
fc "$URL_ok" -o "$T/creds.json" 2>/dev/null
check "-o writes the file" test -s "$T/creds.json"
check "-o file mode is 0600" bash -c "[ \$(stat -c %a '$T/creds.json') = 600 ]"
check "no temporary file left next to it" bash -c "[ \$(ls -A '$T' | grep -c nsign-) = 0 ]"
check "the written document is accepted by s3-get's --creds parser" \
    "$PY" -c 'import json,sys; json.load(open(sys.argv[1]))' "$T/creds.json"

code=$(curl -s -o /dev/null -w '%{http_code}' "$URL_ok/latest/meta-data/iam/security-credentials/")
check "fake is IMDSv2: a GET without a token is refused (401)" test "$code" = 401
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 0' "$URL_ok/latest/api/token")
check "fake is IMDSv2: a token TTL out of range is refused (400)" test "$code" = 400
tok=$(curl -s -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 1' "$URL_ok/latest/api/token"); sleep 1.2
code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-aws-ec2-metadata-token: $tok" "$URL_ok/latest/meta-data/iam/security-credentials/")
check "fake is IMDSv2: an expired token is refused (401)" test "$code" = 401
fc "$URL_norole" >/dev/null 2>"$T/err"; rc=$?
check "no role attached: exit 1" test $rc = 1
check "no role attached: says so" grep -q "no IAM role is attached" "$T/err"
fc "$URL_v1" >/dev/null 2>"$T/err"; rc=$?
check "IMDSv1-only: exit 1 and says IMDSv1" bash -c "[ $rc = 1 ] && grep -q 'IMDSv1' '$T/err'"
fc "$URL_hang" --timeout 0.5 >/dev/null 2>"$T/err"; rc=$?
check "no answer to the PUT: timeout names the hop limit" bash -c "[ $rc = 1 ] && grep -q 'hop limit' '$T/err'"
port=$(free_port)
fc "http://127.0.0.1:$port" >/dev/null 2>"$T/err"; rc=$?
check "IMDS unreachable: exit 1 and says unreachable" bash -c "[ $rc = 1 ] && grep -q 'unreachable' '$T/err'"
fc "$URL_bad" >/dev/null 2>"$T/err"; rc=$?
check "malformed JSON: exit 1 and says malformed" bash -c "[ $rc = 1 ] && grep -qi 'malformed JSON' '$T/err'"
fc "$URL_exp" >/dev/null 2>"$T/err"; rc=$?
check "expired credentials are refused" bash -c "[ $rc = 1 ] && grep -q 'expired' '$T/err'"
fc "$URL_fail" >/dev/null 2>"$T/err"; rc=$?
check "Code=Failure is an error" bash -c "[ $rc = 1 ] && grep -q 'Code=\"Failure\"' '$T/err'"
fc "$URL_norole" -o "$T/none.json" >/dev/null 2>&1
check "a failed run leaves no output file" test ! -e "$T/none.json"
AWS_EC2_METADATA_DISABLED=true "$NSIGN" fetch-creds --endpoint "$URL_ok" >/dev/null 2>"$T/err"; rc=$?
check "AWS_EC2_METADATA_DISABLED=true refuses" bash -c "[ $rc = 1 ] && grep -q DISABLED '$T/err'"
"$NSIGN" fetch-creds --format xml >/dev/null 2>&1; rc=$?
check "bad --format is a usage error (2)" test $rc = 2
"$NSIGN" fetch-creds --help | grep -q -- "--role NAME"
check "--help documents --role" test $? = 0
tap_done
