#!/bin/bash
# Faults between kiln and the registry (tests/tools/faultproxy.py): a reset
# mid-blob on push and on pull, 500/503/429 (Retry-After) answers, a
# truncated body: kiln retries and succeeds.  A corrupted byte in a layer:
# the pull fails with a digest error naming the blob and stores nothing of
# it.  After every run the registry holds exactly the pushed image and
# `kiln store check` is clean.
source "$IT_DIR/lib.sh"
source "$IT_DIR/registry_env.sh"
reg_need

reg_start_http plain
proxy_start "$REG_URL"
P=$PROXY_HOST
make_busybox_base
make_random_image localhost/app:1 2   # a 2 MiB incompressible layer on busybox
digest=$(kiln_manifest_digest localhost/app:1)
big=$(kiln_layer_digests localhost/app:1 | tail -n1)
blobs=$( (kiln_layer_digests localhost/app:1; kiln inspect localhost/app:1 | jq -r .manifest.config.digest) | sort)

# registry_holds_exactly REPO: one manifest revision (ours), tag 1 only, and
# blob links for exactly our layers and config; skopeo re-reads every blob.
registry_holds_exactly() {
  local repo=$1 rd=$REG_DIR/storage/docker/registry/v2/repositories/$1
  assert_eq "$digest" "$(reg_digest "127.0.0.1:$REG_PORT/$repo:1" --tls-verify=false)" "manifest of $repo"
  assert_eq '["1"]' "$(curl -fsS "$REG_URL/v2/$repo/tags/list" | jq -c .tags)" "tags of $repo"
  assert_eq "${digest#sha256:}" "$(ls "$rd/_manifests/revisions/sha256")" "manifest revisions of $repo"
  assert_eq "$blobs" "$(ls "$rd/_layers/sha256" | sed 's/^/sha256:/' | sort)" "blob links of $repo"
  rm -rf "$T/verify"
  skopeo copy -q --src-tls-verify=false "docker://127.0.0.1:$REG_PORT/$repo:1" "oci:$T/verify:1" \
    || fail "skopeo cannot copy $repo back"
}
after_run() {   # a clean store, nothing half-written
  store_clean
  store_has_no_partial_blobs
}
fired() {   # N: the proxy applied exactly N faults (else the test tested nothing)
  assert_eq "$1" "$(proxy_stat .faults)" "faults injected; proxy log: $(cat "$PROXY_LOG")"
}
MiB=$((1024 * 1024))

note "push: connection reset in the middle of a blob upload"
proxy_reset
proxy_rules "[{\"method\": \"PATCH|PUT\", \"path\": \"/blobs/uploads/\", \"action\": \"reset\", \"after_total\": $MiB}]"
kiln push "$KILN_TLS_OFF" "${KILN_RETRY[@]}" localhost/app:1 "$P/faults/reset:1"
fired 1
registry_holds_exactly faults/reset
after_run

note "push: 500 on a blob HEAD, 503 on an upload POST, 429 + Retry-After on the manifest PUT"
proxy_reset
proxy_rules '[{"method": "HEAD", "path": "/blobs/sha256:", "action": "status", "status": 500},
  {"method": "POST", "path": "/blobs/uploads/", "action": "status", "status": 503},
  {"method": "PUT", "path": "/manifests/", "action": "status", "status": 429, "retry_after": 1}]'
s=$(date +%s%N)
kiln push "$KILN_TLS_OFF" "${KILN_RETRY[@]}" localhost/app:1 "$P/faults/status:1"
ms=$((($(date +%s%N) - s) / 1000000))
fired 3
[ "$ms" -ge 900 ] || fail "push took ${ms} ms: Retry-After: 1 was not honoured"
registry_holds_exactly faults/status
after_run

# The pulls below read faults/reset:1 into empty stores.
note "pull: connection reset in the middle of a layer download"
proxy_reset
proxy_rules "[{\"method\": \"GET\", \"path\": \"/blobs/$big\", \"action\": \"reset\", \"after\": $MiB}]"
KILN_ROOT=$T/p1 kiln pull "$KILN_TLS_OFF" "${KILN_RETRY[@]}" "$P/faults/reset:1"
fired 1
assert_eq "$digest" "$(KILN_ROOT=$T/p1 kiln_manifest_digest "$P/faults/reset:1")" "digest after a reset pull"
KILN_ROOT=$T/p1 after_run

note "pull: 500 on the manifest, 503 and 429 + Retry-After on blobs"
proxy_reset
proxy_rules '[{"method": "GET", "path": "/manifests/", "action": "status", "status": 500},
  {"method": "GET", "path": "/blobs/sha256:", "action": "status", "status": 503},
  {"method": "GET", "path": "/blobs/sha256:", "action": "status", "status": 429, "retry_after": 1}]'
s=$(date +%s%N)
KILN_ROOT=$T/p2 kiln pull "$KILN_TLS_OFF" "${KILN_RETRY[@]}" "$P/faults/reset:1"
ms=$((($(date +%s%N) - s) / 1000000))
fired 3
[ "$ms" -ge 900 ] || fail "pull took ${ms} ms: Retry-After: 1 was not honoured"
assert_eq "$digest" "$(KILN_ROOT=$T/p2 kiln_manifest_digest "$P/faults/reset:1")" "digest after 5xx/429"
KILN_ROOT=$T/p2 after_run

note "pull: a layer body cut short (connection closed cleanly)"
proxy_reset
proxy_rules "[{\"method\": \"GET\", \"path\": \"/blobs/$big\", \"action\": \"truncate\", \"after\": $MiB}]"
KILN_ROOT=$T/p3 kiln pull "$KILN_TLS_OFF" "${KILN_RETRY[@]}" "$P/faults/reset:1"
fired 1
assert_eq "$digest" "$(KILN_ROOT=$T/p3 kiln_manifest_digest "$P/faults/reset:1")" "digest after a truncated body"
KILN_ROOT=$T/p3 after_run

# Byte 4 is in the gzip header's MTIME, which gunzip ignores: only the
# digest check can catch it.  A byte in the middle breaks the deflate data
# too; either way nothing of the blob may be stored.
for where in header middle; do
  note "pull: one corrupted byte ($where) in a layer -> error naming the blob, nothing stored"
  st=$T/p4-$where
  if [ "$where" = header ]; then off=4; else off=$((MiB / 2)); fi
  proxy_reset
  proxy_rules "[{\"method\": \"GET\", \"path\": \"/blobs/$big\", \"action\": \"corrupt\", \"offset\": $off, \"times\": -1}]"
  expect_fail env KILN_ROOT="$st" "$KILN" --root "$st" pull "$KILN_TLS_OFF" "${KILN_RETRY[@]}" "$P/faults/reset:1"
  [ "$(proxy_stat .faults)" -ge 1 ] || fail "the corruption was never injected"
  assert_match "$ERR" "${big#sha256:}|${big:7:12}" "error for a corrupted layer names the blob"
  [ "$where" = middle ] || assert_match "$ERR" '[Dd]igest' "error for a layer whose digest does not match"
  assert_absent "$st/blobs/sha256/${big#sha256:}"
  if [ -d "$st" ]; then
    KILN_ROOT=$st after_run
    if KILN_ROOT=$st kiln inspect "$P/faults/reset:1" >/dev/null 2>&1; then
      fail "the image was tagged although a layer did not verify"
    fi
  fi
done

note "the registry still holds exactly the pushed images"
registry_holds_exactly faults/reset
registry_holds_exactly faults/status
after_run
