#!/usr/bin/env python3
"""gen_dest_cases.py SEED N OUTDIR - random COPY-destination cases.

Each case OUTDIR/caseK/ holds a context and a Dockerfile that, FROM the test
base image, builds a random small tree (directories with various modes and
owners, files, symlinks: absolute, relative with "..", dangling), removes
part of it in a later RUN (whiteouts, an opaque directory), then COPYs a file
and a directory from the context to random destinations: existing
directories, paths through symlinks, missing paths, with and without a
trailing slash.  Destinations where BuildKit fails (a directory onto a file,
a file onto a directory, a path through a file) are not generated: the
cases compare where files land, so kiln's and buildah's results must be
equal.  The same SEED gives the same cases.
"""
import os
import random
import sys

ROOTS = ["r0", "r1", "r2"]


class Tree:
    """What the base's RUNs leave: path -> ('d', mode) | ('f',) | ('l', target)."""

    def __init__(self):
        self.e = {r: ("d", 0o755) for r in ROOTS}

    def resolve(self, path, follow_last=True, depth=0):
        """The path with symlinks followed inside the root, or None on a loop."""
        if depth > 40:
            return None
        parts = [p for p in path.split("/") if p and p != "."]
        cur = []
        for i, p in enumerate(parts):
            if p == "..":
                cur = cur[:-1]
                continue
            cand = "/".join(cur + [p])
            node = self.e.get(cand)
            last = i == len(parts) - 1
            if node and node[0] == "l" and (follow_last or not last):
                target = node[1]
                rest = "/".join(parts[i + 1:])
                base = "" if target.startswith("/") else "/".join(cur)
                return self.resolve(base + "/" + target + "/" + rest, follow_last, depth + 1)
            cur.append(p)
        return "/".join(cur)

    def kind(self, path):
        node = self.e.get(path)
        return node[0] if node else None

    def parents_ok(self, path):
        """Every existing ancestor of the resolved path is a directory."""
        parts = path.split("/")
        for i in range(1, len(parts)):
            k = self.kind("/".join(parts[:i]))
            if k not in (None, "d"):
                return False
        return True


def gen_tree(rng, t, lines):
    dirs = list(ROOTS)
    for i in range(rng.randint(3, 6)):
        d = rng.choice(dirs) + "/d%d" % i
        mode = rng.choice([0o700, 0o750, 0o755, 0o1777])
        owner = rng.choice(["0:0", "7:8", "1000:1000"])
        lines.append("mkdir -p /%s && chmod %o /%s && chown %s /%s" % (d, mode, d, owner, d))
        t.e[d] = ("d", mode)
        dirs.append(d)
    for i in range(rng.randint(1, 3)):
        f = rng.choice(dirs) + "/f%d" % i
        lines.append("echo %d > /%s" % (i, f))
        t.e[f] = ("f",)
    for i in range(rng.randint(2, 4)):
        name = rng.choice(dirs) + "/l%d" % i
        kind = rng.choice(["abs", "rel", "dangling", "dotdot"])
        if kind == "abs":
            target = "/" + rng.choice(dirs)
        elif kind == "rel":
            target = rng.choice([d for d in dirs if "/" not in d])
            target = "../" * name.count("/") + target
        elif kind == "dotdot":
            target = "../../../../" + rng.choice(dirs)
        else:
            target = "/" + rng.choice(ROOTS) + "/missing%d" % i
        lines.append("ln -s %s /%s" % (target, name))
        t.e[name] = ("l", target)
    return dirs


def gen_removals(rng, t, dirs):
    """A second RUN: whiteouts, and a directory emptied and refilled (opaque)."""
    lines = []
    victims = [p for p in t.e if p not in ROOTS and t.e[p][0] != "d"]
    for v in rng.sample(victims, min(len(victims), rng.randint(0, 2))):
        lines.append("rm -f /%s" % v)
        del t.e[v]
    sub = [d for d in dirs if d not in ROOTS]
    if sub and rng.random() < 0.5:
        d = rng.choice(sub)
        lines.append("rm -rf /%s && mkdir /%s && echo new > /%s/n" % (d, d, d))
        for p in [p for p in t.e if p.startswith(d + "/")]:
            del t.e[p]
        t.e[d] = ("d", 0o755)
        t.e[d + "/n"] = ("f",)
    return lines


def candidates(t):
    """Destinations a COPY may name: existing paths and children of them."""
    out = []
    for p in sorted(t.e):
        # symlinks are what the test is about: name them more often
        out += [p, p + "/", p + "/new", p + "/new/"] * (3 if t.kind(p) == "l" else 1)
    return out


def ok_dest(t, dest, is_dir):
    slash = dest.endswith("/")
    ensure = dest if slash else dest.rsplit("/", 1)[0]
    re = t.resolve(ensure)
    if re is None or not t.parents_ok(re + "/x") or t.kind(re) not in (None, "d"):
        return False
    r = t.resolve(dest)
    if r is None or not t.parents_ok(r):
        return False
    k = t.kind(r)
    if is_dir:
        # a directory's children must not meet non-directories of the tree
        return k in (None, "d") and all(t.kind(r + "/" + c) is None for c in ("src_a", "src_sub"))
    if k == "d":
        return t.kind(r + "/file.txt") in (None, "f")
    # a dangling final link whose target's directory is missing fails in BuildKit
    return "/" not in r or t.kind(r.rsplit("/", 1)[0]) == "d" 


def gen_case(rng, out):
    os.makedirs(os.path.join(out, "tree", "src_sub"))
    with open(os.path.join(out, "file.txt"), "w") as f:
        f.write("file\n")
    with open(os.path.join(out, "tree", "src_a"), "w") as f:
        f.write("a\n")
    with open(os.path.join(out, "tree", "src_sub", "b"), "w") as f:
        f.write("b\n")
    t = Tree()
    lines = ["mkdir -p " + " ".join("/" + r for r in ROOTS)]
    dirs = gen_tree(rng, t, lines)
    df = ["FROM localhost/busybox:latest", "RUN " + " && ".join(lines)]
    rm = gen_removals(rng, t, dirs)
    if rm:
        df.append("RUN " + " && ".join(rm))
    copies = 0
    cands = candidates(t)
    for dest in rng.sample(cands, len(cands)):
        if copies == 4:
            break
        is_dir = rng.random() < 0.5
        if not ok_dest(t, dest, is_dir):
            continue
        df.append("COPY %s /%s" % ("tree" if is_dir else "file.txt", dest))
        # later COPYs see what this one wrote; keep the model simple by
        # marking the landing spot as a directory or file
        r = t.resolve(dest)
        if is_dir:
            t.e.setdefault(r, ("d", 0o755))
            t.e[r + "/src_a"] = ("f",)
            t.e[r + "/src_sub"] = ("d", 0o755)
        elif t.kind(r) == "d":
            t.e[r + "/file.txt"] = ("f",)
        else:
            t.e[r] = ("f",)
        copies += 1
    with open(os.path.join(out, "Dockerfile"), "w") as f:
        f.write("\n".join(df) + "\n")


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: gen_dest_cases.py SEED N OUTDIR")
    seed, n, outdir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    rng = random.Random(seed)
    for k in range(n):
        gen_case(rng, os.path.join(outdir, "case%d" % k))


if __name__ == "__main__":
    main()
