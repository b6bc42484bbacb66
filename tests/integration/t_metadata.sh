#!/bin/bash
# Metadata instructions end up in the image config exactly as Docker writes
# them, ARG/--build-arg expansion (defaults, overrides, ARG before FROM), and
# metadata steps are history entries with empty_layer=true.
source "$IT_DIR/lib.sh"
need jq
make_busybox_base

c=$T/ctx
put "$c/f.txt" f
cat >"$c/Dockerfile" <<'EOF'
ARG BASE=localhost/busybox:latest
FROM ${BASE}
ARG BASE
ARG VERSION=1.0
ARG FLAVOR
ENV A=1 B="two words"
ENV C 3 4
ENV D=${VERSION}-${FLAVOR:-none}
LABEL org.example.version=$VERSION "org.example.desc"="a b" base=$BASE
EXPOSE 80 443/tcp 53/udp
USER app:app
WORKDIR /a
WORKDIR b
COPY f.txt f.txt
VOLUME ["/data", "/cache"]
VOLUME /logs
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["/bin/true"]
ONBUILD COPY . /onbuild
ENTRYPOINT ["/bin/echo", "x"]
CMD echo hi
EOF

kiln build -t localhost/meta:a --build-arg FLAVOR=gpu "$c"
cfg=$(ijq localhost/meta:a .config.config)
j() { jq -cr "$1" <<<"$cfg"; }

note "ENV: both forms, expansion of ARG with default and override, PATH inherited from the base"
assert_eq '["PATH=/bin","A=1","B=two words","C=3 4","D=1.0-gpu"]' "$(j .Env)" "Env"
note "LABEL, and a global ARG redeclared in the stage keeps its default"
assert_eq '{"base":"localhost/busybox:latest","org.example.desc":"a b","org.example.version":"1.0"}' \
  "$(j '.Labels | to_entries | sort_by(.key) | from_entries')" "Labels"
assert_eq '["443/tcp","53/udp","80/tcp"]' "$(j '.ExposedPorts | keys')" "ExposedPorts"
assert_eq app:app "$(j .User)" "User"
assert_eq /a/b "$(j .WorkingDir)" "WorkingDir (relative WORKDIR chain)"
assert_eq '["/cache","/data","/logs"]' "$(j '.Volumes | keys')" "Volumes"
assert_eq SIGTERM "$(j .StopSignal)" "StopSignal"
assert_eq '{"Interval":30000000000,"Retries":3,"StartPeriod":10000000000,"Test":["CMD","/bin/true"],"Timeout":5000000000}' \
  "$(j '.Healthcheck | to_entries | sort_by(.key) | from_entries')" "Healthcheck"
assert_eq '["COPY . /onbuild"]' "$(j .OnBuild)" "OnBuild"
assert_eq '["/bin/echo","x"]' "$(j .Entrypoint)" "Entrypoint (exec form)"
assert_eq '["/bin/sh","-c","echo hi"]' "$(j .Cmd)" "Cmd (shell form)"

note "COPY with a relative destination lands in WORKDIR"
if command -v umoci >/dev/null && [ "$(id -u)" = 0 ]; then
  unpack_image localhost/meta:a "$T/b"
  assert_file "$T/b/rootfs/a/b/f.txt" f
  assert_stat "$T/b/rootfs/a/b/f.txt" %u:%g 0:0
fi

note "history: one entry per step; metadata steps are empty layers"
img=$(inspect localhost/meta:a)
assert_eq 2 "$(jq '.config.rootfs.diff_ids | length' <<<"$img")" "layers (base + COPY)"
assert_eq 2 "$(jq '[.config.history[] | select(.empty_layer != true)] | length' <<<"$img")" \
  "history entries with a layer"
for ins in ENV LABEL EXPOSE USER WORKDIR VOLUME STOPSIGNAL HEALTHCHECK ONBUILD ENTRYPOINT CMD; do
  n=$(jq --arg i "$ins" '[.config.history[] | select(.created_by // "" | contains($i))] | length' <<<"$img")
  [ "$n" -ge 1 ] || fail "no history entry mentions $ins: $(jq -c .config.history <<<"$img")"
  assert_eq true "$(jq --arg i "$ins" '[.config.history[] | select(.created_by // "" | contains($i)) | .empty_layer == true] | all' <<<"$img")" \
    "empty_layer of the $ins history entries"
done
assert_eq 2 "$(jq '[.config.history[] | select((.created_by // "" | contains("COPY")) and (.empty_layer != true))] | length' <<<"$img")" \
  "COPY history entries with a layer (base and ours)"

note "--build-arg overrides an ARG default; unset ARG expands to the :- default"
kiln build -t localhost/meta:b --build-arg VERSION=2.0 "$c"
assert_contains "$(ijq localhost/meta:b .config.config.Env)" '"D=2.0-none"' "Env with VERSION=2.0"
assert_eq 2.0 "$(ijq localhost/meta:b '.config.config.Labels["org.example.version"]')" "label with VERSION=2.0"

note "ARG before FROM is used by FROM: a bad --build-arg BASE makes the build fail"
expect_fail kiln build -t localhost/meta:c --build-arg BASE=localhost/no-such-base:1 "$c"

note "SHELL changes the shell form; exec-form CMD; HEALTHCHECK NONE"
c2=$T/ctx2
mkdir -p "$c2"
cat >"$c2/Dockerfile" <<'EOF'
FROM localhost/busybox:latest
HEALTHCHECK CMD ["/bin/true"]
HEALTHCHECK NONE
SHELL ["/bin/sh", "-ec"]
ENTRYPOINT exec /bin/echo x
CMD ["y", "z"]
EOF
kiln build -t localhost/meta:shell "$c2"
cfg=$(ijq localhost/meta:shell .config.config)
assert_eq '["/bin/sh","-ec","exec /bin/echo x"]' "$(j .Entrypoint)" "Entrypoint (shell form under SHELL)"
assert_eq '["y","z"]' "$(j .Cmd)" "Cmd (exec form)"
assert_eq '["NONE"]' "$(j .Healthcheck.Test)" "HEALTHCHECK NONE"
assert_eq 1 "$(ijq localhost/meta:shell '.config.rootfs.diff_ids | length')" "no new layer for metadata only"
store_clean
