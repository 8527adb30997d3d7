#!/usr/bin/env bash
# eif/kernel.sh [--fetch]: prints the path of the kernel `make eif` uses when KERNEL is not set.
#   1. the blobs nitro-cli installs: $NITRO_BLOBS/bzImage (default /usr/share/nitro_enclaves/blobs)
#   2. the pinned Debian kernel of the VM harness, already in build/vm-cache (a bzImage)
#   3. with --fetch: that pinned kernel, downloaded by scripts/vm-kernel.sh (`apt-get download`
#      into build/vm-cache, never installed; the pin lives there, one line)
# Exits 1 with what to do when none is found.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
blobs=${NITRO_BLOBS:-/usr/share/nitro_enclaves/blobs}
if [ -f "$blobs/bzImage" ]; then
    readlink -f "$blobs/bzImage"
    exit 0
fi
if [ "${1:-}" = --fetch ]; then
    exec bash "$root/scripts/vm-kernel.sh" path bzImage
fi
k=$(find "${NS_VM_CACHE:-$root/build/vm-cache}" -mindepth 2 -maxdepth 2 -name bzImage -type f \
    2>/dev/null | LC_ALL=C sort | tail -1 || true)
if [ -z "$k" ]; then
    echo "eif/kernel.sh: no kernel: install aws-nitro-enclaves-cli (its blobs), set" \
        "KERNEL=/path/to/bzImage, or run 'bash eif/kernel.sh --fetch' for the pinned Debian one" >&2
    exit 1
fi
readlink -f "$k"
