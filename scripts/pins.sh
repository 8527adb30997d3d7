# Pinned Debian source packages nsign is built from (scripts/build-deps.sh). One line per update.
# apt packages for the toolchain and tests are in scripts/apt-packages.txt.
# shellcheck shell=bash
SRC_PINS=(
    mbedtls=2.28.3-1
    libsodium=1.0.18-1+deb12u1
    cjson=1.7.15-1+deb12u4
    nanopb=0.4.7-2
    nghttp2=1.52.0-1+deb12u3
)
# Debian 13 (trixie) source packages of the big tools built once per machine into
# ${NSIGN_CACHE:-/var/cache/nsign} (scripts/qemu.sh, scripts/kernel.sh).
QEMU_PIN=qemu=1:10.0.13+ds-0+deb13u1
KERNEL_PIN=linux-source-6.12=6.12.118-1
