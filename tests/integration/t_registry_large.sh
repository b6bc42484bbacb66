#!/bin/bash
# A 64 MiB incompressible layer through tests/tools/faultproxy.py: the push
# survives a reset 40 MiB into the upload without sending the blob more than
# once again; the pull survives a reset 48 MiB into the download and resumes
# it with a Range request instead of starting over.
source "$IT_DIR/lib.sh"
source "$IT_DIR/registry_env.sh"
reg_need

MiB=$((1024 * 1024))
reg_start_http plain
proxy_start "$REG_URL"
P=$PROXY_HOST
make_busybox_base
make_random_image localhost/big:1 64
digest=$(kiln_manifest_digest localhost/big:1)
big=$(kiln_layer_digests localhost/big:1 | tail -n1)
big_size=$(kiln inspect localhost/big:1 | jq '.manifest.layers[-1].size')
total=$(kiln inspect localhost/big:1 | jq '[.manifest.layers[].size, .manifest.config.size] | add')
[ "$big_size" -gt $((60 * MiB)) ] || fail "the big layer is only $big_size bytes"

note "push: reset 40 MiB into the big layer's upload"
proxy_reset
proxy_rules "[{\"method\": \"PATCH|PUT\", \"path\": \"/blobs/uploads/\", \"action\": \"reset\", \"after_total\": $((40 * MiB))}]"
kiln push "$KILN_TLS_OFF" "${KILN_RETRY[@]}" localhost/big:1 "$P/large/big:1"
assert_eq 1 "$(proxy_stat .faults)" "faults injected"
up=$(proxy_stat .blob_upload_bytes)
echo "uploaded $up blob bytes for $total bytes of blobs; big-blob requests:"
grep -E '^(PATCH|PUT|POST) /v2/large/big/blobs/uploads/' "$PROXY_LOG" | cut -c1-60 | sed 's/^/  /' || true
[ "$up" -le $((total + 40 * MiB + MiB)) ] || fail "uploaded $up bytes: more than the lost 40 MiB sent again"
assert_eq "$digest" "$(reg_digest "$REG_HOST/large/big:1" --tls-verify=false)" "digest in the registry"
assert_eq "$big_size" "$(stat -c %s "$(reg_blob_path "$big")")" "size of the big blob in the registry"
store_clean

note "pull: reset 48 MiB into the big layer's download, resumed with Range"
proxy_reset
proxy_rules "[{\"method\": \"GET\", \"path\": \"/blobs/$big\", \"action\": \"reset\", \"after\": $((48 * MiB))}]"
KILN_ROOT=$T/s2 kiln pull "$KILN_TLS_OFF" "${KILN_RETRY[@]}" "$P/large/big:1"
assert_eq 1 "$(proxy_stat .faults)" "faults injected"
down=$(proxy_stat .blob_download_bytes)
echo "downloaded $down blob bytes for $total bytes of blobs"
grep -E "^GET /v2/large/big/blobs/$big" "$PROXY_LOG" | sed 's/^/  /' || true
# What was in flight when the connection was reset is lost, so the client
# resumes a little before 48 MiB: any Range past 32 MiB is a resume.
off=$(sed -n "s|^GET /v2/large/big/blobs/$big 206 range=bytes=\([0-9]*\)-.*|\1|p" "$PROXY_LOG" | head -n1)
[ -n "$off" ] || fail "the download was not resumed with a Range request"
[ "$off" -ge $((32 * MiB)) ] || fail "the download resumed at byte $off, not near 48 MiB"
[ "$down" -le $((total + 16 * MiB)) ] || fail "downloaded $down bytes for $total: the layer was fetched again from the start"
assert_eq "$digest" "$(KILN_ROOT=$T/s2 kiln_manifest_digest "$P/large/big:1")" "digest of the pulled image"
KILN_ROOT=$T/s2 store_clean
KILN_ROOT=$T/s2 store_has_no_partial_blobs
