#!/bin/bash
# COPY/ADD destinations resolved against the image below, as BuildKit does
# (fsutil copy/copy.go Copy + prepareTargetDir + MkdirAll, copyDirectoryOnly,
# ensureEmptyFileTarget; BuildKit frontend/dockerfile/dockerfile_copy_test.go
# testCopyChownExistingDir, dockerfile_core_test.go testSymlinkDestination):
# an existing directory receives a file source; symlinks on the way are
# followed inside the root; existing directories keep owner, mode and time;
# missing ones are made 0755 (owned by the --chown user); a file never
# replaces a directory nor the reverse.  The same destinations must also be
# right in the snapshot a later RUN sees (checked with RUN stat).
source "$IT_DIR/lib.sh"
need umoci jq
need_root
make_busybox_base

c=$T/ctx
put "$c/app.txt" app
put "$c/script" '#!/bin/sh' 0755
put "$c/conf/nginx.conf" conf
put "$c/sub/one" one
put "$c/sub/deep/two" two
cat >"$c/Dockerfile" <<'DF'
FROM localhost/busybox:latest
RUN mkdir -p /usr/local/bin /opt /etc/nginx && chmod 0750 /opt && chown 7:8 /opt \
 && mkdir -m 0700 /app && chown 1001:1001 /app \
 && mkdir /real && ln -s /real /link && ln -s ../tmp/symlink-target /dangling \
 && mkdir -p /data/x && touch /data/file
COPY app.txt /tmp
COPY script /usr/local/bin
COPY app.txt /opt
ADD conf /etc/nginx
ADD sub /link/sub/
COPY app.txt /dangling/
COPY --chown=5:6 app.txt /newdir/deeper/f
WORKDIR /app
COPY . .
RUN stat -c '%a %u:%g' /tmp /opt /app > /seen && test -f /tmp/app.txt && test -x /usr/local/bin/script \
 && test -L /link && test -f /real/sub/one && test -f /real/sub/deep/two && test -f /tmp/symlink-target/app.txt
DF
kiln build -t localhost/dest:1 "$c"
unpack_image localhost/dest:1 "$T/b"
r=$T/b/rootfs
assert_file "$r/tmp/app.txt" app
assert_stat "$r/tmp" %a 1777
assert_file "$r/usr/local/bin/script" '#!/bin/sh'
assert_file "$r/opt/app.txt" app
assert_stat "$r/opt" '%a %u:%g' '750 7:8'
assert_file "$r/etc/nginx/nginx.conf" conf
assert_symlink "$r/link" /real
assert_file "$r/real/sub/one" one
assert_file "$r/real/sub/deep/two" two
assert_file "$r/tmp/symlink-target/app.txt" app
assert_symlink "$r/dangling" ../tmp/symlink-target
assert_stat "$r/newdir" '%a %u:%g' '755 5:6'
assert_stat "$r/newdir/deeper" '%a %u:%g' '755 5:6'
assert_stat "$r/newdir/deeper/f" '%u:%g' '5:6'
note "the directory the app writes to keeps its owner and mode (WORKDIR /app, COPY . .)"
assert_stat "$r/app" '%a %u:%g' '700 1001:1001'
assert_file "$r/app/app.txt" app
assert_file "$r/seen" "$(printf '1777 0:0\n750 7:8\n700 1001:1001')"

note "testCopyChownExistingDir (BuildKit), both targets"
c2=$T/ctx2
mkdir -p "$c2"
cat >"$c2/Dockerfile" <<'DF'
FROM localhost/busybox:latest AS source
RUN touch /file && chown 100:200 /file \
 && mkdir -p /dir/subdir && touch /dir/subdir/nestedfile \
 && chown 100:200 /dir && chown 101:201 /dir/subdir && chown 102:202 /dir/subdir/nestedfile

FROM localhost/busybox:latest AS test_base
RUN mkdir -p /existingdir/existingsubdir && touch /existingdir/existingfile \
 && chown 500:600 /existingdir && chown 501:601 /existingdir/existingsubdir && chown 501:601 /existingdir/existingfile

FROM test_base AS copy_from
COPY --from=source /file .
COPY --from=source /dir /dir
COPY --from=source /dir/. /existingdir
RUN stat -c '%n %u:%g' /file /dir /dir/subdir /dir/subdir/nestedfile /existingdir /existingdir/existingsubdir \
    /existingdir/existingfile /existingdir/subdir /existingdir/subdir/nestedfile > /owners

FROM test_base AS copy_from_chowned
COPY --from=source --chown=300:400 /file .
COPY --from=source --chown=300:400 /dir /dir
COPY --from=source --chown=300:400 /dir/. /existingdir
RUN stat -c '%n %u:%g' /file /dir /dir/subdir /dir/subdir/nestedfile /existingdir /existingdir/existingsubdir \
    /existingdir/existingfile /existingdir/subdir /existingdir/subdir/nestedfile > /owners
DF
kiln build --target copy_from -t localhost/chown:1 "$c2"
kiln build --target copy_from_chowned -t localhost/chown:2 "$c2"
unpack_image localhost/chown:1 "$T/c1"
unpack_image localhost/chown:2 "$T/c2"
assert_file "$T/c1/rootfs/owners" "$(printf '%s\n' '/file 100:200' '/dir 0:0' '/dir/subdir 101:201' \
  '/dir/subdir/nestedfile 102:202' '/existingdir 500:600' '/existingdir/existingsubdir 501:601' \
  '/existingdir/existingfile 501:601' '/existingdir/subdir 101:201' '/existingdir/subdir/nestedfile 102:202')"
assert_file "$T/c2/rootfs/owners" "$(printf '%s\n' '/file 300:400' '/dir 300:400' '/dir/subdir 300:400' \
  '/dir/subdir/nestedfile 300:400' '/existingdir 500:600' '/existingdir/existingsubdir 501:601' \
  '/existingdir/existingfile 501:601' '/existingdir/subdir 300:400' '/existingdir/subdir/nestedfile 300:400')"
# the layers say the same as the RUN saw (umoci applies them as a runtime does)
assert_stat "$T/c1/rootfs/existingdir" '%u:%g' 500:600
assert_stat "$T/c2/rootfs/dir" '%a %u:%g' '755 300:400'

note "COPY --from=stage . . : the destination's mode comes from the image, not from a scratch dir"
c3=$T/ctx3
mkdir -p "$c3"
cat >"$c3/Dockerfile" <<'DF'
FROM localhost/busybox:latest AS b
RUN mkdir -p /out && echo hi > /out/f
FROM localhost/busybox:latest
WORKDIR /w
COPY --from=b /out/ .
COPY --from=b /out /
DF
kiln build -t localhost/fromdot:1 "$c3"
unpack_image localhost/fromdot:1 "$T/d"
assert_stat "$T/d/rootfs/w" '%a %u:%g' '755 0:0'
assert_stat "$T/d/rootfs" '%a' 755
assert_file "$T/d/rootfs/w/f" hi
assert_file "$T/d/rootfs/f" hi

note "a file never replaces a directory, nor a directory a file (BuildKit errors)"
c4=$T/ctx4
mkdir -p "$c4/tree/x"
put "$c4/tree/x/in" in
put "$c4/x" x
printf 'FROM localhost/busybox:latest\nRUN mkdir -p /d/x\nCOPY x /d/\n' >"$c4/Dockerfile"
expect_fail kiln build "$c4"
assert_contains "$ERR" 'Dockerfile:3: COPY: cannot replace the directory `/d/x` with a file'
printf 'FROM localhost/busybox:latest\nRUN mkdir /d && touch /d/x\nCOPY tree /d/\n' >"$c4/Dockerfile"
expect_fail kiln build "$c4"
assert_contains "$ERR" 'Dockerfile:3: COPY: cannot copy a directory to `/d/x`: it is not a directory'
printf 'FROM localhost/busybox:latest\nRUN touch /f\nCOPY x /f/sub/\n' >"$c4/Dockerfile"
expect_fail kiln build "$c4"
assert_contains "$ERR" 'Dockerfile:3: COPY: cannot make directory `/f`: a file is in the way'
printf 'FROM localhost/busybox:latest\nRUN ln -s /loop2 /loop1 && ln -s /loop1 /loop2\nCOPY x /loop1/\n' >"$c4/Dockerfile"
expect_fail kiln build "$c4"
assert_contains "$ERR" 'too many levels of symbolic links'

note "COPY --link copies onto an empty tree, as BuildKit's merge of a scratch copy: /opt is the copy's own 0755"
printf 'FROM localhost/busybox:latest\nRUN mkdir -m 0750 /opt && ln -s /opt /lnk\nCOPY --link x /opt/\nCOPY --link x /lnk/\n' >"$c4/Dockerfile"
kiln build -t localhost/link:1 "$c4"
unpack_image localhost/link:1 "$T/l"
assert_file "$T/l/rootfs/opt/x" x
assert_stat "$T/l/rootfs/opt" '%a %u:%g' '755 0:0'
assert_file "$T/l/rootfs/lnk/x" x

note "WORKDIR under a USER: the directories it makes belong to that user (BuildKit dispatchWorkdir: Mkdir WithUser)"
printf 'FROM localhost/busybox:latest\nUSER app\nWORKDIR /home/app/data/x\nCOPY x .\nWORKDIR /srv/w2\nRUN touch f\nUSER root\nWORKDIR /rootdir\nRUN true\n' >"$c4/Dockerfile"
kiln build -t localhost/wdu:1 "$c4"
unpack_image localhost/wdu:1 "$T/w"
assert_stat "$T/w/rootfs/home/app/data" '%u:%g' 1000:1000
assert_stat "$T/w/rootfs/home/app/data/x" '%u:%g' 1000:1000
assert_stat "$T/w/rootfs/srv" '%u:%g' 1000:1000
assert_stat "$T/w/rootfs/srv/w2/f" '%u:%g' 1000:1000
assert_stat "$T/w/rootfs/rootdir" '%u:%g' 0:0
assert_stat "$T/w/rootfs/home" '%u:%g' 0:0

note "two names of one file in a source stay one file (BuildKit's copier links them: fsutil getLinkSource), also in the RUN after"
mkdir -p "$c4/hl/sub"
put "$c4/hl/z-first" linked
ln -f "$c4/hl/z-first" "$c4/hl/a-second"
ln -f "$c4/hl/z-first" "$c4/hl/sub/third"
printf 'FROM localhost/busybox:latest\nCOPY hl /hl/\nRUN test "$(stat -c %%i /hl/a-second)" = "$(stat -c %%i /hl/z-first)" && test "$(stat -c %%h /hl/z-first)" = 3\n' >"$c4/Dockerfile"
kiln build -t localhost/hl:1 "$c4"
unpack_image localhost/hl:1 "$T/hl"
assert_file "$T/hl/rootfs/hl/z-first" linked
assert_eq "$(stat -c %i "$T/hl/rootfs/hl/a-second")" "$(stat -c %i "$T/hl/rootfs/hl/z-first")" "hard link in the image"
assert_eq 3 "$(stat -c %h "$T/hl/rootfs/hl/z-first")" "link count"
kiln build -t localhost/hl:2 "$c4" >"$T/hl2.log" 2>&1
assert_not_contains "$(cat "$T/hl2.log")" "miss:" "a rebuild with hard links hits the cache"

note "a symlink whose target leaves the root is resolved inside it"
printf 'FROM localhost/busybox:latest\nRUN ln -s ../../../../etc/../../outside /esc\nCOPY x /esc/\n' >"$c4/Dockerfile"
kiln build -t localhost/esc:1 "$c4"
unpack_image localhost/esc:1 "$T/e"
assert_file "$T/e/rootfs/outside/x" x
store_clean
