#!/bin/bash
# Hostile Dockerfiles and .dockerignore files cannot stall or crash kiln:
# nested defaults that multiply the size at every level
# (${U:-${D//?/${U:-...}}}) stop at the expansion budget, deep ${ nesting
# stops at its limit, each with an error naming Dockerfile:LINE and nothing
# written; patterns with many stars against long values and long file names
# (exponential for a backtracking matcher) give the right result at once.
source "$IT_DIR/lib.sh"
need jq
make_busybox_base
c=$T/ctx
mkdir -p "$c"
D=0123456789012345678901234567890123456789012345678901234567890123

# bad WHAT DOCKERFILE WANT...: the build fails within 60 s with each WANT
bad() {
  local what=$1 df=$2; shift 2
  printf '%s\n' "$df" >"$c/Dockerfile"
  local s=$SECONDS
  expect_fail timeout 60 "$KILN" --root "$KILN_ROOT" build -t localhost/hostile:bad "$c"
  [ $((SECONDS - s)) -lt 30 ] || fail "$what took $((SECONDS - s)) s"
  local w
  for w in "$@"; do assert_contains "$ERR" "$w" "$what"; done
  store_clean
  assert_eq "" "$(kiln images | grep hostile:bad || true)" "$what: nothing tagged"
}

note "amplification by nested defaults (64^4 * 2 bytes) in ENV, LABEL, COPY, a global ARG"
amp="\${U:-\${D//?/\${U:-\${D//?/\${U:-\${D//?/\${U:-\${D//?/xy}}}}}}}}"
bad "ENV" "$(printf 'FROM localhost/busybox:latest\nARG D=%s\nENV X=%s\n' "$D" "$amp")" \
  "Dockerfile:3" "expansion larger than 1048576 bytes"
bad "LABEL" "$(printf 'FROM localhost/busybox:latest\nARG D=%s\nLABEL x=%s\n' "$D" "$amp")" \
  "Dockerfile:3" "expansion larger than 1048576 bytes"
bad "COPY" "$(printf 'FROM localhost/busybox:latest\nARG D=%s\nCOPY %s /x\n' "$D" "$amp")" \
  "Dockerfile:3" "expansion larger than 1048576 bytes"
bad "ARG in FROM" "$(printf 'ARG D=%s\nARG B=%s\nFROM localhost/busybox:latest\n' "$D" "$amp")" \
  "Dockerfile:2" "expansion larger than 1048576 bytes"
note "the thrown-away defaults count too (U set: each level is small)"
many=$(for i in $(seq 200); do printf '${D:-${D//?/${U:-${D//?/xy}}}}'; done)
bad "ENV, discarded defaults" "$(printf 'FROM localhost/busybox:latest\nARG D=%s\nENV X=%s\n' "$D" "$many")" \
  "Dockerfile:3" "expansion larger than 1048576 bytes"

note "\${ nested 3000 deep"
deep=$(for i in $(seq 3000); do printf '${a:-'; done; printf x; for i in $(seq 3000); do printf '}'; done)
bad "deep ENV" "$(printf 'FROM localhost/busybox:latest\nENV X=%s\n' "$deep")" \
  "Dockerfile:2" "nested more than 64 deep"

note "many stars against a long value: the right answer, quickly"
stars=$(for i in $(seq 64); do printf '*a'; done)
cat >"$c/Dockerfile" <<DF
FROM localhost/busybox:latest
ARG V=$(head -c 100 /dev/zero | tr '\0' a)
LABEL r1="\${V//*a*a*a*a*b/x}" r2="\${V//${stars}*b/x}" r3="\${V%%*a*a*a*a*a*a*a*a*a*a*a*a*b}" r4="\${V//a*a*a/y}"
DF
s=$SECONDS
timeout 60 "$KILN" --root "$KILN_ROOT" build --progress=quiet -t localhost/hostile:stars "$c" >/dev/null \
  || fail "build with many-star patterns failed"
[ $((SECONDS - s)) -lt 30 ] || fail "many-star patterns took $((SECONDS - s)) s"
hundred=$(head -c 100 /dev/zero | tr '\0' a)
assert_eq "$hundred" "$(ijq localhost/hostile:stars '.config.config.Labels.r1')" "r1 (no b: unchanged)"
assert_eq "$hundred" "$(ijq localhost/hostile:stars '.config.config.Labels.r2')" "r2"
assert_eq "$hundred" "$(ijq localhost/hostile:stars '.config.config.Labels.r3')" "r3"
assert_eq "y" "$(ijq localhost/hostile:stars '.config.config.Labels.r4')" "r4 (one longest match)"

note ".dockerignore: many stars against long names"
rm -rf "$c"; mkdir -p "$c/d"
long_a=$(head -c 250 /dev/zero | tr '\0' a)
long_b=$(head -c 249 /dev/zero | tr '\0' a)b
put "$c/$long_a" a
put "$c/$long_b" b
put "$c/d/$long_b" db
put "$c/keep" k
printf '*a*a*a*a*a*a*a*a*a*a*a*a*b\n**/*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*c\n' >"$c/.dockerignore"
printf 'FROM scratch\nCOPY . /ctx/\n' >"$c/Dockerfile"
s=$SECONDS
timeout 60 "$KILN" --root "$KILN_ROOT" build --progress=quiet -o "type=local,dest=$T/out" "$c" >/dev/null \
  || fail "build with a many-star .dockerignore failed"
[ $((SECONDS - s)) -lt 30 ] || fail "many-star .dockerignore took $((SECONDS - s)) s"
assert_file "$T/out/ctx/$long_a" a
assert_absent "$T/out/ctx/$long_b"
assert_file "$T/out/ctx/d/$long_b" db
assert_file "$T/out/ctx/keep" k
