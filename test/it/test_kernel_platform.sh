#!/usr/bin/env bash
# test_kernel_platform: nsign's enclave kernel against AWS's platform (eif/kernel-platform.txt)
# and its patches, read from the cached build (`make kernel`; nothing is configured or built
# here, so the test costs seconds):
#   - the built kernel's resolved .config passes `scripts/kernel.sh check-platform`: every
#     platform option equals AWS's x86_64 value, every listed difference holds
#   - the check fails, naming the option, for a config with AWS's values broken (NR_CPUS=64, no
#     ACPI, no command-line virtio-mmio devices), for a listed difference that no longer holds,
#     and for a malformed list
#   - BUILDINFO records every patch of eif/kernel-patches/ with its SHA-256; the patched source
#     the kernel was built from has no queued_replies pushback, and the unpacked source shared
#     by every configuration is untouched
. "$(dirname "$0")/../lib/tap.sh"
cd "$NS_ROOT" || exit 1
tmp=$(mktemp -d /tmp/ns-kplatform-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

dir=$(bash scripts/kernel.sh path dir 2>"$tmp/dir.err") ||
    { fail "scripts/kernel.sh gives the built kernel (make kernel)"; sed 's/^/# /' "$tmp/dir.err"; tap_done; exit 1; }
echo "# kernel $dir"
bash scripts/kernel.sh check-platform >"$tmp/ok.out" 2>&1
check "the built kernel's config passes eif/kernel-platform.txt" test $? = 0 || sed 's/^/# /' "$tmp/ok.out"
sed 's/^/# /' "$tmp/ok.out"
n_same=$(grep -c '^same ' eif/kernel-platform.txt)
n_diff=$(grep -c '^differ ' eif/kernel-platform.txt)
check "it checked every listed option ($n_same as AWS's, $n_diff differences)" \
    grep -q ": $n_same options as AWS's, $n_diff listed differences" "$tmp/ok.out"
for o in 'CONFIG_ACPI=y' 'CONFIG_NR_CPUS=128' 'CONFIG_MEMORY_HOTPLUG=y' 'CONFIG_KVM_GUEST=y' \
    'CONFIG_PARAVIRT_CLOCK=y' 'CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y'; do
    check "$o in the list as AWS's value and in the built config" \
        bash -c "grep -qx 'same ${o%%=*} ${o#*=}' eif/kernel-platform.txt && grep -qx '$o' '$dir/config'"
done
check "every difference carries a reason" \
    bash -c "! awk '\$1 == \"differ\" && NF < 5' eif/kernel-platform.txt | grep -q ."

# broken CONFIG SED-EXPR MESSAGE: the built config edited by SED-EXPR fails, naming MESSAGE.
broken() {
    local name=$1 expr=$2 msg=$3
    sed "$expr" "$dir/config" >"$tmp/$name.config"
    bash scripts/kernel.sh check-platform "$tmp/$name.config" >"$tmp/$name.out" 2>&1
    local rc=$?
    check "check-platform refuses a config with $name (exit $rc)" test $rc != 0
    check "naming it: $msg" grep -qF -- "$msg" "$tmp/$name.out" || sed 's/^/# /' "$tmp/$name.out"
}
broken nr-cpus-64 's/^CONFIG_NR_CPUS=.*/CONFIG_NR_CPUS=64/' \
    "CONFIG_NR_CPUS=64, but AWS's enclave kernel has CONFIG_NR_CPUS=128"
broken no-acpi 's/^CONFIG_ACPI=y/# CONFIG_ACPI is not set/' \
    "CONFIG_ACPI=n, but AWS's enclave kernel has CONFIG_ACPI=y"
broken no-cmdline-devices '/^CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=/d' \
    "CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=n, but AWS's enclave kernel has CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y"
broken modules-on 's/^# CONFIG_MODULES is not set/CONFIG_MODULES=y/' \
    "lists it as a deliberate difference with CONFIG_MODULES=n"
# A list whose line has no reason, or an unknown kind, is refused too.
{ cat eif/kernel-platform.txt; echo 'differ CONFIG_HZ 250 250'; } >"$tmp/noreason.txt"
NS_KERNEL_PLATFORM=$tmp/noreason.txt bash scripts/kernel.sh check-platform >"$tmp/noreason.out" 2>&1
check "a difference without a reason is refused" grep -q "want 'differ OPTION AWS NSIGN REASON'" "$tmp/noreason.out"
{ cat eif/kernel-platform.txt; echo 'equal CONFIG_HZ 250'; } >"$tmp/kind.txt"
NS_KERNEL_PLATFORM=$tmp/kind.txt bash scripts/kernel.sh check-platform >"$tmp/kind.out" 2>&1
check "an unknown line kind is refused" grep -q "unknown line kind 'equal'" "$tmp/kind.out"

# The patches: BUILDINFO names each one with its SHA-256, and the source reflects them.
n=0
for p in eif/kernel-patches/*.patch; do
    n=$((n + 1))
    want="patch: $(basename "$p") sha256 $(sha256sum <"$p" | cut -d' ' -f1)"
    check "BUILDINFO records $(basename "$p") and its SHA-256" grep -qxF "$want" "$dir/BUILDINFO"
done
check "eif/kernel-patches holds the vsock patch" test -f eif/kernel-patches/0001-vsock-virtio-no-rx-pushback-on-queued-replies.patch
check "BUILDINFO lists exactly the $n patch(es) of eif/kernel-patches" \
    test "$(grep -c '^patch: ' "$dir/BUILDINFO")" = "$n"
sed 's/^/# /' "$dir/BUILDINFO"
cache=$(dirname "$dir")
ver=$(sed -n 's/^KERNEL_PIN=.*=//p' scripts/pins.sh)
src=$(ls -d "$cache/linux-src-$ver+"*/ 2>/dev/null | while read -r d; do
    cmp -s "$d/.nsign-patches" <(sed -n 's/^patch: //p' "$dir/BUILDINFO") && echo "$d"; done | head -1)
check "the patched source of this build exists ($src)" test -n "$src"
f=net/vmw_vsock/virtio_transport.c
check "the patched source has no queued_replies pushback" bash -c "! grep -q queued_replies '$src/$f'"
check "the unpacked source shared by every configuration still has it (not modified)" \
    grep -q 'virtio_transport_more_replies' "$cache/linux-src-$ver/$f"
check "and the patched file is a copy of its own, not a hard link into the shared source" \
    test "$(stat -c %i "$src/$f")" != "$(stat -c %i "$cache/linux-src-$ver/$f")"
tap_done
