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
# k_parallel_stages  two independent stages (issue 13), each a RUN that
#               writes K_MB (200) MiB of random data gzipped, and a last stage
#               that copies both results: kiln --jobs 2 against buildah
#               `bud --jobs 2`, and kiln --jobs 1 for what running the stages
#               at once gains. Every timed run misses the cache (--no-cache);
#               an untimed build first pulls the busybox base.
# Every kiln run is timed with /usr/bin/time for its peak RSS. buildah 1.28:
# `bud --layers`, overlay, --isolation chroot, its own --root, wiped per
# scenario. Prints one line per run, then one markdown table of medians,
# ratios, targets and verdicts.
#
# Env: RUNS (3), SCENARIOS ("i h j k"), K_MB (200), BENCH_OUT (/tmp/kiln-scale), SEED (11),
#      FILES (100000), FILES_1M (1000000; 0 skips), BENCH_1M_BUILDAH (0),
#      I1M_TIMEOUT (1800),
#      BASE_MB (2048), BASE_LAYERS (8), J_BASE_MB (1024), J_NEW (50000),
#      J_DEL (5000), BUILDAH (1; 0 = kiln only), SCALE_PORT (5012, the
#      registry's port), KEEP (0; 1 keeps contexts and stores),
#      SUMMARY_ONLY=1 (print the table of an earlier run in BENCH_OUT),
#      KILN_BIN_B (another kiln binary, e.g. an older commit's, measured
#      alternately with KILN_BIN in h_big_base: a regression check).
#      BENCH_FS (loop or dir; see fs_up below: loop when BENCH_OUT is on
#      ext4 without a journal and we are root, else dir), BENCH_FS_GB (64),
#      SETTLE (seconds; see settle below: 61 when the scenarios' directory
#      is on ext4 without a journal, else 0).
# Small sizes for a quick try: FILES=20000 FILES_1M=0 BASE_MB=256 J_BASE_MB=128 J_NEW=5000 J_DEL=500 RUNS=1
set -euo pipefail

KILN_BIN=$(realpath -e "${1:?usage: scale.sh KILN_BIN}")
KILN_BIN_B=${KILN_BIN_B:+$(realpath -e "$KILN_BIN_B")}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GEN=$HERE/scale_gen.py
OUT=${BENCH_OUT:-/tmp/kiln-scale}
RUNS=${RUNS:-3}
SCENARIOS=${SCENARIOS:-i h j k}
K_MB=${K_MB:-200}
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

# shellcheck source=tests/bench/lib.sh
. "$HERE/lib.sh"

# ext4 without a journal (this VM's disk) does not hand out an inode freed
# recently (recently_deleted in fs/ext4/ialloc.c): it scans on, so a run
# that creates tens of thousands of files after a reset deleted as many pays
# for the deletion (13 s instead of 1 s for j's RUN, measured), and the
# bound of h ranged 5.0-9.7 s within one invocation.  A journal turns that
# check off.  So with BENCH_FS=loop (the default there, as root) the
# scenarios run on a fresh ext4 with a journal: a sparse file
# $OUT/fs.img of BENCH_FS_GB GiB on a loop device (direct I/O, so its pages
# are not cached twice), mounted with discard on $OUT/fs, the same file
# system for every builder and the bound.  The tables and logs stay in $OUT.
no_journal_ext4() {
  local src fs
  read -r src fs < <(findmnt -no SOURCE,FSTYPE -T "$1" 2>/dev/null) || return 1
  [ "$fs" = ext4 ] && ! ls /proc/fs/jbd2/ 2>/dev/null | grep -q "^${src##*/}-"
}
mkdir -p "$OUT"
if [ -z "${BENCH_FS:-}" ]; then
  BENCH_FS=dir
  [ "$(id -u)" = 0 ] && no_journal_ext4 "$OUT" && BENCH_FS=loop
fi
BENCH_FS_GB=${BENCH_FS_GB:-64}
W=$OUT
[ "$BENCH_FS" = loop ] && W=$OUT/fs
LOOPDEV=
# the mounts and loop device a killed run left behind on the image
fs_detach_stale() {
  local m d
  for m in $(awk -v p="$OUT/fs" '$2 == p || index($2, p "/") == 1 { print $2 }' /proc/self/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  for d in $(losetup -nO NAME -j "$OUT/fs.img" 2>/dev/null); do losetup -d "$d" 2>/dev/null || true; done
}
fs_up() {
  [ "$BENCH_FS" = loop ] || return 0
  truncate -s "${BENCH_FS_GB}G" "$OUT/fs.img"
  # 8M inodes: the 1M-file context, its snapshot and a store; tables
  # written now, not by ext4lazyinit during the timed runs
  mkfs.ext4 -q -F -N 8000000 -E lazy_itable_init=0,lazy_journal_init=0 "$OUT/fs.img"
  LOOPDEV=$(losetup -f --show --direct-io=on "$OUT/fs.img")
  mkdir -p "$W"
  mount -o discard "$LOOPDEV" "$W"
  # detaching a mounted loop device marks it autoclear: it goes away with
  # the last unmount, a lazy one included
  losetup -d "$LOOPDEV"
}
fs_down() {
  [ -n "$LOOPDEV" ] || return 0
  fs_detach_stale
  rm -f "$OUT/fs.img"
  rmdir "$W" 2>/dev/null || true
}
# Before each timed run of h and j: sync, so the run does not pay for the
# writeback of what the last one left dirty, and wait SETTLE seconds (61 on
# ext4 without a journal with BENCH_FS=dir: the 60 s of recently_deleted).
if [ -z "${SETTLE:-}" ]; then
  SETTLE=0
  no_journal_ext4 "$OUT" && [ "$BENCH_FS" = dir ] && SETTLE=61
fi
settle() {
  sync
  [ "$SETTLE" = 0 ] || sleep "$SETTLE"
}
KSTORE=$W/kiln   # each scenario sets its own
BSTATE=$W/buildah
REG_DIR=$W/registry
export KILN_BIN KSTORE BSTATE REG

# ---------------------------------------------------------------- i_many_files
# i_context DIR N: Dockerfile + N generated files; prints the one-change file
i_context() {
  rm -rf "$1"
  mkdir -p "$1"
  printf 'FROM scratch\nCOPY app/ /app/\n' >"$1/Dockerfile"
  echo "app/$(python3 "$GEN" tree "$1/app" "$2" --seed "$SEED")"
}

# Each timed run of i starts after a sync (kiln and buildah alike), so it
# does not share the disk and the CPUs with the writeback of what the last
# run or reset left dirty (a no-change rebuild right after the cold builds
# took 0.187-0.229 s, and 0.181-0.190 s after a sync).
scenario_i() {
  local ctx=$W/i-ctx n=$FILES one r
  log "i_many_files: generating $n files"
  one=$(i_context "$ctx" "$n")
  echo "i_many_files: $n files, $(du -sm "$ctx" | cut -f1) MiB, one-change file $one" >&2
  KSTORE=$W/i-kiln
  for b in kiln buildah; do
    [ "$b" = buildah ] && [ "$BUILDAH" != 1 ] && continue
    log "i_many_files: $b"
    rm -f "$ctx/.dockerignore"
    if [ "$b" = kiln ]; then
      for r in $(seq "$RUNS"); do kiln_reset; sync; measure i_cold_kiln "$r" kiln_build -t bench/many "$ctx"; done
      for r in $(seq "$RUNS"); do sync; measure i_nochange_kiln "$r" kiln_build -t bench/many "$ctx"; done
      for r in $(seq "$RUNS"); do
        echo "# change $b $r" >>"$ctx/$one"
        sync; measure i_onefile_kiln "$r" kiln_build -t bench/many "$ctx"
      done
      printf 'app/**/*.txt\n' >"$ctx/.dockerignore"
      for r in $(seq "$RUNS"); do kiln_reset; sync; measure i_ignore_kiln "$r" kiln_build -t bench/many "$ctx"; done
      [ "$KEEP" = 1 ] || kiln_reset
    else
      for r in $(seq "$RUNS"); do bh_reset; sync; measure i_cold_buildah "$r" bh_build -t bench/many "$ctx"; done
      for r in $(seq "$RUNS"); do sync; measure i_nochange_buildah "$r" bh_build -t bench/many "$ctx"; done
      for r in $(seq "$RUNS"); do
        echo "# change $b $r" >>"$ctx/$one"
        sync; measure i_onefile_buildah "$r" bh_build -t bench/many "$ctx"
      done
      printf 'app/**/*.txt\n' >"$ctx/.dockerignore"
      for r in $(seq "$RUNS"); do bh_reset; sync; measure i_ignore_buildah "$r" bh_build -t bench/many "$ctx"; done
      bh_reset
    fi
  done
  rm -rf "$ctx"

  [ "$FILES_1M" -gt 0 ] || return 0
  log "i_many_files: generating $FILES_1M files"
  one=$(i_context "$ctx" "$FILES_1M")
  echo "i_many_files 1M: $FILES_1M files, $(du -sm "$ctx" | cut -f1) MiB" >&2
  KSTORE=$W/i1m-kiln
  kiln_reset
  log "i_many_files 1M: kiln cold build (once), then no-change rebuilds"
  sync; TIMEOUT=$I1M_TIMEOUT measure i1m_cold_kiln 1 kiln_build -t bench/many "$ctx"
  if [ "$(med i1m_cold_kiln)" != FAIL ]; then
    for r in $(seq "$RUNS"); do
      sync; TIMEOUT=$I1M_TIMEOUT measure i1m_nochange_kiln "$r" kiln_build -t bench/many "$ctx"
      [ "$(med i1m_nochange_kiln)" != FAIL ] || break
    done
  fi
  [ "$KEEP" = 1 ] || kiln_reset
  if [ "$BUILDAH" = 1 ] && [ "$BENCH_1M_BUILDAH" = 1 ]; then
    log "i_many_files 1M: buildah cold build (once), then no-change rebuilds"
    bh_reset
    sync; TIMEOUT=$I1M_TIMEOUT measure i1m_cold_buildah 1 bh_build -t bench/many "$ctx"
    if [ "$(med i1m_cold_buildah)" != FAIL ]; then
      for r in $(seq "$RUNS"); do
        sync; TIMEOUT=$I1M_TIMEOUT measure i1m_nochange_buildah "$r" bh_build -t bench/many "$ctx"
        [ "$(med i1m_nochange_buildah)" != FAIL ] || break
      done
    fi
    bh_reset
  fi
  [ "$KEEP" = 1 ] || rm -rf "$ctx"
}

# ---------------------------------------------------------------- h_big_base
scenario_h() {
  local gen=$W/h-gen ctx=$W/h-ctx per rnd txt k r
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
  local bound=$W/h-bound dst=$W/h-bound-out
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
    settle
    measure h_bound "$r" "$bound"
  done
  rm -rf "$dst"

  KSTORE=$W/h-kiln
  log "h_big_base: kiln, empty store every run"
  for r in $(seq "$RUNS"); do
    kiln_reset
    settle
    measure h_kiln "$r" kiln_build --push -t "$REG/bench/big:kiln" "$ctx"
    # KILN_BIN_B: another kiln (an older build) measured right after, run by run
    [ -z "$KILN_BIN_B" ] && continue
    kiln_reset
    settle
    KILN_BIN=$KILN_BIN_B measure h_kilnb "$r" kiln_build --push -t "$REG/bench/big:kilnb" "$ctx"
  done
  [ "$KEEP" = 1 ] || kiln_reset
  if [ "$BUILDAH" = 1 ]; then
    log "h_big_base: buildah, empty storage every run"
    for r in $(seq "$RUNS"); do
      bh_reset
      settle
      measure h_buildah "$r" bash -c 'bh_build -t bench/big:buildah "$1" && bh push --quiet --tls-verify=false bench/big:buildah "docker://$REG/bench/big:buildah"' _ "$ctx"
    done
    bh_reset
  fi
  rm -rf "$ctx"
}

# ---------------------------------------------------------------- j_run_many_files
scenario_j() {
  local gen=$W/j-gen ctx=$W/j-ctx base=$REG/bench/jbase:base small=$((2 * J_DEL)) rnd txt r
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
  KSTORE=$W/j-kiln
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
      settle
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

# ---------------------------------------------------------------- k_parallel_stages
scenario_k() {
  local gen=$W/k-gen ctx=$W/k-ctx base=$REG/bench/kbase:base b r
  log "k_parallel_stages: two stages of $K_MB MiB each"
  rm -rf "$gen" "$ctx"
  busybox_rootfs "$gen/l0"
  untimed push_base "$base" "$gen/l0"
  rm -rf "$gen"
  mkdir -p "$ctx"
  {
    printf 'FROM %s AS one\n' "$base"
    printf 'RUN dd if=/dev/urandom bs=1048576 count=%d 2>/dev/null | gzip -1 > /one.gz\n' "$K_MB"
    printf 'FROM %s AS two\n' "$base"
    printf 'RUN dd if=/dev/urandom bs=1048576 count=%d 2>/dev/null | gzip -1 > /two.gz\n' "$K_MB"
    printf 'FROM %s\nCOPY --from=one /one.gz /one.gz\nCOPY --from=two /two.gz /two.gz\n' "$base"
  } >"$ctx/Dockerfile"
  KSTORE=$W/k-kiln
  for b in kiln buildah; do
    [ "$b" = buildah ] && [ "$BUILDAH" != 1 ] && continue
    log "k_parallel_stages: $b"
    if [ "$b" = kiln ]; then
      kiln_reset
      untimed kiln_build --jobs 2 -t bench/k "$ctx"
      for r in $(seq "$RUNS"); do
        measure k_kiln "$r" kiln_build --no-cache --jobs 2 -t bench/k "$ctx"
        measure k_kiln_j1 "$r" kiln_build --no-cache --jobs 1 -t bench/k "$ctx"
      done
      [ "$KEEP" = 1 ] || kiln_reset
    else
      bh_reset
      untimed bh_build --jobs 2 -t bench/k "$ctx"
      for r in $(seq "$RUNS"); do measure k_buildah "$r" bh_build --no-cache --jobs 2 -t bench/k "$ctx"; done
      bh_reset
    fi
  done
  rm -rf "$ctx"
}

# ---------------------------------------------------------------- summary
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
    rss_row "i, $FILES files (every kiln run)" "$(rss_max i_)"
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
    rss_row "i, $FILES_1M files (every kiln run)" "$(rss_max i1m_)"
  fi
  if grep -q '^h_' "$TSV"; then
    k=$(med h_kiln); b=$(med h_bound); r=$(ratio "$k" "$b")
    [ "$k" != FAIL ] || r=FAIL
    row "h big base, empty store, FROM + RUN + push: kiln / bound (GET + igzip -d + tar -x, layers in parallel)" \
      "$(secs "$k") / $(secs "$b")" "$r" "<= 1.25" "$(verdict "$r" "<=" 1.25)"
    speedup "h big base, empty store, FROM + RUN + push" h_buildah h_kiln 3
    if grep -q '^h_kilnb' "$TSV"; then
      k=$(med h_kiln); b=$(med h_kilnb)
      row "h, KILN_BIN / KILN_BIN_B (run alternately)" "$(secs "$k") / $(secs "$b")" "$(ratio "$k" "$b")" "" ""
    fi
    rss_row "h big base" "$(rss_max h_)"
  fi
  if grep -q '^j_' "$TSV"; then
    speedup "j RUN: $J_NEW files created, $J_DEL base files deleted" j_buildah j_kiln 3
    rss_row "j RUN many files" "$(rss_max j_)"
  fi
  if grep -q '^k_' "$TSV"; then
    speedup "k two independent heavy stages, --jobs 2" k_buildah k_kiln 1
    row "k the same, kiln --jobs 1 / --jobs 2" "$(secs "$(med k_kiln_j1)") / $(secs "$(med k_kiln)")" \
      "$(ratio "$(med k_kiln_j1)" "$(med k_kiln)")x" "" ""
    rss_row "k parallel stages" "$(rss_max k_)"
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
  case $s in i | h | j | k) ;; *) echo "scale.sh: unknown scenario $s (i, h, j, k)" >&2; exit 2 ;; esac
done
fs_detach_stale
wipe_dir "$OUT"
mkdir -p "$OUT"
fs_up
: >"$LOG"
printf 'name\trun\trc\twall_s\tpeak_rss_kib\n' >"$TSV"
printf 'Sizes: I1M_TIMEOUT=%s FILES=%s FILES_1M=%s BASE_MB=%s BASE_LAYERS=%s J_BASE_MB=%s J_NEW=%s J_DEL=%s BUILDAH=%s BENCH_1M_BUILDAH=%s BENCH_FS=%s SETTLE=%s\n' \
  "$I1M_TIMEOUT" "$FILES" "$FILES_1M" "$BASE_MB" "$BASE_LAYERS" "$J_BASE_MB" "$J_NEW" "$J_DEL" "$BUILDAH" "$BENCH_1M_BUILDAH" "$BENCH_FS" "$SETTLE" >"$OUT/sizes"
sed 's/^Sizes: //; s/ /\n/g' "$OUT/sizes" >"$OUT/sizes.env"
cleanup() {
  registry_stop
  [ "$KEEP" = 1 ] && return 0
  wipe_dir "$W/i-kiln"; wipe_dir "$W/i1m-kiln"; wipe_dir "$W/h-kiln"; wipe_dir "$W/j-kiln"; wipe_dir "$W/k-kiln"
  bh_reset
  rm -rf "$W/registry" "$W"/*-ctx "$W"/*-gen "$W/h-bound-out" "$W/base-oci"
  fs_down
}
trap cleanup EXIT
case " $SCENARIOS " in *" h "* | *" j "* | *" k "*) registry_start ;; esac

for s in $SCENARIOS; do "scenario_$s"; done
summary | tee "$OUT/summary.md"
