#!/usr/bin/env bash
# scripts/kernel.sh [build|path WHAT|second-build]: nsign's enclave kernel, built from Debian 13's
# pinned linux 6.12 source package (KERNEL_PIN in scripts/pins.sh) with the committed
# configuration fragment eif/kernel.config applied to tinyconfig: everything the enclave needs
# built in (virtio-mmio with command-line devices, vsock over virtio, the NSM driver, hwrng, the
# 8250 console, initramfs), no modules.
#
# Cache (machine-wide, ${NSIGN_CACHE:-/var/cache/nsign}):
#   linux-src-<version>/                 the unpacked source (linux-source-6.12: Debian's
#                                        patches applied), shared by every configuration
#   apt-trixie/                          apt's private state for fetching it (see below)
#   kernel-<version>-<key>/              bzImage, vmlinux, config (the full .config), BUILDINFO;
#                                        key = hash of the pin, the fragment and the build recipe
#   kernel-<version>-<key>-second/       `second-build`: the same kernel built again in another
#                                        build folder, for the reproducibility test
# Each entry is built in a temporary folder and renamed into place when complete, under a lock:
# a half-built entry is never taken as done. build/kernel/bzImage links to the cached one.
#
#   build (default)   build if needed, link build/kernel/, print the bzImage path
#   path bzImage|vmlinux|config|dir|release    the cached file (built if needed)
#   second-build      build the second copy if needed; print its bzImage path
#   check-config      configure only (in a temporary folder) and check the fragment holds
# NS_KERNEL_FRAGMENT=FILE replaces eif/kernel.config (it is part of the cache key).
# Reproducible: KBUILD_BUILD_TIMESTAMP (the Debian changelog's date), USER, HOST and VERSION are
# fixed, the build path does not reach the image; the same compiler (Debian 12's gcc) is assumed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/pins.sh"
CACHE=${NSIGN_CACHE:-/var/cache/nsign}
FRAGMENT=${NS_KERNEL_FRAGMENT:-$ROOT/eif/kernel.config}
VERSION=${KERNEL_PIN#*=}
RECIPE_VERSION=1 # bump when the build steps below change what is built
BUILD_DEPS=(build-essential bc flex bison libelf-dev libssl-dev xz-utils cpio dpkg-dev debian-archive-keyring)
KEY=$( { echo "$KERNEL_PIN $RECIPE_VERSION $(gcc -dumpfullversion 2>/dev/null)"; cat "$FRAGMENT"; } |
    sha256sum | cut -c1-12)
SRC=$CACHE/linux-src-$VERSION
DIR=$CACHE/kernel-$VERSION-$KEY
JOBS=${NS_JOBS:-2}

die() {
    echo "kernel: $*" >&2
    exit 1
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

install_deps() {
    local missing=() p
    for p in "${BUILD_DEPS[@]}"; do installed "$p" || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" = 0 ] || die "must run as root to install ${missing[*]} (try: sudo make kernel)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The source comes as Debian 13's binary package linux-source-6.12 (the tarball of the source
# with Debian's patches applied; the source package's own files are not served by every mirror).
# It is fetched by apt with a private state folder ($CACHE/apt-trixie: its own sources list of
# trixie and trixie-security, package lists and download cache), so the index signature and the
# .deb's SHA256 are checked by apt while the machine's own apt configuration is left alone and
# nothing can ever be installed or upgraded from trixie.
APT_DIR=$CACHE/apt-trixie
apt_private() {
    mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial" "$APT_DIR/empty.d"
    local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    printf '%s\n' \
        "deb [signed-by=$keyring] http://deb.debian.org/debian trixie main" \
        "deb [signed-by=$keyring] http://deb.debian.org/debian-security trixie-security main" \
        >"$APT_DIR/sources.list"
    local o=(-o Dir::Etc::SourceList="$APT_DIR/sources.list" -o Dir::Etc::SourceParts="$APT_DIR/empty.d"
        -o Dir::Etc::Preferences="$APT_DIR/empty.d/none" -o Dir::Etc::PreferencesParts="$APT_DIR/empty.d"
        -o Dir::State::Lists="$APT_DIR/lists" -o Dir::Cache="$APT_DIR/cache"
        -o Acquire::Languages=none -o APT::Architectures::=amd64)
    [ "$(id -u)" = 0 ] && o+=(-o APT::Sandbox::User=root)
    "$@" "${o[@]}"
}

fetch_source() {
    [ -f "$SRC/.complete" ] && return 0
    local tmp t0=$SECONDS pkg=${KERNEL_PIN%%=*}
    tmp=$CACHE/.linux-src-$VERSION.tmp # fixed name: a killed fetch is cleaned up by the next one
    rm -rf "$tmp"
    mkdir -p "$tmp"
    echo "kernel: apt-get download $KERNEL_PIN (150 MB, Debian 13)" >&2
    if ! (cd "$tmp" && apt_private apt-get download -q "$KERNEL_PIN" >"$tmp/dl.log" 2>&1); then
        apt_private apt-get update -qq >"$tmp/update.log" 2>&1 ||
            { sed 's/^/  /' "$tmp/update.log" >&2; rm -rf "$tmp"; die "apt-get update of trixie's package lists failed"; }
        if ! (cd "$tmp" && apt_private apt-get download -q "$KERNEL_PIN" >"$tmp/dl.log" 2>&1); then
            sed 's/^/  /' "$tmp/dl.log" >&2
            rm -rf "$tmp"
            local now
            now=$(apt_private apt-cache madison "$pkg" 2>/dev/null | awk '{print $3}' | sort -V | tail -1)
            die "cannot download $KERNEL_PIN; trixie now has $pkg=${now:-<none>}:" \
                "update KERNEL_PIN in scripts/pins.sh"
        fi
    fi
    local deb
    deb=$(find "$tmp" -maxdepth 1 -name '*.deb' | head -1)
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" ./usr/src/linux-source-6.12.tar.xz \
        ./usr/share/doc/linux-source-6.12/changelog.Debian.gz ||
        die "$deb: no linux-source-6.12.tar.xz in the package"
    tar -xJf "$tmp/usr/src/linux-source-6.12.tar.xz" -C "$tmp"
    [ -f "$tmp/linux-source-6.12/Makefile" ] || die "$deb: the tarball holds no linux-source-6.12/"
    # The build timestamp is the date of Debian's changelog entry for this version.
    gzip -dc "$tmp/usr/share/doc/linux-source-6.12/changelog.Debian.gz" >"$tmp/changelog"
    dpkg-parsechangelog -l "$tmp/changelog" -S Date >"$tmp/linux-source-6.12/.nsign-timestamp"
    touch "$tmp/linux-source-6.12/.complete"
    rm -rf "$SRC"
    mv "$tmp/linux-source-6.12" "$SRC"
    rm -rf "$tmp"
    echo "kernel: source unpacked in $((SECONDS - t0)) s" >&2
}

# kmake BUILDDIR TARGET...: the kernel's make, out of tree, with the reproducibility settings.
kmake() {
    local b=$1
    shift
    (
        unset LIBRARY_PATH CPATH C_INCLUDE_PATH KCONFIG_CONFIG
        export LC_ALL=C TZ=UTC
        make -C "$SRC" O="$b" ARCH=x86_64 -j"$JOBS" \
            KBUILD_BUILD_TIMESTAMP="$(cat "$SRC/.nsign-timestamp")" KBUILD_BUILD_USER=nsign \
            KBUILD_BUILD_HOST=nsign KBUILD_BUILD_VERSION=1 "$@"
    )
}

# kconfigure BUILDDIR: tinyconfig + the fragment + olddefconfig; every line of the fragment
# must hold afterwards (a renamed or unmet symbol fails here, by name, not at boot).
kconfigure() {
    local b=$1
    {
        kmake "$b" tinyconfig &&
            "$SRC/scripts/kconfig/merge_config.sh" -m -O "$b" "$b/.config" "$FRAGMENT" &&
            kmake "$b" olddefconfig
    } >"$b.log" 2>&1 || { tail -20 "$b.log" >&2; die "configuring the kernel failed (log: $b.log)"; }
    local line bad=0 sym
    while IFS= read -r line; do
        case $line in
        CONFIG_*=*) grep -qxF "$line" "$b/.config" || { echo "kernel: $FRAGMENT: '$line' did not take" \
            "(now: $(grep -E "^(# )?${line%%=*}[= ]" "$b/.config" || echo absent))" >&2; bad=1; } ;;
        "# CONFIG_"*" is not set")
            sym=${line#\# }
            sym=${sym%% *}
            ! grep -q "^$sym=" "$b/.config" || { echo "kernel: $FRAGMENT: $sym should be off" >&2; bad=1; } ;;
        esac
    done <"$FRAGMENT"
    [ "$bad" = 0 ] || die "$FRAGMENT does not apply to $KERNEL_PIN (see above)"
}

# kbuild BUILDDIR OUTDIR: configures and builds into BUILDDIR, copies the results to OUTDIR.
kbuild() {
    local b=$1 out=$2 t0=$SECONDS ts
    ts=$(cat "$SRC/.nsign-timestamp")
    kconfigure "$b"
    kmake "$b" bzImage >>"$b.log" 2>&1 || { tail -30 "$b.log" >&2; die "building the kernel failed (log: $b.log)"; }
    mkdir -p "$out"
    cp "$b/arch/x86/boot/bzImage" "$out/bzImage"
    cp "$b/vmlinux" "$out/vmlinux"
    cp "$b/.config" "$out/config"
    cat "$b/include/config/kernel.release" >"$out/release"
    { echo "source: $KERNEL_PIN (Debian 13; Debian's patches applied)"
      echo "config: eif/kernel.config on tinyconfig (key $KEY, recipe $RECIPE_VERSION)"
      echo "compiler: $(gcc --version | head -1)"
      echo "timestamp: $ts"
      echo "built: $(date -u +%FT%TZ) in $((SECONDS - t0)) s with -j$JOBS"
      echo "bzImage: $(stat -c %s "$out/bzImage") bytes, sha256 $(sha256sum <"$out/bzImage" | cut -d' ' -f1)"
    } >"$out/BUILDINFO"
}

# build_entry DEST BUILDNAME: one cache entry, built in $CACHE/BUILDNAME (a fixed name per entry;
# the second build uses another one, so the comparison covers the build path too).
build_entry() {
    local dest=$1 bname=$2
    [ -f "$dest/.complete" ] && return 0
    install_deps
    fetch_source
    local b=$CACHE/$bname tmp t0=$SECONDS
    rm -rf "$b" "$b.log"
    tmp=$CACHE/.kernel-out-$(basename "$dest")
    rm -rf "$tmp"
    mkdir -p "$tmp"
    echo "kernel: building $KERNEL_PIN with eif/kernel.config into $dest (about 9-12 min on 2 cores)" >&2
    kbuild "$b" "$tmp"
    touch "$tmp/.complete"
    chmod 0755 "$tmp"
    rm -rf "$dest"
    mv "$tmp" "$dest"
    rm -rf "$b" "$b.log"
    echo "kernel: built $dest/bzImage ($(stat -c %s "$dest/bzImage") bytes) in $((SECONDS - t0)) s" >&2
}

mkdir -p "$CACHE"
exec 9>"$CACHE/.kernel-$VERSION.lock"
flock -w 3600 9 || die "timed out waiting for another kernel build (lock $CACHE/.kernel-$VERSION.lock)"
cmd=${1:-build}
case $cmd in
build | path)
    build_entry "$DIR" ".kernel-build-$KEY"
    exec 9>&-
    mkdir -p "$ROOT/build/kernel"
    ln -sfn "$DIR/bzImage" "$ROOT/build/kernel/bzImage"
    ln -sfn "$DIR/config" "$ROOT/build/kernel/config"
    if [ "$cmd" = build ]; then
        echo "$DIR/bzImage"
    else
        case ${2:-} in
        bzImage | vmlinux | config | release) echo "$DIR/$2" ;;
        dir) echo "$DIR" ;;
        *) die "usage: scripts/kernel.sh path bzImage|vmlinux|config|release|dir" ;;
        esac
    fi
    ;;
second-build)
    build_entry "$DIR-second" ".kernel-build-$KEY-second-tree"
    echo "$DIR-second/bzImage"
    ;;
check-config)
    install_deps
    fetch_source
    b=$(mktemp -d "$CACHE/.kernel-check.XXXXXX")
    trap 'rm -rf "$b" "$b.log"' EXIT
    kconfigure "$b"
    echo "kernel: $FRAGMENT applies to $KERNEL_PIN"
    ;;
*) die "usage: scripts/kernel.sh [build | path bzImage|vmlinux|config|release|dir | second-build | check-config]" ;;
esac
