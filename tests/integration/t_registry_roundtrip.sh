#!/bin/bash
# Round trips through a plain-HTTP registry, checked by a second client
# (skopeo): what kiln pushes skopeo reads back byte for byte; what skopeo
# pushes kiln pulls (by tag, by digest, by platform from an index) and builds
# FROM; --digestfile; a missing tag fails naming it.
source "$IT_DIR/lib.sh"
source "$IT_DIR/registry_env.sh"
reg_need
need umoci

reg_start_http plain
R=$REG_HOST
make_busybox_base
base_digest=$(kiln_manifest_digest localhost/busybox:latest)

note "kiln push: skopeo sees the same manifest digest, and the blobs unpack"
kiln push "$KILN_TLS_OFF" --digestfile "$T/digest" localhost/busybox:latest "$R/kiln/busybox:1"
assert_eq "$base_digest" "$(cat "$T/digest")" "--digestfile"
assert_eq "$base_digest" "$(reg_digest "$R/kiln/busybox:1" --tls-verify=false)" "manifest digest in the registry"
skopeo copy -q --src-tls-verify=false "docker://$R/kiln/busybox:1" "oci:$T/sk:1"
umoci unpack --image "$T/sk:1" "$T/bundle" >/dev/null
cmp "$BUSYBOX_BIN" "$T/bundle/rootfs/bin/busybox" || fail "busybox differs after kiln push + skopeo copy"
assert_eq /bin/sh "$(jq -r '.process.args[0]' "$T/bundle/config.json")" "CMD of the pushed image"

note "an image skopeo pushed: kiln pulls it into an empty store"
c=$T/ctx-app
put "$c/hello.txt" "hello from skopeo"
printf 'FROM localhost/busybox:latest\nCOPY hello.txt /hello.txt\nLABEL stage=app\n' >"$c/Dockerfile"
kiln build --progress=quiet -t localhost/app:1 "$c" >/dev/null
kiln save --format oci -o "$T/app-lay" localhost/app:1
skopeo copy -q --dest-tls-verify=false "oci:$T/app-lay:$(oci_ref_name "$T/app-lay")" "docker://$R/sk/app:1"
app_digest=$(reg_digest "$R/sk/app:1" --tls-verify=false)
KILN_ROOT=$T/s2 kiln pull "$KILN_TLS_OFF" "$R/sk/app:1"
assert_eq "$app_digest" "$(KILN_ROOT=$T/s2 kiln_manifest_digest "$R/sk/app:1")" "digest of the pulled image"
assert_eq app "$(KILN_ROOT=$T/s2 ijq "$R/sk/app:1" '.config.config.Labels.stage')" "label of the pulled image"
KILN_ROOT=$T/s2 store_clean
KILN_ROOT=$T/s2 store_has_no_partial_blobs

note "pull by digest"
KILN_ROOT=$T/s3 kiln pull "$KILN_TLS_OFF" "$R/sk/app@$app_digest"
assert_eq "$app_digest" "$(KILN_ROOT=$T/s3 kiln_manifest_digest "$app_digest")" "pull by digest"

note "--platform picks the matching manifest of an index"
# An index of two images that differ only in the config's architecture.
lay=$T/multi
cp -r "$T/app-lay" "$lay"
amd=$(jq -r '.manifests[0].digest' "$lay/index.json")
man=$(cat "$lay/blobs/sha256/${amd#sha256:}")
cfg=$(jq -r .config.digest <<<"$man")
put_blob() { local h; h=$(printf '%s' "$1" | sha256sum | cut -d' ' -f1); printf '%s' "$1" >"$lay/blobs/sha256/$h"; echo "sha256:$h"; }
arm_cfg_json=$(jq -c '.architecture = "arm64"' "$lay/blobs/sha256/${cfg#sha256:}")
arm_cfg=$(put_blob "$arm_cfg_json")
arm_man_json=$(jq -c --arg d "$arm_cfg" --argjson s "${#arm_cfg_json}" '.config.digest = $d | .config.size = $s' <<<"$man")
arm=$(put_blob "$arm_man_json")
amd_arch=$(jq -r .architecture "$lay/blobs/sha256/${cfg#sha256:}")
idx=$(jq -cn --arg a "$amd" --argjson asz "$(stat -c %s "$lay/blobs/sha256/${amd#sha256:}")" --arg b "$arm" --argjson bsz "${#arm_man_json}" --arg aa "$amd_arch" \
  '{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [
     {mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $a, size: $asz, platform: {os: "linux", architecture: $aa}},
     {mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $b, size: $bsz, platform: {os: "linux", architecture: "arm64"}}]}')
idx_digest=$(put_blob "$idx")
jq -cn --arg d "$idx_digest" --argjson s "${#idx}" \
  '{schemaVersion: 2, manifests: [{mediaType: "application/vnd.oci.image.index.v1+json", digest: $d, size: $s,
     annotations: {"org.opencontainers.image.ref.name": "multi"}}]}' >"$lay/index.json"
skopeo copy -q --all --dest-tls-verify=false "oci:$lay:multi" "docker://$R/multi/app:1"
assert_eq "$idx_digest" "$(reg_digest "$R/multi/app:1" --tls-verify=false)" "index digest in the registry"
KILN_ROOT=$T/s5 kiln pull "$KILN_TLS_OFF" --platform linux/arm64 "$R/multi/app:1"
assert_eq "$arm" "$(KILN_ROOT=$T/s5 kiln_manifest_digest "$R/multi/app:1")" "manifest pulled for linux/arm64"
assert_eq arm64 "$(KILN_ROOT=$T/s5 ijq "$R/multi/app:1" .config.architecture)" "architecture pulled for linux/arm64"
KILN_ROOT=$T/s6 kiln pull "$KILN_TLS_OFF" --platform "linux/$amd_arch" "$R/multi/app:1"
assert_eq "$amd" "$(KILN_ROOT=$T/s6 kiln_manifest_digest "$R/multi/app:1")" "manifest pulled for linux/$amd_arch"
expect_fail env KILN_ROOT="$T/s7" "$KILN" --root "$T/s7" pull "$KILN_TLS_OFF" --platform linux/s390x "$R/multi/app:1"
assert_contains "$ERR" s390x "error for a platform the index lacks"

note "a missing tag fails and names the reference"
expect_fail kiln pull "$KILN_TLS_OFF" "$R/sk/app:nope"
assert_contains "$ERR" "sk/app" "error for a missing tag"
expect_fail kiln pull "$KILN_TLS_OFF" "$R/no/such:1"
assert_contains "$ERR" "no/such" "error for a missing repository"
note "kiln build FROM the registry image pulls it and builds on it"
c2=$T/ctx-child
put "$c2/child.txt" child
printf 'FROM %s\nCOPY child.txt /child.txt\n' "$R/sk/app:1" >"$c2/Dockerfile"
KILN_ROOT=$T/s4 kiln build --progress=quiet "$KILN_TLS_OFF" -t localhost/child:1 "$c2" >/dev/null
app_layers=$(KILN_ROOT=$T/s2 ijq "$R/sk/app:1" '[.manifest.layers[].digest]')
child_layers=$(KILN_ROOT=$T/s4 ijq localhost/child:1 '[.manifest.layers[].digest]')
assert_eq "$app_layers" "$(jq -c '.[:-1]' <<<"$child_layers")" "the child's layers start with the base's"
assert_eq 1 "$(( $(jq length <<<"$child_layers") - $(jq length <<<"$app_layers") ))" "one new layer"
KILN_ROOT=$T/s4 unpack_image localhost/child:1 "$T/child-bundle"
assert_file "$T/child-bundle/rootfs/hello.txt" "hello from skopeo"
assert_file "$T/child-bundle/rootfs/child.txt" child
KILN_ROOT=$T/s4 store_clean

note "the child pushed back, read by skopeo"
KILN_ROOT=$T/s4 kiln push "$KILN_TLS_OFF" localhost/child:1 "$R/kiln/child:1"
assert_eq "$(KILN_ROOT=$T/s4 kiln_manifest_digest localhost/child:1)" \
  "$(reg_digest "$R/kiln/child:1" --tls-verify=false)" "child digest in the registry"
skopeo copy -q --src-tls-verify=false "docker://$R/kiln/child:1" "oci:$T/sk-child:1"

store_clean
