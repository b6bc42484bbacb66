#!/bin/bash
# Token auth (`auth: token` + tests/tools/token_server.py, RS256 JWTs):
# kiln login, push and pull go through the Bearer flow; a token is reused
# for the requests of one operation, not fetched per request; anonymous and
# wrong-password access fail with an auth error naming the registry.
source "$IT_DIR/lib.sh"
source "$IT_DIR/registry_env.sh"
reg_need

PW=t0ken-pw-$RANDOM

reg_start_token tok bob "$PW"
R=$REG_HOST
make_busybox_base
make_random_image localhost/three:1 1   # busybox layer + a 1 MiB layer + config
digest=$(kiln_manifest_digest localhost/three:1)
reg_requests() { grep -c '"[A-Z]* /v2/' "$REG_DIR/registry.log" || true; }
tokens() { token_stat .requests; }

note "anonymous push: auth error naming the registry"
expect_fail kiln push "$KILN_TLS_OFF" localhost/three:1 "$R/proj/three:1"
assert_contains "$ERR" "$R" "error of an anonymous push"
assert_match "$ERR" '[Aa]uth|[Uu]nauthori[sz]ed|[Dd]enied|401|403' "error of an anonymous push"

note "a wrong password: login fails"
RC=0
printf '%s\n' wrong | kiln login "$KILN_TLS_OFF" -u bob --password-stdin "$R" >"$T/bad.out" 2>&1 || RC=$?
[ "$RC" != 0 ] || fail "login with a wrong password succeeded"
assert_match "$(cat "$T/bad.out")" '[Aa]uth|[Uu]nauthori[sz]ed|[Cc]redential|401|password' "wrong-password login"

note "login, then push through the token flow"
printf '%s\n' "$PW" | kiln login "$KILN_TLS_OFF" -u bob --password-stdin "$R" >"$T/login.out" 2>&1
t0=$(tokens) r0=$(reg_requests)
kiln push "$KILN_TLS_OFF" localhost/three:1 "$R/proj/three:1" >"$T/push.out" 2>&1
t1=$(tokens) r1=$(reg_requests)
echo "push: $((t1 - t0)) token requests for $((r1 - r0)) registry requests"
assert_eq "$digest" "$(reg_digest "$R/proj/three:1" --tls-verify=false --creds "bob:$PW")" "digest in the registry"
[ $((t1 - t0)) -ge 1 ] || fail "push fetched no token (the registry needs one)"
# 3 blobs (HEAD + upload each) and a manifest: well over 7 requests; one
# token for repository:proj/three:pull,push serves them all.
[ $((r1 - r0)) -ge 7 ] || fail "only $((r1 - r0)) registry requests for a push of 3 blobs?"
[ $((t1 - t0)) -le 2 ] || fail "push fetched $((t1 - t0)) tokens for $((r1 - r0)) requests: tokens are not reused"
jq -e '.scopes | any(test("^repository:proj/three:.*push"))' "$TOKEN_STATS" >/dev/null \
  || fail "no push scope requested: $(jq -c .scopes "$TOKEN_STATS")"

note "pull into an empty store through the token flow"
t0=$(tokens) r0=$(reg_requests)
KILN_ROOT=$T/s2 kiln pull "$KILN_TLS_OFF" "$R/proj/three:1" >"$T/pull.out" 2>&1
t1=$(tokens) r1=$(reg_requests)
echo "pull: $((t1 - t0)) token requests for $((r1 - r0)) registry requests"
assert_eq "$digest" "$(KILN_ROOT=$T/s2 kiln_manifest_digest "$R/proj/three:1")" "digest of the pulled image"
[ $((t1 - t0)) -ge 1 ] || fail "pull fetched no token"
[ $((t1 - t0)) -le 2 ] || fail "pull fetched $((t1 - t0)) tokens for $((r1 - r0)) requests: tokens are not reused"
KILN_ROOT=$T/s2 store_clean

note "the password is in no output"
for f in "$T"/*.out; do
  grep -qF -- "$PW" "$f" && fail "the password appears in $f"
done

note "logout: pull is refused again, naming the registry"
kiln logout "$R" >/dev/null
expect_fail env KILN_ROOT="$T/s3" "$KILN" --root "$T/s3" pull "$KILN_TLS_OFF" "$R/proj/three:1"
assert_contains "$ERR" "$R" "error after logout"
assert_match "$ERR" '[Aa]uth|[Uu]nauthori[sz]ed|[Dd]enied|401|403' "error after logout"
store_clean
