#!/bin/bash
# A COPY that misses after a small change rebuilds its gzip layer from the
# last build's layer of the same step: blocks whose recipe is unchanged are
# copied compressed, only the changed ones are made from the files again
# (src/image/layer_patch.c).  The oracle: after every kind of change, the layer is
# byte for byte the one a cold build in an empty store writes.  Maps of
# pruned layers go with them.
source "$IT_DIR/lib.sh"
need jq
need python3

c=$T/ctx
mkdir -p "$c"
python3 - "$c/app" <<'EOF'
import os, random, sys
random.seed(11)
root = sys.argv[1]
for i in range(1500):
    d = os.path.join(root, "d%d" % (i % 6), "e%d" % (i % 9))
    os.makedirs(d, exist_ok=True)
    n = random.randint(50, 9000)
    words = [random.choice(["def", "return", "x", "self", "import", "value"]) for _ in range(n // 5)]
    with open(os.path.join(d, "f%04d.py" % i), "w") as f:
        f.write(" ".join(words)[:n] + "\n")
os.makedirs(os.path.join(root, "w"), exist_ok=True)
with open(os.path.join(root, "w", "weights.bin"), "wb") as f:
    f.write(random.randbytes(3 * 1024 * 1024 + 99))
EOF
cat >"$c/Dockerfile" <<'EOF'
FROM scratch
COPY app/ /app/
COPY <<EOT /etc/note
a file written from memory
EOT
EOF

build() { kiln --debug build --progress plain -t localhost/patch:1 "$c" 2>&1; }
diff_ids() { ijq localhost/patch:1 '.config.rootfs.diff_ids | join(" ")'; }
layers() { ijq localhost/patch:1 '[.manifest.layers[].digest] | join(" ")'; }
# the same context built cold in an empty store: the oracle
fresh() {
  rm -rf "$T/fresh"
  "$KILN" --root "$T/fresh" build --progress quiet -t localhost/patch:fresh "$c" >/dev/null || fail "fresh build"
  "$KILN" --root "$T/fresh" inspect localhost/patch:fresh | jq -cr '[.manifest.layers[].digest] | join(" ")'
}
# one change, one patched rebuild, then the oracle
check() {   # WHAT MAX_BLOCKS_MADE
  local out made total
  out=$(build) || fail "rebuild after $1: $out"
  assert_contains "$out" "miss: COPY app/ /app/" "$1"
  read -r made total < <(sed -n 's/.*layer patched from the last build.s: \([0-9]*\) of \([0-9]*\) blocks made again.*/\1 \2/p' <<<"$out")
  [ -n "$made" ] || fail "$1: the layer was not patched: $out"
  [ "$made" -le "$2" ] || fail "$1: $made of $total blocks made again (at most $2 expected)"
  [ "$total" -gt 10 ] || fail "$1: only $total blocks"
  assert_eq "$(fresh)" "$(layers)" "layers after $1 (patched) against a cold build"
  echo "$1: $made of $total blocks made again"
}

note "cold build: a layer and its block map"
out=$(build) || fail "cold build: $out"
assert_not_contains "$out" "layer patched"
[ "$(ls "$KILN_ROOT/cache/lmap" | wc -l)" -ge 2 ] || fail "no block maps after the cold build"
assert_eq "$(fresh)" "$(layers)" "cold layers against a build in another store"

note "every kind of change gives the cold build's bytes"
f=$c/app/d3/e3/f0021.py
printf 'changed' | dd of="$f" bs=1 seek=10 conv=notrunc status=none
check "a content change" 2
head -c 2000 /dev/urandom | base64 >>"$c/app/d1/e1/f1000.py"
check "a file growing by kilobytes" 3
rm "$c/app/d0/e0/f0000.py"
check "a file removed" 3
echo new >"$c/app/d2/e5/zz-new.py"
check "a file added" 3
chmod 0600 "$c/app/d4/e7/f0700.py"
check "a mode change" 2
printf 'xyz' | dd of="$c/app/w/weights.bin" bs=1 seek=2000000 conv=notrunc status=none
check "a byte of the 3 MiB file" 6

note "no change: a hit, nothing patched"
out=$(build) || fail "$out"
assert_not_contains "$out" "layer patched"
assert_not_contains "$out" "miss:"

note "the store still verifies"
kiln store check >/dev/null || fail "store check after patched builds"

note "a map goes with its layer on prune"
kiln rmi localhost/patch:1 >/dev/null
kiln prune --all >/dev/null || fail "prune"
left=$(ls "$KILN_ROOT/cache/lmap" 2>/dev/null | wc -l)
assert_eq 0 "$left" "block maps left after every layer was pruned"

note "hardlinks, symlinks, owners, modes, several sources: still the cold build's bytes"
c2=$T/ctx2
mkdir -p "$c2/src/a" "$c2/src/b"
for i in $(seq 1 400); do printf 'line %d of file %d\n%.0s' $(seq 1 $((i % 37 + 1))) >"$c2/src/a/f$i.txt"; done
ln "$c2/src/a/f7.txt" "$c2/src/b/hard7"
ln -s ../a/f9.txt "$c2/src/b/soft9"
head -c 700000 /dev/urandom >"$c2/src/b/blob.bin"
put "$c2/extra.cfg" "k=v"
printf 'src/a/f13*\n' >"$c2/.dockerignore"
cat >"$c2/Dockerfile" <<'EOF2'
FROM scratch
COPY --chown=7:8 --chmod=0640 src/ extra.cfg /srv/
EOF2
b2() { kiln --debug build --progress plain -t localhost/patch:2 "$c2" 2>&1; }
out=$(b2) || fail "cold build 2: $out"
printf 'more\n' >>"$c2/src/a/f200.txt"
out=$(b2) || fail "rebuild 2: $out"
assert_contains "$out" "layer patched from the last build's"
rm -rf "$T/fresh2"
"$KILN" --root "$T/fresh2" build --progress quiet -t localhost/patch:2 "$c2" >/dev/null || fail "fresh build 2"
assert_eq "$("$KILN" --root "$T/fresh2" inspect localhost/patch:2 | jq -cr '[.manifest.layers[].digest] | join(" ")')" \
  "$(ijq localhost/patch:2 '[.manifest.layers[].digest] | join(" ")')" "layers of the second context"
