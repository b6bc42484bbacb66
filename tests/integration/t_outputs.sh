#!/bin/bash
# Build outputs (--output type=oci|oci-archive|docker-archive), kiln save in
# the same three formats, and --compression gzip|zstd|none: media types and
# the actual bytes of the layer blobs.
source "$IT_DIR/lib.sh"
need skopeo jq tar
make_busybox_base

c=$T/ctx
put "$c/data.txt" "$(seq 1 2000)"
printf 'FROM localhost/busybox:latest\nCOPY data.txt /data.txt\nLABEL out=yes\n' >"$c/Dockerfile"
SDE=(--source-date-epoch 1700000000)   # the three v1 builds must give one digest
OCI_GZ=application/vnd.oci.image.layer.v1.tar+gzip
OCI_ZST=application/vnd.oci.image.layer.v1.tar+zstd
OCI_TAR=application/vnd.oci.image.layer.v1.tar

# magic NAME FILE: gzip, zstd or tar, from the first bytes of FILE
magic() {
  local head
  head=$(od -An -tx1 -N4 "$1" | tr -d ' \n')
  case "$head" in
    1f8b*) echo gzip ;;
    28b52ffd) echo zstd ;;
    *) [ "$(dd if="$1" bs=1 skip=257 count=5 2>/dev/null)" = ustar ] && echo tar || echo "unknown($head)" ;;
  esac
}
# last_layer LAYOUT_DIR REF: path of the last layer blob of the image
last_layer() {
  local d
  d=$(skopeo inspect --raw "oci:$1:$2" | jq -r '.layers[-1].digest')
  echo "$1/blobs/${d%%:*}/${d#*:}"
}

note "--output type=oci"
kiln build "${SDE[@]}" -t localhost/out:v1 --iidfile "$T/iid" --output "type=oci,dest=$T/oci" "$c"
iid=$(cat "$T/iid")
assert_match "$iid" '^sha256:[0-9a-f]{64}$' "--iidfile"
assert_eq v1 "$(oci_ref_name "$T/oci")" "ref.name in the layout"
assert_eq '{"imageLayoutVersion":"1.0.0"}' "$(jq -c . "$T/oci/oci-layout")" "oci-layout"
sk=$(skopeo inspect "oci:$T/oci:v1")
assert_eq "$iid" "$(jq -r .Digest <<<"$sk")" "digest of the oci output"
assert_eq yes "$(jq -r .Labels.out <<<"$sk")" "label via skopeo"
# (skopeo 1.9 has no LayersData: media types come from the raw manifest)
assert_eq "[\"$OCI_GZ\",\"$OCI_GZ\"]" "$(skopeo inspect --raw "oci:$T/oci:v1" | jq -c '[.layers[].mediaType]')" \
  "default layer media types"
assert_eq gzip "$(magic "$(last_layer "$T/oci" v1)")" "default compression bytes"
# every blob in the layout matches its name
for b in "$T"/oci/blobs/sha256/*; do
  assert_eq "${b##*/}" "$(sha256sum "$b" | cut -d' ' -f1)" "blob $b"
done

note "--output type=oci-archive"
kiln build "${SDE[@]}" -t localhost/out:v1 --output "type=oci-archive,dest=$T/img.oci.tar" "$c"
assert_file "$T/img.oci.tar"
sk=$(skopeo inspect "oci-archive:$T/img.oci.tar")
assert_eq "$iid" "$(jq -r .Digest <<<"$sk")" "digest of the oci-archive output"
assert_eq 2 "$(jq '.Layers | length' <<<"$sk")" "layers in the oci-archive"

note "--output type=docker-archive"
kiln build "${SDE[@]}" -t localhost/out:v1 --output "type=docker-archive,dest=$T/img.docker.tar" "$c"
sk=$(skopeo inspect "docker-archive:$T/img.docker.tar")
assert_eq 2 "$(jq '.Layers | length' <<<"$sk")" "layers in the docker-archive"
assert_eq yes "$(jq -r .Labels.out <<<"$sk")" "label in the docker-archive"
assert_contains "$(tar -xOf "$T/img.docker.tar" manifest.json | jq -c '.[0].RepoTags')" "localhost/out:v1" \
  "RepoTags of the docker-archive"

note "the same build again gives the same image, all three outputs done"
assert_eq "$iid" "$(ijq localhost/out:v1 .digest)" "digest in the store"

note "kiln save in all three formats"
kiln save --format oci -o "$T/save-oci" localhost/out:v1
assert_eq "$iid" "$(skopeo inspect "oci:$T/save-oci:v1" | jq -r .Digest)" "kiln save --format oci"
kiln save --format oci-archive -o "$T/save.oci.tar" localhost/out:v1
assert_eq "$iid" "$(skopeo inspect "oci-archive:$T/save.oci.tar" | jq -r .Digest)" "kiln save --format oci-archive"
kiln save --format docker-archive -o "$T/save.docker.tar" localhost/out:v1
assert_eq yes "$(skopeo inspect "docker-archive:$T/save.docker.tar" | jq -r .Labels.out)" "kiln save --format docker-archive"
assert_contains "$(tar -xOf "$T/save.docker.tar" manifest.json | jq -c '.[0].RepoTags')" "localhost/out:v1" \
  "RepoTags of kiln save --format docker-archive"
expect_fail kiln save --format oci -o "$T/save-missing" localhost/no-such:1
assert_absent "$T/save-missing"
expect_fail kiln save --format bogus -o "$T/save-bogus" localhost/out:v1
assert_absent "$T/save-bogus"

note "--compression zstd"
kiln build -t localhost/out:zstd --compression zstd --output "type=oci,dest=$T/zst" "$c"
assert_eq "$OCI_ZST" "$(skopeo inspect --raw "oci:$T/zst:zstd" | jq -r '.layers[-1].mediaType')" "zstd layer media type"
assert_eq zstd "$(magic "$(last_layer "$T/zst" zstd)")" "zstd layer bytes"

note "--compression none"
kiln build -t localhost/out:none --compression none --output "type=oci,dest=$T/none" "$c"
assert_eq "$OCI_TAR" "$(skopeo inspect --raw "oci:$T/none:none" | jq -r '.layers[-1].mediaType')" "uncompressed layer media type"
blob=$(last_layer "$T/none" none)
assert_eq tar "$(magic "$blob")" "uncompressed layer bytes"
assert_contains "$(tar -tf "$blob")" data.txt "uncompressed layer listing"
assert_eq "$(jq -r '.rootfs.diff_ids[-1]' <(skopeo inspect --config "oci:$T/none:none"))" \
  "sha256:$(sha256sum "$blob" | cut -d' ' -f1)" "diff_id of an uncompressed layer is its blob digest"

note "--compression gzip --compression-level 9 still gives a gzip layer"
kiln build -t localhost/out:gz9 --compression gzip --compression-level 9 --output "type=oci,dest=$T/gz9" "$c"
assert_eq gzip "$(magic "$(last_layer "$T/gz9" gz9)")" "gzip -9 layer bytes"
expect_fail kiln build -t localhost/out:bad --compression lz4 "$c"
store_clean
