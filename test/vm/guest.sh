# test/vm/guest.sh: helpers for scripts that run inside the VM (busybox sh). The harness puts it
# at /vm/guest.sh; `. /vm/guest.sh` also loads the TAP helpers (/vm/tap.sh: ok, fail, check,
# check_fails, skip, tap_done).
# shellcheck shell=dash
. /vm/tap.sh

# wait_until SECONDS CMD...: runs CMD every 0.1 s until it succeeds; 1 when SECONDS pass first.
wait_until() {
    local n=$(($1 * 10))
    shift
    while [ "$n" -gt 0 ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
        n=$((n - 1))
    done
    return 1
}

# tcp_listening PORT: something listens on tcp PORT (any local address).
tcp_listening() { netstat -ltn 2>/dev/null | grep -q "[:.]$1 .*LISTEN"; }

# show FILE...: the files as TAP comments (for logs of a failed step).
show() {
    local f
    for f in "$@"; do
        [ -f "$f" ] && sed "s|^|# $(basename "$f"): |" "$f"
    done
    return 0
}
