#!/usr/bin/env bash
# nsign eif cpio/build/describe against independent peers: GNU cpio lists and extracts the
# archives; a Python reader (struct, zlib.crc32, hashlib.sha384) re-parses the EIF, checks the
# CRC and recomputes PCR0/1/2 from FORMAT.md; describe must agree and must refuse broken files.
. "$(dirname "$0")/../lib/tap.sh"
tmp=$(mktemp -d /tmp/ns-eif-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

# An independent EIF reader: prints "crc_ok pcr0 pcr1 pcr2 nsections" or fails.
cat >verify.py <<'PY'
import hashlib, json, struct, sys, zlib
f = open(sys.argv[1], "rb").read()
assert f[:4] == b".eif", "magic"
ver, flags, mem, cpus, _res, n = struct.unpack(">HHQQHH", f[4:28])
offs = struct.unpack(">32Q", f[28:284]); sizes = struct.unpack(">32Q", f[284:540])
crc = struct.unpack(">I", f[544:548])[0]
crc_ok = zlib.crc32(f[0:544] + f[548:]) == crc
pos, secs = 548, []
while pos < len(f):
    t, fl, sz = struct.unpack(">HHQ", f[pos:pos + 12])
    assert offs[len(secs)] == pos and sizes[len(secs)] == sz
    secs.append((t, f[pos + 12:pos + 12 + sz])); pos += 12 + sz
assert pos == len(f) and len(secs) == n
def pcr(b): return hashlib.sha384(b"\0" * 48 + hashlib.sha384(b).digest()).hexdigest()
k = b"".join(d for t, d in secs if t in (1, 2))
rd = [d for t, d in secs if t == 3]
print(json.dumps({"crc_ok": crc_ok, "version": ver, "sections": [t for t, _ in secs],
                  "PCR0": pcr(k + b"".join(rd)), "PCR1": pcr(k + rd[0]),
                  "PCR2": pcr(b"".join(rd[1:])), "mem": mem, "cpus": cpus}))
PY
# jget FILE KEY.PATH: one value from a JSON file.
jget() { $PY -c 'import json,sys; v=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): v=v[int(k)] if k.isdigit() else v[k]
print(json.dumps(v) if isinstance(v,(dict,list,bool)) else v)' "$1" "$2"; }

# --- cpio ---
mkdir -p tree/bin tree/etc/deep/er
printf 'ELF' >tree/bin/nsign; chmod 0700 tree/bin/nsign
printf 'x=1\n' >tree/etc/conf; chmod 0600 tree/etc/conf
ln -s nsign tree/bin/bridge
printf 'odd' >tree/etc/deep/er/file
SOURCE_DATE_EPOCH=1700000000 "$NSIGN" eif cpio tree -o a.cpio
check "eif cpio writes an archive" test -s a.cpio
SOURCE_DATE_EPOCH=1700000000 "$NSIGN" eif cpio tree >b.cpio
check "stdout output is identical to -o" cmp -s a.cpio b.cpio
list=$(cpio -it --quiet <a.cpio)
want=$(printf '%s\n' bin bin/bridge bin/nsign etc etc/conf etc/deep etc/deep/er etc/deep/er/file)
check "GNU cpio lists the entries, sorted" test "$list" = "$want"
owners=$(cpio -itv --quiet <a.cpio | awk '{print $3 ":" $4}' | sort -u)
check "every entry owned by root:root (got $owners)" test "$owners" = "root:root"
modes=$(cpio -itv --quiet <a.cpio | awk '{print $1 " " $NF}' | tr '\n' ' ')
check "modes normalised: dirs 0755, exec files 0755, others 0644, links 0777" \
    test "$modes" = "drwxr-xr-x bin lrwxrwxrwx nsign -rwxr-xr-x bin/nsign drwxr-xr-x etc -rw-r--r-- etc/conf drwxr-xr-x etc/deep drwxr-xr-x etc/deep/er -rw-r--r-- etc/deep/er/file "
mkdir x && (cd x && cpio -idm --quiet <../a.cpio)
check "extracted tree matches the source" diff -r tree x
check "symlink survives" test "$(readlink x/bin/bridge)" = nsign
stat -c %Y x/etc/conf >mt.txt
check "mtime is SOURCE_DATE_EPOCH" test "$(cat mt.txt)" = 1700000000
touch tree/etc/conf; chmod 0644 tree/etc/conf
SOURCE_DATE_EPOCH=1700000000 "$NSIGN" eif cpio tree -o c.cpio
check "touch and chmod do not change the archive" cmp -s a.cpio c.cpio
env -u SOURCE_DATE_EPOCH "$NSIGN" eif cpio tree -o d.cpio
cpio -itv --quiet <d.cpio 2>/dev/null | grep -q ' 1970 ' 
check "no SOURCE_DATE_EPOCH: mtime 0" test $? = 0
SOURCE_DATE_EPOCH=soon "$NSIGN" eif cpio tree -o e.cpio 2>err.txt
check "bad SOURCE_DATE_EPOCH is a usage error (exit 2)" test $? = 2
mkfifo tree/fifo
"$NSIGN" eif cpio tree -o f.cpio 2>err.txt
check "a fifo is refused (exit 1) and no output is left" test $? = 1 -a ! -e f.cpio
grep -q 'not a directory, regular file or symlink' err.txt
check "error names the problem" test $? = 0
rm tree/fifo
"$NSIGN" eif cpio "$tmp/nope" -o g.cpio 2>/dev/null
check "missing directory fails with exit 1" test $? = 1

# --- build / describe ---
head -c 100000 /dev/urandom >kernel
mkdir rd0 && printf 'boot' >rd0/init && SOURCE_DATE_EPOCH=5 "$NSIGN" eif cpio rd0 -o rd0.cpio
SOURCE_DATE_EPOCH=5 "$NSIGN" eif cpio tree -o rd1.cpio
SOURCE_DATE_EPOCH=1700000000 "$NSIGN" eif build --kernel kernel --cmdline "console=ttyS0 quiet" \
    --ramdisk rd0.cpio --ramdisk rd1.cpio --name demo --image-version 9.9 --kernel-version 6.1 \
    -o a.eif >build.json 2>build.err
check "eif build succeeds" test $? = 0
check "build prints the measurements" test "$(jget build.json Measurements.HashAlgorithm)" = "Sha384 { ... }"
"$NSIGN" eif describe a.eif >desc.json
check "eif describe succeeds" test $? = 0
$PY verify.py a.eif >ver.json
check "independent reader accepts the file" test $? = 0
check "CRC-32 agrees with zlib.crc32" test "$(jget ver.json crc_ok)" = true
for p in PCR0 PCR1 PCR2; do
    check "$p agrees with hashlib (describe)" test "$(jget desc.json Measurements.$p)" = "$(jget ver.json $p)"
    check "$p agrees with hashlib (build)" test "$(jget build.json Measurements.$p)" = "$(jget ver.json $p)"
done
check "section order kernel, cmdline, metadata, ramdisk, ramdisk" test "$(jget ver.json sections)" = "[1, 2, 5, 3, 3]"
check "describe: EifVersion 4" test "$(jget desc.json EifVersion)" = 4
check "describe: IsSigned false, no PCR8" test "$(jget desc.json IsSigned)" = false -a \
    -z "$(jget desc.json Measurements.PCR8 2>/dev/null)"
check "describe: CheckCRC true" test "$(jget desc.json CheckCRC)" = true
check "describe: ImageName / ImageVersion" test "$(jget desc.json ImageName)/$(jget desc.json ImageVersion)" = demo/9.9
check "describe: Metadata.BuildTime from SOURCE_DATE_EPOCH" \
    test "$(jget desc.json Metadata.BuildTime)" = "2023-11-14T22:13:20+00:00"
check "describe: Metadata.KernelVersion" test "$(jget desc.json Metadata.KernelVersion)" = 6.1
check "describe: Cmdline" test "$(jget desc.json Cmdline)" = "console=ttyS0 quiet"
check "describe: Sections" test "$(jget desc.json Sections.3.Type):$(jget desc.json Sections.0.Offset):$(jget desc.json Sections.0.Size)" = "Ramdisk:548:100000"
check "default_mem 1 GiB, default_cpus 2" test "$(jget ver.json mem):$(jget ver.json cpus)" = "1073741824:2"
SOURCE_DATE_EPOCH=1700000000 "$NSIGN" eif build --kernel kernel --cmdline "console=ttyS0 quiet" \
    --ramdisk rd0.cpio --ramdisk rd1.cpio --name demo --image-version 9.9 --kernel-version 6.1 \
    -o b.eif >/dev/null 2>&1
check "same inputs: byte-identical EIF" cmp -s a.eif b.eif
printf 'console=ttyS0 quiet\n' >cmdline
SOURCE_DATE_EPOCH=1700000000 "$NSIGN" eif build --kernel kernel --cmdline-file cmdline \
    --ramdisk rd0.cpio --ramdisk rd1.cpio --name demo --image-version 9.9 --kernel-version 6.1 \
    -o c.eif >/dev/null 2>&1
check "--cmdline-file (trailing newline dropped) gives the same EIF" cmp -s a.eif c.eif
SOURCE_DATE_EPOCH=1 "$NSIGN" eif build --kernel kernel --cmdline "console=ttyS0 quiet" \
    --ramdisk rd0.cpio --ramdisk rd1.cpio -o d.eif >d.json 2>/dev/null
check "metadata is not measured: other name and time, same PCRs" \
    test "$(jget d.json Measurements.PCR0)" = "$(jget build.json Measurements.PCR0)"
"$NSIGN" eif build --kernel kernel --cmdline "x" --ramdisk rd0.cpio -o one.eif >one.json 2>/dev/null
check "one ramdisk: PCR2 is the FORMAT.md known answer" test "$(jget one.json Measurements.PCR2)" = \
    21b9efbc184807662e966d34f390821309eeac6802309798826296bf3e8bec7c10edb30948c90ba67310f7b964fc500a

# --- nitro-cli's EifIdentityInfo: every EIF built here, read by a strict independent reader ---
ID=$NS_ROOT/test/lib/eif_identity.py
check "strict EifIdentityInfo reader accepts every EIF built above (CustomMetadata null)" \
    $PY "$ID" eif a.eif b.eif c.eif d.eif one.eif
check "describe has describe-eif's members, names and shapes, and the file's values" \
    $PY "$ID" describe desc.json a.eif
check "describe: no CustomMetadata member when it is null" \
    test "$(jget desc.json Metadata.CustomMetadata 2>/dev/null)" = ""
printf '{"team": "signing", "ticket": 42, "tags": ["a", "b"]}' >custom.json
SOURCE_DATE_EPOCH=1700000000 "$NSIGN" eif build --kernel kernel --cmdline "console=ttyS0 quiet" \
    --ramdisk rd0.cpio --ramdisk rd1.cpio --metadata custom.json -o m.eif >m.json 2>m.err
check "build --metadata FILE succeeds" test $? = 0
check "strict reader accepts it (CustomMetadata is the object)" bash -c \
    "$PY '$ID' eif m.eif | grep -qF 'CustomMetadata={\"team\": \"signing\", \"ticket\": 42, \"tags\": [\"a\", \"b\"]}'"
"$NSIGN" eif describe m.eif >mdesc.json
check "describe flattens CustomMetadata's members into Metadata, as describe-eif does" \
    $PY "$ID" describe mdesc.json m.eif
check "describe: Metadata.team from --metadata" test "$(jget mdesc.json Metadata.team)" = signing
check "--metadata is not measured: same PCRs" \
    test "$(jget m.json Measurements.PCR0)" = "$(jget build.json Measurements.PCR0)"
printf '[1, 2]' >arr.json
"$NSIGN" eif build --kernel kernel --cmdline x --ramdisk rd0.cpio --metadata arr.json -o z.eif \
    >/dev/null 2>err.txt
check "--metadata that is not a JSON object: exit 1, nothing written" test $? = 1 -a ! -e z.eif
check "the error names the rule" grep -q 'custom metadata must be one JSON object' err.txt
$PY -c 'print("{\"k\": \"" + "x" * 5000 + "\"}")' >big.json
"$NSIGN" eif build --kernel kernel --cmdline x --ramdisk rd0.cpio --metadata big.json -o z.eif \
    >/dev/null 2>err.txt
check "--metadata over 4 KiB (nitro-cli's limit): exit 1" test $? = 1 -a ! -e z.eif
# An EIF whose metadata lacks CustomMetadata (what nsign wrote before): nitro-cli's reader fails on
# it, and so do describe and the strict reader.
$PY - a.eif old.eif <<'PY'
import json, struct, sys, zlib
f = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack(">H", f[26:28])[0]
offs = list(struct.unpack(">32Q", f[28:284])); sizes = list(struct.unpack(">32Q", f[284:540]))
out, secs = bytearray(f[:548]), []
for i in range(n):
    t, fl, sz = struct.unpack(">HHQ", f[offs[i]:offs[i] + 12])
    d = bytes(f[offs[i] + 12:offs[i] + 12 + sz])
    if t == 5:
        md = json.loads(d); del md["CustomMetadata"]; d = json.dumps(md, separators=(",", ":")).encode()
    offs[i], sizes[i] = len(out), len(d)
    out += struct.pack(">HHQ", t, 0, len(d)) + d
struct.pack_into(">32Q", out, 28, *offs); struct.pack_into(">32Q", out, 284, *sizes)
struct.pack_into(">I", out, 544, zlib.crc32(bytes(out[:544] + out[548:])))
open(sys.argv[2], "wb").write(bytes(out))
PY
"$NSIGN" eif describe old.eif >/dev/null 2>err.txt; rc=$?
check "describe refuses metadata without CustomMetadata (exit 1), naming it" bash -c \
    "[ $rc = 1 ] && grep -q 'lacks CustomMetadata' err.txt"
check "the strict reader refuses it too" bash -c "! $PY '$ID' eif old.eif 2>/dev/null"

# --- signed EIF: signature section encoded by cbor2 with a real openssl certificate ---
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:secp384r1 -nodes -keyout sk.pem \
    -out cert.pem -subj /CN=nsign-test -days 1 >/dev/null 2>&1
openssl x509 -in cert.pem -outform DER -out cert.der
$PY - a.eif cert.pem signed.eif <<'PY'
import struct, sys, zlib, cbor2
f = bytearray(open(sys.argv[1], "rb").read()); pem = open(sys.argv[2], "rb").read()
sig = cbor2.dumps([{"signing_certificate": list(pem), "signature": list(b"\x84\x40\xa0\x40\x40")}])
n = struct.unpack(">H", f[26:28])[0]
struct.pack_into(">Q", f, 28 + 8 * n, len(f)); struct.pack_into(">Q", f, 284 + 8 * n, len(sig))
struct.pack_into(">H", f, 26, n + 1)
f += struct.pack(">HHQ", 4, 0, len(sig)) + sig
struct.pack_into(">I", f, 544, zlib.crc32(bytes(f[:544] + f[548:])))
open(sys.argv[3], "wb").write(bytes(f))
PY
"$NSIGN" eif describe signed.eif >signed.json
check "describe accepts a signed EIF" test $? = 0
want8=$($PY -c 'import hashlib,sys; d=open(sys.argv[1],"rb").read(); print(hashlib.sha384(b"\0"*48+hashlib.sha384(d).digest()).hexdigest())' cert.der)
check "PCR8 = extend(sha384(DER of the signing certificate))" test "$(jget signed.json Measurements.PCR8)" = "$want8"
check "IsSigned true" test "$(jget signed.json IsSigned)" = true
check "signing does not change PCR0" test "$(jget signed.json Measurements.PCR0)" = "$(jget desc.json Measurements.PCR0)"

# --- refusals ---
cp a.eif bad.eif; printf '\x01' | dd of=bad.eif bs=1 seek=700 conv=notrunc status=none
"$NSIGN" eif describe bad.eif >/dev/null 2>err.txt
check "describe: a flipped byte fails (exit 1)" test $? = 1
grep -q 'CRC mismatch' err.txt
check "the error says CRC mismatch" test $? = 0
head -c 1000 a.eif >short.eif
"$NSIGN" eif describe short.eif >/dev/null 2>err.txt
check "describe: truncated file fails" test $? = 1
"$NSIGN" eif describe rd0.cpio >/dev/null 2>err.txt
check "describe: not an EIF fails" test $? = 1
"$NSIGN" eif describe "$tmp/missing.eif" >/dev/null 2>&1
check "describe: missing file fails (exit 1)" test $? = 1
"$NSIGN" eif describe >/dev/null 2>&1
check "describe without FILE is a usage error (exit 2)" test $? = 2
"$NSIGN" eif build --kernel kernel --cmdline x -o z.eif >/dev/null 2>&1
check "build without --ramdisk is a usage error (exit 2)" test $? = 2
"$NSIGN" eif build --kernel kernel --cmdline x --cmdline-file cmdline --ramdisk rd0.cpio -o z.eif >/dev/null 2>&1
check "build with both --cmdline and --cmdline-file is a usage error" test $? = 2
"$NSIGN" eif build --kernel "$tmp/nokernel" --cmdline x --ramdisk rd0.cpio -o z.eif >/dev/null 2>&1
check "build with a missing kernel fails (exit 1) and writes nothing" test $? = 1 -a ! -e z.eif
# --- pcr16: what an enclave measures from its inputs ---
printf 'age-ct' >p1; printf 'shares-ct' >p2; printf '{"region":"eu-west-1"}' >p3
want16=$($PY -c 'import hashlib,sys
p=bytes(48)
for f in sys.argv[1:]:
    p=hashlib.sha384(p+hashlib.sha384(open(f,"rb").read()).digest()).digest()
print(p.hex())' p1 p2 p3)
"$NSIGN" eif pcr16 p1 p2 p3 >p16.json
check "pcr16 with a configuration agrees with hashlib" test "$(jget p16.json PCR16)" = "$want16"
"$NSIGN" eif pcr16 p1 p2 >p16b.json
check "pcr16 without a configuration differs" test "$(jget p16b.json PCR16)" != "$want16"
"$NSIGN" eif pcr16 p1 >/dev/null 2>&1
check "pcr16 with one input is a usage error (exit 2)" test $? = 2
"$NSIGN" eif pcr16 p1 p2 "$tmp/missing" >/dev/null 2>err.txt
check "pcr16 with a missing file fails (exit 1) naming it" bash -c "[ $? = 1 ] && grep -q missing err.txt"
"$NSIGN" eif frobnicate >/dev/null 2>&1
check "unknown subcommand is a usage error" test $? = 2
"$NSIGN" eif --help | grep -q 'nsign eif describe FILE'
check "--help documents the subcommands" test $? = 0
tap_done
