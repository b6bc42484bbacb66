#!/bin/bash
# Property test for COPY destination resolution: random small base trees
# (directories with various modes and owners, files, absolute / relative /
# ".." / dangling symlinks, whiteouts and an opaque directory from a later
# RUN) x random COPY destinations (gen_dest_cases.py), built by kiln and by
# buildah 1.28; the flattened filesystems must be equal.  Bounded: a fixed
# number of cases from a seed that is printed (KILN_DEST_SEED / KILN_DEST_N
# to reproduce or widen a run).
# it-timeout: 300
source "$IT_DIR/lib.sh"
need umoci jq python3
need_root
source "$IT_DIR/buildah_lib.sh"
make_busybox_base
buildah_base

seed=${KILN_DEST_SEED:-20261206}
n=${KILN_DEST_N:-5}
note "seed $seed, $n cases (KILN_DEST_SEED=$seed KILN_DEST_N=$n reproduces)"
python3 "$IT_DIR/gen_dest_cases.py" "$seed" "$n" "$T/cases"
bad=()
copies=0
for ctx in "$T"/cases/case*; do
  name=$(basename "$ctx")
  copies=$((copies + $(grep -c '^COPY' "$ctx/Dockerfile")))
  kiln build --progress=quiet -t "localhost/prop-$name:k" "$ctx" >/dev/null || { cat "$ctx/Dockerfile"; fail "kiln build of $name failed"; }
  kiln save --format oci -o "$T/k-$name" "localhost/prop-$name:k"
  buildah_build "$ctx" "localhost/prop-$name:b" "$T/b-$name" || fail "buildah bud of $name failed"
  flat "$T/k-$name" "$T/kiln-$name"
  flat "$T/b-$name" "$T/buildah-$name"
  # buildah's RUN mount points (docs/differences.md) are not what is compared
  filt() { grep -Ev '^/(etc/(hosts|hostname|resolv\.conf) f 0755 0 0 0 |run d 0755 0 0 )' "$1"; }
  if ! diff -u <(filt "$T/buildah-$name.fs") <(filt "$T/kiln-$name.fs") >"$T/$name.diff"; then
    echo "$name differs (- buildah, + kiln); its Dockerfile:"
    cat "$ctx/Dockerfile" "$T/$name.diff"
    bad+=("$name")
  fi
done
[ "$copies" -ge $((2 * n)) ] || fail "only $copies COPY destinations in $n cases: the generator found too few"
[ ${#bad[@]} = 0 ] || fail "kiln and buildah differ in: ${bad[*]} (seed $seed)"
note "$copies destinations in $n cases agree"
