# test/vm/lib.sh: shared setup of the VM tests (test/vm/test_*.sh). Source it after tap.sh.
# VM: the harness (test/vm/vm.sh); VM_TMP: a scratch directory removed on exit;
# vm_peer: builds test/vm/peer.c (static, musl; a tcp/vsock endpoint that checks data and
# half-close) and prints its path.
: "${NS_ROOT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${NSIGN:=$NS_ROOT/build/nsign}"
export NSIGN
VM=$NS_ROOT/test/vm/vm.sh
VM_TMP=$(mktemp -d /tmp/nsign-vmtest.XXXXXX)
trap 'rm -rf "$VM_TMP"' EXIT

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
