#!/bin/bash
# Corrupted registry responses (tests/tools/faultproxy.py flips one bit of a
# body): a layer, a config or a manifest by digest whose bytes do not match
# their digest is downloaded once more from the start, so a byte damaged once
# costs one retry and the pull (or the build, whose layers stream into
# snapshots) completes with the right content and nothing of the first try
# kept.  Damaged every time, the error says "digest mismatch" with the
# expected digest, the digest of the bytes that arrived and the registry,
# also when the damage breaks the gzip stream before the end; kiln exits
# non-zero and the store still checks.  A layer that is broken gzip although
# its bytes match the digest is said to be exactly that, without a retry.
source "$IT_DIR/lib.sh"
source "$IT_DIR/registry_env.sh"
reg_need

reg_start_http plain
proxy_start "$REG_URL"
P=$PROXY_HOST
make_busybox_base

note "the image: busybox, a 2 MiB random layer (stored gzip blocks), a ~3 MiB text layer (deflate)"
c=$T/app
mkdir -p "$c"
head -c $((2 << 20)) /dev/urandom >"$c/rand.bin"
seq 1 400000 >"$c/text.txt"
cat >"$c/Dockerfile" <<'EOF'
FROM localhost/busybox:latest
COPY rand.bin /opt/rand.bin
COPY text.txt /opt/text.txt
EOF
kiln build --progress=quiet -t localhost/faults/app:1 "$c" >/dev/null
kiln push "$KILN_TLS_OFF" localhost/faults/app:1 "$REG_HOST/faults/app:1" >/dev/null
digest=$(kiln_manifest_digest localhost/faults/app:1)
config=$(kiln inspect localhost/faults/app:1 | jq -r .manifest.config.digest)
mapfile -t layers < <(kiln_layer_digests localhost/faults/app:1)
assert_eq 3 "${#layers[@]}" "layers of the image"
rand=${layers[1]} text=${layers[2]}
text_size=$(kiln inspect localhost/faults/app:1 | jq -r '.manifest.layers[2].size')
mid=$((text_size / 2))
want_sums=$(cd "$c" && md5sum rand.bin text.txt)

# flipped DIGEST OFFSET: the digest of the local blob with bit 0 of byte
# OFFSET flipped, as the proxy's corrupt action does.
flipped() {
  python3 - "$KILN_ROOT/blobs/sha256/${1#sha256:}" "$2" <<'PY'
import hashlib, sys
b = bytearray(open(sys.argv[1], "rb").read())
b[int(sys.argv[2])] ^= 1
print("sha256:" + hashlib.sha256(b).hexdigest())
PY
}
gets() { grep -c "^GET /v2/faults/$1/$2 " "$PROXY_LOG" || true; }   # REPO PATH: GETs through the proxy
corrupt() {   # PATH_REGEX OFFSET TIMES
  proxy_reset
  proxy_rules "[{\"method\": \"GET\", \"path\": \"$1\", \"action\": \"corrupt\", \"offset\": $2, \"times\": $3}]"
}
pull() { "$KILN" --root "$1" pull "$KILN_TLS_OFF" "${KILN_RETRY[@]}" "$2"; }
clean_after_failure() {   # STORE BLOB: nothing of BLOB, no half-written file, no tag, store checks
  assert_absent "$1/blobs/sha256/${2#sha256:}"
  [ ! -d "$1/snapshots" ] ||
    assert_eq 0 "$(find "$1/snapshots" -mindepth 1 -maxdepth 1 -name '.tmp-*' | wc -l)" "temp snapshot dirs"
  KILN_ROOT=$1 store_clean
  KILN_ROOT=$1 store_has_no_partial_blobs
  if "$KILN" --root "$1" inspect "$P/faults/app:1" >/dev/null 2>&1; then
    fail "the image was tagged although a blob did not verify"
  fi
}

note "text layer damaged once in the middle of its deflate data: one retry, the pull completes"
corrupt "/blobs/$text" "$mid" 1
st=$T/once
pull "$st" "$P/faults/app:1" 2>"$T/once.err" >/dev/null || fail "pull after one damaged download: $(cat "$T/once.err")"
assert_eq 1 "$(proxy_stat .faults)" "faults injected; proxy log: $(cat "$PROXY_LOG")"
assert_eq 2 "$(gets app "blobs/$text")" "GETs of the damaged layer"
assert_contains "$(cat "$T/once.err")" "digest mismatch" "the warning about the retry"
assert_contains "$(cat "$T/once.err")" "downloading it again" "the warning about the retry"
assert_eq "$digest" "$(KILN_ROOT=$st kiln_manifest_digest "$P/faults/app:1")" "manifest digest after the retry"
assert_file "$st/blobs/sha256/${text#sha256:}"
KILN_ROOT=$st store_clean
KILN_ROOT=$st store_has_no_partial_blobs

note "a build FROM the image with a RUN, text layer damaged once: the snapshot begun from the damaged bytes is dropped, the RUN sees the right files"
b=$T/build
mkdir -p "$b"
printf 'FROM %s\nRUN cd /opt && md5sum rand.bin text.txt >/sums\n' "$P/faults/app:1" >"$b/Dockerfile"
for what in "$text 16" "$rand 4"; do
  set -- $what
  corrupt "/blobs/$1" "$2" 1
  st=$T/build-${1:7:12}
  rm -rf "$T/out"
  "$KILN" --root "$st" build --progress=quiet "$KILN_TLS_OFF" "${KILN_RETRY[@]}" -o "type=local,dest=$T/out" "$b" \
    >/dev/null 2>"$T/build.err" || fail "build after one damaged download of $1: $(cat "$T/build.err")"
  assert_eq 1 "$(proxy_stat .faults)" "faults injected into $1"
  assert_eq 2 "$(gets app "blobs/$1")" "GETs of the damaged layer $1"
  assert_eq "$want_sums" "$(cat "$T/out/sums")" "what the RUN sees after a retried layer $1"
  assert_eq 0 "$(find "$st/snapshots" -mindepth 1 -maxdepth 1 -name '.tmp-*' | wc -l)" "temp snapshot dirs"
  KILN_ROOT=$st store_clean
  KILN_ROOT=$st store_has_no_partial_blobs
done

# Byte 4 is the gzip header's MTIME (the stream still decodes: only the
# digest can tell); byte 16 is in the first deflate block's header, which
# then does not decode, long before the body ends (the digest of the whole
# body in the error shows the rest was still received and hashed); the
# middle of the text layer and the random layer's stored blocks fail the
# gzip CRC at the end.
for what in "$text 4" "$text 16" "$text $mid" "$rand $((1 << 20))"; do
  set -- $what
  note "layer $1 damaged at byte $2 on every download: digest mismatch naming both digests and the registry"
  got=$(flipped "$1" "$2")
  corrupt "/blobs/$1" "$2" -1
  st=$T/always-${1:7:12}-$2
  expect_fail pull "$st" "$P/faults/app:1"
  echo "$ERR"
  assert_eq 2 "$(gets app "blobs/$1")" "GETs of the layer damaged every time (one retry)"
  assert_contains "$ERR" "blob \`$1\`: digest mismatch: got \`$got\` from registry \`$P\`" "the error"
  assert_contains "$ERR" "downloaded twice" "the error says it was retried"
  [ "$2" != 16 ] || assert_match "$ERR" "not valid gzip: invalid" "the error says decoding failed first"
  clean_after_failure "$st" "$1"
done

note "config damaged once: fetched again; every time: digest mismatch"
corrupt "/blobs/$config" 10 1
st=$T/config-once
pull "$st" "$P/faults/app:1" >/dev/null 2>"$T/c.err" || fail "pull after one damaged config: $(cat "$T/c.err")"
assert_eq 2 "$(gets app "blobs/$config")" "GETs of the config"
assert_eq "$digest" "$(KILN_ROOT=$st kiln_manifest_digest "$P/faults/app:1")" "manifest digest"
KILN_ROOT=$st store_clean
got=$(flipped "$config" 10)
corrupt "/blobs/$config" 10 -1
st=$T/config-always
expect_fail pull "$st" "$P/faults/app:1"
assert_contains "$ERR" "config \`$config\`: digest mismatch: got \`$got\` from registry \`$P\`" "the error"
assert_eq 2 "$(gets app "blobs/$config")" "GETs of the config damaged every time"
clean_after_failure "$st" "$config"

note "manifest pulled by digest, damaged once: fetched again; every time: digest mismatch"
corrupt "/manifests/$digest" 10 1
st=$T/manifest-once
pull "$st" "$P/faults/app@$digest" >/dev/null 2>"$T/m.err" || fail "pull after one damaged manifest: $(cat "$T/m.err")"
assert_eq 2 "$(gets app "manifests/$digest")" "GETs of the manifest"
KILN_ROOT=$st store_clean
got=$(flipped "$digest" 10)
corrupt "/manifests/$digest" 10 -1
st=$T/manifest-always
expect_fail pull "$st" "$P/faults/app@$digest"
assert_contains "$ERR" "manifest \`$digest\`: digest mismatch: got \`$got\` from registry \`$P\`" "the error"
assert_eq 2 "$(gets app "manifests/$digest")" "GETs of the manifest damaged every time"
clean_after_failure "$st" "$digest"

note "a layer that is broken gzip although its bytes match its digest: said so, no retry"
# The text layer with one bit flipped in the middle, pushed under its own
# (matching) digest as faults/broken:1, the config unchanged.
bad=$T/broken.gz
cp "$KILN_ROOT/blobs/sha256/${text#sha256:}" "$bad"
python3 -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 1]))' "$bad" "$mid"
broken=sha256:$(sha256sum "$bad" | cut -d' ' -f1)
put_blob() {   # FILE: monolithic upload into faults/broken
  local d loc
  d=sha256:$(sha256sum "$1" | cut -d' ' -f1)
  loc=$(curl -fsS -X POST -D - -o /dev/null "$REG_URL/v2/faults/broken/blobs/uploads/" | tr -d '\r' |
    sed -n 's/^[Ll]ocation: //p')
  case $loc in http*) ;; *) loc=$REG_URL$loc ;; esac
  case $loc in *\?*) loc="$loc&digest=$d" ;; *) loc="$loc?digest=$d" ;; esac
  curl -fsS -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$1" "$loc" >/dev/null ||
    fail "upload of $1"
}
for l in "${layers[0]}" "$rand" "$config"; do put_blob "$KILN_ROOT/blobs/sha256/${l#sha256:}"; done
put_blob "$bad"
kiln inspect localhost/faults/app:1 | jq -c --arg d "$broken" '.manifest | .layers[2].digest = $d' >"$T/broken.json"
mt=$(jq -r '.mediaType // "application/vnd.oci.image.manifest.v1+json"' "$T/broken.json")
curl -fsS -X PUT -H "Content-Type: $mt" --data-binary "@$T/broken.json" "$REG_URL/v2/faults/broken/manifests/1" >/dev/null ||
  fail "push of the broken manifest"
proxy_reset
proxy_rules '[]'
st=$T/broken
expect_fail pull "$st" "$P/faults/broken:1"
echo "$ERR"
assert_eq 1 "$(gets broken "blobs/$broken")" "GETs of a layer whose bytes match (no retry)"
assert_contains "$ERR" "$broken" "the error names the layer"
assert_contains "$ERR" "not valid gzip" "the error"
assert_contains "$ERR" "the bytes match the digest: the image in registry \`$P\` is broken" "the error"
assert_not_contains "$ERR" "digest mismatch" "the error"
assert_absent "$st/blobs/sha256/${broken#sha256:}"
KILN_ROOT=$st store_clean
KILN_ROOT=$st store_has_no_partial_blobs
