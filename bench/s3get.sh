#!/usr/bin/env bash
# bench/s3get.sh [BUILD_DIR] [SIZE_MIB]: nsign s3-get against `curl --aws-sigv4` on the same
# object from the same local S3 fake (test/it/fakes/s3_fake.py, which verifies both clients'
# SigV4 with botocore and serves with sendfile so it is not the bottleneck), in the same run.
# Prints throughput (best of 3) and peak RSS of each, and the ratios.
# Goals: throughput ratio nsign/curl >= 0.95; nsign peak RSS <= 8 MiB whatever the size.
# Both write to /dev/null (stdout) so the disk is out of the measurement; a last nsign run to a
# file shows the cost of the atomic output (fsync + rename).
set -euo pipefail
cd "$(dirname "$0")/.."
O=${1:-build}
MIB=${2:-1024}
NSIGN=$(cd "$O" && pwd)/nsign
PY=/usr/bin/python3
T=$(mktemp -d /tmp/nsign-bench.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$T"' EXIT
mkdir -p "$T/root/bkt"
truncate -s "${MIB}M" "$T/root/bkt/obj"
head -c 1048576 /dev/urandom | dd of="$T/root/bkt/obj" conv=notrunc 2>/dev/null
AK=AKIABENCH00000000000 SK=bench/secret/key/0123456789abcdefghijklmn
"$PY" test/it/fakes/s3_fake.py --root "$T/root" --creds "$AK:$SK" >"$T/port" 2>/dev/null &
pid=$!
for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.05; done
URL=http://127.0.0.1:$(cat "$T/port")
printf '{"AccessKeyId":"%s","SecretAccessKey":"%s"}' "$AK" "$SK" >"$T/creds.json"
cat "$T/root/bkt/obj" >/dev/null # page cache warm for both

# run NAME CMD...: best wall time (s) and max RSS (KiB) over 3 runs -> "secs kib"
run() {
    local best= rss=0
    for _ in 1 2 3; do
        /usr/bin/time -f '%e %M' -o "$T/t" "$@" >/dev/null 2>"$T/err" || { cat "$T/err" >&2; exit 1; }
        read -r s k <"$T/t"
        best=$(awk -v a="${best:-1e9}" -v b="$s" 'BEGIN{print (b<a)?b:a}')
        [ "$k" -gt "$rss" ] && rss=$k
    done
    echo "$best $rss"
}
read -r ns_s ns_k < <(run "$NSIGN" s3-get --creds "$T/creds.json" --endpoint "$URL" --no-progress s3://bkt/obj -)
read -r cu_s cu_k < <(run curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AK:$SK" \
    -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
    -o - "$URL/bkt/obj")
read -r nf_s nf_k < <(run "$NSIGN" s3-get --creds "$T/creds.json" --endpoint "$URL" --no-progress s3://bkt/obj "$T/out")
awk -v mib="$MIB" -v ns="$ns_s" -v nk="$ns_k" -v cs="$cu_s" -v ck="$cu_k" -v fs="$nf_s" -v fk="$nf_k" 'BEGIN{
  printf "object %d MiB from the local S3 fake (plain HTTP, loopback)\n", mib
  printf "%-28s %8.2f s %9.1f MiB/s  peak RSS %7.1f MiB\n", "nsign s3-get (stdout)", ns, mib/ns, nk/1024
  printf "%-28s %8.2f s %9.1f MiB/s  peak RSS %7.1f MiB\n", "curl --aws-sigv4 (stdout)", cs, mib/cs, ck/1024
  printf "%-28s %8.2f s %9.1f MiB/s  peak RSS %7.1f MiB\n", "nsign s3-get (atomic file)", fs, mib/fs, fk/1024
  printf "throughput ratio nsign/curl: %.2f (goal >= 0.95)\n", cs/ns
  printf "peak RSS ratio nsign/curl:   %.2f; nsign %.1f MiB (goal <= 8 MiB)\n", nk/ck, nk/1024
}'
