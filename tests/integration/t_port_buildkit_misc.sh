#!/bin/bash
# Ports of BuildKit's .dockerignore, secret and scratch-image tests (moby/buildkit
# frontend/dockerfile/dockerfile_dockerignore_test.go,
# dockerfile_secrets_test.go, dockerfile_image_test.go), each a `note`
# section named after the BuildKit test, with BuildKit's Dockerfiles (Unix
# variants) and checks.  BuildKit's secretsprovider.FromMap is --secret here.
source "$IT_DIR/port_lib.sh"
need jq
need_root
make_bk_busybox

note "testDockerignore (dockerfile_dockerignore_test.go)"
c=$(bk_ctx dockerignore)
printf 'FROM scratch\nCOPY . .\n' >"$c/Dockerfile"
for f in foo bar baz bay; do printf '%s-contents' "$f" >"$c/$f"; done
printf '\nba*\nDockerfile\n!bay\n.dockerignore\n' >"$c/.dockerignore"
bk_local "$c" "$T/di"
assert_file "$T/di/foo" foo-contents
assert_absent "$T/di/.dockerignore"
assert_absent "$T/di/Dockerfile"
assert_absent "$T/di/bar"
assert_absent "$T/di/baz"
assert_file "$T/di/bay" bay-contents

note "testDockerignoreInvalid (dockerfile_dockerignore_test.go): fails, and fast"
c=$(bk_ctx dockerignore-invalid)
printf 'FROM scratch\nCOPY . .\n' >"$c/Dockerfile"
printf '!\n' >"$c/.dockerignore"
RC=0
timeout 15 "$KILN" --root "$KILN_ROOT" build "$c" >/dev/null 2>"$T/dii.err" || RC=$?
[ "$RC" -ne 0 ] && [ "$RC" -ne 124 ] || fail "build with an invalid .dockerignore: exit $RC"
assert_contains "$(cat "$T/dii.err")" "kiln: error:"

note "testDockerignoreOverride (dockerfile_dockerignore_test.go): NAME.dockerignore next to the Dockerfile wins"
c=$(bk_ctx dockerignore-override)
printf 'FROM busybox\nCOPY . .\nRUN [ -f foo ] && [ ! -f bar ]\n' >"$c/Dockerfile"
printf '\nbar\n' >"$c/Dockerfile.dockerignore"
printf 'FROM busybox\nCOPY . .\nRUN [ ! -f foo ] && [ -f bar ]\n' >"$c/Dockerfile2"
printf '\nfoo\n' >"$c/Dockerfile2.dockerignore"
printf contents0 >"$c/foo"
printf contents0 >"$c/bar"
bk_build "$c"
bk_build "$c" -f "$c/Dockerfile2"

note "testSecretFileParams, testSecretAsEnviron, testSecretAsEnvironWithFileMount (dockerfile_secrets_test.go)"
c=$(bk_ctx secrets)
printf pw >"$T/mysecret"
cat >"$c/Dockerfile" <<'DF'
FROM busybox
RUN --mount=type=secret,required=false,mode=741,uid=100,gid=102,target=/mysecret [ "$(stat -c "%u %g %f" /mysecret)" = "100 102 81e1" ]
RUN [ ! -f /mysecret ] # check no stub left behind
ENV SECRET_ENV=foo
RUN --mount=type=secret,id=mysecret,env=SECRET_ENV [ "$SECRET_ENV" == "pw" ] && [ ! -f /run/secrets/mysecret ] || false
RUN --mount=type=secret,id=mysecret,target=/run/secrets/secret,env=SECRET_ENV [ "$SECRET_ENV" == "pw" ] && [ -f /run/secrets/secret ] || false
DF
bk_build "$c" --secret "id=mysecret,src=$T/mysecret"

note "testSecretRequiredWithoutValue (dockerfile_secrets_test.go)"
c=$(bk_ctx secret-required)
printf 'FROM busybox \n\t\tRUN --mount=type=secret,required,id=mysecret foo' >"$c/Dockerfile"
expect_fail kiln build "$c"
# BuildKit: "secret mysecret: not found"
assert_contains "$ERR" "Dockerfile:2: RUN"
assert_contains "$ERR" "secret \`mysecret\` is required but was not given"

note "testDockerfileScratchConfig (dockerfile_image_test.go)"
c=$(bk_ctx scratch-config)
printf '\nFROM scratch\nENV foo=bar\n' >"$c/Dockerfile"
kiln build --progress=quiet -t localhost/port-scratch "$c" >/dev/null
cfg() { ijq localhost/port-scratch ".config$1"; }
assert_ne "" "$(cfg '.os // ""')" os
assert_ne "" "$(cfg '.architecture // ""')" architecture
assert_ne "" "$(cfg '.config.WorkingDir // ""')" WorkingDir
assert_eq layers "$(cfg .rootfs.type)"
assert_eq 0 "$(cfg '.rootfs.diff_ids | length')"
assert_eq 1 "$(cfg '.history | length')"
assert_contains "$(cfg '.history[0].created_by')" "ENV foo=bar"
assert_eq true "$(cfg '.history[0].empty_layer')"
assert_contains "$(cfg '.config.Env')" '"foo=bar"'
assert_contains "$(cfg '.config.Env')" '"PATH='

store_clean
