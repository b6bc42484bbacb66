#!/bin/sh
# smoke-test.sh - run inside the image (as / of the unpacked rootfs):
# the weights match their checksums, the app files are in place and owned by
# `app`, and the server's self-check passes.
set -eu
fail() { echo "smoke-test: FAIL: $*" >&2; exit 1; }
cd /models || fail "no /models"
[ -s SHA256SUMS ] || fail "no /models/SHA256SUMS"
sha256sum -c SHA256SUMS >/dev/null || fail "weights do not match SHA256SUMS"
for f in /app/serve.sh /app/config.json /app/tokenizer.txt; do
  [ -f "$f" ] || fail "missing $f"
done
[ "$(stat -c %u:%g /app/serve.sh)" = 1000:1000 ] || fail "/app/serve.sh is not owned by app (1000:1000)"
[ -x /app/serve.sh ] || fail "/app/serve.sh is not executable"
grep -q '^app:x:1000:' /etc/passwd || fail "no app user"
[ -s /app/meta/weights.sha256 ] || fail "no /app/meta/weights.sha256 (the RUN step's manifest)"
(cd /models && sha256sum -c /app/meta/weights.sha256 >/dev/null) || fail "weights do not match the manifest made at build time"
MODEL_DIR=/models /bin/sh /app/serve.sh --check || fail "serve.sh --check"
echo "smoke-test: ok ($(ls /models | wc -l) files in /models)"
