#!/bin/bash
# FROM --platform is never ignored: this machine's platform (also spelled
# $BUILDPLATFORM or $TARGETPLATFORM, and arm64's default variant v8 on an
# arm64 machine) builds; any other platform fails naming it and the
# Dockerfile line, since kiln builds for this machine only; a value that is
# no OS/ARCH is a parse error.  A store image made for another platform is
# used with a warning that names both, as BuildKit warns.
source "$IT_DIR/lib.sh"
need jq skopeo
make_busybox_base
arch=$(kiln inspect localhost/busybox:latest | jq -r .config.architecture)
other=s390x
[ "$arch" = s390x ] && other=amd64

c=$T/ctx
mkdir -p "$c"
for plat in "linux/$arch" '$BUILDPLATFORM' '${TARGETPLATFORM}'; do
  printf 'FROM --platform=%s localhost/busybox:latest AS base\nFROM --platform=%s base\nCOPY Dockerfile /d\n' \
    "$plat" "$plat" >"$c/Dockerfile"
  kiln build --progress=plain -t localhost/it/plat "$c" >/dev/null 2>"$T/err" || fail "FROM --platform=$plat: $(cat "$T/err")"
  assert_not_contains "$(cat "$T/err")" "warning" "FROM --platform=$plat"
done

note "another platform fails, naming it and the line"
printf 'FROM localhost/busybox:latest\nFROM --platform=linux/%s localhost/busybox:latest\n' "$other" >"$c/Dockerfile"
expect_fail kiln build "$c"
assert_contains "$ERR" "linux/$other" "the platform asked for"
assert_contains "$ERR" "Dockerfile:2" "the line"
assert_contains "$ERR" "linux/$arch" "this machine's platform"
printf 'FROM --platform=linux/%s scratch\n' "$other" >"$c/Dockerfile"
expect_fail kiln build "$c"
assert_contains "$ERR" "linux/$other" "FROM --platform scratch"
printf 'FROM --platform=linux localhost/busybox:latest\n' >"$c/Dockerfile"
expect_fail kiln build "$c"
assert_contains "$ERR" "OS/ARCH" "a platform without an architecture"

note "a store image of another platform: used, with a warning"
kiln save --format oci -o "$T/lay" localhost/busybox:latest
m=$(jq -r '.manifests[0].digest' "$T/lay/index.json" | cut -d: -f2)
cfg=$(jq -r .config.digest "$T/lay/blobs/sha256/$m" | cut -d: -f2)
jq -c --arg a "$other" '.architecture = $a' "$T/lay/blobs/sha256/$cfg" >"$T/cfg.json"
cd2=$(sha256sum "$T/cfg.json" | cut -d' ' -f1)
cp "$T/cfg.json" "$T/lay/blobs/sha256/$cd2"
jq -c --arg d "sha256:$cd2" --argjson s "$(stat -c %s "$T/cfg.json")" '.config.digest = $d | .config.size = $s' \
  "$T/lay/blobs/sha256/$m" >"$T/man.json"
md2=$(sha256sum "$T/man.json" | cut -d' ' -f1)
cp "$T/man.json" "$T/lay/blobs/sha256/$md2"
jq -c --arg d "sha256:$md2" --argjson s "$(stat -c %s "$T/man.json")" \
  '.manifests[0].digest = $d | .manifests[0].size = $s | .manifests[0].annotations["org.opencontainers.image.ref.name"] = "foreign"' \
  "$T/lay/index.json" >"$T/index.json"
cp "$T/index.json" "$T/lay/index.json"
skopeo copy -q "oci:$T/lay:foreign" "oci:$KILN_ROOT:localhost/it/foreign:1"
printf 'FROM localhost/it/foreign:1\nCOPY Dockerfile /d\n' >"$c/Dockerfile"
kiln build --progress=plain -t localhost/it/fromforeign "$c" >/dev/null 2>"$T/err" || fail "FROM a foreign image: $(cat "$T/err")"
assert_contains "$(cat "$T/err")" "warning: FROM localhost/it/foreign:1: the image is for linux/$other, the build for linux/$arch" \
  "warning"
assert_eq "$other" "$(kiln inspect localhost/it/fromforeign | jq -r .config.architecture)" "the image's platform is kept"
kiln store check >/dev/null
