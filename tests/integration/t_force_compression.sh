#!/bin/bash
# build --force-compression: inherited layers in another compression are
# recompressed into the chosen one (zstd over a gzip base, gzip over a zstd
# base); each new blob decompresses (by the zstd/gzip tools) to the tar the
# config's diffID names; a rebuild reuses the recompressed blobs instead of
# doing it again; without the flag the base layers stay as they are.
source "$IT_DIR/lib.sh"
need jq zstd gzip sha256sum

make_busybox_base
c=$T/ctx
put "$c/a.txt" a
printf 'FROM localhost/busybox:latest\nCOPY a.txt /a.txt\n' >"$c/Dockerfile"

# check_image IMAGE TOOL MEDIA_TYPE: every layer has MEDIA_TYPE and TOOL -dc
# of its blob hashes to the diffID
check_image() {
  local img=$1 tool=$2 mt=$3 n i blob want got
  n=$(ijq "$img" '.manifest.layers | length')
  [ "$n" -ge 2 ] || fail "$img has $n layers"
  for ((i = 0; i < n; i++)); do
    assert_eq "$mt" "$(ijq "$img" ".manifest.layers[$i].mediaType")" "media type of layer $i of $img"
    blob=$KILN_ROOT/blobs/sha256/$(ijq "$img" ".manifest.layers[$i].digest" | cut -d: -f2)
    want=$(ijq "$img" ".config.rootfs.diff_ids[$i]")
    got=sha256:$("$tool" -dc <"$blob" | sha256sum | cut -d' ' -f1)
    assert_eq "$want" "$got" "$tool -dc of layer $i of $img against its diffID"
  done
}

note "zstd over the gzip base"
kiln build -t localhost/fc:keep --compression zstd "$c"
assert_eq "application/vnd.oci.image.layer.v1.tar+gzip" "$(ijq localhost/fc:keep '.manifest.layers[0].mediaType')" \
  "base layer without --force-compression"
kiln build -t localhost/fc:zstd --compression zstd --force-compression --progress plain "$c" 2>"$T/b1.err"
assert_contains "$(cat "$T/b1.err")" "recompressed layer"
check_image localhost/fc:zstd zstd application/vnd.oci.image.layer.v1.tar+zstd
assert_eq "$(ijq localhost/fc:keep '.config.rootfs.diff_ids')" "$(ijq localhost/fc:zstd '.config.rootfs.diff_ids')" \
  "diffIDs do not change"

note "a rebuild reuses the recompressed blob"
kiln build -t localhost/fc:zstd2 --compression zstd --force-compression --progress plain "$c" 2>"$T/b2.err"
assert_not_contains "$(cat "$T/b2.err")" "recompressed layer"
assert_eq "$(ijq localhost/fc:zstd .digest)" "$(ijq localhost/fc:zstd2 .digest)" "manifest digest of the rebuild"

note "gzip over a zstd base"
printf 'FROM localhost/fc:zstd\nCOPY a.txt /b.txt\n' >"$c/Dockerfile"
kiln build -t localhost/fc:gzip --force-compression "$c"
check_image localhost/fc:gzip gzip application/vnd.oci.image.layer.v1.tar+gzip
store_clean
