#!/bin/bash
# Rootless builds: an unprivileged user with /etc/subuid and /etc/subgid
# ranges builds the same context (COPY, RUN with chown, USER) into a store
# under its home with --source-date-epoch; the image digest equals the one
# root builds with the same flags from an identically built base.
source "$IT_DIR/lib.sh"
need_root
need jq
rootless_user kilnrl 200000
EPOCH=1700000000

note "root: base and image with --source-date-epoch"
BASE_BUILD_FLAGS="--source-date-epoch $EPOCH" make_busybox_base "$T/base"
c=$T/ctx
put "$c/app/a.txt" a
put "$c/app/run.sh" '#!/bin/sh' 0755
# (the base's /home/app comes from a COPY without --chown, so it is root's:
# a COPY --chown into it keeps it so, as BuildKit does; the RUN gives it away)
cat >"$c/Dockerfile" <<'EOF'
FROM localhost/busybox:latest
COPY app/ /app/
COPY --chown=1000:1000 app/a.txt /home/app/a.txt
RUN mkdir -p /data/sub && echo data >/data/sub/f && chown -R 1000:1000 /data && chmod 0700 /data/sub \
 && ln /data/sub/f /data/hl && rm /bin/vi && echo "uid=$(id -u)" >/data/who && chown 1000:1000 /home/app
USER app
RUN echo "$(id -u):$(id -g)" >/home/app/who
EOF
kiln build --progress=plain --source-date-epoch "$EPOCH" -t localhost/rl:1 --iidfile "$T/iid-root" "$c"
store_clean

note "the same as $user, store under its home"
cp -a "$T/base" "$home/base"
cp -a "$c" "$home/ctx"
chown -R "$user:" "$home/base" "$home/ctx"
as_user "$KILN" --root "$home/store" build --progress=quiet --source-date-epoch "$EPOCH" \
  -t localhost/busybox:latest "$home/base" >/dev/null
assert_eq "$(kiln inspect localhost/busybox:latest | jq -r .digest)" \
  "$(as_user "$KILN" --root "$home/store" inspect localhost/busybox:latest | jq -r .digest)" "base digest (root vs $user)"
as_user "$KILN" --root "$home/store" build --progress=plain --source-date-epoch "$EPOCH" \
  -t localhost/rl:1 --iidfile "$home/iid" "$home/ctx"
assert_eq "$(cat "$T/iid-root")" "$(cat "$home/iid")" "image digest (root vs rootless build)"
out=$(as_user "$KILN" --root "$home/store" store check 2>&1)
assert_contains "$out" "store ok" "kiln store check of $user's store"

note "the rootless image's owners are the image's ids, not the subordinate ones"
out=$(as_user "$KILN" --root "$home/store" run --rm localhost/rl:1 sh -c 'cat /home/app/who /data/who; stat -c "%u:%g %a" /data /data/sub /home/app/a.txt')
assert_eq "1000:1000
uid=0
1000:1000 755
1000:1000 700
1000:1000 644" "$out" "kiln run as $user"
