#!/bin/bash
# A TLS registry (test CA trusted through /etc/containers/certs.d/HOST:PORT/)
# with htpasswd Basic auth: kiln login/push/pull/logout.  Without login:
# an auth error naming the registry.  A wrong password: refused, nothing
# stored.  A wrong CA: a TLS error, no fallback to http.  The auth file is
# 0600 and the password (plain or base64) never shows in any output, --debug
# included.
source "$IT_DIR/lib.sh"
source "$IT_DIR/registry_env.sh"
reg_need
[ "$(id -u)" = 0 ] || skip "needs root to write /etc/containers/certs.d"

PW='Pa55 w0rd!with$pecials'
B64=$(printf '%s' "alice:$PW" | base64 -w0)
auth_files() {
  local f
  for f in "$XDG_RUNTIME_DIR/containers/auth.json" "$HOME/.docker/config.json" \
           "$HOME/.config/containers/auth.json"; do
    [ -f "$f" ] && echo "$f"
  done
  return 0
}

reg_start_tls_htpasswd secure alice "$PW"
R=$REG_HOST
reg_install_ca "$R" "$REG_CA"
make_busybox_base
digest=$(kiln_manifest_digest localhost/busybox:latest)
mkdir -p "$T/skcerts" && cp "$REG_CA" "$T/skcerts/ca.crt"
sk=(--cert-dir "$T/skcerts" --creds "alice:$PW")
outs=()   # every file that holds kiln output, checked for the password at the end
run_logged() {   # NAME CMD...: run, keep stdout+stderr in $T/out.NAME
  outs+=("$T/out.$1")
  local n=$1
  shift
  "$@" >"$T/out.$n" 2>&1 || fail "exit $? from: $*
$(cat "$T/out.$n")"
}

note "without login: push fails with an auth error naming the registry"
expect_fail kiln push localhost/busybox:latest "$R/team/busybox:1"
assert_contains "$ERR" "$R" "error of an unauthenticated push"
assert_match "$ERR" '[Aa]uth|[Uu]nauthori[sz]ed|[Cc]redential|401' "error of an unauthenticated push"
expect_fail kiln pull "$R/team/busybox:1"
assert_contains "$ERR" "$R" "error of an unauthenticated pull"

note "a wrong password is refused and nothing is stored"
RC=0
printf '%s\n' "not-$PW" | kiln login -u alice --password-stdin "$R" >"$T/out.badlogin" 2>&1 || RC=$?
outs+=("$T/out.badlogin")
[ "$RC" != 0 ] || fail "login with a wrong password succeeded"
assert_match "$(cat "$T/out.badlogin")" '[Aa]uth|[Uu]nauthori[sz]ed|[Cc]redential|401|password' "wrong-password login"
for f in $(auth_files); do
  assert_not_contains "$(cat "$f")" "$R" "auth file $f after a failed login"
done

note "login (the CA comes from certs.d: no --tls-verify=false)"
printf '%s\n' "$PW" | run_logged login kiln --debug login -u alice --password-stdin "$R"
af=$(auth_files)
[ -n "$af" ] || fail "kiln login wrote no auth file (looked at \$XDG_RUNTIME_DIR/containers/auth.json, ~/.docker/config.json, ~/.config/containers/auth.json)"
[ "$(wc -l <<<"$af")" = 1 ] || fail "more than one auth file: $af"
assert_stat "$af" %a 600
jq -e --arg r "$R" '.auths[$r]' "$af" >/dev/null || fail "no auths[\"$R\"] in $af: $(cat "$af")"
assert_not_contains "$(cat "$af")" "$PW" "auth file (the password in clear)"

note "push and pull with the stored credentials"
run_logged push kiln --debug push --digestfile "$T/digest" localhost/busybox:latest "$R/team/busybox:1"
assert_eq "$digest" "$(cat "$T/digest")" "--digestfile"
assert_eq "$digest" "$(reg_digest "$R/team/busybox:1" "${sk[@]}")" "digest in the registry"
run_logged pull env KILN_ROOT="$T/s2" "$KILN" --root "$T/s2" --debug pull "$R/team/busybox:1"
assert_eq "$digest" "$(KILN_ROOT=$T/s2 kiln_manifest_digest "$R/team/busybox:1")" "digest of the pulled image"
KILN_ROOT=$T/s2 store_clean

note "a wrong CA: TLS error, and no downgrade to http"
reg_make_ca "$T/otherca"
cp "$T/otherca/ca.crt" "/etc/containers/certs.d/$R/ca.crt"
expect_fail env KILN_ROOT="$T/s4" "$KILN" --root "$T/s4" --debug pull "$R/team/busybox:1"
outs+=("$T/.err" "$T/.out")
cp "$T/.err" "$T/out.wrongca.err"; outs+=("$T/out.wrongca.err")
assert_match "$ERR" '[Cc]ertificate|TLS|tls|SSL|ssl|verif' "error with a wrong CA"
# A fallback to http would meet Go's "HTTP request to an HTTPS server" 400
# and name the http:// URL in the error.
assert_not_contains "$ERR" "http://$R" "error with a wrong CA (http fallback)"
assert_not_contains "$ERR" "HTTP 400" "error with a wrong CA (http fallback)"
assert_absent "$T/s4/index.json.tmp"
expect_fail kiln push localhost/busybox:latest "$R/team/other:1"
assert_match "$ERR" '[Cc]ertificate|TLS|tls|SSL|ssl|verif' "push error with a wrong CA"
if skopeo inspect --raw "${sk[@]}" "docker://$R/team/other:1" >/dev/null 2>&1; then
  fail "a push with an untrusted certificate reached the registry"
fi
note "--tls-verify=false accepts the unverified certificate"
KILN_ROOT=$T/s5 kiln pull --tls-verify=false "$R/team/busybox:1"
cp "$REG_CA" "/etc/containers/certs.d/$R/ca.crt"

note "a build FROM the TLS registry uses the same credentials"
c=$T/ctx
put "$c/f.txt" f
printf 'FROM %s\nCOPY f.txt /f.txt\n' "$R/team/busybox:1" >"$c/Dockerfile"
run_logged build env KILN_ROOT="$T/s3" "$KILN" --root "$T/s3" --debug build --progress=plain -t localhost/on-tls:1 "$c"
KILN_ROOT=$T/s3 store_clean

note "logout: credentials gone, pull fails with an auth error"
run_logged logout kiln logout "$R"
for f in $(auth_files); do
  assert_eq null "$(jq -c --arg r "$R" '.auths[$r]' "$f")" "auths[$R] in $f after logout"
done
expect_fail env KILN_ROOT="$T/s6" "$KILN" --root "$T/s6" pull "$R/team/busybox:1"
assert_contains "$ERR" "$R" "error after logout"
assert_match "$ERR" '[Aa]uth|[Uu]nauthori[sz]ed|[Cc]redential|401' "error after logout"

note "the password never shows in any output"
for f in "${outs[@]}"; do
  [ -f "$f" ] || continue
  grep -qF -- "$PW" "$f" && fail "the password appears in $f"
  grep -qF -- "$B64" "$f" && fail "the base64 credentials appear in $f"
done
for f in $(auth_files); do
  # the secret may be in the file, but not readable by others
  assert_stat "$f" %a 600
done
store_clean
