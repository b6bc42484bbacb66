#!/bin/bash
# Ports of BuildKit's ADD tests (moby/buildkit
# frontend/dockerfile/dockerfile_add_test.go) and multi-stage tests
# (dockerfile_multistage_test.go), each a `note` section named after the
# BuildKit test, with BuildKit's Dockerfiles (Unix variants) and checks.
# The tars BuildKit writes with Go's archive/tar are written with Python's
# tarfile here.  Not ported: the URL parts of testDockerfileAddArchive and
# testDockerfileADDFromURL, testAddURLChmod, testAddChecksum (URL sources;
# t_add_url.sh covers kiln's), `ADD --unpack` (not supported by kiln),
# testMultiStageImplicitFrom (pulls golang/busybox images from Docker Hub).
source "$IT_DIR/port_lib.sh"
need python3
need_root
make_bk_busybox

# mktar OUT.tar[.gz] SPEC...: SPEC is d:NAME, f:NAME:CONTENT, l:NAME:TARGET
# (symlink) or h:NAME:TARGET (hard link)
mktar() {
  python3 - "$@" <<'PY'
import io, sys, tarfile
out, specs = sys.argv[1], sys.argv[2:]
with tarfile.open(out, "w:gz" if out.endswith(".gz") else "w", format=tarfile.PAX_FORMAT) as t:
    for s in specs:
        kind, name, *rest = s.split(":", 2)
        ti = tarfile.TarInfo(name)
        if kind == "d":
            ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            t.addfile(ti)
        elif kind == "f":
            data = rest[0].encode()
            ti.size, ti.mode = len(data), 0o644
            t.addfile(ti, io.BytesIO(data))
        else:
            ti.type = tarfile.SYMTYPE if kind == "l" else tarfile.LNKTYPE
            ti.linkname, ti.mode = rest[0], 0o777 if kind == "l" else 0o644
            t.addfile(ti)
PY
}

note "testDockerfileAddArchive (without the URL and --unpack parts)"
c=$(bk_ctx add-archive)
mktar "$c/t.tar" f:foo:content0
mktar "$c/t.tar.gz" f:foo:content0
printf 'FROM scratch\nADD t.tar /\n' >"$c/Dockerfile"
bk_local "$c" "$T/aa1"
assert_file "$T/aa1/foo" content0
printf 'FROM scratch\nADD t.tar.gz /\n' >"$c/Dockerfile"
bk_local "$c" "$T/aa2"
assert_file "$T/aa2/foo" content0
printf 'FROM scratch\nCOPY t.tar.gz /\n' >"$c/Dockerfile"
bk_local "$c" "$T/aa3"
cmp "$c/t.tar.gz" "$T/aa3/t.tar.gz" || fail "COPY changed t.tar.gz"
assert_absent "$T/aa3/foo"

note "testDockerfileAddArchiveWithImpliedParentDir (moby/moby#53257)"
c=$(bk_ctx add-implied-parent)
mktar "$c/t.tar.gz" d:etc/dnf/ f:etc/dnf/dnf.conf:content0
printf 'FROM busybox\nADD t.tar.gz /\n' >"$c/Dockerfile"
bk_local "$c" "$T/aip"
assert_file "$T/aip/etc/dnf/dnf.conf" content0

note "testDockerfileAddChownArchive"
c=$(bk_ctx add-chown-archive)
mktar "$c/t.tar" f:foo:content0
printf 'FROM scratch\nADD --chown=100:200 t.tar /out/\n' >"$c/Dockerfile"
kiln build --progress=quiet -o "type=tar,dest=$T/aca.tar" "$c" >/dev/null
listing=$(tar -tvf "$T/aca.tar" --numeric-owner)
assert_match "$listing" '^-[rwx-]{9} 100/200 +8 .* out/foo$'
assert_match "$listing" '^d[rwx-]{9} 100/200 .* out/?$'
tar -xOf "$T/aca.tar" out/foo | grep -qx content0 || fail "out/foo content"

note "testDockerfileAddArchiveWildcard"
c=$(bk_ctx add-archive-wildcard)
mktar "$c/t.tar" f:foo:content0
mktar "$c/b.tar" f:bar:content1
printf 'FROM scratch\nADD *.tar /dest\n' >"$c/Dockerfile"
bk_local "$c" "$T/aaw"
assert_file "$T/aaw/dest/foo" content0
assert_file "$T/aaw/dest/bar" content1

note "testDockerfileAddChownExpand"
c=$(bk_ctx add-chown-expand)
printf foo-contents >"$c/foo"
cat >"$c/Dockerfile" <<'DF'
FROM busybox
ARG group
ENV owner 1000
ADD --chown=${owner}:${group} foo /
RUN [ "$(stat -c "%u %G" /foo)" == "1000 nobody" ]
DF
bk_build "$c" --build-arg group=nobody

note "testMultiStageCaseInsensitive (dockerfile_multistage_test.go)"
c=$(bk_ctx multistage-case)
printf foo-contents >"$c/foo"
cat >"$c/Dockerfile" <<'DF'
FROM scratch AS STAge0
COPY foo bar
FROM scratch AS staGE1
COPY --from=staGE0 bar baz
FROM scratch
COPY --from=stage1 baz bax
DF
bk_local "$c" "$T/msc" --target Stage1
assert_file "$T/msc/baz" foo-contents
assert_absent "$T/msc/bax"

note "testDockerfileAddArchiveThroughAbsoluteSymlink (moby/moby#53258)"
# BuildKit untars in a chroot (solver/llbsolver/file/unpack.go, go-archive
# createTarFile): the payload's implied parent var/run is the image's
# symlink to /run and is followed; the listed entries land below /run
c=$(bk_ctx add-through-symlink)
mktar "$c/rootfs.tar" d:run/ d:var/ l:var/run:/run
mktar "$c/payload.tar" d:var/run/act/ d:var/run/act/actions/ d:var/run/act/actions/broad/ \
  d:var/run/act/actions/broad/.git/ "f:var/run/act/actions/broad/.git/HEAD:ref: refs/heads/main" \
  h:var/run/act/actions/broad/.git/HEAD.link:var/run/act/actions/broad/.git/HEAD
printf 'FROM scratch\nADD rootfs.tar /\nADD payload.tar /\n' >"$c/Dockerfile"
bk_local "$c" "$T/ats"
assert_symlink "$T/ats/var/run" /run
assert_file "$T/ats/run/act/actions/broad/.git/HEAD" "ref: refs/heads/main"
assert_file "$T/ats/run/act/actions/broad/.git/HEAD.link" "ref: refs/heads/main"
assert_eq "$(stat -c %i "$T/ats/run/act/actions/broad/.git/HEAD")" \
  "$(stat -c %i "$T/ats/run/act/actions/broad/.git/HEAD.link")" "HEAD.link is a hard link to HEAD"
note "... and an entry the archive lists replaces a non-directory, as tar does"
mktar "$c/over.tar" d:var/run/ f:var/run/x:x
printf 'FROM scratch\nADD rootfs.tar /\nADD over.tar /\n' >"$c/Dockerfile"
bk_local "$c" "$T/ats2"
assert_dir "$T/ats2/var/run"
assert_file "$T/ats2/var/run/x" x

note "testEmptyStages (dockerfile_multistage_test.go)"
c=$(bk_ctx empty-stages)
printf 'ARG foo=bar\n' >"$c/Dockerfile"
expect_fail kiln build "$c"
# BuildKit: "dockerfile contains no stages to build"; kiln words it its way
assert_contains "$ERR" "Dockerfile: file contains no FROM instruction"

store_clean
