#!/usr/bin/env bash
# eif/image.sh OUT NSIGN [TAG]: `make image`: builds Dockerfile.enclave (FROM scratch, the nsign
# binary and its applet symlinks) with docker, or with buildah (no daemon; Debian's package)
# when docker is absent. The context is OUT/rootfs, made the same way as for the EIF.
# BUILDAH_ARGS adds global buildah options (the test passes --root/--runroot to stay isolated).
set -euo pipefail
out=${1:?usage: eif/image.sh OUT NSIGN [TAG]}
nsign=${2:?usage: eif/image.sh OUT NSIGN [TAG]}
tag=${3:-${IMAGE_TAG:-nsign-enclave:latest}}
root=$(cd "$(dirname "$0")/.." && pwd)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-0}
rm -rf "$out/rootfs"
mkdir -p "$out/rootfs/bin"
cp "$nsign" "$out/rootfs/bin/nsign"
chmod 0755 "$out/rootfs/bin/nsign"
for a in $("$nsign" --list); do ln -s nsign "$out/rootfs/bin/$a"; done
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    docker build -t "$tag" -f "$root/Dockerfile.enclave" "$out/rootfs"
elif command -v buildah >/dev/null 2>&1; then
    # shellcheck disable=SC2086
    buildah ${BUILDAH_ARGS:-} --storage-driver vfs bud --timestamp "$SOURCE_DATE_EPOCH" \
        -t "$tag" -f "$root/Dockerfile.enclave" "$out/rootfs"
else
    echo "eif/image.sh: neither docker nor buildah is available: apt-get install buildah" \
        "(no daemon needed), or use 'make eif', which needs neither" >&2
    exit 1
fi
echo "eif/image.sh: built $tag from $out/rootfs" >&2
