#!/bin/bash
# examples/demo.sh - build the example model image with kiln and smoke-test it.
#
#   examples/demo.sh KILN_BIN
#
# 1. builds the busybox base image (tests/integration/lib.sh make_busybox_base)
# 2. generates examples/model/weights/ (64 MiB of random data + SHA256SUMS) if missing
# 3. kiln build --progress=plain of examples/model, then kiln images / kiln inspect
# 4. kiln run --rm IMAGE /app/smoke-test.sh (needs root, or newuidmap and /etc/subuid for rootless)
# The store is $KILN_ROOT if set (kept), else a temp dir removed at exit
# unless DEMO_KEEP=1.  Env: WEIGHTS_MB (default 64).
set -euo pipefail

[ $# -ge 1 ] || { echo "usage: $0 KILN_BIN" >&2; exit 2; }
KILN=$(realpath -e "$1")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$HERE/.." && pwd)
CTX=$HERE/model
WEIGHTS_MB=${WEIGHTS_MB:-64}
T=$(mktemp -d "${TMPDIR:-/tmp}/kiln-demo.XXXXXX")
if [ -z "${KILN_ROOT:-}" ] && [ -z "${DEMO_KEEP:-}" ]; then
  trap 'rm -rf "$T"' EXIT
fi
KILN_ROOT=${KILN_ROOT:-$T/store}
IMAGE=localhost/example/model:demo
export KILN T KILN_ROOT REPO_DIR
IT_DIR=$REPO_DIR/tests/integration
# shellcheck source=../tests/integration/lib.sh
source "$IT_DIR/lib.sh"
step() { printf '\n==> %s\n' "$*"; }

step "base image localhost/busybox:latest (store: $KILN_ROOT)"
make_busybox_base "$T/busybox-base"

step "weights ($WEIGHTS_MB MiB)"
w=$CTX/weights
want=$((WEIGHTS_MB << 20))
if [ "$(stat -c %s "$w/model.bin" 2>/dev/null || echo -1)" != "$want" ] || [ ! -s "$w/SHA256SUMS" ]; then
  mkdir -p "$w"
  head -c "$want" /dev/urandom >"$w/model.bin"
  (cd "$w" && sha256sum model.bin >SHA256SUMS)
  echo "generated $w/model.bin"
else
  echo "reusing $w/model.bin"
fi

step "kiln build"
start=$(date +%s%N)
kiln build --progress=plain -t "$IMAGE" --iidfile "$T/iid" "$CTX"
echo "built $(cat "$T/iid") in $(( ($(date +%s%N) - start) / 1000000 )) ms"

step "kiln images"
kiln images

step "kiln inspect $IMAGE (config)"
kiln inspect "$IMAGE" | jq '{digest, layers: [.manifest.layers[] | {mediaType, size}], config: .config.config}'

step "smoke test: kiln run --rm $IMAGE /app/smoke-test.sh"
kiln run --rm "$IMAGE" /app/smoke-test.sh
echo
if [ -z "${DEMO_KEEP:-}" ] && [ "$KILN_ROOT" = "$T/store" ]; then
  echo "demo done (DEMO_KEEP=1 keeps the store)"
else
  echo "demo done; store at $KILN_ROOT"
fi
