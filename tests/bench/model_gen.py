#!/usr/bin/env python3
"""model_gen.py - the model-image context of tests/bench/model-image.sh, seeded.

  model_gen.py DIR --base REF [--seed S] [--weights-mb 1024] [--text-mb 256]
                   [--app-files 200]

DIR/Dockerfile   FROM REF (a busybox base in the local registry), ENV, WORKDIR,
                 COPY weights/, a RUN (so the builder needs the base's root),
                 COPY app/, CMD: the shape of an inference image
DIR/weights/model.bin   WEIGHTS-MB MiB of incompressible bytes (SHAKE-128 of
                        the seed and a block counter: a few hundred MiB/s,
                        the same bytes on every machine)
DIR/weights/vocab.txt   TEXT-MB MiB of tokenizer-like text lines (gzip -6 makes
                        about a fifth of it, zstd -1 about a sixth)
DIR/app/         serve.sh, config.json and APP-FILES small modules in app/lib/
                 (mod-0001.txt ... : a few lines of code each); the one-line
                 change of the benchmark appends to app/lib/mod-0001.txt

DIR must not exist yet. Same arguments, same bytes. Files and directories get
mtime 1700000000.
"""
import argparse
import hashlib
import os
import random

from scale_gen import MTIME, fix_dir_mtimes, write

MIB = 1 << 20


def dockerfile(base):
    return ("FROM %s\n"
            "ENV MODEL_DIR=/models\n"
            "WORKDIR /app\n"
            "COPY weights/ /models/\n"
            "RUN mkdir -p /app/cache && echo built > /app/cache/stamp\n"
            "COPY app/ /app/\n"
            'CMD ["/bin/sh", "/app/serve.sh"]\n' % base)


def weights(path, mb, seed):
    key = ("kiln-bench-weights-%d" % seed).encode()
    with open(path, "wb") as f:
        for i in range(mb):
            f.write(hashlib.shake_128(key + i.to_bytes(8, "little")).digest(MIB))
    os.utime(path, (MTIME, MTIME))


def vocab(path, mb, seed):
    """Numbered token lines with a few words from a seeded vocabulary: every
    line differs (no degenerate repetition), yet the columns repeat enough for
    deflate to find about 5:1, like real vocabularies and configs."""
    size = mb * MIB
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(512)]
    left, i = size, 0
    with open(path, "wb") as f:
        while left > 0:
            lines = []
            for _ in range(8192):
                i += 1
                lines.append("token %010d piece=%s weight=0.%06d bias=-1.25e-3 id=%04x"
                             " lang=en kind=subword merges=%s,%s flags=normal,trainable\n" % (
                                 i, words[i % 512], (i * 7919) % 1000003, (i * 40503) % 65536,
                                 words[(i * 31) % 512], words[(i * 7) % 509]))
            block = "".join(lines).encode()[:left]
            f.write(block)
            left -= len(block)
    os.utime(path, (MTIME, MTIME))


def app(d, files):
    lib = os.path.join(d, "lib")
    os.makedirs(lib)
    write(os.path.join(d, "serve.sh"),
          b'#!/bin/sh\necho "model in $MODEL_DIR"\nls -l "$MODEL_DIR"\ncat /app/cache/stamp\n')
    os.chmod(os.path.join(d, "serve.sh"), 0o755)
    write(os.path.join(d, "config.json"),
          b'{"model": "/models/model.bin", "vocab": "/models/vocab.txt", "port": 8080}\n')
    for i in range(1, files + 1):
        body = ["# module %04d\n" % i]
        for j in range(3 + i % 7):
            body.append("def f%04d_%d(x):\n    return x * %d + %d\n" % (i, j, j, i))
        write(os.path.join(lib, "mod-%04d.txt" % i), "".join(body).encode())


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dir")
    p.add_argument("--base", required=True)
    p.add_argument("--seed", type=int, default=6)
    p.add_argument("--weights-mb", type=int, default=1024)
    p.add_argument("--text-mb", type=int, default=256)
    p.add_argument("--app-files", type=int, default=200)
    a = p.parse_args()
    os.makedirs(os.path.join(a.dir, "weights"))
    write(os.path.join(a.dir, "Dockerfile"), dockerfile(a.base).encode())
    weights(os.path.join(a.dir, "weights", "model.bin"), a.weights_mb, a.seed)
    vocab(os.path.join(a.dir, "weights", "vocab.txt"), a.text_mb, a.seed)
    app(os.path.join(a.dir, "app"), a.app_files)
    fix_dir_mtimes(a.dir)


if __name__ == "__main__":
    main()
