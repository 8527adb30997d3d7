#!/usr/bin/env bash
# test_secret_hygiene (issue 15): every applet that handles credentials or payloads hardens itself
# before it reads them: not dumpable (no core file, no ptrace or /proc/PID/mem by its own uid) and
# RLIMIT_CORE 0. Each applet runs as the unprivileged user nobody, blocked where it waits for
# input; a non-dumpable process's /proc/PID files belong to root, not to its own uid. A control
# process (sleep, run the same way) shows the check tells the two apart.
set -uo pipefail
. "$(dirname "$0")/../lib/tap.sh"
N=${NSIGN:?}
T=$(mktemp -d /tmp/ns-hyg.XXXXXX)
chmod 0777 "$T"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT

NOBODY_UID=$(id -u nobody 2>/dev/null)
if [ -z "$NOBODY_UID" ] || [ "$(id -u)" != 0 ]; then
    skip "applets run as nobody are not dumpable" "needs root and a 'nobody' user (uid=$(id -u), nobody=${NOBODY_UID:-none})"
    tap_done
    exit
fi
as_nobody() { exec setpriv --reuid="$NOBODY_UID" --regid="$(id -g nobody)" --clear-groups "$@"; }
# owner_is PID UID: /proc/PID/mem is owned by UID.
owner_is() {
    local o
    o=$(stat -c %u "/proc/$1/mem" 2>&1)
    [ "$o" = "$2" ] || { echo "# /proc/$1/mem owner: $o, want $2"; return 1; }
}
# has_open PID PATH [SECONDS]: until the process holds PATH open (it got past its start).
has_open() {
    local i=0 f
    while [ $i -lt $(( ${3:-10} * 20 )) ]; do
        for f in /proc/"$1"/fd/*; do [ "$(readlink "$f")" = "$2" ] && return 0; done
        sleep 0.05; i=$((i + 1))
    done
    return 1
}
core_zero() { grep -Eq '^Max core file size +0 +0 ' "/proc/$1/limits"; }

printf 'payload' >"$T/payload"
chmod 0644 "$T/payload"
mkfifo "$T/fifo" "$T/fifo2"
chmod 0666 "$T/fifo" "$T/fifo2"
# Writers that never write: the applets' opens of the FIFOs complete, their reads then block.
sleep 120 >"$T/fifo" & pids+=($!)
sleep 120 >"$T/fifo2" & pids+=($!)

# control: an ordinary process of nobody is dumpable, so its /proc/PID/mem is nobody's
as_nobody cat "$T/fifo2" & ctl=$!; pids+=("$ctl")
has_open "$ctl" "$T/fifo2"
check "control: a plain process run as nobody has /proc/PID/mem owned by nobody" \
    owner_is "$ctl" "$NOBODY_UID"
kill "$ctl"

# run_case NAME READY CMD...: runs CMD as nobody, evaluates READY (shell code; $pid is the
# applet) to wait until the applet holds its input or listener, which it opens only after its
# start-up (hardening included), then checks it.
run_case() {
    local name=$1 ready=$2; shift 2
    as_nobody "$@" 2>"$T/$name.log" & local pid=$!; pids+=("$pid")
    if ! eval "$ready"; then
        fail "$name as nobody: did not reach its input: $(cat "$T/$name.log")"
        return
    fi
    check "$name as nobody: not dumpable (/proc/PID/mem owned by root)" owner_is "$pid" 0
    check "$name as nobody: RLIMIT_CORE is 0" core_zero "$pid"
    check "$name as nobody: still running (blocked on its input)" kill -0 "$pid"
    kill "$pid" 2>/dev/null
}

run_case vsock-recv 'wait_unix "$T/recv"' "$N" vsock-recv unix:"$T/recv" "$T/out"
run_case bridge 'wait_unix "$T/bridge"' "$N" bridge unix:"$T/bridge" tcp:127.0.0.1:9
run_case vsock-push 'has_open $pid "$T/fifo2"' "$N" vsock-push --timeout 30 unix:"$T/nobody" \
    "$T/fifo2"
run_case kms-decrypt 'has_open $pid "$T/fifo"' "$N" kms-decrypt --no-attest --region us-east-1 \
    "$T/fifo"
tap_done
