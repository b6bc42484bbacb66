#!/usr/bin/env python3
"""tests/tools/lint_layers.py - the include graph follows the layers.

src/ is grouped into folders by layer; src/layers.txt says which folders
each may use.  A file may include the public header (include/kiln/X.h) of a
module of its own folder or of an allowed one, and an internal header
(X-internal.h) of its own module only, except where EXCEPTIONS says so and
why.  A header belongs to the folder that holds X.c (or X_*.c, X-internal.h),
or to the folder src/layers.txt names for it.  Run by `make lint` from the top
of the repository."""
import glob
import os
import re
import sys

# (file's module, header) pairs allowed across the internal-header rule, each with its reason
EXCEPTIONS = {
    ("registry", "store-internal"): "the registry client records blob sources in the store's own files",
    ("diff", "snapshot-internal"): "the diff reads overlay whiteouts as the snapshot module writes them",
    ("cache", "oci-internal"): "cache records use the OCI documents' JSON helpers",
    ("cache_export", "oci-internal"): "the cache manifest is an OCI document",
    ("export", "store-internal"): "export is the store's own writer of layouts and archives",
    ("export", "oci-internal"): "export writes OCI documents",
    ("export_rootfs", "store-internal"): "export is the store's own writer",
}


def read_layers(path):
    allowed, headers = {}, {}
    for n, line in enumerate(open(path, encoding="utf-8"), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.match(r"header ([a-z_]+):\s*([a-z_]+)$", line)
        if m:
            headers[m.group(1)] = m.group(2)
            continue
        m = re.match(r"([a-z_]+):((?:\s+[a-z_]+)*)$", line)
        if not m:
            sys.exit("%s:%d: cannot read `%s`" % (path, n, line))
        allowed[m.group(1)] = set(m.group(2).split()) | {m.group(1)}
    return allowed, headers


def module_of(name, modules):
    """A file's module: its own name when include/kiln/ has a header of that
    name (cache_export), else the part before the first `_` (build_copy_walk
    -> build, registry_http -> registry, export_rootfs -> export)."""
    return name if name in modules else name.split("_")[0]


def main():
    allowed, header_folder = read_layers("src/layers.txt")
    bad = []
    files = sorted(glob.glob("src/*/*.c") + glob.glob("src/*/*.h"))
    stems = {os.path.basename(p)[:-2] for p in glob.glob("include/kiln/*.h")}
    folder_of = dict(header_folder)
    for p in files:
        folder = p.split("/")[1]
        if folder not in allowed:
            bad.append("%s: folder %s is not in src/layers.txt" % (p, folder))
            continue
        mod = module_of(os.path.basename(p).rsplit(".", 1)[0].replace("-internal", ""), stems)
        # a module lives in one folder: its header's place in the graph is that folder's
        if folder_of.setdefault(mod, folder) != folder:
            bad.append("%s: module %s also has files in src/%s" % (p, mod, folder_of[mod]))
    for path in files:
        folder = path.split("/")[1]
        mod = module_of(os.path.basename(path).rsplit(".", 1)[0].replace("-internal", ""), stems)
        for n, line in enumerate(open(path, encoding="utf-8"), 1):
            m = re.match(r'#include "(kiln/|\.\./[a-z]+/)?([a-z_]+)(-internal)?\.h"', line)
            if not m:
                continue
            name = m.group(2)
            if m.group(3):
                if module_of(name, stems) != mod and (mod, name + "-internal") not in EXCEPTIONS:
                    bad.append("%s:%d: includes %s-internal.h, the internal header of module %s"
                               % (path, n, name, name))
                continue
            hfolder = folder_of.get(name)
            if hfolder is None:
                bad.append("%s:%d: header %s.h has no folder (no src/*/%s.c; add a `header` line to "
                           "src/layers.txt)" % (path, n, name, name))
            elif folder in allowed and hfolder not in allowed[folder]:
                bad.append("%s:%d: %s may not include %s.h (src/%s): src/layers.txt does not let %s use %s"
                           % (path, n, folder, name, hfolder, folder, hfolder))
    for b in bad:
        print(b)
    return 1 if bad else 0


sys.exit(main())
