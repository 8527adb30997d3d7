#!/usr/bin/env bash
# test_enclave_pid1: enclave-entrypoint as the guest's PID 1 (rdinit=/bin/enclave-entrypoint, as
# in an EIF built from nsign and a kernel alone): it mounts /proc, /sys and /dev, takes its
# configuration from the kernel command line and /env, loads the vsock modules named in
# NSIGN_MODULES with finit_module, brings lo up, starts its bridges on real AF_VSOCK, waits for
# its secrets and, when they do not come (NSIGN_ENCLAVE_RECV_TIMEOUT=2), names the step and powers
# the guest off instead of returning (PID 1 must not exit). A second boot leaves the heartbeat on
# (vsock:3:9000, nobody there): the boot fails at the heartbeat step.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/lib.sh"
vm_require_nsign
VM=$NS_ROOT/test/vm/vm.sh
T=$(mktemp -d /tmp/ns-vm-pid1.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
mods=/vm/modules/vsock.ko,/vm/modules/vmw_vsock_virtio_transport_common.ko,/vm/modules/vsock_loopback.ko

boot() {  # boot NAME APPEND: the console log in $T/NAME.log
    bash "$VM" -t 120 -l "$T/$1.log" -a "rdinit=/bin/enclave-entrypoint $2" true \
        >/dev/null 2>"$T/$1.err"
    echo $? >"$T/$1.rc"
}
has() { grep -q -- "$2" "$T/$1.log" || { echo "# not in the console: $2"; return 1; }; }

boot recv "NSIGN_MODULES=$mods NSIGN_ENCLAVE_HEARTBEAT_ADDR=none NSIGN_ENCLAVE_RECV_TIMEOUT=2"
check "PID 1: started as pid 1" has recv 'enclave-entrypoint: info starting pid=1 pid1=1'
check "PID 1: /proc /sys /dev mounted" has recv 'step=mount ok'
check "PID 1: finit_module of the modules in NSIGN_MODULES" has recv 'step=modules ok'
check "PID 1: lo up" has recv 'step=loopback ok'
check "PID 1: bridges listen on AF_VSOCK" has recv 'step=bridges ok .*ingress=vsock:any:50051'
check "PID 1: receive timeout names its step" has recv 'step=receive-[a-z-]* failed'
check "PID 1: powers off instead of exiting" has recv 'powering off (exit status 1)'
check "PID 1: no kernel panic (init did not exit)" bash -c "! grep -q 'Attempted to kill init' '$T/recv.log'"

boot hb "NSIGN_MODULES=$mods NSIGN_ENCLAVE_RECV_TIMEOUT=2"
check "PID 1: heartbeat to vsock:3:9000 attempted by default" has hb 'step=heartbeat failed'
check "PID 1: nothing listens after a failed heartbeat" bash -c "! grep -q 'step=bridges' '$T/hb.log'"
check "PID 1: powers off after the failed heartbeat" has hb 'powering off'
tap_done
