#!/bin/bash
# Bad input fails cleanly: every testdata/dockerfile/bad fixture gives its
# expected "Dockerfile:LINE: INSTRUCTION: message", and missing contexts,
# missing COPY sources, unknown flags and invalid tags fail with
# "kiln: error:".  After each failure the store is clean, nothing is tagged,
# no scratch space is left, and nothing was written outside the store.
source "$IT_DIR/lib.sh"
need jq
make_busybox_base
mkdir -p "$T/ctx"
put "$T/ctx/present.txt" present

# snapshot: everything under $T except the store and the test's own files,
# with sizes, modes and (for non-directories) mtimes
snapshot() {
  (cd "$T" && find . -path ./store -prune -o -path ./.out -prune -o -path ./.err -prune \
     -o -path ./snap.before -prune -o -path ./snap.after -prune \
     -o -type d -printf '%p dir %m\n' -o -printf '%p %y %s %T@ %m\n' | sort)
}
images_before=$(kiln images)

# after_failure WHAT: the invariants that hold after any failed build
after_failure() {
  store_clean
  snapshot >"$T/snap.after"
  diff -u "$T/snap.before" "$T/snap.after" >&2 || fail "$1: files changed outside the store"
  assert_eq "" "$(ls -A "$T/tmp")" "$1: files left in \$TMPDIR"
  if [ -d "$KILN_ROOT/tmp" ]; then
    assert_eq "" "$(ls -A "$KILN_ROOT/tmp")" "$1: scratch left in the store's tmp/"
  fi
  assert_eq "$images_before" "$(kiln images)" "$1: kiln images"
}
# bad_build WHAT ARGS...: kiln build ARGS must fail, then after_failure
bad_build() {
  local what=$1; shift
  snapshot >"$T/snap.before"
  expect_fail timeout 60 "$KILN" --root "$KILN_ROOT" build "$@"
  after_failure "$what"
}

note "testdata/dockerfile/bad fixtures"
bad=$REPO_DIR/testdata/dockerfile/bad
nfix=0
if [ -d "$bad" ]; then
  for df in "$bad"/*.Dockerfile; do
    [ -e "$df" ] || continue
    name=$(basename "$df")
    errf=${df%.Dockerfile}.err
    [ -f "$errf" ] || fail "fixture $name has no ${errf##*/}"
    want=$(cat "$errf")
    # the fixtures may name themselves; kiln names the file as given (Dockerfile)
    want=${want//$name/Dockerfile}
    cp "$df" "$T/ctx/Dockerfile"
    bad_build "$name" -t localhost/bad:1 "$T/ctx"
    assert_contains "$ERR" "$want" "stderr for $name"
    # the message is the error line itself, after the "kiln: error: " prefix
    assert_contains "$ERR" "kiln: error: $want" "stderr for $name"
    nfix=$((nfix + 1))
  done
fi
if [ "$nfix" = 0 ]; then
  echo "note: no fixtures in testdata/dockerfile/bad yet"
else
  echo "checked $nfix fixtures"
fi

note "missing context directory"
printf 'FROM scratch\nCOPY present.txt /\n' >"$T/ctx/Dockerfile"
bad_build "missing context" -t localhost/bad:1 "$T/no-such-dir"
assert_contains "$ERR" no-such-dir "error for a missing context"

note "missing Dockerfile"
bad_build "missing -f file" -f "$T/no-such.Dockerfile" -t localhost/bad:1 "$T/ctx"
assert_contains "$ERR" no-such.Dockerfile "error for a missing -f file"

note "COPY source missing names Dockerfile:LINE"
printf 'FROM localhost/busybox:latest\nCOPY present.txt /p.txt\nCOPY missing.txt /m.txt\n' >"$T/ctx/Dockerfile"
bad_build "missing COPY source" -t localhost/bad:1 "$T/ctx"
assert_contains "$ERR" "Dockerfile:3" "error for a missing COPY source"
assert_contains "$ERR" missing.txt "error for a missing COPY source"

note "COPY source escaping the context"
printf 'FROM scratch\nCOPY ../outside.txt /o\n' >"$T/ctx/Dockerfile"
put "$T/outside.txt" outside
bad_build "COPY ../" -t localhost/bad:1 "$T/ctx"
assert_contains "$ERR" "Dockerfile:2" "error for COPY ../"

note "unknown base image"
printf 'FROM localhost/no-such-base:1\nCOPY present.txt /\n' >"$T/ctx/Dockerfile"
bad_build "unknown base" -t localhost/bad:1 "$T/ctx"

note "unknown flag"
printf 'FROM scratch\nCOPY present.txt /\n' >"$T/ctx/Dockerfile"
snapshot >"$T/snap.before"
RC=0; "$KILN" --root "$KILN_ROOT" build --bogus-flag -t localhost/bad:1 "$T/ctx" >"$T/.out" 2>"$T/.err" || RC=$?
[ "$RC" != 0 ] && [ "$RC" -lt 126 ] || fail "unknown flag: exit $RC"
assert_contains "$(cat "$T/.err")" bogus-flag "usage error for an unknown flag"
after_failure "unknown flag"

note "invalid -t references"
for ref in 'Upper/Case:1' 'app:bad tag' 'app:' ':tag' 'app@sha256:1234'; do
  bad_build "-t $ref" -t "$ref" "$T/ctx"
done

note "bad --output and --progress values"
bad_build "--output bogus" --output type=bogus,dest="$T/o" "$T/ctx"
assert_absent "$T/o"
bad_build "--progress bogus" --progress bogus "$T/ctx"

note "a good build still works afterwards"
kiln build -t localhost/good:1 "$T/ctx"
assert_contains "$(kiln images)" good "kiln images"
store_clean
