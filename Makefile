# nsign: one static musl binary with busybox-style applets.
#   make              build/nsign (installs and builds the pinned dependencies first if needed)
#   make test         every test; ends with "N passed, N failed"
#   make demo         the local end-to-end demo of the enclave flow
#   make test-asan    unit tests under ASan+UBSan     make fuzz   libFuzzer targets (clang)
#   make repro-check  two builds in two directories must be byte-identical
#   make kernel       nsign's enclave kernel (Debian 13 linux source + eif/kernel.config)
#   make qemu         qemu-system-x86_64 with the nitro-enclave machine (Debian 13 qemu source)
#   (both built once per machine into ${NSIGN_CACHE:-/var/cache/nsign}; links in build/)
# O=DIR puts objects and binaries in DIR (default build). V=1 shows commands.

O ?= build
V ?= 0
Q := $(if $(filter 1,$(V)),,@)
export LC_ALL := C
export TZ := UTC
export SOURCE_DATE_EPOCH ?= 1700000000
unexport LIBRARY_PATH CPATH C_INCLUDE_PATH

DEPS := build/deps
DEPS_HOST := build/deps-host
DEPS_STAMP := $(DEPS)/.built
DEPS_HOST_STAMP := $(DEPS_HOST)/.built
include scripts/nanopb.mk

# src/ groups its modules in shallow folders (src/README.md is the map); every folder is on the
# include path, so a module is included by its name alone.
SRC_DIRS := $(sort $(dir $(wildcard src/*/*.c)))
SRC_INC := -Isrc $(patsubst %/,-I%,$(SRC_DIRS))
CC := musl-gcc
WARN := -Wall -Wextra -Wshadow -Wformat=2 -Wno-unused-parameter -Wvla -Wno-format-truncation -Werror
CFLAGS_COMMON := -std=c11 -D_GNU_SOURCE -O2 -g0 $(WARN) -fstack-protector-strong \
	-ffile-prefix-map=$(CURDIR)=. -fno-ident -ffunction-sections -fdata-sections \
	$(PB_DEFINES) -DMBEDTLS_CONFIG_FILE='"nsign_mbedtls_config.h"' $(SRC_INC) -Iapplets -I$(O)/gen
CFLAGS := $(CFLAGS_COMMON) -I$(DEPS)/include
LDFLAGS := -static -Wl,--gc-sections -Wl,--build-id=none -s
# mbedtls's entropy calls back into rng.c (mbedtls_hardware_poll): -u makes the linker take rng.o
# from libnsign.a even when nothing else of the program refers to it.
ENTROPY_HOOK := -Wl,-u,mbedtls_hardware_poll
LIBS := $(ENTROPY_HOOK) -L$(DEPS)/lib -lnghttp2 -lmbedtls -lmbedx509 -lmbedcrypto -lsecp256k1 -lsodium -lcjson \
	-lprotobuf-nanopb -lpthread

APPLET_NAMES := $(shell sh scripts/applets.sh)
PROTOS := $(wildcard proto/*.proto)
GEN_C := $(patsubst proto/%.proto,$(O)/gen/%.pb.c,$(PROTOS))
GEN_H := $(GEN_C:.c=.h)
LIB_SRC := $(wildcard src/*/*.c)
APPLET_SRC := $(wildcard applets/*.c)
LIB_OBJ := $(patsubst %.c,$(O)/obj/%.o,$(LIB_SRC)) $(patsubst $(O)/gen/%.c,$(O)/obj/gen/%.o,$(GEN_C))
APPLET_OBJ := $(patsubst %.c,$(O)/obj/%.o,$(APPLET_SRC))
UNIT_SRC := $(wildcard test/unit/test_*.c)
UNIT_BIN := $(patsubst test/unit/%.c,$(O)/test/%,$(UNIT_SRC))
FUZZ_SRC := $(wildcard test/fuzz/fuzz_*.c)

.PHONY: apt-deps all deps deps-host links kernel kernel-second qemu test test-unit test-asan test-asan-build fuzz demo repro-check clean image eif
all: $(O)/nsign links

deps: $(DEPS_STAMP)
$(DEPS_STAMP): scripts/pins.sh scripts/build-deps.sh scripts/nanopb.mk src/nsign_mbedtls_config.h
	$(Q)bash scripts/deps.sh all
	$(Q)bash scripts/build-deps.sh musl
	$(Q)touch $@
deps-host: $(DEPS_HOST_STAMP)
$(DEPS_HOST_STAMP): $(DEPS_STAMP)
	$(Q)bash scripts/build-deps.sh host
	$(Q)touch $@

$(O)/gen/%.pb.c $(O)/gen/%.pb.h: proto/%.proto proto/%.options $(DEPS_STAMP)
	@mkdir -p $(O)/gen
	$(if $(Q),@echo "  PROTOC  $<")
	$(Q)protoc -Iproto --plugin=protoc-gen-nanopb=$(DEPS)/bin/protoc-gen-nanopb \
	  --nanopb_out=-Iproto:$(O)/gen $<
proto/%.options: ;
# Generated sources are outputs to keep, not intermediates for make to delete after the build.
.SECONDARY: $(GEN_C) $(GEN_H)

# The pinned Debian versions (scripts/pins.sh) and the musl package's, for `nsign --version`.
GEN_H += $(O)/gen/pins.h
$(O)/gen/pins.h: scripts/pins.sh
	@mkdir -p $(O)/gen
	$(Q)bash -c '. scripts/pins.sh; for p in "$${SRC_PINS[@]}"; do \
	  n=$${p%%=*}; echo "#define NS_PIN_$${n^^} \"$${p#*=}\""; done; \
	  echo "#define NS_PIN_MUSL \"$$(dpkg-query -W -f="\$${Version}" musl-dev)\""' >$@.tmp && mv $@.tmp $@

# The serialized FileDescriptorProtos of proto/*.proto as a C array, for gRPC server reflection.
GEN_H += $(O)/gen/proto_descriptors.h
$(O)/gen/proto_descriptors.h: $(PROTOS) $(DEPS_STAMP)
	@mkdir -p $(O)/gen
	$(Q)protoc -Iproto --descriptor_set_out=$(O)/gen/proto_descriptors.pb $(sort $(PROTOS))
	$(Q){ echo 'static const unsigned char ns_proto_descriptors[] = {'; \
	  od -An -v -tx1 $(O)/gen/proto_descriptors.pb | sed 's/\([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	  echo '};'; } >$@.tmp && mv $@.tmp $@

$(O)/obj/gen/%.o: $(O)/gen/%.c $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -Wno-error -MMD -MP -c $< -o $@

$(O)/obj/%.o: %.c $(DEPS_STAMP) | $(GEN_H)
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(O)/libnsign.a: $(LIB_OBJ)
	$(Q)rm -f $@ && ar rcD $@ $^

$(O)/nsign: $(O)/obj/src/main.o $(APPLET_OBJ) $(O)/libnsign.a
	$(if $(Q),@echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(O)/obj/src/main.o $(APPLET_OBJ) $(O)/libnsign.a $(LIBS)

links: $(O)/nsign
	@mkdir -p $(O)/bin
	$(Q)ln -sf ../nsign $(O)/bin/nsign
	$(Q)for a in $(APPLET_NAMES); do ln -sf ../nsign $(O)/bin/$$a; done

$(O)/test/%: test/unit/%.c test/unit/t.h $(O)/libnsign.a
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  TEST    $@")
	$(Q)$(CC) $(CFLAGS) -Itest/unit -MMD -MP $(LDFLAGS) -o $@ $< $(O)/libnsign.a $(LIBS)

test-unit: $(UNIT_BIN)
	$(Q)bash test/run.sh unit $(O)

# Sanitizer and fuzz builds use the system compiler (glibc) and the host build of the same deps.
ASAN_O := $(O)/asan
ASAN_CC := clang
ASAN_CFLAGS := $(filter-out -Werror -fstack-protector-strong -Wno-format-truncation,$(CFLAGS_COMMON)) -I$(DEPS_HOST)/include \
	-I$(ASAN_O)/gen -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=undefined -DNS_TEST_ASAN=1 -Werror=unused-result
ASAN_LIBS := $(ENTROPY_HOOK) -L$(DEPS_HOST)/lib -lnghttp2 -lmbedtls -lmbedx509 -lmbedcrypto -lsecp256k1 -lsodium -lcjson \
	-lprotobuf-nanopb -lpthread
ASAN_LIB_OBJ := $(patsubst %.c,$(ASAN_O)/obj/%.o,$(LIB_SRC)) $(patsubst $(O)/gen/%.c,$(ASAN_O)/obj/gen/%.o,$(GEN_C))
ASAN_UNIT := $(patsubst test/unit/%.c,$(ASAN_O)/test/%,$(UNIT_SRC))

$(ASAN_O)/obj/gen/%.o: $(O)/gen/%.c $(DEPS_HOST_STAMP)
	@mkdir -p $(dir $@)
	$(Q)$(ASAN_CC) $(ASAN_CFLAGS) -I$(O)/gen -c $< -o $@
$(ASAN_O)/obj/%.o: %.c $(DEPS_HOST_STAMP) | $(GEN_H)
	@mkdir -p $(dir $@)
	$(Q)$(ASAN_CC) $(ASAN_CFLAGS) -I$(O)/gen -MMD -MP -c $< -o $@
$(ASAN_O)/libnsign.a: $(ASAN_LIB_OBJ)
	$(Q)rm -f $@ && ar rcD $@ $^
$(ASAN_O)/test/%: test/unit/%.c test/unit/t.h $(ASAN_O)/libnsign.a
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  ASAN    $@")
	$(Q)$(ASAN_CC) $(ASAN_CFLAGS) -I$(O)/gen -Itest/unit -o $@ $< $(ASAN_O)/libnsign.a $(ASAN_LIBS)

test-asan-build: $(ASAN_UNIT)
test-asan: test-asan-build
	$(Q)bash test/run.sh asan $(O)

FUZZ_O := $(O)/fuzz
FUZZ_CFLAGS := $(filter-out -Werror -fstack-protector-strong -Wno-format-truncation,$(CFLAGS_COMMON)) -I$(DEPS_HOST)/include \
	-I$(O)/gen -O1 -g -fsanitize=address,undefined,fuzzer-no-link -DNS_FUZZ=1 -Werror=unused-result
FUZZ_LIB_OBJ := $(patsubst %.c,$(FUZZ_O)/obj/%.o,$(LIB_SRC)) $(patsubst $(O)/gen/%.c,$(FUZZ_O)/obj/gen/%.o,$(GEN_C))
FUZZ_BIN := $(patsubst test/fuzz/%.c,$(FUZZ_O)/%,$(FUZZ_SRC))
$(FUZZ_O)/obj/gen/%.o: $(O)/gen/%.c $(DEPS_HOST_STAMP)
	@mkdir -p $(dir $@)
	$(Q)clang $(FUZZ_CFLAGS) -c $< -o $@
$(FUZZ_O)/obj/%.o: %.c $(DEPS_HOST_STAMP) | $(GEN_H)
	@mkdir -p $(dir $@)
	$(Q)clang $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@
$(FUZZ_O)/libnsign.a: $(FUZZ_LIB_OBJ)
	$(Q)rm -f $@ && ar rcD $@ $^
$(FUZZ_O)/%: test/fuzz/%.c $(FUZZ_O)/libnsign.a
	$(if $(Q),@echo "  FUZZ    $@")
	$(Q)clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_O)/libnsign.a $(ASAN_LIBS)
fuzz: $(FUZZ_BIN)

# apt packages for tests can change without touching the libraries: check them on every run.
apt-deps:
	$(Q)bash scripts/deps.sh apt
test: apt-deps all $(UNIT_BIN) kernel kernel-second qemu
	$(Q)bash test/run.sh all $(O)

demo: apt-deps all
	$(Q)bash test/demo.sh $(O)

repro-check:
	$(Q)bash scripts/repro-check.sh

# Big builds from Debian 13 source packages, cached machine-wide by pinned version and recipe
# (scripts/kernel.sh, scripts/qemu.sh): build/kernel/bzImage and build/qemu/qemu-system-x86_64
# link to the cache. Each prints the path of what it built.
kernel:
	$(Q)bash scripts/kernel.sh
# The same kernel built a second time in another folder (cached), for test_kernel_repro: built
# here, before the tests, so that no single test waits for a whole kernel build.
kernel-second: kernel
	$(Q)bash scripts/kernel.sh second-build >/dev/null
qemu:
	$(Q)bash scripts/qemu.sh

# The enclave image (Dockerfile.enclave, docker or buildah) and the reproducible EIF (no Docker;
# the nsign layout with nsign's kernel of `make kernel`, built if needed, whatever is installed;
# KERNEL=path picks another kernel; LAYOUT=nitro, only by name, builds nitro-cli's layout from
# its blobs). Outputs in $(O)/eif/; see eif/README.md.
image: all
	$(Q)bash eif/image.sh $(O)/eif $(O)/nsign
eif: all
	$(Q)bash eif/build.sh $(O)/eif $(O)/nsign
	$(Q)/usr/bin/python3 test/lib/eif_identity.py eif $(O)/eif/nsign.eif >&2

clean:
	rm -rf $(O)/obj $(O)/nsign $(O)/bin $(O)/test $(O)/gen $(O)/libnsign.a $(O)/asan $(O)/fuzz

-include $(shell find $(O)/obj $(O)/asan/obj $(O)/fuzz/obj -name '*.d' 2>/dev/null)
