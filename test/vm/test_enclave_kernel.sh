#!/usr/bin/env bash
# test_enclave_kernel: the EIF `make eif` builds by default (nsign's kernel from Debian 13's
# source, eif/kernel.config; nsign as PID 1 and nothing else) boots under QEMU's `microvm`
# machine with ACPI off, the way QEMU's nitro-enclave machine runs it: QEMU then announces its
# virtio-mmio devices on the kernel command line (virtio_mmio.device=512@0xfeb00e00:12), as
# Nitro does. The kernel, command line and ramdisks are taken out of the EIF itself. A small
# probe (test/vm/devprobe.c, added as a third archive with rdinit=/devprobe) reports what the
# kernel found and then execs /bin/enclave-entrypoint, so nsign is still PID 1: a virtio-rng
# device must be /dev/hwrng, the self-built QEMU's virtio-nsm device must be /dev/nsm, and
# enclave-entrypoint must get as far as the Nitro heartbeat (vsock:3:9000; there is no vsock
# device here, so the step must fail and say so) and power off.
# The EIF's command line must start with AWS's x86_64 enclave command line exactly; the word
# the kernel does not know (`nomodules`) must not reach PID 1 (rdinit=, last, clears it).
# A second boot of the same kernel under `microvm` with ACPI on finds the same devices through
# ACPI instead (no virtio_mmio.device= on the command line), plus a virtio-vsock device served
# by nsign's own vhost-user backend (nsign vhost-vsock): test/vm/vsockstress.c then runs
# sustained two-way traffic for STRESS_SECONDS (20) over 12 streams opened by the guest (to
# CID 3) and 12 opened by the host (through the backend's unix socket), every direction writing
# faster than the other side reads, plus short connections opened both ways all along; every
# byte is checked against its expected stream and both sides' counts and digests must agree.
# It must finish without a stall: the patched kernel (eif/kernel-patches/0001-*) no longer stops
# its rx queue while replies wait in a full tx queue.
# The same probe on Debian's distribution kernel (the harness's pinned 6.1, its virtio_mmio and
# virtio_rng modules loaded by the probe) finds no device at all: the expected failure that
# makes the from-source kernel necessary (Debian builds no VIRTIO_MMIO_CMDLINE_DEVICES).
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/lib.sh"
vm_require_nsign
T=$VM_TMP

qemu=$(bash "$NS_ROOT/scripts/qemu.sh" path 2>"$T/qemu.err") ||
    { fail "scripts/qemu.sh gives QEMU with virtio-nsm-device (make qemu)"; sed 's/^/# /' "$T/qemu.err"; exit 1; }
kernel=$(bash "$NS_ROOT/scripts/kernel.sh" path bzImage 2>"$T/kernel.err") ||
    { fail "scripts/kernel.sh gives nsign's kernel (make kernel)"; sed 's/^/# /' "$T/kernel.err"; exit 1; }
echo "# qemu $qemu"
echo "# kernel $kernel"

# The default EIF: no KERNEL, no blobs installed (NITRO_BLOBS points at an empty folder).
mkdir -p "$T/no-blobs"
NITRO_BLOBS=$T/no-blobs bash "$NS_ROOT/eif/build.sh" "$T/eif" "$NSIGN" >"$T/eif.json" 2>"$T/eif.err"
check "eif/build.sh builds the default EIF" test -f "$T/eif/nsign.eif" ||
    { sed 's/^/# /' "$T/eif.err"; exit 1; }
check "its metadata passes the strict EifIdentityInfo reader (nitro-cli can read it)" \
    /usr/bin/python3 "$NS_ROOT/test/lib/eif_identity.py" eif "$T/eif/nsign.eif"
check "the default EIF uses nsign's kernel and the nsign layout" \
    grep -q "layout=nsign kernel=$kernel " "$T/eif.err"
only_entries() {  # only_entries CPIO REGEX: every archive member matches REGEX
    local bad
    bad=$(cpio -it --quiet <"$1" | grep -Ev "$2")
    [ -z "$bad" ] || { echo "# unexpected in $(basename "$1"): $bad" | head -5; return 1; }
}
check "ramdisk[0] holds mount points only (no modules, no other init)" \
    only_entries "$T/eif/bootstrap.cpio" '^(\.|dev|proc|sys|tmp|run)$'
check "ramdisk[1] holds nsign, its applet links and /env only" \
    only_entries "$T/eif/app.cpio" '^(\.|bin|bin/[a-z0-9-]+|env)$'

# The EIF's own pieces (section types: 1 kernel, 2 cmdline, 3 ramdisk).
/usr/bin/python3 - "$T/eif/nsign.eif" "$T" <<'PY'
import struct, sys
f = open(sys.argv[1], "rb").read(); out = sys.argv[2]
pos, secs = 548, []
while pos < len(f):
    t, _, sz = struct.unpack(">HHQ", f[pos:pos + 12]); secs.append((t, f[pos + 12:pos + 12 + sz]))
    pos += 12 + sz
open(out + "/eif-kernel", "wb").write([d for t, d in secs if t == 1][0])
open(out + "/eif-cmdline", "wb").write([d for t, d in secs if t == 2][0].rstrip(b"\0"))
open(out + "/eif-initrd", "wb").write(b"".join(d for t, d in secs if t == 3))
PY
check "the EIF's kernel section is nsign's kernel" cmp -s "$T/eif-kernel" "$kernel"
echo "# EIF command line: $(cat "$T/eif-cmdline")"
AWS_CMDLINE="reboot=k panic=30 pci=off nomodules console=ttyS0 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd random.trust_cpu=on"
check "the EIF's command line is AWS's x86_64 one, then nsign's rdinit" \
    test "$(cat "$T/eif-cmdline")" = "$AWS_CMDLINE rdinit=/bin/enclave-entrypoint"

probe=$T/devprobe
musl-gcc -static -O2 -Wall -Wextra -Werror -o "$probe" "$NS_ROOT/test/vm/devprobe.c" ||
    { fail "build test/vm/devprobe.c"; exit 1; }
stress=$T/vsockstress
musl-gcc -static -O2 -Wall -Wextra -Werror -o "$stress" "$NS_ROOT/test/vm/vsockstress.c" ||
    { fail "build test/vm/vsockstress.c"; exit 1; }

# probe_archive OUT [MODULE.ko...]: /devprobe and the modules under /mods/ as a newc archive.
probe_archive() {
    local out=$1 d=$T/probe-root.$$
    shift
    rm -rf "$d" && mkdir -p "$d/mods"
    cp "$probe" "$d/devprobe"
    cp "$stress" "$d/vsockstress"
    for m in "$@"; do cp "$m" "$d/mods/"; done
    (cd "$d" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$out"
}

# boot NAME KERNEL INITRD APPEND [MACHINE [QEMU-ARG...]]: QEMU's microvm (default with ACPI
# off), a virtio-rng and a virtio-nsm device; the console in $T/NAME.log. The guest powers off at
# the end of enclave-entrypoint; with no ACPI the kernel then halts rather than resetting, so the
# test stops QEMU once the console shows the end (or after 180 s at most).
boot() {
    local name=$1 k=$2 initrd=$3 append=$4 machine=${5:-microvm,acpi=off} pid _
    shift 5 2>/dev/null || shift $#
    # -L: microvm's firmware (qboot) from Debian's qemu-system-data, as run-enclave --emulator
    # passes it (the self-built QEMU does not look there by itself).
    "$qemu" -M "$machine" -accel tcg -cpu max -smp 2 -m 512 -nodefaults -no-user-config \
        -L /usr/share/qemu -L /usr/share/seabios \
        -display none -no-reboot -serial "file:$T/$name.log" \
        -device virtio-rng-device -device virtio-nsm-device "$@" \
        -kernel "$k" -initrd "$initrd" -append "$append" </dev/null >"$T/$name.qemu" 2>&1 &
    pid=$!
    VM_BG_PIDS+=("$pid")
    for _ in $(seq 1800); do
        kill -0 "$pid" 2>/dev/null || break
        grep -qE 'powering off|reboot: (Power down|System halted)|Kernel panic' "$T/$name.log" \
            2>/dev/null && { sleep 1; break; }
        sleep 0.1
    done
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    [ -s "$T/$name.qemu" ] && sed "s/^/# $name qemu: /" "$T/$name.qemu" | head -5
    grep -E 'Command line|virtio-mmio|devprobe|enclave-entrypoint|Run /|Kernel panic' "$T/$name.log" |
        head -40 | sed "s/^/# $name: /"
}
# Added to the EIF's command line: the probe as init, and no_timer_check, since under TCG on a
# loaded machine the kernel's IO-APIC timer check can fail ("IO-APIC + timer doesn't work!",
# seen here with Debian's kernel), which says nothing about the kernel under test.
TEST_APPEND="rdinit=/devprobe no_timer_check"
has() { grep -qE -- "$2" "$T/$1.log" || { echo "# not in the $1 console: $2"; return 1; }; }
hasnt() { ! grep -qE -- "$2" "$T/$1.log" || { echo "# in the $1 console: $(grep -E -- "$2" "$T/$1.log" | head -1)"; return 1; }; }

# --- nsign's kernel, as the EIF carries it
probe_archive "$T/probe.cpio"
cat "$T/eif-initrd" "$T/probe.cpio" >"$T/initrd"
boot own "$T/eif-kernel" "$T/initrd" "$(cat "$T/eif-cmdline") $TEST_APPEND"
check "QEMU announces its devices on the kernel command line" has own 'Command line:.*virtio_mmio\.device=[0-9]+@0x[0-9a-f]+:[0-9]+'
check "the kernel registers the virtio-mmio devices from the command line" \
    has own 'Registering device virtio-mmio\.[0-9]+ at 0x'
check "virtio-rng is found and bound (virtio id 4)" has own 'devprobe: virtio .* id=0x0004 driver=virtio_rng'
check "virtio-nsm is found and bound to the NSM driver (virtio id 33)" has own 'devprobe: virtio .* id=0x0021 driver=nsm'
check "/dev/hwrng gives random bytes" has own 'devprobe: hwrng read 16 bytes'
check "/dev/nsm answers GetRandom through the NSM driver" has own 'devprobe: nsm GetRandom [0-9]+ bytes'
check "nsign's enclave-entrypoint runs as PID 1" has own 'enclave-entrypoint: info starting pid=1 pid1=1'
# The kernel knows no `nomodules` and would hand it to init as an argument; rdinit= after it
# clears it (and the kernel then reports no unknown parameter at all).
check "AWS's nomodules does not reach PID 1: it starts with no argument" \
    has own $'devprobe: exec /bin/enclave-entrypoint\r?$'
check "and the kernel reports no parameter passed to user space" \
    hasnt own 'Unknown kernel command line parameters'
check "PID 1: mount and loopback steps succeed" bash -c "grep -q 'step=mount ok' '$T/own.log' && grep -q 'step=loopback ok' '$T/own.log'"
check "PID 1: no modules to load (the drivers are built in)" hasnt own 'step=modules (ok|failed)'
check "PID 1 reaches the heartbeat to vsock:3:9000 and reports its failure (no vsock device here)" \
    has own 'step=heartbeat failed .*vsock:3:9000'
check "PID 1 powers off after the failed heartbeat" has own 'powering off'
check "no kernel panic" hasnt own 'Kernel panic'

# --- nsign's kernel under microvm with ACPI on: devices from ACPI, and the vsock stress over
#     nsign's vhost-user vsock device (guest memory shared with the backend through a memfd)
STRESS_SECONDS=${STRESS_SECONDS:-20}
STRESS_ENV="STRESS_SECONDS=$STRESS_SECONDS STRESS_STREAMS=12 STRESS_PEER_STREAMS=12 STRESS_CHURN=4"
"$NSIGN" vhost-vsock --socket "$T/vhost.sock" --guest-cid 16 \
    --connect "7000=unix:$T/stress-accept.sock" --listen "unix:$T/stress-connect.sock=7001" \
    2>"$T/backend.log" &
VM_BG_PIDS+=($!)
env $STRESS_ENV "$stress" host "$T/stress-accept.sock" "$T/stress-connect.sock" >"$T/stress-host.log" 2>&1 &
stress_host=$!
VM_BG_PIDS+=("$stress_host")
wait_unix "$T/vhost.sock" 10 || fail "the vsock backend listens on its vhost-user socket"
t_stress=$SECONDS
# Under TCG, QEMU's microvm with ACPI on gives the kernel no timer to calibrate against (its MADT
# has no IRQ0 override, and it has no HPET or PM timer): any kernel, Debian's too, then waits
# forever in the delay-loop calibration. The TSC frequency and the loop value are given instead.
ACPI_TCG_APPEND="tsc_early_khz=2000000 lpj=4000000"
boot acpi "$T/eif-kernel" "$T/initrd" \
    "$(cat "$T/eif-cmdline") $TEST_APPEND $ACPI_TCG_APPEND PROBE_NEXT=/vsockstress $STRESS_ENV" microvm,acpi=on \
    -object memory-backend-memfd,id=mem,size=512M,share=on -M memory-backend=mem \
    -chardev "socket,id=c0,path=$T/vhost.sock" -device vhost-user-vsock-device,chardev=c0
wait "$stress_host"
stress_rc=$?
echo "# vsock stress boot: $((SECONDS - t_stress)) s (QEMU start to power-off, TCG)"
check "ACPI on: QEMU announces no device on the command line" \
    hasnt acpi 'Command line:.*virtio_mmio\.device='
check "ACPI on: the kernel finds virtio-rng through ACPI" has acpi 'devprobe: virtio .* id=0x0004 driver=virtio_rng'
check "ACPI on: the kernel finds virtio-nsm through ACPI and binds the NSM driver" \
    has acpi 'devprobe: virtio .* id=0x0021 driver=nsm'
check "ACPI on: the kernel finds the vhost-user vsock device (virtio id 19)" \
    has acpi 'devprobe: virtio .* id=0x0013 driver=vmw_vsock_virtio_transport'
grep -E '^vsockstress: (result|STALL|first)' "$T/acpi.log" | sed 's/^/# guest: /'
grep -E '^vsockstress: (result|STALL|first)' "$T/stress-host.log" | sed 's/^/# host: /'
check "vsock stress, guest side: every stream finished, every byte as expected, no stall" \
    has acpi '^vsockstress: result streams=12\+12 .* PASS'
check "vsock stress, host side: the same (exit 0)" \
    bash -c "test $stress_rc = 0 && grep -qE '^vsockstress: result streams=12\+12 .* PASS' '$T/stress-host.log'"
# Each stream's two ends: what one side sent (bytes and FNV-1a digest) the other received.
/usr/bin/python3 - "$T/acpi.log" "$T/stress-host.log" >"$T/stress-cmp.txt" <<'PY'
import re, sys
pat = re.compile(r"^vsockstress: stream (opened|accepted) (\d+) sent=(\S+) recv=(\S+)")
def load(path):
    return {(m[1], m[2]): (m[3], m[4]) for m in map(pat.match, open(path, errors="replace")) if m}
g, h = load(sys.argv[1]), load(sys.argv[2])
other = {"opened": "accepted", "accepted": "opened"}
bad = [k for k in g if (other[k[0]], k[1]) not in h
       or h[(other[k[0]], k[1])] != (g[k][1], g[k][0])]
total = sum(int(v.split("/")[0]) for s in g.values() for v in s)
print(len(g), len(h), len(bad), total)
PY
read -r ng nh nbad total <"$T/stress-cmp.txt"
check "vsock stress: all 24 streams agree on both ends ($ng guest, $nh host, ${total:-0} bytes both ways)" \
    test "$ng" = 24 -a "$nh" = 24 -a "$nbad" = 0
echo "# vsock stress: $((${total:-0} / 1048576)) MiB moved in ${STRESS_SECONDS} s over 24 streams"

# --- Debian's distribution kernel (the harness's parent-instance kernel), same machine and probe
dk=$(bash "$NS_ROOT/scripts/vm-kernel.sh" path bzImage 2>"$T/dk.err") ||
    { fail "the pinned Debian kernel (scripts/vm-kernel.sh)"; sed 's/^/# /' "$T/dk.err"; tap_done; exit; }
dver=$(cat "$(bash "$NS_ROOT/scripts/vm-kernel.sh" path version)")
mapfile -t dmods < <(bash "$NS_ROOT/scripts/vm-kernel.sh" modules virtio_mmio virtio_rng)
probe_archive "$T/probe-debian.cpio" "${dmods[@]}"
list=
for m in "${dmods[@]}"; do list=${list:+$list,}/mods/$(basename "$m"); done
cat "$T/eif-initrd" "$T/probe-debian.cpio" >"$T/initrd-debian"
boot debian "$dk" "$T/initrd-debian" "$(cat "$T/eif-cmdline") $TEST_APPEND PROBE_MODULES=$list"
check "Debian's kernel ($dver) boots the same ramdisks and loads virtio_mmio and virtio_rng" \
    bash -c "grep -q 'devprobe: module /mods/virtio_mmio.ko loaded' '$T/debian.log' &&
             grep -q 'devprobe: module /mods/virtio_rng.ko loaded' '$T/debian.log'"
# Expected failure: without CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES the kernel ignores the devices
# QEMU (and Nitro) announce on the command line.
check "expected failure: Debian's kernel registers no virtio-mmio device from the command line" \
    hasnt debian 'Registering device virtio-mmio'
check "expected failure: Debian's kernel sees no virtio device" has debian 'devprobe: virtio-devices 0'
check "expected failure: Debian's kernel has no working /dev/hwrng" has debian 'devprobe: hwrng read failed'
check "expected failure: Debian's kernel has no /dev/nsm" has debian 'devprobe: nsm open failed'
tap_done
