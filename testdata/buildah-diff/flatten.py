#!/usr/bin/env python3
"""flatten.py ROOTFS - print a manifest of an unpacked image filesystem.

One line per entry below ROOTFS, sorted by path:
    path type mode uid gid size sha256 linktarget
type is f d l c b p s; mode is the octal permission bits (with setuid,
setgid, sticky); size and sha256 are `-` for anything but regular files;
linktarget is `-` for anything but symlinks.  Times and link counts are left
out on purpose (the differential test does not compare them).
"""
import hashlib
import os
import stat
import sys


def kind(st):
    m = st.st_mode
    for test, k in ((stat.S_ISREG, "f"), (stat.S_ISDIR, "d"), (stat.S_ISLNK, "l"), (stat.S_ISCHR, "c"),
                    (stat.S_ISBLK, "b"), (stat.S_ISFIFO, "p"), (stat.S_ISSOCK, "s")):
        if test(m):
            return k
    return "?"


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def entry(root, rel):
    full = os.path.join(root, rel)
    st = os.lstat(full)
    k = kind(st)
    size = str(st.st_size) if k == "f" else "-"
    digest = sha256(full) if k == "f" else "-"
    target = os.readlink(full) if k == "l" else "-"
    return "/%s %s %04o %d %d %s %s %s" % (rel, k, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, size, digest,
                                          target)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: flatten.py ROOTFS")
    root = sys.argv[1]
    rels = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            rels.append(os.path.relpath(os.path.join(dirpath, name), root))
    for rel in sorted(rels):
        print(entry(root, rel))


if __name__ == "__main__":
    main()
