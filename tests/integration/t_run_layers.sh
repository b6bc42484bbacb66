#!/bin/bash
# RUN steps: what they change in lower layers becomes their layer (new,
# modified, chmod/chown, hardlinked, deleted and deleted-then-recreated =
# opaque directories), checked on the umoci-unpacked rootfs, with skopeo and
# on the layer tars; nothing the sandbox mounts (/etc/hosts, resolv.conf,
# hostname, mount targets) reaches a layer.  Also: prefixed output, USER /
# WORKDIR / ENV / ARG inside RUN, exec form, heredocs, SHELL,
# --network=none, cache / secret / bind / tmpfs mounts, and a failing RUN.
source "$IT_DIR/lib.sh"
need umoci skopeo jq sha256sum
need_root
make_busybox_base

# layer_tars LAYOUT: one line per layer blob path, base first
layer_tars() {
  local m
  m=$(jq -r '.manifests[0].digest' "$1/index.json")
  jq -r '.layers[].digest' "$1/blobs/sha256/${m#sha256:}" | sed "s|^sha256:|$1/blobs/sha256/|"
}

secret=kiln-secret-$RANDOM$RANDOM-value
printf '%s' "$secret" >"$T/secret.txt"
secret_sha=$(printf '%s' "$secret" | sha256sum | cut -c1-64)
export KILN_TEST_TOKEN=$secret

c=$T/ctx
put "$c/ctx.txt" from-context
cat >"$c/Dockerfile" <<DF
FROM localhost/busybox:latest AS other
RUN mkdir /o && echo from-other > /o/f

FROM localhost/busybox:latest
ARG BUILD_MODE=fast
ENV APP_ENV=prod
RUN mkdir -p /data/keep /data/gone/deep /data/redo/sub /data/mode \\
 && echo keep > /data/keep/k && echo gone > /data/gone/deep/g && echo old > /data/redo/sub/old \\
 && echo one > /data/mod && chmod 600 /data/mod && echo link > /data/hl && echo bye > /data/bye
RUN rm -rf /data/gone /data/redo /data/bye /bin/vi && mkdir -p /data/redo && echo new > /data/redo/new \\
 && echo two >> /data/mod && chmod 640 /data/mod && chown 1000:1000 /data/mod \\
 && ln /data/hl /data/hl2 && chmod 0750 /data/mode && chown app:app /data/keep
WORKDIR /work
USER app
RUN id; pwd; echo "mode=\$BUILD_MODE env=\$APP_ENV"; env | sort | sed 's/^/env: /'
RUN --mount=type=secret,id=tok,uid=1000 test "\$(sha256sum </run/secrets/tok | cut -c1-64)" = $secret_sha && echo secret-file-ok
RUN --mount=type=secret,id=tok if cat /run/secrets/tok >/dev/null 2>&1; then echo secret-readable-by-app; else echo secret-denied-ok; fi
USER root
RUN --mount=type=secret,id=env,env=TOKEN test "\$(printf %s "\$TOKEN" | sha256sum | cut -c1-64)" = $secret_sha && echo secret-env-ok
RUN ["/bin/echo", "exec-form", "\$APP_ENV"]
SHELL ["/bin/sh", "-c", "echo via-custom-shell; eval \"\$1\"", "sh"]
RUN echo shell-form-ran
SHELL ["/bin/sh", "-c"]
RUN --network=none echo "ifaces=\$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ,)"
RUN --mount=type=bind,source=ctx.txt,target=/mnt/ctx cat /mnt/ctx && if echo x >/mnt/ctx 2>/dev/null; then echo bind-writable; fi
RUN --mount=type=bind,from=other,source=/o,target=/mnt/o cat /mnt/o/f && if touch /mnt/o/new 2>/dev/null; then echo bind-writable; fi
RUN --mount=type=tmpfs,target=/scratch echo t >/scratch/t && grep -q ' /scratch tmpfs ' /proc/mounts && echo tmpfs-ok
RUN <<EOF
echo heredoc-script
echo line2 >/hd.txt
EOF
RUN cat <<EOF >/hd-cat.txt
content \$APP_ENV
EOF
ARG RUN_ID=1
RUN --mount=type=cache,target=/var/cache/kc,id=kc echo "run-\$RUN_ID" >>/var/cache/kc/log && echo "cachelog=\$(cat /var/cache/kc/log | tr '\n' ,)"
DF

kiln build --progress=plain --secret id=tok,src="$T/secret.txt" --secret id=env,env=KILN_TEST_TOKEN \
  -t localhost/run:v1 --build-arg BUILD_MODE=slow "$c" >"$T/build.log" 2>&1 || { cat "$T/build.log"; fail "build failed"; }
log=$(cat "$T/build.log")
cat "$T/build.log"

note "output lines are prefixed with the step; USER, WORKDIR, ARG and ENV are visible"
n=$(grep -c '^\[' <<<"$log" || true)
[ "$n" -gt 0 ] || fail "no step lines"
assert_match "$log" '^\[stage-1 [0-9]+/[0-9]+\] \| uid=1000\(app\) gid=1000\(app\) groups=1000\(app\)$' "RUN id as USER app (primary group listed, as Docker does)"
assert_match "$log" '^\[stage-1 [0-9]+/[0-9]+\] \| /work$' "RUN pwd after WORKDIR"
assert_match "$log" '^\[stage-1 [0-9]+/[0-9]+\] \| mode=slow env=prod$' "ARG (from --build-arg) and ENV in RUN"
assert_match "$log" '^\[stage-1 [0-9]+/[0-9]+\] \| env: BUILD_MODE=slow$' "ARG in RUN's environment"
assert_match "$log" '^\[stage-1 [0-9]+/[0-9]+\] \| env: APP_ENV=prod$' "ENV in RUN's environment"
assert_match "$log" '^\[stage-1 [0-9]+/[0-9]+\] \| secret-file-ok$' "secret file readable with uid="
assert_match "$log" '^\[stage-1 [0-9]+/[0-9]+\] \| secret-denied-ok$' "secret without uid= (0400 root) as app"
assert_match "$log" '^\[stage-1 [0-9]+/[0-9]+\] \| secret-env-ok$' "secret as env="
assert_match "$log" '^\[stage-1 [0-9]+/[0-9]+\] \| exec-form \$APP_ENV$' "exec form: no shell expansion"
assert_match "$log" '^\[stage-1 [0-9]+/[0-9]+\] \| via-custom-shell$' "SHELL replaces the shell form's shell"
assert_match "$log" '^\[stage-1 [0-9]+/[0-9]+\] \| shell-form-ran$' "shell form under the custom SHELL"
assert_match "$log" '^\[stage-1 [0-9]+/[0-9]+\] \| ifaces=lo,$' "--network=none sees only lo"
assert_match "$log" '^\[stage-1 [0-9]+/[0-9]+\] \| from-context$' "bind mount from the context"
assert_match "$log" '^\[stage-1 [0-9]+/[0-9]+\] \| from-other$' "bind mount from another stage"
if grep -Eq '^\[stage-1 [0-9]+/[0-9]+\] \| (bind-writable|secret-readable-by-app)$' <<<"$log"; then
  fail "a bind mount was writable or the secret readable by app: $(grep -E '\| (bind-writable|secret-readable)' <<<"$log")"
fi
assert_match "$log" '^\[stage-1 [0-9]+/[0-9]+\] \| tmpfs-ok$' "tmpfs mount"
assert_match "$log" '^\[stage-1 [0-9]+/[0-9]+\] \| heredoc-script$' "RUN <<EOF script"
assert_match "$log" '^\[stage-1 [0-9]+/[0-9]+\] \| cachelog=run-1,$' "first use of the cache mount"
assert_match "$log" '^miss: RUN mkdir -p /data/keep' "miss line before an uncached RUN"
assert_not_contains "$log" "$secret" "build log"

note "layers and history (skopeo)"
kiln save --format oci -o "$T/lay" localhost/run:v1
sk=$(skopeo inspect "oci:$T/lay:v1")
cfg=$(skopeo inspect --config "oci:$T/lay:v1")
nrun=$(grep -c '^RUN' "$c/Dockerfile")
nrun_final=$((nrun - 1))   # one RUN is in stage `other`
assert_eq $((1 + nrun_final)) "$(jq '.Layers | length' <<<"$sk")" "layers (base + one per RUN)"
assert_eq $((1 + nrun_final)) "$(jq '.rootfs.diff_ids | length' <<<"$cfg")" "diff_ids"
hist=$(jq -r '.history[] | select(.empty_layer != true) | .created_by' <<<"$cfg")
assert_eq "$nrun_final" "$(grep -c '^RUN' <<<"$hist")" "history entries of RUN layers"
assert_contains "$hist" "RUN rm -rf /data/gone /data/redo" "history"
assert_contains "$hist" 'RUN ["/bin/echo", "exec-form", "$APP_ENV"]' "history of the exec form"

note "the unpacked filesystem"
unpack_layout "$T/lay" "$T/b"
r=$T/b/rootfs
assert_file "$r/data/keep/k" keep
assert_stat "$r/data/keep" %u:%g:%a 1000:1000:755
assert_stat "$r/data/keep/k" %u:%g 0:0
assert_file "$r/data/mod" "one
two"
assert_stat "$r/data/mod" %a:%u:%g 640:1000:1000
assert_stat "$r/data/mode" %a 750
assert_absent "$r/data/gone"
assert_absent "$r/data/bye"
assert_absent "$r/bin/vi"
assert_file "$r/bin/busybox"
assert_file "$r/data/redo/new" new
assert_absent "$r/data/redo/sub"
assert_file "$r/data/hl" link
assert_file "$r/data/hl2" link
assert_eq "$(stat -c %i "$r/data/hl")" "$(stat -c %i "$r/data/hl2")" "inode of the hardlinked pair"
assert_stat "$r/data/hl" %h 2
assert_file "$r/hd.txt" line2
assert_file "$r/hd-cat.txt" "content prod"
for p in var/cache/kc scratch mnt/ctx mnt/o run/secrets; do assert_absent "$r/$p"; done
assert_file "$r/etc/passwd"
for p in etc/hosts etc/resolv.conf etc/hostname; do assert_absent "$r/$p"; done

note "the deletion and the opaque directory are in the second RUN's layer"
mapfile -t tars < <(layer_tars "$T/lay")
l2=$(tar -tzf "${tars[2]}")
assert_contains "$l2" "data/.wh.gone" "layer 2"
assert_contains "$l2" "data/.wh.bye" "layer 2"
assert_contains "$l2" "bin/.wh.vi" "layer 2"
assert_contains "$l2" "data/redo/.wh..wh..opq" "layer 2"
assert_not_contains "$l2" "data/keep/k" "layer 2 (unchanged file)"

note "the secret is in no blob, nor in kiln inspect"
if grep -rqF "$secret" "$KILN_ROOT"; then fail "the secret value is in the store: $(grep -rlF "$secret" "$KILN_ROOT")"; fi
for f in "${tars[@]}"; do
  if zcat "$f" | grep -qaF "$secret"; then fail "the secret value is in layer $f"; fi
done
assert_not_contains "$(kiln inspect localhost/run:v1)" "$secret" "kiln inspect"

note "the cache mount persists into a second build (only that step reruns)"
kiln build --progress=plain --secret id=tok,src="$T/secret.txt" --secret id=env,env=KILN_TEST_TOKEN \
  -t localhost/run:v2 --build-arg BUILD_MODE=slow --build-arg RUN_ID=2 "$c" >"$T/build2.log" 2>&1 \
  || { cat "$T/build2.log"; fail "second build failed"; }
log2=$(cat "$T/build2.log")
assert_match "$log2" '^\[stage-1 [0-9]+/[0-9]+\] \| cachelog=run-1,run-2,$' "second use of the cache mount"
assert_eq 1 "$(grep -c '^miss:' <<<"$log2")" "steps that missed in the second build"
assert_match "$log2" '^miss: RUN --mount=type=cache' "the step that missed"

note "a failing RUN"
mkdir -p "$T/bad"
printf 'FROM localhost/busybox:latest\nRUN echo before\nRUN echo out; exit 3\nRUN echo never\n' >"$T/bad/Dockerfile"
expect_fail kiln build --progress=plain -t localhost/run:bad "$T/bad"
assert_contains "$ERR" "kiln: error: Dockerfile:3: RUN echo out; exit 3: exited with status 3" "error of a failing RUN"
assert_match "$OUT$ERR" '^\[3/4\] \| out$' "output of the failing step"
assert_not_contains "$OUT$ERR" never "steps after the failure"
assert_not_contains "$(kiln images)" run:bad "kiln images"
store_clean

note "nothing the sandbox mounts reaches a layer"
for i in "${!tars[@]}"; do
  [ "$i" = 0 ] && continue
  list=$(tar -tzf "${tars[$i]}")
  for p in etc/hosts etc/resolv.conf etc/hostname var/cache/kc scratch mnt/ctx mnt/o run/secrets; do
    if grep -Eq "^(\./)?$p/?$" <<<"$list"; then fail "layer $i contains $p: $list"; fi
  done
  # no empty regular file a mount point left behind (no RUN here writes one)
  empties=$(tar -tvzf "${tars[$i]}" | awk '$1 ~ /^-/ && $3 == 0 && $NF !~ /\.wh\./ { print $NF }')
  [ -z "$empties" ] || fail "layer $i has empty files (mount points?): $empties"
done
# The first RUN writes only under /data: its layer must hold nothing else
# (an `etc/` entry here is the directory of the /etc/hosts mount point).
l1=$(tar -tzf "${tars[1]}" | sed 's|^\./||' | sort)
assert_eq "" "$(grep -v '^data/' <<<"$l1" || true)" "entries outside /data in the first RUN layer"
