#!/bin/bash
# COPY keys are tree digests (one line per source in a cache record), made
# on a rebuild by walking the sources without collecting them ("key mode").
# The walk must reach the same key as the cold build that collected every
# entry and hashed the files while writing the layer: a no-change rebuild
# is all hits and gives the same image.  A miss names the first changed
# file of the tree and counts the others.  The context checksum index
# survives damage (warning, hashed again) and replaces the old JSON cache.
source "$IT_DIR/lib.sh"
need jq

c=$T/ctx
put "$c/app/a.txt" a
put "$c/app/a/x" x          # "a/x" sorts before "a.txt" in tree order
put "$c/app/a-b" ab
put "$c/app/sub/f1" one
put "$c/app/sub/deep/f2" two
put "$c/app/sp ace.txt" space
put "$c/app/m600" secret
chmod 0600 "$c/app/m600"
mkdir -p "$c/app/empty"
ln -s sub/f1 "$c/app/rel-link"
ln -s /etc/passwd "$c/app/abs-link"
put "$c/app/ignored/skip.txt" skip
put "$c/app/ignored/keep.txt" keep
put "$c/app/x.log" log
put "$c/app/t.tmp" tmp
cat >"$c/.dockerignore" <<'EOF'
*.log
app/ignored/
!app/ignored/keep.txt
EOF
cat >"$c/Dockerfile" <<'EOF'
FROM scratch AS base
COPY app/ /app/
COPY --parents app/./sub/f1 /p/
COPY --exclude=*.tmp app /ex/
COPY app/a[.-]* /glob/
COPY <<EOT /heredoc.txt
hi
EOT
FROM scratch
COPY --from=base /app /fromstage/
COPY --chown=5:6 --chmod=0640 app/sub/f1 app/a.txt /owned/
EOF

build() { kiln build --progress plain -t localhost/km:1 "$c" 2>&1; }
diff_ids() { ijq localhost/km:1 '.config.rootfs.diff_ids | join(" ")'; }

note "cold build, then a rebuild that changes nothing: every step a hit, same image"
out1=$(build) || fail "cold build: $out1"
id1=$(diff_ids)
out2=$(build) || fail "rebuild: $out2"
assert_not_contains "$out2" "miss:" "a no-change rebuild"
assert_eq 7 "$(grep -c ' CACHED ' <<<"$out2")" "cached COPY steps"
assert_eq "$id1" "$(diff_ids)" "layers of the rebuild"

note "the same layers without the cache (every entry collected, no lookup)"
kiln build --progress quiet --no-cache -t localhost/km:nocache "$c" >/dev/null
assert_eq "$id1" "$(ijq localhost/km:nocache '.config.rootfs.diff_ids | join(" ")')" "layers of --no-cache"

note "a record holds one input line per source, not one per file"
rec=$(grep -l '"COPY app/ /app/"' "$KILN_ROOT"/cache/records/*.json | head -1)
assert_eq 1 "$(jq '[.inputs[] | select(startswith("source "))] | length' "$rec")" "source lines"
assert_eq 0 "$(jq '[.inputs[] | select(test("content|meta\t"))] | length' "$rec")" "per-file lines"

note "a miss names the first changed file in tree order and counts the rest"
sleep 0.01
echo changed >"$c/app/sub/deep/f2"
put "$c/app/sub/new.txt" new
chmod 0644 "$c/app/m600"
out3=$(build) || fail "rebuild after changes: $out3"
assert_contains "$out3" "miss: COPY app/ /app/ : app/m600 metadata changed (+2 more)"
assert_contains "$out3" "miss: COPY --exclude=*.tmp app /ex/ : an earlier step changed"
# another stage's files are named by the stage's key (docs/differences.md)
assert_contains "$out3" "miss: COPY --from=base /app /fromstage/ : 0:a/x content changed (+"
rm "$c/app/sub/new.txt"
out4=$(build) || fail "$out4"
assert_contains "$out4" "miss: COPY app/ /app/ : app/sub/new.txt went away"
note "the next step's own change is named once the step before it hits"
printf 'FROM scratch\nCOPY app/sub /sub/\nCOPY app/ /app/\n' >"$c/Dockerfile.two"
kiln build --progress quiet -f "$c/Dockerfile.two" -t localhost/km:two "$c" >/dev/null
echo edited >"$c/app/a.txt"
out4b=$(kiln build --progress plain -f "$c/Dockerfile.two" -t localhost/km:two "$c" 2>&1) || fail "$out4b"
assert_match "$out4b" "COPY app/sub /sub/ CACHED"
assert_contains "$out4b" "miss: COPY app/ /app/ : app/a.txt content changed"
build >/dev/null || fail "rebuild of the first Dockerfile"

note "without the last build's listing (a record imported from a registry cache) the source is named"
rm -rf "$KILN_ROOT/cache/trees"
echo again >>"$c/app/a-b"
out4c=$(build) || fail "$out4c"
assert_contains "$out4c" "miss: COPY app/ /app/ : the files of \`app\` changed"

note "a damaged checksum index is ignored with a warning, hashed again and rewritten"
idx=$(ls "$KILN_ROOT"/cache/ctxsum/*.idx)
[ "$(ls "$KILN_ROOT"/cache/ctxsum | wc -l)" = 1 ] || fail "one index file per context: $(ls "$KILN_ROOT"/cache/ctxsum)"
size=$(stat -c %s "$idx")
printf 'garbage' | dd of="$idx" bs=1 seek=$((size / 2)) conv=notrunc status=none
out5=$(build) || fail "$out5"
assert_contains "$out5" "is damaged (checksum mismatch)"
assert_not_contains "$out5" "miss:" "a damaged index costs hashing, not hits"
out6=$(build) || fail "$out6"
assert_not_contains "$out6" "damaged" "the index was rewritten"
: >"$idx"
out7=$(build) || fail "$out7"
assert_contains "$out7" "is damaged (too short)"

note "an old JSON checksum cache is ignored and removed at the next save"
json=${idx%.idx}.json
echo '{"version":1,"files":{"app/a.txt":[1,2,3,4,5,"sha256:x"]}}' >"$json"
echo more >>"$c/app/a.txt"
out8=$(build) || fail "$out8"
assert_contains "$out8" "miss: COPY app/ /app/ : app/a.txt content changed"
assert_absent "$json"

note "two builds on one context at once: both succeed, the index stays whole"
echo again >>"$c/app/a.txt"
kiln build --progress quiet -t localhost/km:p1 "$c" >"$T/p1.out" 2>&1 &
p1=$!
kiln build --progress quiet -t localhost/km:p2 "$c" >"$T/p2.out" 2>&1 &
p2=$!
wait $p1 || fail "parallel build 1: $(cat "$T/p1.out")"
wait $p2 || fail "parallel build 2: $(cat "$T/p2.out")"
out9=$(build) || fail "$out9"
assert_not_contains "$out9" "damaged"
assert_not_contains "$out9" "miss:"
