#!/bin/bash
# The compressors under valgrind: no library reads memory we never set
# (ISA-L's stateless deflate once read hist_bits from the stack, giving one
# layer two digests now and then), and the bytes made under valgrind are the
# bytes made without it, for 1 and 2 threads.
source "$IT_DIR/lib.sh"
need valgrind gzip zstd
tool=${KILN_COMPRESS_TOOL:-$REPO_DIR/build/compress_tool}
[ -x "$tool" ] || fail "no $tool (make build/compress_tool)"

# random, text, random, text tail: stored and compressed gzip blocks, raw
# and compressed zstd frames, and a short last block
{
  head -c 1048576 /dev/urandom
  awk 'BEGIN { for (i = 1; n < 1048576; i++) { s = "weight row " i; print s; n += length(s) + 1 } }'
  head -c 1048576 /dev/urandom
  awk 'BEGIN { for (i = 1; i <= 9000; i++) print "app line " i }'
} >"$T/in"

for c in gzip zstd; do
  "$tool" $c 1 <"$T/in" >"$T/ref.$c"
  for threads in 1 2; do
    note "$c, $threads thread(s), under memcheck"
    rc=0
    valgrind -q --error-exitcode=99 --track-origins=yes "$tool" $c $threads \
      <"$T/in" >"$T/out.$c.$threads" 2>"$T/vg.$c.$threads" || rc=$?
    [ "$rc" = 0 ] || fail "valgrind found errors in the $c compressor ($threads threads), exit $rc:
$(head -40 "$T/vg.$c.$threads")"
    cmp -s "$T/ref.$c" "$T/out.$c.$threads" || fail "$c output under valgrind with $threads threads differs"
  done
  "$c" -dc <"$T/ref.$c" | cmp -s - "$T/in" || fail "$c -dc does not give the input back"
done
