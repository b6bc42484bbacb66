#!/usr/bin/env python3
"""Generates the crafted tars used by tests/test_extract.c.

Run from anywhere: `python3 testdata/extract/make.py`.  Standard library only
(tarfile, gzip; the zstd file is a hand-written frame of raw blocks, which any
zstd decoder accepts).  Output is deterministic (fixed mtimes, owners, order).

In the tests the root is `<tmp>/root` and a tripwire directory `<tmp>/tripwire`
(holding `secret`, mode 0400) sits next to it, so `../tripwire` is the
relative way out of the root.
"""
import gzip
import io
import lzma
import os
import struct
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
MTIME = 1000000000


def info(name, type=tarfile.REGTYPE, mode=0o644, data=b"", link="", uid=0, gid=0, mtime=MTIME,
         pax=None, dev=(0, 0)):
    ti = tarfile.TarInfo(name)
    ti.type = type
    ti.mode = mode
    ti.uid, ti.gid = uid, gid
    ti.uname = ti.gname = ""
    ti.mtime = mtime
    ti.linkname = link
    ti.size = len(data)
    ti.devmajor, ti.devminor = dev
    if pax:
        ti.pax_headers = pax
    return ti, (io.BytesIO(data) if data else None)


def f(name, data=b"x", mode=0o644, **kw):
    return info(name, data=data, mode=mode, **kw)


def d(name, mode=0o755, **kw):
    return info(name, type=tarfile.DIRTYPE, mode=mode, **kw)


def sym(name, target):
    return info(name, type=tarfile.SYMTYPE, mode=0o777, link=target)


def hard(name, target, data=b"", mode=0o644, pax=None):
    return info(name, type=tarfile.LNKTYPE, link=target, data=data, mode=mode, pax=pax)


def tar_bytes(entries):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as t:
        for ti, data in entries:
            t.addfile(ti, data)
    return out.getvalue()


def write(name, data):
    with open(os.path.join(HERE, name), "wb") as fh:
        fh.write(data)


def zstd_raw_frame(data):
    """A zstd frame of raw (stored) blocks: magic, single-segment header with
    a 4-byte content size, then blocks of at most 128 KiB."""
    out = bytearray(struct.pack("<I", 0xFD2FB528))
    out.append(0xA0)  # FCS flag 2 (4 bytes), single segment, no checksum
    out += struct.pack("<I", len(data))
    blocks = [data[i:i + 131072] for i in range(0, len(data), 131072)] or [b""]
    for i, blk in enumerate(blocks):
        last = 1 if i == len(blocks) - 1 else 0
        out += struct.pack("<I", (len(blk) << 3) | last)[:3]  # type 0 = raw
        out += blk
    return bytes(out)


CAP_NET_BIND_SERVICE = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)

TARS = {
    # names with .. and absolute names are confined to the root (cleaned)
    "escape_dotdot.tar": [f("../../tripwire/dotdot", b"1"), f("/../tripwire/slash-dotdot", b"2"),
                          d(".."), f("a/../../../x", b"3")],
    "escape_absolute.tar": [f("/kiln-abs-file", b"abs"), f("/etc/kiln-abs-passwd", b"abs2")],
    # writes through symlinks land inside the root
    "symlink_outside.tar": [sym("link", "/tmp/kiln-tripwire"), d("tmp/"), d("tmp/kiln-tripwire/"),
                            f("link/pwned", b"abs"), sym("rel", "../tripwire"), d("tripwire/"),
                            f("rel/pwned-rel", b"rel")],
    # the symlinked parent's in-root target does not exist: an error
    "symlink_dangling.tar": [sym("link", "../../tripwire"), f("link/pwned", b"pwned")],
    "symlink_chain.tar": [sym("a", "../../../.."), d("etc/"), sym("b", "a/etc"), f("b/x", b"chain"),
                          sym("up", ".."), f("up/up/tripwire/via-up", b"up")],
    # CVE-2021-29136: a symlink replacing the root
    "symlink_root.tar": [sym(".", "/tmp")],
    "hardlink_outside.tar": [hard("h", "/etc/passwd")],
    "hardlink_inside.tar": [d("etc/"), f("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
                            hard("h1", "/etc/passwd"), hard("h2", "../../../etc/passwd")],
    "hardlink_tripwire.tar": [hard("h", "../tripwire/secret")],
    "hardlink_symlink_dir.tar": [sym("ldir", "../tripwire"), hard("h", "ldir/secret")],
    # containerd HardlinkSymlinkChmod (CVE-2021-32760)
    "hardlink_symlink_chmod.tar": [sym("sym", "../tripwire/secret"), hard("hl", "sym", mode=0o777)],
    # libarchive #746: a hardlink entry carrying data.  With a pax header
    # libarchive hands the body over; in plain ustar it guesses there is no
    # body and then trips over the data block (the archive is rejected).
    "hardlink_data.tar": [f("f", b"orig"), hard("h", "f", data=b"PWNED", pax={"comment": "pax"})],
    "hardlink_data_ustar.tar": [f("f", b"orig"), hard("h", "f", data=b"PWNED")],
    "whiteout_dot.tar": [f(".wh..", b"")],
    "whiteout_dotdot.tar": [f(".wh...", b"")],
    "whiteout_etc_dotdot.tar": [d("etc/"), f("etc/.wh...", b"")],
    "whiteout_whwh.tar": [f(".wh..wh.foo", b"")],
    # ../.wh.tripwire is cleaned to .wh.tripwire: removes root/tripwire only
    "whiteout_escape.tar": [f("../.wh.tripwire", b""), f("../../x/../.wh.secret", b"")],
    "lower.tar": [d("etc/"), f("etc/passwd", b"p"), f("etc/group", b"g"), d("d/"), d("d/sub/"),
                  f("d/sub/f"), f("keep"), d("o/"), f("o/lower1"), d("o/lowerdir/"), f("o/lowerdir/x"),
                  d("p/"), f("p/lower"), d("p/sub/"), f("p/sub/lowerfile"), sym("localetc", "/etc")],
    "whiteout_regular.tar": [f("etc/.wh.passwd", b""), f(".wh.d", b""), f("localetc/.wh.group", b""),
                             f("newfile", b"new"), f(".wh.newfile", b""), f(".wh.missing", b""),
                             f("nodir/.wh.x", b"")],
    "whiteout_opaque.tar": [d("o/"), f("o/.wh..wh..opq", b""), f("o/upper"), d("p/"), f("p/upper-before"),
                            f("p/sub/newer"), f("p/.wh..wh..opq", b"")],
    "device.tar": [d("dev/"), info("dev/null2", type=tarfile.CHRTYPE, mode=0o666, dev=(1, 3)),
                   info("fifo", type=tarfile.FIFOTYPE, mode=0o640)],
    "setuid.tar": [d("bin/"), f("bin/su", b"#!/bin/true\n", mode=0o4755, uid=0, gid=0),
                   f("bin/sg", b"sg", mode=0o2755, uid=1000, gid=1001), d("tmp/", mode=0o1777),
                   f("bin/ping", b"ping", mode=0o755,
                     pax={"SCHILY.xattr.security.capability":
                          CAP_NET_BIND_SERVICE.decode("utf-8", "surrogateescape"),
                          "SCHILY.xattr.user.foo": "bar",
                          "SCHILY.xattr.trusted.evil": "x",
                          "SCHILY.xattr.user.overlay.redirect": "/x"})],
    # last entry wins; a file replacing a symlink never writes through it
    "replace.tar": [f("a", b"file"), d("a/"), f("a/child", b"c"), d("b/"), f("b/x"), f("b", b"now a file"),
                    f("c", b"first"), sym("c", "../tripwire/secret"), f("c", b"third")],
    "ro_dir.tar": [d("ro/", mode=0o555, mtime=1234567), f("ro/child", b"c"), d("ro/sub/", mode=0o500),
                   f("ro/sub/f", b"f")],
    "long_name.tar": [f("a/" + "n" * 4100, b"long")],
}

SMALL = [d("hello/"), f("hello/world", b"hi\n")]


def raw_entry(name, typeflag, data=b"", mode=0o700):
    """One ustar entry written by hand: tarfile cannot write an empty name
    (it turns a directory's "" into "/")."""
    h = bytearray(512)
    h[0:len(name)] = name
    h[100:108] = b"%07o\0" % mode
    h[108:116] = b"%07o\0" % 0
    h[116:124] = b"%07o\0" % 0
    h[124:136] = b"%011o\0" % len(data)
    h[136:148] = b"%011o\0" % MTIME
    h[148:156] = b" " * 8
    h[156:157] = typeflag
    h[257:265] = b"ustar\x0000"
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h) + data + b"\0" * (-len(data) % 512)


def entries_end(data):
    """Offset just past the last entry (its header, data and padding)."""
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        last = t.getmembers()[-1]
    return last.offset_data + (last.size + 511) // 512 * 512


def edge_tars(plain):
    """ADD edge cases, as BuildKit reads them: an empty entry name is the root
    (skipped); Go's archive/tar accepts a tar without end-of-archive blocks or
    with one, fails on a partial marker block, a zero block followed by a
    non-zero one, and a cut entry."""
    after = tar_bytes([f("after", b"after")])
    end = entries_end(plain)
    data_at = end - 512  # hello/world's one data block
    out = {
        "empty_name_dir.tar": raw_entry(b"", b"5") + after,
        "empty_name_file.tar": raw_entry(b"", b"0", b"x", mode=0o600) + after,
        "end_none.tar": plain[:end],
        "end_one_block.tar": plain[:end + 512],
        "end_record_cut.tar": plain[:end + 1024 + 100],
        "end_first_block_cut.tar": plain[:end + 100],
        "end_second_block_cut.tar": plain[:end + 512 + 100],
        "end_zero_then_garbage.tar": plain[:end + 512] + b"\x01" * 512,
        "end_data_cut.tar": plain[:data_at + 2],
    }
    out["end_second_block_cut.tar.gz"] = gzip.compress(out["end_second_block_cut.tar"], mtime=0)
    out["small.tar.gz.gz"] = gzip.compress(gzip.compress(plain, mtime=0), mtime=0)
    out["small.tar.xz.gz"] = gzip.compress(lzma.compress(plain, format=lzma.FORMAT_XZ), mtime=0)
    return out


def main():
    for name, entries in TARS.items():
        write(name, tar_bytes(entries))
    plain = tar_bytes(SMALL)
    write("small.tar", plain)
    write("small.tar.gz", gzip.compress(plain, mtime=0))
    write("small.tar.zst", zstd_raw_frame(plain))
    for name, data in edge_tars(plain).items():
        write(name, data)
    write("notatar.txt", b"this is a plain text file,\nnot an archive at all.\n" * 20)


if __name__ == "__main__":
    main()
