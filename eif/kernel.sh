#!/usr/bin/env bash
# eif/kernel.sh [--build]: prints the path of the kernel `make eif` uses when KERNEL is not set.
#   LAYOUT=nsign (the default, whatever is installed): nsign's enclave kernel, built from
#     Debian 13's linux source with eif/kernel-patches/ and eif/kernel.config (scripts/kernel.sh,
#     `make kernel`; cached machine-wide). With --build it is built when not cached yet (about
#     10-20 min on 2 cores, once per machine); without it, only an already built kernel is taken.
#   LAYOUT=nitro (only when asked for by name): the kernel nitro-cli installs,
#     $NITRO_BLOBS/bzImage (default /usr/share/nitro_enclaves/blobs).
# nitro-cli's blobs being installed never changes the choice: an EC2 host with nitro-cli builds
# the same nsign-layout EIF as any other machine (see eif/README.md, "Which to deploy").
# Debian's distribution kernel is not a choice here: it has virtio-mmio and vsock only as
# modules and cannot find the devices Nitro announces on the command line (see eif/README.md).
# Exits 1 with what to do when no kernel is found.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
case ${LAYOUT:-nsign} in
nitro)
    blobs=${NITRO_BLOBS:-/usr/share/nitro_enclaves/blobs}
    if [ -f "$blobs/bzImage" ]; then
        readlink -f "$blobs/bzImage"
        exit 0
    fi
    echo "eif/kernel.sh: LAYOUT=nitro wants nitro-cli's blobs, and $blobs/bzImage does not exist:" \
        "install aws-nitro-enclaves-cli or set NITRO_BLOBS (or build the default nsign layout)" >&2
    exit 1
    ;;
nsign) ;;
*)
    echo "eif/kernel.sh: unknown LAYOUT '$LAYOUT': use nsign (the default) or nitro" >&2
    exit 1
    ;;
esac
case ${1:-} in
--build | --fetch) exec bash "$root/scripts/kernel.sh" path bzImage ;;
esac
if [ -e "$root/build/kernel/bzImage" ]; then
    readlink -f "$root/build/kernel/bzImage"
    exit 0
fi
echo "eif/kernel.sh: no kernel: run 'make kernel' (nsign's enclave kernel, built once per" \
    "machine) or set KERNEL=/path/to/bzImage" >&2
exit 1
