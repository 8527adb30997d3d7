#!/usr/bin/env bash
# Builds the six pinned libraries statically with musl-gcc into build/deps/{include,lib},
# from the Debian source trees that scripts/deps.sh unpacked under build/src.
# Reproducible: fixed flags, file-prefix-map, deterministic archives. Idempotent via a stamp
# that covers the pins, this script and the mbedtls config.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pins.sh
unset LIBRARY_PATH CPATH C_INCLUDE_PATH
export LC_ALL=C TZ=UTC SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
# musl: the static product build (musl-gcc). host: the same sources and config built with the
# system compiler for glibc, used only by the sanitizer and libFuzzer builds of the tests.
flavor=${1:-musl}
TOP=$PWD
case "$flavor" in
musl) OUT=$TOP/build/deps CC=musl-gcc ;;
host) OUT=$TOP/build/deps-host CC=${HOST_CC:-cc} ;;
*) echo "usage: scripts/build-deps.sh [musl|host]" >&2; exit 2 ;;
esac
stamp_key=$(cat scripts/pins.sh scripts/build-deps.sh scripts/nanopb.mk src/nsign_mbedtls_config.h | sha256sum | cut -c1-16)
[ -f "$OUT/.stamp-$stamp_key" ] && exit 0
WORK=build/deps-work-$flavor
rm -rf "$OUT" "$WORK"
mkdir -p "$OUT/include" "$OUT/lib" "$WORK"
JOBS=$(nproc)
CFLAGS="-O2 -fPIC -ffunction-sections -fdata-sections -ffile-prefix-map=$TOP=. -fno-ident -fstack-protector-strong -D_FORTIFY_SOURCE=0"
export AR=ar ARFLAGS=rcD

srcdir() { for p in "${SRC_PINS[@]}"; do [ "${p%%=*}" = "$1" ] && echo "build/src/$1-${p#*=}"; done; }

t0=$(date +%s)
echo "deps($flavor): building mbedtls"
W=$WORK/mbedtls
cp -a "$(srcdir mbedtls)" "$W"
cp src/nsign_mbedtls_config.h "$W/include/"
make -s -C "$W/library" -j"$JOBS" CC=$CC AR=ar ARFLAGS=rcD \
    CFLAGS="$CFLAGS -I../include -DMBEDTLS_CONFIG_FILE='\"nsign_mbedtls_config.h\"'" \
    libmbedcrypto.a libmbedx509.a libmbedtls.a >/dev/null
cp "$W"/library/libmbed{crypto,x509,tls}.a "$OUT/lib/"
cp -a "$W/include/mbedtls" "$W/include/psa" "$OUT/include/"
cp src/nsign_mbedtls_config.h "$OUT/include/"

echo "deps($flavor): building libsodium"
W=$WORK/libsodium
cp -a "$(srcdir libsodium)" "$W"
(cd "$W" && autoreconf -fi >/dev/null 2>&1 &&
    CC=$CC CFLAGS="$CFLAGS" ./configure -q --disable-shared --enable-static --disable-pie \
        --prefix="$OUT" >/dev/null && make -s -j"$JOBS" >/dev/null 2>&1 && make -s install >/dev/null)

echo "deps($flavor): building cJSON"
W=$WORK/cjson
cp -a "$(srcdir cjson)" "$W"
$CC $CFLAGS -c "$W/cJSON.c" -o "$W/cJSON.o"
ar rcD "$OUT/lib/libcjson.a" "$W/cJSON.o"
cp "$W/cJSON.h" "$OUT/include/"

echo "deps($flavor): building nanopb runtime"
W=$WORK/nanopb
cp -a "$(srcdir nanopb)" "$W"
PB_DEFINES=$(sed -n "s/^PB_DEFINES *:= *//p" scripts/nanopb.mk)
for f in pb_common pb_encode pb_decode; do
    $CC $CFLAGS $PB_DEFINES -I"$W" -c "$W/$f.c" -o "$W/$f.o"
done
ar rcD "$OUT/lib/libprotobuf-nanopb.a" "$W"/pb_common.o "$W"/pb_encode.o "$W"/pb_decode.o
cp "$W"/pb.h "$W"/pb_common.h "$W"/pb_encode.h "$W"/pb_decode.h "$OUT/include/"

# The nanopb generator from the same source as the runtime, run by Debian 12's /usr/bin/python3
# with its python3-protobuf (the python3 first on PATH may be one that cannot see it).
# nanopb_pb2.py is generated here once so the generator never writes into its own folder.
if [ "$flavor" = musl ]; then
    G=$OUT/nanopb-generator
    cp -a "$W/generator" "$G"
    rm -f "$G"/*.bat "$G"/*py2 "$G/protoc"
    protoc -I"$G/proto" --python_out="$G/proto" "$G/proto/nanopb.proto"
    mkdir -p "$OUT/bin"
    printf '#!/bin/sh\nexec /usr/bin/python3 "$(dirname "$0")/../nanopb-generator/protoc-gen-nanopb" "$@"\n' \
        >"$OUT/bin/protoc-gen-nanopb"
    chmod +x "$OUT/bin/protoc-gen-nanopb"
fi

echo "deps($flavor): building libsecp256k1"
# Its one-file build, as Debian configures it (recovery module on; the modules nsign does not
# use stay out), x86_64 assembly for the field. ECMULT_WINDOW_SIZE only sizes verification's
# table (4: 2 KiB instead of 1 MiB at 15): nsign verifies secp256k1 only in tests and clients;
# signing's own table (COMB_BLOCKS/TEETH) keeps its default.
W=$WORK/libsecp256k1
cp -a "$(srcdir libsecp256k1)" "$W"
SECP_DEFINES="-DENABLE_MODULE_RECOVERY=1 -DECMULT_WINDOW_SIZE=4 -DCOMB_BLOCKS=11 -DCOMB_TEETH=6"
[ "$(uname -m)" = x86_64 ] && SECP_DEFINES="$SECP_DEFINES -DUSE_ASM_X86_64=1"
for f in secp256k1 precomputed_ecmult precomputed_ecmult_gen; do
    $CC $CFLAGS $SECP_DEFINES -I"$W/src" -c "$W/src/$f.c" -o "$W/$f.o"
done
ar rcD "$OUT/lib/libsecp256k1.a" "$W"/secp256k1.o "$W"/precomputed_ecmult.o "$W"/precomputed_ecmult_gen.o
cp "$W"/include/secp256k1.h "$W"/include/secp256k1_recovery.h "$OUT/include/"

echo "deps($flavor): building nghttp2"
W=$WORK/nghttp2
cp -a "$(srcdir nghttp2)" "$W"
mkdir -p "$W/b"
(cd "$W/b" && CC=$CC CFLAGS="$CFLAGS" cmake .. -DENABLE_LIB_ONLY=ON -DBUILD_STATIC_LIBS=ON \
    -DBUILD_SHARED_LIBS=OFF -DENABLE_DOC=OFF -DENABLE_APP=OFF -DENABLE_HPACK_TOOLS=OFF \
    -DENABLE_EXAMPLES=OFF -DWITH_LIBXML2=OFF -DWITH_JEMALLOC=OFF -DBUILD_TESTING=OFF \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS_RELEASE="" \
    -DCMAKE_INSTALL_PREFIX="$OUT" >/dev/null && make -s -j"$JOBS" nghttp2_static >/dev/null)
cp "$W/b/lib/libnghttp2.a" "$OUT/lib/"
mkdir -p "$OUT/include/nghttp2"
cp "$W/lib/includes/nghttp2/nghttp2.h" "$W/b/lib/includes/nghttp2/nghttp2ver.h" "$OUT/include/nghttp2/"

rm -rf "$WORK"
touch "$OUT/.stamp-$stamp_key"
echo "deps($flavor): built in $(($(date +%s) - t0)) s"
