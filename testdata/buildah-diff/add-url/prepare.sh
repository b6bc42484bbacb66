#!/bin/bash
# Makes the files to download (binary files are not kept in git), serves them
# on 127.0.0.1 for both builders (tests/tools/file_server.py, gone after 2
# minutes) and writes the server's port into the Dockerfile.
set -euo pipefail
mkdir -p srv/t
python3 -c 'import random, sys; random.seed(6); sys.stdout.buffer.write(bytes(random.getrandbits(8) for _ in range(200000)))' >srv/model.bin
printf '{"model":"/models/model.bin"}\n' >srv/config.json
printf 'x\n' >srv/t/x.txt
tar -C srv/t -czf srv/data.tar.gz x.txt
python3 "$REPO_DIR/tests/tools/file_server.py" --root srv --port-file .port --max-lifetime 120 \
  >/dev/null 2>&1 </dev/null &
for _ in $(seq 1 100); do [ -s .port ] && break; sleep 0.1; done
[ -s .port ] || { echo "file server did not start" >&2; exit 1; }
sed "s/PORT/$(cat .port)/g" Dockerfile.in >Dockerfile
rm Dockerfile.in .port
