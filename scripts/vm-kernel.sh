#!/usr/bin/env bash
# scripts/vm-kernel.sh: the pinned Debian kernel for the qemu test VM (test/vm/vm.sh) and for
# test EIFs. Downloads the package with `apt-get download` (never installs a kernel), and caches
# under build/vm-cache/<package>_<version>/:
#   vmlinux      the uncompressed ELF kernel, booted directly by qemu (PVH: ~3 s to init)
#   bzImage      the package's compressed kernel, as shipped (what a Nitro EIF carries)
#   config       the kernel's build config
#   modules/     requested modules, decompressed (NAME.ko), and the package's module list
# Pin: one line to change when the archive drops the version; the error then names the newest
# linux-image-6.1.0-*-amd64 apt can download. The .deb is kept in the cache so that modules
# requested later (e.g. virtio_net) are extracted without downloading again.
#
# Usage: scripts/vm-kernel.sh [fetch]              fetch + extract; print the cache directory
#        scripts/vm-kernel.sh path vmlinux|bzImage|config|modules|dir|version
#        scripts/vm-kernel.sh modules NAME...      extract NAME and its dependencies; print their
#                                                  .ko paths in load order (dependencies first)
# Env:   NS_VM_CACHE (default build/vm-cache under the repo).
set -euo pipefail

VM_KERNEL_PKG=linux-image-6.1.0-56-amd64
VM_KERNEL_VERSION=6.1.192-2
# The vsock loopback transport the VM tests use, in load order.
VM_KERNEL_VSOCK_MODULES=(vsock vmw_vsock_virtio_transport_common vsock_loopback)

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${NS_VM_CACHE:-$ROOT/build/vm-cache}
KREL=${VM_KERNEL_PKG#linux-image-}
DIR=$CACHE/${VM_KERNEL_PKG}_$VM_KERNEL_VERSION
DEB=$DIR/${VM_KERNEL_PKG}_${VM_KERNEL_VERSION}_amd64.deb

die() {
    echo "vm-kernel: $*" >&2
    exit 1
}

# The newest linux-image-6.1.0-N-amd64 (no -rt/-cloud flavour) apt knows, as NAME=VERSION.
newest_available() {
    apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' 2>/dev/null |
        awk '{print $1}' | sort -t- -k4,4n | tail -1 | while read -r p; do
        echo "$p=$(apt-cache policy "$p" | awk '/Candidate:/ {print $2}')"
    done
}

download() {
    local tmp
    tmp=$(mktemp -d "$DIR/.dl.XXXXXX")
    local sandbox=()
    # apt drops to the _apt user for downloads, which cannot write to a private temp dir.
    [ "$(id -u)" = 0 ] && sandbox=(-o APT::Sandbox::User=root)
    if ! (cd "$tmp" && apt-get download -q "${sandbox[@]}" "$VM_KERNEL_PKG=$VM_KERNEL_VERSION" \
        >"$tmp/log" 2>&1); then
        # A stale package list is the common cause on a fresh machine: refresh once (root only).
        if [ "$(id -u)" = 0 ] && apt-get update -qq >/dev/null 2>&1 &&
            (cd "$tmp" && apt-get download -q "${sandbox[@]}" \
                "$VM_KERNEL_PKG=$VM_KERNEL_VERSION" >"$tmp/log" 2>&1); then
            :
        else
            sed 's/^/  /' "$tmp/log" >&2
            rm -rf "$tmp"
            local avail
            avail=$(newest_available)
            die "cannot download the pinned kernel $VM_KERNEL_PKG=$VM_KERNEL_VERSION." \
                "Available now: ${avail:-none found (is a Debian 12 apt source configured?)}." \
                "Update VM_KERNEL_PKG and VM_KERNEL_VERSION in scripts/vm-kernel.sh."
        fi
    fi
    mv "$tmp"/*.deb "$DEB"
    rm -rf "$tmp"
}

# extract_vmlinux BZIMAGE OUT: the payload of a bzImage (boot protocol >= 2.08) is located by
# the header fields, not by scanning for a magic, then decompressed by its own format.
extract_vmlinux() {
    local bz=$1 out=$2
    u8() { od -An -tu1 -j "$1" -N1 "$bz" | tr -d ' '; }
    u32() { od -An -tu4 -j "$1" -N4 "$bz" | tr -d ' '; }
    [ "$(od -An -c -j 514 -N4 "$bz" | tr -d ' ')" = HdrS ] || die "$bz: not a bzImage (no HdrS)"
    local setup_sects poff plen start magic
    setup_sects=$(u8 497)
    [ "$setup_sects" = 0 ] && setup_sects=4
    poff=$(u32 584)
    plen=$(u32 588)
    start=$(((setup_sects + 1) * 512 + poff))
    magic=$(od -An -tx1 -j "$start" -N4 "$bz" | tr -d ' ')
    local dec
    case $magic in
    fd377a58) dec=(xz -dc --single-stream) ;;
    28b52ffd) dec=(zstd -dcq) plen=$((plen - 4)) ;; # the kernel appends the size
    1f8b*) dec=(gzip -dc) ;;
    *) die "$bz: unsupported kernel compression (payload magic $magic); add it to $0" ;;
    esac
    dd if="$bz" iflag=skip_bytes,count_bytes skip="$start" count="$plen" bs=64K status=none |
        "${dec[@]}" >"$out.tmp" 2>/dev/null ||
        die "$bz: decompressing the kernel payload with ${dec[0]} failed"
    [ "$(head -c 4 "$out.tmp" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] ||
        die "$bz: the decompressed payload is not an ELF vmlinux"
    mv "$out.tmp" "$out"
}

fetch() {
    [ -f "$DIR/.complete" ] && return 0
    mkdir -p "$DIR"
    [ -f "$DEB" ] || download
    local t
    t=$(mktemp -d "$DIR/.x.XXXXXX")
    dpkg-deb --fsys-tarfile "$DEB" | tar -x -C "$t" "./boot/vmlinuz-$KREL" "./boot/config-$KREL" ||
        die "$DEB: the kernel or its config is missing from the package"
    cp "$t/boot/vmlinuz-$KREL" "$DIR/bzImage"
    cp "$t/boot/config-$KREL" "$DIR/config"
    mkdir -p "$DIR/modules"
    dpkg-deb -c "$DEB" | awk '{ print $NF }' | grep -E '\.ko(\.(xz|zst|gz))?$' \
        >"$DIR/modules/modules.list"
    rm -rf "$t"
    extract_vmlinux "$DIR/bzImage" "$DIR/vmlinux"
    grep -q '^CONFIG_PVH=y' "$DIR/config" ||
        echo "vm-kernel: warning: $VM_KERNEL_PKG has no CONFIG_PVH; boot bzImage instead" >&2
    echo "$VM_KERNEL_PKG=$VM_KERNEL_VERSION" >"$DIR/version"
    extract_modules "${VM_KERNEL_VSOCK_MODULES[@]}" >/dev/null
    touch "$DIR/.complete"
}

# ko_of NAME: the cached, decompressed module file for NAME ('-' and '_' are the same).
ko_of() { echo "$DIR/modules/${1//-/_}.ko"; }

# member_of NAME: the module's path inside the package, from the listing made at fetch time.
member_of() {
    local n=${1//-/_}
    awk -v n="$n" '{ b = $0; sub(/.*\//, "", b); sub(/\.ko(\.(xz|zst|gz))?$/, "", b);
        gsub(/-/, "_", b); if (b == n) { print; exit } }' "$DIR/modules/modules.list"
}

# extract_batch NAME...: one pass over the package for every module not cached yet; each is
# decompressed and stored as modules/NAME.ko (the package has no modules.dep: depmod makes it
# at install time, so dependencies come from each module's own "depends" field).
extract_batch() {
    local n members=() f out
    local -A want=()
    for n in "$@"; do
        [ -f "$(ko_of "$n")" ] && continue
        [ -n "${want[${n//-/_}]:-}" ] && continue
        want[${n//-/_}]=1
        f=$(member_of "$n")
        [ -n "$f" ] || die "module $n is not in $VM_KERNEL_PKG (built in, or misspelt?)"
        members+=("$f")
    done
    [ ${#members[@]} -gt 0 ] || return 0
    [ -f "$DEB" ] || download
    local t
    t=$(mktemp -d "$DIR/.m.XXXXXX")
    dpkg-deb --fsys-tarfile "$DEB" | tar -x -C "$t" "${members[@]}" ||
        die "$DEB: cannot extract ${members[*]}"
    for f in "${members[@]}"; do
        n=$(basename "${f%%.ko*}")
        out=$(ko_of "$n")
        case $f in
        *.ko.xz) xz -dc "$t/$f" >"$out.tmp" ;;
        *.ko.zst) zstd -dcq "$t/$f" >"$out.tmp" ;;
        *.ko.gz) gzip -dc "$t/$f" >"$out.tmp" ;;
        *) cp "$t/$f" "$out.tmp" ;;
        esac
        mv "$out.tmp" "$out"
    done
    rm -rf "$t"
}

deps_of() { modinfo -F depends "$(ko_of "$1")" | tr ',' ' '; }

# extract_modules NAME...: caches NAME and its dependencies, printing the .ko paths in load
# order (dependencies first, each once).
extract_modules() {
    # Breadth-first, one package pass per level; the dependency graph of a kernel is a DAG of a
    # few levels, and the seen-set bounds the walk.
    local -A seen=()
    local level=("$@") next n d
    while [ ${#level[@]} -gt 0 ]; do
        extract_batch "${level[@]}"
        next=()
        for n in "${level[@]}"; do
            seen[${n//-/_}]=1
            for d in $(deps_of "$n"); do
                [ -n "${seen[${d//-/_}]:-}" ] || next+=("$d")
            done
        done
        level=("${next[@]}")
    done
    local -A done_=()
    local order=()
    visit() {
        local m=${1//-/_} x
        [ -n "${done_[$m]:-}" ] && return 0
        done_[$m]=1
        for x in $(deps_of "$m"); do visit "$x"; done
        order+=("$(ko_of "$m")")
    }
    for n in "$@"; do visit "$n"; done
    printf '%s\n' "${order[@]}"
}

# Serialise concurrent callers (two VM tests starting at once) on one cache.
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock -w 600 9 || die "timed out waiting for the lock on $CACHE"

cmd=${1:-fetch}
case $cmd in
fetch)
    fetch
    echo "$DIR"
    ;;
path)
    fetch
    case ${2:-} in
    vmlinux | bzImage | config | modules | version) echo "$DIR/$2" ;;
    dir) echo "$DIR" ;;
    *) die "usage: $0 path vmlinux|bzImage|config|modules|dir|version" ;;
    esac
    ;;
modules)
    shift
    fetch
    [ $# -gt 0 ] || die "usage: $0 modules NAME..."
    extract_modules "$@"
    ;;
*)
    die "usage: $0 [fetch] | path WHAT | modules NAME..."
    ;;
esac
