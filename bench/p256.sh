#!/usr/bin/env bash
# bench/p256.sh: P-256 (ECDSA sign, verify, ECDH) and X25519 implementations side by side in one
# run on this machine (issue 25), each built from a Debian 13 source package into the same
# harness (bench/p256_speed.c), single-threaded ops/s, with ratios against nsign's mbedtls build
# and against Debian's `openssl speed -seconds 3 ecdsap256 ecdhp256 ecdhx25519` run in between.
# Candidates (static musl unless said):
#   mbedtls-ecp      nsign's libmbedcrypto (build/deps: src/nsign_mbedtls_config.h), PSA API (the
#                    path of TLS 1.3's ECDHE: the curve's group is loaded per operation)
#   mbedtls-ecp-legacy  the same library through mbedtls_ecdsa_*/mbedtls_ecdh_* with the group
#                    kept between calls (as nsign's ecdsa.c signs, and TLS's pk signatures)
#   mbedtls-p256m    the same config + MBEDTLS_PSA_P256M_DRIVER_ENABLED (bundled p256-m), PSA API
#   p256m-direct[-mul64]  p256-m's own API, without and with MUL64_IS_CONSTANT_TIME
#   nettle           nettle/hogweed (x86_64 asm) on GMP (Debian 13's gmp source, its x86_64 asm)
#   nettle-minigmp   nettle/hogweed with --enable-mini-gmp (no GMP: slow C bignums)
#   wolfssl-sp       wolfCrypt with --enable-sp --enable-sp-asm (sp_x86_64 asm), ECC_TIMING_RESISTANT
#   openssl          Debian's installed libcrypto (glibc, dynamic: a reference, not a candidate)
#   libsodium        nsign's libsodium (build/deps), X25519 only
# Third-party sources and builds go to $P256_WORK (default build/p256-bench, never committed);
# they are reused when present. ECDH secrets must agree across backends and X25519 must give
# RFC 7748's value, or the script stops. The host is shared: the load average is printed with
# the figures; read the ratios, not the absolute rates. Env: P256_SECS (2 per op), ROUNDS (2;
# the best of the rounds is kept, backends interleaved).
# Not a test: numbers only. Needs musl-tools, libssl-dev, the trixie deb-src entry (scripts/deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pins.sh
unset LIBRARY_PATH CPATH C_INCLUDE_PATH
TOP=$PWD
W=${P256_WORK:-$TOP/build/p256-bench}
ROUNDS=${ROUNDS:-2}
NETTLE_PIN=nettle=3.10.1-1
WOLFSSL_PIN=wolfssl=5.7.2-0.1+deb13u2
GMP_PIN=gmp=2:6.3.0+dfsg-3
CF=(-O2 -fPIC -ffunction-sections -fdata-sections)
LF=-Wl,--gc-sections
[ -f build/deps/lib/libmbedcrypto.a ] || { echo "bench/p256.sh: build/deps missing: run make deps" >&2; exit 1; }
for p in "${SRC_PINS[@]}"; do [ "${p%%=*}" = mbedtls ] && MBEDTLS_SRC=$TOP/build/src/mbedtls-${p#*=}; done
[ -d "$MBEDTLS_SRC" ] || { echo "bench/p256.sh: $MBEDTLS_SRC missing: run scripts/deps.sh" >&2; exit 1; }
mkdir -p "$W/bin"
log() { echo "p256: $*" >&2; }

# Sources: apt-get source into $W/src (dpkg-source applies Debian's patches).
fetch() {
    local name=${1%%=*}
    local d
    d=$(find "$W/src" -maxdepth 1 -name "$name-[0-9]*" 2>/dev/null | head -1)
    if [ -z "$d" ]; then
        log "fetching $1"
        mkdir -p "$W/src"
        (cd "$W/src" && apt-get source -q "$1" >/dev/null 2>&1) ||
            { echo "bench/p256.sh: apt-get source $1 failed (is the trixie deb-src entry there? scripts/deps.sh)" >&2; exit 1; }
        d=$(find "$W/src" -maxdepth 1 -name "$name-[0-9]*" | head -1)
    fi
    echo "$d"
}

# An mbedtls variant: nsign's config plus one define. (MBEDTLS_ECP_FIXED_POINT_OPTIM, ROM tables
# for G, is on already: mbedtls/ecp.h defaults it to 1.)
mbedtls_variant() { # NAME DEFINE
    local d=$W/mbedtls-$1
    [ -f "$d/library/libmbedcrypto.a" ] && return 0
    log "building mbedtls ($2)"
    rm -rf "$d"
    mkdir -p "$d"
    cp -a "$MBEDTLS_SRC/." "$d"
    sed "s|^#endif\$|#define $2\n#endif|" src/nsign_mbedtls_config.h >"$d/include/nsign_mbedtls_config.h"
    make -s -C "$d/library" -j"$(nproc)" CC=musl-gcc \
        CFLAGS="${CF[*]} -I../include -DMBEDTLS_CONFIG_FILE='\"nsign_mbedtls_config.h\"'" libmbedcrypto.a >/dev/null
}
mbedtls_variant p256m MBEDTLS_PSA_P256M_DRIVER_ENABLED

GMP_SRC=$(fetch $GMP_PIN)
if [ ! -f "$W/gmp/lib/libgmp.a" ]; then
    log "building gmp"
    # Debian's +dfsg tarball has no doc/; its patched Makefile.am does not want one once
    # regenerated (debian/rules runs dh_autoreconf): do the same.
    (cd "$GMP_SRC" && autoreconf -fi >/dev/null 2>&1 && CC=musl-gcc CFLAGS="${CF[*]}" ./configure -q --disable-shared --enable-static \
        --prefix="$W/gmp" >/dev/null && make -s -j"$(nproc)" >/dev/null 2>&1 && make -s install >/dev/null 2>&1)
fi
NETTLE_SRC=$(fetch $NETTLE_PIN)
nettle_build() { # PREFIX CONFIGURE-ARGS...
    local prefix=$1
    shift
    [ -n "$(find "$prefix" -name libhogweed.a 2>/dev/null)" ] && return 0
    log "building nettle ($*)"
    rm -rf "$W/nettle-build"
    mkdir -p "$W/nettle-build"
    cp -a "$NETTLE_SRC/." "$W/nettle-build"
    (cd "$W/nettle-build" && { make -s distclean >/dev/null 2>&1 || true; } &&
        CC=musl-gcc CFLAGS="${CF[*]}" ./configure -q --disable-shared --disable-documentation \
        --disable-openssl --prefix="$prefix" "$@" >/dev/null &&
        make -s -j"$(nproc)" >/dev/null 2>&1 && make -s install >/dev/null 2>&1)
}
# lib or lib64, as nettle's configure decides.
nettle_libdir() { dirname "$(find "$1" -name libhogweed.a | head -1)"; }
nettle_build "$W/nettle" --with-include-path="$W/gmp/include" --with-lib-path="$W/gmp/lib"
nettle_build "$W/nettle-minigmp" --enable-mini-gmp

WOLFSSL_SRC=$(fetch $WOLFSSL_PIN)
if [ ! -f "$W/wolfssl/lib/libwolfssl.a" ]; then
    log "building wolfssl"
    # Debian's source has no generated configure (debian/rules runs dh_autoreconf): the same.
    (cd "$WOLFSSL_SRC" && autoreconf -fi >/dev/null 2>&1 && CC=musl-gcc CFLAGS="${CF[*]}" ./configure -q --enable-static --disable-shared \
        --enable-cryptonly --enable-ecc --enable-sp=yes --enable-sp-asm --enable-sp-math-all \
        --enable-curve25519 --disable-examples --disable-crypttests --disable-benchmark \
        --prefix="$W/wolfssl" >/dev/null && make -s -j"$(nproc)" >/dev/null 2>&1 && make -s install >/dev/null 2>&1)
fi

# The harness, once per backend.
H=bench/p256_speed.c
MBCF="-DMBEDTLS_CONFIG_FILE=\"nsign_mbedtls_config.h\""
P=$MBEDTLS_SRC/3rdparty/p256-m/p256-m
musl-gcc "${CF[@]}" -DB_MBEDTLS "$MBCF" -Ibuild/deps/include $H -Lbuild/deps/lib -lmbedcrypto -lpthread \
    -static $LF -o "$W/bin/mbedtls-ecp"
musl-gcc "${CF[@]}" -DB_MBEDTLS_LEGACY -DMBEDTLS_ALLOW_PRIVATE_ACCESS "$MBCF" -Ibuild/deps/include $H \
    -Lbuild/deps/lib -lmbedcrypto -lpthread -static $LF -o "$W/bin/mbedtls-ecp-legacy"
musl-gcc "${CF[@]}" -DB_MBEDTLS_P256M -DBNAME='"mbedtls-p256m"' "$MBCF" -I"$W/mbedtls-p256m/include" $H \
    "$W/mbedtls-p256m/library/libmbedcrypto.a" -lpthread -static $LF -o "$W/bin/mbedtls-p256m"
for v in "" -mul64; do
    musl-gcc "${CF[@]}" -DB_P256M ${v:+-DMUL64_IS_CONSTANT_TIME} -DMBEDTLS_PSA_P256M_DRIVER_ENABLED "$MBCF" \
        -Ibuild/deps/include -I"$P" -I"$MBEDTLS_SRC/include" $H "$P/p256-m.c" -Lbuild/deps/lib \
        -lmbedcrypto -lpthread -static $LF -o "$W/bin/p256m-direct$v"
done
musl-gcc "${CF[@]}" -DB_NETTLE -I"$W/nettle/include" -I"$W/gmp/include" $H -L"$(nettle_libdir "$W/nettle")" -lhogweed \
    -lnettle -L"$W/gmp/lib" -lgmp -static $LF -o "$W/bin/nettle"
musl-gcc "${CF[@]}" -DB_NETTLE -DBNAME='"nettle-minigmp"' -I"$W/nettle-minigmp/include" $H \
    -L"$(nettle_libdir "$W/nettle-minigmp")" -lhogweed -lnettle -static $LF -o "$W/bin/nettle-minigmp"
musl-gcc "${CF[@]}" -DB_WOLFSSL -I"$W/wolfssl/include" $H -L"$W/wolfssl/lib" -lwolfssl -lm -static \
    $LF -o "$W/bin/wolfssl-sp"
gcc "${CF[@]}" -DB_OPENSSL -Wno-deprecated-declarations $H -lcrypto $LF -o "$W/bin/openssl"
musl-gcc "${CF[@]}" -DB_SODIUM -Ibuild/deps/include $H -Lbuild/deps/lib -lsodium -static $LF -o "$W/bin/libsodium"
BACKENDS="mbedtls-ecp mbedtls-ecp-legacy mbedtls-p256m p256m-direct
    p256m-direct-mul64 nettle nettle-minigmp wolfssl-sp openssl libsodium"

# Stripped size of each harness binary: what the candidate's code adds, roughly (the
# mbedtls ones carry all of nsign's libmbedcrypto that PSA init pulls in; openssl is dynamic).
sizes=$(for b in $BACKENDS; do strip -o "$W/bin/$b.stripped" "$W/bin/$b" && echo "$b=$(stat -c %s "$W/bin/$b.stripped")"; done | tr '\n' ' ')

res=$W/results.txt
: >"$res"
load0=$(cut -d' ' -f1-3 /proc/loadavg)
speed=
for r in $(seq "$ROUNDS"); do
    for b in $BACKENDS; do
        log "round $r: $b"
        "$W/bin/$b" >>"$res"
    done
    log "round $r: openssl speed"
    speed+=$(openssl speed -seconds 3 ecdsap256 ecdhp256 ecdhx25519 2>/dev/null)$'\n'
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)

# Every backend's ECDH secret must be the same (X25519's was checked against RFC 7748 already).
[ "$(awk '$2 == "ecdh" {print $4}' "$res" | sort -u | wc -l)" = 1 ] ||
    { echo "bench/p256.sh: backends disagree on the P-256 shared secret:" >&2; grep ecdh "$res" >&2; exit 1; }

# `openssl speed`'s best of the rounds (its figures are the last columns of these lines).
best_of() { awk -v re="$1" -v col="$2" '$0 ~ re { v = $(NF - col); if (v > m) m = v } END { print m }' <<<"$speed"; }
os_sign=$(best_of 'ecdsa \\(nistp256\\)' 1)
os_verify=$(best_of 'ecdsa \\(nistp256\\)' 0)
os_ecdh=$(best_of 'ecdh \\(nistp256\\)' 0)
os_x=$(best_of 'ecdh \\(X25519\\)' 0)

echo "# bench/p256.sh $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
echo "# load average before $load0, after $load1; single-threaded ops/s, best of $ROUNDS rounds, ${P256_SECS:-2} s per op"
echo "# versions: mbedtls ${MBEDTLS_SRC##*/mbedtls-}, $NETTLE_PIN, $GMP_PIN, $WOLFSSL_PIN, libsodium (pins.sh), openssl $(openssl version | cut -d' ' -f2) (Debian's libcrypto)"
echo "# x/ecp = ops/s over mbedtls-ecp's; x/ossl = over \`openssl speed\`'s figure for the same op (best of the rounds)"
awk -v sizes="$sizes" -v os_sign="$os_sign" -v os_verify="$os_verify" -v os_ecdh="$os_ecdh" -v os_x="$os_x" -v order="$BACKENDS" '
    { if ($3 > best[$1, $2]) best[$1, $2] = $3 }
    END {
        split("sign verify ecdh x25519", ops, " ")
        ref["sign"] = os_sign; ref["verify"] = os_verify; ref["ecdh"] = os_ecdh; ref["x25519"] = os_x
        ns = split(sizes, sz, " ")
        for (k = 1; k <= ns; k++) { split(sz[k], kv, "="); size[kv[1]] = kv[2] }
        printf "| %-22s |", "backend"
        for (i = 1; i <= 4; i++) printf " %8s/s | x/ecp | x/ossl |", ops[i]
        printf " stripped |\n|------------------------|"
        for (i = 1; i <= 4; i++) printf "------------|-------|--------|"
        printf "----------|\n"
        n = split(order, bs, " ")
        for (j = 1; j <= n; j++) {
            b = bs[j]; printf "| %-22s |", b
            for (i = 1; i <= 4; i++) {
                o = ops[i]; v = best[b, o]
                if (v == "") { printf " %10s | %5s | %6s |", "-", "", ""; continue }
                base = best["mbedtls-ecp", o]
                printf " %10.0f | %5s | %6.2f |", v, base ? sprintf("%.1f", v / base) : "", v / ref[o]
            }
            printf " %8s |\n", size[b]
        }
        printf "| %-22s |", "openssl speed"
        for (i = 1; i <= 4; i++) printf " %10.0f | %5s | %6s |", ref[ops[i]], ref[ops[i]] && best["mbedtls-ecp", ops[i]] ? sprintf("%.1f", ref[ops[i]] / best["mbedtls-ecp", ops[i]]) : "", "1.00"
        printf " %8s |\n", ""
    }' "$res"
