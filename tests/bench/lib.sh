# shellcheck shell=bash
# tests/bench/lib.sh - what the benchmark scripts share (sourced, not run):
# timing with peak RSS, medians, the two builders' command lines, a throwaway
# local registry, offline base images, and the markdown verdict table.
#
# The sourcing script sets, before calling anything here:
#   KILN_BIN  the kiln binary (absolute path)
#   OUT       its output directory; TSV (runs, one row per timed run) and
#             LOG (every command's output) live in it
#   KSTORE    kiln's --root; BSTATE buildah's --root/--runroot parent
#   REG       the registry's host:port (127.0.0.1:PORT); REG_DIR its directory
#   TS        the fixed mtime / creation time of generated files (seconds)

log() { echo "=== $(date +%H:%M:%S) $*" >&2; }

# ---------------------------------------------------------------- timing
# measure NAME RUN CMD...: sync, run CMD (output to the log), append
# "NAME RUN RC WALL_S PEAK_RSS_KIB" to the TSV. Never fails: a failed run is
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
# fail_run NAME RUN RC: a run whose untimed part or check failed, as a row
fail_run() { printf '%s\t%s\t%s\t0\t0\n' "$1" "$2" "$3" >>"$TSV"; }

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
# kiln with its own store; buildah 1.28 the way both benchmarks compare it:
# `bud --layers`, overlay, --isolation chroot (the default OCI isolation needs
# a runtime that works with this machine's cgroup layout), its own --root.
kiln() { "$KILN_BIN" --root "$KSTORE" "$@"; }
kiln_build() { kiln build --progress quiet --tls-verify=false "$@"; }
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
export -f kiln kiln_build bh bh_build

# ---------------------------------------------------------------- registry
# A throwaway CNCF distribution (Debian docker-registry) on REG (127.0.0.1
# only, plain HTTP, no auth), its storage under REG_DIR; stopped by its own
# pid (never by name), so two benchmarks on two ports do not meet.
REG_PID=
registry_start() {
  if curl -fsS -o /dev/null --max-time 2 "http://$REG/v2/" 2>/dev/null; then
    echo "${0##*/}: something already answers on $REG; choose another port" >&2
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
  echo "${0##*/}: the registry did not answer on $REG" >&2
  return 1
}
registry_stop() {
  [ -n "$REG_PID" ] || return 0
  kill "$REG_PID" 2>/dev/null || true
  wait "$REG_PID" 2>/dev/null || true
  REG_PID=
}
# an empty registry: stopped, its storage deleted, started again
registry_wipe() { registry_stop; rm -rf "$REG_DIR/data"; registry_start; }
# the bytes of the registry's blob storage (for "registry bytes added")
registry_bytes() {
  find "$REG_DIR/data/docker/registry/v2/blobs" -type f -printf '%s\n' 2>/dev/null |
    awk '{ t += $1 } END { printf "%d\n", t }'
}

# ---------------------------------------------------------------- base images
# tar_layer SRC OCI: SRC's files as one gzip layer blob of the OCI layout OCI
# (fixed owner and mtimes, sorted), printed as "DIGEST DIFF_ID SIZE".
tar_layer() {
  local src=$1 oci=$2 tmp=$2/blob.tmp dg di
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@$TS -C "$src" -cf - . |
    pigz -1 -n >"$tmp"
  dg=$(sha256sum "$tmp" | cut -d' ' -f1)
  di=$(pigz -dc "$tmp" | sha256sum | cut -d' ' -f1)
  mv "$tmp" "$oci/blobs/sha256/$dg"
  echo "sha256:$dg sha256:$di $(stat -c %s "$oci/blobs/sha256/$dg")"
}
# blob_put OCI FILE: FILE moved into OCI as a blob, printed as "DIGEST SIZE"
blob_put() {
  local dg
  dg=$(sha256sum "$2" | cut -d' ' -f1)
  mv "$2" "$1/blobs/sha256/$dg"
  echo "sha256:$dg $(stat -c %s "$1/blobs/sha256/$dg")"
}
# busybox_rootfs DIR: a minimal root of Debian's busybox-static (a shell for RUN)
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
# base_oci OCI LAYER_DIR...: an OCI layout at OCI (tag "base") of one gzip
# layer per directory, config and manifest put together here: neither builder
# makes it, so both pull the same bytes.
base_oci() {
  local oci=$1 d line digests=() diffids=() sizes=()
  shift
  rm -rf "$oci"
  mkdir -p "$oci/blobs/sha256"
  for d in "$@"; do
    line=$(tar_layer "$d" "$oci")
    read -r dg di sz <<<"$line"
    digests+=("$dg"); diffids+=("$di"); sizes+=("$sz")
  done
  local cfg man
  # one history entry per layer: buildah refuses to commit on top of an image
  # whose history lists fewer non-empty layers than it has
  cfg=$(printf '%s\n' "${diffids[@]}" | jq -R . | jq -s -c '{architecture: "amd64", os: "linux",
    created: "2023-11-14T22:13:20Z", config: {Env: ["PATH=/bin"], Cmd: ["/bin/sh"]},
    rootfs: {type: "layers", diff_ids: .},
    history: [range(length) | {created: "2023-11-14T22:13:20Z", created_by: "tests/bench layer \(.)"}]}')
  printf '%s' "$cfg" >"$oci/config.json"
  read -r cdg csz < <(blob_put "$oci" "$oci/config.json")
  man=$(for i in "${!digests[@]}"; do printf '%s %s\n' "${digests[$i]}" "${sizes[$i]}"; done |
    jq -R 'split(" ") | {mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: .[0], size: (.[1] | tonumber)}' |
    jq -s -c --arg cd "$cdg" --argjson cs "$csz" '{schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $cd, size: $cs}, layers: .}')
  printf '%s' "$man" >"$oci/manifest.json"
  read -r mdg msz < <(blob_put "$oci" "$oci/manifest.json")
  printf '{"imageLayoutVersion":"1.0.0"}' >"$oci/oci-layout"
  jq -n -c --arg d "$mdg" --argjson s "$msz" '{schemaVersion: 2, manifests: [{mediaType:
    "application/vnd.oci.image.manifest.v1+json", digest: $d, size: $s,
    annotations: {"org.opencontainers.image.ref.name": "base"}}]}' >"$oci/index.json"
}
# push_oci OCI REF: the layout's "base" image copied to the registry
push_oci() { skopeo copy -q --dest-tls-verify=false "oci:$1:base" "docker://$2"; }
# push_base REF LAYER_DIR...: base_oci in a scratch layout, pushed, deleted
push_base() {
  local ref=$1
  shift
  local tmp=${W:-$OUT}/base-oci
  base_oci "$tmp" "$@"
  push_oci "$tmp" "$ref"
  rm -rf "$tmp"
}

# ---------------------------------------------------------------- the table
row() { printf '| %s | %s | %s | %s | %s |\n' "$@"; }
num() { [[ $1 =~ ^[0-9.]+$ ]]; }
secs() { if num "$1"; then echo "$1 s"; else echo "$1"; fi; }
ratio() { if num "$1" && num "$2"; then awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; else echo "-"; fi; }
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
# bound_row LABEL SCEN_KILN SCEN_BOUND TARGET: kiln / bound row (at most TARGET)
bound_row() {
  local k b r
  k=$(med "$2"); b=$(med "$3"); r=$(ratio "$k" "$b")
  [ "$k" != FAIL ] || r=FAIL
  row "$1" "$(secs "$k") / $(secs "$b")" "$r" "<= $4" "$(verdict "$r" "<=" "$4")"
}
# rss_row LABEL KIB: a peak RSS row against the 64 MiB target
rss_row() {
  [ "$2" -gt 0 ] || return 0
  row "peak RSS, $1" "$(($2 / 1024)) MiB" "" "< 64 MiB" "$(verdict "$2" "<" 65536)"
}
