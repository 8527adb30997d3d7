#!/usr/bin/env bash
# test_s3_get: nsign s3-get against a local S3 fake that verifies every request's SigV4 with
# botocore's S3 signer (test/it/fakes/s3_fake.py), over TLS with a test CA made here by openssl.
# Objects of 0 B, 1 B, 5 MiB and 1 GiB (sparse, over plain http to stay fast; peak RSS checked),
# keys with spaces and unicode, stdout output, atomic 0600 files, resume after a dropped
# connection, region redirect, throttling retries, checksum mismatch, and the errors a user
# acts on: 403 (which permission), 404 (which key), wrong credentials, wrong region, TLS failure.
set -u
. "$(dirname "$0")/../lib/tap.sh"
FAKE=$(dirname "$0")/fakes/s3_fake.py
T=$(mktemp -d /tmp/nsign-s3.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$T"; }
trap cleanup EXIT

if ! "$PY" -c 'import botocore' 2>/dev/null; then
    skip "s3-get against the verifying S3 fake" "python3-botocore is not installed"
    exit 0
fi

# --- test CA and server certificate (localhost, 127.0.0.1) ---
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=nsign test CA" \
    -keyout "$T/ca.key" -out "$T/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout "$T/srv.key" -out "$T/srv.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$T/ext"
openssl x509 -req -in "$T/srv.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial -days 2 \
    -extfile "$T/ext" -out "$T/srv.pem" 2>/dev/null
check "test CA and server certificate made" test -s "$T/srv.pem"

# --- objects ---
R=$T/root
mkdir -p "$R/bkt/dir/with space" "$R/eu-bkt" "$T/out"
: >"$R/bkt/empty"
printf 'x' >"$R/bkt/one"
head -c $((5 << 20)) /dev/urandom >"$R/bkt/five"
UKEY='dir/with space/ü-名前 +&=.txt'
printf 'unicode key\n' >"$R/bkt/$UKEY"
printf 'in another region\n' >"$R/eu-bkt/obj"
truncate -s 1G "$R/bkt/big"
printf 'start' | dd of="$R/bkt/big" conv=notrunc 2>/dev/null
printf 'middle' | dd of="$R/bkt/big" bs=1 seek=$((512 << 20)) conv=notrunc 2>/dev/null
printf 'end' | dd of="$R/bkt/big" bs=1 seek=$(((1 << 30) - 3)) conv=notrunc 2>/dev/null

AKID=ASIAFAKES3TEST000001
SECRET='s3/fake+secret/0123456789abcdefghijABCDEFGHIJ'
TOKEN='IQoJb3JpZ2luX2VjEFAKE//////////wEaCXVzLWVhc3QtMSJHMEUCIQ=='
EXP=$(date -u -d '+6 hours' +%Y-%m-%dT%H:%M:%SZ)
printf '{"AccessKeyId":"%s","SecretAccessKey":"%s","Token":"%s","Expiration":"%s"}\n' \
    "$AKID" "$SECRET" "$TOKEN" "$EXP" >"$T/creds.json"
printf '{"AccessKeyId":"%s","SecretAccessKey":"%s","Token":"%s","Expiration":"%s"}\n' \
    "$AKID" "wrong-secret-0123456789" "$TOKEN" "$EXP" >"$T/badsecret.json"
printf '{"AccessKeyId":"AKIAUNKNOWN000000000","SecretAccessKey":"%s","Token":"%s"}\n' \
    "$SECRET" "$TOKEN" >"$T/badakid.json"
printf '{"AccessKeyId":"%s","SecretAccessKey":"%s","Token":"%s","Expiration":"2020-01-01T00:00:00Z"}\n' \
    "$AKID" "$SECRET" "$TOKEN" >"$T/expired.json"

start_fake() {
    local name=$1; shift
    "$PY" "$FAKE" --root "$R" --creds "$AKID:$SECRET:$TOKEN" --bucket-region eu-bkt=eu-west-1 "$@" \
        >"$T/$name.port" 2>"$T/$name.log" &
    PIDS+=($!)
    local i=0
    while [ ! -s "$T/$name.port" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
    eval "PORT_$name=$(head -1 "$T/$name.port")"
}
start_fake tls --tls "$T/srv.pem" "$T/srv.key" --deny bkt/one
start_fake plain
start_fake drop --drop-after $((1 << 20))
start_fake corrupt --corrupt
start_fake mutate --drop-after $((1 << 20)) --mutate-after-drop
start_fake slow --slow-down 2
EP="https://localhost:$PORT_tls"

get() { "$NSIGN" s3-get --creds "$T/creds.json" --endpoint "$EP" --ca-bundle "$T/ca.pem" "$@"; }

for k in empty five; do
    get "s3://bkt/$k" "$T/out/$k" 2>"$T/err"
    check "$k: downloaded over TLS, identical" cmp -s "$R/bkt/$k" "$T/out/$k"
done
check "0 B object gives an empty file" bash -c "[ -f '$T/out/empty' ] && [ ! -s '$T/out/empty' ]"
check "output mode is 0600" bash -c "[ \$(stat -c %a '$T/out/five') = 600 ]"
check "5 MiB: sha256 checksum returned by S3 was verified" grep -q 'checksum=sha256' "$T/err"
check "no temporary files left" bash -c "[ -z \"\$(ls -A '$T/out' | grep nsign-)\" ]"
AWS_CA_BUNDLE=$T/ca.pem "$NSIGN" s3-get --creds "$T/creds.json" --endpoint "$EP" "s3://bkt/$UKEY" "$T/out/u" 2>"$T/err"
check "key with spaces and unicode (AWS_CA_BUNDLE)" cmp -s "$R/bkt/$UKEY" "$T/out/u"
(cd "$T/out" && AWS_ENDPOINT_URL_S3=$EP AWS_CA_BUNDLE=$T/ca.pem "$NSIGN" s3-get --creds - "s3://bkt/five" <"$T/creds.json" 2>/dev/null)
check "--creds - from stdin, AWS_ENDPOINT_URL_S3, default output name" cmp -s "$R/bkt/five" "$T/out/five"
get "s3://bkt/five" - 2>/dev/null >"$T/out/stdout"
check "'-' streams to standard output" cmp -s "$R/bkt/five" "$T/out/stdout"
AWS_ACCESS_KEY_ID=$AKID AWS_SECRET_ACCESS_KEY=$SECRET AWS_SESSION_TOKEN=$TOKEN \
    "$NSIGN" s3-get --endpoint "$EP" --ca-bundle "$T/ca.pem" "s3://bkt/empty" "$T/out/env" 2>/dev/null
check "credentials from AWS_* variables" test -f "$T/out/env"
get --via "tcp:127.0.0.1:$PORT_tls" "s3://bkt/five" "$T/out/via" 2>/dev/null
check "--via connects elsewhere, TLS still verifies the endpoint host" cmp -s "$R/bkt/five" "$T/out/via"
if command -v socat >/dev/null; then
    socat UNIX-LISTEN:"$T/s3.sock",fork TCP:127.0.0.1:"$PORT_tls" 2>/dev/null &
    PIDS+=($!)
    wait_unix "$T/s3.sock" 10
    get --via "unix:$T/s3.sock" "s3://bkt/five" "$T/out/viaunix" 2>/dev/null
    check "TLS end to end through a unix-socket proxy (as through vsock:3:5000)" cmp -s "$R/bkt/five" "$T/out/viaunix"
else
    skip "TLS through a unix-socket proxy" "socat is not installed"
fi
n_ver=$(grep -c '^s3_fake: verified' "$T/tls.log"); n_all=$(grep -c '^s3_fake: ' "$T/tls.log")
check "every request so far had a valid signature ($n_ver/$n_all)" test "$n_ver" = "$n_all" -a "$n_all" -ge 8

# --- the fake is as strict as S3: an independent signer passes, unsigned/forged requests fail ---
E3=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
code=$(curl -s -o "$T/out/curl" -w '%{http_code}' --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AKID:$SECRET" \
    -H "x-amz-security-token: $TOKEN" -H "x-amz-content-sha256: $E3" "http://127.0.0.1:$PORT_plain/bkt/five")
check "fake accepts curl --aws-sigv4 (an independent signer)" bash -c "[ '$code' = 200 ] && cmp -s '$R/bkt/five' '$T/out/curl'"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT_plain/bkt/five")
check "fake refuses an unsigned request (403)" test "$code" = 403
code=$(curl -s -o /dev/null -w '%{http_code}' --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AKID:forged" \
    -H "x-amz-security-token: $TOKEN" -H "x-amz-content-sha256: $E3" "http://127.0.0.1:$PORT_plain/bkt/five")
check "fake refuses a forged signature (403)" test "$code" = 403

# --- 1 GiB over plain http: constant memory ---
/usr/bin/time -f '%M' -o "$T/rss" "$NSIGN" s3-get --creds "$T/creds.json" \
    --endpoint "http://127.0.0.1:$PORT_plain" "s3://bkt/big" "$T/out/big" 2>/dev/null
rss="$? $(tail -1 "$T/rss")"
check "1 GiB: exit 0" test "${rss% *}" = 0
check "1 GiB: identical" cmp -s "$R/bkt/big" "$T/out/big"
check "1 GiB: peak RSS ${rss#* } KiB <= 8 MiB" test "${rss#* }" -le 8192
rm -f "$T/out/big"

# --- resume, redirect, retries, checksum ---
"$NSIGN" s3-get --creds "$T/creds.json" --endpoint "http://127.0.0.1:$PORT_drop" "s3://bkt/five" "$T/out/resumed" 2>"$T/err"
check "dropped connection: resumed, identical" cmp -s "$R/bkt/five" "$T/out/resumed"
check "dropped connection: a Range request (206) pinned to the ETag" \
    bash -c "grep -q 'verified GET /bkt/five 206' '$T/drop.log' && grep -q 'resumed=1' '$T/err'"
cp "$R/bkt/five" "$R/bkt/five-m"
"$NSIGN" s3-get --creds "$T/creds.json" --endpoint "http://127.0.0.1:$PORT_mutate" "s3://bkt/five-m" "$T/out/mutated" 2>"$T/err"
check "object changed while resuming: If-Match got 412, download restarted, identical" \
    bash -c "cmp -s '$R/bkt/five-m' '$T/out/mutated' && grep -q 'five-m 412' '$T/mutate.log' && grep -q 'object changed' '$T/err'"
"$NSIGN" s3-get --creds "$T/creds.json" --endpoint "http://127.0.0.1:$PORT_mutate" "s3://bkt/five" - 2>"$T/err" >"$T/out/stdout-partial"; rc=$?
check "object changed while streaming to stdout: fails and says why" bash -c "[ $rc = 1 ] && grep -q 'cannot be rewound' '$T/err'"
check "to stdout a failure leaves partial output (as --help says)" \
    bash -c "[ -s '$T/out/stdout-partial' ] && ! cmp -s '$R/bkt/five' '$T/out/stdout-partial'"
check "--help says stdout output is partial and unverified on failure" \
    bash -c "'$NSIGN' s3-get --help | grep -q 'partial,' && '$NSIGN' s3-get --help | grep -q 'unverified output'"
AWS_REGION=us-east-1 get "s3://eu-bkt/obj" "$T/out/eu" 2>"$T/err"
check "bucket in another region: redirect followed" cmp -s "$R/eu-bkt/obj" "$T/out/eu"
check "redirect logged with the new region" grep -q 'to=eu-west-1' "$T/err"
AWS_MAX_ATTEMPTS=5 "$NSIGN" s3-get --creds "$T/creds.json" --endpoint "http://127.0.0.1:$PORT_slow" "s3://bkt/five" "$T/out/slow" 2>"$T/err"
check "503 SlowDown twice: retried with backoff, identical" cmp -s "$R/bkt/five" "$T/out/slow"
AWS_MAX_ATTEMPTS=1 "$NSIGN" s3-get --creds "$T/creds.json" --endpoint "http://127.0.0.1:$PORT_slow" "s3://bkt/one" "$T/out/x" 2>/dev/null
check "AWS_MAX_ATTEMPTS bounds the retries" test $? = 0 -o ! -e "$T/out/x"
"$NSIGN" s3-get --creds "$T/creds.json" --endpoint "http://127.0.0.1:$PORT_corrupt" "s3://bkt/five" "$T/out/corrupt" 2>"$T/err"; rc=$?
check "corrupted body: checksum mismatch fails, no output" bash -c "[ $rc = 1 ] && [ ! -e '$T/out/corrupt' ] && grep -q 'checksum' '$T/err'"

# --- errors a user can act on ---
get "s3://bkt/one" "$T/out/denied" 2>"$T/err"; rc=$?
check "403: exit 1, no output, names s3:GetObject and the object" \
    bash -c "[ $rc = 1 ] && [ ! -e '$T/out/denied' ] && grep -q 's3:GetObject on arn:aws:s3:::bkt/one' '$T/err'"
get "s3://bkt/nope/missing key" "$T/out/missing" 2>"$T/err"; rc=$?
check "404: exit 1, names the key" bash -c "[ $rc = 1 ] && grep -q 'no object with key \"nope/missing key\"' '$T/err'"
get "s3://nobucket/k" "$T/out/nb" 2>"$T/err"
check "404 NoSuchBucket names the bucket" grep -q 'no bucket "nobucket"' "$T/err"
"$NSIGN" s3-get --creds "$T/badsecret.json" --endpoint "$EP" --ca-bundle "$T/ca.pem" s3://bkt/five "$T/out/w" 2>"$T/err"; rc=$?
check "wrong secret: SignatureDoesNotMatch explained" bash -c "[ $rc = 1 ] && grep -q 'SignatureDoesNotMatch: the secret access key' '$T/err'"
check "the secret never reaches the log" bash -c "! grep -q 'wrong-secret\|s3/fake+secret' '$T/err'"
"$NSIGN" s3-get --creds "$T/badakid.json" --endpoint "$EP" --ca-bundle "$T/ca.pem" s3://bkt/five "$T/out/w" 2>"$T/err"
check "unknown access key: InvalidAccessKeyId explained" grep -q 'InvalidAccessKeyId' "$T/err"
"$NSIGN" s3-get --creds "$T/expired.json" --endpoint "$EP" --ca-bundle "$T/ca.pem" s3://bkt/five "$T/out/w" 2>"$T/err"; rc=$?
check "expired credentials refused before any request" bash -c "[ $rc = 1 ] && grep -q 'expired' '$T/err'"
"$NSIGN" s3-get --creds "$T/creds.json" --endpoint "$EP" s3://bkt/five "$T/out/w" 2>"$T/err"; rc=$?
check "TLS failure (test CA not trusted by the embedded roots): names the host" \
    bash -c "[ $rc = 1 ] && grep -q 'certificate of localhost not accepted' '$T/err'"
get --endpoint "https://wrong.example:$PORT_tls" --via "tcp:127.0.0.1:$PORT_tls" s3://bkt/five "$T/out/w" 2>"$T/err"; rc=$?
check "TLS name mismatch: says why" bash -c "[ $rc = 1 ] && grep -qi 'CN mismatch\|name' '$T/err' && grep -q 'wrong.example' '$T/err'"
"$NSIGN" s3-get --creds "$T/creds.json" --endpoint "http://127.0.0.1:$(free_port)" --timeout 1 s3://bkt/five "$T/out/w" 2>"$T/err"; rc=$?
check "endpoint unreachable: exit 1 after bounded retries" test $rc = 1
# plain http:// only to loopback (issue 15). In a network namespace of its own (lo only), so a
# binary without the check fails to connect instead of reaching anything.
if unshare -n true 2>/dev/null; then
    unshare -n "$NSIGN" s3-get --creds "$T/creds.json" --endpoint "http://192.0.2.1:80" s3://bkt/five "$T/out/plain" 2>"$T/err"; rc=$?
    check "plain http:// to a non-loopback endpoint refused (usage, 2), says why" \
        bash -c "[ $rc = 2 ] && grep -q 'plain http:// to 192.0.2.1 refused' '$T/err' && [ ! -e '$T/out/plain' ]"
    AWS_ENDPOINT_URL_S3=http://s3.example.test unshare -n "$NSIGN" s3-get --creds "$T/creds.json" s3://bkt/five "$T/out/plain" 2>"$T/err"; rc=$?
    check "plain http:// from AWS_ENDPOINT_URL_S3 refused too" \
        bash -c "[ $rc = 2 ] && grep -q 'plain http:// to s3.example.test refused' '$T/err'"
else
    skip "plain http:// to a non-loopback endpoint refused" "cannot create a network namespace"
fi
"$NSIGN" s3-get s3://bkt 2>/dev/null; rc=$?
check "URI without a key: usage error (2)" test $rc = 2
"$NSIGN" s3-get --creds "$T/creds.json" --region 'EU WEST' s3://bkt/k 2>/dev/null; rc=$?
check "bad region: usage error (2)" test $rc = 2

# --- progress line on a TTY ---
script -qec "'$NSIGN' s3-get --creds '$T/creds.json' --endpoint '$EP' --ca-bundle '$T/ca.pem' s3://bkt/five '$T/out/tty'" /dev/null >"$T/tty.txt" 2>&1
check "progress line on a TTY" grep -q 's3-get: 5.0 MiB / 5.0 MiB (100%)' "$T/tty.txt"
get s3://bkt/five "$T/out/notty" 2>"$T/err"
check "no progress line when stderr is not a TTY" bash -c "! grep -q '(100%)' '$T/err'"
tap_done
