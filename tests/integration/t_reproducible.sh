#!/bin/bash
# Reproducible builds: the same context built into two fresh stores with
# --source-date-epoch (or SOURCE_DATE_EPOCH in the environment) gives the
# same manifest digest, and the config's created time is the epoch.
source "$IT_DIR/lib.sh"
need jq

c=$T/ctx
put "$c/app/a.txt" a
put "$c/app/sub/b.sh" b 0755
ln -s a.txt "$c/app/link"
head -c 300000 /dev/urandom >"$c/blob.bin"
cat >"$c/Dockerfile" <<'EOF'
FROM localhost/busybox:latest
ENV MODE=repro
COPY app/ /app/
COPY --chmod=0600 blob.bin /data/blob.bin
LABEL r=1
CMD ["/bin/sh"]
EOF

# build_in STORE IIDFILE [ARGS...]: a fresh store with its own base image
build_in() {
  local st=$1 iid=$2; shift 2
  # the base must be reproducible too: its history is part of our config
  KILN_ROOT=$st BASE_BUILD_FLAGS="--source-date-epoch 1700000000" make_busybox_base "$T/base-$(basename "$st")"
  KILN_ROOT=$st kiln build -t localhost/repro:1 --iidfile "$iid" "$@" "$c"
}

build_in "$T/s1" "$T/iid1" --source-date-epoch 1700000000
build_in "$T/s2" "$T/iid2" --source-date-epoch 1700000000
d1=$(cat "$T/iid1"); d2=$(cat "$T/iid2")
assert_match "$d1" '^sha256:[0-9a-f]{64}$' "--iidfile"
assert_eq "$d1" "$d2" "digests of two builds with --source-date-epoch"
cfg=$(KILN_ROOT=$T/s1 ijq localhost/repro:1 .config)
assert_eq 2023-11-14T22:13:20Z "$(jq -r .created <<<"$cfg")" "config created"
assert_eq '["2023-11-14T22:13:20Z"]' \
  "$(jq -c '[.history[-5:][] | .created] | unique' <<<"$cfg")" "history created of this build's steps"

note "SOURCE_DATE_EPOCH in the environment does the same"
SOURCE_DATE_EPOCH=1700000000 build_in "$T/s3" "$T/iid3"
SOURCE_DATE_EPOCH=1700000000 build_in "$T/s4" "$T/iid4"
assert_eq "$(cat "$T/iid3")" "$(cat "$T/iid4")" "digests of two builds with SOURCE_DATE_EPOCH"
assert_eq "$d1" "$(cat "$T/iid3")" "SOURCE_DATE_EPOCH vs --source-date-epoch"
assert_eq 2023-11-14T22:13:20Z "$(KILN_ROOT=$T/s3 ijq localhost/repro:1 .config.created)" "config created (env)"

note "a different epoch gives a different digest (the epoch is really used)"
build_in "$T/s5" "$T/iid5" --source-date-epoch 1700000001
assert_ne "$d1" "$(cat "$T/iid5")" "digest with another epoch"
assert_eq 2023-11-14T22:13:21Z "$(KILN_ROOT=$T/s5 ijq localhost/repro:1 .config.created)" "config created (epoch+1)"

for s in s1 s2 s3 s4 s5; do KILN_ROOT=$T/$s store_clean; done
