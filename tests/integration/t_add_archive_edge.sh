#!/bin/bash
# ADD of odd archives, as BuildKit reads them (solver/llbsolver/file/unpack.go
# isArchivePath + unpack, go-archive Unpack, Go's archive/tar):
#  - an entry with an empty name is the destination itself: skipped, the
#    destination keeps its own mode, the other entries land;
#  - a tar compressed twice (tar -> xz -> gzip) is decompressed once, which
#    is no tar: the file is copied as it is, still compressed;
#  - a tar without end-of-archive blocks is accepted; a cut end-of-archive
#    marker or a cut entry fails, naming the file.
source "$IT_DIR/lib.sh"
need umoci python3 xz gzip cmp
need_root

c=$T/ctx
mkdir -p "$c"
python3 - "$c" <<'PY'
import io, sys, tarfile
ctx = sys.argv[1]

def entry(name, typeflag, data=b"", mode=0o700):
    h = bytearray(512)
    h[0:len(name)] = name
    h[100:108] = b"%07o\0" % mode
    h[108:116] = h[116:124] = b"%07o\0" % 0
    h[124:136] = b"%011o\0" % len(data)
    h[136:148] = b"%011o\0" % 1000000000
    h[148:156] = b" " * 8
    h[156:157] = typeflag
    h[257:265] = b"ustar\x0000"
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h) + data + b"\0" * (-len(data) % 512)

def tar(files):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in files:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime = len(data), 1000000000
            t.addfile(ti, io.BytesIO(data))
    return out.getvalue()

rest = tar([("inside.txt", b"inside\n")])
open(f"{ctx}/emptyname.tar", "wb").write(entry(b"", b"5") + entry(b"", b"0", b"x", 0o600) + rest)
full = tar([("a.txt", b"hello\n" * 100)])
end = 512 + 1024  # header, 600 bytes of data padded to 1024
open(f"{ctx}/nomarker.tar", "wb").write(full[:end])
open(f"{ctx}/cutmarker.tar", "wb").write(full[:end + 512 + 100])
open(f"{ctx}/cutentry.tar", "wb").write(full[:end - 200])
open(f"{ctx}/test.tar", "wb").write(tar([("xz-inside.txt", b"xz\n")]))
PY
xz -k "$c/test.tar" && gzip -n "$c/test.tar.xz"     # test.tar.xz.gz
cp "$c/test.tar.xz.gz" "$T/original.tar.xz.gz"

cat >"$c/Dockerfile" <<'EOF'
FROM scratch
ADD emptyname.tar /e/
ADD test.tar.xz.gz /
ADD nomarker.tar /n/
EOF
kiln build --progress=plain -t localhost/edge:1 "$c"
unpack_image localhost/edge:1 "$T/b"
r=$T/b/rootfs

note "an empty entry name is skipped: the other entries land, /e keeps its mode"
assert_file "$r/e/inside.txt" inside
assert_stat "$r/e" %a 755
[ "$(ls -A "$r/e")" = inside.txt ] || fail "/e holds more than inside.txt: $(ls -A "$r/e")"

note "tar.xz.gz: decompressed once it is no tar, so the file is copied unchanged"
assert_file "$r/test.tar.xz.gz"
cmp "$T/original.tar.xz.gz" "$r/test.tar.xz.gz" || fail "test.tar.xz.gz was changed"
assert_absent "$r/xz-inside.txt"
assert_absent "$r/test.tar.xz"
assert_absent "$r/test.tar"

note "a tar without end-of-archive blocks is accepted"
assert_file "$r/n/a.txt" "$(python3 -c 'print("hello\n" * 100, end="")')"

note "a cut end-of-archive marker or a cut entry fails, naming the file"
for t in cutmarker cutentry; do
  printf 'FROM scratch\nADD %s.tar /x/\n' "$t" >"$c/Dockerfile.$t"
  expect_fail kiln build --progress=plain -f "$c/Dockerfile.$t" "$c"
  assert_contains "$ERR" "Dockerfile.$t:2: ADD: " "error for $t.tar names the line"
  assert_contains "$ERR" "$t.tar" "error for $t.tar"
  assert_match "$ERR" "[Tt]runcated" "error for $t.tar"
done
store_clean
