#!/usr/bin/env python3
"""Seeds the fuzz corpora under OUT/TARGET/ (build/fuzz/corpus) from testdata/.

tests/fuzz/seeds.py OUT

Dockerfiles (testdata/, examples/, and the ones tests/integration/t_*.sh
write with a heredoc or printf), .dockerignore files, the FROM references,
the expansions of those Dockerfiles, and the crafted tars of
testdata/extract/.  Each seed is named by its content's hash, so reruns add
nothing twice.  The hand-written seeds of the other targets are committed
under testdata/fuzz/seeds/TARGET/ and read from there by tests/fuzz/run.sh.
"""
import glob
import hashlib
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def put(out, target, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, "seed-" + hashlib.sha1(data).hexdigest()[:16])
    if not os.path.exists(p):
        with open(p, "wb") as f:
            f.write(data)


def read(p):
    with open(p, "rb") as f:
        return f.read()


def printf_text(s):
    """The bytes printf '...' writes for the escapes the tests use."""
    return re.sub(r"\\(n|t|\\)", lambda m: {"n": "\n", "t": "\t", "\\": "\\"}[m.group(1)], s).replace("%%", "%")


def from_scripts(name_re):
    """Files the integration tests write whose name matches name_re."""
    found = []
    for sh in sorted(glob.glob(os.path.join(ROOT, "tests/integration/t_*.sh"))):
        lines = read(sh).decode("utf-8", "replace").split("\n")
        i = 0
        while i < len(lines):
            ln = lines[i]
            m = re.search(r">\s*\"?([^\s\"]+)\"?\s*<<-?\s*'?(\w+)'?", ln)
            if m and re.search(name_re, m.group(1)):
                end, body = m.group(2), []
                i += 1
                while i < len(lines) and lines[i].strip() != end:
                    body.append(lines[i])
                    i += 1
                found.append(("\n".join(body) + "\n").encode())
            else:
                m = re.search(r"printf '((?:[^'\\]|\\.)*)'\s*>\s*\"?([^\s\"]+)\"?", ln)
                if m and re.search(name_re, m.group(2)):
                    found.append(printf_text(m.group(1)).encode())
            i += 1
    return found


def main():
    out = sys.argv[1]
    dockerfiles = [read(p) for p in sorted(glob.glob(os.path.join(ROOT, "testdata/**/*Dockerfile*"), recursive=True))
                   + sorted(glob.glob(os.path.join(ROOT, "examples/**/Dockerfile*"), recursive=True))
                   if os.path.isfile(p)]
    dockerfiles += from_scripts(r"Dockerfile[^/]*$")
    ignores = [read(p) for p in glob.glob(os.path.join(ROOT, "testdata/**/.dockerignore"), recursive=True)]
    ignores += from_scripts(r"\.dockerignore$")
    for d in dockerfiles:
        put(out, "dockerfile", d)
        for ln in d.split(b"\n"):
            if b"$" in ln:
                word = ln.split(None, 1)[1] if len(ln.split(None, 1)) > 1 else ln
                put(out, "expand", b"\x00aaaaaaaaab\x00" + word)
                put(out, "expand", b"\x01a b\x00" + word)
            m = re.match(rb"\s*FROM\s+(?:--\S+\s+)*(\S+)", ln, re.I)
            if m:
                put(out, "ref", m.group(1))
    for ig in ignores:
        put(out, "ignore", ig)
    for t in sorted(glob.glob(os.path.join(ROOT, "testdata/extract/*"))):
        if t.endswith((".tar", ".gz", ".txt")):
            for flags in (b"\x00", b"\x01", b"\x02", b"\x10", b"\x20", b"\x25"):
                put(out, "extract", flags + read(t))
    for t in sorted(os.listdir(os.path.join(ROOT, "tests/fuzz"))):
        if t.startswith("fuzz_") and t.endswith(".c"):
            os.makedirs(os.path.join(out, t[5:-2]), exist_ok=True)


main()
