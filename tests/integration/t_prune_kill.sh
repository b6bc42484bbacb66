#!/bin/bash
# kiln prune killed at several points leaves a store that verifies: records
# go first, then only files nothing references.
source "$IT_DIR/lib.sh"

make_busybox_base
c=$T/ctx
mkdir -p "$c"
for i in $(seq 1 40); do head -c 4096 /dev/urandom >"$c/f$i"; done
{
  echo 'FROM localhost/busybox:latest'
  for i in $(seq 1 40); do echo "COPY f$i /f$i"; done
} >"$c/Dockerfile"
landed=0
for round in 1 2 3 4; do
  note "round $round: garbage, then prune killed"
  for i in $(seq 1 40); do head -c 4096 /dev/urandom >"$c/f$i"; done
  kiln build --progress=quiet -t localhost/garbage:1 "$c" >/dev/null
  kiln rmi localhost/garbage:1 >/dev/null
  kiln prune --all >/dev/null 2>&1 &
  pid=$!
  sleep "0.00$((round * 2))"
  if kill -9 "$pid" 2>/dev/null; then landed=$((landed + 1)); fi
  wait "$pid" 2>/dev/null || true
  kiln store check
  kiln inspect localhost/busybox:latest >/dev/null
done
echo "kills that landed while prune ran: $landed of 4"
[ "$landed" -gt 0 ] || fail "prune always finished before the kill: nothing was tested"
kiln prune --all
kiln store check
