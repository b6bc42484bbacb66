#!/bin/bash
# RUN --mount uid=, gid= and mode= are parsed as BuildKit's
# frontend/dockerfile/instructions/commands_runmount.go does
# (strconv.ParseUint(v, 10 or 8, 32)): a value that is not a 32-bit number
# in that base fails naming Dockerfile:LINE and the value, before anything
# runs (before, strtoul cut 99999999999 to its low bits and read "abc" as 0:
# a cache or secret silently owned by the wrong user).
source "$IT_DIR/lib.sh"
need_root
make_busybox_base

c=$T/ctx
mkdir -p "$c"
for spec in "type=cache,target=/c,uid=99999999999" "type=cache,target=/c,gid=-1" "type=cache,target=/c,uid=" \
  "type=secret,id=s,mode=0489" "type=secret,id=s,mode=0x1ff" "type=tmpfs,target=/t,uid=1e3"; do
  printf 'FROM localhost/busybox:latest\nRUN --mount=%s touch /ran\n' "$spec" >"$c/Dockerfile"
  expect_fail kiln build -t localhost/ids:1 "$c"
  key=${spec##*,}
  assert_contains "$ERR" "Dockerfile:2" "error names the line for $spec"
  assert_contains "$ERR" "invalid value ${key#*=} for ${key%%=*}" "error names the value for $spec"
done

note "values at the 32-bit bounds and plain octal modes still build"
printf 'FROM localhost/busybox:latest\nRUN --mount=type=cache,target=/c,uid=4294967294,gid=0,mode=0755 stat -c %%u:%%a /c\n' >"$c/Dockerfile"
out=$(kiln build --progress=plain -t localhost/ids:2 "$c" 2>&1) || { echo "$out"; fail "build at the bounds failed"; }
assert_contains "$out" "4294967294:755" "cache directory owner and mode"
