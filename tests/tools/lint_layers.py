#!/usr/bin/env python3
"""tests/tools/lint_layers.py - the include graph follows the layers.

Every module of src/ sits in a layer (LAYERS, lowest first).  A file may
include the public header (include/kiln/X.h) of a module in its own layer or
a lower one, never a higher one, and the internal header of its own module
only (src/X-internal.h), except where EXCEPTIONS says so and why.  Run by
`make lint` from the top of the repository."""
import glob
import os
import re
import sys

LAYERS = [
    # 0: helpers every module may use
    ["util", "cleanup", "error", "buf", "log", "fs", "digest", "kvlist", "ring", "glob"],
    # 1: formats, the Dockerfile front end, codecs, the host
    ["oci", "ref", "dockerfile", "expand", "ignore", "plan", "passwd", "treesum", "fetch", "compress",
     "decompress", "walkahead", "userns", "auth"],
    # 2: the store and what fills it: layers, snapshots, the sandbox, registries, the cache
    ["store", "export", "export_rootfs", "toc", "extract", "layer", "cache", "cache_export", "ctxsum",
     "snapshot", "diff", "sandbox", "registry", "prune", "image", "run"],
    # 3: the build (the executor; the solver of issue 13)
    ["build"],
    # 4: what a finished build leaves behind
    ["exporter"],
    # 5: the command line
    ["cmd", "main"],
]
# (file's module, header) pairs allowed across the rules, each with its reason
EXCEPTIONS = {
    ("registry", "store-internal"): "the registry client records blob sources in the store's own files",
    ("diff", "snapshot-internal"): "the diff reads overlay whiteouts as the snapshot module writes them",
    ("cache", "oci-internal"): "cache records use the OCI documents' JSON helpers",
    ("cache_export", "oci-internal"): "the cache manifest is an OCI document",
    ("export", "store-internal"): "export is the store's own writer of layouts and archives",
    ("export", "oci-internal"): "export writes OCI documents",
    ("export_rootfs", "store-internal"): "export is the store's own writer",
}


def layer_of(module):
    for i, names in enumerate(LAYERS):
        if module in names:
            return i
    return None


def module_of(name):
    """build_copy -> build, registry_http -> registry, export_rootfs -> export_rootfs."""
    if layer_of(name) is not None:
        return name
    head = name.split("_")[0]
    return head if layer_of(head) is not None else None


def main():
    bad = []
    for path in sorted(glob.glob("src/*.c")):
        mod = module_of(os.path.basename(path)[:-2])
        if mod is None:
            bad.append("%s: module not in tests/tools/lint_layers.py's LAYERS" % path)
            continue
        for n, line in enumerate(open(path, encoding="utf-8"), 1):
            m = re.match(r'#include "(kiln/)?([a-z_]+)(-internal)?\.h"', line)
            if not m:
                continue
            header = m.group(2) + (m.group(3) or "")
            if m.group(3):
                owner = m.group(2)
                if module_of(owner) != mod and (mod, header) not in EXCEPTIONS:
                    bad.append("%s:%d: includes %s.h, the internal header of module %s" % (path, n, header, owner))
                continue
            hmod = module_of(m.group(2))
            if hmod is None:
                bad.append("%s:%d: header %s.h has no layer in tests/tools/lint_layers.py" % (path, n, m.group(2)))
            elif layer_of(hmod) > layer_of(mod):
                bad.append("%s:%d: %s (layer %d) includes %s.h (layer %d, above it)"
                           % (path, n, mod, layer_of(mod), m.group(2), layer_of(hmod)))
    for b in bad:
        print(b)
    return 1 if bad else 0


sys.exit(main())
