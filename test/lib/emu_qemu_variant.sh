#!/usr/bin/env bash
# emu_qemu_variant.sh: stands in for qemu-system-x86_64 under `run-enclave --emulator`
# (NSIGN_QEMU=this file) to boot the same EIF on a variant of QEMU's nitro-enclave machine, for the
# fail-closed checks that the machine itself never trips. EMU_QEMU_REAL is the real QEMU (with
# the nitro-enclave machine); `-M help` goes to it unchanged.
#
#   EMU_QEMU_VARIANT=extra-rng   the nitro-enclave machine as run-enclave asks for it, plus
#       -device virtio-rng-device: the kernel (CONFIG_HW_RANDOM_VIRTIO=y) then prefers
#       virtio_rng.0 (quality 1024 by default) over nsm-hwrng (quality 1000,
#       drivers/misc/nsm.c), so /sys/class/misc/hw_random/rng_current is not the NSM's.
#   EMU_QEMU_VARIANT=unmeasured  QEMU's microvm machine (the one nitro-enclave derives from),
#       ACPI and PCIe off like nitro-enclave, with the same vhost-user vsock and QEMU's
#       virtio-nsm-device, booting the EIF's own kernel, command line and ramdisks (extracted
#       to EMU_QEMU_WORK by eif_identity.py). nitro-enclave's reset handler is what measures the
#       image into PCR0-2 and locks PCRs 0-15 (hw/i386/nitro_enclave.c); without it QEMU's NSM
#       answers PCR0 = 48 zero bytes, what a debug-mode enclave's NSM reports on Nitro. QEMU's
#       nitro-enclave machine has no debug mode of its own (its only options are vsock, id,
#       parent-role and parent-id: docs/system/i386/nitro-enclave.rst).
set -euo pipefail
real=${EMU_QEMU_REAL:?EMU_QEMU_REAL must name the real qemu-system-x86_64}
if [ "$*" = "-M help" ]; then exec "$real" "$@"; fi
case "${EMU_QEMU_VARIANT:-}" in
extra-rng)
    exec "$real" "$@" -device virtio-rng-device
    ;;
unmeasured)
    work=${EMU_QEMU_WORK:?EMU_QEMU_WORK must name a scratch folder}
    args=() mem=
    while [ $# -gt 0 ]; do
        case "$1" in
        -M)
            case "$2" in
            nitro-enclave,vsock=*) chardev=${2#nitro-enclave,vsock=} ;;
            *) echo "emu_qemu_variant: unexpected machine $2" >&2; exit 2 ;;
            esac
            shift 2
            ;;
        -m) mem=$2; args+=("$1" "$2"); shift 2 ;;
        -kernel)
            mkdir -p "$work"
            /usr/bin/python3 "$(dirname "$0")/eif_identity.py" extract "$2" "$work"
            args+=(-kernel "$work/kernel" -initrd "$work/initrd" -append "$(cat "$work/cmdline")")
            shift 2
            ;;
        *) args+=("$1"); shift ;;
        esac
    done
    : "${chardev:?no nitro-enclave machine in the command line}" "${mem:?no -m}"
    # vhost-user needs the guest's memory shareable: memfd, as nitro-enclave makes it.
    exec "$real" -M "microvm,acpi=off,pcie=off,memory-backend=ram0" \
        -object "memory-backend-memfd,id=ram0,size=$mem" "${args[@]}" \
        -device "vhost-user-vsock-device,chardev=$chardev" -device virtio-nsm-device
    ;;
*)
    echo "emu_qemu_variant: EMU_QEMU_VARIANT must be extra-rng or unmeasured" >&2
    exit 2
    ;;
esac
