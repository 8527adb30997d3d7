# Pinned Debian source packages nsign is built from (scripts/build-deps.sh). One line per update.
# Debian 13 (trixie), the current stable release; scripts/deps.sh adds its deb-src entry.
# apt packages for the toolchain and tests are in scripts/apt-packages.txt.
# shellcheck shell=bash
SRC_PINS=(
    mbedtls=3.6.6-0.1~deb13u1
    libsodium=1.0.18-1+deb13u1
    cjson=1.7.18-3.1+deb13u1
    nanopb=0.4.9.1-1
    nghttp2=1.64.0-1.1+deb13u1
    libsecp256k1=0.5.0-2
)
# deb.debian.org serves nanopb 0.4.9.1-1's upstream tarball but not its .dsc or debian.tar
# (Debian's packaging for it carries no patches), so scripts/deps.sh may take the upstream
# tarball alone for the packages named here, after checking its SHA-256 against the Sources
# index. nghttp2 1.64.0-1.1+deb13u2 has the same gap and is NOT listed: its Debian patches are
# security fixes, so it stays at deb13u1 (complete, patches applied) until the mirror has u2.
SRC_ORIG_ONLY_OK=(nanopb)
# Debian 13 (trixie) source packages of the big tools built once per machine into
# ${NSIGN_CACHE:-/var/cache/nsign} (scripts/qemu.sh, scripts/kernel.sh).
QEMU_PIN=qemu=1:10.0.13+ds-0+deb13u1
KERNEL_PIN=linux-source-6.12=6.12.118-1
