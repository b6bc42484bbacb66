# tests/integration/port_lib.sh - helpers for the t_port_buildkit_*.sh tests,
# which port tests of BuildKit's Dockerfile frontend
# (moby/buildkit frontend/dockerfile/dockerfile_*_test.go).
# shellcheck shell=bash
#
# BuildKit's tests build FROM Docker Hub's busybox and check either files the
# build exports (client.ExporterLocal: here `-o type=local`) or RUN steps that
# fail the build.  make_bk_busybox gives the local busybox base the name
# `busybox` (docker.io/library/busybox:latest, found in the store, so never
# pulled) with the users and groups of Docker Hub's busybox image (daemon,
# wheel with root in it, nobody), which the ported RUN checks name.
source "$IT_DIR/lib.sh"

make_bk_busybox() {
  make_busybox_base
  local ctx=$T/bk-busybox
  mkdir -p "$ctx/etc"
  cat >"$ctx/etc/passwd" <<'PW'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
PW
  cat >"$ctx/etc/group" <<'GR'
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
wheel:x:10:root
users:x:100:
nobody:x:65534:
GR
  : >"$ctx/etc/shadow"
  chmod 0644 "$ctx/etc/passwd" "$ctx/etc/group"
  chmod 0640 "$ctx/etc/shadow"
  find "$ctx" -exec touch -h -d @1700000000 {} +
  printf 'FROM localhost/busybox:latest\nCOPY etc/ /etc/\n' >"$ctx/Dockerfile"
  kiln build --progress=quiet -t busybox "$ctx" >/dev/null
}

# bk_ctx NAME: a fresh, empty context directory $T/NAME (printed).
bk_ctx() { rm -rf "${T:?}/$1"; mkdir -p "$T/$1"; echo "$T/$1"; }

# bk_local CTX OUT [BUILD FLAGS...]: build CTX and export the result's
# filesystem to OUT (BuildKit's local exporter in the ported tests).
bk_local() {
  local ctx=$1 out=$2
  shift 2
  rm -rf "$out"
  kiln build --progress=quiet "$@" -o "type=local,dest=$out" "$ctx" >/dev/null
}

# bk_build CTX [BUILD FLAGS...]: a build whose RUN steps are the checks.
bk_build() {
  local ctx=$1
  shift
  kiln build --progress=quiet "$@" "$ctx" >/dev/null
}
