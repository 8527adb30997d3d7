#!/usr/bin/env bash
# test/vm/vm.sh: run shell commands inside a throwaway qemu guest that has real AF_VSOCK
# (the loopback transport, CID 1), and exit with the guest's exit status.
#
# Why a VM: this machine's own vsock device belongs to the infrastructure, so AF_VSOCK is only
# ever opened inside this guest. The guest is qemu TCG (no KVM), no network device, the pinned
# Debian kernel booted directly as an uncompressed ELF (PVH, about 4 s a run), busybox-static as
# its shell, and the nsign binary under test as /bin/nsign with a symlink per applet.
#
# The initramfs is a concatenation of cpio archives, which the kernel merges in order (a later
# file replaces an earlier one):
#   1. an EIF's ramdisks (--eif), then --initrd archives, unchanged;
#   2. the base archive, cached in build/vm-cache/ and keyed by its content: busybox, the init
#      script and the vsock modules, all under /vm/ so that it never replaces a file of (1);
#   3. a small per-run archive: /bin/nsign + applet links, the commands, --file copies, extra
#      modules, a nonce.
# The guest runs /vm/init (rdinit=/vm/init): mounts /proc /sys /dev /tmp, loads the modules,
# brings lo up, runs the commands in /work with stdin from /dev/null, then prints
# "@@NSIGN-VM <nonce> exit=<status>@@" and powers off with `reboot -f`. qemu's own exit code
# does not carry the guest's status; the marker does, and the nonce keeps guest output from
# forging it.
#
# Exit status: the guest's (0-255), or 125 when there is no result (boot failure, timeout,
# guest setup failure); the reason and the end of the console log then go to stderr.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: test/vm/vm.sh [OPTIONS] [--] COMMANDS...
       test/vm/vm.sh [OPTIONS] --script FILE

Boots a qemu guest with AF_VSOCK (loopback transport, CID 1), runs COMMANDS (joined by spaces,
run by busybox sh in /work) or FILE, prints the guest's output, and exits with its status.

Options:
  -s, --script FILE     run FILE (a busybox sh script) instead of COMMANDS
  -f, --file SRC[:DST]  copy SRC (file or directory) into the guest at DST (default
                        /work/BASENAME); repeatable
  -e, --env NAME=VALUE  export NAME in the guest; repeatable
  -t, --timeout SEC     bound the whole run, boot included (default 120)
  -n, --nsign PATH      binary copied to /bin/nsign (default $NSIGN, else build/nsign);
                        "none" for no nsign in the guest
  -m, --module NAME     also load this module of the pinned kernel (dependencies first)
  -k, --kernel PATH     kernel to boot (default: the pinned Debian kernel's vmlinux, see
                        scripts/vm-kernel.sh); a bzImage works too, slower
  -i, --initrd PATH     cpio archive (optionally compressed) placed before the harness's own;
                        repeatable, kept in order
      --eif FILE        boot an EIF's kernel and ramdisks (in EIF order, before any
                        --initrd); its command line is not used (Nitro settings such as
                        nomodules) but is in the guest as /vm/eif-cmdline. When the EIF's
                        kernel is the pinned package's bzImage, its vmlinux boots instead
  -a, --append ARGS     extra kernel command line
      --fwd IP:PORT=HOSTPORT
                        give the guest a NIC (qemu user networking with restrict=on: no
                        other traffic leaves the VM) on which each tcp connection to
                        IP:PORT reaches 127.0.0.1:HOSTPORT on this machine (through socat);
                        repeatable. The guest's eth0 is 10.0.2.15/24; use IPs in
                        10.0.2.0/24, e.g. 10.0.2.100
      --nic SPEC        qemu -nic SPEC instead (default none)
      --qemu ARG        extra qemu argument; repeatable
      --mem MB          guest memory (default 512)      --smp N   vCPUs (default 2)
  -l, --log FILE        also write the raw console log to FILE
  -v, --verbose         stream the console while the guest runs (stderr)
  -h, --help            this text

Exit status: the guest's status; 125 when no result came back (boot failure, timeout, guest
setup failure); 2 usage.
Guest: PATH=/bin:/sbin:/vm/bin; busybox applets in /vm/bin; NSIGN=/bin/nsign; writable /work
and /tmp; `. /vm/guest.sh` loads the TAP helpers (ok, fail, check, check_fails, skip,
tap_done) and wait_until, tcp_listening, show (test/vm/guest.sh).
EOF
}

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${NS_VM_CACHE:-$ROOT/build/vm-cache}
BUSYBOX=${NS_VM_BUSYBOX:-/bin/busybox}
# The vsock loopback transport, in load order; the base archive carries them.
VSOCK_MODULES=(vsock vmw_vsock_virtio_transport_common vsock_loopback)
EXIT_NO_RESULT=125

die_usage() {
    echo "vm.sh: $*" >&2
    echo "try: test/vm/vm.sh --help" >&2
    exit 2
}
die() {
    echo "vm.sh: $*" >&2
    exit "$EXIT_NO_RESULT"
}

script='' eif='' timeout=120 nsign=${NSIGN:-$ROOT/build/nsign} kernel='' append='' nic=none
mem=512 smp=2 log='' verbose=0
files=() envs=() modules=() initrds=() qemu_extra=() fwds=()
while [ $# -gt 0 ]; do
    case $1 in
    -s | --script) script=${2:?}; shift 2 ;;
    -f | --file) files+=("${2:?}"); shift 2 ;;
    -e | --env) envs+=("${2:?}"); shift 2 ;;
    -t | --timeout) timeout=${2:?}; shift 2 ;;
    -n | --nsign) nsign=${2:?}; shift 2 ;;
    -m | --module) modules+=("${2:?}"); shift 2 ;;
    -k | --kernel) kernel=${2:?}; shift 2 ;;
    -i | --initrd) initrds+=("${2:?}"); shift 2 ;;
    --eif) eif=${2:?}; shift 2 ;;
    -a | --append) append=${2?}; shift 2 ;;
    --nic) nic=${2:?}; shift 2 ;;
    --fwd) fwds+=("${2:?}"); shift 2 ;;
    --qemu) qemu_extra+=("${2:?}"); shift 2 ;;
    --mem) mem=${2:?}; shift 2 ;;
    --smp) smp=${2:?}; shift 2 ;;
    -l | --log) log=${2:?}; shift 2 ;;
    -v | --verbose) verbose=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; break ;;
    -*) die_usage "unknown option $1" ;;
    *) break ;;
    esac
done
if [ -n "$script" ]; then
    [ $# -eq 0 ] || die_usage "give either --script or COMMANDS, not both"
    [ -f "$script" ] || die_usage "no such script: $script"
else
    [ $# -gt 0 ] || die_usage "nothing to run: give COMMANDS or --script FILE"
fi
[[ $timeout =~ ^[0-9]+$ ]] && [ "$timeout" -gt 0 ] ||
    die_usage "--timeout wants seconds, not $timeout"
for e in "${envs[@]}"; do
    [[ $e =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die_usage "--env wants NAME=VALUE, not $e"
done
if [ ${#fwds[@]} -gt 0 ]; then
    [ "$nic" = none ] || die_usage "give either --fwd or --nic, not both"
    nic=user,restrict=on,model=virtio-net-pci
    for f in "${fwds[@]}"; do
        [[ $f =~ ^(10\.0\.2\.[0-9]+):([0-9]+)=([0-9]+)$ ]] ||
            die_usage "--fwd wants IP:PORT=HOSTPORT with IP in 10.0.2.0/24, not $f"
        # A guestfwd to a tcp chardev carries a single connection for the VM's lifetime; a
        # command is started per connection instead. (No commas: they would split -nic.)
        nic+=",guestfwd=tcp:${BASH_REMATCH[1]}:${BASH_REMATCH[2]}"
        nic+="-cmd:socat - TCP:127.0.0.1:${BASH_REMATCH[3]}"
    done
    modules+=(virtio_net virtio_pci)
    command -v socat >/dev/null || die "--fwd needs socat: run scripts/deps.sh apt"
fi
for p in qemu-system-x86_64 cpio; do
    command -v "$p" >/dev/null ||
        die "$p is missing: run scripts/deps.sh apt (packages in scripts/apt-packages.txt)"
done
[ -x "$BUSYBOX" ] || die "$BUSYBOX is missing: apt-get install busybox-static"
file -L "$BUSYBOX" | grep -q 'statically linked' ||
    die "$BUSYBOX is not static: install busybox-static"
if [ "$nsign" != none ]; then
    [ -x "$nsign" ] || die "nsign binary $nsign is missing: build it (make O=...) or pass --nsign"
fi

[ -z "$eif" ] || [ -z "$kernel" ] || die_usage "give either --eif or --kernel, not both"
[ -z "$eif" ] || [ -f "$eif" ] || die_usage "no such EIF: $eif"

work=$(mktemp -d /tmp/nsign-vm.XXXXXX)
qpid=''
cleanup() {
    [ -n "$qpid" ] && kill "$qpid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- EIF: its sections as files (format: NS_VECTORS/eif/FORMAT.md; big-endian) ----
eif_u() { # eif_u OFFSET BYTES: an unsigned big-endian integer of the EIF
    local h
    h=$(od -An -tx1 -j "$1" -N "$2" "$eif" | tr -d ' \n')
    [ ${#h} = $(($2 * 2)) ] || die "$eif: truncated at offset $1"
    echo $((16#$h))
}
eif_ramdisks=()
if [ -n "$eif" ]; then
    [ "$(head -c 4 "$eif")" = .eif ] || die "$eif: not an EIF (magic)"
    eif_n=$(eif_u 26 2)
    [ "$eif_n" -ge 2 ] && [ "$eif_n" -le 32 ] || die "$eif: $eif_n sections (2..32 allowed)"
    eif_size=$(stat -c %s "$eif")
    for ((i = 0; i < eif_n; i++)); do
        off=$(eif_u $((28 + 8 * i)) 8)
        size=$(eif_u $((284 + 8 * i)) 8)
        [ $((off + 12 + size)) -le "$eif_size" ] || die "$eif: section $i runs past the end"
        [ "$(eif_u $((off + 4)) 8)" = "$size" ] || die "$eif: section $i size mismatch"
        type=$(eif_u "$off" 2)
        out=$work/eif-section-$i
        dd if="$eif" of="$out" iflag=skip_bytes,count_bytes skip=$((off + 12)) count="$size" \
            bs=64K status=none
        case $type in
        1) kernel=$out ;;
        2) mv "$out" "$work/eif-cmdline" ;;
        3) eif_ramdisks+=("$out") ;;
        4 | 5) rm -f "$out" ;;
        *) die "$eif: section $i has unknown type $type" ;;
        esac
    done
    [ -n "$kernel" ] && [ ${#eif_ramdisks[@]} -gt 0 ] || die "$eif: no kernel or no ramdisk section"
    initrds=("${eif_ramdisks[@]}" "${initrds[@]}")
    # The pinned kernel's uncompressed twin boots in half the time.
    pinned=$(bash "$ROOT/scripts/vm-kernel.sh" path dir) ||
        die "no kernel (scripts/vm-kernel.sh failed)"
    if cmp -s "$kernel" "$pinned/bzImage"; then
        kernel=$pinned/vmlinux
    fi
fi

# Kernel and modules from the pinned package (cached; downloads once).
if [ -z "$kernel" ]; then
    kernel=$(bash "$ROOT/scripts/vm-kernel.sh" path vmlinux) ||
        die "no kernel (scripts/vm-kernel.sh failed)"
fi
[ -f "$kernel" ] || die "kernel $kernel does not exist"
# (A failing command in <(...) does not fail mapfile: check what came back.)
mapfile -t base_kos < <(bash "$ROOT/scripts/vm-kernel.sh" modules "${VSOCK_MODULES[@]}")
[ ${#base_kos[@]} -ge ${#VSOCK_MODULES[@]} ] ||
    die "cannot get the vsock modules (scripts/vm-kernel.sh modules ${VSOCK_MODULES[*]})"
extra_kos=()
if [ ${#modules[@]} -gt 0 ]; then
    mapfile -t extra_kos < <(bash "$ROOT/scripts/vm-kernel.sh" modules "${modules[@]}")
    [ ${#extra_kos[@]} -ge ${#modules[@]} ] || die "cannot get modules ${modules[*]}"
fi
for k in "${base_kos[@]}" "${extra_kos[@]}"; do
    [ -f "$k" ] || die "module file $k is missing"
done

# newc archive of directory $1 into $2: sorted, owned by root, for a stable cache key.
mkcpio() {
    (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$2"
}

# ---- base archive (cached by content) ----
init_text=$(cat <<'EOF'
#!/vm/bin/sh
# /vm/init of the nsign test VM (test/vm/vm.sh); PID 1. Any failure before the commands run
# is reported as "setup-failed" so the harness can tell it from a test result.
export PATH=/bin:/sbin:/vm/bin HOME=/root NSIGN=/bin/nsign
nonce=$(cat /vm/nonce 2>/dev/null)
end() {
    # Let the serial line drain before power-off, or the tail of the output can be lost.
    echo "@@NSIGN-VM $nonce $1@@"
    sleep 0.2
    reboot -f
    sleep 10
}
setup_fail() {
    echo "vm-init: $*"
    end setup-failed
}
mkdir -p /proc /sys /dev /tmp /work /root /bin /sbin
mount -t proc proc /proc || setup_fail "mount /proc"
mount -t sysfs sysfs /sys || setup_fail "mount /sys"
mount -t devtmpfs devtmpfs /dev || setup_fail "mount /dev"
mount -t tmpfs -o mode=1777 tmpfs /tmp || setup_fail "mount /tmp"
exec </dev/null >/dev/console 2>&1
[ -n "$nonce" ] || setup_fail "no /vm/nonce (per-run archive missing?)"
for m in $(cat /vm/modules.order); do
    insmod "/vm/modules/$m" || setup_fail "insmod $m"
done
ip link set lo up || setup_fail "bring lo up"
if [ -f /vm/net ]; then
    n=50
    until [ -e /sys/class/net/eth0 ] || [ $n = 0 ]; do sleep 0.1; n=$((n - 1)); done
    ip link set eth0 up && ip addr add "$(cat /vm/net)" dev eth0 || setup_fail "configure eth0"
fi
if [ -f /vm/env ]; then . /vm/env; fi
echo "@@NSIGN-VM $nonce start@@"
cd /work
sh /vm/run.sh </dev/null
end "exit=$?"
EOF
)
bb_sum=$(sha256sum "$BUSYBOX" | cut -c1-64)
key=$( (echo "$init_text"; echo "$bb_sum"; cat "${base_kos[@]}" "$ROOT/test/lib/tap.sh" \
    "$ROOT/test/vm/guest.sh" | sha256sum) | sha256sum | cut -c1-16)
base=$CACHE/initramfs-base-$key.cpio
if [ ! -f "$base" ]; then
    b=$work/base
    mkdir -p "$b/vm/bin" "$b/vm/modules"
    cp "$BUSYBOX" "$b/vm/bin/busybox"
    for a in $("$BUSYBOX" --list); do
        [ "$a" = busybox ] || ln -s busybox "$b/vm/bin/$a"
    done
    printf '%s\n' "$init_text" >"$b/vm/init"
    chmod 755 "$b/vm/init"
    cp "$ROOT/test/lib/tap.sh" "$b/vm/tap.sh"
    cp "$ROOT/test/vm/guest.sh" "$b/vm/guest.sh"
    cp "${base_kos[@]}" "$b/vm/modules/"
    mkdir -p "$CACHE"
    mkcpio "$b" "$base.tmp.$$"
    mv "$base.tmp.$$" "$base"
    # Older bases (another busybox, init or module set) are never used again.
    find "$CACHE" -maxdepth 1 -name 'initramfs-base-*.cpio' ! -path "$base" -delete
    rm -rf "$b"
fi

# ---- per-run archive ----
r=$work/run
mkdir -p "$r/vm/modules" "$r/work" "$r/bin"
nonce=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "$nonce" >"$r/vm/nonce"
[ ${#fwds[@]} -eq 0 ] || echo 10.0.2.15/24 >"$r/vm/net"
[ -z "$eif" ] || cp "$work/eif-cmdline" "$r/vm/eif-cmdline" 2>/dev/null || : >"$r/vm/eif-cmdline"
{
    for k in "${base_kos[@]}"; do basename "$k"; done
    for k in "${extra_kos[@]}"; do
        cp "$k" "$r/vm/modules/"
        basename "$k"
    done
} | awk '!seen[$0]++' >"$r/vm/modules.order"
if [ -n "$script" ]; then
    cp "$script" "$r/vm/run.sh"
else
    printf '%s\n' "$*" >"$r/vm/run.sh"
fi
for e in "${envs[@]}"; do
    printf 'export %s=%q\n' "${e%%=*}" "${e#*=}"
done >"$r/vm/env"
# %q is bash quoting; for NAME=VALUE strings of printable characters it is also valid sh.
if [ "$nsign" != none ]; then
    cp "$nsign" "$r/bin/nsign"
    for a in $("$nsign" --list); do
        [[ $a =~ ^[a-z0-9-]+$ ]] && ln -sf nsign "$r/bin/$a"
    done
fi
for f in "${files[@]}"; do
    src=${f%%:*}
    dst=/work/$(basename "$src")
    [[ $f == *:* ]] && dst=${f#*:}
    [[ $dst == /* ]] || die_usage "--file destination must be absolute: $dst"
    [ -e "$src" ] || die_usage "--file source does not exist: $src"
    mkdir -p "$r$(dirname "$dst")"
    cp -a "$src" "$r$dst"
done
mkcpio "$r" "$work/run.cpio"

initrd=$work/initrd.cpio
# Each archive starts on a 4-byte boundary; GNU cpio pads to 512, other producers may not.
for a in "${initrds[@]}" "$base" "$work/run.cpio"; do
    [ -f "$a" ] || die "initrd $a does not exist"
    cat "$a" >>"$initrd"
    pad=$(((4 - $(stat -c %s "$initrd") % 4) % 4))
    [ "$pad" = 0 ] || head -c "$pad" /dev/zero >>"$initrd"
done

# ---- boot ----
console=$work/console.log
cmdline="console=ttyS0 quiet panic=-1 reboot=t rdinit=/vm/init${append:+ $append}"
# shellcheck disable=SC2054 # the commas belong to qemu's option syntax
qemu=(qemu-system-x86_64 -nodefaults -accel tcg,thread=multi -cpu max -M pc -m "$mem" -smp "$smp"
    -nic "$nic" -no-reboot -display none -serial stdio -kernel "$kernel" -initrd "$initrd"
    -append "$cmdline" "${qemu_extra[@]}")
: >"$console"
if [ "$verbose" = 1 ]; then
    tail -n +1 -f "$console" >&2 &
    tailpid=$!
fi
timeout --kill-after=5 "$timeout" "${qemu[@]}" </dev/null >"$console" 2>"$work/qemu.err" &
qpid=$!
qrc=0
wait "$qpid" || qrc=$?
qpid=''
[ "$verbose" = 1 ] && kill "$tailpid" 2>/dev/null
[ -n "$log" ] && tr -d '\r' <"$console" >"$log"

no_result() {
    echo "vm.sh: no result from the guest: $*" >&2
    [ -s "$work/qemu.err" ] && sed 's/^/qemu: /' "$work/qemu.err" | tail -5 >&2
    echo "vm.sh: last console lines:" >&2
    tr -d '\r' <"$console" | tail -30 | sed 's/^/  | /' >&2
    exit "$EXIT_NO_RESULT"
}
clean=$(tr -d '\r' <"$console")
# The guest's output: the lines between the start marker and the end marker.
printf '%s\n' "$clean" | awk -v s="@@NSIGN-VM $nonce start@@" -v e="@@NSIGN-VM $nonce " '
    index($0, s) { on = 1; next }
    index($0, e) { on = 0 }
    on { print }'
status=$(printf '%s\n' "$clean" |
    sed -n "s/.*@@NSIGN-VM $nonce \\([a-z-]*=\\{0,1\\}[0-9]*\\)@@.*/\\1/p" | tail -1)
case $status in
exit=[0-9]*) exit "${status#exit=}" ;;
setup-failed) no_result "guest setup failed (see the vm-init line)" ;;
*)
    [ "$qrc" = 124 ] || [ "$qrc" = 137 ] && no_result "timed out after ${timeout}s"
    no_result "qemu exited with status $qrc and no exit marker (kernel panic or boot failure?)"
    ;;
esac
