#!/usr/bin/env bash
# bench/age.sh [BUILD_DIR] [SIZE_MIB]: nsign age-decrypt vs `age -d` on the same file, same run.
#
# Encrypts SIZE_MIB (default 1024) of random data with `age` to an X25519 recipient (binary and
# armored), then decrypts it with both tools to /dev/null and to a file, best of RUNS (default 3)
# wall-clock times, peak RSS from /usr/bin/time -v. Prints throughput, the ratio nsign/age (goal
# >= 1.2) and nsign's peak RSS (goal <= 4 MiB, constant in file size: also measured on a 16 MiB
# file). Needs: age, age-keygen, /usr/bin/time. Temp data under ${TMPDIR:-/tmp}, removed on exit.
set -euo pipefail
O=${1:-build}
MIB=${2:-1024}
RUNS=${RUNS:-3}
NSIGN=$(cd "$O" && pwd)/nsign
for tool in age age-keygen /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "bench/age.sh: $tool is missing" >&2; exit 1; }
done
[ -x "$NSIGN" ] || { echo "bench/age.sh: build $NSIGN first (make O=$O)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/nsign-bench-age.XXXXXX")
trap 'rm -rf "$work"' EXIT

age-keygen -o "$work/key" 2>/dev/null
pub=$(age-keygen -y "$work/key")
head -c $((MIB * 1024 * 1024)) /dev/urandom >"$work/plain"
age -r "$pub" -o "$work/ct.age" "$work/plain"
age -a -r "$pub" -o "$work/ct.asc" "$work/plain"
head -c $((16 * 1024 * 1024)) "$work/plain" >"$work/small"
age -r "$pub" -o "$work/small.age" "$work/small"

# measure CMD...: best wall seconds, max RSS KiB and the CPU seconds (user+sys) of the best run
# over RUNS runs: "secs rss cpu". CPU time is the load-independent view on a busy host.
measure() {
    local best="" rss=0 cpu=0 i
    for ((i = 0; i < RUNS; i++)); do
        /usr/bin/time -v -o "$work/time" "$@" >/dev/null 2>"$work/err" || {
            echo "bench/age.sh: failed: $*" >&2; cat "$work/err" >&2; exit 1; }
        local s r c
        s=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); t=0; for(j=1;j<=n;j++) t=t*60+a[j]; print t}' "$work/time")
        r=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time")
        c=$(awk -F': ' '/User time|System time/ {t += $2} END {print t}' "$work/time")
        if [ -z "$best" ] || awk "BEGIN{exit !($s < $best)}"; then best=$s; cpu=$c; fi
        [ "$r" -gt "$rss" ] && rss=$r
    done
    echo "$best $rss $cpu"
}

report() {
    local what=$1 n=$2 a=$3 bytes=$4
    local ns nr nc as ar ac
    read -r ns nr nc <<<"$n"
    read -r as ar ac <<<"$a"
    awk -v w="$what" -v ns="$ns" -v as="$as" -v nr="$nr" -v ar="$ar" -v nc="$nc" -v ac="$ac" \
        -v b="$bytes" 'BEGIN {
        nt = b / 1048576 / (ns > 0 ? ns : 0.001); at = b / 1048576 / (as > 0 ? as : 0.001);
        printf "%-36s nsign %7.1f MiB/s (%6.2fs, cpu %5.2fs, RSS %5.1f MiB)  age %7.1f MiB/s (%6.2fs, cpu %5.2fs, RSS %5.1f MiB)  ratio %.2fx %s\n",
            w, nt, ns, nc, nr / 1024, at, as, ac, ar / 1024, nt / at,
            (nt / at >= 1.2 ? "(goal >= 1.2x met)" : "(goal >= 1.2x MISSED)")
    }'
}

bytes=$((MIB * 1024 * 1024))
echo "bench/age.sh: $MIB MiB, best of $RUNS, $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg), age $(age --version 2>/dev/null | head -1)"
n=$(measure "$NSIGN" age-decrypt -i "$work/key" -o /dev/null "$work/ct.age")
a=$(measure age -d -i "$work/key" -o /dev/null "$work/ct.age")
report "binary -> /dev/null" "$n" "$a" $bytes
n=$(measure "$NSIGN" age-decrypt -i "$work/key" -o "$work/out.n" "$work/ct.age")
a=$(measure age -d -i "$work/key" -o "$work/out.a" "$work/ct.age")
cmp -s "$work/out.n" "$work/plain" || { echo "bench/age.sh: nsign output differs!" >&2; exit 1; }
report "binary -> file (nsign: fsync+rename)" "$n" "$a" $bytes
rm -f "$work/out.n" "$work/out.a"
n=$(measure "$NSIGN" age-decrypt -i "$work/key" -o /dev/null "$work/ct.asc")
a=$(measure age -d -i "$work/key" -o /dev/null "$work/ct.asc")
report "armored -> /dev/null" "$n" "$a" $bytes
small=$(measure "$NSIGN" age-decrypt -i "$work/key" -o /dev/null "$work/small.age")
read -r _ srss _ <<<"$small"
read -r _ brss _ <<<"$(measure "$NSIGN" age-decrypt -i "$work/key" -o /dev/null "$work/ct.age")"
awk -v s="$srss" -v b="$brss" -v m="$MIB" 'BEGIN {
    printf "nsign peak RSS: 16 MiB file %.2f MiB, %d MiB file %.2f MiB  %s\n", s / 1024, m, b / 1024,
        (b <= 4096 ? "(goal <= 4 MiB met)" : "(goal <= 4 MiB MISSED)")
}'
