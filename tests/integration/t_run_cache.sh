#!/bin/bash
# The layer cache with RUN steps: an unchanged rebuild is all CACHED with the
# same digest; a changed file only the last COPY uses rebuilds from there; a
# changed build arg no step uses misses nothing, one a RUN sees misses that
# RUN with a reason naming the variable; --no-cache caches nothing;
# --metadata-file lists every step's cache key and layer digest.
source "$IT_DIR/lib.sh"
need jq
make_busybox_base

c=$T/ctx
put "$c/first.txt" first
put "$c/last.txt" last-1
cat >"$c/Dockerfile" <<'EOF'
ARG GLOBAL_UNUSED=g1
FROM localhost/busybox:latest
ARG SEEN=a
COPY first.txt /first.txt
RUN echo "seen=$SEEN" >/seen.txt
RUN cp /first.txt /first-copy.txt
LABEL step=label
COPY last.txt /last.txt
RUN cat /last.txt >/last-copy.txt && cat /proc/sys/kernel/random/uuid >/stamp
EOF
nlayer=5   # COPY RUN RUN COPY RUN

# build LOG [ARGS...]: plain progress into LOG (and the test log)
build() {
  local log=$1; shift
  kiln build --progress=plain -t localhost/cache:1 --iidfile "$T/iid" "$@" "$c" >"$log" 2>&1 \
    || { cat "$log"; fail "build $* failed"; }
  cat "$log"
}
cached() { { grep -E '^\[[0-9]+/[0-9]+\] .* CACHED [0-9.]+s$' "$1" || true; } | sed -E 's/^\[[0-9]+\/[0-9]+\] //; s/ CACHED [0-9.]+s$//'; }
missed() { sed -n 's/^miss: \(.*\) : .*$/\1/p' "$1"; }
reason() { { grep -F "miss: $2 : " "$1" || true; } | sed 's/^.* : //'; }

note "first build: every layer step misses"
build "$T/b1.log" --metadata-file "$T/meta.json"
d1=$(cat "$T/iid")
assert_eq "" "$(cached "$T/b1.log")" "CACHED steps of the first build"
assert_eq $nlayer "$(missed "$T/b1.log" | wc -l)" "missed steps of the first build"

note "--metadata-file: one entry per step with its cache key and layer digest"
meta=$(cat "$T/meta.json")
assert_eq "$d1" "$(jq -r '."containerimage.digest"' <<<"$meta")" "metadata digest"
nsteps=$(grep -c '^\[[0-9]*/[0-9]*\] [A-Z]' "$T/b1.log")
assert_eq "$nsteps" "$(jq '."kiln.steps" | length' <<<"$meta")" "metadata steps"
layers=$(ijq localhost/cache:1 '[.manifest.layers[].digest] | .[1:] | join(" ")')
assert_eq "$layers" "$(jq -r '[."kiln.steps"[] | .layer // empty] | join(" ")' <<<"$meta")" \
  "layer digests in metadata vs the manifest's (without the base)"

note "no change: every layer step CACHED, same digest"
build "$T/b2.log" --metadata-file "$T/meta2.json"
assert_eq "$d1" "$(cat "$T/iid")" "digest of an unchanged rebuild"
assert_eq "" "$(missed "$T/b2.log")" "missed steps of an unchanged rebuild"
assert_eq $nlayer "$(cached "$T/b2.log" | grep -cE '^(COPY|RUN)')" "CACHED layer steps"

note "a build arg no step uses (declared only globally / not declared) changes nothing"
build "$T/b3.log" --build-arg GLOBAL_UNUSED=g2 --build-arg NOT_DECLARED=x
assert_eq "" "$(missed "$T/b3.log")" "missed steps with unused build args"
assert_eq "$d1" "$(cat "$T/iid")" "digest with unused build args"

note "a build arg a RUN sees: that RUN misses, naming the variable"
build "$T/b4.log" --build-arg SEEN=b
assert_eq 'RUN echo "seen=$SEEN" >/seen.txt' "$(missed "$T/b4.log" | head -1)" "first step that missed"
assert_contains "$(cached "$T/b4.log")" "COPY first.txt /first.txt" "CACHED before the RUN"
r_seen=$(reason "$T/b4.log" 'RUN echo "seen=$SEEN" >/seen.txt')   # checked at the end
assert_ne "$d1" "$(cat "$T/iid")" "digest with another SEEN"
build "$T/b4b.log"
assert_eq "$d1" "$(cat "$T/iid")" "back to the default SEEN: the first image, from the cache"
assert_eq "" "$(missed "$T/b4b.log")" "missed steps back at the default SEEN"

note "a file only the last COPY uses: only the steps from there rebuild"
put "$c/last.txt" last-2
build "$T/b5.log"
assert_eq "COPY last.txt /last.txt
RUN cat /last.txt >/last-copy.txt && cat /proc/sys/kernel/random/uuid >/stamp" "$(missed "$T/b5.log")" "steps that missed"
assert_eq "COPY first.txt /first.txt
RUN echo \"seen=\$SEEN\" >/seen.txt
RUN cp /first.txt /first-copy.txt" "$(cached "$T/b5.log" | grep -E '^(COPY|RUN)')" "steps CACHED"
assert_contains "$(reason "$T/b5.log" 'COPY last.txt /last.txt')" "last.txt" "reason of the COPY miss"
d5=$(cat "$T/iid")
assert_ne "$d1" "$d5" "digest after changing last.txt"

note "--no-cache: nothing CACHED, every layer step reruns"
build "$T/b6.log" --no-cache
assert_eq "" "$(cached "$T/b6.log")" "CACHED steps with --no-cache"
assert_eq $nlayer "$(grep -cE '^\[[0-9]+/[0-9]+\] (COPY|RUN) .* [0-9.]+s$' "$T/b6.log")" "layer steps run with --no-cache"
assert_ne "$d5" "$(cat "$T/iid")" "digest with --no-cache (the last RUN writes a new random uuid)"
store_clean

note "with --no-cache every layer step says why it is not cached (RUN as COPY does)"
assert_eq "COPY first.txt /first.txt : cache disabled
RUN echo \"seen=\$SEEN\" >/seen.txt : cache disabled
RUN cp /first.txt /first-copy.txt : cache disabled
COPY last.txt /last.txt : cache disabled
RUN cat /last.txt >/last-copy.txt && cat /proc/sys/kernel/random/uuid >/stamp : cache disabled" "$(sed -n 's/^miss: //p' "$T/b6.log")" \
  "miss lines with --no-cache"

note "the reason a RUN missed names the build arg it sees"
assert_contains "$r_seen" SEEN "reason of the miss of the RUN that sees SEEN"

note "--metadata-file: every step has its cache key (sha256), distinct, stable across an unchanged rebuild"
assert_eq "$nsteps" "$(jq '[."kiln.steps"[] | .key | strings | select(test("^sha256:[0-9a-f]{64}$"))] | length' <<<"$meta")" \
  "steps with a sha256 cache key in the metadata"
assert_eq "$nsteps" "$(jq '[."kiln.steps"[] | .key] | unique | length' <<<"$meta")" "distinct step keys"
assert_eq "$(jq -c '[."kiln.steps"[] | .key]' "$T/meta.json")" "$(jq -c '[."kiln.steps"[] | .key]' "$T/meta2.json")" \
  "step keys of an unchanged rebuild"
