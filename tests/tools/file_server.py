#!/usr/bin/env python3
"""file_server.py - serves a directory over HTTP for the ADD <url> tests.

  file_server.py --root DIR [--port 0] [--port-file F] [--log-file F]
                 [--max-lifetime 900]

  GET /files/NAME      the file, with Content-Length, Last-Modified (its mtime) and an
                       ETag (of mtime and size); If-None-Match with that ETag gets 304
  GET /nolm/NAME       the file without Last-Modified
  GET /flaky/NAME      503 on the first request for NAME, the file afterwards
  GET /redirect/NAME   302 to /files/NAME
  GET /file-redirect   302 to file:///etc/passwd (a client must refuse it)
  GET /slow            announces 100 MB and sends 1 KiB every 0.1 s (a client to interrupt)
  anything else        404

Every request line goes to --log-file (one "METHOD PATH" per line, flushed,
and "304 PATH" when that was the answer), so a test can tell whether a build
downloaded at all.  Binds 127.0.0.1 only;
exits by itself after --max-lifetime seconds.
"""
import argparse
import email.utils
import http.server
import os
import sys
import threading
import time

ARGS = None
FLAKY_SEEN = set()
LOCK = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def record(self, what=None):
        if ARGS.log_file:
            with LOCK, open(ARGS.log_file, "a") as f:
                f.write("%s %s\n" % (what or self.command, self.path))

    def status(self, code, headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def send_file(self, name, last_modified, etags=False):
        path = os.path.join(ARGS.root, os.path.basename(name))
        if not name or not os.path.isfile(path):
            return self.status(404)
        st = os.stat(path)
        etag = '"%x-%x"' % (st.st_mtime_ns, st.st_size)
        if etags and self.headers.get("If-None-Match") == etag:
            self.record("304")
            return self.status(304, [("ETag", etag)])
        self.send_response(200)
        if etags:
            self.send_header("ETag", etag)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(st.st_size))
        if last_modified:
            self.send_header("Last-Modified", email.utils.formatdate(st.st_mtime, usegmt=True))
        self.end_headers()
        if self.command == "GET":
            with open(path, "rb") as f:
                while True:
                    chunk = f.read(1 << 16)
                    if not chunk:
                        break
                    self.wfile.write(chunk)

    def dribble(self):
        self.send_response(200)
        self.send_header("Content-Length", str(100 << 20))
        self.end_headers()
        try:
            for _ in range(600):
                self.wfile.write(b"x" * 1024)
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass   # the client went away, as it should

    def do_GET(self):
        self.record()
        route, _, name = self.path.lstrip("/").partition("/")
        name = name.split("?", 1)[0]
        if route == "files":
            return self.send_file(name, True, etags=True)
        if route == "nolm":
            return self.send_file(name, False)
        if route == "flaky":
            with LOCK:
                first = name not in FLAKY_SEEN
                FLAKY_SEEN.add(name)
            return self.status(503) if first else self.send_file(name, True)
        if route == "redirect":
            return self.status(302, [("Location", "/files/" + name)])
        if route == "file-redirect":
            return self.status(302, [("Location", "file:///etc/passwd")])
        if route == "slow":
            return self.dribble()
        return self.status(404)

    do_HEAD = do_GET


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--root", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--log-file")
    p.add_argument("--max-lifetime", type=float, default=900)
    ARGS = p.parse_args()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    srv.daemon_threads = True
    if ARGS.port_file:
        tmp = ARGS.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % srv.server_address[1])
        os.rename(tmp, ARGS.port_file)
    threading.Timer(ARGS.max_lifetime, lambda: os._exit(0)).start()
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
