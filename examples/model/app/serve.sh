#!/bin/sh
# serve.sh - stand-in for a model server: checks the weights and reports.
#   serve.sh --check        verify and exit
#   serve.sh --port N       "serve" (prints what it would serve, then waits)
set -eu
MODEL_DIR=${MODEL_DIR:-/models}
cfg=/app/config.json
[ -r "$cfg" ] || { echo "serve: missing $cfg" >&2; exit 1; }
for f in "$MODEL_DIR"/*.bin; do
  [ -r "$f" ] || { echo "serve: no weights in $MODEL_DIR" >&2; exit 1; }
done
echo "serve: model ${MODEL_NAME:-unknown} from $MODEL_DIR ($(ls "$MODEL_DIR" | wc -l) files)"
case "${1:-}" in
  --check) exit 0 ;;
  --port) echo "serve: listening on :${2:-8080} (demo: not really)"; exec sleep 2147483647 ;;
  *) echo "usage: serve.sh --check | --port N" >&2; exit 2 ;;
esac
