# tap.sh: TAP-style checks for shell tests. Source it; use ok/fail/check/skip; end with tap_done.
# Each line "ok - ..." / "not ok - ..." is tallied by test/run.sh.
TAP_FAILED=0
ok() { echo "ok - $*"; }
fail() { echo "not ok - $*"; TAP_FAILED=$((TAP_FAILED + 1)); }
# check DESC CMD...: runs CMD, ok when it exits 0; returns 1 when not, so that
# `check ... || diagnostics` prints them only for a failure.
check() { local d=$1; shift; if "$@"; then ok "$d"; else fail "$d"; return 1; fi; }
# check_fails DESC CMD...: ok when CMD exits non-zero.
check_fails() { local d=$1; shift; if "$@"; then fail "$d (unexpectedly succeeded)"; else ok "$d"; fi; }
skip() { echo "ok - $1 # SKIP $2"; }
tap_done() { [ "$TAP_FAILED" = 0 ]; }
# A free tcp port on 127.0.0.1 (bind to 0, read, release).
free_port() { /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
# wait_port PORT [SECONDS]: until something listens on 127.0.0.1:PORT.
wait_port() {
    local i=0 n=$(( ${2:-10} * 20 ))
    while [ $i -lt $n ]; do
        (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
        sleep 0.05; i=$((i + 1))
    done
    return 1
}
# wait_unix PATH [SECONDS]: until the socket file exists.
wait_unix() {
    local i=0 n=$(( ${2:-10} * 20 ))
    while [ $i -lt $n ]; do [ -S "$1" ] && return 0; sleep 0.05; i=$((i + 1)); done
    return 1
}
