#!/bin/bash
# COPY semantics: single file, directory contents, wildcards, several sources
# into a dir, rename, --chown numeric and by name (base /etc/passwd),
# --chmod, symlinks inside directories kept as symlinks, context owners not leaking into the
# image.  Checked on the umoci-unpacked rootfs and with skopeo inspect.
source "$IT_DIR/lib.sh"
need umoci skopeo jq
need_root
make_busybox_base

c=$T/ctx
put "$c/hello.txt" hello
chown 1234:4321 "$c/hello.txt"       # context owner must not reach the image
put "$c/exec.sh" '#!/bin/sh' 0755
put "$c/dir/a.txt" a
put "$c/dir/sub/b.txt" b 0600
ln -s sub/b.txt "$c/dir/ln"
put "$c/w/x1.conf" x1
put "$c/w/x2.conf" x2
put "$c/w/y.txt" y
ln -s hello.txt "$c/link"
cat >"$c/Dockerfile" <<'EOF'
FROM localhost/busybox:latest
COPY hello.txt /hello.txt
COPY dir /dst/dir/
COPY w/*.conf /conf/
COPY hello.txt dir/a.txt /multi/
COPY hello.txt /renamed.txt
COPY --chown=1000:1000 hello.txt /own-num.txt
COPY --chown=app:app dir /own-name/
COPY --chmod=0640 hello.txt /mode.txt
COPY link /link
COPY exec.sh /exec.sh
EOF

kiln build --progress=plain -t localhost/copy:v1 --output "type=oci,dest=$T/oci" --iidfile "$T/iid" "$c"

note "skopeo sees the layout and the layer count"
sk=$(skopeo inspect "oci:$T/oci:v1")
assert_eq 11 "$(jq '.Layers | length' <<<"$sk")" "layers (1 base + 10 COPY)"
assert_eq linux "$(jq -r .Os <<<"$sk")" "os"
assert_eq "$(cat "$T/iid")" "$(jq -r .Digest <<<"$sk")" "digest from skopeo vs --iidfile"
assert_eq '["/bin/sh"]' "$(jq -c .config.Cmd <(skopeo inspect --config "oci:$T/oci:v1"))" "Cmd inherited from base"
assert_eq 11 "$(jq '.rootfs.diff_ids | length' <(skopeo inspect --config "oci:$T/oci:v1"))" "diff_ids"

note "umoci unpack"
unpack_layout "$T/oci" "$T/b"
r=$T/b/rootfs
assert_file "$r/bin/busybox"
assert_file "$r/hello.txt" hello
assert_stat "$r/hello.txt" %a:%u:%g 644:0:0

# a directory source copies its contents, not the directory itself
assert_file "$r/dst/dir/a.txt" a
assert_file "$r/dst/dir/sub/b.txt" b
assert_stat "$r/dst/dir/sub/b.txt" %a 600
assert_absent "$r/dst/dir/dir"
assert_absent "$r/dst/dir/sub/sub"

assert_file "$r/conf/x1.conf" x1
assert_file "$r/conf/x2.conf" x2
assert_absent "$r/conf/y.txt"
assert_absent "$r/conf/w"

assert_file "$r/multi/hello.txt" hello
assert_file "$r/multi/a.txt" a
assert_absent "$r/multi/dir"

assert_file "$r/renamed.txt" hello
assert_stat "$r/own-num.txt" %u:%g 1000:1000
assert_file "$r/own-name/a.txt" a
assert_stat "$r/own-name/a.txt" %u:%g 1000:1000
assert_stat "$r/own-name/sub" %u:%g 1000:1000
assert_stat "$r/own-name/sub/b.txt" %u:%g 1000:1000
assert_file "$r/mode.txt" hello
assert_stat "$r/mode.txt" %a:%u:%g 640:0:0
# a symlink inside a copied directory stays a symlink; a symlink named as
# the source itself is followed, as BuildKit does (FollowSymlinks)
assert_symlink "$r/dst/dir/ln" sub/b.txt
assert_stat "$r/dst/dir/ln" %u:%g 0:0
assert_symlink "$r/own-name/ln" sub/b.txt
assert_file "$r/link" hello
assert_file "$r/exec.sh"
assert_stat "$r/exec.sh" %a 755

note "the tagged image in the store is the one that was output"
assert_eq "$(cat "$T/iid")" "$(ijq localhost/copy:v1 .digest)" "kiln inspect digest"
store_clean
