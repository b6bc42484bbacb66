#!/bin/bash
# A base image with a hostile /etc/passwd and /etc/group (lines with too few
# fields, empty, non-numeric, negative and overflowing ids, NUL bytes, a very
# long line, no final newline) never crashes kiln: resolving the user whose
# entry is malformed (COPY --chown=NAME, USER NAME then RUN) fails with an
# error naming Dockerfile:LINE, the image's file and its line; the malformed
# lines of other users are skipped and those users resolve correctly.
# (BuildKit's moby/sys/user parseLine turns such entries into uid/gid 0;
# kiln refuses them rather than run as root.)
source "$IT_DIR/lib.sh"
make_busybox_base

note "the hostile base image"
b=$T/hostile
mkdir -p "$b/etc"
{
  printf 'root:x:0:0:root:/root:/bin/sh\n'
  printf 'app:x\n'
  printf 'bare\n'
  printf 'big:x:99999999999999999999:1\n'
  printf 'neg:x:-5:1\n'
  printf 'nul:x:1\0002:3\n'
  head -c 200000 /dev/zero | tr '\0' 'z'; printf '\n'
  printf 'empty:x::\n'
  printf 'good:x:1234:2345::/:/bin/sh\r\n'
  printf 'last:x:3000:3001'
} >"$b/etc/passwd"
{
  printf 'root:x:0:\n'
  printf 'short\n'
  printf 'badg:x:abc:good\n'
  printf 'sup:x:4000:other,good\n'
  printf 'wide:x:18446744073709551617:good'
} >"$b/etc/group"
cat >"$b/Dockerfile" <<'DF'
FROM localhost/busybox:latest
COPY etc/passwd etc/group /etc/
DF
kiln build --progress=quiet -t localhost/hostile:1 "$b" >/dev/null

c=$T/ctx
put "$c/f.txt" f

# build_fails DOCKERFILE_BODY WANT...: the build fails cleanly (no signal)
# and stderr holds every WANT
build_fails() {
  local body=$1; shift
  printf 'FROM localhost/hostile:1\n%s\n' "$body" >"$c/Dockerfile"
  expect_fail timeout 120 "$KILN" --root "$KILN_ROOT" build --progress=plain "$c"
  local w
  for w in "$@"; do assert_contains "$ERR" "$w" "stderr of: $body"; done
}

note "COPY --chown of a user whose entry has too few fields"
build_fails 'COPY --chown=app f.txt /f' "Dockerfile:2" \
  "malformed entry for user \`app\` at line 2 of the image's /etc/passwd: 2 fields, needs at least 4"
note "COPY --chown of users with bad ids"
build_fails 'COPY --chown=bare f.txt /f' "line 3 of the image's /etc/passwd"
build_fails 'COPY --chown=big f.txt /f' "line 4 of the image's /etc/passwd" "\`99999999999999999999\` is not a number"
build_fails 'COPY --chown=neg f.txt /f' "line 5 of the image's /etc/passwd" "\`-5\`"
build_fails 'COPY --chown=nul f.txt /f' "line 6 of the image's /etc/passwd"
build_fails 'COPY --chown=empty f.txt /f' "line 8 of the image's /etc/passwd" "id \`\` is not a number"
note "COPY --chown with a group whose entry is malformed"
build_fails 'COPY --chown=good:short f.txt /f' "line 2 of the image's /etc/group"
build_fails 'COPY --chown=good:badg f.txt /f' "line 3 of the image's /etc/group" "\`abc\`"
note "USER with a malformed entry, then RUN"
build_fails $'USER app\nRUN true' "Dockerfile:3" "line 2 of the image's /etc/passwd"
note "WORKDIR made for such a USER"
build_fails $'USER big\nWORKDIR /w\nRUN true' "line 4 of the image's /etc/passwd"

note "other users resolve; malformed lines are skipped"
cat >"$c/Dockerfile" <<'DF'
FROM localhost/hostile:1
COPY --chown=good f.txt /good.txt
COPY --chown=last:sup f.txt /last.txt
USER good
RUN id -u >/tmp/uid && id -g >/tmp/gid && id -G >/tmp/groups
DF
kiln build --progress=quiet -o "type=local,dest=$T/out" "$c" >/dev/null
assert_eq 1234 "$(cat "$T/out/tmp/uid")" "RUN as good: uid"
assert_eq 2345 "$(cat "$T/out/tmp/gid")" "RUN as good: gid (CRLF trimmed)"
# the malformed group lines naming good (abc, past 64 bits) are skipped
assert_eq "2345 4000" "$(cat "$T/out/tmp/groups")" "RUN as good: groups"
if [ "$(id -u)" = 0 ]; then
  assert_stat "$T/out/good.txt" %u:%g 1234:2345
  assert_stat "$T/out/last.txt" %u:%g 3000:4000
fi
