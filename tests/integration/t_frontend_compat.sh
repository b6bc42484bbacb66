#!/bin/bash
# Dockerfile front-end cases where kiln must do what BuildKit does (issue 10),
# each checked against the BuildKit source named in its section.
source "$IT_DIR/lib.sh"
need jq
make_busybox_base
mkdir -p "$T/ctx"
B=localhost/busybox:latest

# build NAME DOCKERFILE_TEXT [BUILD ARGS...]: builds $T/ctx with that
# Dockerfile, tagged localhost/fc:NAME; prints kiln's stderr+stdout to $T/NAME.log
build() {
  local name=$1 text=$2; shift 2
  printf '%s\n' "$text" >"$T/ctx/Dockerfile"
  kiln build --progress=plain "$@" -t "localhost/fc:$name" "$T/ctx" >"$T/$name.log" 2>&1 \
    || { cat "$T/$name.log" >&2; fail "build $name"; }
}
# bad NAME DOCKERFILE_TEXT [BUILD ARGS...]: the build must fail; $ERR holds stderr
bad() {
  local text=$2; shift 2
  printf '%s\n' "$text" >"$T/ctx/Dockerfile"
  expect_fail kiln build --progress=plain "$@" -t localhost/fc:bad "$T/ctx"
}
cfg() { ijq "localhost/fc:$1" ".config.config$2"; }

note "1. a JSON array with \\u0000 is exec form (BuildKit parser/line_parsers.go parseJSON:"
note "   json.Unmarshal accepts it); kiln cannot store the NUL and says so instead of"
note "   writing a shell-form CMD"
for ins in 'CMD ["x\u0000y"]' 'ENTRYPOINT ["/bin/true", "\u0000"]' 'RUN ["/bin/true", "a\u0000"]' \
           'VOLUME ["/v\u0000"]' 'COPY ["a\u0000", "/d"]' 'SHELL ["/bin/sh", "\u0000"]' \
           'HEALTHCHECK CMD ["x\u0000"]'; do
  bad nul "FROM $B
$ins"
  assert_contains "$ERR" "Dockerfile:2: ${ins%% *}: JSON string" "error for $ins"
  assert_contains "$ERR" 'contains a NUL character (\u0000)' "error for $ins"
done
# still exec form without the NUL: the escaped characters are decoded
build json1 "FROM $B
CMD [\"x\\u0041y\"]"
assert_eq '["xAy"]' "$(cfg json1 .Cmd)" "CMD with an escape"

note "2. WORKDIR keeps an absolute path as written (BuildKit convert.go dispatchWorkdir ->"
note "   util/system/path.go NormalizeWorkdir/NormalizePath keepSlash=false); relative ones"
note "   are joined and cleaned; the directory created and COPY destinations use the clean path"
put "$T/ctx/a.txt" a
put "$T/ctx/b.txt" b
build wd1 "FROM $B
WORKDIR /tmp/
RUN pwd >/tmp/pwd1
WORKDIR /app//x/../
COPY a.txt .
COPY b.txt /app
COPY a.txt sub/
WORKDIR rel/
RUN pwd >/app/pwd2"
assert_eq '"/app/rel"' "$(cfg wd1 .WorkingDir | jq -R .)" "relative WORKDIR after /app//x/../"
unpack_image localhost/fc:wd1 "$T/wd1"
assert_file "$T/wd1/rootfs/tmp/pwd1" /tmp
assert_file "$T/wd1/rootfs/app/a.txt" a
assert_file "$T/wd1/rootfs/app/b.txt" b
assert_file "$T/wd1/rootfs/app/sub/a.txt" a
assert_file "$T/wd1/rootfs/app/pwd2" /app/rel
assert_absent "$T/wd1/rootfs/app/x"
build wd2 "FROM $B
WORKDIR /srv/data/"
assert_eq /srv/data/ "$(cfg wd2 .WorkingDir)" "WORKDIR /srv/data/"
assert_contains "$(ijq localhost/fc:wd2 '.config.history[-1].created_by')" "WORKDIR /srv/data/" "history"
# an image whose WorkingDir ends in / (as Docker writes it) as a base: COPY
# to that directory by name, once it exists in a layer, goes into it
build wd3 "FROM localhost/fc:wd2
COPY a.txt .
COPY b.txt /srv/data
RUN true
COPY a.txt /srv/data"
unpack_image localhost/fc:wd3 "$T/wd3"
assert_file "$T/wd3/rootfs/srv/data/a.txt" a
assert_file "$T/wd3/rootfs/srv/data/b.txt" b
build wd4 "FROM localhost/fc:wd2
COPY b.txt /srv/data"
unpack_image localhost/fc:wd4 "$T/wd4"
assert_file "$T/wd4/rootfs/srv/data/b.txt" b

note "3. VOLUME: each word expanded on its own; an empty result is an error (BuildKit"
note "   instructions/commands.go VolumeCommand.Expand, convert.go dispatchVolume)"
bad vol1 "FROM $B
ENV foo=\"\"
VOLUME /ok \$foo"
assert_contains "$ERR" 'Dockerfile:3: VOLUME: `$foo` expands to an empty string; a volume can not be empty'
bad vol2 "FROM $B
ARG foo
VOLUME [\"\${foo}\"]"
assert_contains "$ERR" 'Dockerfile:3: VOLUME: `${foo}` expands to an empty string'
bad vol3 "FROM $B
VOLUME [\" \"]"
assert_contains "$ERR" 'Dockerfile:2: VOLUME: a volume can not be an empty string'
build vol4 "FROM $B
ENV two=\"/a /b\"
VOLUME \$two /c
VOLUME [\" /d \"]"
assert_eq '{"/a /b":{},"/c":{},"/d":{}}' "$(cfg vol4 .Volumes)" "volumes"

note "4. two stages with the same name: a warning naming both lines; FROM resolves to the"
note "   latest earlier stage (convert.go dispatchStates.addState), COPY --from, --mount from="
note "   and --target to the last stage of the file (toCommand/detectRunMount/resolveTarget:"
note "   findStateByName); lint rule from validations.go validateStageNames"
dup="FROM $B AS final
RUN echo first >/which
FROM final AS final
RUN echo \"second on \$(cat /which)\" >/which
FROM $B AS user
COPY --from=final /which /copied
RUN --mount=type=bind,from=final,target=/m cat /m/which >/mounted
FROM final
RUN cp /which /base"
build dup1 "$dup"
assert_contains "$(cat "$T/dup1.log")" \
  'kiln: warning: Dockerfile:3: DuplicateStageName: Duplicate stage name "final", stage names should be unique (first named at line 1)' \
  "warning"
unpack_image localhost/fc:dup1 "$T/dup1"
assert_file "$T/dup1/rootfs/base" "second on first"
build dup2 "$dup" --target final
assert_eq "" "$(ijq localhost/fc:dup2 '.config.history[] | select(.created_by | test("cp /which")) | .created_by')" "--target final is stage 2, not the last stage"
unpack_image localhost/fc:dup2 "$T/dup2"
assert_file "$T/dup2/rootfs/which" "second on first"
build dup3 "$dup" --target user
unpack_image localhost/fc:dup3 "$T/dup3"
assert_file "$T/dup3/rootfs/copied" "second on first"
assert_file "$T/dup3/rootfs/mounted" "second on first"
# --from names the last `final` of the file even where an earlier one was built
# (BuildKit then refuses it as defined later; kiln builds that stage first)
build dup4 "FROM $B AS final
RUN echo first >/which
FROM $B AS user
COPY --from=final /which /copied
FROM $B AS final
RUN echo last >/which" --target user
unpack_image localhost/fc:dup4 "$T/dup4"
assert_file "$T/dup4/rootfs/copied" "last"

note "5. COPY --from with a variable is rejected, global ARG or stage ARG (BuildKit convert.go"
note "   toCommand: ProcessWordWithMatches with no env must leave --from unchanged)"
msg='variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround'
bad from1 "ARG SRC=src
FROM $B AS src
FROM $B
COPY --from=\$SRC /etc/passwd /p"
assert_contains "$ERR" "Dockerfile:4: COPY: $msg"
bad from2 "FROM $B AS src
FROM $B
ARG SRC=src
COPY --from=\"\${SRC}\" /etc/passwd /p"
assert_contains "$ERR" "Dockerfile:4: COPY: $msg"
assert_not_contains "$ERR" "build context"
# an ONBUILD trigger is checked when it runs
build onb "FROM $B AS src
FROM $B
ONBUILD ARG SRC=src
ONBUILD COPY --from=\$SRC /etc/passwd /p"
bad from3 "FROM localhost/fc:onb"
assert_contains "$ERR" "COPY: $msg"
assert_contains "$ERR" "Dockerfile:1: ONBUILD trigger"

note "6. ARG without a value (no default, no --build-arg, no global value) is not exported"
note "   and stays unset for expansion (BuildKit convert.go dispatchArg: AddEnv only when"
note "   arg.Value != nil; later instructions expand against that env with shell.Lex)"
build arg1 "ARG GLOBAL_NOVAL
ARG GLOBAL_VAL=g
FROM $B
ARG FOO
ARG GLOBAL_NOVAL
ARG GLOBAL_VAL
ARG EMPTY=
ARG GIVEN
ARG KEPT=k
ARG KEPT
RUN env | grep -E '^(FOO|GLOBAL_NOVAL|GLOBAL_VAL|EMPTY|GIVEN|KEPT)=' | sort >/env.txt; \
    echo \"plus=[\${FOO+x}] minus=[\${FOO-d}] cminus=[\${FOO:-d}] given=[\${GIVEN+x}]\" >/sh.txt
LABEL plus=\"[\${FOO+x}]\" minus=\"[\${FOO-d}]\" cminus=\"[\${FOO:-d}]\" given=\"[\${GIVEN+x}]\" empty=\"[\${EMPTY+x}]\"" \
  --build-arg GIVEN=
unpack_image localhost/fc:arg1 "$T/arg1"
assert_file "$T/arg1/rootfs/env.txt" "EMPTY=
GIVEN=
GLOBAL_VAL=g
KEPT=k"
assert_file "$T/arg1/rootfs/sh.txt" "plus=[] minus=[d] cminus=[d] given=[x]"
assert_eq '{"cminus":"[d]","empty":"[x]","given":"[x]","minus":"[d]","plus":"[]"}' "$(cfg arg1 .Labels)" "expansion in LABEL"

note "   a stage built FROM another inherits its ARGs (convert.go dispatchState.init:"
note "   ds.state = base.state, buildArgs appended; reference.md since moby/buildkit#5381)"
build arg2 "FROM $B AS base
ARG NAME=joe
ARG NOVAL
FROM base AS child
ARG NAME
RUN echo \"hello \$NAME [\${NOVAL+x}]\" >/hello
LABEL name=\$NAME
FROM $B AS other
RUN echo \"[\${NAME+x}]\" >/other
FROM child
COPY --from=other /other /other"
unpack_image localhost/fc:arg2 "$T/arg2"
assert_file "$T/arg2/rootfs/hello" "hello joe []"
assert_file "$T/arg2/rootfs/other" "[]"
assert_eq joe "$(cfg arg2 .Labels.name)" "ARG NAME in a LABEL of the child stage"

note "   ENV and ARG share one environment where the later wins (dispatchEnv and dispatchArg"
note "   both llb.State.AddEnv, client/llb/meta.go AddOrReplace); the config keeps the ENV"
build arg3 "FROM $B
ENV V=env
ARG V=arg
ENV V=env2
RUN echo \$V >/v2
LABEL l2=\$V"
unpack_image localhost/fc:arg3 "$T/arg3"
assert_file "$T/arg3/rootfs/v2" env2
assert_eq env2 "$(cfg arg3 .Labels.l2)" "ENV after ARG"
build arg4 "FROM $B
ENV V=env
ARG V=arg
RUN echo \$V >/v1
LABEL l1=\$V"
unpack_image localhost/fc:arg4 "$T/arg4"
assert_file "$T/arg4/rootfs/v1" arg
assert_eq arg "$(cfg arg4 .Labels.l1)" "ARG after ENV"
assert_eq V=env "$(cfg arg4 '.Env[-1]')" "the config keeps the ENV"

note "7. text that is not UTF-8 (a Latin-1 Dockerfile) reaches the config with each bad byte"
note "   replaced by U+FFFD, as Go's encoding/json writes BuildKit's config (it used to vanish);"
note "   RUN gets the bytes unchanged; in a JSON array they are U+FFFD (Go json.Unmarshal)"
printf 'FROM %s\nCMD echo caf\xe9\nLABEL l=caf\xe9\nENV E=caf\xe9\nRUN printf caf\xe9 >/raw\n' "$B" >"$T/ctx/Dockerfile"
kiln build --progress=quiet -t localhost/fc:latin1 "$T/ctx" >/dev/null
assert_eq "$(printf '["/bin/sh","-c","echo caf\xef\xbf\xbd"]')" "$(cfg latin1 .Cmd)" "CMD"
assert_eq "$(printf 'caf\xef\xbf\xbd')" "$(cfg latin1 .Labels.l)" "LABEL"
assert_eq "$(printf 'E=caf\xef\xbf\xbd')" "$(cfg latin1 '.Env[-1]')" "ENV"
printf 'FROM %s\nENTRYPOINT ["echo", "caf\xe9"]\n' "$B" >"$T/ctx/Dockerfile"
kiln build --progress=quiet -t localhost/fc:latin1j "$T/ctx" >/dev/null
assert_eq "$(printf '["echo","caf\xef\xbf\xbd"]')" "$(cfg latin1j .Entrypoint)" "JSON form with a Latin-1 byte (Go json.Unmarshal)"
unpack_image localhost/fc:latin1 "$T/latin1"
assert_eq 636166e9 "$(od -An -tx1 "$T/latin1/rootfs/raw" | tr -d ' \n')" "RUN's bytes"

note "ok"
