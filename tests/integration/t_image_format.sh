#!/bin/bash
# Media types of the images kiln builds.
# - FROM a Docker-format (v2s2) base: the OCI manifest lists the inherited
#   layers with OCI media types (same bytes), so umoci unpacks it (BuildKit
#   util/compression convertLayerMediaType, used by exporter/containerimage).
# - --format docker: a v2 schema 2 manifest, a Docker config media type and
#   Docker layer media types; the same config bytes (HEALTHCHECK kept), as
#   BuildKit's oci-mediatypes=false; push and save keep that format; zstd
#   layers cannot be Docker layers.
source "$IT_DIR/lib.sh"
source "$IT_DIR/registry_lib.sh"
need skopeo jq umoci
need_root
make_busybox_base
registry_start

OCI_M=application/vnd.oci.image.manifest.v1+json
OCI_C=application/vnd.oci.image.config.v1+json
OCI_GZ=application/vnd.oci.image.layer.v1.tar+gzip
D_M=application/vnd.docker.distribution.manifest.v2+json
D_C=application/vnd.docker.container.image.v1+json
D_GZ=application/vnd.docker.image.rootfs.diff.tar.gzip
types() { jq -c '[.mediaType, .config.mediaType, ([.layers[].mediaType] | unique)[]]'; }

note "a Docker-format base: busybox copied to the registry as v2s2 and pulled"
kiln save --format oci -o "$T/lay" localhost/busybox:latest
skopeo copy -q --dest-tls-verify=false --format v2s2 "oci:$T/lay:latest" "docker://$REG/bb:v2s2"
kiln pull -q "$REG/bb:v2s2" >/dev/null
assert_eq "[\"$D_M\",\"$D_C\",\"$D_GZ\"]" "$(kiln inspect "$REG/bb:v2s2" | jq -c .manifest | types)" \
  "the pulled base is Docker format"
base_layer=$(ijq "$REG/bb:v2s2" '.manifest.layers[0].digest')

c=$T/ctx
put "$c/app.txt" app
cat >"$c/Dockerfile" <<EOF
FROM $REG/bb:v2s2
COPY app.txt /app.txt
RUN echo ran >/ran.txt
HEALTHCHECK --interval=5s CMD ["/bin/true"]
EOF

note "FROM the Docker base, default --format oci: OCI media types everywhere, umoci unpacks it"
kiln build -t localhost/fmt:oci -o "type=oci,dest=$T/oci" "$c" >/dev/null
m=$(skopeo inspect --raw "oci:$T/oci:oci")
assert_eq "[\"$OCI_M\",\"$OCI_C\",\"$OCI_GZ\"]" "$(types <<<"$m")" "media types of the OCI image"
assert_eq "$base_layer" "$(jq -r '.layers[0].digest' <<<"$m")" "the inherited layer keeps its bytes"
assert_eq 3 "$(jq '.layers | length' <<<"$m")" "layers"
unpack_layout "$T/oci" "$T/bundle"
assert_file "$T/bundle/rootfs/app.txt" app
assert_file "$T/bundle/rootfs/ran.txt" ran
assert_file "$T/bundle/rootfs/bin/busybox"
# BuildKit keeps HEALTHCHECK in an OCI config too (buildah drops it: docs/differences.md)
assert_eq '["CMD","/bin/true"]' "$(ijq localhost/fmt:oci '.config.config.Healthcheck.Test')" "Healthcheck in OCI"

note "--format docker: v2s2 manifest, Docker config and layer types, same config bytes"
kiln build --format docker -t localhost/fmt:docker "$c" >/dev/null
assert_eq "[\"$D_M\",\"$D_C\",\"$D_GZ\"]" "$(kiln inspect localhost/fmt:docker | jq -c .manifest | types)" \
  "media types of the Docker image"
assert_eq "$(ijq localhost/fmt:oci .manifest.config.digest)" "$(ijq localhost/fmt:docker .manifest.config.digest)" \
  "the config is the same document in both formats"
assert_eq "$(ijq localhost/fmt:oci '[.manifest.layers[].digest]')" "$(ijq localhost/fmt:docker '[.manifest.layers[].digest]')" \
  "the layers are the same blobs"
assert_eq 5000000000 "$(ijq localhost/fmt:docker '.config.config.Healthcheck.Interval')" "Healthcheck in Docker"
assert_eq "$D_M" "$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"]
  == "docker.io/localhost/fmt:docker" or .annotations["org.opencontainers.image.ref.name"] == "localhost/fmt:docker")
  | .mediaType' "$KILN_ROOT/index.json")" "index.json records the Docker manifest type"

note "push keeps the Docker format; the registry serves the same manifest"
kiln push localhost/fmt:docker "$REG/fmt:docker" >/dev/null
raw=$(skopeo inspect --raw --tls-verify=false "docker://$REG/fmt:docker")
assert_eq "[\"$D_M\",\"$D_C\",\"$D_GZ\"]" "$(types <<<"$raw")" "media types in the registry"
assert_eq "$(ijq localhost/fmt:docker .digest)" "sha256:$(printf %s "$raw" | sha256sum | cut -d' ' -f1)" \
  "pushed manifest bytes"
assert_eq '["CMD","/bin/true"]' "$(skopeo inspect --config --raw --tls-verify=false "docker://$REG/fmt:docker" \
  | jq -c .config.Healthcheck.Test)" "Healthcheck read back by skopeo"
KILN_ROOT=$T/store2 kiln pull -q "$REG/fmt:docker" >/dev/null
assert_eq "$(ijq localhost/fmt:docker .digest)" "$(KILN_ROOT=$T/store2 ijq "$REG/fmt:docker" .digest)" "pull round trip"

note "save keeps the Docker format"
kiln save --format oci-archive -o "$T/d.oci.tar" localhost/fmt:docker
assert_eq "$D_M" "$(skopeo inspect --raw "oci-archive:$T/d.oci.tar" | jq -r .mediaType)" "oci-archive of a Docker image"
kiln save --format docker-archive -o "$T/d.docker.tar" localhost/fmt:docker
assert_eq 3 "$(skopeo inspect "docker-archive:$T/d.docker.tar" | jq '.Layers | length')" "docker-archive"

note "--format docker with zstd: new layers refused up front, inherited ones with the way out named"
expect_fail kiln build --format docker --compression zstd -t localhost/fmt:bad "$c"
assert_contains "$ERR" "zstd" "error of --format docker --compression zstd"
assert_not_contains "$ERR" "[1/" "nothing built"
z=$T/zctx
put "$z/z.txt" z
printf 'FROM localhost/busybox:latest\nCOPY z.txt /z.txt\n' >"$z/Dockerfile"
kiln build --compression zstd -t localhost/fmt:zbase "$z" >/dev/null
printf 'FROM localhost/fmt:zbase\nLABEL x=1\n' >"$z/Dockerfile"
expect_fail kiln build --format docker -t localhost/fmt:bad "$z"
assert_contains "$ERR" "zstd" "error for an inherited zstd layer"
assert_contains "$ERR" "--force-compression" "the error names the way out"
expect_fail kiln inspect localhost/fmt:bad
kiln build --format docker --force-compression -t localhost/fmt:zdocker "$z" >/dev/null
assert_eq "[\"$D_M\",\"$D_C\",\"$D_GZ\"]" "$(kiln inspect localhost/fmt:zdocker | jq -c .manifest | types)" \
  "recompressed to gzip, then Docker types"

note "--compression none in Docker format: the Docker uncompressed layer type"
kiln build --format docker --compression none -t localhost/fmt:plain "$c" >/dev/null
assert_eq '"application/vnd.docker.image.rootfs.diff.tar"' \
  "$(ijq localhost/fmt:plain '.manifest.layers[-1].mediaType' | jq -R .)" "uncompressed Docker layer"
expect_fail kiln build --format v2s2 "$c"
assert_contains "$ERR" "oci or docker" "unknown --format"
store_clean
