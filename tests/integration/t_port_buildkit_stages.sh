#!/bin/bash
# Ports of BuildKit's cache and stage-selection tests (moby/buildkit
# frontend/dockerfile/dockerfile_cache_test.go, dockerfile_core_test.go,
# dockerfile_multistage_test.go), each a `note` section named after the
# BuildKit test, with BuildKit's Dockerfiles (Unix variants) and checks.
# Not ported: testNoCache's `no-cache=s1` (kiln's --no-cache takes no stage
# list), the cache import/export tests (t_registry_cache.sh covers kiln's).
source "$IT_DIR/port_lib.sh"
need_root
make_bk_busybox

note "testWildcardRenameCache: a renamed file that a wildcard matched misses the cache"
c=$(bk_ctx wildcard-rename)
printf 'FROM busybox\nCOPY file* /files/\nRUN ls /files/file1\n' >"$c/Dockerfile"
printf foo >"$c/file1"
bk_build "$c"
mv "$c/file1" "$c/file2"
expect_fail kiln build "$c"
assert_contains "$ERR" "Dockerfile:3: RUN ls /files/file1"

note "testTargetMistype (dockerfile_core_test.go)"
c=$(bk_ctx target-mistype)
printf 'FROM scratch AS build\nCOPY Dockerfile /out\nFROM scratch\nCOPY --from=build /out /\n' >"$c/Dockerfile"
expect_fail kiln build --target bulid "$c"
# BuildKit: `target stage "bulid" could not be found (did you mean build?)`
assert_contains "$ERR" "target stage \`bulid\` could not be found"
assert_contains "$ERR" "(did you mean build?)"

note "testNoCache (dockerfile_cache_test.go, without no-cache=STAGE)"
c=$(bk_ctx no-cache)
cat >"$c/Dockerfile" <<'DF'
FROM busybox AS s0
RUN cat /dev/urandom | head -c 100 | sha256sum | tee unique
FROM busybox AS s1
RUN cat /dev/urandom | head -c 100 | sha256sum | tee unique2
FROM scratch
COPY --from=s0 unique /
COPY --from=s1 unique2 /
DF
bk_local "$c" "$T/nc1"
bk_local "$c" "$T/nc2" --no-cache
assert_ne "$(cat "$T/nc1/unique")" "$(cat "$T/nc2/unique")" "unique with --no-cache"
assert_ne "$(cat "$T/nc1/unique2")" "$(cat "$T/nc2/unique2")" "unique2 with --no-cache"
bk_local "$c" "$T/nc3"
assert_eq "$(cat "$T/nc2/unique")" "$(cat "$T/nc3/unique")" "unique from the cache --no-cache refreshed"

note "testOutOfOrderStage (dockerfile_multistage_test.go): BuildKit refuses a COPY --from a"
note "   stage defined later; kiln builds that stage first (docs/differences.md)"
c=$(bk_ctx out-of-order)
for src in / /d2; do
  printf 'FROM busybox AS target\nCOPY --from=build %s /out\nFROM busybox AS build\nCOPY /Dockerfile /d2\nFROM target\n' "$src" \
    >"$c/Dockerfile"
  bk_local "$c" "$T/ooo"
  if [ "$src" = / ]; then
    assert_file "$T/ooo/out/d2" "$(cat "$c/Dockerfile")"
    [ -x "$T/ooo/out/bin/busybox" ] || fail "the later stage's base is under /out too"
  else
    assert_file "$T/ooo/out" "$(cat "$c/Dockerfile")"
  fi
done
note "   a chain back to the stage itself is refused, as BuildKit (TestDockerfileCircularDependencies)"
printf 'FROM busybox AS stage0\nCOPY --from=stage2 f1 /sub/\nFROM busybox AS stage1\nCOPY --from=stage0 f2 /sub/\nFROM busybox AS stage2\nCOPY --from=stage1 f2 /sub/\n' >"$c/Dockerfile"
expect_fail kiln build "$c"
assert_contains "$ERR" "Dockerfile:2: COPY: circular dependency detected on stage: stage0"

store_clean
