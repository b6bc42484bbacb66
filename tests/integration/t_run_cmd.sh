#!/bin/bash
# kiln run: the image's ENTRYPOINT + CMD, a command instead of CMD,
# --entrypoint, -e, -w, -u, -v (ro and rw), the command's exit status, 125
# when the command cannot start, --network none; nothing left behind.
source "$IT_DIR/lib.sh"
need jq
make_busybox_base

c=$T/ctx
put "$c/greet.sh" '#!/bin/sh
echo "greet: $GREETING from $(pwd) as $(id -un) args: $*"' 0755
cat >"$c/Dockerfile" <<'EOF'
FROM localhost/busybox:latest
COPY greet.sh /usr/local/bin/greet.sh
ENV GREETING=hello
WORKDIR /srv
USER app
ENTRYPOINT ["/usr/local/bin/greet.sh"]
CMD ["default-arg"]
EOF
kiln build -t localhost/runcmd:1 "$c" >/dev/null
img=localhost/runcmd:1
mnt_before=$(cat /proc/self/mountinfo)

note "ENTRYPOINT + CMD"
assert_eq "greet: hello from /srv as app args: default-arg" "$(kiln run --rm "$img")" "kiln run IMAGE"
note "arguments replace CMD, not ENTRYPOINT"
assert_eq "greet: hello from /srv as app args: a b" "$(kiln run --rm "$img" a b)" "kiln run IMAGE a b"
note "--entrypoint replaces ENTRYPOINT (and drops CMD)"
assert_eq "x y" "$(kiln run --rm --entrypoint /bin/echo "$img" x y)" "--entrypoint echo"
assert_eq "/srv" "$(kiln run --rm --entrypoint /bin/pwd "$img")" "--entrypoint without arguments"

note "-e, -w, -u"
assert_eq "greet: hi from /tmp as root args: z" "$(kiln run --rm -e GREETING=hi -w /tmp -u root "$img" z)" "-e -w -u"
assert_eq "1000:1000" "$(kiln run --rm --entrypoint /bin/sh "$img" -c 'echo $(id -u):$(id -g)')" "image USER"
assert_eq "65534:65534" "$(kiln run --rm -u 65534:65534 --entrypoint /bin/sh "$img" -c 'echo $(id -u):$(id -g)')" "-u UID:GID"
export KILN_RUN_FROM_HOST=from-host
assert_eq "from-host" "$(kiln run --rm -e KILN_RUN_FROM_HOST --entrypoint /bin/sh "$img" -c 'echo $KILN_RUN_FROM_HOST')" \
  "-e K takes K from kiln's environment"
assert_eq "" "$(kiln run --rm --entrypoint /bin/sh "$img" -c 'echo $KILN_RUN_FROM_HOST')" "host variable without -e"

note "-v rw and ro"
mkdir -p "$T/vol"
echo data >"$T/vol/in.txt"
kiln run --rm -u root -v "$T/vol:/v" --entrypoint /bin/sh "$img" -c 'cat /v/in.txt >/v/out.txt; echo more >>/v/out.txt'
assert_file "$T/vol/out.txt" "data
more"
rc=0
kiln run --rm -u root -v "$T/vol:/v:ro" --entrypoint /bin/sh "$img" -c 'cat /v/in.txt && echo x >/v/ro.txt' >"$T/ro.out" 2>&1 || rc=$?
assert_eq 1 "$rc" "exit of a write to a :ro volume"
assert_contains "$(cat "$T/ro.out")" data "read from a :ro volume"
assert_absent "$T/vol/ro.txt"

note "exit status"
rc=0; kiln run --rm --entrypoint /bin/sh "$img" -c 'exit 42' || rc=$?
assert_eq 42 "$rc" "exit status of the command"
rc=0; kiln run --rm --entrypoint /bin/false "$img" || rc=$?
assert_eq 1 "$rc" "exit status of /bin/false"
rc=0; kiln run --rm --entrypoint /no/such/command "$img" 2>"$T/err" || rc=$?
assert_eq 125 "$rc" "exit status when the command does not exist"
assert_contains "$(cat "$T/err")" "kiln: error:" "stderr for a missing command"
rc=0; kiln run --rm localhost/busybox:latest no-such-command 2>/dev/null || rc=$?
assert_eq 125 "$rc" "exit status when the command is not in PATH"
rc=0; kiln run --rm localhost/no-such-image:1 true 2>/dev/null || rc=$?
assert_eq 125 "$rc" "exit status for an image that is not there"

note "--network none sees only lo"
assert_eq "lo," "$(kiln run --rm --network none localhost/busybox:latest sh -c \
  "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ,")" "interfaces with --network none"

note "nothing changed: the image, the mount table, the store"
assert_eq "$mnt_before" "$(cat /proc/self/mountinfo)" "host mount table after kiln run"
kiln run --rm -u root --entrypoint /bin/sh "$img" -c 'echo changed >/srv/new; rm /bin/vi'
assert_eq "/bin/vi" "$(kiln run --rm -u root --entrypoint /bin/sh "$img" -c 'ls /srv; ls /bin/vi')" \
  "a second container does not see the first one's changes"
store_clean
