#!/usr/bin/env bash
# Installs what nsign needs to build and test on a Debian 12 machine, idempotently:
# apt packages (toolchain, test peers), a deb-src entry derived from the deb one,
# and the pinned Debian source packages of the five libraries, unpacked under build/src.
# Usage: scripts/deps.sh [apt|src|all|trixie-src]   (default all). Safe to run again; does little when done.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pins.sh

what=${1:-all}
mapfile -t APT_PACKAGES < <(sed 's/#.*//' scripts/apt-packages.txt | tr -s ' \t' '\n' | sed '/^$/d')
stamp=build/.deps-apt-$(echo "${APT_PACKAGES[*]}" | sha256sum | cut -c1-12)

need_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "deps: must run as root to install packages (try: sudo make deps)" >&2
        exit 1
    fi
}

ensure_deb_src() {
    local f=/etc/apt/sources.list.d/debian.sources
    if grep -qsh '^Types:.*deb-src' /etc/apt/sources.list.d/*.sources 2>/dev/null ||
        grep -qsh '^deb-src ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null; then
        return 0
    fi
    need_root
    if [ -f "$f" ]; then
        echo "deps: adding a deb-src entry derived from $f"
        sed -n 's/^Types: deb$/Types: deb-src/;p' "$f" >/etc/apt/sources.list.d/nsign-deb-src.sources
    elif [ -f /etc/apt/sources.list ]; then
        grep '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' >/etc/apt/sources.list.d/nsign-deb-src.list
    else
        echo "deps: no Debian apt source found to derive a deb-src entry from" >&2
        exit 1
    fi
    APT_UPDATED=0
}

# Debian 13 (trixie) source packages: the pinned libraries, the enclave kernel and QEMU come
# from the current stable release while the build machine stays Debian 12. Only deb-src
# entries are added for trixie, so no installed package can be upgraded from it; the one
# binary source added, bookworm-backports (meson and python3-pycotap for QEMU's build), is
# NotAutomatic in Debian's archive and is never chosen unless asked for by name.
TRIXIE_SOURCES=/etc/apt/sources.list.d/nsign-trixie.sources
ensure_trixie_src() {
    local want
    want=$(cat <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie trixie-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: trixie-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
)
    if [ -f "$TRIXIE_SOURCES" ] && [ "$(cat "$TRIXIE_SOURCES")" = "$want" ]; then
        return 0
    fi
    need_root
    echo "deps: adding Debian 13 (trixie) deb-src and bookworm-backports entries ($TRIXIE_SOURCES)"
    printf '%s\n' "$want" >"$TRIXIE_SOURCES"
    APT_UPDATED=0
}

# Machine-wide cache for big builds (enclave kernel, QEMU), keyed by their pinned versions.
NSIGN_CACHE=${NSIGN_CACHE:-/var/cache/nsign}

APT_UPDATED=${APT_UPDATED:-0}
apt_update() {
    if [ "$APT_UPDATED" = 0 ]; then
        apt-get update -qq
        APT_UPDATED=1
    fi
}

do_apt() {
    mkdir -p build
    [ -f "$stamp" ] && return 0
    local missing=()
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        need_root
        ensure_deb_src
        apt_update
        echo "deps: installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    touch "$stamp"
}

# A mirror can hold a version's upstream tarball but miss its .dsc and debian.tar (seen for
# nanopb 0.4.9.1-1, whose Debian packaging carries no patches). Accept the upstream tarball
# alone only for a package pins.sh allows it for (SRC_ORIG_ONLY_OK), when the index lists it for
# exactly this version and its SHA-256 matches there.
orig_only() {
    local name=$1 ver=$2 dl=build/src/dl-$1 orig want got
    [[ " ${SRC_ORIG_ONLY_OK[*]} " == *" $name "* ]] || return 1
    orig=$(find "$dl" -maxdepth 1 -name "${name}_*.orig.tar.*" | head -1)
    [ -n "$orig" ] || return 1
    want=$(apt-cache showsrc "$name" 2>/dev/null | awk -v v="$ver" -v f="$(basename "$orig")" '
        /^Package:/{p=0} /^Version:/{p=($2==v)} /^Checksums-Sha256:/{c=1;next} /^[^ ]/{c=0}
        p&&c&&$3==f{print $1;exit}')
    got=$(sha256sum "$orig" | cut -d' ' -f1)
    [ -n "$want" ] && [ "$want" = "$got" ] || return 1
    echo "deps: warning: $name=$ver: the mirror has no .dsc/debian.tar; using its upstream tarball" \
        "$(basename "$orig") (SHA-256 checked against the signed Sources index), no Debian patches" >&2
    mkdir -p "$dl/src" && tar -xf "$orig" -C "$dl/src" && rm -f "$orig" "$dl/dl.log"
    mv "$dl/src"/* "$dl/" && rmdir "$dl/src"
}

do_src() {
    mkdir -p build/src
    local name ver dir
    for pin in "${SRC_PINS[@]}"; do
        name=${pin%%=*}
        ver=${pin#*=}
        dir=build/src/$name-$ver
        [ -f "$dir/.nsign-unpacked" ] && continue
        ensure_deb_src
        ensure_trixie_src
        rm -rf "$dir" build/src/dl-"$name"
        mkdir -p build/src/dl-"$name"
        echo "deps: apt-get source $name=$ver"
        if ! (cd build/src/dl-"$name" && apt-get source -qq "$name=$ver" >/dev/null 2>dl.log); then
            apt_update
            if ! (cd build/src/dl-"$name" && apt-get source -qq "$name=$ver" >/dev/null 2>dl.log) &&
                ! orig_only "$name" "$ver"; then
                now=$(apt-cache showsrc "$name" 2>/dev/null | awk '/^Version:/{print $2}' | sort -V | tail -1)
                echo "deps: source package $name=$ver is not available from the archive any more." >&2
                echo "deps: the archive now has $name=${now:-<none>}; update the pin in scripts/pins.sh." >&2
                exit 1
            fi
        fi
        local sub
        sub=$(find build/src/dl-"$name" -mindepth 1 -maxdepth 1 -type d | head -1)
        mv "$sub" "$dir"
        rm -rf build/src/dl-"$name"
        touch "$dir/.nsign-unpacked"
    done
}

case "$what" in
apt) do_apt ;;
trixie-src) ensure_trixie_src; apt_update ;;
src) do_apt; do_src ;;
all) do_apt; do_src ;;
*) echo "usage: scripts/deps.sh [apt|src|all|trixie-src]" >&2; exit 2 ;;
esac
