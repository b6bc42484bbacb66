#!/bin/bash
# .dockerignore exceptions where kiln and buildah 1.28 disagree; kiln follows
# BuildKit: the client filters the context with fsutil's filterFS (filter.go
# (*filterFS).Walk) using moby/patternmatcher MatchesUsingParentResults, the
# last matching pattern wins, a match on a parent counts for its children,
# and an excluded directory is walked (and sent only as the parent of an
# included file) when an exception could re-include something below it.
source "$IT_DIR/lib.sh"
need umoci jq
need_root
make_busybox_base

note '`volume/` then `!**/oneline.txt`: volume/data/oneline.txt is sent, nothing else under volume/'
c=$T/c1
put "$c/volume/data/oneline.txt" one
put "$c/volume/other.txt" other
put "$c/top/oneline.txt" top
printf 'volume/\n!**/oneline.txt\n' >"$c/.dockerignore"
printf 'FROM localhost/busybox:latest\nCOPY . /ctx/\n' >"$c/Dockerfile"
kiln build -t localhost/ign:1 "$c"
unpack_image localhost/ign:1 "$T/b1"
assert_file "$T/b1/rootfs/ctx/volume/data/oneline.txt" one
assert_absent "$T/b1/rootfs/ctx/volume/other.txt"
assert_file "$T/b1/rootfs/ctx/top/oneline.txt" top

note '`**` then `!folder1/file` with no folder1/file: ADD folder1 fails (nothing of folder1 is sent)'
c=$T/c2
put "$c/folder1/other" other
printf '**\n!folder1/file\n' >"$c/.dockerignore"
printf 'FROM localhost/busybox:latest\nADD folder1 /f1\n' >"$c/Dockerfile"
expect_fail kiln build "$c"
assert_contains "$ERR" 'Dockerfile:2: ADD: source `folder1`'
note '... and with folder1/file present, exactly that file is copied'
put "$c/folder1/file" file
kiln build -t localhost/ign:2 "$c"
unpack_image localhost/ign:2 "$T/b2"
assert_file "$T/b2/rootfs/f1/file" file
assert_absent "$T/b2/rootfs/f1/other"

note '`subdir` then `!*/sub1*`: COPY subdir ./. copies subdir/sub1.txt only (not deeper ones)'
c=$T/c3
put "$c/subdir/sub1.txt" s1
put "$c/subdir/sub2.txt" s2
put "$c/subdir/deep/sub1.txt" deep
printf 'subdir\n!*/sub1*\n' >"$c/.dockerignore"
printf 'FROM localhost/busybox:latest\nWORKDIR /w\nCOPY subdir ./.\n' >"$c/Dockerfile"
kiln build -t localhost/ign:3 "$c"
unpack_image localhost/ign:3 "$T/b3"
assert_file "$T/b3/rootfs/w/sub1.txt" s1
assert_absent "$T/b3/rootfs/w/sub2.txt"
assert_absent "$T/b3/rootfs/w/deep"
