#!/bin/bash
# A context deeper than a layer entry may be (kiln/extract.h: 512
# directories, 4096-byte names) fails the COPY with an error naming the
# limit, instead of writing a layer kiln's own extractor refuses (the next
# build FROM it, --output) or recursing until the stack runs out; a tree at
# the limit builds and exports.
source "$IT_DIR/lib.sh"
need python3

# nest DIR LEVELS: DIR/x/x/.../x (LEVELS of x) with a file at the bottom
nest() {
  python3 - "$1" "$2" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
for _ in range(int(sys.argv[2])):
    os.mkdir("x", dir_fd=fd)
    nfd = os.open("x", os.O_RDONLY, dir_fd=fd)
    os.close(fd)
    fd = nfd
with open(os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "w") as f:
    f.write("bottom")
PY
}

c=$T/deep
mkdir -p "$c/d"
nest "$c/d" 20000
printf 'FROM scratch\nCOPY d/ /d/\n' >"$c/Dockerfile"
expect_fail kiln build -t localhost/deep:1 "$c"
assert_contains "$ERR" "Dockerfile:2" "the COPY is named"
assert_contains "$ERR" "deeper than 512 directories (the limit of a layer entry)" "the limit is named"
[ "${#ERR}" -lt 2000 ] || fail "the error prints the whole path (${#ERR} bytes)"
rm -rf "$c"

note "510 levels below /d: the file lands at depth 512, the layer builds and exports"
c=$T/edge
mkdir -p "$c/d"
nest "$c/d" 510
printf 'FROM scratch\nCOPY d/ /d/\n' >"$c/Dockerfile"
kiln build -t localhost/deep:2 "$c" >"$T/b.out" 2>&1 || { cat "$T/b.out"; fail "build at the limit failed"; }
kiln build --output "type=local,dest=$T/out" "$c" >"$T/o.out" 2>&1 || { cat "$T/o.out"; fail "export at the limit failed"; }
f=$T/out/d$(printf '/x%.0s' $(seq 510))/f
[ "$(cat "$f")" = bottom ] || fail "exported file at depth 512 missing"

note "511 levels: the file would be at depth 513"
rm -rf "$c/d"; mkdir -p "$c/d"; nest "$c/d" 511
expect_fail kiln build -t localhost/deep:3 "$c"
assert_contains "$ERR" "deeper than 512 directories" "one level past the limit"
assert_contains "$ERR" "Dockerfile:2" "the COPY is named when the layer refuses the entry"
