#!/usr/bin/env bash
# eif/kernel.sh: prints the path of a kernel for `make eif` when KERNEL is not given.
#   1. the blobs nitro-cli installs (/usr/share/nitro_enclaves/blobs/bzImage, or NITRO_BLOBS)
#   2. the pinned Debian kernel the VM harness caches (build/vm-cache/**/boot/vmlinuz-*)
#   3. with --fetch: the pinned Debian kernel, downloaded with `apt-get download` into
#      build/eif-cache and unpacked there (never installed). Pin: EIF_KERNEL_PKG.
# Exit 1 with an explanation when none is found.
set -euo pipefail
cd "$(dirname "$0")/.."
EIF_KERNEL_PKG=${EIF_KERNEL_PKG:-linux-image-6.1.0-56-cloud-amd64}
blobs=${NITRO_BLOBS:-/usr/share/nitro_enclaves/blobs}
if [ -f "$blobs/bzImage" ]; then echo "$blobs/bzImage"; exit 0; fi
pick() { find "$@" -path '*/boot/vmlinuz-*' -type f 2>/dev/null | LC_ALL=C sort | tail -1 || true; }
k=$(pick build/vm-cache build/eif-cache)
if [ -z "$k" ] && [ "${1:-}" = --fetch ]; then
    mkdir -p build/eif-cache
    (cd build/eif-cache && ls "$EIF_KERNEL_PKG"_*.deb >/dev/null 2>&1 ||
        apt-get download "$EIF_KERNEL_PKG" >&2) || {
        echo "eif/kernel.sh: apt-get download $EIF_KERNEL_PKG failed: run 'apt-get update'" \
            "or set KERNEL=/path/to/bzImage" >&2; exit 1; }
    rm -rf build/eif-cache/root
    dpkg-deb -x build/eif-cache/"$EIF_KERNEL_PKG"_*.deb build/eif-cache/root
    k=$(pick build/eif-cache)
fi
if [ -z "$k" ]; then
    echo "eif/kernel.sh: no kernel: install aws-nitro-enclaves-cli (its blobs), set" \
        "KERNEL=/path/to/bzImage, or run 'bash eif/kernel.sh --fetch' for the pinned Debian one" >&2
    exit 1
fi
echo "$(readlink -f "$k")"
