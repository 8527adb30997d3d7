#!/usr/bin/env bash
# The VM harness itself: the guest boots the pinned kernel, loads the vsock loopback modules,
# brings lo up, runs nsign, moves data over AF_VSOCK (CID 1) with an independent endpoint
# (test/vm/peer.c), and the harness returns the guest's exit status, ignores a forged marker,
# boots a bzImage with an extra archive, forwards a guest port to a local server (--fwd), boots
# an EIF (--eif), and reports a timeout as "no result" (125). Four boots, 20-40 s under TCG.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/lib.sh"
vm_require_nsign

peer=$(vm_peer) || { fail "build test/vm/peer.c with musl-gcc"; exit 1; }
head -c 100000 /dev/urandom >"$VM_TMP/payload"
sum=$(sha256sum "$VM_TMP/payload" | cut -c1-64)

cat >"$VM_TMP/guest.sh" <<'EOF'
. /vm/tap.sh
for m in vsock vmw_vsock_virtio_transport_common vsock_loopback; do
    check "guest: module $m is loaded" grep -q "^$m " /proc/modules
done
check "guest: lo is up with 127.0.0.1/8" sh -c 'ip addr show lo | grep -q "inet 127.0.0.1/8" &&
    ip link show lo | grep -q "[<,]UP[,>]"'
check "guest: nsign --list prints one line per applet of applets.def" \
    test "$(nsign --list | wc -l)" = "$APPLET_COUNT"
check "guest: nsign is /bin/nsign and NSIGN points at it" \
    test "$NSIGN" = /bin/nsign -a -x /bin/nsign
check "guest: an applet symlink dispatches (vsock-recv --help)" \
    sh -c 'vsock-recv --help >/dev/null 2>&1'
check "guest: --file and --env reach the guest" \
    test "$(sha256sum /work/payload | cut -c1-64)" = "$PAYLOAD_SHA256"
check "guest: --file with a destination path" test -x /usr/local/bin/peer
# AF_VSOCK itself, with test/vm/peer.c (no nsign involved): 1 MiB each way, half-close first
# from the connector, then both ways at once.
peer listen vsock:any:5999 --send 1M --expect 2M --order recv-first --timeout 60 & p=$!
check "guest: AF_VSOCK over vsock:1, half-close then reply (peer connect)" \
    peer connect vsock:1:5999 --send 2M --expect 1M --order send-first --timeout 60
check "guest: AF_VSOCK over vsock:1, half-close then reply (peer listen)" wait $p
peer listen vsock:any:6000 --send 2M --expect 2M --order duplex --timeout 60 & p=$!
check "guest: AF_VSOCK over vsock:1, both ways at once (peer connect)" \
    peer connect vsock:1:6000 --send 2M --expect 2M --order duplex --timeout 60
check "guest: AF_VSOCK over vsock:1, both ways at once (peer listen)" wait $p
tap_done
EOF
out=$("$VM" --script "$VM_TMP/guest.sh" -f "$VM_TMP/payload" -f "$peer:/usr/local/bin/peer" \
    -e "PAYLOAD_SHA256=$sum" -e "PATH=/bin:/sbin:/vm/bin:/usr/local/bin" \
    -e "APPLET_COUNT=$(grep -c '^APPLET(' "$NS_ROOT/applets/applets.def")" 2>"$VM_TMP/err")
rc=$?
echo "$out"
check "guest boots and all guest checks pass (harness status $rc)" test "$rc" = 0
[ "$rc" = 0 ] || sed 's/^/# /' "$VM_TMP/err"
check "guest ran the checks (guest output came back)" grep -q "^peer connect: ok" <<<"$out"

# The compressed bzImage, an extra (gzip) archive before the harness's own as an EIF's ramdisk
# would be, status passthrough, and a forged marker in the guest's output that must not count.
mkdir -p "$VM_TMP/extra/etc"
echo eif-init >"$VM_TMP/extra/init"
echo here >"$VM_TMP/extra/etc/from-initrd"
(cd "$VM_TMP/extra" && find . -mindepth 1 | sort | cpio -o -H newc -R 0:0 --quiet | gzip -9n) \
    >"$VM_TMP/extra.cpio.gz"
bz=$(bash "$NS_ROOT/scripts/vm-kernel.sh" path bzImage)
# --fwd: a server on this machine's loopback, reached from the guest through 10.0.2.100:80.
mkdir -p "$VM_TMP/www"
echo "hello from the host $sum" >"$VM_TMP/www/hello"
hport=$(free_port)
(cd "$VM_TMP/www" && exec "$PY" -m http.server "$hport" --bind 127.0.0.1) >/dev/null 2>&1 &
VM_BG_PIDS+=($!)
wait_port "$hport" 10 || fail "a local http server listens on 127.0.0.1:$hport"
"$VM" --kernel "$bz" --initrd "$VM_TMP/extra.cpio.gz" --fwd "10.0.2.100:80=$hport" -- \
    'test -f /etc/from-initrd || exit 9; test "$(cat /init)" = eif-init || exit 10;
     wget -q -O /tmp/hello http://10.0.2.100/hello || exit 11;
     wget -q -O /tmp/hello2 http://10.0.2.100/hello && cmp -s /tmp/hello /tmp/hello2 || exit 11;
     grep -q "hello from the host $PAYLOAD_SHA256" /tmp/hello || exit 12;
     echo "@@NSIGN-VM 0123456789abcdef01234567 exit=0@@"; exit 7' \
    -e "PAYLOAD_SHA256=$sum" >"$VM_TMP/out2" 2>&1
rc=$?
check "bzImage + an extra gzip archive: files merged, its /init kept, status 7 comes back" \
    test "$rc" = 7 -o "$rc" = 11 -o "$rc" = 12
check "--fwd: the guest reaches a server on this machine's loopback, twice" test "$rc" = 7
[ "$rc" = 7 ] || sed 's/^/# /' "$VM_TMP/out2"

# --eif: an EIF built by nsign from the pinned kernel and two ramdisks boots with its ramdisks
# merged in EIF order, its command line kept aside (it says nomodules), vsock still working.
mkdir -p "$VM_TMP/rd0" "$VM_TMP/rd1/rootfs"
echo bootstrap >"$VM_TMP/rd0/init"
echo first >"$VM_TMP/rd0/order"
echo app >"$VM_TMP/rd1/rootfs/marker"
echo second >"$VM_TMP/rd1/order"
"$NSIGN" eif cpio "$VM_TMP/rd0" --output "$VM_TMP/rd0.cpio" &&
    "$NSIGN" eif cpio "$VM_TMP/rd1" --output "$VM_TMP/rd1.cpio" &&
    "$NSIGN" eif build --kernel "$bz" --cmdline "console=ttyS0 nomodules pci=off" \
        --ramdisk "$VM_TMP/rd0.cpio" --ramdisk "$VM_TMP/rd1.cpio" --output "$VM_TMP/t.eif" \
        >/dev/null 2>"$VM_TMP/eif.err"
if [ $? = 0 ]; then
    check "the test EIF passes the strict EifIdentityInfo reader" \
        /usr/bin/python3 "$NS_ROOT/test/lib/eif_identity.py" eif "$VM_TMP/t.eif"
fi
if [ ! -f "$VM_TMP/t.eif" ]; then
    fail "nsign eif build makes a test EIF"
    sed 's/^/# /' "$VM_TMP/eif.err"
else
    "$VM" --eif "$VM_TMP/t.eif" -f "$peer:/bin/peer" -- \
        'test "$(cat /rootfs/marker)" = app || exit 20; test "$(cat /order)" = second || exit 21;
         test "$(cat /init)" = bootstrap || exit 22; grep -q nomodules /vm/eif-cmdline || exit 23;
         grep -q nomodules /proc/cmdline && exit 24;
         peer listen vsock:any:5000 --send 1K --expect 1K --timeout 30 & p=$!;
         peer connect vsock:1:5000 --send 1K --expect 1K --timeout 30 || exit 25;
         wait $p || exit 25' \
        >"$VM_TMP/out4" 2>&1
    rc=$?
    check "--eif: ramdisks merged in EIF order, cmdline aside, vsock works (status $rc)" \
        test "$rc" = 0
    [ "$rc" = 0 ] || sed 's/^/# /' "$VM_TMP/out4"
fi

# A guest that never finishes: no result (125) and a message naming the timeout.
"$VM" --timeout 8 -- 'sleep 600' >"$VM_TMP/out3" 2>&1
rc=$?
check "a hung guest gives status 125 after --timeout" test "$rc" = 125
check "the timeout is reported" grep -q "timed out after 8s" "$VM_TMP/out3"

# Usage errors are 2 and never boot.
"$VM" >/dev/null 2>&1
check "no commands is a usage error (2)" test $? = 2
tap_done
