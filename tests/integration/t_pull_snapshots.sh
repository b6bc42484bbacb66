#!/bin/bash
# A build FROM a registry image with a RUN: each base layer is extracted into
# its snapshot while it downloads (one GET per layer, the blob stored and
# verified on the way), and the RUN sees exactly the image a store that
# built the base itself sees (whiteouts, opaque dirs, symlinks, modes, zstd
# layers too; that store's snapshot of the base's RUN layer is the RUN's
# upper dir kept, the pulled store's is extracted from the layer).  A download resumed after a reset still streams.  A corrupted
# layer fails the build naming the layer and the registry, and leaves no
# snapshot and no blob of it; the store still checks.  A second build on
# the same store reuses the snapshots: no GET, no extraction.  A build with
# no RUN extracts nothing.
# it-timeout: 300
source "$IT_DIR/lib.sh"
source "$IT_DIR/registry_env.sh"
reg_need

reg_start_http plain
proxy_start "$REG_URL"
P=$PROXY_HOST
MiB=$((1024 * 1024))
make_busybox_base

note "the base: busybox, a 4 MiB random file, 300 text files, a RUN with whiteouts and an opaque dir"
b=$T/base
mkdir -p "$b/text"
head -c $((4 * MiB)) /dev/urandom >"$b/rand.bin"
for d in 1 2 3; do
  mkdir -p "$b/text/d$d"
  for i in $(seq 1 100); do seq "$i" $((i * 40)) >"$b/text/d$d/f$i.txt"; done
done
cat >"$b/Dockerfile" <<'EOF'
FROM localhost/busybox:latest
COPY rand.bin /opt/rand.bin
COPY text/ /opt/text/
RUN rm /etc/group /opt/text/d2/f7.txt && rm -rf /opt/text/d1 && mkdir /opt/text/d1 \
 && echo new >/opt/text/d1/new && ln -s ../rand.bin /opt/text/link && chmod 0700 /opt/text/d3 \
 && mkdir -p /opt/empty && chown 1000:1000 /opt/text/d3/f9.txt
EOF
kiln build --progress=quiet -t localhost/it/base:1 "$b" >/dev/null
kiln push "$KILN_TLS_OFF" localhost/it/base:1 "$REG_HOST/it/base:1" >/dev/null
kiln build --progress=quiet --compression zstd -t localhost/it/zbase:1 "$b" >/dev/null
kiln push "$KILN_TLS_OFF" localhost/it/zbase:1 "$REG_HOST/it/zbase:1" >/dev/null
mapfile -t layers < <(kiln_layer_digests localhost/it/base:1)
assert_eq 4 "${#layers[@]}" "layers of the base"

# check_ctx IMAGE: a context whose RUN lists what the image has (names,
# types and modes, owners, sizes, mtimes, link targets, contents) into
# /manifest.txt.
check_ctx() {
  local c=$T/check-${1//[^a-z0-9]/_}
  mkdir -p "$c"
  cat >"$c/Dockerfile" <<EOF
FROM $1
RUN (find /opt /bin /root /home | sort | xargs stat -c '%n %f %u:%g %s %Y %N'; ls /etc; \\
     find /opt -type f | sort | xargs md5sum) >/manifest.txt
EOF
  echo "$c"
}
# manifest_of STORE IMAGE [BUILD FLAGS...]: build the check on IMAGE in
# STORE, print its /manifest.txt.  The build's stderr (with --debug) is kept
# in $T/debug.log.
manifest_of() {
  local st=$1 img=$2 out=$T/out.$RANDOM c
  shift 2
  c=$(check_ctx "$img")
  "$KILN" --root "$st" --debug build --progress=quiet "$KILN_TLS_OFF" "${KILN_RETRY[@]}" "$@" \
    -o "type=local,dest=$out" "$c" >/dev/null 2>"$T/debug.log" || { cat "$T/debug.log" >&2; fail "check build of $img in $st"; }
  cat "$out/manifest.txt"
}
want=$(manifest_of "$KILN_ROOT" localhost/it/base:1)
assert_contains "$want" "/opt/text/d1/new " "the reference manifest"
assert_not_contains "$want" "/opt/text/d2/f7.txt " "the reference manifest"

note "fresh store: every layer streams into its snapshot, one GET each"
proxy_reset
got=$(manifest_of "$T/s1" "$P/it/base:1")
assert_eq "$want" "$got" "what the RUN sees of the pulled base"
assert_eq 4 "$(grep -c 'extracted while it downloaded' "$T/debug.log")" "layers streamed into snapshots; log: $(cat "$T/debug.log")"
assert_eq 0 "$(grep -c 'extracted from its blob' "$T/debug.log")" "snapshots read back from blobs"
for l in "${layers[@]}"; do
  assert_eq 1 "$(grep -c "^GET /v2/it/base/blobs/$l 200" "$PROXY_LOG")" "GETs of layer $l"
  assert_file "$T/s1/blobs/sha256/${l#sha256:}"
done
# the base's four, and the check RUN's upper dir kept as its layer's snapshot
assert_eq 5 "$(find "$T/s1/snapshots" -mindepth 1 -maxdepth 1 -type d ! -name '.tmp-*' | wc -l)" "snapshots"
assert_eq 0 "$(find "$T/s1/snapshots" -mindepth 1 -maxdepth 1 -name '.tmp-*' | wc -l)" "temp snapshot dirs"
KILN_ROOT=$T/s1 store_clean
KILN_ROOT=$T/s1 store_has_no_partial_blobs

note "second build (--no-cache: the RUN runs again) on the same store: the snapshots are reused, nothing is downloaded or extracted"
ls -i "$T/s1/snapshots" >"$T/snaps.before"
proxy_reset
got=$(manifest_of "$T/s1" "$P/it/base:1" --no-cache)
assert_eq "$want" "$got" "what the second build's RUN sees"
assert_eq 0 "$(proxy_stat '.classes.blob_download.requests // 0')" "blob GETs of the second build"
assert_eq 0 "$(grep -c 'extracted' "$T/debug.log")" "extractions in the second build"
ls -i "$T/s1/snapshots" >"$T/snaps.after"
# the RUN ran again and its upper dir may be one more snapshot; none of the
# first build's was touched
assert_eq "" "$(comm -23 <(sort "$T/snaps.before") <(sort "$T/snaps.after"))" "snapshot dirs of the first build (names and inodes)"

note "zstd layers stream too"
want_z=$(manifest_of "$KILN_ROOT" localhost/it/zbase:1)
got=$(manifest_of "$T/s2" "$P/it/zbase:1")
assert_eq "$want_z" "$got" "what the RUN sees of the zstd base"
assert_eq 4 "$(grep -c 'extracted while it downloaded' "$T/debug.log")" "zstd layers streamed"

note "a download reset 1 MiB into the random layer resumes with Range and still streams"
big=${layers[1]}
proxy_reset
proxy_rules "[{\"method\": \"GET\", \"path\": \"/blobs/$big\", \"action\": \"reset\", \"after\": $MiB}]"
got=$(manifest_of "$T/s3" "$P/it/base:1")
assert_eq 1 "$(proxy_stat .faults)" "faults injected"
assert_eq "$want" "$got" "what the RUN sees after a resumed download"
grep -q "^GET /v2/it/base/blobs/$big 206 range=bytes=" "$PROXY_LOG" || fail "no Range request: $(cat "$PROXY_LOG")"
assert_eq 4 "$(grep -c 'extracted while it downloaded' "$T/debug.log")" "layers streamed with a resume"
KILN_ROOT=$T/s3 store_clean

# Offset 4 is the gzip MTIME: the layer inflates and extracts completely and
# only the digest says it is wrong, after the extraction ended; offset 2 MiB
# breaks the stored block's CRC while it is extracted.
for off in 4 $((2 * MiB)); do
  note "one corrupted byte at $off of the random layer: the build fails, nothing of the layer is kept"
  st=$T/bad$off
  proxy_reset
  proxy_rules "[{\"method\": \"GET\", \"path\": \"/blobs/$big\", \"action\": \"corrupt\", \"offset\": $off, \"times\": -1}]"
  c=$(check_ctx "$P/it/base:1")
  expect_fail "$KILN" --root "$st" build --progress=quiet "$KILN_TLS_OFF" "${KILN_RETRY[@]}" "$c"
  [ "$(proxy_stat .faults)" -ge 1 ] || fail "the corruption was never injected"
  assert_contains "$ERR" "$big" "the error names the layer"
  assert_contains "$ERR" "$P/it/base" "the error names the registry and repository"
  [ "$off" != 4 ] || assert_match "$ERR" '[Dd]igest' "a wrong digest is called so"
  assert_absent "$st/blobs/sha256/${big#sha256:}"
  assert_eq 0 "$(find "$st/snapshots" -mindepth 1 -maxdepth 1 -name '.tmp-*' 2>/dev/null | wc -l)" "temp snapshot dirs left"
  # the other layers may have finished: each snapshot left is one whose blob verified
  for s in $(find "$st/snapshots" -mindepth 1 -maxdepth 1 -type d 2>/dev/null); do
    [ -f "$s/opt/rand.bin" ] && fail "a snapshot of the corrupted layer was committed: $s"
  done
  KILN_ROOT=$st store_clean
  KILN_ROOT=$st store_has_no_partial_blobs
done

note "no RUN: the pull extracts nothing"
c=$T/norun
mkdir -p "$c"
printf 'FROM %s\nCOPY Dockerfile /df\n' "$P/it/base:1" >"$c/Dockerfile"
proxy_reset
proxy_rules '[]'
"$KILN" --root "$T/s4" --debug build --progress=quiet "$KILN_TLS_OFF" "$c" >/dev/null 2>"$T/debug.log"
assert_eq 0 "$(grep -c 'extracted' "$T/debug.log")" "extractions without a RUN"
assert_eq 0 "$(find "$T/s4/snapshots" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)" "snapshots without a RUN"
