#!/bin/bash
# Ports of BuildKit's ONBUILD tests (moby/buildkit
# frontend/dockerfile/dockerfile_onbuild_test.go; testOnBuildCleared is in
# t_port_buildkit_core.sh, testOnBuildHeredoc in
# t_port_buildkit_args_heredoc.sh), each a `note` section named after the
# BuildKit test, with BuildKit's Dockerfiles (Unix variants) and checks.
# Images BuildKit pushes to a test registry stay in the local store here;
# `alpine` is the local busybox with an /etc/alpine-release file.
# Not ported: testOnBuildNamedContext (named contexts).
source "$IT_DIR/port_lib.sh"
need_root
make_bk_busybox
a=$(bk_ctx alpine-base)
printf '3.99.0\n' >"$a/alpine-release"
printf 'FROM busybox\nCOPY alpine-release /etc/alpine-release\n' >"$a/Dockerfile"
kiln build --progress=quiet -t alpine "$a" >/dev/null

note "testOnBuildWithChildStage (moby/buildkit#5578): triggers run once, not again in a stage built on the stage"
c=$(bk_ctx onbuild-child)
printf 'FROM busybox\nONBUILD RUN mkdir -p /out && echo -n yes >> /out/didrun\n' >"$c/Dockerfile"
kiln build --progress=quiet -t localhost/port-onbuildstage:base "$c" >/dev/null
cat >"$c/Dockerfile" <<'DF'
FROM localhost/port-onbuildstage:base AS base
RUN [ -f /out/didrun ] && touch /step1
RUN rm /out/didrun
RUN [ ! -f /out/didrun ] && touch /step2
FROM base AS child
RUN [ ! -f /out/didrun ] && touch /step3
FROM scratch
COPY --from=child /step* /
DF
bk_local "$c" "$T/obc"
for s in step1 step2 step3; do assert_file "$T/obc/$s" ""; done

note "testOnBuildInheritedStageRun"
c=$(bk_ctx onbuild-stage-run)
cat >"$c/Dockerfile" <<'DF'
FROM busybox AS base
ONBUILD RUN mkdir -p /out && echo -n 11 >> /out/foo
FROM base AS mid
RUN cp /out/foo /out/bar
FROM scratch
COPY --from=mid /out/bar /
DF
bk_local "$c" "$T/obr"
assert_file "$T/obr/bar" 11

note "testOnBuildInheritedStageWithFrom"
c=$(bk_ctx onbuild-stage-from)
cat >"$c/Dockerfile" <<'DF'
FROM alpine AS src
RUN mkdir -p /in && echo -n 12 > /in/file
FROM busybox AS base
ONBUILD COPY --from=src /in/file /out/foo
FROM base AS mid
RUN cp /out/foo /out/bar
FROM scratch
COPY --from=mid /out/bar /
DF
bk_local "$c" "$T/obf"
assert_file "$T/obf/bar" 12

note "testOnBuildNewDeps: a trigger's COPY --from and RUN --mount from= name images and stages of the child"
c=$(bk_ctx onbuild-new-deps)
printf 'FROM busybox\nONBUILD COPY --from=alpine /etc/alpine-release /out/alpine-release2\n' >"$c/Dockerfile"
kiln build --progress=quiet -t localhost/port-onbuilddeps:base "$c" >/dev/null
printf '\tFROM localhost/port-onbuilddeps:base AS base\n\tRUN cat /out/alpine-release2 > /out/alpine-release3\n\tFROM scratch\n\tCOPY --from=base /out /\n\t' >"$c/Dockerfile"
bk_local "$c" "$T/obd1"
assert_file "$T/obd1/alpine-release3" 3.99.0
printf 'FROM alpine\nONBUILD RUN --mount=type=bind,target=/in,from=inputstage mkdir /out && cat /in/foo > /out/bar && cat /in/out/alpine-release2 > /out/bar2\n' >"$c/Dockerfile"
kiln build --progress=quiet -t localhost/port-onbuilddeps:base2 "$c" >/dev/null
cat >"$c/Dockerfile" <<'DF'
	FROM localhost/port-onbuilddeps:base AS inputstage
	RUN cat /out/alpine-release2 > /out/alpine-release4
	RUN echo -n foo > /foo
	FROM localhost/port-onbuilddeps:base2 AS base
	RUN echo -n bar3 > /out/bar3
	FROM scratch
	COPY --from=base /out /
DF
bk_local "$c" "$T/obd2"
assert_file "$T/obd2/bar" foo
assert_file "$T/obd2/bar2" 3.99.0
assert_file "$T/obd2/bar3" bar3

note "testOnBuildWithCacheMount"
c=$(bk_ctx onbuild-cache-mount)
printf 'FROM busybox\nONBUILD RUN --mount=type=cache,target=/cache echo -n 42 >> /cache/foo && echo -n 11 >> /bar\n' >"$c/Dockerfile"
kiln build --progress=quiet -t localhost/port-onbuild-cache:base "$c" >/dev/null
printf 'FROM localhost/port-onbuild-cache:base\nRUN --mount=type=cache,target=/cache [ "$(cat /cache/foo)" = "42" ] && [ "$(cat /bar)" = "11" ]\n' >"$c/Dockerfile"
bk_build "$c"

store_clean
