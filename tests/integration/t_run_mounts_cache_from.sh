#!/bin/bash
# RUN --mount=type=cache,from=STAGE,source=/sub,target=/test: BuildKit
# (dockerfile2llb convert_runmount.go dispatchRunMounts: the cache mount's
# state is the from= stage, SourcePath(source); solver/llbsolver/mounts/
# mount.go getRefCacheDir: the cache is keyed by id + the from= snapshot and
# a NEW cache starts as a copy of that snapshot) seeds the cache from the
# stage's path when the cache is created, and only then:
#  - first build: the command sees the stage's /sub (content, owner, mode,
#    symlink), nothing outside it;
#  - a later build reuses the cache as the last RUN left it (not re-seeded);
#  - a changed from= stage is another snapshot: a new cache, seeded from it;
#  - from= an image of the store works the same; a missing source fails
#    naming Dockerfile:LINE; nothing of the cache reaches the layer.
source "$IT_DIR/lib.sh"
need umoci
need_root
make_busybox_base

c=$T/ctx
mkdir -p "$c"
cat >"$c/Dockerfile" <<'DF'
FROM localhost/busybox:latest AS builder
ARG SEED=one
RUN mkdir -p /sub/d && echo "seed-$SEED" >/sub/d/f && ln -s d/f /sub/link && echo x >/sub/drop \
 && chown 1000:1000 /sub/d && chmod 0750 /sub/d && echo outside >/outside
FROM localhost/busybox:latest
ARG RUN_ID=1
RUN --mount=type=cache,from=builder,source=/sub,target=/test \
    echo "content=$(cat /test/d/f) link=$(readlink /test/link) d=$(stat -c %u:%g:%a /test/d)" \
 && echo "drop=$(cat /test/drop 2>/dev/null || echo gone) outside=$(ls /test/outside 2>/dev/null || echo no)" \
 && echo "log=$(cat /test/log 2>/dev/null | tr '\n' ,)" \
 && rm -f /test/drop && echo "run-$RUN_ID" >>/test/log && echo done >/done
DF

# out LOG: the RUN's output lines, without the step prefix
out() { sed -n 's/^\[[^]]*\] | //p' "$1"; }
build() {
  local log=$1; shift
  kiln build --progress=plain "$@" "$c" >"$log" 2>&1 || { cat "$log"; fail "build $* failed"; }
}

note "first build: the cache starts as the builder's /sub"
build "$T/b1.log" -t localhost/cf:1
assert_eq "content=seed-one link=d/f d=1000:1000:750
drop=x outside=no
log=" "$(out "$T/b1.log")" "what the first RUN saw"

note "second build (the RUN reruns): the cache as the first RUN left it, not seeded again"
build "$T/b2.log" --build-arg RUN_ID=2
assert_eq "content=seed-one link=d/f d=1000:1000:750
drop=gone outside=no
log=run-1," "$(out "$T/b2.log")" "what the second RUN saw"

note "a changed builder stage: another snapshot, so a new cache seeded from it"
build "$T/b3.log" --build-arg SEED=two --build-arg RUN_ID=3
assert_eq "content=seed-two link=d/f d=1000:1000:750
drop=x outside=no
log=" "$(out "$T/b3.log")" "what the RUN saw after the builder changed"
note "and back to the first builder: its cache, with both earlier runs"
build "$T/b4.log" --build-arg RUN_ID=4
assert_eq "log=run-1,run-2," "$(out "$T/b4.log" | sed -n 3p)" "the first builder's cache"

note "nothing of the cache is in the image"
unpack_image localhost/cf:1 "$T/bundle"
assert_file "$T/bundle/rootfs/done" done
assert_absent "$T/bundle/rootfs/test"
assert_absent "$T/bundle/rootfs/sub"

note "from= an image of the store"
cat >"$c/Dockerfile.img" <<'DF'
FROM localhost/busybox:latest
RUN --mount=type=cache,from=localhost/busybox:latest,source=/etc,target=/seed,id=img \
    echo "passwd=$(head -1 /seed/passwd) before=$(cat /seed/mark 2>/dev/null)" && echo m >/seed/mark
DF
build "$T/i1.log" -f "$c/Dockerfile.img" --no-cache
assert_eq "passwd=root:x:0:0:root:/root:/bin/sh before=" "$(out "$T/i1.log")" "image-seeded cache, first use"
build "$T/i2.log" -f "$c/Dockerfile.img" --no-cache
assert_eq "passwd=root:x:0:0:root:/root:/bin/sh before=m" "$(out "$T/i2.log")" "image-seeded cache, reused"

note "a source the stage does not have: an error naming the line"
cat >"$c/Dockerfile.bad" <<'DF'
FROM localhost/busybox:latest AS builder
FROM localhost/busybox:latest
RUN --mount=type=cache,from=builder,source=/nope,target=/test true
DF
expect_fail kiln build --progress=plain -f "$c/Dockerfile.bad" "$c"
assert_contains "$ERR" "Dockerfile.bad:3" "error location"
assert_contains "$ERR" "/nope" "error names the source"
store_clean
