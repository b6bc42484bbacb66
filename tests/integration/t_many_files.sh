#!/bin/bash
# A 100,000-file context (six directories deep, seeded): the second build is
# all cache hits and reads no file's content.  Reads are counted without
# LD_PRELOAD: the context sits on a tmpfs mounted with strictatime, where
# every read of a file moves its atime, so no file may be accessed after a
# stamp taken between the builds.  Then one changed file is named by the miss.
# it-timeout: 300
source "$IT_DIR/lib.sh"
need python3
need_root

c=$T/ctx
mkdir -p "$c"
mount -t tmpfs -o strictatime,size=1g,nr_inodes=300000 kiln-it-ctx "$c"
trap 'umount -l "$c" 2>/dev/null || true' EXIT

note "generating 100,000 files"
python3 - "$c" <<'EOF'
import os, random, sys
root = sys.argv[1]
rnd = random.Random(20261206)
dirs = []
def mk(p, depth):
    if depth == 6:
        dirs.append(p)
        return
    for i in range(4 if depth < 5 else 6):
        mk(os.path.join(p, "d%d" % i), depth + 1)
mk(os.path.join(root, "app"), 1)
for d in dirs:
    os.makedirs(d)
for i in range(100000):
    with open(os.path.join(dirs[i % len(dirs)], "f%d.py" % i), "w") as f:
        f.write("# %d %s\n" % (i, "x" * rnd.randint(0, 200)))
with open(os.path.join(root, "Dockerfile"), "w") as f:
    f.write("FROM scratch\nCOPY app/ /app/\n")
EOF
[ "$(find "$c/app" -type f | wc -l)" = 100000 ] || fail "the generator made $(find "$c/app" -type f | wc -l) files"

note "cold build"
# files changed within the last 2 s are hashed again by the next build
# (racily clean, as git says): a working tree is older than that
sleep 2.1
kiln build --progress quiet -t localhost/many:1 "$c" >/dev/null
id1=$(ijq localhost/many:1 '.config.rootfs.diff_ids[0]')

note "rebuild: all hits, no file read"
sleep 0.05
touch "$T/stamp"
sleep 0.05
out=$(/usr/bin/time -f "peak RSS %M KiB, %e s" "$KILN" --root "$KILN_ROOT" build --progress plain -t localhost/many:1 "$c" 2>&1) || fail "$out"
echo "$out" | tail -1
assert_not_contains "$out" "miss:"
assert_contains "$out" "COPY app/ /app/ CACHED"
read_files=$(find "$c/app" -type f -anewer "$T/stamp" | wc -l)
assert_eq 0 "$read_files" "files read by the no-change rebuild"
# the check can fail: a read of one file is seen
cat "$c/app/d0/d0/d0/d0/d0/f0.py" >/dev/null
assert_eq 1 "$(find "$c/app" -type f -anewer "$T/stamp" | wc -l)" "a read the atime check sees"
assert_eq "$id1" "$(ijq localhost/many:1 '.config.rootfs.diff_ids[0]')" "layer of the rebuild"

note "one changed file: named by the miss, a new layer"
changed=$(cd "$c" && find app -name f100.py)
echo changed >>"$c/$changed"
out=$(kiln build --progress plain -t localhost/many:1 "$c" 2>&1) || fail "$out"
assert_contains "$out" "miss: COPY app/ /app/ : $changed content changed"
assert_ne "$id1" "$(ijq localhost/many:1 '.config.rootfs.diff_ids[0]')" "layer after a change"
