#!/bin/bash
# Blob de-duplication, measured at tests/tools/faultproxy.py: pushing an
# image whose blobs the repository has uploads zero blob bytes; pushing it to
# another repository of the same registry mounts the blobs (POST
# ?mount=&from=, 201) and uploads zero bytes again; an image built FROM a
# pulled base and pushed to a third repository uploads only its own layer
# and config (the base layer is mounted from where it was pulled).
source "$IT_DIR/lib.sh"
source "$IT_DIR/registry_env.sh"
reg_need

reg_start_http plain
proxy_start "$REG_URL"
P=$PROXY_HOST
make_busybox_base
digest=$(kiln_manifest_digest localhost/busybox:latest)
sizes=$(kiln inspect localhost/busybox:latest | jq '[.manifest.layers[].size, .manifest.config.size] | add')

note "first push uploads every blob once"
proxy_reset
kiln push "$KILN_TLS_OFF" localhost/busybox:latest "$P/dedup/one:1"
up=$(proxy_stat .blob_upload_bytes)
echo "first push: $up blob bytes up (blobs total $sizes)"
assert_eq "$sizes" "$up" "blob bytes uploaded by the first push"
assert_eq "$digest" "$(reg_digest "$REG_HOST/dedup/one:1" --tls-verify=false)" "digest in dedup/one"

note "pushing again (another tag) uploads no blob bytes"
proxy_reset
kiln push "$KILN_TLS_OFF" localhost/busybox:latest "$P/dedup/one:2"
assert_eq 0 "$(proxy_stat .blob_upload_bytes)" "blob bytes uploaded by a repeated push; requests: $(cat "$PROXY_LOG")"
assert_eq "$digest" "$(reg_digest "$REG_HOST/dedup/one:2" --tls-verify=false)" "digest of dedup/one:2"

note "pushing to another repository mounts instead of uploading"
proxy_reset
kiln push "$KILN_TLS_OFF" localhost/busybox:latest "$P/dedup/two:1"
assert_eq 0 "$(proxy_stat .blob_upload_bytes)" "blob bytes uploaded to a second repository; requests: $(cat "$PROXY_LOG")"
grep -Eq '^POST /v2/dedup/two/blobs/uploads/\?.*mount=.* 201' "$PROXY_LOG" \
  || fail "no successful cross-repository mount: $(cat "$PROXY_LOG")"
assert_eq "$digest" "$(reg_digest "$REG_HOST/dedup/two:1" --tls-verify=false)" "digest in dedup/two"
skopeo copy -q --src-tls-verify=false "docker://$REG_HOST/dedup/two:1" "oci:$T/two:1"

note "build FROM a pulled base, push elsewhere: only the new layer and config travel"
c=$T/ctx
put "$c/new.txt" "only this is new"
printf 'FROM %s\nCOPY new.txt /new.txt\n' "$P/dedup/one:1" >"$c/Dockerfile"
KILN_ROOT=$T/s2 kiln build --progress=quiet "$KILN_TLS_OFF" -t localhost/derived:1 "$c" >/dev/null
new=$(KILN_ROOT=$T/s2 kiln inspect localhost/derived:1 | jq '.manifest.layers[-1].size + .manifest.config.size')
proxy_reset
KILN_ROOT=$T/s2 kiln push "$KILN_TLS_OFF" localhost/derived:1 "$P/dedup/three:1"
assert_eq "$new" "$(proxy_stat .blob_upload_bytes)" "blob bytes uploaded for a derived image; requests: $(cat "$PROXY_LOG")"
assert_eq "$(KILN_ROOT=$T/s2 kiln_manifest_digest localhost/derived:1)" \
  "$(reg_digest "$REG_HOST/dedup/three:1" --tls-verify=false)" "digest in dedup/three"
skopeo copy -q --src-tls-verify=false "docker://$REG_HOST/dedup/three:1" "oci:$T/three:1"
KILN_ROOT=$T/s2 store_clean
store_clean
