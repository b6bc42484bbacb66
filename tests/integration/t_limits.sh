#!/bin/bash
# Resource limits on whole-read inputs (docs/security.md, "Limits"): each at
# its value builds or pulls, one past it fails with an error that names the
# file (Dockerfile:LINE where there is one), the limit and its value, and
# leaves no image behind.  Dockerfile size, instruction count, heredoc size,
# ARG names, --build-arg count and .dockerignore size through `kiln build`;
# a RUN making a tree deeper than a layer entry may be; a manifest listing
# too many layers and an oversized response header from a registry through
# `kiln pull` (a registry on 127.0.0.1 behind tests/tools/faultproxy.py).
source "$IT_DIR/lib.sh"
source "$IT_DIR/registry_env.sh"
need python3 jq
mkdir -p "$T/ctx"
images_before=$(kiln images)

# bad_build EXPECTED_MESSAGE: building $T/ctx fails with it, nothing tagged
bad_build() {
  expect_fail timeout 120 "$KILN" --root "$KILN_ROOT" build --progress=quiet -t localhost/limits:bad "$@"
}
no_image_left() { assert_eq "$images_before" "$(kiln images)" "$1: kiln images"; }

note "Dockerfile size: 16 MiB builds, one byte more is refused"
python3 - "$T/ctx/Dockerfile" 16777216 <<'EOF'
import sys
head = "FROM scratch\nLABEL size=max\n#"
n = int(sys.argv[2])
open(sys.argv[1], "w").write(head + "x" * (n - len(head) - 1) + "\n")
EOF
kiln build --progress=quiet -t localhost/limits:size "$T/ctx" >/dev/null
assert_eq max "$(ijq localhost/limits:size .config.config.Labels.size)" "label of the 16 MiB Dockerfile"
kiln rmi localhost/limits:size >/dev/null
images_before=$(kiln images)
printf '#' >>"$T/ctx/Dockerfile"
bad_build "$T/ctx"
assert_contains "$ERR" "kiln: error: Dockerfile \`$T/ctx/Dockerfile\` is larger than the limit of 16777216 bytes"
no_image_left size

note "instructions: 10000 build, 10001 name the line"
{ echo "FROM scratch"; for i in $(seq 2 10000); do echo "EXPOSE $i"; done; } >"$T/ctx/Dockerfile"
kiln build --progress=quiet -t localhost/limits:instr "$T/ctx" >/dev/null
assert_eq 9999 "$(ijq localhost/limits:instr '.config.config.ExposedPorts | length')" "ports of 10000 instructions"
kiln rmi localhost/limits:instr >/dev/null
echo "EXPOSE 10001" >>"$T/ctx/Dockerfile"
bad_build "$T/ctx"
assert_contains "$ERR" "kiln: error: Dockerfile:10001: EXPOSE: more than 10000 instructions in the file (the limit)"
no_image_left instructions

# heredoc_dockerfile BYTES: COPY of a heredoc whose body is BYTES bytes
heredoc_dockerfile() {
  python3 - "$T/ctx/Dockerfile" "$1" <<'EOF'
import sys
n = int(sys.argv[2])
line = "y" * 1023 + "\n"
body = line * (n // 1024) + "z" * (n % 1024 - 1) + "\n" if n % 1024 else line * (n // 1024)
open(sys.argv[1], "w").write("FROM scratch\nCOPY <<EOF /big\n" + body + "EOF\n")
EOF
}
note "heredoc: 4 MiB builds, one byte more is refused"
heredoc_dockerfile 4194304
kiln build --progress=quiet -t localhost/limits:heredoc "$T/ctx" >/dev/null
rm -rf "$T/out"
kiln build --progress=quiet --output "type=local,dest=$T/out" "$T/ctx" >/dev/null
assert_eq 4194304 "$(stat -c %s "$T/out/big")" "size of the file made from a 4 MiB heredoc"
kiln rmi localhost/limits:heredoc >/dev/null
heredoc_dockerfile 4194305
bad_build "$T/ctx"
assert_contains "$ERR" "kiln: error: Dockerfile:2: COPY: heredoc \`EOF\` is larger than the limit of 4194304 bytes"
no_image_left heredoc

note "ARG names: 4096 build, 4097 name the line"
{ echo "FROM scratch"; for i in $(seq 1 4096); do echo "ARG A$i=v"; done; echo "LABEL last=\$A4096"; } \
  >"$T/ctx/Dockerfile"
kiln build --progress=quiet -t localhost/limits:args "$T/ctx" >/dev/null
assert_eq v "$(ijq localhost/limits:args .config.config.Labels.last)" "the 4096th ARG"
kiln rmi localhost/limits:args >/dev/null
sed -i '$i ARG A4097' "$T/ctx/Dockerfile"
bad_build "$T/ctx"
assert_contains "$ERR" "kiln: error: Dockerfile:4098: ARG: more than 4096 ARG names declared in the file (the limit)"
no_image_left "ARG names"

note "--build-arg: 4096 build, 4097 are refused"
printf 'FROM scratch\nARG B4096\nLABEL last=$B4096\n' >"$T/ctx/Dockerfile"
ba=()
for i in $(seq 1 4096); do ba+=(--build-arg "B$i=x$i"); done
kiln build --progress=quiet "${ba[@]}" -t localhost/limits:buildargs "$T/ctx" >/dev/null
assert_eq x4096 "$(ijq localhost/limits:buildargs .config.config.Labels.last)" "the 4096th --build-arg"
kiln rmi localhost/limits:buildargs >/dev/null
bad_build "${ba[@]}" --build-arg B4097=y "$T/ctx"
assert_contains "$ERR" "kiln: error: 4097 build arguments (--build-arg) given, more than the limit of 4096"
no_image_left "--build-arg"

note ".dockerignore: 4 MiB is read, one byte more is refused"
printf 'FROM scratch\nCOPY . /c/\n' >"$T/ctx/Dockerfile"
python3 -c 'import sys; n = 4194304; open(sys.argv[1], "w").write("secret\n#" + "x" * (n - 9) + "\n")' \
  "$T/ctx/.dockerignore"
put "$T/ctx/secret" s
kiln build --progress=quiet -t localhost/limits:ignore "$T/ctx" >/dev/null
rm -rf "$T/out"
kiln build --progress=quiet --output "type=local,dest=$T/out" "$T/ctx" >/dev/null
assert_absent "$T/out/c/secret"
assert_file "$T/out/c/Dockerfile"
kiln rmi localhost/limits:ignore >/dev/null
printf '#' >>"$T/ctx/.dockerignore"
bad_build "$T/ctx"
assert_contains "$ERR" "kiln: error: ignore file \`.dockerignore\` is larger than the limit of 4194304 bytes"
no_image_left .dockerignore
rm -f "$T/ctx/.dockerignore" "$T/ctx/secret"

note "a RUN that makes a path 512 directories deep builds and exports, 513 is refused"
make_busybox_base
images_before=$(kiln images)
# N directories d below /t and a file f: N + 2 components
cat >"$T/ctx/Dockerfile" <<'EOF'
FROM localhost/busybox:latest
ARG N
RUN p=/t; i=0; while [ $i -lt $N ]; do p=$p/d; i=$((i+1)); done; mkdir -p $p && echo deep >$p/f
EOF
rm -rf "$T/out"
kiln build --progress=quiet --build-arg N=510 --output "type=local,dest=$T/out" "$T/ctx" >/dev/null
assert_eq deep "$(cd "$T/out/t" && cat "$(printf 'd/%.0s' $(seq 1 510))f")" "the file 512 components deep"
bad_build --build-arg N=511 "$T/ctx"
assert_contains "$ERR" "Dockerfile:3"
assert_contains "$ERR" "deeper than 512 directories (the limit of a layer entry)"
no_image_left "deep RUN"

# ---- from a registry ----
reg_need
reg_start_http limits
proxy_start "$REG_URL"
kiln push "${KILN_RETRY[@]}" $KILN_TLS_OFF localhost/busybox:latest "$REG_HOST/base:1" >/dev/null 2>"$T/push.err" \
  || fail "push: $(cat "$T/push.err")"

# put_manifest TAG NLAYERS: the pushed image's manifest with its one layer
# listed NLAYERS times (the registry accepts it: every blob exists)
put_manifest() {
  curl -fsS -H "Accept: application/vnd.oci.image.manifest.v1+json" "$REG_URL/v2/base/manifests/1" \
    | jq -c --argjson n "$2" '.layers = [range($n) as $i | .layers[0]]' >"$T/m.json"
  curl -fsS -X PUT -H "Content-Type: $(jq -r .mediaType "$T/m.json")" --data-binary "@$T/m.json" \
    "$REG_URL/v2/base/manifests/$1" >/dev/null || fail "registry refused the crafted manifest"
}

note "a manifest listing 1001 layers is refused before any layer is fetched"
put_manifest many 1001
proxy_reset
expect_fail kiln pull $KILN_TLS_OFF "$PROXY_HOST/base:many"
assert_contains "$ERR" "\`layers\` lists 1001 layers, more than the limit of 1000"
assert_eq 0 "$(proxy_stat '.classes.blob_download.requests // 0')" "blob downloads for a refused manifest"
# 1000 layers are read: the pull goes on to the config, whose single diff_id
# does not match 1000 layers (a different error, after the limit check)
put_manifest limit 1000
expect_fail kiln pull $KILN_TLS_OFF "$PROXY_HOST/base:limit"
assert_not_contains "$ERR" "more than the limit"
note "1000 layers: ${ERR##*kiln: error: }"

note "a response header line over 64 KiB is refused naming the request"
pad() { python3 -c "import sys; print('p' * int(sys.argv[1]), end='')" "$1"; }
# a line is "X-Pad: VALUE\r\n": 9 bytes besides the value
proxy_rules "[{\"method\": \"GET\", \"path\": \"^/v2/\$\", \"action\": \"status\", \"status\": 200,
  \"times\": -1, \"headers\": {\"X-Pad\": \"$(pad $((65536 - 9)))\"}}]"
kiln pull $KILN_TLS_OFF "$PROXY_HOST/base:1" >/dev/null 2>"$T/pull.err" || fail "pull at the limit: $(cat "$T/pull.err")"
proxy_rules "[{\"method\": \"GET\", \"path\": \"^/v2/\$\", \"action\": \"status\", \"status\": 200,
  \"times\": -1, \"headers\": {\"X-Pad\": \"$(pad $((65536 - 8)))\"}}]"
expect_fail kiln pull $KILN_TLS_OFF "$PROXY_HOST/base:1"
assert_contains "$ERR" "GET \`http://$PROXY_HOST/v2/\`: response header line of 65537 bytes, more than the limit of 65536"
echo "limits: ok"
