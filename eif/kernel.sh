#!/usr/bin/env bash
# eif/kernel.sh [--build]: prints the path of the kernel `make eif` uses when KERNEL is not set.
#   1. the blobs nitro-cli installs: $NITRO_BLOBS/bzImage (default /usr/share/nitro_enclaves/blobs)
#      -> the AWS-blobs ("nitro") layout of eif/build.sh
#   2. nsign's enclave kernel, built from Debian 13's linux source with eif/kernel.config
#      (scripts/kernel.sh, `make kernel`; cached machine-wide) -> the nsign layout
#   With --build, step 2 builds the kernel when it is not cached yet (about 5 min on 2 cores,
#   once per machine); without it, only an already built kernel is taken.
# Debian's distribution kernel is not a choice here: it has virtio-mmio and vsock only as
# modules and cannot find the devices Nitro announces on the command line (see eif/README.md).
# Exits 1 with what to do when no kernel is found.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
blobs=${NITRO_BLOBS:-/usr/share/nitro_enclaves/blobs}
if [ -f "$blobs/bzImage" ]; then
    readlink -f "$blobs/bzImage"
    exit 0
fi
case ${1:-} in
--build | --fetch) exec bash "$root/scripts/kernel.sh" path bzImage ;;
esac
if [ -e "$root/build/kernel/bzImage" ]; then
    readlink -f "$root/build/kernel/bzImage"
    exit 0
fi
echo "eif/kernel.sh: no kernel: run 'make kernel' (nsign's enclave kernel, built once per" \
    "machine), install aws-nitro-enclaves-cli (its blobs), or set KERNEL=/path/to/bzImage" >&2
exit 1
