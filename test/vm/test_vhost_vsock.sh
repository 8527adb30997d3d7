#!/usr/bin/env bash
# nsign vhost-vsock against real peers: Debian's QEMU (vhost-user-vsock-pci, guest memory in a
# shared memfd) as the vhost-user front-end and the guest's Linux virtio-vsock driver as the
# other end of every packet. One boot, three directions of traffic, all through the backend:
#   guest -> host: vsock-push of 8 MiB to vsock:3:7000, routed by --connect to a host vsock-recv
#                  on a unix socket (SHA-256 verified end to end, credit flow over many packets)
#   host -> guest: vsock-push to the backend's --listen socket, which reaches the guest's
#                  vsock-recv on port 7001 (the sender retries until the guest listens)
#   refused:       a guest connection to port 7999 (no route) is reset, each attempt at once
# The backend must end cleanly (exit 0) when QEMU goes away.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/lib.sh"
vm_require_nsign

d=$VM_TMP
head -c 8388608 /dev/urandom >"$d/from_host"
want_h=$(sha256sum <"$d/from_host" | cut -c1-64)

"$NSIGN" vhost-vsock --socket "$d/vhost.sock" --guest-cid 16 \
    --connect "7000=unix:$d/recv7000.sock" --listen "unix:$d/g7001.sock=7001" \
    2>"$d/backend.log" &
backend=$!
"$NSIGN" vsock-recv --timeout 150 "unix:$d/recv7000.sock" "$d/from_guest" 2>"$d/recv.log" &
recv=$!
VM_BG_PIDS+=("$backend" "$recv")
wait_unix "$d/vhost.sock" 10 || fail "the backend listens on its vhost-user socket"
"$NSIGN" vsock-push --timeout 150 --retry-interval 200 "unix:$d/g7001.sock" "$d/from_host" \
    2>"$d/push.log" &
push=$!
VM_BG_PIDS+=("$push")

cat >"$d/guest.sh" <<'EOF'
. /vm/guest.sh
mkdir -p /tmp/in /tmp/out
nsign vsock-recv --timeout 120 vsock:any:7001 /tmp/out/from_host 2>/tmp/recv.log & r=$!
head -c 8388608 /dev/urandom >/tmp/in/big
sha256sum </tmp/in/big | cut -c1-64 >/work/guest.sha
echo "guest-sha $(cat /work/guest.sha)"
nsign vsock-push --timeout 60 vsock:3:7000 /tmp/in/big 2>/tmp/push.log
check "guest vsock-push of 8 MiB to vsock:3:7000 through the backend is acknowledged" test $? = 0
wait $r
check "guest vsock-recv on port 7001 got the host's file (exit 0)" test $? = 0
check "the host's 8 MiB arrived intact (SHA-256)" \
    test "$(sha256sum </tmp/out/from_host | cut -c1-64)" = "$WANT_H"
nsign vsock-push --timeout 3 --retry-interval 500 vsock:3:7999 /tmp/in/big 2>/tmp/refused.log
check "a connection to a port without a route fails" test $? != 0
# Each attempt ends at once with the backend's RST (a silent drop would hang the first attempt
# until the deadline): several attempts fit in the 3 s.
n=$(sed -n 's/.* after \([0-9]*\) attempts.*/\1/p' /tmp/refused.log)
check "refused by a reset on each attempt, not dropped ($n attempts)" test "${n:-0}" -ge 2
show /tmp/push.log /tmp/recv.log /tmp/refused.log
tap_done
EOF

out=$("$VM" --timeout 240 -m virtio_pci -m vmw_vsock_virtio_transport --env "WANT_H=$want_h" \
    --qemu -object --qemu "memory-backend-memfd,id=mem,size=512M,share=on" \
    --qemu -machine --qemu memory-backend=mem \
    --qemu -chardev --qemu "socket,id=c0,path=$d/vhost.sock" \
    --qemu -device --qemu vhost-user-vsock-pci,chardev=c0 --script "$d/guest.sh" 2>&1)
rc=$?
echo "$out" | grep -E '^(ok|not ok|#)'
check "the guest script passed (status $rc)" test "$rc" = 0
wait "$recv"
check "host vsock-recv got the guest's file (exit 0)" test $? = 0
want_g=$(echo "$out" | sed -n 's/^guest-sha \([0-9a-f]*\).*/\1/p' | head -1)
check "the guest's 8 MiB arrived intact on the host (SHA-256)" \
    test -n "$want_g" -a "$(sha256sum <"$d/from_guest" 2>/dev/null | cut -c1-64)" = "$want_g"
wait "$push"
check "host vsock-push to the guest's port 7001 was acknowledged" test $? = 0
wait "$backend"
check "the backend exits 0 when QEMU disconnects" test $? = 0
check "the backend served QEMU" grep -q "front-end connected" "$d/backend.log"
check "and logged its disconnection" grep -q "front-end disconnected" "$d/backend.log"
sed 's/^/# backend: /' "$d/backend.log" | tail -8
tap_done
