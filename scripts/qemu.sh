#!/usr/bin/env bash
# scripts/qemu.sh [build|path|dir]: qemu-system-x86_64 with QEMU's nitro-enclave machine and
# virtio-nsm-device, built from Debian 13's pinned qemu source package (QEMU_PIN in
# scripts/pins.sh). Debian's own qemu packages lack the machine (libcbor is not among their
# build dependencies).
#
# Built once per machine into the cache ${NSIGN_CACHE:-/var/cache/nsign}/qemu-<version>-<key>/
# (key: a hash of this recipe and the pin), holding bin/qemu-system-x86_64 and BUILDINFO. The
# build runs in a temporary folder beside it and is renamed into place only when complete, under
# a lock, so a half-built entry is never taken as done. build/qemu/qemu-system-x86_64 is a
# symlink to the cached binary (`make qemu`).
#
#   build (default)  build if needed, link build/qemu/, print the binary's path
#   path             same; print only the binary's path
#   dir              the cache entry's path (built if needed)
# Firmware (microvm's, SeaBIOS) comes from Debian's qemu-system-data and seabios packages at
# run time; the binary looks there without -L.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/pins.sh"
CACHE=${NSIGN_CACHE:-/var/cache/nsign}
VERSION=${QEMU_PIN#qemu=}
# What the binary depends on; the cache key hashes exactly this (comments can change freely).
CONFIGURE=(--python=/usr/bin/python3 --prefix=/usr --firmwarepath=/usr/share/qemu:/usr/share/seabios
    --target-list=x86_64-softmmu --without-default-features --enable-libcbor --enable-gnutls
    --enable-tcg --enable-fdt=system --enable-vhost-user --disable-docs --disable-install-blobs)
RECIPE_VERSION=1 # bump when the build steps below change what is built
KEY=$(printf '%s\n' "$QEMU_PIN" "$RECIPE_VERSION" "${CONFIGURE[@]}" | sha256sum | cut -c1-12)
DIR=$CACHE/qemu-${VERSION#*:}-$KEY
BIN=$DIR/bin/qemu-system-x86_64
# Build dependencies: Debian 12 packages, and from bookworm-backports the two it lacks in new
# enough versions (configure needs meson >= 1.5; the +ds source has no bundled python wheels).
BUILD_DEPS=(build-essential pkg-config ninja-build flex bison libcbor-dev libgnutls28-dev libfdt-dev
    libglib2.0-dev libpixman-1-dev dpkg-dev qemu-system-data seabios)
BACKPORTS_DEPS=(meson python3-pycotap)

die() {
    echo "qemu: $*" >&2
    exit 1
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

install_deps() {
    local missing=() bp=() p
    for p in "${BUILD_DEPS[@]}"; do installed "$p" || missing+=("$p"); done
    for p in "${BACKPORTS_DEPS[@]}"; do installed "$p" || bp+=("$p"); done
    if [ ${#missing[@]} -gt 0 ] || [ ${#bp[@]} -gt 0 ] || ! installed meson ||
        ! dpkg --compare-versions "$(dpkg-query -W -f='${Version}' meson)" ge 1.5; then
        [ "$(id -u)" = 0 ] || die "must run as root to install build dependencies (try: sudo make qemu)"
        bash "$ROOT/scripts/deps.sh" trixie-src
        export DEBIAN_FRONTEND=noninteractive
        [ ${#missing[@]} -eq 0 ] || apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        apt-get install -y -qq --no-install-recommends -t bookworm-backports "${BACKPORTS_DEPS[@]}" >/dev/null
    fi
}

# fetch_source DEST: apt-get source of the pinned version (Debian's patches applied) into DEST/src.
fetch_source() {
    local dest=$1 sandbox=()
    [ "$(id -u)" = 0 ] && sandbox=(-o APT::Sandbox::User=root)
    bash "$ROOT/scripts/deps.sh" trixie-src >/dev/null
    mkdir -p "$dest/dl"
    if ! (cd "$dest/dl" && apt-get source -qq "${sandbox[@]}" "$QEMU_PIN" >"$dest/dl.log" 2>&1); then
        apt-get update -qq >/dev/null 2>&1 || true
        if ! (cd "$dest/dl" && apt-get source -qq "${sandbox[@]}" "$QEMU_PIN" >"$dest/dl.log" 2>&1); then
            sed 's/^/  /' "$dest/dl.log" >&2
            local now
            now=$(apt-cache showsrc qemu 2>/dev/null | awk '/^Version:/{print $2}' | sort -V | tail -1)
            die "source package $QEMU_PIN is not available from the archive any more; it now has" \
                "qemu=${now:-<none>}: update QEMU_PIN in scripts/pins.sh"
        fi
    fi
    mv "$(find "$dest/dl" -mindepth 1 -maxdepth 1 -type d | head -1)" "$dest/src"
    rm -rf "$dest/dl"
}

build() {
    [ -f "$DIR/.complete" ] && return 0
    install_deps
    mkdir -p "$CACHE"
    local tmp t0=$SECONDS
    # A fixed name per key, emptied first: a build killed half-way leaves nothing behind for long
    # (the lock is held, so no other build of this key is using it).
    tmp=$CACHE/.qemu-build-$KEY
    rm -rf "$tmp"
    mkdir -p "$tmp"
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" EXIT
    echo "qemu: building $QEMU_PIN into $DIR (about 7-10 min on 2 cores)" >&2
    fetch_source "$tmp"
    # The +ds tarball drops the prebuilt edk2 firmware; do not try to unpack it.
    sed -i 's/^unpack_edk2_blobs = .*/unpack_edk2_blobs = false/' "$tmp/src/meson.build"
    grep -q '^unpack_edk2_blobs = false' "$tmp/src/meson.build" ||
        die "meson.build has no unpack_edk2_blobs setting any more: adapt scripts/qemu.sh"
    mkdir -p "$tmp/build"
    (
        cd "$tmp/build"
        unset LIBRARY_PATH CPATH C_INCLUDE_PATH
        PATH=/usr/sbin:/usr/bin:/sbin:/bin
        ../src/configure "${CONFIGURE[@]}" >"$tmp/configure.log" 2>&1 ||
            { tail -30 "$tmp/configure.log" >&2; die "configure failed (log above)"; }
        ninja -j"${NS_JOBS:-2}" qemu-system-x86_64 >"$tmp/ninja.log" 2>&1 ||
            { tail -30 "$tmp/ninja.log" >&2; die "ninja qemu-system-x86_64 failed (log above)"; }
    )
    mkdir -p "$tmp/out/bin"
    cp "$tmp/build/qemu-system-x86_64" "$tmp/out/bin/"
    "$tmp/out/bin/qemu-system-x86_64" -M help | grep -q '^nitro-enclave ' ||
        die "the built qemu-system-x86_64 has no nitro-enclave machine"
    "$tmp/out/bin/qemu-system-x86_64" -device help | grep -q '"virtio-nsm-device"' ||
        die "the built qemu-system-x86_64 has no virtio-nsm-device"
    { echo "source: $QEMU_PIN (apt-get source, Debian's patches applied)"
      echo "recipe: scripts/qemu.sh (key $KEY): configure ${CONFIGURE[*]}"
      echo "built: $(date -u +%FT%TZ) in $((SECONDS - t0)) s"; } >"$tmp/out/BUILDINFO"
    touch "$tmp/out/.complete"
    rm -rf "$DIR"
    mv "$tmp/out" "$DIR"
    echo "qemu: built $BIN in $((SECONDS - t0)) s" >&2
}

mkdir -p "$CACHE"
exec 9>"$CACHE/.qemu-$KEY.lock"
flock -w 1800 9 || die "timed out waiting for another build of $DIR (lock $CACHE/.qemu-$KEY.lock)"
build
exec 9>&-
mkdir -p "$ROOT/build/qemu"
ln -sfn "$BIN" "$ROOT/build/qemu/qemu-system-x86_64"
case ${1:-build} in
build | path) echo "$BIN" ;;
dir) echo "$DIR" ;;
*) die "usage: scripts/qemu.sh [build|path|dir]" ;;
esac
