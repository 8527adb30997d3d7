# shellcheck shell=bash
# preflight_root.sh: what `run-enclave --preflight` checks, faked for a test (source it with T,
# NSIGN and PY set). Shared by test/it/test_preflight.sh and test/it/test_systemd_unit.sh.
#
#   pf_fake_root DIR   a host tree for NSIGN_PREFLIGHT_ROOT: /dev/nitro_enclaves (a character
#                      device: fails when mknod is not permitted), the nitro_enclaves driver's
#                      sysfs with the allocator's CPU pool 1,3, 1024 MiB of free 2 MiB hugepages,
#                      and AWS's allocator.yaml with memory_mib 1024 and cpu_count 2
#   pf_real_eif FILE   a small real EIF (random kernel and ramdisk); PF_PCR0 is its PCR0 as
#                      `nsign eif describe` prints it
#   pf_policy PCR0     a KMS key policy naming PCR0 under kms:RecipientAttestation:PCR0 (stdout)
pf_fake_root() {
    local r=$1
    mkdir -p "$r/dev" "$r/sys/module/nitro_enclaves/parameters" "$r/etc/nitro_enclaves" \
        "$r/sys/kernel/mm/hugepages/hugepages-2048kB" \
        "$r/sys/kernel/mm/hugepages/hugepages-1048576kB" || return 1
    mknod "$r/dev/nitro_enclaves" c 1 3 2>/dev/null || return 1
    echo "1,3" >"$r/sys/module/nitro_enclaves/parameters/ne_cpus"
    echo 512 >"$r/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages"
    echo 0 >"$r/sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages"
    cat >"$r/etc/nitro_enclaves/allocator.yaml" <<'Y'
---
# Enclave configuration file.
#
# How much memory to allocate for enclaves (in MiB).
memory_mib: 1024
#
# How many CPUs to reserve for enclaves.
cpu_count: 2
#
# Alternatively, the exact CPUs to reserve for enclaves.
# cpu_pool: 2,3
Y
}

pf_real_eif() {
    head -c 300000 /dev/urandom >"$T/pf-kernel"
    head -c 1200000 /dev/urandom >"$T/pf-ramdisk1"
    printf 'app' >"$T/pf-ramdisk2"
    SOURCE_DATE_EPOCH=0 "$NSIGN" eif build --kernel "$T/pf-kernel" --cmdline "console=ttyS0" \
        --ramdisk "$T/pf-ramdisk1" --ramdisk "$T/pf-ramdisk2" --output "$1" >/dev/null || return 1
    PF_PCR0=$("$NSIGN" eif describe "$1" |
        "$PY" -c 'import json,sys;print(json.load(sys.stdin)["Measurements"]["PCR0"])')
    [ -n "$PF_PCR0" ]
}

pf_policy() {
    "$PY" - "$1" <<'PY'
import json, sys
print(json.dumps({"Version": "2012-10-17", "Statement": [
    {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
     "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"},
    {"Sid": "Enclave decrypt", "Effect": "Allow",
     "Principal": {"AWS": "arn:aws:iam::111122223333:role/nsign-host"}, "Action": "kms:Decrypt",
     "Resource": "*", "Condition": {"StringEqualsIgnoreCase": {
         "kms:RecipientAttestation:PCR0": sys.argv[1].upper()}}}]}, indent=2))
PY
}
