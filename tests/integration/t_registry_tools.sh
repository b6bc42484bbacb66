#!/bin/bash
# The registry test tools themselves, driven by curl and skopeo only (no
# kiln registry code): faultproxy.py counts blob bytes exactly, rewrites
# Location to itself, passes Range through, and injects each fault;
# token_server.py issues RS256 tokens the registry accepts; the htpasswd TLS
# registry accepts its user over the test CA and nobody else; reg_stop stops.
source "$IT_DIR/lib.sh"
source "$IT_DIR/registry_env.sh"
reg_need

make_busybox_base
kiln save --format oci -o "$T/lay" localhost/busybox:latest
src="oci:$T/lay:$(oci_ref_name "$T/lay")"
layer=$(kiln_layer_digests localhost/busybox:latest)
lsize=$(kiln inspect localhost/busybox:latest | jq '.manifest.layers[0].size')
total=$(kiln inspect localhost/busybox:latest | jq '[.manifest.layers[].size, .manifest.config.size] | add')

note "plain registry behind the proxy: exact byte counts"
reg_start_http plain
proxy_start "$REG_URL"
P=$PROXY_HOST
skopeo copy -q --dest-tls-verify=false "$src" "docker://$P/tools/bb:1"
assert_eq "$total" "$(proxy_stat .blob_upload_bytes)" "upload bytes counted for a skopeo push"
proxy_reset
assert_eq 0 "$(proxy_stat .requests)" "requests after a reset"
skopeo copy -q --src-tls-verify=false "docker://$P/tools/bb:1" "oci:$T/back:1"
assert_eq "$total" "$(proxy_stat .blob_download_bytes)" "download bytes counted for a skopeo pull"

note "Location headers point at the proxy"
loc=$(curl -fsS -D - -o /dev/null -X POST "http://$P/v2/tools/bb/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
assert_contains "$loc" "http://$P/v2/tools/bb/blobs/uploads/" "Location of an upload"
curl -fsS -X DELETE -o /dev/null "$loc"

U=http://$P/v2/tools/bb/blobs/$layer
note "Range passes through (206)"
assert_eq 1000 "$(curl -fsS -r 1000-1999 "$U" | wc -c)" "bytes of a range request"
grep -q " 206 range=bytes=1000-1999" "$PROXY_LOG" || fail "no 206 with the range in the proxy log: $(cat "$PROXY_LOG")"

note "faults: corrupt, truncate, reset, 429 with Retry-After, 503 for N requests"
proxy_rules '[{"method": "GET", "path": "/blobs/sha256:", "action": "corrupt", "offset": 10}]'
got=$(curl -fsS "$U" | sha256sum | cut -d' ' -f1)
assert_ne "${layer#sha256:}" "$got" "digest of a corrupted download"
assert_eq "${layer#sha256:}" "$(curl -fsS "$U" | sha256sum | cut -d' ' -f1)" "digest once the rule is used up"
proxy_rules '[{"method": "GET", "path": "/blobs/sha256:", "action": "truncate", "after": 4096}]'
rc=0; n=$(curl -sS "$U" 2>/dev/null | wc -c) || rc=$?
assert_eq 4096 "$n" "bytes of a truncated download"
proxy_rules '[{"method": "GET", "path": "/blobs/sha256:", "action": "reset", "after": 8192}]'
rc=0; curl -sS -o /dev/null "$U" 2>"$T/curl.err" || rc=$?
assert_ne 0 "$rc" "curl exit for a reset download"
assert_match "$(cat "$T/curl.err")" 'reset|Recv failure|transfer closed' "curl error for a reset"
proxy_rules '[{"method": "GET", "path": "/blobs/", "action": "status", "status": 429, "retry_after": 1}]'
hdrs=$(curl -sS -D - -o /dev/null "$U" | tr -d '\r')
assert_match "$hdrs" '^HTTP/1.1 429' "status of a 429 fault"
assert_contains "$hdrs" "Retry-After: 1" "headers of a 429 fault"
proxy_rules '[{"method": "HEAD", "path": "/blobs/", "action": "status", "status": 503, "skip": 1, "times": 2}]'
codes=$(for i in 1 2 3 4; do curl -s -I -o /dev/null -w '%{http_code} ' "$U"; done)
assert_eq "200 503 503 200 " "$codes" "skip 1, then 2 faults, then through"
proxy_rules '[{"method": "PATCH|PUT", "path": "/blobs/uploads/", "action": "reset", "after": 100000}]'
proxy_reset
head -c 300000 /dev/urandom >"$T/chunk"
loc=$(curl -fsS -D - -o /dev/null -X POST "http://$P/v2/tools/cut/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
rc=0; curl -sS -o /dev/null -X PATCH -H 'Content-Type: application/octet-stream' --data-binary @"$T/chunk" "$loc" 2>"$T/curl.err" || rc=$?
assert_ne 0 "$rc" "curl exit for an upload reset mid-body"
assert_eq 1 "$(proxy_stat .faults)" "upload resets injected"
assert_eq 100000 "$(proxy_stat .blob_upload_bytes)" "bytes passed before the reset"
note "after_total: the fault hits the request that crosses the running total"
proxy_rules '[{"method": "PATCH", "path": "/blobs/uploads/", "action": "reset", "after_total": 450000}]'
proxy_reset
loc=$(curl -fsS -D - -o /dev/null -X POST "http://$P/v2/tools/cut2/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
loc=$(curl -fsS -D - -o /dev/null -X PATCH -H 'Content-Type: application/octet-stream' --data-binary @"$T/chunk" "$loc" \
  | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
assert_eq 0 "$(proxy_stat .faults)" "faults after the first 300000 bytes"
rc=0; curl -sS -o /dev/null -X PATCH -H 'Content-Type: application/octet-stream' -H 'Content-Range: 300000-599999' \
  --data-binary @"$T/chunk" "$loc" 2>/dev/null || rc=$?
assert_ne 0 "$rc" "curl exit for the PATCH that crosses after_total"
assert_eq 1 "$(proxy_stat .faults)" "faults after 600000 bytes"
assert_eq 450000 "$(proxy_stat .blob_upload_bytes)" "bytes passed before an after_total reset"
proxy_rules '[]'

note "token server: the registry accepts its tokens; anonymous and wrong passwords get nothing"
reg_start_token tok bob tokpw
skopeo copy -q --dest-tls-verify=false --dest-creds bob:tokpw "$src" "docker://$REG_HOST/tools/tok:1"
[ "$(token_stat .granted)" -ge 1 ] || fail "no token granted for the push"
assert_eq "$(reg_digest "$P/tools/bb:1" --tls-verify=false)" \
  "$(reg_digest "$REG_HOST/tools/tok:1" --tls-verify=false --creds bob:tokpw)" "digest through the token flow"
if skopeo inspect --raw --tls-verify=false "docker://$REG_HOST/tools/tok:1" >/dev/null 2>&1; then
  fail "anonymous pull allowed by the token registry"
fi
if skopeo inspect --raw --tls-verify=false --creds bob:nope "docker://$REG_HOST/tools/tok:1" >/dev/null 2>&1; then
  fail "wrong password allowed by the token server"
fi
tok=$(curl -fsS -u bob:tokpw "http://127.0.0.1:$TOKEN_PORT/token?service=kiln-test-registry&scope=repository:tools/tok:pull" | jq -r .token)
claims=$(cut -d. -f2 <<<"$tok" | tr '_-' '/+' | { read -r s; printf '%s%s' "$s" "$(printf '%*s' $(((4 - ${#s} % 4) % 4)) '' | tr ' ' =)"; } | base64 -d)
assert_eq '[{"type":"repository","name":"tools/tok","actions":["pull"]}]' "$(jq -c .access <<<"$claims")" "access claim"
assert_eq 200 "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $tok" -H "Accept: application/vnd.oci.image.manifest.v1+json" "$REG_URL/v2/tools/tok/manifests/1")" \
  "manifest GET with the token"
reg_stop "$TOKEN_PID"
kill -0 "$TOKEN_PID" 2>/dev/null && fail "reg_stop left pid $TOKEN_PID running"

note "TLS + htpasswd: the user gets in over the test CA, nobody else"
reg_start_tls_htpasswd secure alice 'al1ce pw'
mkdir -p "$T/certs" && cp "$REG_CA" "$T/certs/ca.crt"
skopeo copy -q --dest-cert-dir "$T/certs" --dest-creds 'alice:al1ce pw' "$src" "docker://$REG_HOST/tools/tls:1"
assert_eq 401 "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$REG_CA" "$REG_URL/v2/")" "/v2/ without credentials"
assert_eq 200 "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$REG_CA" -u 'alice:al1ce pw' "$REG_URL/v2/")" "/v2/ as alice"
assert_eq 200 "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$REG_CA" -u 'alice:al1ce pw' "https://localhost:$REG_PORT/v2/")" "/v2/ by DNS name"
rc=0; curl -s -o /dev/null "$REG_URL/v2/" || rc=$?
assert_eq 60 "$rc" "curl exit without the test CA (certificate not trusted)"
