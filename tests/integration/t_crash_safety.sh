#!/bin/bash
# Crash safety: kill -9 a build of a ~200 MiB context at several points
# (fractions of the time a full build takes here); the store must check clean
# after each kill and the next build must succeed.
# Then two builds at once on one store both succeed and both tags exist.
source "$IT_DIR/lib.sh"
need jq timeout
make_busybox_base

c=$T/ctx
mkdir -p "$c/weights"
head -c $((200 << 20)) /dev/urandom >"$c/weights/big.bin"
put "$c/app/run.sh" 'echo run' 0755
cat >"$c/Dockerfile" <<'EOF'
FROM localhost/busybox:latest
COPY weights/ /models/
COPY app/ /app/
LABEL crash=test
EOF

mkdir -p "$T/small"
printf 'FROM localhost/busybox:latest\nLABEL small=1\n' >"$T/small/Dockerfile"

# the kills land at fractions of a full build's own time, so that on a faster
# machine (or with a faster kiln) they still hit the build midway
t0=$(date +%s%N)
timeout 120 "$KILN" --root "$KILN_ROOT" build --no-cache -t localhost/crash:before "$c" >/dev/null
full_ms=$((($(date +%s%N) - t0) / 1000000))
echo "a full build of the context takes $full_ms ms"
KILLED=0
for pct in 5 20 40 60 80; do
  delay=$(awk -v ms="$full_ms" -v p="$pct" 'BEGIN { printf "%.3f", ms * p / 100000 }')
  note "kill -9 after ${delay}s ($pct% of a full build)"
  kill_after "$delay" build "$KILN" --root "$KILN_ROOT" build --no-cache -t localhost/crash:k "$c"
  store_clean
  # the store is usable: a small build right away (no stale lock, readable index)
  timeout 60 "$KILN" --root "$KILN_ROOT" build -t localhost/small:1 "$T/small" >/dev/null
  if [ "$pct" = 20 ] || [ "$pct" = 80 ]; then
    # and the big build itself (twice is enough: each costs a full 200 MiB build)
    timeout 120 "$KILN" --root "$KILN_ROOT" build --no-cache -t localhost/crash:after "$c" >/dev/null
    store_clean
    assert_eq 3 "$(ijq localhost/crash:after '.config.rootfs.diff_ids | length')" "layers after a crash"
  fi
done
[ "$KILLED" -ge 3 ] || fail "only $KILLED of 5 builds were still running when killed: the context is too small to test crashes"

note "the image built after the crashes is complete"
size=$(ijq localhost/crash:after '[.manifest.layers[].size] | add')
[ "$size" -gt $((190 << 20)) ] || fail "image layers add up to $size bytes, expected > 190 MiB"

note "two builds at once on one store"
put "$c/app/extra.txt" extra
pids=()
for tag in one two; do
  timeout 120 "$KILN" --root "$KILN_ROOT" build --no-cache -t "localhost/conc:$tag" --iidfile "$T/iid-$tag" "$c" \
    >"$T/conc-$tag.log" 2>&1 &
  pids+=($!)
done
for i in 0 1; do
  rc=0; wait "${pids[$i]}" || rc=$?
  [ "$rc" = 0 ] || { cat "$T"/conc-*.log >&2; fail "concurrent build $i failed (exit $rc)"; }
done
imgs=$(kiln images)
assert_contains "$imgs" "conc:one" "kiln images after concurrent builds"
assert_contains "$imgs" "conc:two" "kiln images after concurrent builds"
assert_contains "$imgs" "crash:after" "kiln images after concurrent builds"
assert_eq "$(cat "$T/iid-one")" "$(ijq localhost/conc:one .digest)" "digest of conc:one"
assert_eq "$(cat "$T/iid-two")" "$(ijq localhost/conc:two .digest)" "digest of conc:two"
store_clean
