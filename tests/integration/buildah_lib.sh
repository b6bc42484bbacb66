# buildah as the reference builder, for differential tests (sourced after
# lib.sh): vfs storage under $T (nothing in the machine's default storage),
# the busybox base imported from kiln's store, and flat() to compare images.
command -v buildah >/dev/null 2>&1 || skip "needs \`buildah\` (the reference builder)"
BH=(buildah --root "$T/buildah/root" --runroot "$T/buildah/run" --storage-driver vfs)
# buildah leaves storage mounts and read-only files behind; take them down
# before run.sh removes $T
trap '"${BH[@]}" rm --all >/dev/null 2>&1 || true; "${BH[@]}" umount --all >/dev/null 2>&1 || true' EXIT
FLATTEN=$REPO_DIR/testdata/buildah-diff/flatten.py
CONFIG_FIELDS='{Env, Cmd, Entrypoint, WorkingDir, User, Labels, ExposedPorts, Volumes, StopSignal}'

# buildah_base: localhost/busybox:latest from kiln's store, for buildah too
buildah_base() {
  kiln save --format oci -o "$T/base-oci" localhost/busybox:latest
  # (a relative path: buildah names the image after it, and $T may have capitals)
  (cd "$T" && "${BH[@]}" pull -q oci:base-oci:latest >/dev/null)
  "${BH[@]}" tag localhost/base-oci:latest localhost/busybox:latest
}

# buildah_build CTX TAG LAYOUT: buildah bud CTX, then push it as an OCI layout
buildah_build() {
  # --format docker: buildah ignores SHELL in its OCI format
  "${BH[@]}" bud --quiet --layers --isolation chroot --pull=never --identity-label=false --format docker \
    -t "$2" "$1" >"$3.log" 2>&1 || { cat "$3.log"; return 1; }
  "${BH[@]}" push -q "$2" "oci:$3:b" >/dev/null
}

# flat LAYOUT OUT: unpack and write the manifest OUT.fs and the config OUT.cfg
flat() {
  unpack_layout "$1" "$2.bundle"
  python3 "$FLATTEN" "$2.bundle/rootfs" >"$2.fs"
  local m
  m=$(jq -r '.manifests[0].digest' "$1/index.json")
  m=$(jq -r .config.digest "$1/blobs/sha256/${m#sha256:}")
  jq -S "(.config // {}) | $CONFIG_FIELDS | with_entries(select(.value != null and .value != {} and .value != [] and .value != \"\"))" \
    "$1/blobs/sha256/${m#sha256:}" >"$2.cfg"
  rm -rf "$2.bundle"
}
