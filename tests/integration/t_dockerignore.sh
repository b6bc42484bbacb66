#!/bin/bash
# .dockerignore: excluded paths never reach the image, "!" re-includes,
# COPY of an excluded path fails naming the Dockerfile line, and
# <dockerfile>.dockerignore next to an -f file replaces the context's.
source "$IT_DIR/lib.sh"
need umoci jq
need_root

c=$T/ctx
put "$c/a.log" a
put "$c/keep.log" keep
put "$c/sub/deep.log" deep
put "$c/secret/key" key
put "$c/app/main.txt" main
put "$c/build/x/tmp/f" f
put "$c/build/x/ok.txt" ok
put "$c/notes.md" notes
cat >"$c/.dockerignore" <<'EOF'
# comment lines and blank lines are ignored

*.log
**/*.log
!keep.log
secret/
/build/**/tmp
EOF
printf 'FROM scratch\nCOPY . /ctx/\n' >"$c/Dockerfile"

kiln build -t localhost/ign:1 --output "type=oci,dest=$T/o1" "$c"
unpack_layout "$T/o1" "$T/b1"
r=$T/b1/rootfs/ctx
assert_absent "$r/a.log"
assert_absent "$r/sub/deep.log"
assert_file "$r/keep.log" keep
assert_absent "$r/secret"
assert_file "$r/app/main.txt" main
assert_absent "$r/build/x/tmp"
assert_file "$r/build/x/ok.txt" ok
assert_file "$r/notes.md" notes

note "COPY of an excluded file fails and names the line"
printf 'FROM scratch\nCOPY app/ /app/\nCOPY secret/key /key\n' >"$c/Dockerfile"
expect_fail kiln build -t localhost/ign:2 "$c"
assert_contains "$ERR" "Dockerfile:3" "error for COPY of an ignored path"
expect_fail kiln build -t localhost/ign:2 --progress=plain "$c"
assert_contains "$ERR" "Dockerfile:3" "error for COPY of an ignored path (plain progress)"

note "alt/Dockerfile.dockerignore takes precedence over ctx/.dockerignore"
mkdir -p "$T/alt"
printf 'FROM scratch\nCOPY . /ctx/\n' >"$T/alt/Dockerfile"
printf 'app/\nnotes.md\n' >"$T/alt/Dockerfile.dockerignore"
kiln build -f "$T/alt/Dockerfile" -t localhost/ign:3 --output "type=oci,dest=$T/o3" "$c"
unpack_layout "$T/o3" "$T/b3"
r=$T/b3/rootfs/ctx
assert_file "$r/a.log" a           # the context's .dockerignore no longer applies
assert_file "$r/secret/key" key
assert_file "$r/build/x/tmp/f" f
assert_absent "$r/app"
assert_absent "$r/notes.md"

note "without the per-Dockerfile ignore file, the context's .dockerignore applies to -f builds"
rm "$T/alt/Dockerfile.dockerignore"
kiln build -f "$T/alt/Dockerfile" -t localhost/ign:4 --output "type=oci,dest=$T/o4" "$c"
unpack_layout "$T/o4" "$T/b4"
assert_absent "$T/b4/rootfs/ctx/a.log"
assert_file "$T/b4/rootfs/ctx/app/main.txt" main
store_clean
