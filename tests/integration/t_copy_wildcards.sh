#!/bin/bash
# Wildcards, --parents and WORKDIR through symlinks, as BuildKit builds them.
# - wildcards are resolved in the copy (BuildKit solver/llbsolver/file/
#   backend.go docopy with AllowWildcard + AllowEmptyWildcard set by
#   dockerfile2llb/convert_copy.go): one match is one source, so
#   `COPY target/*.jar app.jar` writes the file app.jar; a pattern that
#   matches nothing copies nothing (testEmptyWildcard); a missing directory
#   before the wildcard fails (fsutil ResolveWildcards walks from it);
# - --parents (Dockerfile 1.20; convert_copy.go splits the source at its
#   first "/./"; tests testCopyParents and testCopyRelativeParents in
#   frontend/dockerfile/dockerfile_parents_test.go are ported below);
# - WORKDIR through a dangling symlink makes the link's target (fsutil
#   MkdirAll over fs.RootPath).
source "$IT_DIR/lib.sh"
need umoci jq
need_root
make_busybox_base

c=$T/ctx
put "$c/target/app-1.0.jar" jar
put "$c/a.txt" a
put "$c/b.txt" b
put "$c/package.json" pkg
put "$c/foo1/foo2/bar" testing
put "$c/foo1/foo2/baz" testing2
chmod 0700 "$c/foo1" "$c/foo1/foo2"
cat >"$c/Dockerfile" <<'DF'
FROM localhost/busybox:latest
RUN mkdir /testdir && ln -s /tempest-target /tempest
WORKDIR /srv
COPY target/*.jar app.jar
COPY *.txt /testdir
COPY package*.json yarn.lock* ./
COPY nomatch* /never/
COPY --parents foo1/foo2/bar /
WORKDIR /test
COPY --parents foo1/foo2/ba* .
COPY --parents=false foo1/foo2/bar /flat/
WORKDIR /tempest
RUN touch here
DF
kiln build -t localhost/wild:1 "$c"
unpack_image localhost/wild:1 "$T/b"
r=$T/b/rootfs
assert_file "$r/srv/app.jar" jar
assert_file "$r/testdir/a.txt" a
assert_file "$r/testdir/b.txt" b
assert_file "$r/srv/package.json" pkg
assert_absent "$r/srv/yarn.lock"
assert_absent "$r/never"
assert_file "$r/foo1/foo2/bar" testing
assert_stat "$r/foo1" %a 700
assert_file "$r/test/foo1/foo2/bar" testing
assert_file "$r/test/foo1/foo2/baz" testing2
assert_file "$r/flat/bar" testing
assert_symlink "$r/tempest" /tempest-target
assert_file "$r/tempest-target/here" ""

note "errors: a missing plain source, a missing directory before a wildcard, two sources into a file"
printf 'FROM localhost/busybox:latest\nCOPY missing.txt /x/\n' >"$c/Dockerfile"
expect_fail kiln build "$c"
assert_contains "$ERR" 'Dockerfile:2: COPY: source `missing.txt` not found'
printf 'FROM localhost/busybox:latest\nCOPY missing/*.txt /x/\n' >"$c/Dockerfile"
expect_fail kiln build "$c"
assert_contains "$ERR" 'Dockerfile:2: COPY: source directory `missing` not found'
printf 'FROM localhost/busybox:latest\nCOPY *.txt /one.txt\n' >"$c/Dockerfile"
expect_fail kiln build "$c"
assert_contains "$ERR" 'Dockerfile:2: COPY: with more than one source the destination `/one.txt` must be a directory'
printf 'FROM localhost/busybox:latest\nCOPY --parents=maybe a.txt /x/\n' >"$c/Dockerfile"
expect_fail kiln build "$c"
assert_contains "$ERR" 'Dockerfile:2: COPY: expecting a boolean value for flag: --parents'

note "testCopyRelativeParents (BuildKit), from another stage"
cat >"$c/Dockerfile" <<'DF'
FROM localhost/busybox:latest AS base
WORKDIR /test
RUN mkdir -p a/b/c/d/e a/b2/c/d/e a/b/c2/d/e a/b/c2/d/e2 && touch a/b/c/d/foo a/b/c/d/e/bay a/b2/c/d/e/bar \
    a/b/c2/d/e/baz a/b/c2/d/e2/baz
FROM localhost/busybox:latest
COPY --from=base --parents /test/a/b/./c/d /middle/
COPY --from=base --parents /test/a/b/c/d/. /end/
COPY --from=base --parents ./test/a/b/c/d /start/
COPY --from=base --parents /test/a/./b/./c /double/
COPY --from=base --parents /test/a/./*/c /wildcard/
COPY --from=base --parents /test/a/b*/./c /pivotwild/
DF
kiln build -t localhost/parents:1 "$c"
unpack_image localhost/parents:1 "$T/p"
p=$T/p/rootfs
assert_dir "$p/middle/c/d/e"
assert_file "$p/middle/c/d/foo" ""
assert_absent "$p/middle/a"
assert_absent "$p/middle/e"
assert_dir "$p/end/test/a/b/c/d/e"
assert_file "$p/end/test/a/b/c/d/foo" ""
assert_dir "$p/start/test/a/b/c/d/e"
assert_dir "$p/double/b/c/d/e"
assert_file "$p/double/b/c/d/foo" ""
assert_dir "$p/wildcard/b/c/d/e"
assert_file "$p/wildcard/b2/c/d/e/bar" ""
assert_file "$p/pivotwild/c/d/e/bay" ""
assert_file "$p/pivotwild/c/d/e/bar" ""
store_clean
