#!/usr/bin/env bash
# A bridge chain over real AF_VSOCK in the qemu guest:
#   client -> tcp:127.0.0.1:7300 -> [bridge A] -> vsock:1:7301 -> [bridge B] -> tcp:127.0.0.1:7302
# carrying data both ways with half-close in either direction first, both directions at once,
# zero bytes, busybox nc as an unrelated client/server, 20 concurrent connections to an echo
# server, a vsock target that is not listening (reset); the bridges log bytes each way and stop
# cleanly on SIGTERM. The endpoints are test/vm/peer.c, which checks every byte and fails at its
# timeout when an EOF is not propagated. One boot.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/lib.sh"
vm_require_nsign

cat >"$VM_TMP/guest.sh" <<'EOF'
. /vm/guest.sh
nsign bridge vsock:any:7301 tcp:127.0.0.1:7302 2>/tmp/b.log & B=$!
nsign bridge tcp:127.0.0.1:7300 vsock:1:7301 2>/tmp/a.log & A=$!
check "bridge B listens on vsock:any:7301" wait_until 20 grep -q "listening.*7301" /tmp/b.log
check "bridge A listens on tcp:127.0.0.1:7300" wait_until 20 tcp_listening 7300
if [ "$TAP_FAILED" != 0 ]; then
    # Nothing to carry data: say so once instead of waiting for every peer's timeout.
    show /tmp/a.log /tmp/b.log
    fail "data through the chain (the bridges are not running)"
    exit 1
fi

# through SERVER_ARGS -- CLIENT_ARGS: a peer listens on 7302 behind the chain, a peer connects
# to 7300 in front of it; both must report every byte and EOF.
through() {
    local desc=$1 sargs=$2 cargs=$3 s
    peer listen tcp:127.0.0.1:7302 $sargs --timeout 30 >/tmp/s.out 2>&1 & s=$!
    if ! wait_until 10 tcp_listening 7302; then
        fail "$desc: the server peer listens"
        kill $s 2>/dev/null
        return
    fi
    peer connect tcp:127.0.0.1:7300 $cargs --timeout 30 >/tmp/c.out 2>&1
    local crc=$?
    wait $s
    local src=$?
    check "$desc: the client end got every byte and EOF" test "$crc" = 0
    check "$desc: the server end got every byte and EOF" test "$src" = 0
    [ "$crc$src" = 00 ] || show /tmp/c.out /tmp/s.out
}

through "client half-closes first, then the reply (8 MiB up, 4 MiB down)" \
    "--order recv-first --expect 8M --send 4M" "--order send-first --send 8M --expect 4M"
check "bridge A logs the connection with the bytes each way" \
    wait_until 10 grep -q "closed.*up=8388608 down=4194304" /tmp/a.log
through "server half-closes first, the client still sends after (4 MiB down, 8 MiB up)" \
    "--order send-first --send 4M --expect 8M" "--order recv-first --expect 4M --send 8M"
through "both ways at once, each side half-closes when done (8 MiB each way)" \
    "--order duplex --send 8M --expect 8M" "--order duplex --send 8M --expect 8M"
through "zero bytes both ways: only the EOFs cross" \
    "--order duplex --send 0 --expect 0" "--order duplex --send 0 --expect 0"

# busybox nc on both ends: the server reads to EOF (the client's half-close must arrive), then
# answers; the client reads the answer to EOF.
head -c 3000000 /dev/urandom >/tmp/up
head -c 5000000 /dev/urandom >/tmp/down
nc -l -p 7302 -e sh -c 'cat >/tmp/up.got; cat /tmp/down' & s=$!
if wait_until 10 tcp_listening 7302; then
    timeout 60 nc 127.0.0.1 7300 </tmp/up >/tmp/down.got
    check "busybox nc through the chain: the client's half-close reaches the server" \
        cmp -s /tmp/up /tmp/up.got
    check "busybox nc through the chain: the reply comes back whole" cmp -s /tmp/down /tmp/down.got
else
    fail "busybox nc server listens on 7302"
fi
kill $s 2>/dev/null
wait $s 2>/dev/null

# 20 connections at once through the chain to an echo server (busybox nc -ll -e cat): each
# client half-closes after its 256 KiB and must get exactly its own bytes back.
nc -ll -p 7302 -e cat & s=$!
if wait_until 10 tcp_listening 7302; then
    i=0
    pids=
    while [ $i -lt 20 ]; do
        head -c 262144 /dev/urandom >/tmp/e$i
        timeout 60 nc 127.0.0.1 7300 </tmp/e$i >/tmp/e$i.back &
        pids="$pids $!"
        i=$((i + 1))
    done
    for p in $pids; do wait "$p"; done # each bounded by its timeout
    bad=0
    i=0
    while [ $i -lt 20 ]; do
        cmp -s /tmp/e$i /tmp/e$i.back || bad=$((bad + 1))
        i=$((i + 1))
    done
    check "20 concurrent connections through the chain each echo their 256 KiB ($bad wrong)" \
        test "$bad" = 0
else
    fail "busybox nc echo server listens on 7302"
fi
kill $s 2>/dev/null
wait $s 2>/dev/null

# A vsock target nobody listens on answers with a reset (not "refused"): only that connection
# ends, the bridge keeps serving, and once a listener appears the same pair works.
nsign bridge tcp:127.0.0.1:7310 vsock:1:7399 2>/tmp/c.log & C=$!
if wait_until 20 tcp_listening 7310; then
    echo hello | timeout 30 nc 127.0.0.1 7310 >/tmp/none.out
    check "a connection to an absent vsock target ends with no data" test ! -s /tmp/none.out
    check "the bridge logs that connection's close" wait_until 10 grep -q "closed.*7399" /tmp/c.log
    check "the bridge is still running" kill -0 $C
    # (a file of its own: the background job may not have truncated an old one yet)
    peer listen vsock:any:7399 --send 64K --expect 64K --timeout 30 >/tmp/s7399.out 2>&1 & s=$!
    check "a vsock listener comes up behind the bridge" \
        wait_until 10 grep -q listening /tmp/s7399.out
    check "once a listener is up, the same pair carries data both ways" \
        peer connect tcp:127.0.0.1:7310 --send 64K --expect 64K --timeout 30
    check "the vsock listener behind it got every byte" wait $s
    grep -q "^peer listen: ok" /tmp/s7399.out || show /tmp/s7399.out /tmp/c.log
else
    fail "bridge C listens on tcp:127.0.0.1:7310"
    show /tmp/c.log
fi
kill -TERM $C
wait $C

kill -TERM $A $B
wait $A
arc=$?
wait $B
brc=$?
check "bridge A exits 0 on SIGTERM" test "$arc" = 0
check "bridge B exits 0 on SIGTERM" test "$brc" = 0
[ "$TAP_FAILED" = 0 ] || show /tmp/a.log /tmp/b.log
tap_done
EOF
vm_run_guest "$VM_TMP/guest.sh" --timeout 300
tap_done
