# test/vm/lib.sh: shared setup of the VM tests (test/vm/test_*.sh). Source it after tap.sh.
# shellcheck shell=bash
# VM: the harness (test/vm/vm.sh); VM_TMP: a scratch directory removed on exit;
# vm_peer: builds test/vm/peer.c (static, musl; a tcp/vsock endpoint that checks data and
# half-close) and prints its path.
: "${NS_ROOT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${NSIGN:=$NS_ROOT/build/nsign}"
: "${PY:=/usr/bin/python3}"
export NSIGN
VM=$NS_ROOT/test/vm/vm.sh
VM_TMP=$(mktemp -d /tmp/nsign-vmtest.XXXXXX)
# Background processes a test starts on this machine (e.g. a fake server): killed on exit.
VM_BG_PIDS=()
vm_cleanup() {
    local p
    for p in "${VM_BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    rm -rf "$VM_TMP"
}
trap vm_cleanup EXIT

vm_peer() {
    local out=$VM_TMP/peer
    [ -x "$out" ] || musl-gcc -static -O2 -Wall -Wextra -Werror -o "$out" \
        "$NS_ROOT/test/vm/peer.c" >&2 || return 1
    echo "$out"
}

# vm_require_nsign: a failure line (not a skip) when the binary under test is missing.
vm_require_nsign() {
    if [ ! -x "$NSIGN" ]; then
        fail "nsign binary $NSIGN exists (build it first)"
        exit 1
    fi
}

# vm_run_guest SCRIPT [vm.sh OPTIONS...]: runs a guest script that prints TAP lines (with
# /vm/tap.sh), with the peer tool at /bin/peer; echoes the guest's output and adds one line for
# the harness's own verdict. Returns the guest's status.
vm_run_guest() {
    local script=$1 rc
    shift
    local peer
    peer=$(vm_peer) || { fail "build test/vm/peer.c with musl-gcc"; return 1; }
    "$VM" --script "$script" -f "$peer:/bin/peer" "$@" 2>"$VM_TMP/vm.err"
    rc=$?
    if [ "$rc" = 125 ]; then
        fail "the VM returned a result (harness: $(head -1 "$VM_TMP/vm.err"))"
        sed 's/^/# /' "$VM_TMP/vm.err"
    else
        check "the guest script exits 0 (status $rc)" test "$rc" = 0
    fi
    return "$rc"
}
