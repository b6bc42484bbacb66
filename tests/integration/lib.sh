# tests/integration/lib.sh - helpers shared by the t_*.sh integration tests.
# shellcheck shell=bash
#
# Sourced by every test (and by examples/demo.sh).  run.sh provides:
#   KILN       absolute path of the kiln binary under test
#   T          the test's private, empty temp dir (also the cwd)
#   KILN_ROOT  $T/store, passed as --root by the kiln() wrapper
#   TMPDIR     $T/tmp, so stray temp files written by kiln are visible
#   IT_DIR     this directory;  REPO_DIR  the checkout (for testdata/)
# A test fails by exiting non-zero (any failing command does, via set -e),
# skips by exiting 77 (see skip).
set -eEuo pipefail

: "${KILN:?KILN must be the kiln binary}"
: "${T:?T must be the test temp dir}"
: "${KILN_ROOT:=$T/store}"
IT_DIR=${IT_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
REPO_DIR=${REPO_DIR:-$(cd "$IT_DIR/../.." && pwd)}

# Name the failing command and line, so a log shows why a test died even
# when the command itself printed nothing.
trap 'echo "error: line $LINENO of ${BASH_SOURCE[0]##*/}: \`$BASH_COMMAND\` exited $?" >&2' ERR

kiln() { "$KILN" --root "$KILN_ROOT" "$@"; }

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }
note() { echo "--- $*"; }

assert_eq() {   # EXPECTED ACTUAL [WHAT]
  [ "$1" = "$2" ] || fail "${3:-value}: expected [$1], got [$2]"
}
assert_ne() {   # A B [WHAT]
  [ "$1" != "$2" ] || fail "${3:-value}: expected something other than [$1]"
}
assert_contains() {   # HAYSTACK NEEDLE [WHAT]
  case "$1" in *"$2"*) ;; *) fail "${3:-output} does not contain [$2]; it is:
$1" ;; esac
}
assert_not_contains() {   # HAYSTACK NEEDLE [WHAT]
  case "$1" in *"$2"*) fail "${3:-output} contains [$2]; it is:
$1" ;; *) ;; esac
}
assert_match() {   # HAYSTACK ERE [WHAT]
  grep -Eq -- "$2" <<<"$1" || fail "${3:-output} does not match /$2/; it is:
$1"
}
assert_file() {   # PATH [CONTENT]: a regular file (not a symlink), optionally with exact content
  [ -f "$1" ] && [ ! -L "$1" ] || fail "expected a regular file at $1"
  if [ $# -ge 2 ]; then assert_eq "$2" "$(cat "$1")" "content of $1"; fi
}
assert_dir() { [ -d "$1" ] && [ ! -L "$1" ] || fail "expected a directory at $1"; }
assert_absent() { [ ! -e "$1" ] && [ ! -L "$1" ] || fail "expected nothing at $1"; }
assert_symlink() {   # PATH TARGET
  [ -L "$1" ] || fail "expected a symlink at $1"
  assert_eq "$2" "$(readlink "$1")" "target of $1"
}
assert_stat() {   # PATH FORMAT EXPECTED  e.g. assert_stat f %a 640; assert_stat f %u:%g 0:0
  assert_eq "$3" "$(stat -c "$2" "$1")" "stat -c $2 of $1"
}

# expect_fail CMD...: CMD must exit non-zero and say "kiln: error:" on
# stderr.  Sets OUT, ERR and RC for further checks.
expect_fail() {
  RC=0
  "$@" >"$T/.out" 2>"$T/.err" || RC=$?
  OUT=$(cat "$T/.out"); ERR=$(cat "$T/.err")
  [ "$RC" -ne 0 ] || fail "expected failure of: $* (stdout: $OUT) (stderr: $ERR)"
  [ "$RC" -lt 126 ] || fail "exit $RC (crash or signal?) from: $*; stderr: $ERR"
  assert_contains "$ERR" "kiln: error:" "stderr of: $*"
}

# need TOOL...: skip the test when a tool is missing.
need() {
  local t
  for t in "$@"; do command -v "$t" >/dev/null 2>&1 || skip "needs \`$t\`"; done
}
need_root() { [ "$(id -u)" = 0 ] || skip "needs root (umoci unpack keeps owners only as root)"; }

# Writes a file, creating parent directories: put PATH CONTENT [MODE]
put() {
  mkdir -p "$(dirname "$1")"
  printf '%s\n' "$2" >"$1"
  chmod "${3:-0644}" "$1"
}

# The small local base image every test builds FROM: busybox-static plus one
# symlink per applet, /etc/passwd with root, nobody and app (1000:1000),
# tagged localhost/busybox:latest.  Built with kiln itself (FROM scratch +
# COPY), so the store under test holds it.  BASE_BUILD_FLAGS adds build flags.
BUSYBOX_BIN=${BUSYBOX_BIN:-/bin/busybox}
make_busybox_base() {
  local ctx=${1:-$T/busybox-base}
  [ -x "$BUSYBOX_BIN" ] || skip "needs busybox-static at $BUSYBOX_BIN"
  local r=$ctx/rootfs a
  mkdir -p "$r"/{bin,etc,tmp,root,home/app,proc,sys,dev}
  chmod 1777 "$r/tmp"
  install -m 0755 "$BUSYBOX_BIN" "$r/bin/busybox"
  for a in $("$BUSYBOX_BIN" --list); do
    [ "$a" = busybox ] || ln -sf busybox "$r/bin/$a"
  done
  cat >"$r/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
app:x:1000:1000:app:/home/app:/bin/sh
EOF
  cat >"$r/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
app:x:1000:
EOF
  chown 1000:1000 "$r/home/app" 2>/dev/null || true
  find "$r" -exec touch -h -d @1700000000 {} +
  printf 'FROM scratch\nCOPY rootfs/ /\nENV PATH=/bin\nCMD ["/bin/sh"]\n' >"$ctx/Dockerfile"
  # shellcheck disable=SC2086
  kiln build --progress=quiet ${BASE_BUILD_FLAGS:-} -t localhost/busybox:latest "$ctx" >/dev/null
}

# ref.name of the (single) manifest in an OCI layout directory.
oci_ref_name() {
  jq -r '.manifests[0].annotations["org.opencontainers.image.ref.name"] // empty' "$1/index.json"
}

# unpack_layout LAYOUT_DIR BUNDLE: umoci-unpack the image of a layout; the
# rootfs is BUNDLE/rootfs.  Fails if the layout is not valid for umoci.
unpack_layout() {
  local ref
  ref=$(oci_ref_name "$1")
  [ -n "$ref" ] || fail "no ref.name in $1/index.json"
  rm -rf "$2"
  umoci unpack --image "$1:$ref" "$2" >/dev/null
}

# unpack_image IMAGE BUNDLE: kiln save --format oci, then unpack_layout.
unpack_image() {
  local lay=$T/layout.$RANDOM
  kiln save --format oci -o "$lay" "$1"
  unpack_layout "$lay" "$2"
}

# Inspect helpers: the image JSON (manifest, config, digest), and one jq
# expression over it (raw output, compact JSON for objects).
inspect() { kiln inspect "$1"; }
ijq() { kiln inspect "$1" | jq -cr "$2"; }

# kill_after DELAY WHAT CMD...: runs CMD in the background, kill -9 after
# DELAY seconds; KILLED is incremented when the kill landed while it ran.  A
# command that finished first is reported; one that failed by itself fails
# the test (its output is in $T/kill.log).
kill_after() {
  local delay=$1 what=$2 pid rc=0
  shift 2
  "$@" >"$T/kill.log" 2>&1 &
  pid=$!
  sleep "$delay"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" || rc=$?
  if [ "$rc" = 137 ]; then
    KILLED=$((${KILLED:-0} + 1))
  elif [ "$rc" != 0 ]; then
    cat "$T/kill.log" >&2
    fail "$what before the kill at ${delay}s failed by itself (exit $rc)"
  else
    echo "$what finished before the kill at ${delay}s"
  fi
}

# store_clean: kiln store check must succeed and say "store ok".
store_clean() {
  local out rc=0
  out=$(kiln store check 2>&1) || rc=$?
  [ "$rc" = 0 ] || fail "kiln store check exit $rc: $out"
  assert_contains "$out" "store ok" "kiln store check"
}

# rootless_user PREFIX SUBID_BASE: an unprivileged user (PREFIX$$, home
# /home/PREFIX$$) with a subordinate id range at SUBID_BASE, removed on exit;
# sets $user and $home and defines as_user CMD...  Skips (with the reason)
# where rootless builds cannot run.
rootless_user() {
  need useradd userdel runuser
  command -v newuidmap >/dev/null 2>&1 && command -v newgidmap >/dev/null 2>&1 \
    || skip "needs newuidmap and newgidmap (uidmap package) for rootless builds"
  [ "$(cat /proc/sys/user/max_user_namespaces 2>/dev/null || echo 0)" -gt 0 ] \
    || skip "user namespaces are disabled (user.max_user_namespaces = 0)"
  if [ -r /proc/sys/kernel/unprivileged_userns_clone ] && [ "$(cat /proc/sys/kernel/unprivileged_userns_clone)" = 0 ]; then
    skip "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0)"
  fi
  user=$1$$
  home=/home/$user
  trap rootless_cleanup EXIT
  useradd -m -d "$home" -s /bin/bash "$user"
  echo "$user:$2:65536" >>/etc/subuid
  echo "$user:$2:65536" >>/etc/subgid
  [ -x "$KILN" ] && runuser -u "$user" -- test -x "$KILN" || skip "$KILN is not executable by an unprivileged user"
  as_user mkdir -p "$home/tmp"
  as_user unshare --user --map-root-user true 2>/dev/null || skip "the user cannot create a user namespace"
}
rootless_cleanup() {
  pkill -KILL -u "$user" 2>/dev/null || true
  userdel -r "$user" >/dev/null 2>&1 || true
  rm -rf "$home"
  sed -i "/^$user:/d" /etc/subuid /etc/subgid 2>/dev/null || true
}
as_user() { runuser -u "$user" -- env -i PATH=/usr/bin:/bin HOME="$home" TMPDIR="$home/tmp" "$@"; }
