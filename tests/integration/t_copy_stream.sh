#!/bin/bash
# A COPY of one context directory that no RUN follows streams its entries
# straight into the layer instead of holding them (build_copy.c,
# "streaming").  The oracle is the array path (KILN_COPY_STREAM=0): every
# layer must be byte for byte the same, and an error the same error, over
# the inputs that placement and the walk treat specially (names that sort
# around '/', hardlinks, symlinks, sockets, empty and ignored directories,
# existing and symlinked destinations, a pending WORKDIR, flags).
source "$IT_DIR/lib.sh"
need jq
need python3
export SOURCE_DATE_EPOCH=1700000000

c=$T/ctx
mkdir -p "$c"
python3 - "$c" <<'EOF'
import os, socket, sys
root = sys.argv[1]
def put(rel, data="x\n", mode=0o644):
    p = os.path.join(root, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w") as f:
        f.write(data)
    os.chmod(p, mode)
# names that sort around '/': a, a-b, a.py, a/x, a0, "sp ace", non-ASCII
for rel in ["app/a/x", "app/a/y/z", "app/a-b", "app/a.py", "app/a0", "app/sp ace", "app/\u00fcn\u00ef", "app/a!b",
            "app/sub/deep/er/f.txt", "app/sub/g.txt", "app/ign/drop.txt", "app/ign/keep.txt", "app/ign2/x",
            "app/zz/last"]:
    put(rel, rel + "\n")
put("app/exec.sh", "#!/bin/sh\n", 0o755)
os.utime(os.path.join(root, "app/a0"), (1600000000, 1600000000))   # older than SOURCE_DATE_EPOCH: kept
os.makedirs(os.path.join(root, "app/emptydir"))
os.makedirs(os.path.join(root, "empty"))
# three names of one file, and symlinks (one dangling)
os.link(os.path.join(root, "app/zz/last"), os.path.join(root, "app/a/h2"))
os.link(os.path.join(root, "app/zz/last"), os.path.join(root, "app/sub/h3"))
os.symlink("../outside", os.path.join(root, "app/dangling"))
os.symlink("sub", os.path.join(root, "app/l2"))
s = socket.socket(socket.AF_UNIX)
s.bind(os.path.join(root, "app/sock"))
# what the base image has
put("base/app/old", "old\n")
os.chmod(os.path.join(root, "base/app"), 0o700)
put("base/etc/conf", "c\n")
os.symlink("/app", os.path.join(root, "base/lnk"))
put("clash/etc/conf/x", "dir over a file\n")
EOF
cat >"$c/.dockerignore" <<'EOF'
app/ign
!app/ign/keep.txt
app/ign2
EOF
cat >"$c/Dockerfile" <<'EOF'
FROM scratch AS base
COPY base/ /

FROM base
COPY app/ /app/
COPY app /lnk/sub/
COPY --chown=7:8 --chmod=640 app /c/
COPY --exclude=*.txt app /e/
COPY --link app /lk/
ADD app /addd/
COPY empty/ /newdir/
COPY empty/ /app/
COPY app /app2
WORKDIR /w/x
COPY app .
COPY . /
EOF

layers() { "$KILN" --root "$1" inspect localhost/stream:1 | jq -cr '[.manifest.layers[].digest] | join(" ")'; }

note "every layer streamed is the array path's"
out=$("$KILN" --root "$T/s1" --debug build --progress plain -t localhost/stream:1 "$c" 2>&1) || fail "streamed build: $out"
n=$(grep -c "entries streamed into the layer" <<<"$out")
[ "$n" -eq 12 ] || fail "12 COPY steps should stream, $n did: $out"
KILN_COPY_STREAM=0 "$KILN" --root "$T/s0" --debug build --progress plain -t localhost/stream:1 "$c" >"$T/out0" 2>&1 \
  || fail "array build: $(cat "$T/out0")"
assert_not_contains "$(cat "$T/out0")" "entries streamed"
assert_eq "$(layers "$T/s0")" "$(layers "$T/s1")" "layers streamed against the array path's"
"$KILN" --root "$T/s1" store check >/dev/null || fail "store check after the streamed build"

note "a rebuild is all hits; a change is explained and patched"
out=$("$KILN" --root "$T/s1" build --progress plain -t localhost/stream:1 "$c" 2>&1) || fail "rebuild: $out"
assert_not_contains "$out" "miss:"
echo changed >>"$c/app/sub/deep/er/f.txt"
out=$("$KILN" --root "$T/s1" --debug build --progress plain -t localhost/stream:1 "$c" 2>&1) || fail "rebuild: $out"
assert_contains "$out" "miss: COPY app/ /app/ : app/sub/deep/er/f.txt content changed"
# the key's walk kept its entries, and the layer is written from them (build_copy_replay.c)
assert_contains "$out" "COPY app/ /app/: 26 entries taken from the key's walk"
KILN_COPY_STREAM=0 "$KILN" --root "$T/s0" build --progress quiet -t localhost/stream:1 "$c" >/dev/null || fail "array rebuild"
assert_eq "$(layers "$T/s0")" "$(layers "$T/s1")" "layers after a change"

note "past its budget the key walk's record is dropped and the layer's walk reads again"
echo again >>"$c/app/a/x"
out=$(KILN_COPY_REPLAY_MAX=300 "$KILN" --root "$T/s1" --debug build --progress plain -t localhost/stream:1 "$c" 2>&1) \
  || fail "rebuild: $out"
assert_contains "$out" "miss: COPY app/ /app/ : app/a/x content changed"
assert_contains "$out" "the layer's walk reads again"
assert_not_contains "$out" "COPY app/ /app/: 26 entries taken"
KILN_COPY_STREAM=0 "$KILN" --root "$T/s0" build --progress quiet -t localhost/stream:1 "$c" >/dev/null || fail "array rebuild"
assert_eq "$(layers "$T/s0")" "$(layers "$T/s1")" "layers after a change, walked again"

note "a directory over a file fails as on the array path"
printf 'FROM scratch AS base\nCOPY base/ /\nFROM base\nCOPY clash/ /\n' >"$c/Dockerfile.clash"
e1=$("$KILN" --root "$T/s1" build --progress plain -f "$c/Dockerfile.clash" "$c" 2>&1) && fail "clash built: $e1"
e0=$(KILN_COPY_STREAM=0 "$KILN" --root "$T/s0" build --progress plain -f "$c/Dockerfile.clash" "$c" 2>&1) && fail "clash built"
assert_contains "$e1" "cannot copy a directory to \`/etc/conf\`: it is not a directory"
assert_eq "$(grep error: <<<"$e0")" "$(grep error: <<<"$e1")" "the error"
"$KILN" --root "$T/s1" store check >/dev/null || fail "store check after the failed build"

note "with a RUN after it, the streamed entries make the RUN's snapshot alongside"
# what the RUN sees of the copied tree (names, types, modes, owners, sizes, times, link counts) must be what
# the array path's snapshot shows; the hardlinked tree gives the snapshot up (the blob is extracted instead)
KILN_ROOT=$T/s1 make_busybox_base
KILN_ROOT=$T/s0 make_busybox_base
mkdir -p "$c/plain/sub/deep" "$c/plain/empty"
for f in a a.py sub/b "sub/deep/c d" "sp ace"; do echo "$f" >"$c/plain/$f"; done
ln -s sub/b "$c/plain/link"
chmod 0750 "$c/plain/sub"
touch -d @1600000000 "$c/plain/a"
for tree in plain app; do
  printf 'FROM localhost/busybox\nCOPY %s/ /t/\nRUN cd /t && find . -exec stat -c "%%n %%f %%u %%g %%s %%Y %%h %%N" {} + | sort >/listing\n' \
    "$tree" >"$c/Dockerfile.run"
  out=$("$KILN" --root "$T/s1" --debug build --progress plain -f "$c/Dockerfile.run" -t localhost/run:1 "$c" 2>&1) \
    || fail "streamed build with a RUN ($tree): $out"
  assert_contains "$out" "entries streamed into the layer"
  if [ "$tree" = plain ]; then
    assert_contains "$out" "snapshot made from the streamed entries"
  else
    assert_not_contains "$out" "snapshot made from the streamed entries"
  fi
  KILN_COPY_STREAM=0 "$KILN" --root "$T/s0" build --progress quiet -f "$c/Dockerfile.run" -t localhost/run:1 "$c" \
    >/dev/null 2>&1 || fail "array build with a RUN ($tree)"
  l1=$("$KILN" --root "$T/s1" run --rm localhost/run:1 cat /listing) || fail "read the listing ($tree)"
  l0=$("$KILN" --root "$T/s0" run --rm localhost/run:1 cat /listing) || fail "read the listing ($tree)"
  [ "$(wc -l <<<"$l1")" -gt 5 ] || fail "short listing: $l1"
  assert_eq "$l0" "$l1" "what the RUN saw of $tree/, streamed against the array path"
done
"$KILN" --root "$T/s1" store check >/dev/null || fail "store check at the end"
