#!/bin/bash
# Context symlinks that point outside the context (relative `../outside`,
# absolute `$T/outside`) never let a COPY read outside it: as BuildKit
# (tonistiigi/fsutil copy, FollowSymlinks inside the context root), a source
# path through such a link resolves inside the context, so it names nothing
# and the step fails naming the line; copying the directory copies the links
# as links.  A unique secret beside the context is grepped for in every layer.
source "$IT_DIR/lib.sh"
need umoci jq

secret=kiln-outside-secret-$RANDOM$RANDOM
mkdir -p "$T/outside" "$T/ctx/app"
printf '%s\n' "$secret" >"$T/outside/secret.txt"
ln -s ../outside "$T/ctx/rel"
ln -s "$T/outside" "$T/ctx/abs"
ln -s ../../outside/secret.txt "$T/ctx/app/file-link"
printf 'fine\n' >"$T/ctx/app/ok.txt"

for src in rel/secret.txt abs/secret.txt "rel/*.txt" app/file-link; do
  note "COPY $src"
  printf 'FROM scratch\nCOPY %s /got\n' "$src" >"$T/ctx/Dockerfile"
  expect_fail kiln build -t localhost/esc:1 "$T/ctx"
  assert_contains "$ERR" "Dockerfile:2" "COPY $src names the line"
  assert_contains "$ERR" "not found in the build context" "COPY $src resolves inside the context"
done

note "COPY . /all: the links are copied as links, the secret never read"
printf 'FROM scratch\nCOPY . /all/\n' >"$T/ctx/Dockerfile"
kiln build -t localhost/esc:2 "$T/ctx" >"$T/b.out" 2>&1 || { cat "$T/b.out"; fail "COPY . failed"; }
unpack_image localhost/esc:2 "$T/b2"
r=$T/b2/rootfs
assert_eq "../outside" "$(readlink "$r/all/rel")" "relative link kept"
assert_eq "$T/outside" "$(readlink "$r/all/abs")" "absolute link kept"
[ ! -e "$r/all/rel/secret.txt" ] || fail "the link's target came into the image"
if grep -rq "$secret" "$KILN_ROOT/blobs" 2>/dev/null || zcat -f "$KILN_ROOT"/blobs/sha256/* 2>/dev/null | grep -aq "$secret"; then
  fail "the secret outside the context reached the store"
fi
store_clean
