#!/bin/bash
# ADD of a local tar archive (plain, gzip, bzip2, xz, zstd) extracts it into
# the destination; ADD of a plain file, or of a compressed file that is not
# a tar, copies it unchanged.
source "$IT_DIR/lib.sh"
need umoci tar gzip bzip2 xz zstd
need_root

c=$T/ctx
p=$T/payload
put "$p/top.txt" top
put "$p/dir/f.txt" f 0600
put "$p/dir/run.sh" run 0755
ln -s top.txt "$p/dir/ln"
mkdir -p "$c"
tar -C "$p" -cf "$c/a.tar" .
tar -C "$p" -czf "$c/a.tar.gz" .
tar -C "$p" -cjf "$c/a.tar.bz2" .
tar -C "$p" -cJf "$c/a.tar.xz" .
tar -C "$p" --zstd -cf "$c/a.tar.zst" .
cp "$c/a.tar.gz" "$c/disguised.bin"          # detection by content, not by name
put "$c/plain.txt" plain
printf 'just text\n' | gzip -n >"$c/text.gz"   # gzip, but not a tar: copied as is
cat >"$c/Dockerfile" <<'EOF'
FROM scratch
ADD a.tar /t/
ADD a.tar.gz /tgz/
ADD a.tar.bz2 /tbz/
ADD a.tar.xz /txz/
ADD a.tar.zst /tzst/
ADD disguised.bin /dis/
ADD plain.txt /plain/
ADD text.gz /gz/
EOF

kiln build -t localhost/add:1 --output "type=oci,dest=$T/o" "$c"
unpack_layout "$T/o" "$T/b"
r=$T/b/rootfs
for d in t tgz tbz txz tzst dis; do
  assert_file "$r/$d/top.txt" top
  assert_file "$r/$d/dir/f.txt" f
  assert_stat "$r/$d/dir/f.txt" %a 600
  assert_stat "$r/$d/dir/run.sh" %a 755
  assert_symlink "$r/$d/dir/ln" top.txt
  n=$(find "$r/$d" -maxdepth 1 -type f | wc -l)
  assert_eq 1 "$n" "files directly in /$d (the archive itself must not be copied)"
done
assert_file "$r/plain/plain.txt" plain
assert_file "$r/gz/text.gz"
cmp -s "$r/gz/text.gz" "$c/text.gz" || fail "/gz/text.gz was modified (a gzip that is not a tar must be copied)"
assert_eq 8 "$(ijq localhost/add:1 '.config.rootfs.diff_ids | length')" "one layer per ADD"
store_clean
