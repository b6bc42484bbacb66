#!/bin/bash
# RUN --mount=type=secret as BuildKit's dispatchSecret
# (frontend/dockerfile/dockerfile2llb/convert_secrets.go) builds it:
#  - target=, dst= and destination= put the file there (default
#    /run/secrets/<id>); without id= the id is basename(target);
#  - env=NAME alone: only the variable, no file; env= and a target: both;
#  - a secret that was not given: no file, no variable, unless required=true,
#    which fails naming Dockerfile:LINE and the id.
# The value never reaches a layer, the store, a key, the output or the
# --metadata-file (a unique string grepped everywhere, builds uncompressed so
# a layer holding it would show), also after a RUN that fails; the mount
# point kiln created (/tmp/ft, /run/secrets) is not in the image.
source "$IT_DIR/lib.sh"
need umoci jq sha256sum
need_root
make_busybox_base

secret=kiln-unique-secret-$RANDOM$RANDOM$RANDOM
printf '%s' "$secret" >"$T/secret.txt"
sha=$(printf '%s' "$secret" | sha256sum | cut -c1-64)
export KILN_IT_SECRET_ENV=$secret
# the RUNs compare digests, so the value itself is printed by nobody
check() { echo "test \"\$(sha256sum <$1 | cut -c1-64)\" = $sha && echo $2"; }
check_env() { echo "test \"\$(printf %s \"\$$1\" | sha256sum | cut -c1-64)\" = $sha && echo $2"; }

c=$T/ctx
mkdir -p "$c"
cat >"$c/Dockerfile" <<DF
FROM localhost/busybox:latest
RUN --mount=type=secret,id=tok,target=/tmp/ft $(check /tmp/ft target-ok)
RUN --mount=type=secret,id=tok,dst=/tmp/dst $(check /tmp/dst dst-ok)
RUN --mount=type=secret,id=tok,destination=/opt/sec/dest $(check /opt/sec/dest destination-ok)
RUN --mount=type=secret,target=/etc/tok $(check /etc/tok id-from-target-ok)
RUN --mount=type=secret,id=tok $(check /run/secrets/tok default-path-ok)
RUN --mount=type=secret,id=tok,uid=1000,mode=0440 stat -c 'file=%u:%a' /run/secrets/tok
RUN --mount=type=secret,id=fromenv,env=TOKEN $(check_env TOKEN env-only-ok) && if [ -e /run/secrets/fromenv ]; then echo env-only-has-file; fi
RUN --mount=type=secret,id=tok,env=BOTH,target=/tmp/both $(check_env BOTH both-env-ok) && $(check /tmp/both both-file-ok)
RUN --mount=type=secret,id=missing,env=NOPE if [ -e /run/secrets/missing ] || [ -n "\${NOPE+set}" ]; then echo missing-visible; else echo missing-absent-ok; fi
RUN echo done >/done
DF

note "file targets, id from the target, env only, env and file, an optional missing secret"
kiln build --progress=plain --compression none --metadata-file "$T/meta.json" -t localhost/secret:1 \
  --secret id=tok,src="$T/secret.txt" --secret id=fromenv,env=KILN_IT_SECRET_ENV \
  "$c" >"$T/b1.out" 2>"$T/b1.err" || { cat "$T/b1.out" "$T/b1.err"; fail "build failed"; }
log=$(cat "$T/b1.out" "$T/b1.err")
echo "$log"
for w in target-ok dst-ok destination-ok id-from-target-ok default-path-ok env-only-ok both-env-ok both-file-ok missing-absent-ok; do
  assert_match "$log" "^\[[0-9]+/[0-9]+\] \| $w\$" "output line $w"
done
assert_match "$log" '^\[[0-9]+/[0-9]+\] \| file=1000:440$' "uid= and mode= of the secret file"
# an output line, not the step's title that quotes the command
no_line() { ! grep -Eq "^\[[0-9]+/[0-9]+\] \| $1\$" <<<"$log" || fail "$2: output line $1"; }
no_line env-only-has-file "env= alone must not make a file"
no_line missing-visible "a secret that was not given"
note "required=true without the secret fails, naming the line and the id"
cat >"$c/Dockerfile.req" <<DF
FROM localhost/busybox:latest
RUN echo before
RUN --mount=type=secret,id=needed,required=true test -s /run/secrets/needed && echo required-ok
DF
expect_fail kiln build --progress=plain -f "$c/Dockerfile.req" "$c"
assert_contains "$ERR" "Dockerfile.req:3" "error location"
assert_contains "$ERR" "needed" "error names the secret id"
kiln build --progress=plain --compression none -f "$c/Dockerfile.req" --secret id=needed,env=KILN_IT_SECRET_ENV \
  "$c" >"$T/b3.out" 2>"$T/b3.err" || { cat "$T/b3.err"; fail "required secret given: build failed"; }
cat "$T/b3.out" "$T/b3.err" >>"$T/all.log"
assert_match "$(cat "$T/b3.out" "$T/b3.err")" '^\[[0-9]+/[0-9]+\] \| required-ok$' "required secret given"

note "invalid secret mounts (BuildKit validateMount): from=, sharing=, both source= and id="
for opt in "id=tok,from=other" "id=tok,sharing=locked" "id=tok,source=tok"; do
  printf 'FROM localhost/busybox:latest\nRUN --mount=type=secret,%s true\n' "$opt" >"$c/Dockerfile.inv"
  expect_fail kiln build --progress=plain -f "$c/Dockerfile.inv" --secret id=tok,src="$T/secret.txt" "$c"
  assert_contains "$ERR" "Dockerfile.inv:2" "error location for $opt"
  assert_contains "$ERR" "secret mount" "error for $opt"
done

note "a RUN that fails with the secret as file and as env: the error does not hold it"
cat >"$c/Dockerfile.fail" <<DF
FROM localhost/busybox:latest
RUN --mount=type=secret,id=tok,env=TOK,target=/tmp/f test "\$(cat /tmp/f)" = "\$TOK" && exit 3
DF
expect_fail kiln build --progress=plain --compression none -f "$c/Dockerfile.fail" --metadata-file "$T/meta-fail.json" \
  --secret id=tok,src="$T/secret.txt" "$c"
assert_contains "$ERR" "Dockerfile.fail:2" "failing RUN location"
printf '%s\n%s\n' "$OUT" "$ERR" >>"$T/all.log"
expect_fail kiln build --progress=quiet --compression none -f "$c/Dockerfile.fail" \
  --secret id=tok,src="$T/secret.txt" "$c"
printf '%s\n%s\n' "$OUT" "$ERR" >>"$T/all.log"

note "the image has no mount stubs: no /tmp/ft, /tmp/dst, /opt/sec, /etc/tok, /run/secrets"
unpack_image localhost/secret:1 "$T/bundle"
r=$T/bundle/rootfs
assert_file "$r/done" done
for p in tmp/ft tmp/dst tmp/both opt/sec etc/tok run/secrets run; do assert_absent "$r/$p"; done
assert_dir "$r/tmp"

note "the value is nowhere: store (layers, snapshots, cache records, tmp), outputs, metadata"
cat "$T/b1.out" "$T/b1.err" >>"$T/all.log"
for f in "$T/all.log" "$T/meta.json"; do
  ! grep -qF "$secret" "$f" || { grep -F "$secret" "$f"; fail "the secret is in $f"; }
done
[ ! -e "$T/meta-fail.json" ] || ! grep -qF "$secret" "$T/meta-fail.json" || fail "secret in meta-fail.json"
hits=$(grep -rlaF "$secret" "$KILN_ROOT" || true)
assert_eq "" "$hits" "store files holding the secret"
# unpacked layers too (the blobs are uncompressed, but check the files as well)
hits=$(grep -rlaF "$secret" "$T/bundle" || true)
assert_eq "" "$hits" "image files holding the secret"
store_clean
