#!/bin/bash
# Multi-stage builds: --target picks the stage and only the stages it needs
# are built; COPY --from by stage name, by stage index and from an image.
source "$IT_DIR/lib.sh"
need umoci jq
need_root
make_busybox_base

c=$T/ctx
put "$c/src/a.txt" from-a
put "$c/src/b.txt" from-b
cat >"$c/Dockerfile" <<'EOF'
FROM localhost/busybox:latest AS builder
COPY src/ /out/
LABEL stage=builder

FROM scratch AS final
COPY --from=builder /out/a.txt /from-name.txt
COPY --from=0 /out/b.txt /from-index.txt
COPY --from=localhost/busybox /bin/busybox /bin/busybox
LABEL stage=final

FROM localhost/busybox:latest AS broken
COPY does-not-exist /x
EOF

note "the last stage is broken on purpose: building it must fail and name the line"
expect_fail kiln build -t localhost/ms:broken "$c"
assert_contains "$ERR" "Dockerfile:12" "error for the missing COPY source"
expect_fail kiln build --target broken -t localhost/ms:broken "$c"

note "--target final builds builder and final only"
kiln build --target final -t localhost/ms:final --output "type=oci,dest=$T/final" "$c"
assert_eq final "$(ijq localhost/ms:final '.config.config.Labels.stage')" "label of the target stage"
assert_eq 3 "$(ijq localhost/ms:final '.config.rootfs.diff_ids | length')" "layers (scratch + 3 COPY)"
unpack_layout "$T/final" "$T/b"
r=$T/b/rootfs
assert_file "$r/from-name.txt" from-a
assert_file "$r/from-index.txt" from-b
assert_file "$r/bin/busybox"
cmp -s "$r/bin/busybox" "$BUSYBOX_BIN" || fail "/bin/busybox copied from the image differs from $BUSYBOX_BIN"
assert_stat "$r/bin/busybox" %a 755
assert_absent "$r/out"
assert_absent "$r/bin/sh"
assert_absent "$r/x"

note "--target builder gives the intermediate stage"
kiln build --target builder -t localhost/ms:builder "$c"
assert_eq builder "$(ijq localhost/ms:builder '.config.config.Labels.stage')" "label of the builder stage"
unpack_image localhost/ms:builder "$T/b2"
assert_file "$T/b2/rootfs/out/a.txt" from-a
assert_file "$T/b2/rootfs/bin/busybox"

note "an unknown --target is an error"
expect_fail kiln build --target nosuch -t localhost/ms:x "$c"
assert_contains "$ERR" nosuch "error for an unknown target"

note "COPY --from an unknown stage name that is not an image fails"
c2=$T/ctx2
mkdir -p "$c2"
printf 'FROM scratch\nCOPY --from=localhost/no-such-image:1 /a /a\n' >"$c2/Dockerfile"
expect_fail kiln build -t localhost/ms:y "$c2"

kiln images >"$T/images"
assert_not_contains "$(cat "$T/images")" "ms:broken" "kiln images after failed builds"
assert_not_contains "$(cat "$T/images")" "ms:x" "kiln images after failed builds"
store_clean
