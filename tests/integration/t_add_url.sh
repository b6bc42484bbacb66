#!/bin/bash
# ADD <url>, as BuildKit does it: the file is downloaded (never extracted),
# gets mode 0600 (or --chmod), root's ownership (or --chown), the server's
# Last-Modified as mtime, the URL path's last element as name when the
# destination is a directory.  --checksum verifies the content and lets a
# rebuild hit the cache without any request; without it a changed file is a
# miss, an unchanged one costs a conditional request (ETag) and no download.
# Redirects are followed to http(s) only; 5xx is tried again; a 404 or
# a checksum mismatch fails naming the URL without its password; SIGINT stops
# a download at once.  Served by
# tests/tools/file_server.py on 127.0.0.1.
source "$IT_DIR/lib.sh"
need python3 umoci jq sha256sum
need_root

srv=$T/srv
mkdir -p "$srv"
head -c 300000 /dev/urandom >"$srv/model.bin"
printf 'weights v1\n' >"$srv/small.txt"
tar -C "$srv" -czf "$srv/bundle.tar.gz" small.txt
touch -d @1600000000 "$srv/model.bin" "$srv/small.txt" "$srv/bundle.tar.gz"
python3 "$REPO_DIR/tests/tools/file_server.py" --root "$srv" --port-file "$T/port" \
  --log-file "$T/requests.log" >"$T/server.log" 2>&1 </dev/null &
SRV_PID=$!
trap 'kill $SRV_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do [ -s "$T/port" ] && break; sleep 0.1; done
[ -s "$T/port" ] || fail "file server did not start: $(cat "$T/server.log")"
U=http://127.0.0.1:$(cat "$T/port")
sum=sha256:$(sha256sum "$srv/model.bin" | cut -d' ' -f1)

c=$T/ctx
mkdir -p "$c"
cat >"$c/Dockerfile" <<DF
FROM scratch
ADD $U/files/model.bin /models/
ADD $U/files/small.txt /etc/renamed.txt
ADD --chmod=0644 --chown=1000:1000 $U/nolm/small.txt /opt/
ADD $U/files/bundle.tar.gz /bundle/
ADD $U/redirect/small.txt $U/flaky/small.txt /multi/
DF
kiln build -t localhost/url:1 --output "type=oci,dest=$T/o" "$c" 2>"$T/build.err"
unpack_layout "$T/o" "$T/b"
r=$T/b/rootfs
cmp "$srv/model.bin" "$r/models/model.bin" || fail "downloaded model.bin differs"
assert_stat "$r/models/model.bin" %a 600
assert_stat "$r/models/model.bin" %u:%g 0:0
assert_stat "$r/models/model.bin" %Y 1600000000
assert_file "$r/etc/renamed.txt" "weights v1"
assert_stat "$r/opt/small.txt" %a 644
assert_stat "$r/opt/small.txt" %u:%g 1000:1000
assert_stat "$r/opt/small.txt" %Y 0
assert_file "$r/bundle/bundle.tar.gz"
assert_absent "$r/bundle/small.txt"
assert_file "$r/multi/small.txt" "weights v1"
assert_contains "$(cat "$T/build.err")" "trying again" "stderr of a build that met a 503"

note "--checksum: verified, and a rebuild hits the cache without a single request"
printf 'FROM scratch\nADD --checksum=%s %s/files/model.bin /models/\n' "$sum" "$U" >"$c/Dockerfile"
kiln build -t localhost/url:sum --metadata-file "$T/m1.json" "$c"
: >"$T/requests.log"
kiln build -t localhost/url:sum --metadata-file "$T/m2.json" "$c"
assert_eq true "$(jq -r '[."kiln.steps"[] | select(.step | contains("] ADD ")) | .cached] | length == 1 and all' "$T/m2.json")" \
  "ADD --checksum cached on the rebuild"
assert_eq "" "$(cat "$T/requests.log")" "requests during the cached rebuild"

note "without --checksum: one conditional request (ETag) and no download when unchanged"
printf 'ADD %s/files/small.txt /s.txt\n' "$U" >>"$c/Dockerfile"
kiln build -t localhost/url:2 "$c"
: >"$T/requests.log"
kiln build -t localhost/url:2 --metadata-file "$T/m3.json" "$c"
assert_eq "GET /files/small.txt
304 /files/small.txt" "$(cat "$T/requests.log")" "requests of a rebuild with the file unchanged"
assert_eq true "$(jq -r '[."kiln.steps"[] | select(.step | contains("] ADD ")) | .cached] | length == 2 and all' "$T/m3.json")" \
  "both ADD steps cached"

note "an ETag the server confirms, but a step that misses (cache pruned): downloaded then"
kiln prune --all >/dev/null
: >"$T/requests.log"
kiln build -t localhost/url:2 --output "type=oci,dest=$T/o2" "$c"
assert_eq "GET /files/small.txt
304 /files/small.txt
GET /files/small.txt" "$(grep small.txt "$T/requests.log")" "requests of a rebuild after prune"
unpack_layout "$T/o2" "$T/b2"
assert_file "$T/b2/rootfs/s.txt" "weights v1"

note "a changed file is a miss with the new content"
printf 'weights v2\n' >"$srv/small.txt"
kiln build -t localhost/url:3 --output "type=oci,dest=$T/o3" "$c"
unpack_layout "$T/o3" "$T/b3"
assert_file "$T/b3/rootfs/s.txt" "weights v2"

note "a server that confirms an ETag but then sends other bytes fails the step, naming the URL"
touch -r "$srv/small.txt" "$T/stamp"
printf 'weights v9\n' >"$srv/small.txt"        # same size, and the old mtime again: the same ETag
touch -r "$T/stamp" "$srv/small.txt"
kiln prune --all >/dev/null
expect_fail kiln build -t localhost/url:race "$c"
assert_contains "$ERR" "Dockerfile:3"
assert_contains "$ERR" "files/small.txt\` changed on the server during the build"
store_clean

note "a wrong --checksum fails, names both digests, writes no image"
bad=sha256:$(printf '%064d' 0)
printf 'FROM scratch\nADD --checksum=%s %s/files/model.bin /m\n' "$bad" "$U" >"$c/Dockerfile"
expect_fail kiln build -t localhost/url:bad "$c"
assert_contains "$ERR" "Dockerfile:2"
assert_contains "$ERR" "$sum"
assert_contains "$ERR" "$bad"
expect_fail kiln inspect localhost/url:bad
store_clean

note "SIGINT stops a download at once; nothing is left behind"
printf 'FROM scratch\nADD %s/slow /big\n' "$U" >"$c/Dockerfile"
"$KILN" --root "$KILN_ROOT" build -t localhost/url:slow "$c" >"$T/slow.out" 2>"$T/slow.err" &
pid=$!
for _ in $(seq 1 100); do grep -q "GET /slow" "$T/requests.log" && break; sleep 0.1; done
grep -q "GET /slow" "$T/requests.log" || fail "the slow download never started"
sleep 0.5
kill -INT "$pid"
start=$(date +%s)
rc=0
wait "$pid" || rc=$?
[ "$rc" != 0 ] || fail "an interrupted build exited 0"
[ $(( $(date +%s) - start )) -le 5 ] || fail "the build took more than 5 s to stop after SIGINT"
assert_contains "$(cat "$T/slow.err")" "interrupted"
assert_eq "" "$(ls -A "$KILN_ROOT/tmp")" "leftovers in the store's tmp/"
store_clean

note "bad uses of URLs and --checksum"
printf 'FROM scratch\nADD http://user:hunter2@127.0.0.1:%s/files/missing /m\n' "${U##*:}" >"$c/Dockerfile"
expect_fail kiln build "$c"
assert_contains "$ERR" "HTTP status 404"
assert_not_contains "$ERR" "hunter2" "error of a URL with a password"
printf 'FROM scratch\nADD %s/file-redirect /m\n' "$U" >"$c/Dockerfile"
expect_fail kiln build "$c"
assert_contains "$ERR" "file-redirect"
printf 'FROM scratch\nCOPY %s/files/small.txt /m\n' "$U" >"$c/Dockerfile"
expect_fail kiln build "$c"
assert_contains "$ERR" "use ADD"
put "$c/local.txt" local
printf 'FROM scratch\nADD --checksum=%s local.txt /m\n' "$sum" >"$c/Dockerfile"
expect_fail kiln build "$c"
assert_contains "$ERR" "needs an http(s) URL"
printf 'FROM scratch\nADD --checksum=md5:abc %s/files/small.txt /m\n' "$U" >"$c/Dockerfile"
expect_fail kiln build "$c"
assert_contains "$ERR" "invalid --checksum"
store_clean
