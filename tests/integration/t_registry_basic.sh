#!/bin/bash
# Registry round trip against a real (Debian) distribution registry over
# plain http on 127.0.0.1: push, skopeo reads it, pull into a fresh store
# gives the same digest, a second push uploads nothing, a push to another
# repository mounts, skopeo-written Docker v2s2 images and OCI indexes pull,
# error messages name registry, repository, object, status and error code,
# login/logout write a 0600 auth file without echoing the secret.
source "$IT_DIR/lib.sh"
source "$IT_DIR/registry_lib.sh"
need skopeo jq
registry_start

c=$T/ctx
put "$c/hello.txt" hello
put "$c/dir/a.txt" a
printf 'FROM scratch\nCOPY hello.txt /hello.txt\nCOPY dir /dir/\nCMD ["/hello.txt"]\n' >"$c/Dockerfile"
kiln build --progress=quiet -t localhost/app:v1 --iidfile "$T/iid" "$c" >/dev/null
local_digest=$(ijq localhost/app:v1 .digest)

note "push, then skopeo reads the same manifest"
kiln push --digestfile "$T/pushed" localhost/app:v1 "$REG/app:v1" 2>"$T/push1.err"
assert_eq "$local_digest" "$(cat "$T/pushed")" "--digestfile"
assert_contains "$(cat "$T/push1.err")" "3 blobs uploaded, 0 mounted, 0 already present"
sk=$(skopeo inspect --tls-verify=false "docker://$REG/app:v1")
assert_eq "$local_digest" "$(jq -r .Digest <<<"$sk")" "digest seen by skopeo"
assert_eq 2 "$(jq '.Layers | length' <<<"$sk")" "layers seen by skopeo"

note "pull into a fresh store: same digest, store clean, provenance recorded"
KILN_ROOT=$T/store2
out=$(kiln pull "$REG/app:v1" 2>"$T/pull.err")
assert_eq "$local_digest" "$out" "pull prints the manifest digest"
assert_eq "$local_digest" "$(ijq "$REG/app:v1" .digest)" "kiln inspect after pull"
store_clean
assert_eq "[\"$REG/app\"]" "$(jq -c --arg d "$local_digest" '.[$d]' "$KILN_ROOT/kiln/sources.json")" "sources.json"
note "pull again: layers are not fetched again"
kiln pull "$REG/app:v1" >/dev/null 2>"$T/pull2.err"
assert_not_contains "$(cat "$T/pull2.err")" "fetched"
assert_contains "$(cat "$T/pull2.err")" "already present"
KILN_ROOT=$T/store

note "push again uploads nothing"
posts=$(registry_upload_count)
kiln push localhost/app:v1 "$REG/app:v1" 2>"$T/push2.err"
assert_contains "$(cat "$T/push2.err")" "0 blobs uploaded, 0 mounted, 3 already present"
assert_eq "$posts" "$(registry_upload_count)" "upload sessions opened by the second push"

note "push to another repository of the same registry mounts the blobs"
kiln push localhost/app:v1 "$REG/team/copy:v1" 2>"$T/push3.err"
assert_contains "$(cat "$T/push3.err")" "0 blobs uploaded, 3 mounted"
assert_eq "$local_digest" "$(skopeo inspect --tls-verify=false "docker://$REG/team/copy:v1" | jq -r .Digest)"

note "chunked upload (PATCH) of a blob larger than --chunk-size"
head -c 200000 /dev/urandom >"$c/big.bin"
printf 'FROM scratch\nCOPY big.bin /big.bin\n' >"$c/Dockerfile"
kiln build --progress=quiet -t localhost/big:v1 "$c" >/dev/null
kiln push -q --chunk-size 65536 localhost/big:v1 "$REG/big:v1"
assert_match "$(cat "$REG_DIR/log")" '"PATCH /v2/big/blobs/uploads/' "registry access log"
KILN_ROOT=$T/store3 kiln pull -q "$REG/big:v1" >/dev/null
assert_eq "$(ijq localhost/big:v1 .digest)" "$(KILN_ROOT=$T/store3 ijq "$REG/big:v1" .digest)" "chunked round trip"

note "a Docker v2s2 image written by skopeo pulls"
kiln save --format oci -o "$T/lay" localhost/app:v1
skopeo copy -q --dest-tls-verify=false --format v2s2 "oci:$T/lay:v1" "docker://$REG/dock:v1"
KILN_ROOT=$T/store4
kiln pull -q "$REG/dock:v1" >/dev/null
assert_eq "application/vnd.docker.distribution.manifest.v2+json" "$(ijq "$REG/dock:v1" .manifest.mediaType)"
assert_eq "$(skopeo inspect --tls-verify=false "docker://$REG/dock:v1" | jq -r .Digest)" "$(ijq "$REG/dock:v1" .digest)"
store_clean
KILN_ROOT=$T/store

note "an OCI index: the host platform is chosen, a missing one is an error"
m=$(curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$REG/v2/app/manifests/v1")
md=sha256:$(printf %s "$m" | sha256sum | cut -d' ' -f1)
ix=$(jq -cn --arg d "$md" --argjson s "$(printf %s "$m" | wc -c)" '{schemaVersion:2,
  mediaType:"application/vnd.oci.image.index.v1+json",
  manifests:[{mediaType:"application/vnd.oci.image.manifest.v1+json",digest:$d,size:$s,
              platform:{os:"linux",architecture:"s390x"}},
             {mediaType:"application/vnd.oci.image.manifest.v1+json",digest:$d,size:$s,
              platform:{os:"linux",architecture:"amd64"}}]}')
curl -fsS -X PUT -H 'Content-Type: application/vnd.oci.image.index.v1+json' --data-binary "$ix" \
  "http://$REG/v2/app/manifests/multi" -o /dev/null
KILN_ROOT=$T/store5
assert_eq "$local_digest" "$(kiln pull -q --platform linux/amd64 "$REG/app:multi")" "pull from an index"
expect_fail kiln pull --platform linux/riscv64 "$REG/app:multi"
assert_contains "$ERR" "no image for platform \`linux/riscv64\`"

note "errors name the registry, repository, object, status and code"
expect_fail kiln pull "$REG/app:nope"
assert_contains "$ERR" "pull \`$REG/app:nope\`: manifest \`nope\`: HTTP 404 (MANIFEST_UNKNOWN"
expect_fail kiln pull --platform linux "$REG/app:v1"
assert_eq 2 "$RC" "exit status of a usage error"
registry_stop
expect_fail kiln pull --retry 0 "$REG/app:v1"
assert_contains "$ERR" "connect to registry \`$REG\`"
registry_start registry2

note "login verifies against /v2/ and writes a 0600 auth file; logout removes the entry"
af=$T/auth/auth.json
out=$(printf 's3cr3t-pw\n' | kiln login --authfile "$af" -u alice --password-stdin "$REG" 2>&1)
assert_not_contains "$out" "s3cr3t-pw"
assert_stat "$af" %a 600
assert_eq "$(printf alice:s3cr3t-pw | base64)" "$(jq -r --arg r "$REG" '.auths[$r].auth' "$af")" "auth entry"
REGISTRY_AUTH_FILE=$af kiln logout "$REG" >/dev/null
assert_eq null "$(jq -c --arg r "$REG" '.auths[$r]' "$af")" "entry after logout"
expect_fail kiln logout --authfile "$af" "$REG"
assert_contains "$ERR" "not logged in"
