#!/usr/bin/env python3
"""tests/tools/lint_prefixes.py - every public symbol names its module.

Reads `nm -A -g --defined-only build/libkiln.a` on stdin.  A symbol defined in
src/MODULE*.c must start with kiln_ and one of the prefixes the table below
allows for that module (its own name, or the object type it owns, such as
kiln_sha256_* in digest.c).  util.c, the shared helpers, may define any
kiln_ name.  Run by `make lint`."""
import sys

ALLOWED = {
    "auth": ["auth"],
    "buf": ["buf"],
    "build": ["build"],
    "cache": ["cache", "recompressed", "url_record"],
    "cache_export": ["cache"],
    "cmd": ["cmd"],
    "compress": ["compress", "compression", "compressor", "gzip"],
    "ctxsum": ["ctxsum"],
    "decompress": ["decompress", "decomp"],
    "diff": ["diff"],
    "digest": ["digest", "sha256"],
    "dockerfile": ["dockerfile", "df"],
    "error": ["error"],
    "expand": ["expand", "split_words"],
    "export": ["export", "store_export"],
    "export_rootfs": ["export", "store_export"],
    "exporter": ["exporter"],
    "extract": ["extract"],
    "fetch": ["fetch"],
    "fs": ["fs"],
    "glob": ["glob"],
    "ignore": ["ignore"],
    "image": ["image"],
    "kvlist": ["kvlist"],
    "layer": ["layer"],
    "log": ["log"],
    "oci": ["oci", "descriptor", "image_config", "index", "manifest", "image_format",
            "layer_media_type"],
    "passwd": ["passwd"],
    "plan": ["plan"],
    "prune": ["prune"],
    "ref": ["ref"],
    "registry": ["registry"],
    "ring": ["ring"],
    "run": ["run"],
    "sandbox": ["sandbox"],
    "snapshot": ["snapshot", "dir_names", "is_overlay_whiteout", "xattr_exported", "xattrs"],
    "store": ["store", "blob_writer"],
    "toc": ["toc", "tocview"],
    "treesum": ["treesum", "treelist"],
    "userns": ["userns"],
    "walkahead": ["walkahead", "dirlisting"],
}


def module_of(obj):
    """build_copy -> build, oci_config -> oci, cache_export -> cache_export."""
    if obj in ALLOWED:
        return obj
    head = obj.split("_")[0]
    return head if head in ALLOWED else None


bad = []
for line in sys.stdin:
    parts = line.split()
    if len(parts) != 3 or parts[1] not in "TDBR":
        continue
    obj = parts[0].split(":")[1].rsplit(".", 1)[0]
    sym = parts[2]
    if obj == "util":
        if not sym.startswith("kiln_"):
            bad.append((obj, sym))
        continue
    mod = module_of(obj)
    allowed = ALLOWED.get(mod, [])
    if not any(sym == "kiln_" + p or sym.startswith("kiln_" + p + "_") for p in allowed):
        bad.append((obj, sym))
for obj, sym in bad:
    print("%s.c: `%s` does not name its module (see tests/tools/lint_prefixes.py)" % (obj, sym))
sys.exit(1 if bad else 0)
