#!/usr/bin/env python3
"""faultproxy.py - a plain-HTTP reverse proxy that injects registry faults.

Sits between a registry client and a registry on 127.0.0.1, streams bodies
in 64 KiB pieces (never buffers a blob), rewrites `Location` headers that
point at the upstream so that they point at the proxy, counts body bytes per
kind of request, and applies fault rules to matching requests.

  faultproxy.py --upstream http://127.0.0.1:5000 [--port 0] [--port-file F]
                [--stats-file F] [--log-file F] [--rule JSON]...
                [--max-lifetime 900]

A rule is a JSON object:
  {"method": "GET|HEAD|...regex", "path": "regex searched in path?query",
   "action": "status" | "reset" | "truncate" | "corrupt",
   "status": 503, "retry_after": 1,   # action=status: answer this, no upstream
   "headers": {"X-Pad": "..."},       # action=status: extra response headers
   "after": 65536,       # reset/truncate: body bytes of this request passed
                         # before the fault (reset: request body for requests
                         # that have one, else response body; "on":
                         # "request"|"response")
   "after_total": N,     # instead of "after": bytes counted over all the
                         # requests the rule matches (a chunked upload's
                         # PATCHes), the fault hits the one that crosses N
   "offset": N,          # corrupt: response body byte to flip (default middle)
   "skip": 0,            # let this many matching requests through first
   "times": 1}           # then fault this many (-1: every one)
The first rule that matches and still has faults left applies.

Control endpoints on the same port (so tests can change rules between steps):
  GET  /__proxy/stats          the statistics (also in --stats-file)
  POST /__proxy/rules          body: JSON list of rules; replaces the rules
  POST /__proxy/reset          zero the statistics
Statistics: {"requests": N, "faults": N,
  "classes": {CLASS: {"requests", "request_bytes", "response_bytes"}},
  "blob_upload_bytes", "blob_download_bytes", "mount_requests",
  "log": ["METHOD PATH STATUS [range=RANGE] [[FAULT]]", ...]}
(RANGE: the request's Range or Content-Range header)
with CLASS one of blob_upload (/blobs/uploads/), blob_download (GET of a
blob), blob_head, manifest, other.  Exits by itself after --max-lifetime s.
"""
import argparse
import http.client
import http.server
import json
import os
import re
import socket
import struct
import sys
import threading
import urllib.parse

PIECE = 64 * 1024
HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
       "te", "trailer", "transfer-encoding", "upgrade", "expect", "host", "content-length"}


class Abort(Exception):
    """The connection to the client was dropped on purpose (or by the peer)."""


def classify(method, path):
    p = path.split("?", 1)[0]
    if re.search(r"^/v2/.+/blobs/uploads/", p):
        return "blob_upload"
    if re.search(r"^/v2/.+/blobs/[a-z0-9]+:[a-f0-9]+$", p):
        return "blob_download" if method == "GET" else "blob_head" if method == "HEAD" else "other"
    if re.search(r"^/v2/.+/manifests/", p):
        return "manifest"
    return "other"


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.rules = []
        self.set_rules([json.loads(r) for r in args.rule])
        self.reset()

    def set_rules(self, rules):
        for r in rules:
            r.setdefault("skip", 0)
            r.setdefault("times", 1)
            r["seen"] = 0
            r["applied"] = 0
        self.rules = rules

    def reset(self):
        self.stats = {"requests": 0, "faults": 0, "classes": {}, "blob_upload_bytes": 0,
                      "blob_download_bytes": 0, "mount_requests": 0, "log": []}

    def match(self, method, path):
        """The rule to apply to this request, or None; counts the match."""
        with self.lock:
            for r in self.rules:
                if not re.fullmatch(r.get("method", ".*"), method) or not re.search(r.get("path", ""), path):
                    continue
                r["seen"] += 1
                if r["seen"] <= r["skip"]:
                    continue
                if r["times"] >= 0 and r["applied"] >= r["times"]:
                    continue
                if "after_total" in r:
                    return r   # applied in cut() if its byte count is reached
                r["applied"] += 1
                self.stats["faults"] += 1
                return r
        return None

    def cut(self, rule, done, n):
        """How many of the next n body bytes pass before the rule's fault
        (done: bytes of this body already passed), or None: no fault here."""
        if "after_total" not in rule:
            after = int(rule.get("after", 0))
            return max(0, after - done) if done + n >= after else None
        with self.lock:
            seen = rule.setdefault("total", 0)
            if rule["times"] >= 0 and rule["applied"] >= rule["times"]:
                return None
            if seen + n < rule["after_total"]:
                rule["total"] = seen + n
                return None
            k = max(0, rule["after_total"] - seen)
            rule["total"] = seen + k
            rule["applied"] += 1
            self.stats["faults"] += 1
            return k

    def unapply(self, rule):
        """A reset/truncate/corrupt whose point the body never reached did
        not happen: give the rule its fault back for a later request."""
        with self.lock:
            rule["applied"] -= 1
            self.stats["faults"] -= 1

    def account(self, cls, method, path, status, req_bytes, resp_bytes, fault, rng=None):
        with self.lock:
            s = self.stats
            s["requests"] += 1
            c = s["classes"].setdefault(cls, {"requests": 0, "request_bytes": 0, "response_bytes": 0})
            c["requests"] += 1
            c["request_bytes"] += req_bytes
            c["response_bytes"] += resp_bytes
            if cls == "blob_upload":
                s["blob_upload_bytes"] += req_bytes
            if cls == "blob_download":
                s["blob_download_bytes"] += resp_bytes
            if method == "POST" and "mount=" in path:
                s["mount_requests"] += 1
            line = "%s %s %s%s%s" % (method, path, status, " range=%s" % rng if rng else "",
                                     " [%s]" % fault if fault else "")
            s["log"] = (s["log"] + [line])[-5000:]
            if self.args.log_file:
                with open(self.args.log_file, "a") as f:
                    f.write(line + "\n")
            self.save()

    def save(self):
        if self.args.stats_file:
            tmp = self.args.stats_file + ".tmp"
            with open(tmp, "w") as f:
                json.dump(self.stats, f)
            os.replace(tmp, self.args.stats_file)


def rst(sock):
    """Close with a TCP reset (SO_LINGER 0) rather than a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        if self.server.state.args.verbose:
            sys.stderr.write("faultproxy: " + (fmt % a) + "\n")

    # -- request body ---------------------------------------------------
    def body_pieces(self):
        """The request body, de-chunked, in pieces of at most PIECE bytes."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise Abort("client closed mid-chunk")
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return
                while size:
                    d = self.rfile.read(min(size, PIECE))
                    if not d:
                        raise Abort("client closed mid-body")
                    size -= len(d)
                    yield d
                self.rfile.readline(16)
        else:
            left = int(self.headers.get("Content-Length") or 0)
            while left:
                d = self.rfile.read(min(left, PIECE))
                if not d:
                    raise Abort("client closed mid-body")
                left -= len(d)
                yield d

    def has_body(self):
        return "chunked" in self.headers.get("Transfer-Encoding", "").lower() or \
            int(self.headers.get("Content-Length") or 0) > 0

    # -- control endpoints -------------------------------------------------
    def control(self):
        st = self.server.state
        body = b"".join(self.body_pieces())
        if self.path == "/__proxy/rules" and self.command in ("POST", "PUT"):
            with st.lock:
                st.set_rules(json.loads(body or b"[]"))
            out = {"ok": True}
        elif self.path == "/__proxy/reset" and self.command == "POST":
            with st.lock:
                st.reset()
                st.save()
            out = {"ok": True}
        elif self.path == "/__proxy/stats":
            with st.lock:
                out = json.loads(json.dumps(st.stats))
        else:
            return self.simple(404, {"error": "unknown control path"})
        self.simple(200, out)

    def simple(self, status, obj, extra=()):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":   # a HEAD response has no body
            self.wfile.write(data)

    # -- proxying ------------------------------------------------------------
    def proxy(self):
        if self.path.startswith("/__proxy/"):
            return self.control()
        st = self.server.state
        method, path = self.command, self.path
        cls = classify(method, path)
        rule = st.match(method, path)
        fault = rule["action"] if rule else ""
        self.req_bytes = self.resp_bytes = 0
        self.fired = False
        status = "-"
        try:
            if rule and rule["action"] == "status":
                self.fired = True
                status = self.fault_status(rule)
            else:
                status = self.forward(rule)
        except Abort:
            self.close_connection = True
            status = status if status != "-" else "aborted"
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            status = "client-gone"
        finally:
            if rule and not self.fired:
                if "after_total" not in rule:
                    st.unapply(rule)
                fault = ""
            st.account(cls, method, path, status, self.req_bytes, self.resp_bytes, fault,
                       self.headers.get("Range") or self.headers.get("Content-Range"))

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = proxy

    def fault_status(self, rule):
        for d in self.body_pieces():
            self.req_bytes += len(d)
        code = int(rule.get("status", 503))
        extra = []
        if "retry_after" in rule:
            extra.append(("Retry-After", str(rule["retry_after"])))
        extra.extend(rule.get("headers", {}).items())
        err = {429: "TOOMANYREQUESTS"}.get(code, "UNAVAILABLE")
        self.simple(code, {"errors": [{"code": err, "message": "injected by faultproxy", "detail": None}]}, extra)
        return code

    def forward(self, rule):
        up = self.server.upstream
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=120)
        try:
            return self.forward_on(conn, rule)
        finally:
            conn.close()

    def forward_on(self, conn, rule):
        up = self.server.upstream
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", up.netloc)
        for k, v in self.headers.items():
            if k.lower() not in HOP:
                conn.putheader(k, v)
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
        elif self.headers.get("Content-Length") is not None:
            conn.putheader("Content-Length", self.headers["Content-Length"])
        conn.endheaders()
        on_request = rule and rule["action"] == "reset" and \
            rule.get("on", "request" if self.has_body() else "response") == "request"
        for d in self.body_pieces():
            k = self.server.state.cut(rule, self.req_bytes, len(d)) if on_request else None
            if k is not None:
                d = d[:k]
                conn.send(b"%x\r\n%s\r\n" % (len(d), d) if chunked and d else d)
                self.req_bytes += len(d)
                self.fired = True
                rst(conn.sock)
                rst(self.connection)
                raise Abort("reset mid-request")
            self.req_bytes += len(d)
            conn.send(b"%x\r\n%s\r\n" % (len(d), d) if chunked else d)
        if chunked:
            conn.send(b"0\r\n\r\n")
        resp = conn.getresponse()
        self.relay(resp, rule if not on_request else None)
        return resp.status

    def relay(self, resp, rule):
        """Sends resp to the client, applying a response-side fault."""
        up = self.server.upstream
        me = "http://" + (self.headers.get("Host") or "%s:%d" % self.server.server_address)
        self.send_response(resp.status, resp.reason)
        length = resp.getheader("Content-Length")
        te_chunked = "chunked" in (resp.getheader("Transfer-Encoding") or "").lower()
        for k, v in resp.getheaders():
            if k.lower() in HOP:
                continue
            if k.lower() == "location" and v.startswith(up.scheme + "://" + up.netloc):
                v = me + v[len(up.scheme + "://" + up.netloc):]
            self.send_header(k, v)
        no_body = self.command == "HEAD" or resp.status in (204, 304) or resp.status < 200
        out_chunked = not no_body and (te_chunked or length is None)
        if out_chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif length is not None:
            self.send_header("Content-Length", length)
        self.end_headers()
        if no_body:
            return
        act = rule["action"] if rule else None
        total = int(length) if length is not None else None
        if act in ("reset", "truncate") and "after" not in rule and "after_total" not in rule:
            rule = dict(rule, after=(total or 0) // 2)
        offset = int(rule.get("offset", (total or 0) // 2)) if rule else 0
        while True:
            d = resp.read(PIECE)
            if not d:
                break
            k = self.server.state.cut(rule, self.resp_bytes, len(d)) if act in ("reset", "truncate") else None
            if k is not None:
                d = d[:k]
                self.wfile.write(d)
                self.resp_bytes += len(d)
                self.fired = True
                if act == "reset":
                    rst(self.connection)
                else:
                    self.connection.shutdown(socket.SHUT_RDWR)
                raise Abort(act)
            if act == "corrupt" and self.resp_bytes <= offset < self.resp_bytes + len(d):
                i = offset - self.resp_bytes
                d = d[:i] + bytes([d[i] ^ 0x01]) + d[i + 1:]
                self.fired = True
            self.wfile.write(b"%x\r\n%s\r\n" % (len(d), d) if out_chunked else d)
            self.resp_bytes += len(d)
        if out_chunked:
            self.wfile.write(b"0\r\n\r\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--stats-file")
    ap.add_argument("--log-file")
    ap.add_argument("--rule", action="append", default=[])
    ap.add_argument("--max-lifetime", type=float, default=900)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    srv.upstream = urllib.parse.urlsplit(args.upstream)
    srv.state = State(args)
    srv.state.save()
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write("%d\n" % srv.server_address[1])
        os.replace(args.port_file + ".tmp", args.port_file)
    t = threading.Timer(args.max_lifetime, srv.shutdown)
    t.daemon = True
    t.start()
    srv.serve_forever()


if __name__ == "__main__":
    main()
