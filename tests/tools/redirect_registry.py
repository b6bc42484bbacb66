#!/usr/bin/env python3
"""tests/tools/redirect_registry.py - a minimal registry that wants Basic
auth and redirects every blob GET to a second origin (as registries do to
their storage), which logs the Authorization header it receives.

  redirect_registry.py --port-file F --storage-port-file G --log L USER PASS

Serves one image, r:t: a config and one gzip layer made here.  The storage
origin answers the blobs with or without credentials and writes one line per
request to L: "PATH auth=yes|no".  Standard library only."""
import argparse, base64, gzip, hashlib, http.server, io, json, sys, tarfile, threading

ap = argparse.ArgumentParser()
ap.add_argument("--port-file", required=True)
ap.add_argument("--storage-port-file", required=True)
ap.add_argument("--log", required=True)
ap.add_argument("user")
ap.add_argument("password")
a = ap.parse_args()
want = "Basic " + base64.b64encode(f"{a.user}:{a.password}".encode()).decode()

buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
    data = b"hello through a redirect\n"
    ti = tarfile.TarInfo("hello.txt"); ti.size = len(data); ti.mode = 0o644
    t.addfile(ti, io.BytesIO(data))
tar = buf.getvalue()
layer = gzip.compress(tar, mtime=0)
sha = lambda b: "sha256:" + hashlib.sha256(b).hexdigest()
config = json.dumps({"architecture": "amd64", "os": "linux",
                     "rootfs": {"type": "layers", "diff_ids": [sha(tar)]}, "config": {}}).encode()
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                  "digest": sha(config), "size": len(config)},
                       "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                   "digest": sha(layer), "size": len(layer)}]}).encode()
blobs = {sha(config): config, sha(layer): layer}
lock = threading.Lock()


class Quiet(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class Storage(Quiet):
    def do_GET(self):
        with lock, open(a.log, "a") as f:
            f.write(f"{self.path} auth={'yes' if self.headers.get('Authorization') else 'no'}\n")
        body = blobs.get(self.path.lstrip("/"))
        self.send(200 if body else 404, body or b"")
    do_HEAD = do_GET


class Registry(Quiet):
    def do_GET(self):
        if self.headers.get("Authorization") != want:
            return self.send(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"auth"}]}',
                             [("WWW-Authenticate", 'Basic realm="test"'), ("Content-Type", "application/json")])
        p = self.path
        if p == "/v2/":
            return self.send(200, b"{}")
        if p.startswith("/v2/r/manifests/"):
            return self.send(200, manifest, [("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
                                            ("Docker-Content-Digest", sha(manifest))])
        if p.startswith("/v2/r/blobs/"):
            d = p.rsplit("/", 1)[1]
            return self.send(307, b"", [("Location", f"http://127.0.0.1:{storage.server_port}/{d}")])
        self.send(404, b"")
    do_HEAD = do_GET


storage = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Storage)
registry = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Registry)
for srv, pf in ((storage, a.storage_port_file), (registry, a.port_file)):
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    with open(pf + ".tmp", "w") as f:
        f.write(str(srv.server_port))
    import os
    os.rename(pf + ".tmp", pf)
threading.Event().wait()
