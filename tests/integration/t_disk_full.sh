#!/bin/bash
# A store on a full file system (a tmpfs of 24 MiB): a COPY whose layer does
# not fit and a RUN that fills the disk both fail with a clear error and a
# non-zero exit; nothing half-written stays (the store checks clean, its size
# is back where it was, no mount is left), and the next build that fits
# succeeds on the same store.  The unit test layer/compressor_reports_sink_failure
# injects ENOSPC; this one fills a real file system.  The store on its own
# file system also checks that files copied from the context into a
# snapshot cross file systems (copy_file_range fails with EXDEV there: the
# RUN after a COPY failed before kiln fell back to read and write).
source "$IT_DIR/lib.sh"
[ "$(id -u)" = 0 ] || skip "needs root to mount a small tmpfs as the store"
need mountpoint

full=$T/full
mkdir -p "$full"
mount -t tmpfs -o size=24m tmpfs "$full" || skip "cannot mount a tmpfs here"
trap 'umount -l "$full" 2>/dev/null || true' EXIT
KILN_ROOT=$full/store
make_busybox_base

used() { du -sk "$KILN_ROOT" | cut -f1; }
# the base's snapshot is made once, by a RUN that fits; it is cache, not litter
mkdir -p "$T/warm"
printf 'FROM localhost/busybox:latest\nRUN true\n' >"$T/warm/Dockerfile"
kiln build -t localhost/full:0 "$T/warm" >"$T/warm.out" 2>&1 || { cat "$T/warm.out"; fail "the warm-up build failed"; }
store_clean
before=$(used)

note "a COPY of 64 MiB of random bytes into a 24 MiB store"
c=$T/big
mkdir -p "$c"
head -c $((64 << 20)) /dev/urandom >"$c/weights.bin"
printf 'FROM localhost/busybox:latest\nCOPY weights.bin /models/\n' >"$c/Dockerfile"
expect_fail kiln build -t localhost/full:1 "$c"
assert_contains "$ERR" "No space left on device" "the error says why"
assert_contains "$ERR" "Dockerfile:2" "the error names the step"
store_clean
after=$(used)
[ "$after" -le $((before + 64)) ] || fail "the failed build left $((after - before)) KiB in the store"

note "a RUN that fills the disk"
c=$T/run
mkdir -p "$c"
printf 'FROM localhost/busybox:latest\nRUN dd if=/dev/zero of=/fill bs=1M count=64\n' >"$c/Dockerfile"
expect_fail kiln build -t localhost/full:2 "$c"
assert_contains "$ERR" "Dockerfile:2" "the error names the RUN"
store_clean
if grep -q " $full/" /proc/self/mountinfo; then
  grep " $full/" /proc/self/mountinfo >&2
  fail "a mount below the store was left behind"
fi
after=$(used)
[ "$after" -le $((before + 64)) ] || fail "the failed RUN left $((after - before)) KiB in the store"

note "the next build that fits succeeds on the same store"
c=$T/small
mkdir -p "$c"
head -c $((1 << 20)) /dev/urandom >"$c/small.bin"
printf 'FROM localhost/busybox:latest\nCOPY small.bin /data/\nRUN test -s /data/small.bin\n' >"$c/Dockerfile"
kiln build -t localhost/full:3 "$c" >"$T/ok.out" 2>&1 || { cat "$T/ok.out"; fail "a build that fits failed"; }
store_clean
