#!/bin/bash
# Registry cache and lazy blobs, measured at tests/tools/faultproxy.py: runner
# A builds a model-like context with --cache-to and --push; runner B (a fresh
# store) builds it with --cache-from: every layer step CACHED, no layer byte
# downloaded (only manifests and configs), then `kiln push` moves no blob
# byte.  After one app file changes, B downloads only the layers a RUN
# snapshot needs and uploads only the new layers.  Also: the cache is a plain
# OCI manifest, type=local round trip, a missing cache ref only warns,
# --cache-ttl.
source "$IT_DIR/lib.sh"
source "$IT_DIR/registry_env.sh"
reg_need

reg_start_http plain
proxy_start "$REG_URL"
P=$PROXY_HOST
EPOCH=--source-date-epoch=1700000000

# layer GETs in the proxy log (a config or manifest is not a layer)
layer_gets() {   # LAYER_DIGEST...
  local d n=0
  for d in "$@"; do
    if grep -Eq "^GET /v2/[^ ]*/blobs/$d 20[06]" "$PROXY_LOG"; then n=$((n + 1)); fi
  done
  echo "$n"
}

note "runner A: base in the registry, build with --cache-to and --push"
make_busybox_base
kiln push --quiet "$KILN_TLS_OFF" localhost/busybox:latest "$P/kiln/busybox:1"
c=$T/ctx
mkdir -p "$c/weights" "$c/app"
head -c $((3 * 1024 * 1024)) /dev/urandom >"$c/weights/model.bin"
put "$c/weights/config.json" '{"layers": 4}'
put "$c/app/main.py" "print('v1')"
put "$c/app/util.py" "X = 1"
cat >"$c/Dockerfile" <<EOF
FROM $P/kiln/busybox:1
RUN echo ready >/stamp
COPY weights/ /models/
COPY app/ /app/
RUN wc -c /app/main.py >/app/size.txt
ENV MODEL=/models
CMD ["/bin/sh"]
EOF
KILN_ROOT=$T/a kiln build "$EPOCH" "$KILN_TLS_OFF" --cache-to "type=registry,ref=$P/kiln/app:cache" \
  --push -t "$P/kiln/app:1" "$c" >/dev/null 2>"$T/a.err" || fail "runner A build: $(cat "$T/a.err")"
a_digest=$(KILN_ROOT=$T/a kiln_manifest_digest "$P/kiln/app:1")
mapfile -t layers < <(KILN_ROOT=$T/a kiln_layer_digests "$P/kiln/app:1")
assert_eq 5 "${#layers[@]}" "layers of app:1"

note "the cache is a plain OCI image manifest with the kiln cache config"
raw=$(skopeo inspect --raw --tls-verify=false "docker://$REG_HOST/kiln/app:cache")
assert_eq application/vnd.oci.image.manifest.v1+json "$(jq -r .mediaType <<<"$raw")" "cache manifest type"
assert_eq application/vnd.kiln.cache.config.v1+json "$(jq -r .config.mediaType <<<"$raw")" "cache config type"
# mode=min: the layers the final image's steps made (not the base's), by digest
assert_eq "$(printf '%s\n' "${layers[@]:1}" | sort)" \
  "$(jq -r '.layers[] | select(.mediaType != "application/vnd.kiln.layer.toc.v1") | .digest' <<<"$raw" | sort)" "cache layers"
# and the tables of contents of those layers, so a COPY can be placed on them without fetching them
assert_eq 4 "$(jq '[.layers[] | select(.mediaType == "application/vnd.kiln.layer.toc.v1")] | length' <<<"$raw")" \
  "tables of contents in the cache"
toc_bytes() {   # the sizes of the cached tables of contents of layers N...
  local cfg n sum=0 d
  cfg=$(skopeo inspect --raw --tls-verify=false "docker://$REG_HOST/kiln/app:cache" | jq -r .config.digest)
  cfg=$(curl -sf "http://$REG_HOST/v2/kiln/app/blobs/$cfg")
  for n in "$@"; do
    d=$(jq -r --arg l "${layers[$n]}" '.records[] | select(.layer.digest == $l) | .toc' <<<"$cfg")
    sum=$((sum + $(jq -r --arg d "$d" '.layers[] | select(.digest == $d) | .size' <<<"$raw")))
  done
  echo "$sum"
}
cache_cfg_size=$(jq -r .config.size <<<"$raw")
base_cfg_size=$(skopeo inspect --raw --tls-verify=false "docker://$REG_HOST/kiln/busybox:1" | jq -r .config.size)

note "runner B: a fresh store, --cache-from: all CACHED, only manifests and configs travel"
proxy_reset
KILN_ROOT=$T/b kiln build "$EPOCH" "$KILN_TLS_OFF" --cache-from "type=registry,ref=$P/kiln/app:cache" \
  -t "$P/kiln/app:2" "$c" >/dev/null 2>"$T/b.err" || fail "runner B build: $(cat "$T/b.err")"
for s in "RUN echo ready" "COPY weights/" "COPY app/" "RUN wc -c"; do
  assert_match "$(cat "$T/b.err")" "\] $s.* CACHED" "runner B progress for $s"
done
assert_eq 0 "$(layer_gets "${layers[@]}")" "layer downloads by runner B; requests: $(cat "$PROXY_LOG")"
assert_eq $((cache_cfg_size + base_cfg_size)) "$(proxy_stat .blob_download_bytes)" \
  "blob bytes downloaded by runner B (the two configs)"
assert_eq "$a_digest" "$(KILN_ROOT=$T/b kiln_manifest_digest "$P/kiln/app:2")" "image of runner B"
check=$(KILN_ROOT=$T/b kiln store check)
assert_contains "$check" "store ok"
assert_contains "$check" "6 layer reference(s) are remote"   # base 1 + app 5

note "runner B pushes: no blob byte moves, no layer is fetched"
proxy_reset
KILN_ROOT=$T/b kiln push --quiet "$KILN_TLS_OFF" "$P/kiln/app:2"
assert_eq 0 "$(proxy_stat .blob_upload_bytes)" "blob bytes uploaded by runner B; requests: $(cat "$PROXY_LOG")"
assert_eq 0 "$(proxy_stat .blob_download_bytes)" "blob bytes downloaded by runner B's push"
assert_eq "$a_digest" "$(reg_digest "$REG_HOST/kiln/app:2" --tls-verify=false)" "pushed app:2"
# to another repository of the registry: mounted from the cache repository
proxy_reset
KILN_ROOT=$T/b kiln push --quiet "$KILN_TLS_OFF" "$P/kiln/app:2" "$P/other/app:2"
assert_eq 0 "$(proxy_stat .blob_upload_bytes)" "blob bytes uploaded to another repository"
assert_eq 0 "$(proxy_stat .blob_download_bytes)" "blob bytes downloaded for a mount"

note "one app file changes: only what the RUN snapshot needs comes down"
put "$c/app/main.py" "print('version 2')"
proxy_reset
KILN_ROOT=$T/b kiln build "$EPOCH" "$KILN_TLS_OFF" --cache-from "type=registry,ref=$P/kiln/app:cache" \
  -t "$P/kiln/app:3" "$c" >/dev/null 2>"$T/b2.err" || fail "runner B rebuild: $(cat "$T/b2.err")"
assert_match "$(cat "$T/b2.err")" "\] COPY weights/.* CACHED" "weights step"
assert_not_contains "$(grep '\] COPY app/' "$T/b2.err")" CACHED "app step"
# the RUN after it overlays base, stamp, weights (fetched) and the new app layer
assert_eq 3 "$(layer_gets "${layers[0]}" "${layers[1]}" "${layers[2]}")" "lower layers fetched; $(cat "$PROXY_LOG")"
assert_eq 0 "$(layer_gets "${layers[3]}" "${layers[4]}")" "replaced layers fetched"
sizes=$(KILN_ROOT=$T/a kiln inspect "$P/kiln/app:1" | jq '[.manifest.layers[0:3][].size] | add')
# (placing COPY app/ reads the tables of contents of the cached stamp and weights layers)
assert_eq $((sizes + cache_cfg_size + $(toc_bytes 1 2))) "$(proxy_stat .blob_download_bytes)" "bytes downloaded by the rebuild"
assert_eq "19 /app/main.py" "$(KILN_ROOT=$T/b kiln run --rm "$P/kiln/app:3" cat /app/size.txt)" "RUN over fetched layers"
proxy_reset
KILN_ROOT=$T/b kiln push --quiet "$KILN_TLS_OFF" "$P/kiln/app:3"
new=$(KILN_ROOT=$T/b kiln inspect "$P/kiln/app:3" | jq '.manifest.layers[3].size + .manifest.layers[4].size + .manifest.config.size')
assert_eq "$new" "$(proxy_stat .blob_upload_bytes)" "bytes uploaded for the rebuilt image"
KILN_ROOT=$T/b store_clean

note "no RUN after the change: the weights layer is never fetched, only its table of contents"
c2=$T/ctx2
cp -a "$c" "$c2"
printf 'FROM %s/kiln/busybox:1\nCOPY weights/ /models/\nCOPY app/ /app/\n' "$P" >"$c2/Dockerfile"
KILN_ROOT=$T/a kiln build "$EPOCH" "$KILN_TLS_OFF" --cache-to "type=registry,ref=$P/kiln/app:cache2" "$c2" \
  >/dev/null 2>"$T/a2.err" || fail "runner A build 2: $(cat "$T/a2.err")"
put "$c2/app/main.py" "print('version 3')"
proxy_reset
KILN_ROOT=$T/f kiln build "$EPOCH" "$KILN_TLS_OFF" --cache-from "type=registry,ref=$P/kiln/app:cache2" \
  -t localhost/app:f "$c2" >/dev/null 2>"$T/f.err" || fail "runner F build: $(cat "$T/f.err")"
assert_match "$(cat "$T/f.err")" "\] COPY weights/.* CACHED" "runner F weights step"
assert_eq "${layers[2]}" "$(KILN_ROOT=$T/f kiln inspect localhost/app:f | jq -r '.manifest.layers[1].digest')" \
  "runner F's weights layer is the cached one"
assert_eq 0 "$(layer_gets "${layers[2]}")" "weights layer fetched by runner F; $(cat "$PROXY_LOG")"
assert_absent "$T/f/blobs/sha256/${layers[2]#sha256:}"
KILN_ROOT=$T/f kiln save --format oci -o "$T/f-oci" localhost/app:f
unpack_layout "$T/f-oci" "$T/f-b"
assert_file "$T/f-b/rootfs/app/main.py" "print('version 3')"
cmp "$T/f-b/rootfs/models/model.bin" "$c2/weights/model.bin" || fail "weights of runner F's image"

note "type=local round trip (mode=max)"
KILN_ROOT=$T/a kiln build "$EPOCH" --cache-to "type=local,dest=$T/cache-dir,mode=max" "$c" >/dev/null 2>"$T/l.err" \
  || fail "local export: $(cat "$T/l.err")"
assert_eq cache "$(jq -r '.manifests[0].annotations["org.opencontainers.image.ref.name"]' "$T/cache-dir/index.json")"
KILN_ROOT=$T/c kiln pull --quiet "$KILN_TLS_OFF" "$P/kiln/busybox:1" >/dev/null
KILN_ROOT=$T/c kiln build "$EPOCH" "$KILN_TLS_OFF" --cache-from "type=local,src=$T/cache-dir" "$c" >/dev/null 2>"$T/c.err" \
  || fail "local import: $(cat "$T/c.err")"
for s in "COPY weights/" "COPY app/" "RUN wc -c"; do
  assert_match "$(cat "$T/c.err")" "\] $s.* CACHED" "local cache: $s"
done
KILN_ROOT=$T/c store_clean

note "a missing cache ref is a warning"
KILN_ROOT=$T/d kiln build "$EPOCH" "$KILN_TLS_OFF" --cache-from "type=registry,ref=$P/kiln/nothing:cache" \
  "$c" >/dev/null 2>"$T/d.err" || fail "build with a missing cache: $(cat "$T/d.err")"
assert_match "$(cat "$T/d.err")" "cache .*nothing:cache.* not found"
expect_fail kiln build --cache-to type=bogus "$c"
assert_contains "$ERR" "--cache-to"

note "--cache-ttl: records dated older than the TTL are ignored"
KILN_ROOT=$T/e kiln build "$EPOCH" "$KILN_TLS_OFF" --cache-ttl 1s --cache-from "type=registry,ref=$P/kiln/app:cache" \
  "$c" >/dev/null 2>"$T/e.err" || fail "build with a short TTL: $(cat "$T/e.err")"
assert_not_contains "$(grep '\] COPY weights/' "$T/e.err")" CACHED "weights step with an expired cache"
