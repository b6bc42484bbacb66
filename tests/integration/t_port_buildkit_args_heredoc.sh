#!/bin/bash
# Ports of BuildKit's ARG and heredoc tests (moby/buildkit
# frontend/dockerfile/dockerfile_args_test.go, dockerfile_heredoc_test.go),
# each a `note` section named after the BuildKit test, with BuildKit's
# Dockerfiles (Unix variants) and checks (exported files via -o type=local,
# or RUN steps that fail the build).  Build args are BuildKit's
# `build-arg:NAME` frontend attributes.
# Not ported: testTargetStageNameArg (the TARGETSTAGE built-in argument),
# testEnvEmptyFormatting (in t_port_buildkit_core.sh), testOnBuildHeredoc's
# registry push (the image stays in the store here).
source "$IT_DIR/port_lib.sh"
need umoci
need_root
make_bk_busybox

note "testGlobalArg"
c=$(bk_ctx global-arg)
printf 'ARG tag=nosuchtag\nFROM busybox:${tag}\n' >"$c/Dockerfile"
bk_build "$c" --build-arg tag=latest

note "testGlobalArgErrors"
c=$(bk_ctx global-arg-errors)
printf 'ARG FOO=${FOO:?"custom error"}\nFROM busybox\n' >"$c/Dockerfile"
expect_fail kiln build "$c"
# BuildKit: "FOO: custom error"; kiln quotes the name
assert_contains "$ERR" "Dockerfile:1: ARG:"
assert_contains "$ERR" "\`FOO\`: custom error"
bk_build "$c" --build-arg FOO=bar

note "testArgDefaultExpansion"
c=$(bk_ctx arg-default-expansion)
printf 'FROM scratch\nARG FOO\nARG BAR=${FOO:?"foo missing"}\n' >"$c/Dockerfile"
expect_fail kiln build "$c"
assert_contains "$ERR" "\`FOO\`: foo missing"
bk_build "$c" --build-arg FOO=123
# the default is not expanded when a build argument gives the value
bk_build "$c" --build-arg BAR=123

note "kiln, after testArgDefaultExpansion: each ARG of a line sees the ones before it (BuildKit dispatchArg adds each to the env in turn)"
c=$(bk_ctx arg-sequential)
printf 'ARG g1=a g2=${g1}b\nFROM busybox\nARG g2\nARG x=1 y=${x}2 z="${g2} c"\nRUN [ "$x:$y:$z" = "1:12:ab c" ]\n' >"$c/Dockerfile"
bk_build "$c"
printf 'ARG g1=a g2=${g1}b\nFROM busybox\nARG g2\nARG x=1 y=${x}2\nRUN [ "$y:$g2" = 52:qb ]\n' >"$c/Dockerfile"
bk_build "$c" --build-arg x=5 --build-arg g1=q

note "testMultiArgs"
c=$(bk_ctx multi-args)
cat >"$c/Dockerfile" <<'DF'
ARG a1="foo bar" a2=box
ARG a3="$a2-foo"
FROM busy$a2 AS build
ARG a3 a4="123 456" a1
RUN echo -n "$a1:$a3:$a4" > /out
FROM scratch
COPY --from=build /out .
DF
bk_local "$c" "$T/ma"
assert_file "$T/ma/out" "foo bar:box-foo:123 456"

note "testQuotedMetaArgs"
c=$(bk_ctx quoted-meta-args)
cat >"$c/Dockerfile" <<'DF'
ARG a1="box"
ARG a2="$a1-foo"
FROM busy$a1 AS build
ARG a2
ARG a3="bar-$a2"
RUN echo -n $a3 > /out
FROM scratch
COPY --from=build /out .
DF
bk_local "$c" "$T/qma"
assert_file "$T/qma/out" "bar-box-foo"

note "testBuiltinArgs: proxy arguments reach RUN without being declared and stay out of the cache key"
c=$(bk_ctx builtin-args)
cat >"$c/Dockerfile" <<'DF'
FROM busybox AS build
ARG FOO
ARG BAR
ARG BAZ=bazcontent
RUN echo -n $HTTP_PROXY::$NO_PROXY::$FOO::$BAR::$BAZ > /out
FROM scratch
COPY --from=build /out /
DF
bk_local "$c" "$T/ba1" --build-arg FOO=foocontents --build-arg http_proxy=hpvalue --build-arg NO_PROXY=npvalue
assert_file "$T/ba1/out" "hpvalue::npvalue::foocontents::::bazcontent"
# repeat with changed default args should match the old cache
bk_local "$c" "$T/ba2" --build-arg FOO=foocontents --build-arg http_proxy=hpvalue2
assert_file "$T/ba2/out" "hpvalue::npvalue::foocontents::::bazcontent"
# changing actual value invalidates cache
bk_local "$c" "$T/ba3" --build-arg FOO=foocontents2 --build-arg http_proxy=hpvalue2
assert_file "$T/ba3/out" "hpvalue2::::foocontents2::::bazcontent"

note "testDefaultEnvWithArgs"
c=$(bk_ctx default-env-args)
cat >"$c/Dockerfile" <<'DF'
ARG image=idlebox
FROM busy${image#idle} AS build
ARG my_arg
ENV my_arg "my_arg=${my_arg:-def_val}"
ENV my_trimmed_arg "${my_arg%%e*}"
COPY myscript.sh myscript.sh
RUN ./myscript.sh $my_arg $my_trimmed_arg
FROM scratch
COPY --from=build /out /out
DF
printf '\n#!/usr/bin/env sh\necho -n $my_arg $* > /out\n' >"$c/myscript.sh"
chmod 0700 "$c/myscript.sh"
bk_local "$c" "$T/dea"
assert_file "$T/dea/out" "my_arg=def_val my_arg=def_val my_arg=d"
bk_local "$c" "$T/dea" --build-arg my_arg=
assert_file "$T/dea/out" "my_arg=def_val my_arg=def_val my_arg=d"
bk_local "$c" "$T/dea" --build-arg my_arg=override
assert_file "$T/dea/out" "my_arg=override my_arg=override my_arg=ov"

note "testEmptyStringArgInEnv"
c=$(bk_ctx empty-string-arg)
cat >"$c/Dockerfile" <<'DF'
FROM busybox AS build
ARG FOO
ARG BAR=
RUN env > env.txt
FROM scratch
COPY --from=build env.txt .
DF
bk_local "$c" "$T/esa"
env_txt=$(cat "$T/esa/env.txt")
assert_match "$env_txt" '^BAR=$'
assert_not_contains "$env_txt" "FOO="

note "testCopyHeredoc (dockerfile_heredoc_test.go)"
# `adduser -D user` (not an applet of the busybox-static base) is written out
# as the passwd and group lines it adds.
c=$(bk_ctx copy-heredoc)
cat >"$c/Dockerfile" <<'DF'
FROM busybox AS build
RUN echo 'user:x:1000:1000::/home/user:/bin/sh' >> /etc/passwd && echo 'user:x:1000:' >> /etc/group
WORKDIR /dest
COPY <<EOF single
single file
EOF
COPY <<EOF <<EOF2 double/
first file
EOF
second file
EOF2
RUN mkdir -p /permfiles
COPY --chmod=777 <<EOF /permfiles/all
dummy content
EOF
COPY --chmod=0644 <<EOF /permfiles/rw
dummy content
EOF
COPY --chown=user:user <<EOF /permfiles/owned
dummy content
EOF
RUN stat -c "%04a" /permfiles/all >> perms && \
	stat -c "%04a" /permfiles/rw >> perms && \
	stat -c "%U:%G" /permfiles/owned >> perms
FROM scratch
COPY --from=build /dest /
DF
bk_local "$c" "$T/ch"
assert_file "$T/ch/single" "single file"
assert_file "$T/ch/double/EOF" "first file"
assert_file "$T/ch/double/EOF2" "second file"
assert_file "$T/ch/perms" "$(printf '0777\n0644\nuser:user')"

note "testCopyHeredocSpecialSymbols (dockerfile_heredoc_test.go)"
c=$(bk_ctx heredoc-symbols)
cat >"$c/Dockerfile" <<'DF'
FROM scratch
COPY <<EOF quotefile
"quotes in file"
EOF
COPY <<EOF slashfile1
\
EOF
COPY <<EOF slashfile2
\\
EOF
COPY <<EOF slashfile3
\$
EOF
COPY <<"EOF" rawslashfile1
\
EOF
COPY <<"EOF" rawslashfile2
\\
EOF
COPY <<"EOF" rawslashfile3
\$
EOF
DF
bk_local "$c" "$T/hs"
# exact bytes, trailing newlines included
assert_eq "$(printf '"quotes in file"\n|')" "$(cat "$T/hs/quotefile"; printf '|')" quotefile
assert_eq "$(printf '\n|')" "$(cat "$T/hs/slashfile1"; printf '|')" slashfile1
assert_eq "$(printf '\\\n|')" "$(cat "$T/hs/slashfile2"; printf '|')" slashfile2
assert_eq "$(printf '$\n|')" "$(cat "$T/hs/slashfile3"; printf '|')" slashfile3
assert_eq "$(printf '\\\n|')" "$(cat "$T/hs/rawslashfile1"; printf '|')" rawslashfile1
assert_eq "$(printf '\\\\\n|')" "$(cat "$T/hs/rawslashfile2"; printf '|')" rawslashfile2
assert_eq "$(printf '\\$\n|')" "$(cat "$T/hs/rawslashfile3"; printf '|')" rawslashfile3

note "testRunBasicHeredoc, testRunFakeHeredoc, testRunShebangHeredoc, testRunComplexHeredoc (dockerfile_heredoc_test.go)"
c=$(bk_ctx run-heredoc)
cat >"$c/Dockerfile" <<'DF'
FROM busybox AS build
RUN <<EOF
echo "i am" >> /dest
whoami >> /dest
EOF
FROM busybox AS fake
SHELL ["/bin/awk"]
RUN <<EOF
BEGIN {
	print "foo" > "/dest"
}
EOF
FROM busybox AS shebang
WORKDIR /dest
RUN <<EOF
#!/bin/awk -f
BEGIN {
	print "hello" >> "./out1"
	print "world" >> "./out1"
}
EOF
RUN <<-EOF
	#!/bin/awk -f
	BEGIN {
		print "hello" >> "./out2"
		print "world" >> "./out2"
	}
EOF
FROM busybox AS complex
WORKDIR /dest
RUN cat <<EOF1 | tr '[:upper:]' '[:lower:]' > ./out1; \
	cat <<EOF2 | tr '[:lower:]' '[:upper:]' > ./out2
hello WORLD
EOF1
HELLO world
EOF2
RUN <<EOF 3<<IN1 4<<IN2 awk -f -
BEGIN {
	while ((getline line < "/proc/self/fd/3") > 0)
		print tolower(line) > "./fd3"
	while ((getline line < "/proc/self/fd/4") > 0)
		print toupper(line) > "./fd4"
}
EOF
hello WORLD
IN1
HELLO world
IN2
FROM scratch
COPY --from=build /dest /basic
COPY --from=fake /dest /fake
COPY --from=shebang /dest /shebang/
COPY --from=complex /dest /complex/
DF
bk_local "$c" "$T/rh"
assert_file "$T/rh/basic" "$(printf 'i am\nroot')"
assert_file "$T/rh/fake" foo
assert_file "$T/rh/shebang/out1" "$(printf 'hello\nworld')"
assert_file "$T/rh/shebang/out2" "$(printf 'hello\nworld')"
assert_file "$T/rh/complex/out1" "hello world"
assert_file "$T/rh/complex/out2" "HELLO WORLD"
assert_file "$T/rh/complex/fd3" "hello world"
assert_file "$T/rh/complex/fd4" "HELLO WORLD"
# kiln: the script file BuildKit mounts at /dev/pipes/EOF is not in the layer
kiln build --progress=quiet --target shebang -t localhost/port-shebang "$c" >/dev/null
unpack_image localhost/port-shebang "$T/shebang-img"
assert_absent "$T/shebang-img/rootfs/dev/pipes"

note "testHeredocIndent (dockerfile_heredoc_test.go)"
c=$(bk_ctx heredoc-indent)
cat >"$c/Dockerfile" <<'DF'
FROM busybox AS build

COPY <<EOF /dest/foo-copy
	foo
EOF

COPY <<-EOF /dest/bar-copy
	bar
EOF

RUN <<EOF
echo "
	foo" > /dest/foo-run
EOF

RUN <<-EOF
echo "
	bar" > /dest/bar-run
EOF

RUN <<EOF
#!/bin/sh
echo "
	foo" > /dest/foo2-run
EOF

RUN <<-EOF
#!/bin/sh
echo "
	bar" > /dest/bar2-run
EOF

RUN <<EOF sh > /dest/foo3-run
echo "
	foo"
EOF

RUN <<-EOF sh > /dest/bar3-run
echo "
	bar"
EOF

FROM scratch
COPY --from=build /dest /
DF
bk_local "$c" "$T/hi"
t=$(printf '\t')
for f in foo-copy:"${t}foo" bar-copy:bar foo-run:"
${t}foo" bar-run:"
bar" foo2-run:"
${t}foo" bar2-run:"
bar" foo3-run:"
${t}foo" bar3-run:"
bar"; do
  assert_file "$T/hi/${f%%:*}" "${f#*:}"
done

note "testHeredocVarSubstitution (dockerfile_heredoc_test.go)"
c=$(bk_ctx heredoc-vars)
cat >"$c/Dockerfile" <<'DF'
FROM busybox as build

ARG name=world

COPY <<EOF /dest/c1
Hello ${name}!
EOF
COPY <<'EOF' /dest/c2
Hello ${name}!
EOF
COPY <<"EOF" /dest/c3
Hello ${name}!
EOF

COPY <<EOF /dest/q1
Hello '${name}'!
EOF
COPY <<EOF /dest/q2
Hello "${name}"!
EOF
COPY <<'EOF' /dest/qsingle1
Hello '${name}'!
EOF
COPY <<'EOF' /dest/qsingle2
Hello "${name}"!
EOF
COPY <<"EOF" /dest/qdouble1
Hello '${name}'!
EOF
COPY <<"EOF" /dest/qdouble2
Hello "${name}"!
EOF

RUN <<EOF
greeting="Hello"
echo "${greeting} ${name}!" > /dest/r1
EOF
RUN <<EOF
name="new world"
echo "Hello ${name}!" > /dest/r2
EOF

FROM scratch
COPY --from=build /dest /
DF
bk_local "$c" "$T/hv"
assert_file "$T/hv/c1" 'Hello world!'
assert_file "$T/hv/c2" 'Hello ${name}!'
assert_file "$T/hv/c3" 'Hello ${name}!'
assert_file "$T/hv/q1" "Hello 'world'!"
assert_file "$T/hv/q2" 'Hello "world"!'
assert_file "$T/hv/qsingle1" "Hello '\${name}'!"
assert_file "$T/hv/qsingle2" 'Hello "${name}"!'
assert_file "$T/hv/qdouble1" "Hello '\${name}'!"
assert_file "$T/hv/qdouble2" 'Hello "${name}"!'
assert_file "$T/hv/r1" 'Hello world!'
assert_file "$T/hv/r2" 'Hello new world!'

note "testOnBuildHeredoc (dockerfile_heredoc_test.go; the base stays in the store)"
c=$(bk_ctx onbuild-heredoc)
cat >"$c/Dockerfile" <<'DF'
FROM busybox
ONBUILD RUN <<EOF
echo "hello world" >> /dest
EOF
DF
kiln build --progress=quiet -t localhost/port-onbuild-heredoc:base "$c" >/dev/null
printf 'FROM localhost/port-onbuild-heredoc:base AS base\nFROM scratch\nCOPY --from=base /dest /\n' >"$c/Dockerfile"
bk_local "$c" "$T/obh"
assert_file "$T/obh/dest" "hello world"

store_clean
