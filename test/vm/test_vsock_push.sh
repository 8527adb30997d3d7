#!/usr/bin/env bash
# vsock-push -> vsock-recv over real AF_VSOCK (vsock:1:PORT in the qemu guest): a 16 MiB file
# verified by SHA-256, a sender started before its receiver (vsock answers a connection to a
# port nobody listens on with a reset: the sender must retry), stdout mode, and --max-size: a
# payload at the limit passes, a larger one is rejected with nothing written. One boot.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/lib.sh"
vm_require_nsign

cat >"$VM_TMP/guest.sh" <<'EOF'
. /vm/guest.sh
mkdir -p /tmp/in /tmp/out /tmp/over

# 16 MiB with verification.
head -c 16777216 /dev/urandom >/tmp/in/big
want=$(sha256sum </tmp/in/big | cut -c1-64)
nsign vsock-recv --timeout 90 vsock:any:7000 /tmp/out/big 2>/tmp/recv1.log & r=$!
nsign vsock-push --timeout 90 vsock:1:7000 /tmp/in/big 2>/tmp/push1.log
prc=$?
wait $r
rrc=$?
check "vsock-push of 16 MiB to vsock:1:7000 is acknowledged (exit 0)" test "$prc" = 0
check "vsock-recv on vsock:any:7000 exits 0" test "$rrc" = 0
check "the received 16 MiB file has the sender's SHA-256" \
    test "$(sha256sum /tmp/out/big 2>/dev/null | cut -c1-64)" = "$want"
check "the received file is mode 0600" test "$(stat -c %a /tmp/out/big 2>/dev/null)" = 600
[ "$prc$rrc" = 00 ] || show /tmp/push1.log /tmp/recv1.log
rm -f /tmp/out/big

# The sender starts first and retries until the receiver listens; receiver writes to stdout.
head -c 1048576 /dev/urandom >/tmp/in/small
nsign vsock-push --timeout 60 --retry-interval 100 vsock:1:7001 /tmp/in/small 2>/tmp/push2.log &
s=$!
sleep 2
nsign vsock-recv --timeout 60 vsock:any:7001 - >/tmp/out/small 2>/tmp/recv2.log
rrc=$?
wait $s
prc=$?
check "a sender started 2 s before the receiver retries and is acknowledged" test "$prc" = 0
check "vsock-recv to stdout exits 0" test "$rrc" = 0
check "stdout carries exactly the payload" cmp -s /tmp/in/small /tmp/out/small
[ "$prc$rrc" = 00 ] || show /tmp/push2.log /tmp/recv2.log

# --max-size: a payload of exactly the limit passes; a larger one is rejected, the sender fails,
# nothing is written.
nsign vsock-recv --timeout 60 --max-size 1M vsock:any:7003 /tmp/out/limit 2>/tmp/recv4.log & r=$!
nsign vsock-push --timeout 60 vsock:1:7003 /tmp/in/small 2>/tmp/push4.log
prc=$?
wait $r
rrc=$?
check "a payload of exactly --max-size (1 MiB) is accepted" test "$prc$rrc" = 00
check "and stored intact" cmp -s /tmp/in/small /tmp/out/limit
[ "$prc$rrc" = 00 ] || show /tmp/push4.log /tmp/recv4.log
nsign vsock-recv --timeout 60 --max-size 1M vsock:any:7002 /tmp/over/file 2>/tmp/recv3.log & r=$!
nsign vsock-push --timeout 10 vsock:1:7002 /tmp/in/big 2>/tmp/push3.log
prc=$?
wait $r
rrc=$?
check "vsock-push of 16 MiB to a receiver with --max-size 1M fails" test "$prc" != 0
check "that receiver exits non-zero" test "$rrc" != 0
check "nothing is written for a rejected payload (no file, no temp file)" \
    test -z "$(ls -A /tmp/over)"
show /tmp/push3.log /tmp/recv3.log
tap_done
EOF
vm_run_guest "$VM_TMP/guest.sh" --timeout 240
tap_done
