#!/usr/bin/env bash
# scripts/kernel.sh [build|path WHAT|second-build|check-config|check-platform]: nsign's enclave
# kernel, built from Debian 13's pinned linux 6.12 source package (KERNEL_PIN in
# scripts/pins.sh) with nsign's own patches (eif/kernel-patches/*.patch, applied in name order)
# and the committed configuration fragment eif/kernel.config applied to tinyconfig: everything
# the enclave needs built in (virtio-mmio with command-line devices, vsock over virtio, the NSM
# driver, hwrng, the 8250 console, initramfs, ACPI), no modules. The resolved configuration
# must pass the platform list eif/kernel-platform.txt (the options that equal AWS's enclave
# kernel, and the deliberate differences).
#
# Cache (machine-wide, ${NSIGN_CACHE:-/var/cache/nsign}):
#   linux-src-<version>/                 the unpacked source (linux-source-6.12: Debian's
#                                        patches applied), shared by every configuration; never
#                                        modified
#   linux-src-<version>+<pkey>/          that source with nsign's patches applied (pkey = hash
#                                        of the patches): hard links to the unpacked source
#                                        except for the files the patches change
#   apt-trixie/                          apt's private state for fetching it (see below)
#   kernel-<version>-<key>/              bzImage, vmlinux, config (the full .config), BUILDINFO
#                                        (with every patch: file name and SHA-256); key = hash of
#                                        the pin, the patches, the fragment and the build recipe
#   kernel-<version>-<key>-second/       `second-build`: the same kernel built again in another
#                                        build folder, for the reproducibility test
# Each entry is built in a temporary folder and renamed into place when complete, under a lock:
# a half-built entry is never taken as done. build/kernel/bzImage links to the cached one.
#
#   build (default)   build if needed, link build/kernel/, print the bzImage path
#   path bzImage|vmlinux|config|dir|release    the cached file (built if needed)
#   second-build      build the second copy if needed; print its bzImage path
#   check-config      configure only (in a temporary folder) and check that the fragment holds
#                     and that the result passes eif/kernel-platform.txt
#   check-platform [CONFIG]   check a resolved .config (default: the cached kernel's `config`,
#                     which must be built) against eif/kernel-platform.txt; no build, no lock
# NS_KERNEL_FRAGMENT=FILE replaces eif/kernel.config, NS_KERNEL_PATCHES=DIR eif/kernel-patches/
# (both are part of the cache key), NS_KERNEL_PLATFORM=FILE eif/kernel-platform.txt.
# Reproducible: KBUILD_BUILD_TIMESTAMP (the Debian changelog's date), USER, HOST and VERSION are
# fixed, the build path does not reach the image; the same compiler (Debian 12's gcc) is assumed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/pins.sh"
CACHE=${NSIGN_CACHE:-/var/cache/nsign}
FRAGMENT=${NS_KERNEL_FRAGMENT:-$ROOT/eif/kernel.config}
PATCH_DIR=${NS_KERNEL_PATCHES:-$ROOT/eif/kernel-patches}
PLATFORM=${NS_KERNEL_PLATFORM:-$ROOT/eif/kernel-platform.txt}
VERSION=${KERNEL_PIN#*=}
RECIPE_VERSION=2 # bump when the build steps below change what is built (2: patches, ACPI)
BUILD_DEPS=(build-essential bc flex bison libelf-dev libssl-dev xz-utils cpio dpkg-dev debian-archive-keyring patch)
shopt -s nullglob
PATCHES=("$PATCH_DIR"/*.patch) # name order (the glob sorts)
shopt -u nullglob
# The patches' names and bytes, one line each: part of the cache key and of BUILDINFO.
patch_list() {
    local p
    for p in ${PATCHES[@]+"${PATCHES[@]}"}; do
        echo "$(basename "$p") sha256 $(sha256sum <"$p" | cut -d' ' -f1)"
    done
}
PATCH_LIST=$(patch_list)
PKEY=$(echo "$PATCH_LIST" | sha256sum | cut -c1-12)
KEY=$( { echo "$KERNEL_PIN $RECIPE_VERSION $(gcc -dumpfullversion 2>/dev/null)"; echo "$PATCH_LIST"
    cat "$FRAGMENT"; } | sha256sum | cut -c1-12)
SRC0=$CACHE/linux-src-$VERSION # as unpacked, never modified
SRC=$SRC0                      # what is built: SRC0, or its patched copy (patch_source)
[ ${#PATCHES[@]} -eq 0 ] || SRC=$CACHE/linux-src-$VERSION+$PKEY
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
    [ -f "$SRC0/.complete" ] && return 0
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
    rm -rf "$SRC0"
    mv "$tmp/linux-source-6.12" "$SRC0"
    rm -rf "$tmp"
    echo "kernel: source unpacked in $((SECONDS - t0)) s" >&2
}

# patch_source: $SRC = $SRC0 with the patches applied, made once per set of patches. The copy
# is hard links (cheap: no second 1.5 GB tree) except the files the patches touch, which get
# their own copy first, so the unpacked source shared by other keys is never changed. Every
# patch must apply exactly (no fuzz, no offset guessing beyond patch's own, no reversed hunks).
patch_source() {
    [ "$SRC" = "$SRC0" ] && return 0
    [ -f "$SRC/.complete" ] && return 0
    local tmp=$CACHE/.linux-src-$VERSION+$PKEY.tmp p f t0=$SECONDS
    rm -rf "$tmp"
    cp -al "$SRC0" "$tmp" 2>/dev/null || { rm -rf "$tmp"; cp -a "$SRC0" "$tmp"; }
    rm -f "$tmp/.complete"
    for p in "${PATCHES[@]}"; do
        # Break the hard links of the files this patch names (+++ b/PATH).
        for f in $(sed -n 's|^+++ b/\([^[:space:]]*\).*|\1|p' "$p"); do
            [ -f "$tmp/$f" ] || continue
            cp -p "$tmp/$f" "$tmp/$f.nsign-copy" && mv -f "$tmp/$f.nsign-copy" "$tmp/$f"
        done
        patch -d "$tmp" -p1 --forward --batch --fuzz=0 --no-backup-if-mismatch -s <"$p" >"$tmp.log" 2>&1 ||
            { sed 's/^/  /' "$tmp.log" >&2; rm -rf "$tmp" "$tmp.log"
              die "$(basename "$p") does not apply to $KERNEL_PIN: update the patch"; }
    done
    rm -f "$tmp.log"
    echo "$PATCH_LIST" >"$tmp/.nsign-patches"
    touch "$tmp/.complete"
    rm -rf "$SRC"
    mv "$tmp" "$SRC"
    echo "kernel: ${#PATCHES[@]} patch(es) applied in $SRC ($((SECONDS - t0)) s)" >&2
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
    check_platform "$b/.config" >>"$b.log" || die "the configuration does not pass $PLATFORM (see above)"
}

# check_platform CONFIG: every `same OPTION VALUE` line of the platform list must hold in the
# resolved CONFIG (VALUE n: not set or absent), and every `differ OPTION AWS NSIGN REASON` line
# must hold with NSIGN and carry a reason, so the list of differences stays true. One line per
# failure on stderr; a summary on stdout.
config_value() { # config_value CONFIG OPTION: its value, n when not set or absent
    local v
    v=$(sed -n "s/^$2=//p" "$1" | tail -1)
    echo "${v:-n}"
}
check_platform() {
    local cfg=$1 kind opt a b reason bad=0 n=0 d=0 got lineno=0
    [ -f "$PLATFORM" ] || { echo "kernel: no platform list $PLATFORM" >&2; return 1; }
    [ -f "$cfg" ] || { echo "kernel: no configuration $cfg" >&2; return 1; }
    while read -r kind opt a b reason; do
        lineno=$((lineno + 1))
        case $kind in
        '' | '#'*) continue ;;
        same)
            [ -n "$a" ] && [ -z "$b" ] ||
                { echo "kernel: $PLATFORM:$lineno: want 'same OPTION VALUE'" >&2; bad=1; continue; }
            got=$(config_value "$cfg" "$opt")
            [ "$got" = "$a" ] || { echo "kernel: $opt=$got, but AWS's enclave kernel has $opt=$a" \
                "($PLATFORM:$lineno)" >&2; bad=1; }
            n=$((n + 1)) ;;
        differ)
            [ -n "$reason" ] ||
                { echo "kernel: $PLATFORM:$lineno: want 'differ OPTION AWS NSIGN REASON'" >&2; bad=1; continue; }
            got=$(config_value "$cfg" "$opt")
            [ "$got" = "$b" ] || { echo "kernel: $opt=$got, but $PLATFORM:$lineno lists it as a" \
                "deliberate difference with $opt=$b (AWS: $a): update the list or the fragment" >&2; bad=1; }
            d=$((d + 1)) ;;
        *) echo "kernel: $PLATFORM:$lineno: unknown line kind '$kind'" >&2; bad=1 ;;
        esac
    done < <(sed 's/\r$//' "$PLATFORM")
    [ "$n" -gt 0 ] || { echo "kernel: $PLATFORM lists no option" >&2; bad=1; }
    [ "$bad" = 0 ] || return 1
    echo "kernel: $cfg passes $(basename "$PLATFORM"): $n options as AWS's, $d listed differences"
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
      if [ -n "$PATCH_LIST" ]; then echo "$PATCH_LIST" | sed 's/^/patch: /'; else echo "patch: none"; fi
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
    patch_source
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

# check-platform needs no lock and no build: it reads a finished configuration.
if [ "${1:-}" = check-platform ]; then
    cfg=${2:-$DIR/config}
    [ -n "${2:-}" ] || [ -f "$DIR/.complete" ] ||
        die "no kernel built for key $KEY yet ($DIR): run 'make kernel', or pass a .config"
    check_platform "$cfg" || die "$cfg does not pass $PLATFORM"
    exit 0
fi

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
    patch_source
    b=$(mktemp -d "$CACHE/.kernel-check.XXXXXX")
    trap 'rm -rf "$b" "$b.log"' EXIT
    kconfigure "$b"
    echo "kernel: $FRAGMENT applies to $KERNEL_PIN and passes $(basename "$PLATFORM")"
    ;;
*) die "usage: scripts/kernel.sh [build | path bzImage|vmlinux|config|release|dir | second-build | check-config | check-platform [CONFIG]]" ;;
esac
