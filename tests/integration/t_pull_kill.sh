#!/bin/bash
# kill -9 of `kiln pull` at several points of a 96 MiB download (and of a
# build FROM that image, which streams the layers into snapshots while they
# arrive): after each kill the store checks clean, and the next pull or build
# on the same store succeeds with the same image digest and content.  A kill
# that lands after the command finished is reported, not failed (as
# t_crash_safety.sh does for builds).  A killed download's partial file in
# ingest/ is litter until `kiln prune` sweeps it; the image pulled again is
# kept.
source "$IT_DIR/lib.sh"
source "$IT_DIR/registry_env.sh"
reg_need
need timeout

reg_start_http plain
make_busybox_base
make_random_image localhost/big:1 96
kiln push "$KILN_TLS_OFF" localhost/big:1 "$REG_HOST/kill/big:1" >/dev/null
digest=$(kiln_manifest_digest localhost/big:1)
ref=$REG_HOST/kill/big:1

c=$T/from
mkdir -p "$c"
printf 'FROM %s\nRUN wc -c /random.bin > /size\n' "$ref" >"$c/Dockerfile"

KILLED=0
for delay in 0.1 0.3 0.6 1.0; do
  for what in pull build; do
    note "kill -9 of $what after ${delay}s"
    store=$T/s-$what-$delay
    if [ "$what" = pull ]; then
      kill_after "$delay" pull "$KILN" --root "$store" pull "$KILN_TLS_OFF" "$ref"
    else
      kill_after "$delay" build "$KILN" --root "$store" build "$KILN_TLS_OFF" -t localhost/from:1 "$c"
    fi
    KILN_ROOT=$store store_clean
    if [ "$what" = pull ]; then
      KILN_ROOT=$store kiln pull "$KILN_TLS_OFF" "$ref" >/dev/null
      assert_eq "$digest" "$(KILN_ROOT=$store kiln_manifest_digest "$ref")" "digest pulled after the kill"
    else
      KILN_ROOT=$store kiln build --progress=plain "$KILN_TLS_OFF" -t localhost/from:1 "$c" >"$T/b.out" 2>&1 \
        || { cat "$T/b.out"; fail "build after the kill at ${delay}s failed"; }
      KILN_ROOT=$store kiln save --format oci -o "$T/out-$delay" localhost/from:1 >/dev/null
    fi
    KILN_ROOT=$store store_clean
    # what a killed writer left in ingest/ is swept by prune (it takes the
    # store's lock exclusively, so no live writer's file is touched)
    KILN_ROOT=$store kiln prune >/dev/null
    KILN_ROOT=$store store_has_no_partial_blobs
    KILN_ROOT=$store store_clean
  done
done
echo "$KILLED of 8 commands were killed while running"
[ "$KILLED" -ge 4 ] || fail "only $KILLED kills landed while the command ran: the test did not test much"
