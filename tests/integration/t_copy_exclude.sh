#!/bin/bash
# COPY/ADD --exclude (Dockerfile 1.19+): .dockerignore-style patterns, the
# flag repeatable, matched below a directory source or against a file
# source's own name; `!` exceptions re-include; the value is expanded.  An
# excluded file is no input of the step: changing it keeps the cache hit.
source "$IT_DIR/lib.sh"
need umoci jq
need_root

c=$T/ctx
put "$c/hom1.txt" h1
put "$c/home.py" hp
put "$c/hom2.md" h2
put "$c/app/a.txt" a
put "$c/app/b.md" b
put "$c/app/keep.txt" keep
put "$c/app/sub/c.txt" c
put "$c/app/sub/d.py" d
put "$c/app/node_modules/x/y.js" y
cat >"$c/Dockerfile" <<'DF'
FROM scratch
ARG PAT=*.py
COPY --exclude=*.txt hom* /mydir/
COPY --exclude=*.md --exclude=sub/*.txt app/ /app/
COPY --exclude=**/*.txt --exclude=!keep.txt app/ /app2/
COPY --exclude=node_modules app/ /app3/
ADD --exclude=**/$PAT app/ /app4/
DF
kiln build -t localhost/excl:1 --output "type=oci,dest=$T/o" "$c"
unpack_layout "$T/o" "$T/b"
r=$T/b/rootfs
assert_file "$r/mydir/home.py" hp
assert_file "$r/mydir/hom2.md" h2
assert_absent "$r/mydir/hom1.txt"
assert_file "$r/app/a.txt" a
assert_file "$r/app/sub/d.py" d
assert_absent "$r/app/b.md"
assert_absent "$r/app/sub/c.txt"
assert_file "$r/app2/keep.txt" keep
assert_file "$r/app2/b.md" b
assert_absent "$r/app2/a.txt"
assert_absent "$r/app2/sub/c.txt"
assert_file "$r/app2/sub/d.py" d
assert_absent "$r/app3/node_modules"
assert_file "$r/app3/a.txt" a
assert_absent "$r/app4/sub/d.py"
assert_file "$r/app4/sub/c.txt" c

note "changing an excluded file keeps the step cached; changing a copied one does not"
put "$c/app/b.md" b2
kiln build -t localhost/excl:2 --metadata-file "$T/m.json" "$c"
step() { jq -r --arg s "$1" '."kiln.steps"[] | select(.step | contains($s)) | .cached' "$T/m.json"; }
assert_eq true "$(step "--exclude=*.md --exclude=sub/*.txt app/ /app/")" "the step that excludes *.md"
assert_eq false "$(step "--exclude=node_modules app/ /app3/")" "a step that copies b.md"

note "an empty --exclude is an error naming the line"
printf 'FROM scratch\nCOPY --exclude= app/ /x/\n' >"$c/Dockerfile"
expect_fail kiln build "$c"
assert_contains "$ERR" "Dockerfile:2"
store_clean
