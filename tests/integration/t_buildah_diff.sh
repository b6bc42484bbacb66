#!/bin/bash
# Differential test against buildah: every testdata/buildah-diff/<case>/
# Dockerfile is built by kiln and by `buildah bud --layers --isolation
# chroot` (vfs storage under $T, nothing in the machine's default storage)
# FROM the same busybox base; the flattened filesystems (umoci unpack +
# flatten.py: path type mode uid gid size sha256 linktarget, no times) and
# the config fields (Env Cmd Entrypoint WorkingDir User Labels ExposedPorts
# Volumes StopSignal) must be equal, except for the differences
# docs/differences.md documents, listed in IGNORE_* below.
# it-timeout: 400
# Env: KILN_DIFF_CASES="copy run" limits the cases.
source "$IT_DIR/lib.sh"
need umoci jq python3
need_root
source "$IT_DIR/buildah_lib.sh"
make_busybox_base

D=$REPO_DIR/testdata/buildah-diff
# The documented differences (docs/differences.md), as "CASE<TAB>ERE": the
# lines of the flattened filesystems ("path type mode uid gid ...") of CASE
# (* = every case) that match ERE are dropped from both sides.  Nothing else
# is ignored.
IGNORE_FS=(
  # buildah --isolation chroot leaves its RUN mount points in the image:
  # empty /etc/hosts, /etc/hostname, /etc/resolv.conf (mode 0755) and /run;
  # kiln leaves nothing (t_run_layers checks that)
  $'*\t^/etc/(hosts|hostname|resolv\\.conf) f 0755 0 0 0 '
  $'*\t^/run d 0755 0 0 '
  # "parent directory of a --chown destination": a parent that COPY/ADD
  # --chown makes is owned by the --chown user, as in BuildKit; buildah
  # makes it root's (an existing one both keep)
  $'multistage\t^/app d 0755 '
  # "escape directive": buildah drops the backslashes of ENV/LABEL values
  # under `# escape=``; kiln keeps them as BuildKit does (checked below)
  $'escape-shell\t^/p\\.txt f '
)
# the same for the config: "CASE<TAB>jq filter" applied to both sides
IGNORE_CFG=(
  $'escape-shell\tdel(.Env[] | select(startswith("P="))) | del(.Labels.path)'
)

note "the base image for buildah, from kiln save --format oci"
buildah_base

# filter CASE FILE: FILE without the lines IGNORE_FS lists for CASE
filter() {
  local pats=() e c
  for e in "${IGNORE_FS[@]}"; do
    c=${e%%$'\t'*}
    [ "$c" = "$1" ] || [ "$c" = '*' ] && pats+=(-e "${e#*$'\t'}")
  done
  if [ ${#pats[@]} -gt 0 ]; then grep -Ev "${pats[@]}" "$2" || true; else cat "$2"; fi
}
# filter_cfg CASE FILE: the config FILE with IGNORE_CFG's filters for CASE
filter_cfg() {
  local f=. e
  for e in "${IGNORE_CFG[@]}"; do
    [ "${e%%$'\t'*}" = "$1" ] && f="$f | ${e#*$'\t'}"
  done
  jq -S "$f" "$2"
}

cases=()
for d in "$D"/*/; do cases+=("$(basename "$d")"); done
[ -n "${KILN_DIFF_CASES:-}" ] && read -ra cases <<<"$KILN_DIFF_CASES"
[ ${#cases[@]} -ge 8 ] || [ -n "${KILN_DIFF_CASES:-}" ] || fail "only ${#cases[@]} cases in $D"

bad=()
for name in "${cases[@]}"; do
  note "case $name"
  ctx=$T/ctx/$name
  mkdir -p "$T/ctx"
  cp -a "$D/$name" "$ctx"
  if [ -x "$ctx/prepare.sh" ]; then (cd "$ctx" && ./prepare.sh) && rm "$ctx/prepare.sh"; fi
  kiln build --progress=quiet -t "localhost/diff-$name:k" "$ctx" >/dev/null \
    || fail "kiln build of case $name failed"
  kiln save --format oci -o "$T/k-$name" "localhost/diff-$name:k"
  buildah_build "$ctx" "localhost/diff-$name:b" "$T/b-$name" || fail "buildah bud of case $name failed"
  flat "$T/k-$name" "$T/kiln-$name"
  flat "$T/b-$name" "$T/buildah-$name"
  [ "$(wc -l <"$T/kiln-$name.fs")" -gt 250 ] || fail "case $name: kiln's rootfs has almost nothing in it"
  if ! diff -u <(filter "$name" "$T/buildah-$name.fs") <(filter "$name" "$T/kiln-$name.fs") >"$T/$name.fs.diff"; then
    echo "filesystem of case $name differs (- buildah, + kiln):"
    cat "$T/$name.fs.diff"
    bad+=("$name:fs")
  fi
  if ! diff -u <(filter_cfg "$name" "$T/buildah-$name.cfg") <(filter_cfg "$name" "$T/kiln-$name.cfg") >"$T/$name.cfg.diff"; then
    echo "config of case $name differs (- buildah, + kiln):"
    cat "$T/$name.cfg.diff"
    bad+=("$name:config")
  fi
done
if [ -f "$T/kiln-escape-shell.cfg" ]; then
  note "what IGNORE_CFG leaves out for escape-shell is what BuildKit does"
  assert_eq 'C:\windows\path' "$(jq -r '.Env[] | select(startswith("P=")) | .[2:]' "$T/kiln-escape-shell.cfg")" "ENV under escape=\`"
  assert_eq 'C:\dir' "$(jq -r .Labels.path "$T/kiln-escape-shell.cfg")" "LABEL under escape=\`"
fi
[ ${#bad[@]} = 0 ] || fail "kiln and buildah differ in: ${bad[*]}"
store_clean
