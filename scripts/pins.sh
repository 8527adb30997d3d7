# Pinned versions of everything nsign builds from or tests against. One line to change per update.
# shellcheck shell=bash
SRC_PINS=(
    mbedtls=2.28.3-1
    libsodium=1.0.18-1+deb12u1
    cjson=1.7.15-1+deb12u4
    nanopb=0.4.7-2
    nghttp2=1.52.0-1+deb12u3
)
APT_PACKAGES=(
    build-essential musl-tools musl-dev dpkg-dev protobuf-compiler nanopb python3-protobuf
    cmake autoconf automake libtool g++ clang libclang-rt-14-dev llvm file
    qemu-system-x86 cpio busybox-static kmod xz-utils zstd
    age socat openssl curl python3-grpcio python3-botocore python3-cbor2 python3-cryptography
    python3-pytest nghttp2-client buildah
)
# The Debian kernel package the VM tests boot (downloaded, never installed).
KERNEL_PKG=linux-image-6.1.0-35-amd64
