#!/usr/bin/env bash
# The EIF recipe (eif/build.sh, `make eif`) with its default kernel (nsign's own, from
# eif/kernel.sh --build, i.e. `make kernel`): two builds from two copies of the recipe, in two
# directories with different umasks, give byte-identical EIFs and identical PCRs (checked
# against an independent Python computation); the ramdisks hold the documented layout; and the
# EIF's own kernel, command line and ramdisks boot in qemu with nsign's enclave-entrypoint as
# PID 1 (no other init).
. "$(dirname "$0")/../lib/tap.sh"
cd "$NS_ROOT"
tmp=$(mktemp -d /tmp/ns-eifrepro-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
kernel=$(KERNEL= bash eif/kernel.sh --build 2>"$tmp/kernel.err")
if [ -z "$kernel" ]; then
    skip "reproducible EIF" "no kernel: $(tail -1 "$tmp/kernel.err")"
    tap_done; exit
fi
echo "# kernel $kernel"

for d in a b; do
    mkdir -p "$tmp/$d/src" && cp -r eif "$tmp/$d/src/eif"
done
(cd "$tmp/a" && umask 022 && KERNEL=$kernel bash src/eif/build.sh out "$NSIGN" >a.json 2>a.err)
check "build in directory a (umask 022)" test $? = 0
(cd "$tmp/b" && umask 077 && KERNEL=$kernel bash src/eif/build.sh "$tmp/b/elsewhere/out" "$NSIGN" \
    >b.json 2>b.err)
check "build in directory b (umask 077)" test $? = 0
check "the two EIFs are byte-identical" cmp "$tmp/a/out/nsign.eif" "$tmp/b/elsewhere/out/nsign.eif"
check "the two measurements are identical" cmp -s "$tmp/a/a.json" "$tmp/b/b.json"
sha384sum "$tmp/a/out/nsign.eif" | awk '{print "# eif sha384 " $1}'
sed 's/^/# /' "$tmp/a/a.json"

# Independent PCRs straight from the file (FORMAT.md section 6), and the pieces for qemu.
/usr/bin/python3 - "$tmp/a/out/nsign.eif" "$tmp" >"$tmp/py.txt" <<'PY'
import hashlib, struct, sys
f = open(sys.argv[1], "rb").read(); out = sys.argv[2]
pos, secs = 548, []
while pos < len(f):
    t, _, sz = struct.unpack(">HHQ", f[pos:pos + 12]); secs.append((t, f[pos + 12:pos + 12 + sz]))
    pos += 12 + sz
pcr = lambda b: hashlib.sha384(b"\0" * 48 + hashlib.sha384(b).digest()).hexdigest()
k = b"".join(d for t, d in secs if t in (1, 2)); rd = [d for t, d in secs if t == 3]
print(pcr(k + b"".join(rd)), pcr(k + rd[0]), pcr(b"".join(rd[1:])))
open(out + "/kernel", "wb").write([d for t, d in secs if t == 1][0])
open(out + "/cmdline", "wb").write([d for t, d in secs if t == 2][0])
open(out + "/initrd", "wb").write(b"".join(rd))  # the kernel merges concatenated archives
PY
read -r p0 p1 p2 <"$tmp/py.txt"
"$NSIGN" eif describe "$tmp/a/out/nsign.eif" >"$tmp/desc.json"
jget() { /usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["Measurements"][sys.argv[2]])' "$@"; }
check "PCR0 matches hashlib" test "$(jget "$tmp/desc.json" PCR0)" = "$p0"
check "PCR1 matches hashlib" test "$(jget "$tmp/desc.json" PCR1)" = "$p1"
check "PCR2 matches hashlib" test "$(jget "$tmp/desc.json" PCR2)" = "$p2"
check "the EIF's kernel is the input kernel" cmp -s "$tmp/kernel" "$kernel"

app=$(cpio -it --quiet <"$tmp/a/out/app.cpio")
check "app ramdisk holds bin/nsign" grep -qx bin/nsign <<<"$app"
missing=0
for a in $("$NSIGN" --list); do grep -qx "bin/$a" <<<"$app" || { missing=1; echo "# missing bin/$a"; }; done
check "app ramdisk holds every applet link" test $missing = 0
cpio -itv --quiet <"$tmp/a/out/app.cpio" | grep -q 'bin/enclave-entrypoint -> nsign'
check "bin/enclave-entrypoint -> nsign" test $? = 0
boot=$(cpio -it --quiet <"$tmp/a/out/bootstrap.cpio" | tr '\n' ' ')
check "bootstrap ramdisk: mount points (got $boot)" test "$boot" = "dev proc run sys tmp "
mkdir "$tmp/env1" && (cd "$tmp/env1" && cpio -id --quiet env <"$tmp/a/out/app.cpio")
check "app ramdisk: /env loads no modules by default" test "$(cat "$tmp/env1/env")" = "NSIGN_MODULES="
printf 'fake-module' >"$tmp/vsock.ko"; printf 'fake-nsm' >"$tmp/nsm.ko"
printf 'NSIGN_LOG=debug\n' >"$tmp/extra.env"
(cd "$tmp/a" && KERNEL=$kernel MODULES="$tmp/nsm.ko $tmp/vsock.ko" ENCLAVE_ENV=$tmp/extra.env \
    bash src/eif/build.sh mods "$NSIGN" >/dev/null 2>&1)
boot=$(cpio -it --quiet <"$tmp/a/mods/bootstrap.cpio" | tr '\n' ' ')
check "MODULES land at the bootstrap's root (got $boot)" test "$boot" = "dev nsm.ko proc run sys tmp vsock.ko "
mkdir "$tmp/env2" && (cd "$tmp/env2" && cpio -id --quiet env <"$tmp/a/mods/app.cpio")
check "/env names them for enclave-entrypoint, then ENCLAVE_ENV" \
    test "$(cat "$tmp/env2/env")" = "$(printf 'NSIGN_MODULES=/nsm.ko,/vsock.ko\nNSIGN_LOG=debug')"
grep -q 'rdinit=/bin/enclave-entrypoint' "$tmp/cmdline"
check "default command line makes enclave-entrypoint PID 1" test $? = 0
aws_cmdline="reboot=k panic=30 pci=off nomodules console=ttyS0 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd random.trust_cpu=on"
check "default command line: AWS's x86_64 enclave command line exactly, then rdinit" \
    test "$(tr -d '\0' <"$tmp/cmdline")" = "$aws_cmdline rdinit=/bin/enclave-entrypoint"

# The nitro layout, with a stand-in for nitro-cli's blobs directory (no real blobs here).
mkdir -p "$tmp/blobs"
cp "$kernel" "$tmp/blobs/bzImage"
printf 'reboot=k panic=30 pci=off nomodules console=ttyS0\n' >"$tmp/blobs/cmdline"
printf 'aws-init' >"$tmp/blobs/init"
printf 'nsm-module' >"$tmp/blobs/nsm.ko"
# The layout trap: blobs installed (as on an EC2 host with nitro-cli) change nothing unless the
# nitro layout is asked for by name.
check "eif/kernel.sh with blobs installed still picks nsign's kernel" \
    test "$(NITRO_BLOBS=$tmp/blobs KERNEL='' bash eif/kernel.sh --build 2>&1)" = "$kernel"
NITRO_BLOBS=$tmp/blobs KERNEL='' bash eif/build.sh "$tmp/trap" "$NSIGN" >/dev/null 2>"$tmp/trap.err"
check "blobs installed, no LAYOUT: eif/build.sh builds the nsign layout with nsign's kernel" \
    grep -q "layout=nsign kernel=$kernel " "$tmp/trap.err"
check "and the same EIF as without blobs" cmp -s "$tmp/trap/nsign.eif" "$tmp/a/out/nsign.eif"
NITRO_BLOBS=$tmp/blobs KERNEL='' make -s O="$NS_BUILD" eif >"$tmp/mk.json" 2>"$tmp/mk.err"
check "blobs installed: make eif builds the nsign layout" \
    grep -q "layout=nsign kernel=$kernel " "$tmp/mk.err"
(cd "$tmp/a" && LAYOUT=nitro NITRO_BLOBS=$tmp/no-such-blobs bash src/eif/build.sh nb "$NSIGN" \
    >/dev/null 2>nb.err)
check "LAYOUT=nitro without blobs fails, naming the missing blob and NITRO_BLOBS" \
    grep -q "no-such-blobs/bzImage does not exist (install aws-nitro-enclaves-cli or set NITRO_BLOBS)" \
    "$tmp/a/nb.err"
(cd "$tmp/a" && LAYOUT=docker bash src/eif/build.sh bad "$NSIGN" >/dev/null 2>bad.err)
check "an unknown LAYOUT is refused by name" grep -q "unknown LAYOUT 'docker'" "$tmp/a/bad.err"
(cd "$tmp/a" && LAYOUT=nitro NITRO_BLOBS=$tmp/blobs bash src/eif/build.sh nitro "$NSIGN" >/dev/null 2>nitro.err)
check "nitro layout: build with LAYOUT=nitro and NITRO_BLOBS" test $? = 0
grep -q "layout=nitro kernel=$tmp/blobs/bzImage" "$tmp/a/nitro.err"
check "nitro layout takes the blobs' kernel" test $? = 0
boot=$(cpio -it --quiet <"$tmp/a/nitro/bootstrap.cpio" | tr '\n' ' ')
check "nitro layout: ramdisk[0] = dev, init, nsm.ko (got $boot)" test "$boot" = "dev init nsm.ko "
app=$(cpio -it --quiet <"$tmp/a/nitro/app.cpio")
check "nitro layout: ramdisk[1] has cmd, env, rootfs/bin/nsign" \
    grep -qx rootfs/bin/nsign <<<"$app"
mkdir "$tmp/x" && (cd "$tmp/x" && cpio -id --quiet cmd env <"$tmp/a/nitro/app.cpio")
check "nitro layout: cmd runs /bin/enclave-entrypoint" test "$(cat "$tmp/x/cmd")" = /bin/enclave-entrypoint
check "nitro layout: env sets PATH" test "$(cat "$tmp/x/env")" = PATH=/bin
"$NSIGN" eif describe "$tmp/a/nitro/nsign.eif" >"$tmp/nitro.json"
check "nitro layout: cmdline from the blobs" test "$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["Cmdline"])' "$tmp/nitro.json")" = "reboot=k panic=30 pci=off nomodules console=ttyS0"

# make eif itself (same recipe through the Makefile target).
KERNEL=$kernel make -s O="$NS_BUILD" eif >"$tmp/make.json" 2>"$tmp/make.err"
rc=$?
check "make eif succeeds" test $rc = 0
[ $rc = 0 ] || tail -5 "$tmp/make.err" | sed 's/^/# /'
"$NSIGN" eif describe "$NS_BUILD/eif/nsign.eif" >/dev/null 2>&1
check "make eif writes an EIF that describe accepts" test $? = 0

# Every EIF the recipe built here, through nitro-cli's EifIdentityInfo schema (strict reader).
check "strict EifIdentityInfo reader accepts every recipe build (a, b, mods, nitro, make eif)" \
    /usr/bin/python3 "$NS_ROOT/test/lib/eif_identity.py" eif "$tmp/a/out/nsign.eif" \
    "$tmp/b/elsewhere/out/nsign.eif" "$tmp/a/mods/nsign.eif" "$tmp/a/nitro/nsign.eif" \
    "$NS_BUILD/eif/nsign.eif"

# Boot the EIF's own pieces (console on ttyS0, immediate reboot on panic for the test). Only the
# start of PID 1 is checked: whatever enclave-entrypoint does next is test/vm's business, and
# the guest is cut off after 60 s at most.
if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
    skip "boot the EIF in qemu" "qemu-system-x86 not installed"
else
    (cd "$tmp/a" && KERNEL=$kernel \
        CMDLINE="console=ttyS0 panic=-1 reboot=t rdinit=/bin/enclave-entrypoint" \
        bash src/eif/build.sh boot "$NSIGN" >/dev/null 2>&1)
    /usr/bin/python3 - "$tmp/a/boot/nsign.eif" "$tmp" <<'PY'
import struct, sys
f = open(sys.argv[1], "rb").read(); out = sys.argv[2]
pos, secs = 548, []
while pos < len(f):
    t, _, sz = struct.unpack(">HHQ", f[pos:pos + 12]); secs.append((t, f[pos + 12:pos + 12 + sz]))
    pos += 12 + sz
open(out + "/cmdline", "wb").write([d for t, d in secs if t == 2][0])
open(out + "/initrd", "wb").write(b"".join(d for t, d in secs if t == 3))
PY
    timeout 60 qemu-system-x86_64 -accel tcg,thread=multi -cpu max -M pc -m 512 -nic none \
        -no-reboot -display none -serial stdio -kernel "$tmp/kernel" -initrd "$tmp/initrd" \
        -append "$(cat "$tmp/cmdline")" </dev/null >"$tmp/console.log" 2>&1
    check "strict EifIdentityInfo reader accepts the boot EIF" \
        /usr/bin/python3 "$NS_ROOT/test/lib/eif_identity.py" eif "$tmp/a/boot/nsign.eif"
    grep -q 'Run /bin/enclave-entrypoint as init process' "$tmp/console.log"
    check "the kernel runs /bin/enclave-entrypoint from the EIF's ramdisks as PID 1" test $? = 0
    grep -q '^nsign enclave-entrypoint' "$tmp/console.log"
    check "nsign's enclave-entrypoint prints on the console" test $? = 0
    grep -E '^nsign|Run /|Kernel panic' "$tmp/console.log" | head -5 | sed 's/^/# console: /'
fi
tap_done
