# tests/integration/registry_env.sh - throwaway registries, a token server and
# a fault-injecting proxy for the t_registry_*.sh tests.
# shellcheck shell=bash
#
# Source after lib.sh.  Everything binds 127.0.0.1 on a free port, lives
# under $T/reg, and is stopped by PID when the test exits (reg_cleanup runs
# from the EXIT trap set here; reg_on_exit adds more cleanup commands).
#
#   reg_need                         skip (77) unless docker-registry, skopeo,
#                                    openssl, python3, curl and jq are there
#   reg_start_http NAME              plain HTTP, no auth
#   reg_start_tls_htpasswd NAME U P  TLS (test CA, SAN IP:127.0.0.1 + DNS:localhost)
#                                    and htpasswd Basic auth for U:P
#   reg_start_token NAME U P         plain HTTP + `auth: token` with a token
#                                    server (tests/tools/token_server.py) for U:P
#     each sets REG_PORT REG_PID REG_DIR REG_HOST (127.0.0.1:PORT) REG_URL and
#     prints them; TLS adds REG_CA; token adds TOKEN_PORT TOKEN_PID TOKEN_STATS
#   proxy_start UPSTREAM_URL         tests/tools/faultproxy.py in front of it:
#                                    sets PROXY_PORT PROXY_PID PROXY_HOST PROXY_STATS
#   proxy_rules JSON | proxy_reset | proxy_stat JQ_EXPR
#   reg_stop PID                     stop one server (TERM, then KILL after 5 s)
#   reg_install_ca HOST:PORT CA      /etc/containers/certs.d/HOST:PORT/ca.crt,
#                                    removed at exit
#   reg_digest REF [SKOPEO_OPTS...]  sha256 of the manifest bytes in the registry
#   reg_blob_path DIGEST             where the registry stores a blob (for checks)
#   make_random_image NAME MIB [BASE] an image FROM BASE (default
#                                    localhost/busybox:latest) + one MIB-MiB
#                                    layer of random bytes (incompressible)
#
# The registry client's flag syntax is isolated here: KILN_TLS_OFF is the
# flag for a plain-HTTP registry, KILN_RETRY the retry flags.

REG_TOOLS=${REPO_DIR:?}/tests/tools
REG_BIN=${REG_BIN:-docker-registry}
KILN_TLS_OFF=${KILN_TLS_OFF:---tls-verify=false}
read -r -a KILN_RETRY <<<"${KILN_IT_RETRY_FLAGS:---retry 4 --retry-delay 1s}"
REG_PIDS=()
REG_EXIT_CMDS=()
# Credentials and client caches (kiln's, skopeo's) stay inside the test.
export HOME=$T/home XDG_RUNTIME_DIR=$T/run
unset REGISTRY_AUTH_FILE DOCKER_CONFIG XDG_CONFIG_HOME XDG_DATA_HOME XDG_CACHE_HOME
mkdir -p "$HOME" "$XDG_RUNTIME_DIR"
chmod 0700 "$XDG_RUNTIME_DIR"

reg_need() {
  need "$REG_BIN" skopeo openssl python3 curl jq
}

reg_on_exit() { REG_EXIT_CMDS+=("$1"); }

reg_stop() {   # PID
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null || true
}

reg_cleanup() {
  local rc=$? pid c
  for pid in "${REG_PIDS[@]}"; do reg_stop "$pid"; done
  for c in "${REG_EXIT_CMDS[@]}"; do eval "$c" || true; done
  return $rc
}
trap reg_cleanup EXIT
# A timeout or ^C still runs the EXIT trap, so no server outlives the test.
trap 'exit 143' TERM INT

reg_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# reg_wait_port_file FILE PID: the port a tool bound (it writes FILE), bounded.
reg_wait_port_file() {
  local i
  for i in $(seq 1 100); do
    [ -s "$1" ] && { cat "$1"; return 0; }
    kill -0 "$2" 2>/dev/null || { echo "server pid $2 exited before listening" >&2; return 1; }
    sleep 0.1
  done
  echo "no port in $1 after 10 s" >&2
  return 1
}

# reg_wait_ready URL PID LOG [CURL_OPTS...]: poll URL (any HTTP answer, 401
# included, means up) for at most 10 s.
reg_wait_ready() {
  local url=$1 pid=$2 log=$3 code i
  shift 3
  for i in $(seq 1 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" "$url" 2>/dev/null) || true
    [ -n "$code" ] && [ "$code" != 000 ] && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "server (pid $pid) exited; log:" >&2; cat "$log" >&2; return 1
    fi
    sleep 0.1
  done
  echo "$url did not answer within 10 s; log:" >&2; cat "$log" >&2
  return 1
}

# reg_make_ca DIR: DIR/ca.key + DIR/ca.crt (a CA valid for 2 days).
reg_make_ca() {
  mkdir -p "$1"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=kiln test CA $RANDOM" -keyout "$1/ca.key" -out "$1/ca.crt" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}

# reg_make_server_cert DIR: DIR/server.{key,crt} signed by DIR/ca.*, for
# IP:127.0.0.1 and DNS:localhost.
reg_make_server_cert() {
  local d=$1
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
    -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
  printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >"$d/server.ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 2 -extfile "$d/server.ext" -out "$d/server.crt" 2>/dev/null
}

# reg_htpasswd_line USER PASS: a bcrypt htpasswd line (the registry accepts
# nothing else).  Python's crypt (libxcrypt) makes $2b$; else apache2-utils.
reg_htpasswd_line() {
  local h
  h=$(printf '%s' "$2" | python3 -W ignore -c '
import crypt, sys
h = crypt.crypt(sys.stdin.read(), crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 5))
print(h if h and h.startswith("$2") else "")' 2>/dev/null) || h=
  if [ -n "$h" ]; then printf '%s:%s\n' "$1" "$h"; return 0; fi
  command -v htpasswd >/dev/null || skip "needs bcrypt: python crypt with libxcrypt, or htpasswd (apache2-utils)"
  htpasswd -nbB -C 5 "$1" "$2" | head -n1
}

# reg_write_config DIR PORT EXTRA_YAML: the registry config (storage in DIR).
reg_write_config() {
  cat >"$1/config.yml" <<YML
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $1/storage
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$2
  secret: kiln-test-secret-$RANDOM$RANDOM
$3
YML
}

# reg_launch NAME PORT SCHEME [CURL_OPTS...]: start the registry of
# $T/reg/NAME, wait for /v2/, set the REG_* variables.
reg_launch() {
  local name=$1 port=$2 scheme=$3 d=$T/reg/$1
  shift 3
  "$REG_BIN" serve "$d/config.yml" >"$d/registry.log" 2>&1 </dev/null &
  REG_PID=$!
  REG_PIDS+=("$REG_PID")
  reg_wait_ready "$scheme://127.0.0.1:$port/v2/" "$REG_PID" "$d/registry.log" "$@"
  REG_PORT=$port REG_DIR=$d REG_HOST=127.0.0.1:$port REG_URL=$scheme://127.0.0.1:$port
  export REG_PORT REG_PID REG_DIR REG_HOST REG_URL
  echo "registry $name up on $REG_URL (pid $REG_PID)"
}

reg_start_http() {   # NAME
  local d=$T/reg/$1 port
  mkdir -p "$d/storage"
  port=$(reg_free_port)
  reg_write_config "$d" "$port" ""
  reg_launch "$1" "$port" http
}

reg_start_tls_htpasswd() {   # NAME USER PASS
  local d=$T/reg/$1 port
  mkdir -p "$d/storage"
  reg_make_ca "$d"
  reg_make_server_cert "$d"
  reg_htpasswd_line "$2" "$3" >"$d/htpasswd"
  port=$(reg_free_port)
  reg_write_config "$d" "$port" "  tls:
    certificate: $d/server.crt
    key: $d/server.key
auth:
  htpasswd:
    realm: kiln-test
    path: $d/htpasswd"
  REG_CA=$d/ca.crt
  export REG_CA
  reg_launch "$1" "$port" https --cacert "$d/ca.crt"
}

# The token server signs with an RSA key whose self-signed certificate is the
# registry's rootcertbundle; the registry finds the key by the JWT `kid`.
reg_start_token() {   # NAME USER PASS
  local d=$T/reg/$1 port
  mkdir -p "$d/storage"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=kiln-test-token \
    -keyout "$d/token.key" -out "$d/token.crt" 2>/dev/null
  printf '%s:%s\n' "$2" "$3" >"$d/users"
  TOKEN_STATS=$d/token-stats.json
  python3 "$REG_TOOLS/token_server.py" --key "$d/token.key" --issuer kiln-test-issuer \
    --service kiln-test-registry --users "$d/users" --port-file "$d/token.port" \
    --stats-file "$TOKEN_STATS" --expires-in "${TOKEN_EXPIRES_IN:-300}" \
    >"$d/token.log" 2>&1 </dev/null &
  TOKEN_PID=$!
  REG_PIDS+=("$TOKEN_PID")
  TOKEN_PORT=$(reg_wait_port_file "$d/token.port" "$TOKEN_PID")
  export TOKEN_PID TOKEN_PORT TOKEN_STATS
  echo "token server up on http://127.0.0.1:$TOKEN_PORT/token (pid $TOKEN_PID)"
  port=$(reg_free_port)
  reg_write_config "$d" "$port" "auth:
  token:
    realm: http://127.0.0.1:$TOKEN_PORT/token
    service: kiln-test-registry
    issuer: kiln-test-issuer
    rootcertbundle: $d/token.crt"
  reg_launch "$1" "$port" http
}

token_stat() { jq -r "$1" "$TOKEN_STATS"; }

proxy_start() {   # UPSTREAM_URL [--rule JSON]...
  local d=$T/reg/proxy.$RANDOM up=$1
  shift
  mkdir -p "$d"
  PROXY_STATS=$d/stats.json
  python3 "$REG_TOOLS/faultproxy.py" --upstream "$up" --port-file "$d/port" \
    --stats-file "$PROXY_STATS" --log-file "$d/requests.log" "$@" >"$d/proxy.log" 2>&1 </dev/null &
  PROXY_PID=$!
  REG_PIDS+=("$PROXY_PID")
  PROXY_PORT=$(reg_wait_port_file "$d/port" "$PROXY_PID")
  PROXY_HOST=127.0.0.1:$PROXY_PORT PROXY_LOG=$d/requests.log
  export PROXY_PID PROXY_PORT PROXY_HOST PROXY_STATS PROXY_LOG
  echo "fault proxy up on http://$PROXY_HOST -> $up (pid $PROXY_PID)"
}

proxy_ctl() {   # PATH [JSON_BODY]
  if [ $# -ge 2 ]; then
    curl -fsS --max-time 5 -X POST -H 'Content-Type: application/json' --data-binary "$2" \
      "http://$PROXY_HOST/__proxy/$1" >/dev/null
  else
    curl -fsS --max-time 5 "http://$PROXY_HOST/__proxy/$1"
  fi
}
proxy_rules() { proxy_ctl rules "$1"; }
proxy_reset() { proxy_ctl reset '{}'; : >"$PROXY_LOG"; }
proxy_stat() { proxy_ctl stats | jq -r "$1"; }

reg_install_ca() {   # HOST:PORT CA_FILE
  local d=/etc/containers/certs.d/$1
  [ -w /etc ] || skip "needs root to write $d"
  [ ! -e "$d" ] || fail "$d exists already; not touching it"
  mkdir -p "$d"
  reg_on_exit "rm -rf '$d'"
  cp "$2" "$d/ca.crt"
}

reg_digest() {   # REF [SKOPEO_OPTS...]
  local ref=$1 raw
  shift
  raw=$(skopeo inspect --raw "$@" "docker://$ref") || return 1
  printf 'sha256:%s\n' "$(printf '%s' "$raw" | sha256sum | cut -d' ' -f1)"
}

reg_blob_path() {   # DIGEST [REG_DIR]
  local hex=${1#sha256:}
  echo "${2:-$REG_DIR}/storage/docker/registry/v2/blobs/sha256/${hex:0:2}/$hex/data"
}

make_random_image() {   # NAME MIB [BASE]
  local c=$T/ctx-$RANDOM
  mkdir -p "$c"
  head -c "$(($2 * 1024 * 1024))" /dev/urandom >"$c/random.bin"
  printf 'FROM %s\nCOPY random.bin /random.bin\n' "${3:-localhost/busybox:latest}" >"$c/Dockerfile"
  kiln build --progress=quiet -t "$1" "$c" >/dev/null
}

# The digests of an image in the store: its manifest, its layers.
kiln_manifest_digest() { kiln inspect "$1" | jq -r .digest; }
kiln_layer_digests() { kiln inspect "$1" | jq -r '.manifest.layers[].digest'; }

# store_has_no_partial_blobs: nothing left in ingest/ or tmp/ of the store.
store_has_no_partial_blobs() {
  local left
  left=$(find "$KILN_ROOT/ingest" "$KILN_ROOT/tmp" -mindepth 1 2>/dev/null | head -n 5)
  [ -z "$left" ] || fail "partial files left in the store: $left"
}
