#!/bin/bash
# -o type=tar / type=local: the target stage's final filesystem, as BuildKit's
# tar and local exporters write it (exporter/tar/export.go Export, fsutil
# tarwriter.go WriteTar, exporter/local/fs.go CreateFS): names relative
# (`etc/`, `etc/passwd`), '/' after directories, no `./` root entry, a second
# name of an inode as a hardlink (`h ... link to`), the epoch replacing every
# mtime.  Also dest=- (stdout) for tar, oci and docker archives, and bad
# specs failing before anything is built or written.
source "$IT_DIR/lib.sh"
need tar skopeo jq
need_root
make_busybox_base
export TZ=UTC

c=$T/ctx
put "$c/note.txt" note 0640
cat >"$c/Dockerfile" <<'EOF'
FROM localhost/busybox:latest AS tools
RUN mkdir -p /d && echo keep >/d/keep && echo del >/d/del && ln /d/keep /d/hl && ln -s keep /d/sym \
 && mkfifo /d/fifo && chown 1000:1000 /d/keep && chmod 4750 /d/keep && echo plain >/d/plain
RUN rm /d/del

FROM scratch AS final
COPY --from=tools /d/plain /out/plain
COPY note.txt /etc/note.txt
EOF
SDE=(--source-date-epoch 1700000000)   # 2023-11-14 22:13 UTC
listing() { tar --numeric-owner -tvf "$1" | awk '{ $3 = $3; print }'; }

note "-o type=tar: the target stage's filesystem, exactly these entries"
kiln build "${SDE[@]}" -t localhost/fs:final -o "type=tar,dest=$T/final.tar" "$c" >"$T/final.out"
assert_match "$(cat "$T/final.out")" '^sha256:[0-9a-f]{64}$' "stdout names the image"
want='drwxr-xr-x 0/0 0 2023-11-14 22:13 etc/
-rw-r----- 0/0 5 2023-11-14 22:13 etc/note.txt
drwxr-xr-x 0/0 0 2023-11-14 22:13 out/
-rw-r--r-- 0/0 6 2023-11-14 22:13 out/plain'
assert_eq "$want" "$(listing "$T/final.tar")" "listing of the final stage"
assert_eq note "$(tar -xOf "$T/final.tar" etc/note.txt)" "content of etc/note.txt"

note "-o type=tar of a stage with RUN layers: whiteouts applied, hardlink, symlink, fifo, owner, setuid"
kiln build "${SDE[@]}" --target tools -o "type=tar,dest=$T/tools.tar" "$c" >/dev/null
want='drwxr-xr-x 0/0 0 2023-11-14 22:13 d/
prw-r--r-- 0/0 0 2023-11-14 22:13 d/fifo
-rwsr-x--- 1000/1000 5 2023-11-14 22:13 d/hl
hrwsr-x--- 1000/1000 0 2023-11-14 22:13 d/keep link to d/hl
-rw-r--r-- 0/0 6 2023-11-14 22:13 d/plain
lrwxrwxrwx 0/0 0 2023-11-14 22:13 d/sym -> keep'
assert_eq "$want" "$(listing "$T/tools.tar" | grep ' d/')" "listing of /d"
names=$(tar -tf "$T/tools.tar")
assert_contains "$names" "bin/busybox" "the base image's files"
assert_not_contains "$(head -1 <<<"$names")" "./" "first entry"
grep -Eq '^(/|\./)' <<<"$names" && fail "an entry name is absolute or starts with ./"
assert_eq 0 "$(grep -c '\.wh\.' <<<"$names" || true)" "whiteout entries"

note "dest=- writes the same tar to stdout and nothing else"
kiln build "${SDE[@]}" -t localhost/fs:final -o type=tar,dest=- "$c" >"$T/stdout.tar" 2>"$T/stdout.err"
cmp "$T/final.tar" "$T/stdout.tar" || fail "dest=- differs from dest=FILE"
assert_eq "$want" "$(kiln build "${SDE[@]}" --target tools -o type=tar,dest=- "$c" 2>/dev/null \
  | tar --numeric-owner -tvf - | awk '{ $3 = $3; print }' | grep ' d/')" "dest=- piped into tar"

note "an image without files gives a tar of the end marker only"
e=$T/empty
put "$e/Dockerfile" 'FROM scratch
LABEL empty=yes'
kiln build -o "type=tar,dest=$T/empty.tar" "$e" >/dev/null
assert_eq 1024 "$(stat -c %s "$T/empty.tar")" "size of the empty tar"
assert_eq 1024 "$(tr -d '\0' <"$T/empty.tar" | wc -c | awk '{ print 1024 - $1 }')" "zero bytes"
assert_eq "" "$(tar -tf "$T/empty.tar")" "entries of the empty tar"

note "-o type=local: the same tree as a directory; a symlink already in DEST is not followed"
mkdir -p "$T/outside" "$T/local"
ln -s "$T/outside" "$T/local/d"
kiln build "${SDE[@]}" --target tools -o "type=local,dest=$T/local" "$c" >/dev/null
assert_eq "" "$(ls -A "$T/outside")" "nothing written through DEST/d -> outside"
l=$T/local
assert_dir "$l/d"
assert_file "$l/d/keep" keep
assert_stat "$l/d/keep" %a:%u:%g 4750:1000:1000
assert_eq "$(stat -c %i "$l/d/keep")" "$(stat -c %i "$l/d/hl")" "d/hl and d/keep are one inode"
assert_symlink "$l/d/sym" keep
[ -p "$l/d/fifo" ] || fail "d/fifo is not a fifo"
assert_absent "$l/d/del"
assert_stat "$l/d/plain" %Y 1700000000
cmp -s "$l/bin/busybox" "$BUSYBOX_BIN" || fail "bin/busybox differs"
assert_symlink "$l/bin/sh" busybox
kiln build "${SDE[@]}" -o "type=local,dest=$T/local-final/sub" "$c" >/dev/null
assert_eq "etc
out" "$(ls "$T/local-final/sub")" "type=local of the final stage (DEST created)"

note "dest=- for the image archives: oci (implies tar=true) and docker"
kiln build "${SDE[@]}" -t localhost/fs:final --iidfile "$T/iid" -o type=oci,dest=- "$c" >"$T/oci.tar"
assert_eq "$(cat "$T/iid")" "$(skopeo inspect "oci-archive:$T/oci.tar" | jq -r .Digest)" "oci archive on stdout"
kiln build "${SDE[@]}" -t localhost/fs:final -o type=docker,dest=- "$c" >"$T/docker.tar"
assert_eq 2 "$(skopeo inspect "docker-archive:$T/docker.tar" | jq '.Layers | length')" "docker archive on stdout"
kiln build "${SDE[@]}" -t localhost/fs:final -o "type=oci,dest=$T/o.tar,tar=true" "$c" >/dev/null
assert_file "$T/o.tar"
assert_eq "$(cat "$T/iid")" "$(skopeo inspect "oci-archive:$T/o.tar" | jq -r .Digest)" "type=oci,tar=true"
kiln build "${SDE[@]}" -t localhost/fs:final -o "type=oci,dest=$T/odir" "$c" >/dev/null
assert_file "$T/odir/index.json"

note "bad --output specs fail before the build and write nothing"
for spec in "type=bogus,dest=$T/bad" "type=tar,dest=$T/bad,compression=gzip" "type=local,dest=-" \
  "type=tar" "dest=$T/bad" "type=tar,dest=$T/bad,tar=true" "type=oci,dest=$T/bad,tar=maybe" \
  "type=oci,dest=-,tar=false"; do
  expect_fail kiln build -t localhost/fs:bad -o "$spec" "$c"
  assert_contains "$ERR" "--output" "error for $spec"
  assert_not_contains "$ERR" "[1/" "steps run for $spec"
  assert_absent "$T/bad"
done
assert_contains "$ERR" "tar=false" "error names the bad part"
expect_fail kiln build -o "type=nope,dest=$T/bad" "$c"
assert_contains "$ERR" "unknown type \`nope\`" "unknown type message"
expect_fail kiln build -o "type=tar,dest=$T/bad,color=red" "$c"
assert_contains "$ERR" "unknown key \`color=red\`" "unknown key message"
if command -v script >/dev/null 2>&1; then
  # stdout a terminal (script's pty): refused before the build, as buildx does
  out=$(script -qec "$KILN --root $KILN_ROOT build -t localhost/fs:bad -o type=tar,dest=- $c" /dev/null </dev/null || true)
  assert_contains "$out" "refusing to write an archive to a terminal" "dest=- on a terminal"
  assert_not_contains "$out" "[1/" "steps run for dest=- on a terminal"
fi
expect_fail kiln inspect localhost/fs:bad
store_clean
