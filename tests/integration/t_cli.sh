#!/bin/bash
# The other verbs: images, tag, rmi, inspect (by tag, digest, digest prefix),
# version, store check (clean and corrupted), --help everywhere, tag
# normalisation and --progress=plain step lines.
source "$IT_DIR/lib.sh"
need jq

note "version and --help"
v=$("$KILN" version)
[ -n "$v" ] || fail "kiln version printed nothing"
top=$("$KILN" --help)
assert_match "$top" '[Uu]sage' "kiln --help"
for verb in build images inspect tag rmi save store version; do
  assert_contains "$top" "$verb" "kiln --help lists the verbs"
  h=$("$KILN" "$verb" --help) || fail "kiln $verb --help exited non-zero"
  assert_match "$h" '[Uu]sage' "kiln $verb --help"
  assert_contains "$h" "$verb" "kiln $verb --help"
done
assert_contains "$("$KILN" build --help)" "--build-arg" "kiln build --help"
assert_contains "$("$KILN" build --help)" "--output" "kiln build --help"
expect_fail kiln no-such-verb

make_busybox_base
c=$T/ctx
put "$c/a.txt" a
put "$c/b.txt" b
printf 'FROM localhost/busybox:latest\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt\nLABEL cli=1\n' >"$c/Dockerfile"

note "--progress=plain prints one line per step"
kiln build --progress=plain -t app --iidfile "$T/iid" "$c" >"$T/build.log" 2>&1
cat "$T/build.log"
log=$(cat "$T/build.log")
assert_match "$log" '^\[[0-9]+/[0-9]+\] .*COPY a\.txt /a\.txt' "plain progress"
assert_match "$log" '^\[[0-9]+/[0-9]+\] .*COPY b\.txt /b\.txt' "plain progress"
assert_match "$log" '^\[[0-9]+/[0-9]+\] .*LABEL cli=1' "plain progress"
totals=$(grep -Eo '^\[[0-9]+/[0-9]+\]' "$T/build.log" | sed 's/.*\///; s/\]//' | sort -u)
assert_eq 1 "$(wc -l <<<"$totals")" "one step total in the [i/N] prefixes"
iid=$(cat "$T/iid")
hex=${iid#sha256:}

note "tags are normalised"
imgs=$(kiln images)
echo "$imgs"
line=$(grep -E 'library/app(:| +)latest' <<<"$imgs") || fail "no docker.io/library/app:latest in kiln images: $imgs"
assert_contains "$line" docker.io "kiln images line for app"
assert_contains "$line" "${hex:0:12}" "short digest in kiln images"
assert_match "$(grep -E 'localhost/busybox' <<<"$imgs")" 'latest' "base image in kiln images"
assert_eq "$iid" "$(ijq docker.io/library/app:latest .digest)" "inspect by full name"
assert_eq "$iid" "$(ijq app .digest)" "inspect by short name"
assert_eq "$iid" "$(ijq app:latest .digest)" "inspect by name:tag"

note "inspect by digest and by digest prefix"
img=$(inspect "$iid")
assert_eq "$iid" "$(jq -r .digest <<<"$img")" "inspect by digest"
assert_eq 2 "$(jq .manifest.schemaVersion <<<"$img")" "manifest schemaVersion"
assert_eq layers "$(jq -r .config.rootfs.type <<<"$img")" "config rootfs.type"
assert_eq 3 "$(jq '.manifest.layers | length' <<<"$img")" "manifest layers"
assert_eq 3 "$(jq '.config.rootfs.diff_ids | length' <<<"$img")" "config diff_ids"
assert_eq "$iid" "$(ijq "${hex:0:12}" .digest)" "inspect by 12-digit prefix"
expect_fail kiln inspect localhost/nope:1
expect_fail kiln inspect sha256:0000000000000000000000000000000000000000000000000000000000000000

note "tag and rmi"
kiln tag app localhost/app:v1
imgs=$(kiln images)
assert_match "$imgs" 'localhost/app(:| +)v1' "kiln images after tag"
assert_contains "$(grep -E 'localhost/app(:| +)v1' <<<"$imgs")" "${hex:0:12}" "digest of the new tag"
assert_eq "$iid" "$(ijq localhost/app:v1 .digest)" "inspect the new tag"
expect_fail kiln tag localhost/nope:1 localhost/app:v2
expect_fail kiln tag app 'Bad/Name'
kiln rmi localhost/app:v1
imgs=$(kiln images)
assert_not_contains "$imgs" "localhost/app" "kiln images after rmi"
assert_match "$imgs" 'library/app(:| +)latest' "kiln images: the other tag stays"
expect_fail kiln inspect localhost/app:v1
expect_fail kiln rmi localhost/app:v1
store_clean

note "store check finds a corrupted blob and a missing one"
layer=$(ijq app '.manifest.layers[-1].digest')
blob=$KILN_ROOT/blobs/sha256/${layer#sha256:}
assert_file "$blob"
cp "$blob" "$T/blob.bak"
printf 'x' >>"$blob"
RC=0; out=$(kiln store check 2>&1) || RC=$?
[ "$RC" != 0 ] || fail "store check passed with a corrupted blob: $out"
assert_contains "$out" "${layer#sha256:}" "store check report for a corrupted blob"
rm "$blob"
RC=0; out=$(kiln store check 2>&1) || RC=$?
[ "$RC" != 0 ] || fail "store check passed with a missing blob: $out"
assert_contains "$out" "${layer#sha256:}" "store check report for a missing blob"
cp "$T/blob.bak" "$blob"
store_clean

note "bad numeric flags name the flag and the value; build, pull and push parse them alike"
for bad in "--retry-delay 2h" "--retry-delay 3601s" "--retry-delay x" "--retry 101" "--retry -1"; do
  # shellcheck disable=SC2086   # $bad is a flag and its value
  expect_fail kiln build $bad "$T"
  assert_contains "$ERR" "invalid ${bad%% *} \`${bad#* }\`"
  # shellcheck disable=SC2086
  expect_fail kiln pull $bad localhost/none
  assert_contains "$ERR" "invalid ${bad%% *} \`${bad#* }\`"
done
expect_fail kiln build --compression-level 23 "$T"
assert_contains "$ERR" "invalid --compression-level \`23\`"
