#!/usr/bin/env bash
# test/run.sh MODE [BUILD_DIR]: runs tests and ends with "N passed, N failed[, N skipped]".
#   unit  the unit-test binaries        asan  the unit tests under ASan+UBSan
#   it    integration tests test/it/     vm    AF_VSOCK tests inside the qemu guest (test/vm/)
#   vectors  conformance runners (test/vectors/)   fuzz  a short run of every libFuzzer target
#   all   every one of those
# Each test program prints "ok - ..." / "not ok - ..." lines; a program that exits non-zero
# without a "not ok" line counts as one failure (a crash must never pass silently).
# ONLY=PATTERN runs only test files whose path matches the pattern.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-all}
O=${2:-build}
export NS_BUILD=$(cd "$O" && pwd)
export NSIGN=$NS_BUILD/nsign
export NS_ROOT=$PWD
export NS_SHARED=${NS_SHARED:-$(cd .. && pwd)/shared}
export NS_VECTORS=$NS_SHARED/vectors
export PY=/usr/bin/python3
export PYTHONPATH=$PWD/test/lib${PYTHONPATH:+:$PYTHONPATH}
TIMEOUT=${NS_TEST_TIMEOUT:-900}
passed=0 failed=0 skipped=0
faillist=()
faillines=()
logdir=$NS_BUILD/test-logs
mkdir -p "$logdir"

run_one() {
    local name=$1; shift
    local log=$logdir/$(echo "$name" | tr '/ ' '__').log
    local t0=$(date +%s)
    timeout --kill-after=10 "$TIMEOUT" "$@" >"$log" 2>&1
    local rc=$?
    local p f s
    p=$(grep -c '^ok ' "$log" | head -1)
    s=$(grep -c '^ok .*# SKIP' "$log" | head -1)
    f=$(grep -c '^not ok ' "$log" | head -1)
    p=$((p - s))
    if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
        f=1
        echo "not ok - $name exited with status $rc$([ $rc = 124 ] && echo " (timeout ${TIMEOUT}s)")" >>"$log"
    fi
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
    printf '%-50s %4d passed %3d failed %3d skipped %4ds\n' "$name" "$p" "$f" "$s" $(($(date +%s) - t0))
    if [ "$f" != 0 ]; then
        faillist+=("$name")
        mapfile -t -O "${#faillines[@]}" faillines < <(grep '^not ok' "$log" | head -10 | sed "s|^|$name: |")
        grep -E '^(not ok|#)' "$log" | head -30 | sed 's/^/    /'
        [ -n "${CI:-}" ] && tail -20 "$log" | sed 's/^/    | /'
    fi
}

want() { [ -z "${ONLY:-}" ] || [[ "$1" == *${ONLY}* ]]; }

run_dir_scripts() {
    local d=$1
    for t in "$d"/test_*.sh "$d"/test_*.py; do
        [ -f "$t" ] || continue
        want "$t" || continue
        case "$t" in
        *.sh) run_one "$t" bash "$t" ;;
        *.py) run_one "$t" "$PY" "$t" ;;
        esac
    done
}

do_unit() {
    for t in "$NS_BUILD"/test/test_*; do
        [ -x "$t" ] || continue
        want "$t" || continue
        run_one "unit/$(basename "$t")" "$t"
    done
}

do_asan() {
    make -s O="$O" test-asan-build >/dev/null 2>"$logdir/asan-build.log" || {
        echo "not ok - asan build failed" ; cat "$logdir/asan-build.log" | tail -20
        failed=$((failed + 1)); return; }
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    for t in "$NS_BUILD"/asan/test/test_*; do
        [ -x "$t" ] || continue
        want "$t" || continue
        run_one "asan/$(basename "$t")" "$t"
    done
}

do_fuzz() {
    if ! make -s O="$O" fuzz >"$logdir/fuzz-build.log" 2>&1; then
        echo "not ok - fuzz build failed"; tail -20 "$logdir/fuzz-build.log"
        failed=$((failed + 1)); return
    fi
    for f in "$NS_BUILD"/fuzz/fuzz_*; do
        [ -x "$f" ] || continue
        want "$f" || continue
        local n=$(basename "$f")
        local corpus=test/fuzz/corpus/$n
        local work=$NS_BUILD/fuzz-work/$n
        rm -rf "$work"; mkdir -p "$work"
        [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/ 2>/dev/null
        run_one "fuzz/$n" bash -c "'$f' -runs=${NS_FUZZ_RUNS:-20000} -max_total_time=${NS_FUZZ_SECONDS:-20} -max_len=65536 '$work' >/dev/null 2>$work.log && echo 'ok - $n: ${NS_FUZZ_RUNS:-20000} runs without a crash' || { tail -30 $work.log; exit 1; }"
    done
}

case "$mode" in
unit) do_unit ;;
asan) do_asan ;;
it) run_dir_scripts test/it ;;
vm) run_dir_scripts test/vm ;;
vectors) run_dir_scripts test/vectors ;;
fuzz) do_fuzz ;;
all)
    do_unit
    do_asan
    run_dir_scripts test/vectors
    run_dir_scripts test/it
    run_dir_scripts test/vm
    do_fuzz
    ;;
*) echo "usage: test/run.sh unit|asan|it|vm|vectors|fuzz|all [BUILD_DIR]" >&2; exit 2 ;;
esac

if [ ${#faillist[@]} -gt 0 ]; then
    # Repeated here so that the last lines of a long run still say what failed.
    printf '%s\n' "${faillines[@]}"
    echo "failed: ${faillist[*]}"
    echo "logs: $logdir"
fi
if [ "$skipped" -gt 0 ]; then
    echo "$passed passed, $failed failed, $skipped skipped"
else
    echo "$passed passed, $failed failed"
fi
[ "$failed" = 0 ]
