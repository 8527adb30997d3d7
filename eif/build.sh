#!/usr/bin/env bash
# eif/build.sh OUT NSIGN: the reproducible enclave image recipe (`make eif`; no Docker).
#
# Writes into OUT/:
#   rootfs/        the application tree: bin/nsign and one symlink per applet (also the
#                  Dockerfile.enclave context)
#   bootstrap/     the boot tree (ramdisk[0], measured in PCR1)
#   bootstrap.cpio, app.cpio   their deterministic newc archives (`nsign eif cpio`)
#   nsign.eif      the EIF (`nsign eif build`); measurements.json its PCRs
#
# Two layouts, picked by LAYOUT (by name only: installed blobs never change it):
#   nsign   (the default) kernel = nsign's own (eif/kernel.sh: `make kernel`) or KERNEL=...:
#           ramdisk[0] = mount points and the kernel modules in MODULES (at /NAME.ko),
#           ramdisk[1] = rootfs/ at / plus /env (NSIGN_MODULES=/NAME.ko,... and the lines of
#           ENCLAVE_ENV, read by PID 1); the command line is AWS's x86_64 one followed by
#           rdinit=/bin/enclave-entrypoint, which makes nsign PID 1, so nsign and a kernel are
#           enough.
#   nitro   (LAYOUT=nitro) kernel = nitro-cli's blobs (NITRO_BLOBS, default
#           /usr/share/nitro_enclaves/blobs): ramdisk[0] = AWS's init + nsm.ko, ramdisk[1] =
#           rootfs/ + cmd + env, exactly the layout `nitro-cli build-enclave` makes; AWS's init
#           runs /bin/enclave-entrypoint.
#
# Environment: LAYOUT (nsign | nitro), KERNEL (default: eif/kernel.sh), CMDLINE (default:
# NSIGN_CMDLINE below, or the blobs' cmdline), MODULES (space-separated .ko files, nsign layout), ENCLAVE_ENV (a file
# of KEY=VALUE lines for enclave-entrypoint, nsign layout), ENCLAVE_FILES ("SRC:DST ..." extra
# files in the image, nsign layout; tests), KERNEL_VERSION,
# ALLOW_DEBUG_MODE=1 (the image lets a debug-mode enclave, PCR0 all zero, decrypt: written to its
# env as NSIGN_ALLOW_DEBUG_MODE=1, so it is in the image's measurements; default refused),
# ALLOW_ANONYMOUS_CLIENTS=1 (the image serves keys files without client pinning, version 1: for
# local demos and tests; written as NSIGN_ALLOW_ANONYMOUS_CLIENTS=1; default: every image
# requires client authentication), MIN_POLICY_EPOCH=N (the image refuses keys files whose
# policy_epoch is below N: written as NSIGN_MIN_POLICY_EPOCH=N; raise it with the epoch to make
# a rollback to an older file fail at boot), IMAGE_NAME, IMAGE_VERSION, METADATA (a JSON object file: the metadata's CustomMetadata, as
# nitro-cli build-enclave --metadata; default null), SOURCE_DATE_EPOCH (default 0: every mtime
# and the metadata time).
# The output depends only on the nsign binary, the kernel, the modules and these variables.
set -euo pipefail
out=${1:?usage: eif/build.sh OUT NSIGN}
nsign=${2:?usage: eif/build.sh OUT NSIGN}
here=$(cd "$(dirname "$0")" && pwd)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-0} LC_ALL=C TZ=UTC
# AWS's x86_64 enclave command line exactly (aws-nitro-enclaves-sdk-bootstrap,
# kernel/cmdline/x86_64.cmdline), then nsign's init. rdinit= must stay last: the kernel would
# hand the words it does not know (`nomodules`) to init as arguments, and rdinit= clears those
# seen before it, so enclave-entrypoint starts with none.
AWS_CMDLINE="reboot=k panic=30 pci=off nomodules console=ttyS0 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd random.trust_cpu=on"
NSIGN_CMDLINE="$AWS_CMDLINE rdinit=/bin/enclave-entrypoint"
blobs=${NITRO_BLOBS:-/usr/share/nitro_enclaves/blobs}
layout=${LAYOUT:-nsign}
case $layout in
nsign | nitro) ;;
*) echo "eif/build.sh: unknown LAYOUT '$layout': use nsign (the default) or nitro" >&2; exit 1 ;;
esac
if [ $layout = nitro ]; then
    for f in bzImage cmdline init nsm.ko; do
        [ -f "$blobs/$f" ] || { echo "eif/build.sh: LAYOUT=nitro needs nitro-cli's blobs, and" \
            "$blobs/$f does not exist (install aws-nitro-enclaves-cli or set NITRO_BLOBS)" >&2; exit 1; }
    done
fi
kernel=${KERNEL:-$(LAYOUT=$layout bash "$here/kernel.sh" --build)}
[ -f "$kernel" ] || { echo "eif/build.sh: kernel $kernel not found" >&2; exit 1; }
[ -x "$nsign" ] || { echo "eif/build.sh: $nsign is not an executable nsign" >&2; exit 1; }
kver=${KERNEL_VERSION:-}
if [ -z "$kver" ] && command -v file >/dev/null 2>&1; then
    # "Linux kernel x86 boot executable bzImage, version 6.1.0-56-amd64 (...)"
    kver=$(file -bL "$kernel" | sed -n 's/.*, version \([^ ,]*\).*/\1/p')
fi
kver=${kver:-unknown}
mpe=${MIN_POLICY_EPOCH:-0}
case $mpe in
    *[!0-9]*) mpe=x ;;
    *) [ ${#mpe} -le 10 ] && [ "$mpe" -le 4294967295 ] && mpe=$((10#$mpe)) || mpe=x ;;
esac
[ "$mpe" != x ] || { echo "eif/build.sh: MIN_POLICY_EPOCH=$MIN_POLICY_EPOCH: want an integer 0..4294967295" >&2; exit 2; }
# The image's minimum keys-file policy, measured with it (env lines, in PCR0 and PCR2).
policy_env() {
    if [ "${ALLOW_ANONYMOUS_CLIENTS:-0}" = 1 ]; then echo NSIGN_ALLOW_ANONYMOUS_CLIENTS=1; fi
    if [ "$mpe" != 0 ]; then echo "NSIGN_MIN_POLICY_EPOCH=$mpe"; fi
}

mkdir -p "$out"
rm -rf "$out/rootfs" "$out/bootstrap" "$out/app"
# The application tree: the binary and its applet links (also the image context).
mkdir -p "$out/rootfs/bin"
cp "$nsign" "$out/rootfs/bin/nsign"
chmod 0755 "$out/rootfs/bin/nsign"
for a in $("$nsign" --list); do ln -s nsign "$out/rootfs/bin/$a"; done

mkdir -p "$out/bootstrap"
if [ $layout = nitro ]; then
    cmdline=${CMDLINE:-$(cat "$blobs/cmdline")}
    cp "$blobs/init" "$out/bootstrap/init"
    cp "$blobs/nsm.ko" "$out/bootstrap/nsm.ko"
    mkdir -p "$out/bootstrap/dev"
    mkdir -p "$out/app"
    cp -a "$out/rootfs" "$out/app/rootfs"
    for d in dev proc run sys tmp var; do mkdir -p "$out/app/rootfs/$d"; done
    printf '/bin/enclave-entrypoint\n' >"$out/app/cmd"
    { printf 'PATH=/bin\n'; if [ "${ALLOW_DEBUG_MODE:-0}" = 1 ]; then echo NSIGN_ALLOW_DEBUG_MODE=1; fi
      policy_env; } >"$out/app/env"
    appdir=$out/app
else
    cmdline=${CMDLINE:-$NSIGN_CMDLINE}
    for d in dev proc sys tmp run; do mkdir -p "$out/bootstrap/$d"; done
    # Modules sit at the bootstrap's root; /env tells enclave-entrypoint (PID 1) which to load.
    mods=
    for m in ${MODULES:-}; do
        cp "$m" "$out/bootstrap/$(basename "$m")"
        mods=${mods:+$mods,}/$(basename "$m")
    done
    mkdir -p "$out/app"
    cp -a "$out/rootfs/." "$out/app/"
    # ENCLAVE_FILES="SRC:DST ...": extra files in the image (tests: a fake service's CA).
    for f in ${ENCLAVE_FILES:-}; do
        mkdir -p "$out/app/$(dirname "${f#*:}")"
        cp "${f%%:*}" "$out/app/${f#*:}"
    done
    { echo "NSIGN_MODULES=$mods"; if [ -n "${ENCLAVE_ENV:-}" ]; then cat "$ENCLAVE_ENV"; fi
      if [ "${ALLOW_DEBUG_MODE:-0}" = 1 ]; then echo NSIGN_ALLOW_DEBUG_MODE=1; fi
      policy_env; } >"$out/app/env"
    appdir=$out/app
fi

"$nsign" eif cpio "$out/bootstrap" -o "$out/bootstrap.cpio"
"$nsign" eif cpio "$appdir" -o "$out/app.cpio"
"$nsign" eif build --kernel "$kernel" --cmdline "$cmdline" \
    --ramdisk "$out/bootstrap.cpio" --ramdisk "$out/app.cpio" \
    --name "${IMAGE_NAME:-nsign-enclave}" --image-version "${IMAGE_VERSION:-$("$nsign" --version | sed 's/^nsign //')}" \
    --kernel-version "$kver" ${METADATA:+--metadata "$METADATA"} -o "$out/nsign.eif" \
    >"$out/measurements.json"
echo "eif/build.sh: layout=$layout kernel=$kernel eif=$out/nsign.eif client_auth=$([ "${ALLOW_ANONYMOUS_CLIENTS:-0}" = 1 ] && echo optional || echo required) min_policy_epoch=$mpe" >&2
cat "$out/measurements.json"
