#!/usr/bin/env bash
# Builds nsign from the same sources in two different directories (dependencies included) and
# compares the sha256 of the two binaries. Exit 0 only when they are byte-identical.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s deps >/dev/null
work=$(mktemp -d /tmp/nsign-repro.XXXXXX)
trap 'rm -rf "$work"' EXIT
sums=()
for d in a bb; do
    mkdir -p "$work/$d/src-tree-$d"
    tree=$work/$d/src-tree-$d
    git ls-files -z | xargs -0 -I{} cp --parents {} "$tree"/ 2>/dev/null ||
        tar -cf - --exclude=./build --exclude=./.git . | tar -xf - -C "$tree"
    # the Debian source packages are inputs, not outputs: reuse the download, rebuild everything
    mkdir -p "$tree/build" && cp -a build/src "$tree/build/src"
    echo "repro-check: building in $tree"
    make -s -C "$tree" >/dev/null
    sums+=("$(sha256sum "$tree/build/nsign" | cut -d' ' -f1)")
done
echo "repro-check: ${sums[0]}  (directory a)"
echo "repro-check: ${sums[1]}  (directory bb)"
if [ "${sums[0]}" = "${sums[1]}" ]; then
    echo "repro-check: identical"
else
    echo "repro-check: DIFFERENT: the build is not reproducible" >&2
    exit 1
fi
