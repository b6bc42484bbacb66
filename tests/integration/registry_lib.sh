# tests/integration/registry_lib.sh - a throwaway Debian `docker-registry`
# (CNCF distribution 2.8) for registry tests.  Source after lib.sh.
# shellcheck shell=bash
#
#   registry_start [NAME]   starts one on 127.0.0.1:<free port> with storage
#                           under $T/NAME (default "registry"); sets REG_PORT,
#                           REG (127.0.0.1:PORT), REG_PID, REG_DIR
#   registry_stop           stops the one started last (by its PID only)
# An EXIT trap stops it when the test ends.

REGISTRY_BIN=${REGISTRY_BIN:-/usr/bin/docker-registry}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

registry_start() {
  local name=${1:-registry}
  [ -x "$REGISTRY_BIN" ] || skip "needs docker-registry at $REGISTRY_BIN"
  need python3 curl
  REG_DIR=$T/$name
  mkdir -p "$REG_DIR/storage"
  local try
  for try in 1 2 3 4 5; do
    REG_PORT=$(free_port)
    cat >"$REG_DIR/config.yml" <<CFG
version: 0.1
log:
  level: warn
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $REG_DIR/storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$REG_PORT
CFG
    "$REGISTRY_BIN" serve "$REG_DIR/config.yml" >"$REG_DIR/log" 2>&1 </dev/null &
    REG_PID=$!
    local i
    for i in $(seq 1 100); do
      if curl -fsS -o /dev/null "http://127.0.0.1:$REG_PORT/v2/" 2>/dev/null; then
        REG=127.0.0.1:$REG_PORT
        trap registry_stop EXIT
        return 0
      fi
      kill -0 "$REG_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill "$REG_PID" 2>/dev/null || true
    wait "$REG_PID" 2>/dev/null || true
  done
  cat "$REG_DIR/log" >&2
  fail "docker-registry did not start"
}

registry_stop() {
  if [ -n "${REG_PID:-}" ]; then
    kill "$REG_PID" 2>/dev/null || true
    wait "$REG_PID" 2>/dev/null || true
    REG_PID=
  fi
}

# Number of blob upload requests (POST .../blobs/uploads/) in the access log.
registry_upload_count() {
  grep -c 'POST /v2/[^ ]*/blobs/uploads/' "$REG_DIR/log" || true
}
