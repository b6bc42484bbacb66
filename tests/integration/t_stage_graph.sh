#!/bin/bash
# Stages as a graph (src/solver/build_graph.c): independent stages run at once up
# to --jobs, a stage's steps before a COPY --from run beside the stage it
# copies from, a stage may copy from one defined after it, the image does not
# depend on the order they ran in, progress names the stage, and the first
# failure cancels the rest cleanly.
source "$IT_DIR/lib.sh"
need jq
export SOURCE_DATE_EPOCH=1700000000

make_busybox_base
c=$T/ctx
mkdir -p "$c"

note "two independent stages run at once with --jobs 2, one after the other with --jobs 1"
# each stage notes when it started and ended (the host's uptime: /proc/uptime is not namespaced)
cat >"$c/Dockerfile" <<'EOF'
FROM localhost/busybox AS a
RUN cut -d' ' -f1 /proc/uptime >/start && sleep 2 && cut -d' ' -f1 /proc/uptime >/end && echo ran

FROM localhost/busybox AS b
RUN cut -d' ' -f1 /proc/uptime >/start && sleep 2 && cut -d' ' -f1 /proc/uptime >/end && echo ran

FROM scratch
COPY --from=a /start /a.start
COPY --from=a /end /a.end
COPY --from=b /start /b.start
COPY --from=b /end /b.end
EOF
overlap() {   # DIR: 0 when the two stages' [start, end] overlap
  awk -v as="$(cat "$1/a.start")" -v ae="$(cat "$1/a.end")" -v bs="$(cat "$1/b.start")" -v be="$(cat "$1/b.end")" \
    'BEGIN { exit !(as < be && bs < ae) }'
}
t0=$(date +%s%N)
kiln build --progress=plain --jobs 2 -o "type=local,dest=$T/j2" "$c" >"$T/j2.log" 2>&1 \
  || { cat "$T/j2.log"; fail "build with --jobs 2"; }
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
overlap "$T/j2" || fail "--jobs 2: the stages did not overlap: a $(cat "$T/j2/a.start")-$(cat "$T/j2/a.end"), b $(cat "$T/j2/b.start")-$(cat "$T/j2/b.end")"
# back to back the two sleeps alone take 4 s (the overlap above is the proof;
# this is its wall-clock face, the issue's 3 s; a sanitized kiln gets 4 s)
limit=3000
[ -z "${ASAN_OPTIONS:-}" ] || limit=4000
[ "$ms" -lt "$limit" ] || fail "--jobs 2: two 2-second stages took $ms ms (limit $limit ms)"
echo "two 2-second stages with --jobs 2: $ms ms"
log=$(cat "$T/j2.log")
# progress names the stage: [NAME N/M], or [stage-IDX N/M] for an unnamed one
assert_contains "$log" "[a 2/2] RUN cut"
assert_contains "$log" "[b 2/2] RUN cut"
assert_contains "$log" "[stage-2 5/5] COPY --from=b /end /b.end"
assert_match "$log" '\[a 2/2\] \| ' "a RUN's output carries its stage"
kiln build --progress=plain --no-cache --jobs 1 -o "type=local,dest=$T/j1" "$c" >"$T/j1.log" 2>&1 \
  || { cat "$T/j1.log"; fail "build with --jobs 1"; }
overlap "$T/j1" && fail "--jobs 1: the stages overlapped"

note "a stage starts once its base is built: its steps before a COPY --from run beside the stage it copies from"
cat >"$c/Dockerfile" <<'EOF'
FROM localhost/busybox AS dep
RUN cut -d' ' -f1 /proc/uptime >/start && sleep 2 && cut -d' ' -f1 /proc/uptime >/end

FROM localhost/busybox
RUN cut -d' ' -f1 /proc/uptime >/fstart && sleep 2 && cut -d' ' -f1 /proc/uptime >/fend
COPY --from=dep /start /end /
EOF
kiln build --progress=plain --jobs 2 -o "type=local,dest=$T/step" "$c" >"$T/step.log" 2>&1 \
  || { cat "$T/step.log"; fail "build with --jobs 2"; }
awk -v as="$(cat "$T/step/start")" -v ae="$(cat "$T/step/end")" -v bs="$(cat "$T/step/fstart")" \
  -v be="$(cat "$T/step/fend")" 'BEGIN { exit !(as < be && bs < ae) }' \
  || fail "the last stage's RUN waited for the stage it copies from later: dep $(cat "$T/step/start")-$(cat "$T/step/end"), RUN $(cat "$T/step/fstart")-$(cat "$T/step/fend")"
# the COPY itself waited: the files are dep's, written before it ended
[ -s "$T/step/end" ] || fail "COPY --from=dep did not wait for dep"
kiln build --progress=plain --no-cache --jobs 1 -o "type=local,dest=$T/step1" "$c" >"$T/step1.log" 2>&1 \
  || { cat "$T/step1.log"; fail "build with --jobs 1"; }
awk -v ae="$(cat "$T/step1/end")" -v bs="$(cat "$T/step1/fstart")" 'BEGIN { exit !(ae <= bs) }' \
  || fail "--jobs 1: the stages overlapped"

note "the image and the step list do not depend on the order stages ran in"
cat >"$c/Dockerfile" <<'EOF'
FROM localhost/busybox AS slow
RUN sleep 1 && echo slow >/s && mkdir -p /d/e && echo x >/d/e/f

FROM localhost/busybox AS fast
# another user while a stage runs beside it: the sandbox sets its ids with raw system calls
USER app
RUN echo fast >/tmp/f

FROM localhost/busybox
COPY --from=fast /tmp/f /f
COPY --from=slow /s /d /out/
RUN cat /f /out/s
EOF
kiln build --progress=quiet --no-cache --jobs 2 -t localhost/graph:2 --metadata-file "$T/m2.json" "$c" >/dev/null \
  || fail "build --jobs 2"
kiln build --progress=quiet --no-cache --jobs 1 -t localhost/graph:1 --metadata-file "$T/m1.json" "$c" >/dev/null \
  || fail "build --jobs 1"
d1=$(kiln inspect localhost/graph:1 | jq -r .digest)
d2=$(kiln inspect localhost/graph:2 | jq -r .digest)
[ -n "$d1" ] && [ "$d1" != null ] || fail "no digest: $d1"
assert_eq "$d1" "$d2" "image digest, --jobs 1 against --jobs 2"
s1=$(jq -c '[."kiln.steps"[].step]' "$T/m1.json")
s2=$(jq -c '[."kiln.steps"[].step]' "$T/m2.json")
assert_eq "$s1" "$s2" "steps in the metadata file"
assert_contains "$s1" '"[slow 1/2] FROM localhost/busybox AS slow","[slow 2/2] RUN sleep 1'

note "COPY --from and --mount from= a stage defined later: it is built first, whatever --jobs"
cat >"$c/Dockerfile" <<'EOF'
FROM localhost/busybox AS app
RUN echo app >/app
COPY --from=later /made /made
RUN --mount=from=later,target=/m cat /m/made >/mounted

FROM localhost/busybox AS later
RUN echo made later >/made

FROM app
RUN cat /app /made /mounted
EOF
for j in 1 2; do
  kiln build --progress=plain --no-cache --jobs $j -t localhost/later:$j "$c" >"$T/later$j.log" 2>&1 \
    || { cat "$T/later$j.log"; fail "build with a later stage, --jobs $j"; }
done
assert_eq "$(kiln inspect localhost/later:1 | jq -r .digest)" "$(kiln inspect localhost/later:2 | jq -r .digest)" \
  "image digest with a later stage, --jobs 1 against --jobs 2"
unpack_image localhost/later:1 "$T/later"
assert_file "$T/later/rootfs/made" "made later"
assert_file "$T/later/rootfs/mounted" "made later"
# the later stage ran before the step that needed it, and is labelled as itself
log=$(cat "$T/later1.log")
assert_contains "$log" "[later 2/2] RUN echo made later"
[ "$(grep -n '\[later 2/2\] RUN' "$T/later1.log" | cut -d: -f1 | head -1)" -lt \
  "$(grep -n '\[app 3/4\] COPY --from=later' "$T/later1.log" | cut -d: -f1 | head -1)" ] \
  || fail "--jobs 1: the later stage did not run before the COPY that needs it: $log"

note "an image's ONBUILD trigger may copy from a later stage, never from the stage it runs in"
printf 'FROM localhost/busybox\nONBUILD COPY --from=app /made /from-app\n' >"$c/Dockerfile"
kiln build --progress=quiet -t localhost/trig "$c" >/dev/null || fail "build the image with the trigger"
printf 'FROM localhost/trig AS user\nFROM localhost/busybox AS app\nRUN echo by app >/made\nFROM user\n' >"$c/Dockerfile"
kiln build --progress=quiet --jobs 1 -t localhost/trig-user "$c" >"$T/trig.log" 2>&1 \
  || { cat "$T/trig.log"; fail "a trigger naming a later stage"; }
unpack_image localhost/trig-user "$T/trig"
assert_file "$T/trig/rootfs/from-app" "by app"
printf 'FROM localhost/trig AS app\nRUN true\n' >"$c/Dockerfile"
expect_fail kiln build --progress=quiet "$c"
assert_contains "$ERR" "Dockerfile:1: ONBUILD trigger"
assert_contains "$ERR" "circular dependency detected on stage: app"

note "a failing stage cancels the others: no process, mount or scratch directory is left"
cat >"$c/Dockerfile" <<'EOF'
FROM localhost/busybox AS long
USER app
RUN sleep 60 && echo never
RUN echo after

FROM localhost/busybox AS bad
RUN sleep 1 && exit 3

FROM scratch
COPY --from=long /bin/busybox /b
COPY --from=bad /bin/busybox /c
EOF
t0=$(date +%s)
expect_fail kiln build --progress=plain --no-cache --jobs 2 "$c"
secs=$(( $(date +%s) - t0 ))
assert_contains "$ERR" "RUN sleep 1 && exit 3"
assert_contains "$ERR" "Dockerfile:7: RUN sleep 1 && exit 3: exited with status 3"
assert_contains "$ERR" " > [bad 2/2] RUN sleep 1 && exit 3:"
# the cancelled step is not shown as a failure, and the stage goes no further
assert_not_contains "$ERR" "RUN sleep 60 && echo never:"
assert_not_contains "$ERR" "echo after"
[ "$secs" -lt 30 ] || fail "the failure did not cancel the 60-second stage (took $secs s)"
pgrep -f "sleep 60" >/dev/null && fail "the cancelled stage's process is still running"
grep -F "$KILN_ROOT" /proc/self/mountinfo && fail "mounts left under the store"
left=$(ls -A "$KILN_ROOT/tmp" 2>/dev/null | grep -v '^\.' || true)
[ -z "$left" ] || fail "scratch left in the store's tmp: $left"
kiln store check >/dev/null || fail "store check after the cancelled build"

note "--jobs takes a number"
expect_fail kiln build --jobs many "$c"
assert_contains "$ERR" "invalid --jobs \`many\`"
