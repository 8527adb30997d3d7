#!/usr/bin/env bash
# Dispatch: --list, --version, --help, symlinks, unknown applets, and the static binary itself.
. "$(dirname "$0")/../lib/tap.sh"
N=$NSIGN
list=$("$N" --list)
check "--list prints one line per applet of applets/applets.def" \
    test "$(echo "$list" | wc -l)" = "$(grep -c '^APPLET(' "$NS_ROOT/applets/applets.def")"
for a in fetch-creds s3-get vsock-push vsock-recv kms-decrypt age-decrypt bridge sign-service \
    enclave-entrypoint run-enclave stop-enclave eif sign attest-verify audit-verify vhost-vsock \
    kms-policy; do
    echo "$list" | grep -qx "$a" || fail "--list names $a"
    out=$("$N" "$a" --help 2>&1); rc=$?
    check "$a --help exits 0 and prints usage" test "$rc" = 0 -a -n "$out"
    out2=$("$NS_BUILD/bin/$a" --help 2>&1); rc2=$?
    check "symlink $a dispatches like 'nsign $a'" test "$rc2" = 0 -a "$out" = "$out2"
done
check "--version" bash -c "'$N' --version | grep -Eq '^nsign [0-9]+\.[0-9]+\.[0-9]+'"
# Every pinned library, one line each: the version the library reports (it must be the pin's
# upstream part) and the Debian source version it was built from (scripts/pins.sh).
ver=$("$N" --version)
. "$NS_ROOT/scripts/pins.sh"
for pin in "${SRC_PINS[@]}"; do
    name=${pin%%=*} deb=${pin#*=}
    up=${deb#*:} up=${up%-*}
    line=$(echo "$ver" | grep -i "^$name ")
    check "--version: $name $up (Debian source $deb)" \
        test "$line" = "$(echo "$line" | cut -d' ' -f1) $up (Debian source $deb)"
done
check "--version: one line per library, musl included (8 lines)" \
    bash -c "[ \"\$(echo '$ver' | wc -l)\" = 8 ] && echo '$ver' | grep -Eq '^musl [0-9.]+ \(Debian package '"
"$N" no-such-applet >/dev/null 2>/tmp/ns-disp.$$; rc=$?
check "unknown applet exits 127" test "$rc" = 127
check "unknown applet error names a hint" grep -q "nsign --list" /tmp/ns-disp.$$
rm -f /tmp/ns-disp.$$
"$N" >/dev/null 2>&1; rc=$?
check "no applet is a usage error (2)" test "$rc" = 2
check "binary is statically linked" bash -c "file -L '$N' | grep -q 'statically linked'"
check "binary has no interpreter" bash -c "! readelf -l '$N' | grep -q INTERP"
check "binary is x86-64" bash -c "file -L '$N' | grep -q x86-64"
size=$(stat -c %s "$N")
check "binary is well under 2 MiB stripped ($size bytes)" test "$size" -lt 2097152
tap_done
