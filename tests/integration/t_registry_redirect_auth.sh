#!/bin/bash
# Credentials stay on the registry's own origin: a registry that wants Basic
# auth redirects every blob to another origin (as registries send blobs to
# their storage); kiln follows the redirect without the Authorization header
# (registry_http.c hop_auth), and the pull completes with the right content.
# tests/tools/redirect_registry.py is the registry and logs what the storage
# origin received.
source "$IT_DIR/lib.sh"
need python3 jq timeout

d=$T/redir
mkdir -p "$d"
python3 "$IT_DIR/../tools/redirect_registry.py" --port-file "$d/port" --storage-port-file "$d/sport" \
  --log "$d/storage.log" alice s3cret-pass >"$d/server.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$d/port" ] && [ -s "$d/sport" ] && break; sleep 0.1; done
[ -s "$d/port" ] || { cat "$d/server.log"; fail "the test registry did not start"; }
reg=127.0.0.1:$(cat "$d/port")

printf '%s' s3cret-pass | kiln login -u alice --password-stdin --authfile "$T/auth.json" "$reg" >/dev/null
out=$(kiln pull --authfile "$T/auth.json" "$reg/r:t" 2>&1) || { echo "$out"; fail "pull through the redirect failed"; }
cat "$d/storage.log"
n=$(grep -c . "$d/storage.log")
[ "$n" -ge 2 ] || fail "the storage origin saw $n requests, not the config and the layer"
if grep -q "auth=yes" "$d/storage.log"; then
  fail "the registry's credentials were sent to the storage origin"
fi
if grep -rq "s3cret-pass" "$KILN_ROOT" 2>/dev/null; then
  fail "the password reached the store"
fi
unpack_image "$reg/r:t" "$T/u"
assert_eq "hello through a redirect" "$(cat "$T/u/rootfs/hello.txt")" "content of the pulled layer"
