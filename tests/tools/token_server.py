#!/usr/bin/env python3
"""token_server.py - a Docker-registry token endpoint for integration tests.

Implements the "Token Authentication Specification" flow that a registry
configured with `auth: token:` sends its clients to:

  GET /token?service=S&scope=repository:NAME:pull,push[&scope=...]
      Authorization: Basic base64(user:password)   (optional)

A request with valid credentials gets every action it asks for; an anonymous
one gets a token with no access (or 401 with --deny-anonymous); wrong
credentials get 401.  Tokens are JWTs signed RS256 with --key (signed by
`openssl dgst -sha256 -sign`, since the standard library has no RSA), with
the `kid` the registry derives from the certificate in its rootcertbundle.

Counts requests: GET /stats (JSON) and --stats-file (rewritten on every
request) hold {"requests": N, "granted": N, "denied": N, "scopes": [...]}.

  token_server.py --key KEY.pem --issuer ISS --service SVC --users F
                  [--port 0] [--port-file F] [--stats-file F]
                  [--expires-in 300] [--deny-anonymous] [--max-lifetime 900]

--users F: lines "user:password".  Binds 127.0.0.1 only; exits by itself
after --max-lifetime seconds.
"""
import argparse
import base64
import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def libtrust_kid(key_path):
    """The key ID docker/libtrust computes for a public key: base32 of the
    first 240 bits of sha256(DER SubjectPublicKeyInfo), in groups of 4."""
    der = subprocess.run(["openssl", "pkey", "-in", key_path, "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    s = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(s[i:i + 4] for i in range(0, len(s), 4))


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.kid = libtrust_kid(args.key)
        self.users = {}
        with open(args.users) as f:
            for line in f:
                line = line.rstrip("\n")
                if ":" in line:
                    u, p = line.split(":", 1)
                    self.users[u] = p
        self.stats = {"requests": 0, "granted": 0, "denied": 0, "anonymous": 0, "scopes": []}

    def save_stats(self):
        if not self.args.stats_file:
            return
        tmp = self.args.stats_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.stats, f)
        os.replace(tmp, self.args.stats_file)

    def sign(self, claims):
        header = {"typ": "JWT", "alg": "RS256", "kid": self.kid}
        signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
                         b64url(json.dumps(claims, separators=(",", ":")).encode()))
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.args.key],
                             input=signing_input.encode(), check=True, capture_output=True).stdout
        return signing_input + "." + b64url(sig)


def parse_scope(scope):
    """repository:NAME:pull,push -> (type, name, [actions]); NAME may hold ':'
    (a port in a registry-qualified name), so split on the first and last."""
    first = scope.find(":")
    last = scope.rfind(":")
    if first < 0 or last == first:
        return None
    return scope[:first], scope[first + 1:last], [a for a in scope[last + 1:].split(",") if a]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        sys.stderr.write("token_server: " + (fmt % a) + "\n")

    def reply(self, status, obj, extra=None):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def user(self):
        """(user or None, ok): ok is False for wrong credentials."""
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Basic "):
            return None, True
        try:
            u, p = base64.b64decode(auth[6:].strip()).decode().split(":", 1)
        except Exception:
            return None, False
        return u, self.server.state.users.get(u) == p

    def do_GET(self):
        st = self.server.state
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/stats":
            with st.lock:
                return self.reply(200, st.stats)
        if url.path != "/token":
            return self.reply(404, {"error": "not found"})
        q = urllib.parse.parse_qs(url.query)
        user, ok = self.user()
        with st.lock:
            st.stats["requests"] += 1
            st.stats["scopes"].extend(q.get("scope", []))
            if user is None:
                st.stats["anonymous"] += 1
            if not ok or (user is None and st.args.deny_anonymous):
                st.stats["denied"] += 1
                st.save_stats()
                return self.reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]},
                                  {"WWW-Authenticate": 'Basic realm="kiln-test-token"'})
            st.stats["granted"] += 1
            st.save_stats()
        access = []
        for scope in q.get("scope", []):
            p = parse_scope(scope)
            if p and user is not None:
                access.append({"type": p[0], "name": p[1], "actions": p[2]})
        now = int(time.time())
        claims = {"iss": st.args.issuer, "sub": user or "", "aud": q.get("service", [st.args.service])[0],
                  "exp": now + st.args.expires_in, "nbf": now - 10, "iat": now,
                  "jti": b64url(os.urandom(12)), "access": access}
        token = st.sign(claims)
        self.reply(200, {"token": token, "access_token": token, "expires_in": st.args.expires_in,
                         "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--key", required=True)
    ap.add_argument("--issuer", required=True)
    ap.add_argument("--service", required=True)
    ap.add_argument("--users", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--stats-file")
    ap.add_argument("--expires-in", type=int, default=300)
    ap.add_argument("--deny-anonymous", action="store_true")
    ap.add_argument("--max-lifetime", type=float, default=900)
    args = ap.parse_args()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    srv.state = State(args)
    srv.state.save_stats()
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
