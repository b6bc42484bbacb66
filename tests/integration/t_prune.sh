#!/bin/bash
# kiln prune: keeps what tagged images and cache records need, drops records
# by age, size or --all, refuses to run beside a running build, and leaves a
# store that verifies.
source "$IT_DIR/lib.sh"

make_busybox_base
c=$T/ctx
put "$c/a.txt" a
head -c 1048576 /dev/urandom >"$c/big.bin"
printf 'FROM localhost/busybox:latest\nCOPY a.txt /a.txt\nCOPY big.bin /big.bin\nRUN echo hi > /hi\n' >"$c/Dockerfile"
kiln build --progress=plain -t localhost/p:1 "$c" >"$T/b1.log" 2>&1

note "a plain prune keeps the tagged image and the cache"
kiln prune
kiln store check
kiln build --progress=plain -t localhost/p:1 "$c" >"$T/b2.log" 2>&1
assert_eq 3 "$(grep -c ' CACHED ' "$T/b2.log")" "layer steps cached after a plain prune"

note "after rmi the cache records still hold their layers"
kiln rmi localhost/p:1
kiln prune
kiln store check
kiln build --progress=plain -t localhost/p:1 "$c" >"$T/b3.log" 2>&1
assert_eq 3 "$(grep -c ' CACHED ' "$T/b3.log")" "layer steps cached after rmi + prune"

note "--filter until=1h keeps records used just now"
out=$(kiln prune --filter until=1h)
assert_contains "$out" "pruned 0 cache records"

note "--keep-storage 0 drops every record; the tagged image stays whole"
kiln prune --keep-storage 0 >"$T/p.log"
assert_match "$(cat "$T/p.log")" 'pruned [1-9][0-9]* cache records'
kiln store check
kiln save --format oci -o "$T/oci" localhost/p:1
kiln build --progress=plain -t localhost/p:1 "$c" >"$T/b4.log" 2>&1
assert_eq 0 "$(grep -c ' CACHED ' "$T/b4.log" || true)" "no step cached after --keep-storage 0"

note "--all drops records and snapshots; an untagged image's blobs go"
kiln rmi localhost/p:1
kiln prune --all >"$T/p2.log"
cat "$T/p2.log"
kiln store check
[ -z "$(ls -A "$KILN_ROOT/snapshots" 2>/dev/null | grep -v '^\.' || true)" ] || fail "snapshots left after --all"
kiln inspect localhost/busybox:latest >/dev/null
[ -z "$(ls -A "$KILN_ROOT/cache/toc" 2>/dev/null || true)" ] || fail "layer tables of contents left after --all"
note "a RUN after --all records the base layer's table of contents while it extracts the snapshot"
d0=$(ijq localhost/busybox:latest '.config.rootfs.diff_ids[0]')
printf 'FROM localhost/busybox:latest\nRUN true\n' >"$c/Dockerfile"
kiln build --no-cache -t localhost/p:run "$c" >/dev/null
[ -s "$KILN_ROOT/cache/toc/${d0#sha256:}" ] || fail "no table of contents for the base layer after its snapshot"
kiln prune --all >/dev/null
note "a COPY after --all reads the base's table of contents again from its layer"
printf 'FROM localhost/busybox:latest\nCOPY f /tmp\n' >"$c/Dockerfile"
put "$c/f" f
kiln build -t localhost/p:3 "$c" >/dev/null
unpack_image localhost/p:3 "$T/p3"
assert_file "$T/p3/rootfs/tmp/f" f

note "prune refuses to run beside a build, and --wait waits for it"
printf 'FROM localhost/busybox:latest\nRUN sleep 3\n' >"$c/Dockerfile"
kiln build --no-cache -t localhost/p:2 "$c" >"$T/b5.log" 2>&1 &
bpid=$!
sleep 1
expect_fail kiln prune
assert_contains "$ERR" "in use by a running kiln"
kiln prune --wait >/dev/null
wait "$bpid"
kiln store check
kiln inspect localhost/p:2 >/dev/null
