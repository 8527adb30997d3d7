#!/usr/bin/env bash
# test/lib/grpcjs/install.sh: makes sure the test-only Node modules pinned by
# test/lib/grpcjs/package-lock.json (@grpc/grpc-js, @grpc/proto-loader and their dependencies,
# every one by exact version and integrity hash) are installed, and prints the node_modules
# folder. Nothing third-party is committed: `npm ci` installs them from the registry into the
# machine-wide cache ${NSIGN_CACHE:-/var/cache/nsign}/npm-<hash of the lock file>/ (or, when
# that is not writable, $NS_BUILD/npm-<hash>/), once; later runs find them there and need no
# network. Exits non-zero, saying why, when they are not cached and npm cannot install them: a
# test that needs them must fail then, never skip.
set -euo pipefail
# An optional argument names another folder with its own package.json and package-lock.json
# (test/lib/k8s): installed and cached the same way.
HERE=$(cd "${1:-$(dirname "$0")}" && pwd)
die() {
    echo "grpcjs/install.sh: $*" >&2
    exit 1
}
# Node and npm: Debian's nodejs and npm on a new machine (as root, like scripts/deps.sh apt).
# They are not in scripts/apt-packages.txt: a machine with NodeSource's nodejs (which carries
# its own npm) cannot install Debian's npm, and needs nothing.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    [ "$(id -u)" = 0 ] || die "node or npm is missing: apt-get install nodejs npm (Node >= 18)"
    echo "grpcjs/install.sh: installing nodejs npm" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o DPkg::Lock::Timeout=600 nodejs npm >/dev/null ||
        die "apt-get install nodejs npm failed"
fi
KEY=$(cat "$HERE/package.json" "$HERE/package-lock.json" | sha256sum | cut -c1-16)
CACHE=${NSIGN_CACHE:-/var/cache/nsign}
if ! mkdir -p "$CACHE" 2>/dev/null || [ ! -w "$CACHE" ]; then
    CACHE=${NS_BUILD:-$HERE/../../../build}
    mkdir -p "$CACHE"
fi
DIR=$CACHE/npm-$KEY
if [ ! -f "$DIR/.complete" ]; then
    exec 9>"$CACHE/.npm-$KEY.lock"
    flock 9 # another test run installing the same lock: wait for it
    if [ ! -f "$DIR/.complete" ]; then
        tmp=$CACHE/.npm-$KEY.tmp # fixed name: a killed install is cleaned up by the next one
        rm -rf "$tmp"
        mkdir -p "$tmp"
        cp "$HERE/package.json" "$HERE/package-lock.json" "$tmp/"
        # --ignore-scripts: no install script runs (protobufjs's only checks versions).
        if ! (cd "$tmp" && timeout 300 npm ci --ignore-scripts --no-audit --no-fund \
            --cache "$CACHE/npm-download-cache" >npm.log 2>&1); then
            grep -m8 "npm error" "$tmp/npm.log" >&2 || tail -8 "$tmp/npm.log" >&2 || true
            rm -rf "$tmp"
            die "npm ci of $HERE/package-lock.json failed (registry $(npm config get registry) not reachable?); the test needs these modules once, then they are cached in $DIR"
        fi
        touch "$tmp/.complete"
        rm -rf "$DIR"
        mv "$tmp" "$DIR"
    fi
fi
echo "$DIR/node_modules"
