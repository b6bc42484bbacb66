#!/bin/bash
# -o type=tar / type=local from a rootless kiln (an unprivileged user with
# subordinate ids, as in t_rootless): the tar holds the image's owners (the
# ids inside kiln's user namespace, not the subordinate ones), and the local
# directory belongs to the user, as buildx writes it, so the user can delete it.
source "$IT_DIR/lib.sh"
need_root
need tar
rootless_user kilnor 300000
uid=$(id -u "$user")
export TZ=UTC

make_busybox_base "$T/base"
put "$T/ctx/Dockerfile" 'FROM localhost/busybox:latest
RUN mkdir /d && echo x >/d/f && chown 1000:1000 /d/f'
cp -a "$T/base" "$home/base"
cp -a "$T/ctx" "$home/ctx"
chown -R "$user:" "$home/base" "$home/ctx"
K=(as_user "$KILN" --root "$home/store")
"${K[@]}" build --progress=quiet -t localhost/busybox:latest "$home/base" >/dev/null

note "type=tar as $user: the image's owners"
"${K[@]}" build --progress=quiet --source-date-epoch 1700000000 -o "type=tar,dest=$home/fs.tar" "$home/ctx" >/dev/null
assert_eq "-rw-r--r-- 1000/1000 2 2023-11-14 22:13 d/f" \
  "$(tar --numeric-owner -tvf "$home/fs.tar" d/f | awk '{ $3 = $3; print }')" "d/f in the rootless tar"
assert_eq "0/0" "$(tar --numeric-owner -tvf "$home/fs.tar" bin/busybox | awk '{ print $2 }')" "bin/busybox owner"

note "type=local as $user: the files are the user's own and it can remove them"
"${K[@]}" build --progress=quiet -o "type=local,dest=$home/out" "$home/ctx" >/dev/null
assert_file "$home/out/d/f" x
assert_stat "$home/out/d/f" %u "$uid"
assert_stat "$home/out/bin/busybox" %u:%a "$uid:755"
as_user rm -rf "$home/out"
assert_absent "$home/out"
