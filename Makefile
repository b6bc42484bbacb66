# kiln - one non-recursive GNU Makefile: every dependency is visible to make, so -j is safe.
#
#   make            build build/kiln
#   make deps       install the Debian packages for build, tests and benchmarks (root)
#   make test       unit tests (Criterion) + integration tests against the real binary
#   make unit T=mod only tests/test_mod.c (fast loop while working on one module)
#   make demo       deps + build + example model image + smoke test
#   make bench      bench-model, then bench-scale (tests/bench; needs only the repository and make deps)
#   make bench-model  the model-image benchmark of issue 6: kiln against buildah, the machine's bounds, push bound, peak RSS
#   make bench-scale  the scale scenarios of issue 11 (100k/1M-file context, 2 GiB base, RUN with many files)
#   SANITIZE=address,undefined   build with sanitizers;  DEV=1  adds -Werror

PKGS     := libarchive libcrypto libzstd jansson libcurl zlib libisal
DEB_PKGS := build-essential pkg-config libarchive-dev libssl-dev libzstd-dev libjansson-dev \
            libcurl4-openssl-dev zlib1g-dev libisal-dev libcriterion-dev python3 openssl jq uidmap \
            skopeo umoci buildah docker-registry busybox-static zstd xz-utils bzip2 curl procps \
            hyperfine pigz isal libdeflate-tools runc time bc file valgrind
CC       ?= cc
WARN     := -Wall -Wextra -Wmissing-prototypes -Wstrict-prototypes -Wvla -Wwrite-strings \
            -Wformat=2 -Wno-format-nonliteral -Wpointer-arith -fno-common \
            -Wjump-misses-init
CFLAGS   ?= -O2 -g
CPPFLAGS += -Iinclude -D_GNU_SOURCE $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread
ifdef DEV
CFLAGS   += -Werror
endif
ifdef SANITIZE
CFLAGS   += -fsanitize=$(SANITIZE) -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS  += -fsanitize=$(SANITIZE)
endif
VERSION  := $(shell git describe --always --dirty 2>/dev/null || echo unknown)

SRCS   := $(wildcard src/*.c)
OBJS   := $(patsubst src/%.c,build/%.o,$(SRCS))
LIBOBJS := $(filter-out build/main.o,$(OBJS))
TSRCS  := $(filter-out tests/helper_%.c tests/tool_%.c,$(wildcard tests/*.c))
TOBJS  := $(patsubst tests/%.c,build/tests/%.o,$(TSRCS))
TESTDATA := $(abspath testdata)

.DELETE_ON_ERROR:
.PHONY: all deps test unit integration demo bench bench-model bench-scale clean lint asan FORCE

all: build/kiln

build/.flags: FORCE
	@mkdir -p build
	@echo '$(CC) $(CPPFLAGS) $(CFLAGS)' | cmp -s - $@ || echo '$(CC) $(CPPFLAGS) $(CFLAGS)' > $@

# only the version command sees the version, so a commit does not rebuild everything
build/.version: FORCE
	@mkdir -p build
	@echo '$(VERSION)' | cmp -s - $@ || echo '$(VERSION)' > $@
build/cmd_store.o: build/.version
build/cmd_store.o: CPPFLAGS += -DKILN_VERSION='"$(VERSION)"'

build/%.o: src/%.c build/.flags
	@mkdir -p $(@D)
	$(CC) -std=gnu11 $(CPPFLAGS) $(WARN) $(CFLAGS) -MMD -MP -c -o $@ $<

build/tests/%.o: tests/%.c build/.flags
	@mkdir -p $(@D)
	$(CC) -std=gnu11 $(CPPFLAGS) -Itests -DKILN_TESTDATA_DIR='"$(TESTDATA)"' -DKILN_HELPER_INIT='"$(abspath build/helper_init)"' $(WARN) -Wno-missing-prototypes $(CFLAGS) -MMD -MP -c -o $@ $<

build/libkiln.a: $(LIBOBJS)
	$(AR) rcs $@ $^

build/kiln: build/main.o build/libkiln.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

build/unit: $(TOBJS) build/libkiln.a build/helper_init
	$(CC) $(LDFLAGS) -o $@ $(TOBJS) build/libkiln.a -lcriterion $(LDLIBS)

# a static program the sandbox tests run inside containers (no base image needed)
build/helper_init: tests/helper_init.c
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -D_GNU_SOURCE -O2 -static -o $@ $<

# kiln's compressors over stdin, for t_memcheck (valgrind)
build/compress_tool: build/tests/tool_compress.o build/libkiln.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# one module's tests alone: make unit T=dockerfile
build/unit-%: build/tests/test_%.o build/tests/helpers.o build/libkiln.a build/helper_init
	$(CC) $(LDFLAGS) -o $@ $(filter %.o %.a,$^) -lcriterion $(LDLIBS)

unit: build/unit-$(T)
	build/unit-$(T) --jobs 2

deps:
	@if [ "$$(id -u)" = 0 ]; then \
	  missing=$$(for p in $(DEB_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    echo "installing:" $$missing; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	  fi; \
	else echo "run as root: apt-get install -y $(DEB_PKGS)"; fi

test: build/kiln build/unit build/compress_tool
	build/unit --jobs 2
	tests/integration/run.sh build/kiln

integration: build/kiln build/compress_tool
	tests/integration/run.sh build/kiln

asan:
	$(MAKE) BUILD=build SANITIZE=address,undefined test

demo: deps build/kiln
	examples/demo.sh build/kiln

# buildah vs kiln, the machine's bounds, push bound and peak RSS in one run,
# then the scale scenarios; everything they use is in tests/bench and DEB_PKGS
bench: build/kiln
	tests/bench/model-image.sh build/kiln
	tests/bench/scale.sh build/kiln

bench-model: build/kiln
	tests/bench/model-image.sh build/kiln

bench-scale: build/kiln
	tests/bench/scale.sh build/kiln

lint: build/libkiln.a
	@! grep -nE '\b(sprintf|vsprintf|strcat|strncat|strcpy|gets|system|popen|strtok|atoi)\s*\(' src/*.c include/kiln/*.h
	@! nm -g --defined-only build/libkiln.a | awk 'NF==3 && $$3 !~ /^kiln_/ {print; bad=1} END {exit !bad}'

# ---- fuzzing: tests/fuzz/ (docs/testing.md) ----
#   make fuzz FUZZ_SECONDS=N   build the libFuzzer targets (clang, ASan+UBSan) and run each for N s
#                              (FUZZ_TARGETS="dockerfile expand" picks some)
#   make fuzz-build            only build them: build/fuzz/fuzz_TARGET
#   make fuzz-replay           testdata/fuzz/TARGET/ and seeds/TARGET/ through a plain build (make test)
#   make fuzz-replay-asan      the same under ASan+UBSan; FUZZ_REPLAY_SECONDS caps each target
# The fuzz objects are a clang-built copy of the library under build/fuzz/obj/, so gcc builds are untouched.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_REPLAY_SECONDS ?=
FUZZ_CFLAGS  := -std=gnu11 -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_OBJS    := $(patsubst build/%.o,build/fuzz/obj/%.o,$(filter-out build/cmd_%.o,$(LIBOBJS)))
FUZZ_HDRS    := tests/fuzz/fuzz.h
.PHONY: fuzz fuzz-build fuzz-replay fuzz-replay-asan

build/fuzz/obj/%.o: src/%.c build/.flags
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(CPPFLAGS) -MMD -MP -c -o $@ $<

build/fuzz/libkiln.a: $(FUZZ_OBJS)
	$(AR) rcs $@ $^

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_HDRS) build/fuzz/libkiln.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(CPPFLAGS) -o $@ $< build/fuzz/libkiln.a $(LDLIBS)

build/fuzz/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c $(FUZZ_HDRS) build/fuzz/libkiln.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(CPPFLAGS) -o $@ tests/fuzz/replay.c $< build/fuzz/libkiln.a $(LDLIBS)

# the library without the commands: a commit (a new version in cmd_store.o) does not relink the replays
build/libkiln-core.a: $(filter-out build/cmd_%.o,$(LIBOBJS))
	$(AR) rcs $@ $^

build/fuzz-replay/%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c $(FUZZ_HDRS) build/libkiln-core.a
	@mkdir -p $(@D)
	$(CC) -std=gnu11 $(CPPFLAGS) $(WARN) $(CFLAGS) $(LDFLAGS) -o $@ tests/fuzz/replay.c $< build/libkiln-core.a $(LDLIBS)

fuzz-build: $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)

fuzz: fuzz-build
	tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-replay: $(FUZZ_TARGETS:%=build/fuzz-replay/%)
	@for t in $(FUZZ_TARGETS); do build/fuzz-replay/$$t testdata/fuzz/$$t testdata/fuzz/seeds/$$t || exit 1; done

fuzz-replay-asan: $(FUZZ_TARGETS:%=build/fuzz/replay_%)
	@for t in $(FUZZ_TARGETS); do \
	  build/fuzz/replay_$$t $(if $(FUZZ_REPLAY_SECONDS),-t $(FUZZ_REPLAY_SECONDS)) \
	    testdata/fuzz/$$t testdata/fuzz/seeds/$$t build/fuzz/corpus/$$t || exit 1; done

test: fuzz-replay

-include $(FUZZ_OBJS:.o=.d)

clean:
	rm -rf build

-include $(OBJS:.o=.d) $(TOBJS:.o=.d)
