#!/bin/bash
# A failing RUN shows its last output lines and the Dockerfile:LINE error in
# every progress mode (quiet, plain, auto, tty): under the error, framed as
# BuildKit frames a failed step's logs ("------", " > [n/m] STEP:", the
# lines, "------").  The tail is bounded: the last 40 lines, at most 16 KiB.
source "$IT_DIR/lib.sh"
make_busybox_base

c=$T/ctx
mkdir -p "$c"
cat >"$c/Dockerfile" <<'EOF'
FROM localhost/busybox:latest
RUN echo fine
RUN for i in $(seq 1 100); do echo "out $i"; done; echo "err line" >&2; printf 'last, no newline'; exit 3
EOF
step='RUN for i in $(seq 1 100); do echo "out $i"; done; echo "err line" >&2; printf '"'"'last, no newline'"'"'; exit 3'

# the framed block: from " > [3/3] STEP:" to the next "------"
block() { sed -n '/^ > \[3\/3\] RUN /,/^------$/p' <<<"$1"; }

for mode in quiet plain auto tty; do
  note "--progress=$mode"
  expect_fail kiln build --progress=$mode "$c"
  all="$OUT
$ERR"
  assert_contains "$ERR" "kiln: error: Dockerfile:3: $step: exited with status 3" "error of --progress=$mode"
  b=$(block "$ERR")
  assert_eq " > [3/3] $step:" "$(head -1 <<<"$b")" "block header ($mode)"
  # 40 lines: out 63..100, the stderr line, the unterminated last one
  want=$( (seq 63 100 | sed 's/^/out /'; echo "err line"; echo "last, no newline"; echo "------") )
  assert_eq "$want" "$(tail -n +2 <<<"$b")" "last output lines ($mode)"
  assert_eq "------" "$(grep -B1 -F ' > [3/3] ' <<<"$ERR" | head -1)" "line above the block ($mode)"
  if [ "$mode" = quiet ]; then
    assert_not_contains "$all" "out 62" "quiet output before the tail"
    assert_not_contains "$all" "fine" "quiet output of the step that passed"
  else
    # plain streams every line as it comes, prefixed; the block repeats the tail
    assert_match "$all" '^\[3/3\] \| out 1$' "streamed output ($mode)"
  fi
done

note "the tail is bounded: a 100 KB line shows as at most 16 KiB"
cat >"$c/Dockerfile.long" <<'EOF'
FROM localhost/busybox:latest
RUN head -c 100000 /dev/zero | tr '\0' x; echo; echo after-long; exit 1
EOF
expect_fail kiln build --progress=quiet -f "$c/Dockerfile.long" "$c"
b=$(sed -n '/^ > \[2\/2\] RUN /,/^------$/p' <<<"$ERR")
n=$(wc -c <<<"$b")
[ "$n" -lt 17000 ] || fail "tail block of $n bytes"
assert_contains "$b" "after-long" "tail of the long output"

note "a step that fails before running (COPY of a missing file) still names Dockerfile:LINE in quiet"
printf 'FROM localhost/busybox:latest\nCOPY missing.txt /x\n' >"$c/Dockerfile.copy"
expect_fail kiln build --progress=quiet -f "$c/Dockerfile.copy" "$c"
assert_contains "$ERR" "Dockerfile.copy:2" "COPY error location"
