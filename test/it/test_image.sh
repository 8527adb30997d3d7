#!/usr/bin/env bash
# make image: Dockerfile.enclave built with buildah (no daemon) holds exactly /bin/nsign and one
# symlink per applet, runs /bin/enclave-entrypoint, and two builds give the same image ID.
# buildah runs with private --root/--runroot under /tmp so nothing leaks into the host store.
. "$(dirname "$0")/../lib/tap.sh"
cd "$NS_ROOT"
if ! command -v buildah >/dev/null 2>&1; then
    skip "image file list" "buildah not installed (scripts/apt-packages.txt lists it)"
    tap_done; exit
fi
tmp=$(mktemp -d /tmp/ns-image-XXXXXX)
store="--root $tmp/root --runroot $tmp/run"
B() { buildah $store --storage-driver vfs "$@"; }
cleanup() {
    B umount --all >/dev/null 2>&1
    B rm --all >/dev/null 2>&1
    B rmi --all --force >/dev/null 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT

BUILDAH_ARGS=$store timeout 300 bash eif/image.sh "$tmp/out" "$NSIGN" nsign-enclave:t1 \
    >"$tmp/build1.log" 2>&1
rc=$?
check "eif/image.sh builds Dockerfile.enclave with buildah" test $rc = 0
[ $rc = 0 ] || sed 's/^/# /' "$tmp/build1.log"

ctr=$(B from nsign-enclave:t1 2>/dev/null)
mnt=$(B mount "$ctr" 2>/dev/null)
check "buildah from + mount the image" test -n "$mnt" -a -d "$mnt"
want=$( (echo ./bin; echo ./bin/nsign; "$NSIGN" --list | sed 's|^|./bin/|') | LC_ALL=C sort)
got=$(cd "$mnt" && find . -mindepth 1 | LC_ALL=C sort)
if [ "$got" = "$want" ]; then ok "file list is exactly /bin/nsign and the applet symlinks"
else fail "image file list"; diff <(echo "$want") <(echo "$got") | sed 's/^/# /'; fi
cmp -s "$mnt/bin/nsign" "$NSIGN"
check "/bin/nsign is the built binary" test $? = 0
bad=0
for a in $("$NSIGN" --list); do
    [ -L "$mnt/bin/$a" ] && [ "$(readlink "$mnt/bin/$a")" = nsign ] || { bad=1; echo "# bad link $a"; }
done
check "every applet is a symlink to nsign" test $bad = 0
check "the image holds no other files (no shell, no libc)" test ! -e "$mnt/bin/sh" -a ! -d "$mnt/lib"
ep=$(B inspect --format '{{.OCIv1.Config.Entrypoint}}' nsign-enclave:t1)
check "ENTRYPOINT is /bin/enclave-entrypoint (got $ep)" test "$ep" = "[/bin/enclave-entrypoint]"
"$mnt/bin/enclave-entrypoint" --help >/dev/null 2>&1
check "the image's enclave-entrypoint link dispatches (--help)" test $? = 0
B umount "$ctr" >/dev/null 2>&1

BUILDAH_ARGS=$store timeout 300 bash eif/image.sh "$tmp/out2" "$NSIGN" nsign-enclave:t2 \
    >"$tmp/build2.log" 2>&1
id1=$(B inspect --format '{{.FromImageID}}' nsign-enclave:t1 2>/dev/null)
id2=$(B inspect --format '{{.FromImageID}}' nsign-enclave:t2 2>/dev/null)
check "two image builds in two directories give the same image ID ($id1)" \
    test -n "$id1" -a "$id1" = "$id2"
tap_done
