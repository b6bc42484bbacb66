#!/usr/bin/env python3
"""scale_gen.py - seeded, deterministic data for tests/bench/scale.sh.

  scale_gen.py tree DIR FILES [--seed S] [--depth 6]
      FILES files of 1-8 KiB of source-like text under DIR, DEPTH directories
      deep (files live in the leaf directories; half end in .py, half in
      .txt, alternately). Prints one file's path relative to DIR (a file in
      the middle of the tree, for the one-file-change rebuild).
  scale_gen.py layer DIR [--seed S] [--random-mb N] [--text-mb N]
                         [--text-files N] [--small N --small-per-dir N]
      one base-image layer's files under DIR: N MiB of random data in files
      of 1-32 MiB (DIR/bin/), N MiB of text in TEXT-FILES files (DIR/share/),
      and SMALL files of 1-8 KiB of text, SMALL-PER-DIR to a directory
      (DIR/small/dNNN/fNNNNN.txt).

Same arguments, same bytes: every random choice comes from random.Random(seed).
Every file and directory gets the fixed mtime 1700000000, as in a checkout
that is not brand new.
"""
import argparse
import os
import random

MTIME = 1700000000
POOL_SIZE = 1 << 20


def text_pool(rng):
    """1 MiB of source-like text (identifiers, operators, indentation):
    compresses about 3:1 with deflate, like real code."""
    letters = "abcdefghijklmnopqrstuvwxyz_"
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 12)))
             for _ in range(4096)]
    ops = [" = ", "(", ")", ", ", ".", " + ", " == ", ": ", "[", "]", " "]
    out, size = [], 0
    while size < POOL_SIZE:
        line = " " * (4 * rng.randint(0, 3))
        for _ in range(rng.randint(2, 9)):
            line += rng.choice(words) + rng.choice(ops)
        line += "\n"
        out.append(line)
        size += len(line)
    return "".join(out).encode()[:POOL_SIZE]


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    os.utime(path, (MTIME, MTIME))


def text_bytes(rng, pool, header, size):
    body = size - len(header)
    if body <= 0:
        return header[:size]
    out = [header]
    while body > 0:
        off = rng.randrange(0, POOL_SIZE - 1024)
        n = min(body, POOL_SIZE - off)
        out.append(pool[off:off + n])
        body -= n
    return b"".join(out)


def fix_dir_mtimes(root):
    for d, _, _ in os.walk(root, topdown=False):
        os.utime(d, (MTIME, MTIME))


def cmd_tree(a):
    rng = random.Random(a.seed)
    pool = text_pool(rng)
    # fan-out so that the leaves hold about 25 files each
    fan = 2
    while fan ** a.depth * 25 < a.files:
        fan += 1
    leaves = fan ** a.depth
    made = set()
    sample = None
    for i in range(a.files):
        leaf = i % leaves
        parts = []
        for _ in range(a.depth):
            parts.append("d%d" % (leaf % fan))
            leaf //= fan
        d = os.path.join(a.dir, *parts)
        if d not in made:
            os.makedirs(d, exist_ok=True)
            made.add(d)
        rel = os.path.join(*parts, "f%07d.%s" % (i, "py" if i % 2 == 0 else "txt"))
        header = ("# %s\n" % rel).encode()
        write(os.path.join(a.dir, rel), text_bytes(rng, pool, header, rng.randint(1024, 8192)))
        if i == a.files // 2:
            sample = rel
    fix_dir_mtimes(a.dir)
    print(sample)


def cmd_layer(a):
    rng = random.Random(a.seed)
    pool = text_pool(rng)
    mib = 1 << 20
    if a.random_mb > 0:
        os.makedirs(os.path.join(a.dir, "bin"), exist_ok=True)
        left, i = a.random_mb * mib, 0
        while left > 0:
            n = min(left, rng.randint(1, 32) * mib)
            write(os.path.join(a.dir, "bin", "blob%04d.bin" % i), rng.randbytes(n))
            left -= n
            i += 1
    if a.text_mb > 0 and a.text_files > 0:
        each = a.text_mb * mib // a.text_files
        for i in range(a.text_files):
            d = os.path.join(a.dir, "share", "t%03d" % (i // 100))
            os.makedirs(d, exist_ok=True)
            rel = "share/t%03d/doc%05d.txt" % (i // 100, i)
            write(os.path.join(a.dir, rel), text_bytes(rng, pool, ("# %s\n" % rel).encode(), each))
    for i in range(a.small):
        d = os.path.join(a.dir, "small", "d%03d" % (i // a.small_per_dir))
        if i % a.small_per_dir == 0:
            os.makedirs(d, exist_ok=True)
        rel = "small/d%03d/f%05d.txt" % (i // a.small_per_dir, i)
        write(os.path.join(a.dir, rel),
              text_bytes(rng, pool, ("# %s\n" % rel).encode(), rng.randint(1024, 8192)))
    fix_dir_mtimes(a.dir)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tree")
    t.add_argument("dir")
    t.add_argument("files", type=int)
    t.add_argument("--seed", type=int, default=11)
    t.add_argument("--depth", type=int, default=6)
    t.set_defaults(func=cmd_tree)
    lay = sub.add_parser("layer")
    lay.add_argument("dir")
    lay.add_argument("--seed", type=int, default=11)
    lay.add_argument("--random-mb", type=int, default=0)
    lay.add_argument("--text-mb", type=int, default=0)
    lay.add_argument("--text-files", type=int, default=0)
    lay.add_argument("--small", type=int, default=0)
    lay.add_argument("--small-per-dir", type=int, default=100)
    lay.set_defaults(func=cmd_layer)
    a = p.parse_args()
    a.func(a)


if __name__ == "__main__":
    main()
