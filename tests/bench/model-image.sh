#!/bin/bash
# tests/bench/model-image.sh - every figure issue 6 asks for, in one invocation.
#
#   tests/bench/model-image.sh KILN_BIN        (make bench)
#
# 1. ../shared/bench/compare.sh -f: buildah and kiln (gzip), all scenarios.
# 2. kiln's cold build again with --compression zstd (bench-builder.sh).
# 3. The machine's bounds on the same context: physical-limits.sh ("extra":
#    tar + sha256 + igzip -1 / zstd -3 + sha256), and the same pipeline with
#    zstd -1 (kiln's zstd level) timed here the same way.
# 4. The push bound: the blobs of kiln's image uploaded one by one with plain
#    curl (POST + monolithic PUT) to a fresh registry, against `kiln push` of
#    the same image to the same fresh registry (hyperfine, registry wiped
#    before every run).
# 5. Peak RSS: the largest of every kiln run above, and a cold build of the
#    model image with 4 GiB of weights (BENCH_4G=0 skips it).
# Prints the raw outputs, then one table of figures, ratios and targets.
# Env: RUNS (3), BENCH_DIR (../shared/bench), BENCH_OUT (/tmp/kiln-bench),
#      PUSH_PORT (5011, the registry of steps 4 and 5), BENCH_4G (1),
#      SUMMARY_ONLY=1 (only print the table of an earlier run in BENCH_OUT).
set -euo pipefail

KILN_BIN=$(realpath -e "${1:?usage: model-image.sh KILN_BIN}")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH=$(cd "${BENCH_DIR:-$HERE/../../../shared/bench}" && pwd)
OUT=${BENCH_OUT:-/tmp/kiln-bench}
RUNS=${RUNS:-3}
PUSH_PORT=${PUSH_PORT:-5011}
WORK=${WORK:-/tmp/bench-builder}
CTX=$WORK/ctx
export KILN_BIN WORK

for t in hyperfine jq curl openssl zstd igzip /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "model-image.sh: needs $t (make deps)" >&2; exit 2; }
done
log() { echo "=== $(date +%H:%M:%S) $*" >&2; }

# push_plan STORE MANIFEST_DIGEST REGISTRY: a bash script that uploads the
# image's config and layers with curl (POST, then one monolithic PUT each, in
# order, no parallelism) and puts the manifest: the registry's own ingest
# bound for exactly the bytes `kiln push` sends.
push_plan() {
  local st=$1 dg=$2 reg=$3 blobs=$1/blobs/sha256
  local man=$blobs/${dg#sha256:}
  echo '#!/bin/bash'
  echo 'set -euo pipefail'
  echo "up() { local loc; loc=\$(curl -fsS -o /dev/null -D - -X POST http://$reg/v2/bench/model/blobs/uploads/ | tr -d '\\r' | awk 'tolower(\$1)==\"location:\"{print \$2}')"
  echo "  case \$loc in http*) ;; *) loc=http://$reg\$loc ;; esac"
  echo "  case \$loc in *\\?*) loc=\$loc'&' ;; *) loc=\$loc'?' ;; esac"
  echo "  curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' -T \"\$2\" \"\${loc}digest=\$1\"; }"
  jq -r '[.config.digest] + [.layers[].digest] | .[]' "$man" | while read -r b; do
    echo "up $b '$blobs/${b#sha256:}'"
  done
  echo "curl -fsS -o /dev/null -X PUT -H 'Content-Type: $(jq -r .mediaType "$man")' -T '$man' http://$reg/v2/bench/model/manifests/v1"
}

# median SCENARIO FILE: the median of a bench-builder summary.tsv
median() { awk -v s="$1" '$1 == s { print $2 }' "$2"; }
# phys NAME: the median seconds of a physical-limits.sh row
phys() { awk -F'\t' -v n="$1" '$1 == n { print $3 }' "$OUT/physical.tsv"; }
# row WHAT FIGURE RATIO TARGET OK
row() { printf '| %s | %s | %s | %s | %s |\n' "$@"; }
check() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { ok = (op == "<=") ? v <= t : v >= t; print ok ? "met" : "**not met**" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

summary() {
  local bs=$OUT/compare/buildah/summary.tsv ks=$OUT/compare/kiln/summary.tsv
  local b_a k_a k_z b_f k_f b_d k_d g_bound z_bound curl kpush rss rss4g
  b_a=$(median a_cold_nobase "$bs"); k_a=$(median a_cold_nobase "$ks"); k_z=$(median a_cold_nobase "$OUT/zstd/kiln/summary.tsv")
  b_f=$(median f_export_oci "$bs"); k_f=$(median f_export_oci "$ks")
  b_d=$(median d_push_first "$bs"); k_d=$(median d_push_first "$ks")
  g_bound=$(phys tar_ossl+igzip-1_ossl); z_bound=$(phys tar_ossl+zstd-1-T0_ossl)
  curl=$(jq '.results[] | select(.command == "curl_upload") | .median * 1000 | round / 1000' "$OUT/push.json")
  kpush=$(jq '.results[] | select(.command == "kiln_push") | .median * 1000 | round / 1000' "$OUT/push.json")
  rss=$(awk -F'\t' 'FNR > 1 && $5 + 0 > m { m = $5 + 0 } END { print m }' "$OUT"/compare/kiln/runs.tsv "$OUT"/zstd/kiln/runs.tsv)
  echo
  echo "# issue 6 targets, all from this invocation ($(date -u +%FT%TZ), $("$KILN_BIN" version | head -1))"
  echo
  row "figure" "measured" "ratio" "target" "verdict"
  row "---" "---" "---" "---" "---"
  local sp; sp=$(ratio "$b_a" "$k_a")
  row "cold build, gzip: buildah / kiln" "$b_a s / $k_a s" "${sp}x" ">= 5x" "$(check "$sp" ">=" 5)"
  sp=$(ratio "$b_a" "$k_z")
  row "cold build, zstd: buildah / kiln" "$b_a s / $k_z s" "${sp}x" ">= 8x" "$(check "$sp" ">=" 8)"
  local r; r=$(ratio "$kpush" "$curl")
  row "first push: kiln push / curl upload of the same blobs" "$kpush s / $curl s" "$r" "<= 1.25" "$(check "$r" "<=" 1.25)"
  row "first push in the comparison (d_push_first): buildah / kiln" "$b_d s / $k_d s" "$(ratio "$b_d" "$k_d")x" "" ""
  sp=$(ratio "$b_f" "$k_f")
  row "export to OCI layout: buildah / kiln" "$b_f s / $k_f s" "${sp}x" ">= 10x" "$(check "$sp" ">=" 10)"
  r=$(ratio "$k_a" "$g_bound")
  row "cold build gzip / bound (tar+sha256+igzip -1+sha256)" "$k_a s / $g_bound s" "$r" "<= 2" "$(check "$r" "<=" 2)"
  r=$(ratio "$k_z" "$z_bound")
  row "cold build zstd / bound (tar+sha256+zstd -1 -T0+sha256)" "$k_z s / $z_bound s" "$r" "<= 2" "$(check "$r" "<=" 2)"
  row "peak RSS, every kiln run above" "$((rss / 1024)) MiB" "" "< 64 MiB" "$(check "$rss" "<=" 65535)"
  if [ -f "$OUT/rss4g.txt" ]; then
    read -r rss4g secs4g <"$OUT/rss4g.txt"
    row "peak RSS, cold build with 4 GiB of weights ($secs4g s)" "$((rss4g / 1024)) MiB" "" "< 64 MiB" "$(check "$rss4g" "<=" 65535)"
  fi
}

if [ "${SUMMARY_ONLY:-0}" = 1 ]; then   # print the table again from an earlier $OUT
  summary
  exit 0
fi
rm -rf "$OUT"
mkdir -p "$OUT"

log "1/5 buildah and kiln, all scenarios ($RUNS runs each)"
"$BENCH/compare.sh" -r "$RUNS" -f -o "$OUT/compare" | tee "$OUT/compare.txt"

log "2/5 kiln cold build with --compression zstd"
KILN_BUILD_FLAGS="--compression zstd" KILN_STATE=$OUT/kiln-zstd \
  "$BENCH/bench-builder.sh" -r "$RUNS" -s a_cold_nobase -o "$OUT/zstd" "$BENCH/adapters/kiln.sh" \
  | tee "$OUT/zstd.txt"

log "3/5 the machine's bounds on the same context"
SECTIONS="extra" RUNS=$RUNS SCRATCH=$OUT/phys "$BENCH/physical-limits.sh" "$CTX" "$OUT/physical.tsv" >&2
tar_bytes=$(tar -C "$CTX" -cf - weights | wc -c)
hyperfine --style basic --shell bash --runs "$RUNS" --export-json "$OUT/zstd1-bound.json" \
  "tar -C '$CTX' -cf - weights | tee >(openssl dgst -sha256 > /dev/null) | zstd -q -1 -T0 | openssl dgst -sha256 > /dev/null" >&2
jq -r --argjson b "$tar_bytes" '.results[0] | ["tar_ossl+zstd-1-T0_ossl", $b, (.median*1000|round/1000),
  (.min*1000|round/1000), (.max*1000|round/1000), (($b/1048576)/.median|.*10|round/10), ""] | @tsv' \
  "$OUT/zstd1-bound.json" >>"$OUT/physical.tsv"

log "4/5 push: plain curl uploads of the image's blobs against kiln push, fresh registry each run"
REG_STORE=$OUT/registry
export REGISTRY_RUNDIR=$OUT/registry-run
registry() { "$BENCH/registry.sh" "$1" "$PUSH_PORT" "$REG_STORE" >&2; }
trap '"$BENCH/registry.sh" stop "$PUSH_PORT" >/dev/null 2>&1 || true' EXIT
REG=127.0.0.1:$PUSH_PORT
seed_base() {   # the offline busybox base (make-base.sh's OCI copy) into the registry
  skopeo copy -q --dest-tls-verify=false oci:/tmp/bench-base-oci:1 "docker://$REG/base/busybox:1" >&2
}
registry wipe
seed_base
sed "s|^FROM .*|FROM $REG/base/busybox:1|" "$CTX/Dockerfile" >"$OUT/Dockerfile.push"
"$KILN_BIN" --root "$OUT/kiln-push" build --progress quiet --tls-verify=false -f "$OUT/Dockerfile.push" \
  --iidfile "$OUT/push.iid" -t bench/model:latest "$CTX" >&2
push_plan "$OUT/kiln-push" "$(cat "$OUT/push.iid")" "$REG" >"$OUT/curl-push.sh"
chmod +x "$OUT/curl-push.sh"
wipe="'$BENCH/registry.sh' wipe $PUSH_PORT '$REG_STORE' >/dev/null; sync"
hyperfine --style basic --runs "$RUNS" --export-json "$OUT/push.json" --prepare "$wipe" \
  -n curl_upload "$OUT/curl-push.sh" \
  -n kiln_push "'$KILN_BIN' --root '$OUT/kiln-push' push --tls-verify=false bench/model:latest $REG/bench/model:v1" >&2
skopeo inspect --tls-verify=false "docker://$REG/bench/model:v1" >/dev/null   # the last push is complete

if [ "${BENCH_4G:-1}" = 1 ]; then
  log "5/5 cold build of the model image with 4 GiB of weights: peak RSS"
  registry wipe
  seed_base
  WEIGHTS_MB=4096 BASE_REF=$REG/base/busybox:1 "$BENCH/make-context.sh" "$OUT/ctx4g" >&2
  /usr/bin/time -f '%M %e' -o "$OUT/rss4g.txt" "$KILN_BIN" --root "$OUT/kiln-4g" build --progress quiet \
    --tls-verify=false -t bench/m4g "$OUT/ctx4g" >&2
  rm -rf "$OUT/ctx4g" "$OUT/kiln-4g"
fi

summary
