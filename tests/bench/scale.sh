#!/bin/bash
# tests/bench/scale.sh - the scale scenarios of issue 11, kiln against buildah
# in one invocation (make bench-scale; make bench runs it after model-image.sh).
#
#   tests/bench/scale.sh KILN_BIN
#
# i_many_files  a context of FILES (100,000) files of 1-8 KiB under app/, six
#               directories deep (scale_gen.py tree, seeded), Dockerfile
#               `FROM scratch` / `COPY app/ /app/`: cold build (empty store),
#               no-change rebuild, rebuild after appending a line to one file,
#               cold build with a .dockerignore that excludes the .txt half.
#               Then FILES_1M (1,000,000) files: kiln's cold build once, then
#               its no-change rebuild; buildah only with BENCH_1M_BUILDAH=1.
#               Each 1M-file build is stopped after I1M_TIMEOUT s (exit 124);
#               when the cold build fails, the rebuilds are not run, and the
#               first failed rebuild ends the series.
# h_big_base    a BASE_MB (2048) MiB base in BASE_LAYERS (8) layers (busybox,
#               then random and text data, many files; scale_gen.py layer),
#               pushed to a local registry. Timed, with an empty store every
#               run: `FROM base` + `RUN echo hi > /x` + push to the base's
#               repository. Bound, same run: every layer fetched from the
#               registry, decompressed and extracted, all layers in parallel
#               (curl | igzip -d | tar -x).
# j_run_many_files  a J_BASE_MB (1024) MiB base with 2 x J_DEL (2 x 5,000)
#               small files; base pulled and unpacked beforehand (untimed
#               warm-up build); timed: a build whose RUN creates J_NEW (50,000)
#               files and deletes J_DEL base files (the RUN text changes every
#               run, so the step always runs): the RUN, its diff and the layer.
# Every kiln run is timed with /usr/bin/time for its peak RSS. buildah 1.28:
# `bud --layers`, overlay, --isolation chroot, its own --root, wiped per
# scenario. Prints one line per run, then one markdown table of medians,
# ratios, targets and verdicts.
#
# Env: RUNS (3), SCENARIOS ("i h j"), BENCH_OUT (/tmp/kiln-scale), SEED (11),
#      FILES (100000), FILES_1M (1000000; 0 skips), BENCH_1M_BUILDAH (0),
#      I1M_TIMEOUT (1800),
#      BASE_MB (2048), BASE_LAYERS (8), J_BASE_MB (1024), J_NEW (50000),
#      J_DEL (5000), BUILDAH (1; 0 = kiln only), SCALE_PORT (5012, the
#      registry's port), KEEP (0; 1 keeps contexts and stores),
#      SUMMARY_ONLY=1 (print the table of an earlier run in BENCH_OUT).
# Small sizes for a quick try: FILES=20000 FILES_1M=0 BASE_MB=256 J_BASE_MB=128 J_NEW=5000 J_DEL=500 RUNS=1
set -euo pipefail

KILN_BIN=$(realpath -e "${1:?usage: scale.sh KILN_BIN}")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GEN=$HERE/scale_gen.py
OUT=${BENCH_OUT:-/tmp/kiln-scale}
RUNS=${RUNS:-3}
SCENARIOS=${SCENARIOS:-i h j}
SEED=${SEED:-11}
FILES=${FILES:-100000}
FILES_1M=${FILES_1M:-1000000}
BENCH_1M_BUILDAH=${BENCH_1M_BUILDAH:-0}
I1M_TIMEOUT=${I1M_TIMEOUT:-1800}
BASE_MB=${BASE_MB:-2048}
BASE_LAYERS=${BASE_LAYERS:-8}
J_BASE_MB=${J_BASE_MB:-1024}
J_NEW=${J_NEW:-50000}
J_DEL=${J_DEL:-5000}
BUILDAH=${BUILDAH:-1}
PORT=${SCALE_PORT:-5012}
KEEP=${KEEP:-0}
REG=127.0.0.1:$PORT
TS=1700000000
TSV=$OUT/runs.tsv
LOG=$OUT/log

log() { echo "=== $(date +%H:%M:%S) $*" >&2; }

# ---------------------------------------------------------------- timing
# measure NAME RUN CMD...: sync, run CMD (output to the log), append
# "NAME RUN RC WALL_S PEAK_RSS_KIB" to runs.tsv. Never fails: a failed run is
# a row with its exit status, and the log keeps the command's message. With
# TIMEOUT=S in its environment CMD is stopped after S seconds (exit 124).
measure() {
  local name=$1 run=$2 t0 t1 rc=0 rss wall tf=$OUT/time.out lim=()
  shift 2
  [ -z "${TIMEOUT:-}" ] || lim=(timeout -k 10 "$TIMEOUT")
  sync
  echo "=== $name run $run: $*" >>"$LOG"
  t0=$(date +%s.%N)
  # bash -c: CMD may be one of the exported functions below; time's %M is
  # the largest RSS of the processes it waited for, i.e. the builder's
  /usr/bin/time -f '%M' -o "$tf" "${lim[@]}" bash -c '"$@"' _ "$@" >>"$LOG" 2>&1 </dev/null || rc=$?
  t1=$(date +%s.%N)
  rss=$(tail -1 "$tf" 2>/dev/null || echo 0)
  case $rss in '' | *[!0-9]*) rss=0 ;; esac
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$run" "$rc" "$wall" "$rss" >>"$TSV"
  echo "  $name run $run: rc=$rc wall=${wall}s peak_rss=${rss}KiB" >&2
  if [ "$rc" != 0 ]; then
    echo "  $name run $run FAILED (exit $rc); last lines of $LOG:" >&2
    tail -4 "$LOG" | sed 's/^/    /' >&2
  fi
}
# untimed CMD...: set-up work, output to the log, failure is fatal
untimed() { echo "--- $*" >>"$LOG"; "$@" >>"$LOG" 2>&1 </dev/null; }

# the median wall time of NAME's runs; FAIL if one failed, NA if none ran
med() {
  awk -F'\t' -v n="$1" '$1 == n { if ($3 != 0) f = 1; v[++k] = $4 }
    END { if (f) { print "FAIL"; exit } if (!k) { print "NA"; exit }
          for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
          print (k % 2) ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2 }' "$TSV"
}
# the largest peak RSS (KiB) of the kiln runs whose name starts with PREFIX
rss_max() { awk -F'\t' -v p="$1" 'index($1, p) == 1 && $1 ~ /kiln/ && $5 + 0 > m { m = $5 + 0 } END { print m + 0 }' "$TSV"; }

# ---------------------------------------------------------------- builders
kiln() { "$KILN_BIN" --root "$KSTORE" "$@"; }
kiln_build() { kiln build --progress quiet --tls-verify=false "$@"; }
BSTATE=$OUT/buildah
bh() { buildah --root "$BSTATE/root" --runroot "$BSTATE/runroot" --storage-driver overlay "$@"; }
bh_build() { bh bud --layers --quiet --tls-verify=false --isolation chroot "$@"; }
# unmount whatever a builder left mounted under DIR, then delete DIR
wipe_dir() {
  local m
  for m in $(awk -v p="$1/" 'index($2, p) == 1 { print $2 }' /proc/self/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$1"
}
kiln_reset() { wipe_dir "$KSTORE"; }
bh_reset() {
  if [ -d "$BSTATE/root" ]; then
    bh rm --all >/dev/null 2>&1 || true
    bh rmi --all --force >/dev/null 2>&1 || true
  fi
  wipe_dir "$BSTATE"
}
# exported for the `bash -c` of timed commands that are more than one call
KSTORE=$OUT/kiln   # each scenario sets its own
export KILN_BIN KSTORE BSTATE REG
export -f kiln kiln_build bh bh_build

# ---------------------------------------------------------------- registry
# A throwaway CNCF distribution (Debian docker-registry) on 127.0.0.1:PORT,
# own storage; stopped (its own pid only) and deleted at exit.
REG_DIR=$OUT/registry
REG_PID=
registry_start() {
  if curl -fsS -o /dev/null --max-time 2 "http://$REG/v2/" 2>/dev/null; then
    echo "scale.sh: something already answers on $REG; set SCALE_PORT" >&2
    return 1
  fi
  mkdir -p "$REG_DIR/data"
  cat >"$REG_DIR/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $REG_DIR/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $REG
EOF
  setsid docker-registry serve "$REG_DIR/config.yml" >"$REG_DIR/log" 2>&1 </dev/null &
  REG_PID=$!
  for _ in $(seq 100); do
    curl -fsS -o /dev/null "http://$REG/v2/" 2>/dev/null && return 0
    kill -0 "$REG_PID" 2>/dev/null || { cat "$REG_DIR/log" >&2; return 1; }
    sleep 0.1
  done
  echo "scale.sh: the registry did not answer on $REG" >&2
  return 1
}
registry_stop() {
  [ -n "$REG_PID" ] || return 0
  kill "$REG_PID" 2>/dev/null || true
  wait "$REG_PID" 2>/dev/null || true
  REG_PID=
}

# ---------------------------------------------------------------- base images
# tar_layer SRC OCI: SRC's files as one gzip layer blob of the OCI layout OCI
# (fixed owner and mtimes, sorted), printed as "DIGEST DIFF_ID SIZE".
tar_layer() {
  local src=$1 oci=$2 tmp=$2/blob.tmp dg di
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@$TS -C "$src" -cf - . \
    | pigz -1 -n >"$tmp"
  dg=$(sha256sum "$tmp" | cut -d' ' -f1)
  di=$(pigz -dc "$tmp" | sha256sum | cut -d' ' -f1)
  mv "$tmp" "$oci/blobs/sha256/$dg"
  echo "sha256:$dg sha256:$di $(stat -c %s "$oci/blobs/sha256/$dg")"
}
# blob_put OCI FILE: FILE moved into OCI as a blob, printed as "DIGEST SIZE"
blob_put() {
  local dg; dg=$(sha256sum "$2" | cut -d' ' -f1)
  mv "$2" "$1/blobs/sha256/$dg"
  echo "sha256:$dg $(stat -c %s "$1/blobs/sha256/$dg")"
}
# busybox_rootfs DIR: a minimal busybox-static root (a shell for RUN)
busybox_rootfs() {
  local r=$1 a
  mkdir -p "$r"/{bin,etc,tmp,root,proc,sys,dev,var/tmp}
  chmod 1777 "$r/tmp" "$r/var/tmp"
  install -m 0755 /bin/busybox "$r/bin/busybox"
  for a in $(/bin/busybox --list); do
    [ "$a" = busybox ] || ln -sf busybox "$r/bin/$a"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\n' >"$r/etc/passwd"
  printf 'root:x:0:\n' >"$r/etc/group"
}
# push_base REF LAYER_DIR...: one gzip layer per directory, an OCI image
# (config, manifest) put together here and copied to the registry with skopeo.
# Uses neither builder, so both pull the same bytes.
push_base() {
  local ref=$1 oci=$OUT/base-oci d line digests=() diffids=() sizes=()
  shift
  rm -rf "$oci"
  mkdir -p "$oci/blobs/sha256"
  for d in "$@"; do
    line=$(tar_layer "$d" "$oci")
    read -r dg di sz <<<"$line"
    digests+=("$dg"); diffids+=("$di"); sizes+=("$sz")
  done
  local cfg man
  cfg=$(printf '%s\n' "${diffids[@]}" | jq -R . | jq -s -c '{architecture: "amd64", os: "linux",
    created: "2023-11-14T22:13:20Z", config: {Env: ["PATH=/bin"], Cmd: ["/bin/sh"]},
    rootfs: {type: "layers", diff_ids: .}}')
  printf '%s' "$cfg" >"$oci/config.json"
  read -r cdg csz < <(blob_put "$oci" "$oci/config.json")
  man=$(for i in "${!digests[@]}"; do printf '%s %s\n' "${digests[$i]}" "${sizes[$i]}"; done \
    | jq -R 'split(" ") | {mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: .[0], size: (.[1] | tonumber)}' \
    | jq -s -c --arg cd "$cdg" --argjson cs "$csz" '{schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $cd, size: $cs}, layers: .}')
  printf '%s' "$man" >"$oci/manifest.json"
  read -r mdg msz < <(blob_put "$oci" "$oci/manifest.json")
  printf '{"imageLayoutVersion":"1.0.0"}' >"$oci/oci-layout"
  jq -n -c --arg d "$mdg" --argjson s "$msz" '{schemaVersion: 2, manifests: [{mediaType:
    "application/vnd.oci.image.manifest.v1+json", digest: $d, size: $s,
    annotations: {"org.opencontainers.image.ref.name": "base"}}]}' >"$oci/index.json"
  skopeo copy -q --dest-tls-verify=false "oci:$oci:base" "docker://$ref"
  rm -rf "$oci"
}

# ---------------------------------------------------------------- i_many_files
# i_context DIR N: Dockerfile + N generated files; prints the one-change file
i_context() {
  rm -rf "$1"
  mkdir -p "$1"
  printf 'FROM scratch\nCOPY app/ /app/\n' >"$1/Dockerfile"
  echo "app/$(python3 "$GEN" tree "$1/app" "$2" --seed "$SEED")"
}

scenario_i() {
  local ctx=$OUT/i-ctx n=$FILES one r
  log "i_many_files: generating $n files"
  one=$(i_context "$ctx" "$n")
  echo "i_many_files: $n files, $(du -sm "$ctx" | cut -f1) MiB, one-change file $one" >&2
  KSTORE=$OUT/i-kiln
  for b in kiln buildah; do
    [ "$b" = buildah ] && [ "$BUILDAH" != 1 ] && continue
    log "i_many_files: $b"
    rm -f "$ctx/.dockerignore"
    if [ "$b" = kiln ]; then
      for r in $(seq "$RUNS"); do kiln_reset; measure i_cold_kiln "$r" kiln_build -t bench/many "$ctx"; done
      for r in $(seq "$RUNS"); do measure i_nochange_kiln "$r" kiln_build -t bench/many "$ctx"; done
      for r in $(seq "$RUNS"); do
        echo "# change $b $r" >>"$ctx/$one"
        measure i_onefile_kiln "$r" kiln_build -t bench/many "$ctx"
      done
      printf 'app/**/*.txt\n' >"$ctx/.dockerignore"
      for r in $(seq "$RUNS"); do kiln_reset; measure i_ignore_kiln "$r" kiln_build -t bench/many "$ctx"; done
      [ "$KEEP" = 1 ] || kiln_reset
    else
      for r in $(seq "$RUNS"); do bh_reset; measure i_cold_buildah "$r" bh_build -t bench/many "$ctx"; done
      for r in $(seq "$RUNS"); do measure i_nochange_buildah "$r" bh_build -t bench/many "$ctx"; done
      for r in $(seq "$RUNS"); do
        echo "# change $b $r" >>"$ctx/$one"
        measure i_onefile_buildah "$r" bh_build -t bench/many "$ctx"
      done
      printf 'app/**/*.txt\n' >"$ctx/.dockerignore"
      for r in $(seq "$RUNS"); do bh_reset; measure i_ignore_buildah "$r" bh_build -t bench/many "$ctx"; done
      bh_reset
    fi
  done
  rm -rf "$ctx"

  [ "$FILES_1M" -gt 0 ] || return 0
  log "i_many_files: generating $FILES_1M files"
  one=$(i_context "$ctx" "$FILES_1M")
  echo "i_many_files 1M: $FILES_1M files, $(du -sm "$ctx" | cut -f1) MiB" >&2
  KSTORE=$OUT/i1m-kiln
  kiln_reset
  log "i_many_files 1M: kiln cold build (once), then no-change rebuilds"
  TIMEOUT=$I1M_TIMEOUT measure i1m_cold_kiln 1 kiln_build -t bench/many "$ctx"
  if [ "$(med i1m_cold_kiln)" != FAIL ]; then
    for r in $(seq "$RUNS"); do
      TIMEOUT=$I1M_TIMEOUT measure i1m_nochange_kiln "$r" kiln_build -t bench/many "$ctx"
      [ "$(med i1m_nochange_kiln)" != FAIL ] || break
    done
  fi
  [ "$KEEP" = 1 ] || kiln_reset
  if [ "$BUILDAH" = 1 ] && [ "$BENCH_1M_BUILDAH" = 1 ]; then
    log "i_many_files 1M: buildah cold build (once), then no-change rebuilds"
    bh_reset
    TIMEOUT=$I1M_TIMEOUT measure i1m_cold_buildah 1 bh_build -t bench/many "$ctx"
    if [ "$(med i1m_cold_buildah)" != FAIL ]; then
      for r in $(seq "$RUNS"); do
        TIMEOUT=$I1M_TIMEOUT measure i1m_nochange_buildah "$r" bh_build -t bench/many "$ctx"
        [ "$(med i1m_nochange_buildah)" != FAIL ] || break
      done
    fi
    bh_reset
  fi
  [ "$KEEP" = 1 ] || rm -rf "$ctx"
}

# ---------------------------------------------------------------- h_big_base
scenario_h() {
  local gen=$OUT/h-gen ctx=$OUT/h-ctx per rnd txt k r
  # shellcheck disable=SC2016   # $p, $1, $REG: expanded by the generated script / bash -c
  local base=$REG/bench/big:base
  log "h_big_base: generating a $BASE_MB MiB base in $BASE_LAYERS layers"
  rm -rf "$gen"
  busybox_rootfs "$gen/l0"
  per=$((BASE_MB / BASE_LAYERS))
  for k in $(seq 0 $((BASE_LAYERS - 1))); do
    # half random (1-32 MiB files), half text (64 KiB files), 2000 small files
    rnd=$((per / 2)); txt=$((per - rnd))
    python3 "$GEN" layer "$gen/l$k/opt/layer$k" --seed $((SEED + k)) --random-mb "$rnd" \
      --text-mb "$txt" --text-files $((txt * 16)) --small 2000
  done
  echo "h_big_base: $(du -sm "$gen" | cut -f1) MiB, $(find "$gen" -type f | wc -l) files" >&2
  local dirs=()
  for k in $(seq 0 $((BASE_LAYERS - 1))); do dirs+=("$gen/l$k"); done
  untimed push_base "$base" "${dirs[@]}"
  rm -rf "$gen"
  mkdir -p "$ctx"
  printf 'FROM %s\nRUN echo hi > /x\n' "$base" >"$ctx/Dockerfile"

  # the bound: every layer GET | gunzip | tar -x, all layers at once
  local bound=$OUT/h-bound dst=$OUT/h-bound-out
  {
    echo '#!/bin/bash'
    echo 'set -euo pipefail'
    echo "rm -rf '$dst'; mkdir -p '$dst'"
    curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$REG/v2/bench/big/manifests/base" \
      | jq -r '.layers[].digest' | while read -r d; do
        echo "mkdir -p '$dst/${d#sha256:}'; (curl -fsS 'http://$REG/v2/bench/big/blobs/$d' | igzip -d | tar -x -C '$dst/${d#sha256:}') &"
      done
    echo 'for p in $(jobs -p); do wait $p; done'
  } >"$bound"
  chmod +x "$bound"
  log "h_big_base: bound (curl | igzip -d | tar -x, layers in parallel)"
  for r in $(seq "$RUNS"); do
    rm -rf "$dst"
    measure h_bound "$r" "$bound"
  done
  rm -rf "$dst"

  KSTORE=$OUT/h-kiln
  log "h_big_base: kiln, empty store every run"
  for r in $(seq "$RUNS"); do
    kiln_reset
    measure h_kiln "$r" kiln_build --push -t "$REG/bench/big:kiln" "$ctx"
  done
  [ "$KEEP" = 1 ] || kiln_reset
  if [ "$BUILDAH" = 1 ]; then
    log "h_big_base: buildah, empty storage every run"
    for r in $(seq "$RUNS"); do
      bh_reset
      measure h_buildah "$r" bash -c 'bh_build -t bench/big:buildah "$1" && bh push --quiet --tls-verify=false bench/big:buildah "docker://$REG/bench/big:buildah"' _ "$ctx"
    done
    bh_reset
  fi
  rm -rf "$ctx"
}

# ---------------------------------------------------------------- j_run_many_files
scenario_j() {
  local gen=$OUT/j-gen ctx=$OUT/j-ctx base=$REG/bench/jbase:base small=$((2 * J_DEL)) rnd txt r
  log "j_run_many_files: generating a $J_BASE_MB MiB base with $small small files"
  rm -rf "$gen"
  busybox_rootfs "$gen/l0"
  rnd=$((J_BASE_MB / 2)); txt=$((J_BASE_MB - rnd))
  python3 "$GEN" layer "$gen/l1/data" --seed "$SEED" --small "$small" --small-per-dir 100
  python3 "$GEN" layer "$gen/l2/data" --seed $((SEED + 1)) --random-mb "$rnd"
  python3 "$GEN" layer "$gen/l3/data" --seed $((SEED + 2)) --text-mb "$txt" --text-files $((txt * 16))
  echo "j_run_many_files: base $(du -sm "$gen" | cut -f1) MiB, $(find "$gen" -type f | wc -l) files" >&2
  untimed push_base "$base" "$gen/l0" "$gen/l1" "$gen/l2" "$gen/l3"
  rm -rf "$gen"
  mkdir -p "$ctx"
  # J_NEW files in directories of 1000; the even-numbered half of the base's
  # small files (J_DEL) deleted one by one
  j_dockerfile() {
    printf 'FROM %s\n' "$base"
    printf 'RUN echo %s > /run-id && mkdir /gen && cd /gen && for d in $(seq 0 %d); do mkdir $d; for f in $(seq 0 999); do echo "$d $f" > $d/$f.txt; done; done && rm /data/small/*/f*[02468].txt\n' \
      "$1" $((J_NEW / 1000 - 1))
  }
  KSTORE=$OUT/j-kiln
  local b
  for b in kiln buildah; do
    [ "$b" = buildah ] && [ "$BUILDAH" != 1 ] && continue
    log "j_run_many_files: $b (base unpacked by an untimed warm-up build)"
    printf 'FROM %s\nRUN true\n' "$base" >"$ctx/Dockerfile"
    if [ "$b" = kiln ]; then
      kiln_reset
      measure j_warmup_kiln 1 kiln_build -t bench/j "$ctx"
    else
      bh_reset
      measure j_warmup_buildah 1 bh_build -t bench/j "$ctx"
    fi
    for r in $(seq "$RUNS"); do
      j_dockerfile "$b-$r-$(date +%s%N)" >"$ctx/Dockerfile"
      if [ "$b" = kiln ]; then
        measure j_kiln "$r" kiln_build -t bench/j "$ctx"
      else
        measure j_buildah "$r" bh_build -t bench/j "$ctx"
      fi
    done
    if [ "$b" = kiln ]; then [ "$KEEP" = 1 ] || kiln_reset; else bh_reset; fi
  done
  rm -rf "$ctx"
}

# ---------------------------------------------------------------- summary
row() { printf '| %s | %s | %s | %s | %s |\n' "$@"; }
num() { [[ $1 =~ ^[0-9.]+$ ]]; }
secs() { if num "$1"; then echo "$1 s"; else echo "$1"; fi; }
ratio() { if num "$1" && num "$2"; then awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; else echo "-"; fi; }
# verdict VALUE OP TARGET
verdict() {
  [ "$1" != FAIL ] || { echo "**failed**"; return; }
  num "$1" || { echo "**no figure**"; return; }
  awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { ok = (op == "<") ? v < t : (op == "<=") ? v <= t : v >= t
    print ok ? "met" : "**not met**" }'
}
# speedup LABEL SCEN_BUILDAH SCEN_KILN TARGET_X: buildah / kiln row
speedup() {
  local b k sp
  b=$(med "$2"); k=$(med "$3"); sp=$(ratio "$b" "$k")
  [ "$k" != FAIL ] || sp=FAIL
  row "$1: buildah / kiln" "$(secs "$b") / $(secs "$k")" "${sp}x" ">= $4x" "$(verdict "$sp" ">=" "$4")"
}
rss_row() {   # LABEL PREFIX
  local m; m=$(rss_max "$2")
  [ "$m" -gt 0 ] || return 0
  row "peak RSS, $1" "$((m / 1024)) MiB" "" "< 64 MiB" "$(verdict "$m" "<" 65536)"
}

summary() {
  local k b r
  echo
  echo "# issue 11 scale targets, all from this invocation ($(date -u +%FT%TZ), $("$KILN_BIN" version | head -1), RUNS=$RUNS)"
  echo
  cat "$OUT/sizes" 2>/dev/null || true
  echo
  row "figure" "measured" "ratio" "target" "verdict"
  row "---" "---" "---" "---" "---"
  if grep -q '^i_' "$TSV"; then
    speedup "i cold build, $FILES files" i_cold_buildah i_cold_kiln 8
    k=$(med i_nochange_kiln)
    row "i no-change rebuild, $FILES files: kiln" "$(secs "$k")" "" "< 0.2 s" "$(verdict "$k" "<" 0.2)"
    speedup "i no-change rebuild, $FILES files" i_nochange_buildah i_nochange_kiln 200
    speedup "i one-file change, $FILES files" i_onefile_buildah i_onefile_kiln 50
    speedup "i cold build, .dockerignore excluding half" i_ignore_buildah i_ignore_kiln 8
    rss_row "i, $FILES files (every kiln run)" i_
  fi
  if grep -q '^i1m_' "$TSV"; then
    k=$(med i1m_nochange_kiln)
    r=$(secs "$k")
    [ "$k" != NA ] || r="not run (the cold build failed)"
    row "i no-change rebuild, $FILES_1M files: kiln" "$r" "" "< 2 s" "$(verdict "$k" "<" 2)"
    row "i cold build, $FILES_1M files (one run): kiln" "$(secs "$(med i1m_cold_kiln)")" "" "" ""
    if grep -q '^i1m_.*buildah' "$TSV"; then
      row "i cold build, $FILES_1M files (one run): buildah / kiln" "$(secs "$(med i1m_cold_buildah)") / $(secs "$(med i1m_cold_kiln)")" \
        "$(ratio "$(med i1m_cold_buildah)" "$(med i1m_cold_kiln)")x" "" ""
      speedup "i no-change rebuild, $FILES_1M files" i1m_nochange_buildah i1m_nochange_kiln 200
    else
      row "i, $FILES_1M files: buildah" "not measured (BENCH_1M_BUILDAH=1 measures it)" "" "" ""
    fi
    rss_row "i, $FILES_1M files (every kiln run)" i1m_
  fi
  if grep -q '^h_' "$TSV"; then
    k=$(med h_kiln); b=$(med h_bound); r=$(ratio "$k" "$b")
    [ "$k" != FAIL ] || r=FAIL
    row "h big base, empty store, FROM + RUN + push: kiln / bound (GET + igzip -d + tar -x, layers in parallel)" \
      "$(secs "$k") / $(secs "$b")" "$r" "<= 1.25" "$(verdict "$r" "<=" 1.25)"
    speedup "h big base, empty store, FROM + RUN + push" h_buildah h_kiln 3
    rss_row "h big base" h_
  fi
  if grep -q '^j_' "$TSV"; then
    speedup "j RUN: $J_NEW files created, $J_DEL base files deleted" j_buildah j_kiln 3
    rss_row "j RUN many files" j_
  fi
  local fails
  fails=$(awk -F'\t' -v lim="$I1M_TIMEOUT" 'NR > 1 && $3 != 0 { printf "%s%s run %s (exit %s%s)", s, $1, $2, $3,
    ($3 == 124 || $3 == 137) && $1 ~ /^i1m_/ ? ": stopped after " lim " s" : ""; s = ", " }' "$TSV")
  [ -z "$fails" ] || { echo; echo "Failed runs (messages in $LOG): $fails"; }
}

if [ "${SUMMARY_ONLY:-0}" = 1 ]; then
  # shellcheck disable=SC1091
  . "$OUT/sizes.env"
  summary
  exit 0
fi

for t in python3 jq curl pigz igzip skopeo docker-registry buildah /bin/busybox /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "scale.sh: needs $t (make deps)" >&2; exit 2; }
done
for s in $SCENARIOS; do
  case $s in i | h | j) ;; *) echo "scale.sh: unknown scenario $s (i, h, j)" >&2; exit 2 ;; esac
done
wipe_dir "$OUT"
mkdir -p "$OUT"
: >"$LOG"
printf 'name\trun\trc\twall_s\tpeak_rss_kib\n' >"$TSV"
printf 'Sizes: I1M_TIMEOUT=%s FILES=%s FILES_1M=%s BASE_MB=%s BASE_LAYERS=%s J_BASE_MB=%s J_NEW=%s J_DEL=%s BUILDAH=%s BENCH_1M_BUILDAH=%s\n' \
  "$I1M_TIMEOUT" "$FILES" "$FILES_1M" "$BASE_MB" "$BASE_LAYERS" "$J_BASE_MB" "$J_NEW" "$J_DEL" "$BUILDAH" "$BENCH_1M_BUILDAH" >"$OUT/sizes"
sed 's/^Sizes: //; s/ /\n/g' "$OUT/sizes" >"$OUT/sizes.env"
cleanup() {
  registry_stop
  [ "$KEEP" = 1 ] && return 0
  wipe_dir "$OUT/i-kiln"; wipe_dir "$OUT/i1m-kiln"; wipe_dir "$OUT/h-kiln"; wipe_dir "$OUT/j-kiln"
  bh_reset
  rm -rf "$OUT/registry" "$OUT"/*-ctx "$OUT"/*-gen "$OUT/h-bound-out" "$OUT/base-oci"
}
trap cleanup EXIT
case " $SCENARIOS " in *" h "* | *" j "*) registry_start ;; esac

for s in $SCENARIOS; do "scenario_$s"; done
summary | tee "$OUT/summary.md"
