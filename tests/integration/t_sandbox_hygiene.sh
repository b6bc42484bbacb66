#!/bin/bash
# Sandbox hygiene: after a successful build, a failing build, and builds
# killed with SIGTERM and SIGKILL during `RUN sleep`, the host mount table is
# unchanged (nothing ignored), no process of the build remains and the store
# checks clean.  Inside RUN (and kiln run) the only inherited fds are 0, 1,
# 2 and the environment holds nothing from the host.
source "$IT_DIR/lib.sh"
need jq pgrep
make_busybox_base

mnt0=$(cat /proc/self/mountinfo)
check_host() {   # WHAT
  assert_eq "$mnt0" "$(cat /proc/self/mountinfo)" "host mount table after $1"
  local i
  for i in $(seq 50); do pgrep -f "$marker" >/dev/null || break; sleep 0.1; done
  if pgrep -f "$marker" >/dev/null; then
    fail "processes of the build remain after $1: $(pgrep -af "$marker")"
  fi
  store_clean
}
# a sleep no other process on the machine runs
marker="sleep 3$((RANDOM % 10)).$RANDOM"

c=$T/ctx
mkdir -p "$c"
cat >"$c/Dockerfile" <<'EOF'
FROM localhost/busybox:latest
RUN echo "fds=$(ls -l /proc/self/fd 2>/dev/null | awk 'NR > 1 { printf "%s=%s ", $9, $11 }')"
RUN echo "envkeys=$(env | cut -d= -f1 | sort | tr '\n' ' ')"; env | sed 's/^/env: /'
EOF

note "a successful build, started with extra open fds and a marker in the environment"
export KILN_HOST_MARKER=leaked-$RANDOM
kiln build --progress=plain -t localhost/hyg:ok "$c" >"$T/ok.log" 2>&1 3>/dev/null 4>/dev/null 7<"$c/Dockerfile" \
  || { cat "$T/ok.log"; fail "build failed"; }
cat "$T/ok.log"
fds=$(sed -n 's/^\[[0-9]*\/[0-9]*\] | fds=//p' "$T/ok.log")
# `ls` itself holds the lowest free fd (3) on the directory it lists; a
# leaked 3, 4 or 7 would show as /dev/null or the Dockerfile
assert_match "$fds" '^0=[^ ]+ 1=[^ ]+ 2=[^ ]+ 3=(/proc/[0-9]+/fd)? $' "open fds inside RUN"
envkeys=$(sed -n 's/^\[[0-9]*\/[0-9]*\] | envkeys=//p' "$T/ok.log")
assert_not_contains "$(cat "$T/ok.log")" "$KILN_HOST_MARKER" "build log (RUN env)"
for k in $envkeys; do
  case $k in PATH|PWD|SHLVL|HOME|HOSTNAME) ;; *) fail "RUN's environment has $k (from the host?): $envkeys" ;; esac
done
assert_match "$(cat "$T/ok.log")" '^\[[0-9]+/[0-9]+\] \| env: PATH=/bin$' "RUN's PATH is the image's"
check_host "a successful build"

note "kiln run: the same fds and environment rules"
out=$(kiln run --rm localhost/busybox:latest sh -c 'ls /proc/self/fd | tr "\n" " "; echo; env' 3>/dev/null 4>/dev/null)
assert_eq "0 1 2 3 " "$(head -1 <<<"$out")" "fds inside kiln run"
assert_not_contains "$out" "$KILN_HOST_MARKER" "kiln run environment"
check_host "kiln run"

note "a failing build"
mkdir -p "$T/bad"
printf 'FROM localhost/busybox:latest\nRUN echo partial >/partial && exit 5\n' >"$T/bad/Dockerfile"
expect_fail kiln build -t localhost/hyg:bad "$T/bad"
assert_contains "$ERR" "exited with status 5" "error of the failing build"
check_host "a failing build"

# killed_build SIGNAL: start a build that sleeps in RUN, signal kiln once the
# sleep runs, and check what is left
killed_build() {
  local sig=$1 k=$T/kill-$1 pid rc i
  mkdir -p "$k"
  printf 'FROM localhost/busybox:latest\nRUN echo started-%s && %s\n' "$sig" "$marker" >"$k/Dockerfile"
  "$KILN" --root "$KILN_ROOT" build --progress=plain --no-cache -t "localhost/hyg:$sig" "$k" >"$T/$sig.log" 2>&1 &
  pid=$!
  for i in $(seq 100); do pgrep -f "$marker" >/dev/null && break; sleep 0.1; done
  pgrep -f "$marker" >/dev/null || { cat "$T/$sig.log"; fail "the RUN sleep did not start"; }
  kill -s "$sig" "$pid"
  rc=0; wait "$pid" || rc=$?
  cat "$T/$sig.log"
  [ "$rc" != 0 ] || fail "a build killed with $sig exited 0"
  assert_not_contains "$(kiln images)" "hyg:$sig" "kiln images after $sig"
  check_host "a build killed with $sig"
}

note "SIGTERM during RUN sleep"
killed_build TERM
note "SIGKILL during RUN sleep"
killed_build KILL

note "the store still builds after the kills"
kiln build -t localhost/hyg:after "$c" >/dev/null
check_host "a build after the kills"
