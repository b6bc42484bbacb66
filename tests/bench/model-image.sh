#!/bin/bash
# tests/bench/model-image.sh - the model-image figures of issue 6, kiln against
# buildah and the machine's own bounds, in one invocation (make bench).
#
#   tests/bench/model-image.sh KILN_BIN
#
# The context (model_gen.py, seeded): 1 GiB of incompressible weights, 256 MiB
# of compressible text, about 200 small app files, and a Dockerfile `FROM` an
# offline busybox base (Debian's busybox-static, one gzip layer put together
# here) in a throwaway docker-registry on 127.0.0.1; ENV, WORKDIR, COPY
# weights/, RUN, COPY app/, CMD.
#
# 1. Both builders, RUNS runs of every scenario, buildah first:
#    a_cold_nobase          empty store, base not present: build (pull included)
#    b_rebuild_nochange     build of the unchanged context
#    c_rebuild_smallchange  a line appended to app/lib/mod-0001.txt, build
#    d_push_first           registry wiped and the base pushed again; push
#    e_push_after_change    a line appended, build (untimed); push to the same tag
#    f_export_oci           export to a new OCI layout (`kiln save --format oci`,
#                           `buildah push oci:`); run 1's export is checked: one
#                           layer holds models/model.bin byte for byte
#    g_fresh_runner_cache   untimed: registry wiped + base, empty store, build
#                           with --cache-to the registry, push v1, empty store;
#                           timed: build with --cache-from + push v2 (a CI runner
#                           with nothing local); the notes say whether v2 = v1
#    kiln's a_cold_nobase again with --compression zstd.
#    Registry bytes added by d, e and g are recorded per run.
#    buildah 1.28: bud --layers, overlay, --isolation chroot, its own --root
#    wiped before the cold builds and at the end, push with --tls-verify=false.
# 2. The machine's bounds on the same weights directory: tar | sha256;
#    tar | tee(sha256) | igzip -1 | sha256 (gzip) and the same with zstd -1 -T0
#    (kiln's zstd level). sha256 is openssl's (SHA-NI, as kiln's libcrypto).
# 3. The push bound: the config and layers of kiln's image uploaded one after
#    the other with plain curl (POST, one monolithic PUT each) and its
#    manifest, against `kiln push` of that image, each into an empty registry.
# 4. Peak RSS: the largest of every kiln run above, and (BENCH_4G=1) a cold
#    build of the same context with BIG_WEIGHTS_MB of weights.
# Every run: sync before, /usr/bin/time for its peak RSS, page cache warm.
# Prints one line per run, then the markdown table of figures, ratios, targets
# and verdicts, the scenario table and the bounds (also in BENCH_OUT/summary.md).
#
# Env: RUNS (3), BENCH_OUT (/tmp/kiln-bench), SEED (6), WEIGHTS_MB (1024),
#      TEXT_MB (256), APP_FILES (200), BENCH_4G (1), BIG_WEIGHTS_MB (4096),
#      BENCH_PORT (5011, the registry's port), KEEP (0; 1 keeps contexts and
#      stores), SUMMARY_ONLY=1 (print the tables of an earlier run again).
# Small sizes for a quick try: WEIGHTS_MB=64 TEXT_MB=16 BIG_WEIGHTS_MB=128 RUNS=1
set -euo pipefail

KILN_BIN=$(realpath -e "${1:?usage: model-image.sh KILN_BIN}")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${BENCH_OUT:-/tmp/kiln-bench}
RUNS=${RUNS:-3}
SEED=${SEED:-6}
WEIGHTS_MB=${WEIGHTS_MB:-1024}
TEXT_MB=${TEXT_MB:-256}
APP_FILES=${APP_FILES:-200}
BENCH_4G=${BENCH_4G:-1}
BIG_WEIGHTS_MB=${BIG_WEIGHTS_MB:-4096}
PORT=${BENCH_PORT:-5011}
KEEP=${KEEP:-0}
REG=127.0.0.1:$PORT
TS=1700000000
TSV=$OUT/runs.tsv
LOG=$OUT/log
NOTES=$OUT/notes
REGBYTES=$OUT/regbytes.tsv

# shellcheck source=tests/bench/lib.sh
. "$HERE/lib.sh"
KSTORE=$OUT/kiln
BSTATE=$OUT/buildah
REG_DIR=$OUT/registry
CTX=$OUT/ctx
BASE_REF=$REG/bench/base:1
TAG=bench/model:latest
REF=$REG/bench/model:v1
REF2=$REG/bench/model:v2
CACHE_REF=$REG/bench/model-cache
KILN_FLAGS=
export KILN_BIN KSTORE BSTATE REG CTX TAG REF2 CACHE_REF KILN_FLAGS
SCENARIOS="a_cold_nobase b_rebuild_nochange c_rebuild_smallchange d_push_first e_push_after_change f_export_oci g_fresh_runner_cache"

# ---------------------------------------------------------------- builders
# the same operations for both, NAME_kiln and NAME_buildah; exported for the
# timed `bash -c`. KILN_FLAGS is split on purpose (empty, or a flag and its value).
# shellcheck disable=SC2086
build_kiln() { kiln_build $KILN_FLAGS -t "$TAG" "$CTX"; }
build_buildah() { bh_build -t "$TAG" "$CTX"; }
push_kiln() { kiln push --tls-verify=false "$TAG" "$1"; }
push_buildah() { bh push --quiet --tls-verify=false "$TAG" "docker://$1"; }
export_kiln() { kiln save --format oci -o "$1" "$TAG"; }
export_buildah() { bh push --quiet "$TAG" "oci:$1:latest"; }
# buildah 1.28 takes the cache's repository alone; both need --layers
# shellcheck disable=SC2086
cacheto_kiln() { kiln_build $KILN_FLAGS --cache-to "type=registry,ref=$CACHE_REF" -t "$TAG" "$CTX"; }
cacheto_buildah() { bh_build --cache-to "$CACHE_REF" -t "$TAG" "$CTX"; }
# shellcheck disable=SC2086
ci_kiln() { kiln_build $KILN_FLAGS --cache-from "type=registry,ref=$CACHE_REF" -t "$TAG" "$CTX" && push_kiln "$REF2"; }
ci_buildah() { bh_build --cache-from "$CACHE_REF" -t "$TAG" "$CTX" && push_buildah "$REF2"; }
reset_kiln() { kiln_reset; }
reset_buildah() { bh_reset; }
export -f build_kiln build_buildah push_kiln push_buildah export_kiln export_buildah \
  cacheto_kiln cacheto_buildah ci_kiln ci_buildah

# ---------------------------------------------------------------- helpers
# an empty registry with only the base image in it
reseed() { registry_wipe && push_oci "$OUT/base-oci" "$BASE_REF"; }
change_app() { echo "# change $(date +%s%N)" >>"$CTX/app/lib/mod-0001.txt"; }
# measure_reg NAME RUN CMD...: measure, and the registry bytes CMD added
measure_reg() {
  local b0 b1
  b0=$(registry_bytes)
  measure "$@"
  b1=$(registry_bytes)
  printf '%s\t%s\t%s\n' "$1" "$2" $((b1 - b0)) >>"$REGBYTES"
}
# manifest_digest TAG: the digest of bench/model:TAG in the registry, or none
manifest_digest() {
  curl -fsS -o /dev/null -I -w '%header{docker-content-digest}' \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$REG/v2/bench/model/manifests/$1" 2>/dev/null || echo none
}
# check_export B DIR: does one layer of the exported image hold the context's
# models/model.bin byte for byte? (the fastest export is worthless if wrong)
check_export() {
  local b=$1 d=$2 want man l mt dec h found=
  want=$(sha256sum <"$CTX/weights/model.bin" | cut -d' ' -f1)
  man=$(jq -r '.manifests[0].digest' "$d/index.json" 2>/dev/null) || man=none
  if [ ! -f "$d/oci-layout" ] || [ ! -f "$d/blobs/sha256/${man#sha256:}" ]; then
    echo "f_export_oci $b: **not an OCI layout** ($d)" >>"$NOTES"
    return 1
  fi
  for l in $(jq -r '.layers[] | .mediaType + "=" + .digest' "$d/blobs/sha256/${man#sha256:}"); do
    mt=${l%%=*}; l=${l#*=}
    case $mt in *gzip) dec="pigz -dc" ;; *zstd) dec="zstd -dcq" ;; *) dec="cat" ;; esac
    h=$($dec <"$d/blobs/sha256/${l#sha256:}" | tar -xOf - --wildcards '*models/model.bin' 2>/dev/null |
      sha256sum | cut -d' ' -f1) || true
    [ "$h" != "$want" ] || found=$l
  done
  if [ -n "$found" ]; then
    echo "f_export_oci $b: models/model.bin in layer $found matches the context (sha256 $want)" >>"$NOTES"
  else
    echo "f_export_oci $b: **no layer holds the context's models/model.bin** (sha256 $want)" >>"$NOTES"
    return 1
  fi
}

# push_plan STORE MANIFEST_DIGEST: a script that uploads the image's config
# and layers with plain curl, one after the other (POST for an upload URL,
# one monolithic PUT ?digest=), then puts the manifest: the registry's own
# ingest cost for exactly the bytes `kiln push` sends.
push_plan() {
  local blobs=$1/blobs/sha256 dg=$2 man b
  man=$blobs/${dg#sha256:}
  cat <<EOF
#!/bin/bash
set -euo pipefail
# upload DIGEST FILE
upload() {
  local url
  url=\$(curl -fsS -o /dev/null -X POST -w '%header{location}' 'http://$REG/v2/bench/model/blobs/uploads/')
  case \$url in /*) url=http://$REG\$url ;; esac
  case \$url in *\\?*) url=\$url'&' ;; *) url=\$url'?' ;; esac
  curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' -T "\$2" "\${url}digest=\$1"
}
EOF
  for b in $(jq -r '.config.digest, .layers[].digest' "$man"); do
    echo "upload $b '$blobs/${b#sha256:}'"
  done
  echo "curl -fsS -o /dev/null -X PUT -H 'Content-Type: $(jq -r .mediaType "$man")' -T '$man' 'http://$REG/v2/bench/model/manifests/v1'"
}

# ---------------------------------------------------------------- 1. scenarios
builder_scenarios() {   # B: every scenario, RUNS runs each
  local b=$1 r d1 d2
  log "$b: every scenario, $RUNS runs each"
  untimed reseed
  for r in $(seq "$RUNS"); do
    "reset_$b"
    measure "a_cold_nobase_$b" "$r" "build_$b"
  done
  if [ "$(med "a_cold_nobase_$b")" = FAIL ] && ! untimed "build_$b"; then
    echo "$b: the build fails (log); its other scenarios were not run" >>"$NOTES"
    "reset_$b"
    return 0
  fi
  for r in $(seq "$RUNS"); do measure "b_rebuild_nochange_$b" "$r" "build_$b"; done
  for r in $(seq "$RUNS"); do
    change_app
    measure "c_rebuild_smallchange_$b" "$r" "build_$b"
  done
  for r in $(seq "$RUNS"); do
    untimed reseed
    measure_reg "d_push_first_$b" "$r" "push_$b" "$REF"
  done
  for r in $(seq "$RUNS"); do
    change_app
    if untimed "build_$b"; then
      measure_reg "e_push_after_change_$b" "$r" "push_$b" "$REF"
    else
      fail_run "e_push_after_change_$b" "$r" 98
    fi
  done
  for r in $(seq "$RUNS"); do
    rm -rf "$OUT/oci-export"
    measure "f_export_oci_$b" "$r" "export_$b" "$OUT/oci-export"
    if [ "$r" = 1 ]; then
      log "$b: checking the export"
      check_export "$b" "$OUT/oci-export" || fail_run "f_check_$b" 1 99
    fi
  done
  rm -rf "$OUT/oci-export"
  for r in $(seq "$RUNS"); do
    if ! { untimed reseed && untimed "reset_$b" && untimed "cacheto_$b" && untimed "push_$b" "$REF" &&
      untimed "reset_$b"; }; then
      echo "g_fresh_runner_cache $b run $r: the first runner's untimed part failed (log)" >>"$NOTES"
      fail_run "g_fresh_runner_cache_$b" "$r" 98
      continue
    fi
    measure_reg "g_fresh_runner_cache_$b" "$r" "ci_$b"
    d1=$(manifest_digest v1); d2=$(manifest_digest v2)
    if [ "$d1" = "$d2" ] && [ "$d1" != none ]; then
      echo "g_fresh_runner_cache $b run $r: v2 = v1 ($d1), the first runner's image byte for byte" >>"$NOTES"
    else
      echo "g_fresh_runner_cache $b run $r: v2 $d2 is not v1 $d1" >>"$NOTES"
    fi
  done
  "reset_$b"
}

zstd_cold() {
  log "kiln: cold build with --compression zstd, $RUNS runs"
  local r
  KSTORE=$OUT/kiln-zstd KILN_FLAGS="--compression zstd"
  untimed reseed
  for r in $(seq "$RUNS"); do
    kiln_reset
    measure a_cold_nobase_zstd_kiln "$r" build_kiln
  done
  kiln_reset
  KSTORE=$OUT/kiln KILN_FLAGS=
}

# ---------------------------------------------------------------- 2. bounds
bounds() {
  local r w="tar -C '$CTX' -cf - weights"
  log "bounds on the weights directory, $RUNS runs each"
  cat "$CTX"/weights/* >/dev/null   # warm, as for the builders
  for r in $(seq "$RUNS"); do
    measure bound_tar_sha256 "$r" bash -c "$w | openssl dgst -sha256 >/dev/null"
    measure bound_gzip "$r" bash -c "$w | tee >(openssl dgst -sha256 >/dev/null) | igzip -1 -c | openssl dgst -sha256 >/dev/null"
    measure bound_zstd "$r" bash -c "$w | tee >(openssl dgst -sha256 >/dev/null) | zstd -q -1 -T0 | openssl dgst -sha256 >/dev/null"
  done
  tar -C "$CTX" -cf - weights | wc -c >"$OUT/weights-tar-bytes"
}

# ---------------------------------------------------------------- 3. push bound
push_bound() {
  local r
  log "push: curl upload of the image's blobs against kiln push, empty registry every run"
  KSTORE=$OUT/kiln-push
  kiln_reset
  untimed reseed
  untimed kiln_build --iidfile "$OUT/push.iid" -t "$TAG" "$CTX"
  push_plan "$KSTORE" "$(cat "$OUT/push.iid")" >"$OUT/curl-push.sh"
  chmod +x "$OUT/curl-push.sh"
  for r in $(seq "$RUNS"); do
    untimed registry_wipe
    measure push_curl "$r" "$OUT/curl-push.sh"
    [ "$(manifest_digest v1)" = "$(cat "$OUT/push.iid")" ] || fail_run push_curl_check "$r" 99
    untimed registry_wipe
    measure push_kiln "$r" push_kiln "$REF"
    [ "$(manifest_digest v1)" = "$(cat "$OUT/push.iid")" ] || fail_run push_kiln_check "$r" 99
  done
  [ "$KEEP" = 1 ] || kiln_reset
  KSTORE=$OUT/kiln
}

# ---------------------------------------------------------------- 4. big weights
big_weights() {
  local ctx=$OUT/ctx-big
  log "kiln: cold build with $BIG_WEIGHTS_MB MiB of weights (peak RSS)"
  rm -rf "$ctx"
  python3 "$HERE/model_gen.py" "$ctx" --base "$BASE_REF" --seed "$SEED" \
    --weights-mb "$BIG_WEIGHTS_MB" --text-mb "$TEXT_MB" --app-files "$APP_FILES"
  untimed reseed
  KSTORE=$OUT/kiln-big
  kiln_reset
  measure big_cold_kiln 1 kiln_build -t bench/big "$ctx"
  [ "$KEEP" = 1 ] || { kiln_reset; rm -rf "$ctx"; }
  KSTORE=$OUT/kiln
}

# ---------------------------------------------------------------- summary
# the median registry bytes NAME's runs added
regbytes() {
  awk -F'\t' -v n="$1" '$1 == n { v[++k] = $3 } END { if (!k) { print "-"; exit }
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    print (k % 2) ? v[(k + 1) / 2] : int((v[k / 2] + v[k / 2 + 1]) / 2) }' "$REGBYTES" 2>/dev/null
}
mibps() {   # BYTES SECONDS
  if num "$2"; then awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / 1048576 / s }'; else echo "-"; fi
}

summary() {
  local b k rss big s
  echo
  echo "# issue 6 targets, all from this invocation ($(cat "$OUT/when"), $(cat "$OUT/versions"), RUNS=$RUNS)"
  echo
  echo "Context: weights ${WEIGHTS_MB} MiB incompressible + ${TEXT_MB} MiB text, ${APP_FILES} app files, seed $SEED."
  echo
  row "figure" "measured" "ratio" "target" "verdict"
  row "---" "---" "---" "---" "---"
  speedup "cold build, gzip" a_cold_nobase_buildah a_cold_nobase_kiln 5
  speedup "cold build, zstd" a_cold_nobase_buildah a_cold_nobase_zstd_kiln 8
  bound_row "first push: kiln push / curl upload of the same blobs" push_kiln push_curl 1.25
  b=$(med d_push_first_buildah); k=$(med d_push_first_kiln)
  row "first push in the comparison (d_push_first): buildah / kiln" "$(secs "$b") / $(secs "$k")" "$(ratio "$b" "$k")x" "" ""
  speedup "export to OCI layout" f_export_oci_buildah f_export_oci_kiln 10
  bound_row "cold build gzip / bound (tar+sha256+igzip -1+sha256)" a_cold_nobase_kiln bound_gzip 2
  bound_row "cold build zstd / bound (tar+sha256+zstd -1 -T0+sha256)" a_cold_nobase_zstd_kiln bound_zstd 2
  rss=$(awk -F'\t' '$1 ~ /kiln$/ && $1 !~ /^big_/ && $5 + 0 > m { m = $5 + 0 } END { print m + 0 }' "$TSV")
  rss_row "every kiln run above" "$rss"
  if grep -q '^big_cold_kiln' "$TSV"; then
    big=$(rss_max big_cold_kiln)
    rss_row "cold build with $BIG_WEIGHTS_MB MiB of weights ($(secs "$(med big_cold_kiln)"))" "$big"
  fi

  echo
  echo "Every scenario (medians of $RUNS runs; registry bytes: what kiln's timed call added, median):"
  echo
  echo "| scenario | buildah (s) | kiln (s) | kiln/buildah | speed-up | kiln registry bytes |"
  echo "|---|---:|---:|---:|---:|---:|"
  for s in $SCENARIOS; do
    b=$(med "${s}_buildah"); k=$(med "${s}_kiln")
    printf '| %s | %s | %s | %s | %s | %s |\n' "$s" "$b" "$k" "$(ratio "$k" "$b")" "$(ratio "$b" "$k")x" "$(regbytes "${s}_kiln")"
  done
  printf '| %s | %s | %s | %s | %s | %s |\n' "a_cold_nobase, kiln --compression zstd" "$(med a_cold_nobase_buildah)" \
    "$(med a_cold_nobase_zstd_kiln)" "$(ratio "$(med a_cold_nobase_zstd_kiln)" "$(med a_cold_nobase_buildah)")" \
    "$(ratio "$(med a_cold_nobase_buildah)" "$(med a_cold_nobase_zstd_kiln)")x" "-"

  local tb
  tb=$(cat "$OUT/weights-tar-bytes" 2>/dev/null || echo 0)
  echo
  echo "Bounds (medians of $RUNS runs; the weights directory as one tar, $tb bytes):"
  echo
  echo "| pipeline | seconds | MiB/s |"
  echo "|---|---:|---:|"
  printf '| tar + sha256 | %s | %s |\n' "$(med bound_tar_sha256)" "$(mibps "$tb" "$(med bound_tar_sha256)")"
  printf '| tar + sha256 + igzip -1 + sha256 (gzip bound) | %s | %s |\n' "$(med bound_gzip)" "$(mibps "$tb" "$(med bound_gzip)")"
  printf '| tar + sha256 + zstd -1 -T0 + sha256 (zstd bound) | %s | %s |\n' "$(med bound_zstd)" "$(mibps "$tb" "$(med bound_zstd)")"
  printf '| curl upload of kiln'"'"'s image, POST + monolithic PUT per blob | %s | |\n' "$(med push_curl)"

  if [ -s "$NOTES" ]; then
    echo
    echo "Checks:"
    echo
    sed 's/^/- /' "$NOTES"
  fi
  local fails
  fails=$(awk -F'\t' 'NR > 1 && $3 != 0 { printf "%s%s run %s (exit %s)", s, $1, $2, $3; s = ", " }' "$TSV")
  [ -z "$fails" ] || { echo; echo "Failed runs (messages in $LOG): $fails"; }
}

if [ "${SUMMARY_ONLY:-0}" = 1 ]; then
  # shellcheck disable=SC1091
  . "$OUT/sizes.env"
  summary
  exit 0
fi

for t in python3 jq curl pigz igzip zstd openssl skopeo docker-registry buildah /bin/busybox /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "model-image.sh: needs $t (make deps)" >&2; exit 2; }
done
wipe_dir "$OUT"
mkdir -p "$OUT"
: >"$LOG"
: >"$NOTES"
printf 'name\trun\trc\twall_s\tpeak_rss_kib\n' >"$TSV"
printf 'RUNS=%s\nSEED=%s\nWEIGHTS_MB=%s\nTEXT_MB=%s\nAPP_FILES=%s\nBIG_WEIGHTS_MB=%s\n' \
  "$RUNS" "$SEED" "$WEIGHTS_MB" "$TEXT_MB" "$APP_FILES" "$BIG_WEIGHTS_MB" >"$OUT/sizes.env"
date -u +%FT%TZ >"$OUT/when"
echo "$("$KILN_BIN" version | head -1), $(buildah --version | cut -d' ' -f1-3)" >"$OUT/versions"
cleanup() {
  registry_stop
  [ "$KEEP" = 1 ] && return 0
  local d
  for d in kiln kiln-zstd kiln-push kiln-big; do wipe_dir "$OUT/$d"; done
  bh_reset
  rm -rf "$OUT/registry" "$OUT/ctx" "$OUT/ctx-big" "$OUT/base-oci" "$OUT/base-rootfs" "$OUT/oci-export"
}
trap cleanup EXIT

log "context: $WEIGHTS_MB MiB weights, $TEXT_MB MiB text, $APP_FILES app files (seed $SEED); busybox base"
python3 "$HERE/model_gen.py" "$CTX" --base "$BASE_REF" --seed "$SEED" \
  --weights-mb "$WEIGHTS_MB" --text-mb "$TEXT_MB" --app-files "$APP_FILES"
busybox_rootfs "$OUT/base-rootfs"
base_oci "$OUT/base-oci" "$OUT/base-rootfs"
registry_start

builder_scenarios buildah
builder_scenarios kiln
zstd_cold
bounds
push_bound
[ "$BENCH_4G" != 1 ] || big_weights

summary | tee "$OUT/summary.md"
