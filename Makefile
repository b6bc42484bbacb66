# kiln - one non-recursive GNU Makefile: every dependency is visible to make, so -j is safe.
#
#   make            build build/kiln
#   make deps       install the Debian packages for build, tests and benchmarks (root)
#   make test       unit tests (Criterion) + integration tests against the real binary
#   make unit T=mod only tests/test_mod.c (fast loop while working on one module)
#   make test-sanitize  unit tests + hostile-input integration tests under ASan+UBSan (build-san/)
#   make demo       deps + build + example model image + smoke test
#   make bench      bench-model, then bench-scale (tests/bench; needs only the repository and make deps)
#   make bench-model  the model-image benchmark of issue 6: kiln against buildah, the machine's bounds, push bound, peak RSS
#   make bench-scale  the scale scenarios of issue 11 (100k/1M-file context, 2 GiB base, RUN with many files)
#   SANITIZE=address,undefined   build with sanitizers;  DEV=1  adds -Werror

PKGS     := libarchive libcrypto libzstd jansson libcurl zlib libisal
DEB_PKGS := build-essential pkg-config libarchive-dev libssl-dev libzstd-dev libjansson-dev \
            libcurl4-openssl-dev zlib1g-dev libisal-dev libcriterion-dev python3 openssl jq uidmap \
            skopeo umoci buildah docker-registry busybox-static zstd xz-utils bzip2 curl procps \
            hyperfine pigz isal libdeflate-tools runc time bc file valgrind clang-format
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

SRCS   := $(wildcard src/*/*.c)
OBJS   := $(patsubst src/%.c,build/%.o,$(SRCS))
LIBOBJS := $(filter-out build/cli/main.o,$(OBJS))
TSRCS  := $(filter-out tests/helper_%.c tests/tool_%.c,$(wildcard tests/*.c))
TOBJS  := $(patsubst tests/%.c,build/tests/%.o,$(TSRCS))
TESTDATA := $(abspath testdata)

.DELETE_ON_ERROR:
.PHONY: all deps test unit integration demo bench bench-model bench-scale clean lint format asan test-sanitize FORCE

all: build/kiln

build/.flags: FORCE
	@mkdir -p build
	@echo '$(CC) $(CPPFLAGS) $(CFLAGS)' | cmp -s - $@ || echo '$(CC) $(CPPFLAGS) $(CFLAGS)' > $@

# only the version command sees the version, so a commit does not rebuild everything
build/.version: FORCE
	@mkdir -p build
	@echo '$(VERSION)' | cmp -s - $@ || echo '$(VERSION)' > $@
build/cli/cmd_store.o: build/.version
build/cli/cmd_store.o: CPPFLAGS += -DKILN_VERSION='"$(VERSION)"'

build/%.o: src/%.c build/.flags
	@mkdir -p $(@D)
	$(CC) -std=gnu11 $(CPPFLAGS) $(WARN) $(CFLAGS) -MMD -MP -c -o $@ $<

build/tests/%.o: tests/%.c build/.flags
	@mkdir -p $(@D)
	$(CC) -std=gnu11 $(CPPFLAGS) -Itests -DKILN_TESTDATA_DIR='"$(TESTDATA)"' -DKILN_HELPER_INIT='"$(abspath build/helper_init)"' $(WARN) -Wno-missing-prototypes $(CFLAGS) -MMD -MP -c -o $@ $<

build/libkiln.a: $(LIBOBJS)
	$(AR) rcs $@ $^

build/kiln: build/cli/main.o build/libkiln.a
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

asan: test-sanitize

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
	@! grep -nE '\b(sprintf|vsprintf|strcat|strncat|strcpy|gets|system|popen|strtok|atoi)\s*\(' src/*/*.[ch] include/kiln/*.h
	@! nm -g --defined-only build/libkiln.a | awk 'NF==3 && $$3 !~ /^kiln_/ {print; bad=1} END {exit !bad}'
	@nm -A -g --defined-only build/libkiln.a | python3 tests/tools/lint_prefixes.py
	@python3 tests/tools/lint_layers.py
	@clang-format --dry-run --Werror $(FORMAT_FILES)

# the C the format check covers (.clang-format; `make format` rewrites them)
FORMAT_FILES := $(wildcard src/*/*.[ch] include/kiln/*.h tests/*.[ch] tests/fuzz/*.[ch])
format:
	clang-format -i $(FORMAT_FILES)

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
FUZZ_OBJS    := $(patsubst build/%.o,build/fuzz/obj/%.o,$(filter-out build/cli/cmd_%.o,$(LIBOBJS)))
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
build/libkiln-core.a: $(filter-out build/cli/cmd_%.o,$(LIBOBJS))
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

# ---- sanitizers: make test-sanitize ----------------------------------------
# kiln, the unit binary and compress_tool built with ASan+UBSan into build-san/
# (build/ is left alone), then the unit suite, a compress_tool round trip and
# the integration tests below that do not depend on timing.  Any report fails
# the run (see SAN_REPORTS).
SAN       := build-san
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
SAN_OBJS  := $(patsubst src/%.c,$(SAN)/%.o,$(SRCS))
SAN_TOBJS := $(patsubst tests/%.c,$(SAN)/tests/%.o,$(TSRCS))
# The integration tests run under it: the inputs other people control
# (Dockerfiles, .dockerignore, archives and layers, registry responses), the
# COPY walk, the sandbox, prune.  `make test-sanitize SAN_ITS=` runs them all
# (44 min on a busy shared 2-core machine, where CI has 30 minutes for
# everything; this target took 7 from an empty build-san/ on the same
# machine, about half of it compiling).  Left out besides the time they cost:
#  t_memcheck      runs compress_tool under valgrind, which cannot run an ASan
#                  binary (the round trip below runs the ASan build instead)
#  t_many_files    100,000 files twice: over its 300 s limit under ASan
#  t_crash_safety, t_add_url   kill -9 / SIGINT at moments chosen by time or
#                  size, and a 5 s bound on stopping: timing under ASan's slowness
#  t_buildah_diff, t_dest_property, t_reproducible   mostly buildah, umoci and
#                  repeated builds of what the listed tests build (290+110+110 s)
# t_prune_kill kills prune too, but whatever the moment it asserts only that
# the store checks; under UBSan it found qsort(NULL, 0) in src/cache/prune.c.
SAN_ITS   ?= t_bad_input t_failure_output t_cli t_add_archives t_add_archive_edge t_dockerignore \
             t_dockerignore_exceptions t_copy_basic t_copy_exclude t_copy_wildcards t_copy_key_mode t_copy_patch \
             t_copy_stream t_multistage t_run_bind_rw t_run_mounts_secret t_registry_corrupt t_registry_faults \
             t_pull_snapshots t_prune_kill t_stage_graph
# halt_on_error/abort_on_error: the first report kills the process with
# SIGABRT (exit 134: a crashed Criterion test; for kiln a failed command,
# which expect_fail also rejects).  ASan and LeakSanitizer reports also go to
# files in build-san/reports/ (log_path; UBSan linked with ASan prints to
# stderr only), and any file there fails the target: Criterion counts a test
# whose process dies at exit, when LeakSanitizer runs, as passed with a
# warning.  Leaks are checked in the unit suite (library code must free what
# it allocates; tests/lsan.supp lists what is not ours), not in kiln runs:
# the sandbox's forked children and the builds the tests SIGKILL end without
# freeing by design.
SAN_REPORTS := $(abspath $(SAN))/reports
SAN_UBSAN := UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1
SAN_ENV   := ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=1:log_path=$(SAN_REPORTS)/asan \
             LSAN_OPTIONS=suppressions=$(abspath tests/lsan.supp):print_suppressions=0 $(SAN_UBSAN)
SAN_IT_ENV := ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=0:log_path=$(SAN_REPORTS)/asan $(SAN_UBSAN)
SAN_FAIL  := { cat $(SAN_REPORTS)/* 2>/dev/null; exit 1; }

$(SAN)/.flags: FORCE
	@mkdir -p $(SAN)
	@echo '$(CC) $(CPPFLAGS) $(CFLAGS) $(SAN_FLAGS)' | cmp -s - $@ || echo '$(CC) $(CPPFLAGS) $(CFLAGS) $(SAN_FLAGS)' > $@
$(SAN)/.version: FORCE
	@mkdir -p $(SAN)
	@echo '$(VERSION)' | cmp -s - $@ || echo '$(VERSION)' > $@
$(SAN)/cli/cmd_store.o: $(SAN)/.version
$(SAN)/cli/cmd_store.o: CPPFLAGS += -DKILN_VERSION='"$(VERSION)"'
$(SAN)/%.o: src/%.c $(SAN)/.flags
	@mkdir -p $(@D)
	$(CC) -std=gnu11 $(CPPFLAGS) $(WARN) $(CFLAGS) $(SAN_FLAGS) -MMD -MP -c -o $@ $<
$(SAN)/tests/%.o: tests/%.c $(SAN)/.flags
	@mkdir -p $(@D)
	$(CC) -std=gnu11 $(CPPFLAGS) -Itests -DKILN_TESTDATA_DIR='"$(TESTDATA)"' -DKILN_HELPER_INIT='"$(abspath $(SAN)/helper_init)"' $(WARN) -Wno-missing-prototypes $(CFLAGS) $(SAN_FLAGS) -MMD -MP -c -o $@ $<
$(SAN)/libkiln.a: $(filter-out $(SAN)/cli/main.o,$(SAN_OBJS))
	$(AR) rcs $@ $^
$(SAN)/kiln: $(SAN)/cli/main.o $(SAN)/libkiln.a
	$(CC) $(LDFLAGS) $(SAN_FLAGS) -o $@ $^ $(LDLIBS)
# static and outside the sanitizers: it runs inside containers
$(SAN)/helper_init: tests/helper_init.c
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -D_GNU_SOURCE -O2 -static -o $@ $<
$(SAN)/unit: $(SAN_TOBJS) $(SAN)/libkiln.a $(SAN)/helper_init
	$(CC) $(LDFLAGS) $(SAN_FLAGS) -o $@ $(SAN_TOBJS) $(SAN)/libkiln.a -lcriterion $(LDLIBS)
$(SAN)/compress_tool: $(SAN)/tests/tool_compress.o $(SAN)/libkiln.a
	$(CC) $(LDFLAGS) $(SAN_FLAGS) -o $@ $^ $(LDLIBS)
# one module's tests alone under the sanitizers: make build-san/unit-registry_pull
$(SAN)/unit-%: $(SAN)/tests/test_%.o $(SAN)/tests/helpers.o $(SAN)/libkiln.a $(SAN)/helper_init
	$(CC) $(LDFLAGS) $(SAN_FLAGS) -o $@ $(filter %.o %.a,$^) -lcriterion $(LDLIBS)

test-sanitize: $(SAN)/kiln $(SAN)/unit $(SAN)/compress_tool
	@rm -rf $(SAN_REPORTS) && mkdir -p $(SAN_REPORTS)
	$(SAN_ENV) $(SAN)/unit --jobs 2 || $(SAN_FAIL)
	@echo "compress_tool: gzip and zstd, 1 and 2 threads, round trip"
	@f=$(SAN)/compress.in; { head -c 1048576 /dev/urandom; seq 1 200000; } >$$f; \
	  for c in gzip zstd; do for t in 1 2; do \
	    $(SAN_IT_ENV) $(SAN)/compress_tool $$c $$t <$$f | $$c -dc | cmp -s - $$f || $(SAN_FAIL); \
	  done; done
	$(SAN_IT_ENV) tests/integration/run.sh $(SAN)/kiln $(SAN_ITS) || $(SAN_FAIL)
	@if ls $(SAN_REPORTS)/* >/dev/null 2>&1; then echo "sanitizer reports:"; $(SAN_FAIL); fi

-include $(SAN_OBJS:.o=.d) $(SAN_TOBJS:.o=.d)

clean:
	rm -rf build $(SAN)

-include $(OBJS:.o=.d) $(TOBJS:.o=.d)
