#!/bin/bash
# kiln build --network, --add-host, --label, --annotation, --ulimit and
# --shm-size.  --network none gives RUN steps that do not choose a network
# namespace with only lo, RUN --network=host still gets the host's;
# --add-host entries follow the host's /etc/hosts in every RUN (not in the
# layer); both are inputs of the RUN's key, and a build without them keeps
# the keys it had.  --label sets the image's label and --annotation the
# manifest's (buildx's [manifest[PLATFORM]:]K=V; index types refused),
# neither touching a step's key.  --ulimit and --shm-size are what RUN steps
# start with, keyed only when given.  Bad values are usage errors that name
# the value.
source "$IT_DIR/lib.sh"
need jq
need_root
make_busybox_base

c=$T/ctx
mkdir -p "$c"
cat >"$c/Dockerfile" <<'DF'
FROM localhost/busybox:latest
RUN ls /sys/class/net | sort | tr '\n' ' ' > /net.txt && cp /etc/hosts /hosts.txt
RUN --network=host ls /sys/class/net | sort | tr '\n' ' ' > /net-host.txt
DF
# build NAME [FLAGS...]: the image's rootfs in $T/NAME, its log in $T/NAME.log
build() {
  local name=$1
  shift
  kiln build --progress=plain "$@" -t "localhost/it/flags-$name" -o "type=local,dest=$T/$name" "$c" \
    >"$T/$name.log" 2>&1 || fail "build $name $*: $(cat "$T/$name.log")"
}
cached() { grep -c ' CACHED [0-9.]*s$' "$T/$1.log" || true; }

note "default: the host's network and /etc/hosts"
build plain
[ "$(cat "$T/plain/net.txt")" != "lo " ] || fail "default network has only lo"
assert_eq "$(cat /etc/hosts)" "$(cat "$T/plain/hosts.txt")" "/etc/hosts by default"

note "--network none: lo only, unless the step says host; a cache miss"
build none --network none
assert_eq "lo " "$(cat "$T/none/net.txt")" "interfaces with --network none"
assert_eq "$(cat "$T/plain/net-host.txt")" "$(cat "$T/none/net-host.txt")" "RUN --network=host under --network none"
assert_eq 0 "$(cached none)" "CACHED steps with --network none (the second RUN follows the first)"
build none2 --network none
assert_eq 2 "$(cached none2)" "CACHED steps, --network none again"

note "--add-host: entries after the host's, a cache miss, then a hit"
build hosts --add-host db.local:10.1.2.3 --add-host v6.local=fd00::1
printf -v want '%s\n10.1.2.3\tdb.local\nfd00::1\tv6.local' "$(cat /etc/hosts)"
assert_eq "$want" "$(cat "$T/hosts/hosts.txt")" "/etc/hosts with --add-host"
assert_eq 0 "$(cached hosts)" "CACHED steps with --add-host"
build hosts2 --add-host db.local:10.1.2.3 --add-host v6.local=fd00::1
assert_eq 2 "$(cached hosts2)" "CACHED steps, same --add-host again"
build plain2
assert_eq 2 "$(cached plain2)" "CACHED steps without any flag: the keys of the first build"
# the entries never reach a layer
kiln save --format oci -o "$T/oci" localhost/it/flags-hosts
for blob in $(jq -r '.layers[].digest' "$T/oci/blobs/sha256/$(jq -r '.manifests[0].digest' "$T/oci/index.json" | cut -d: -f2)" | cut -d: -f2); do
  if tar -tzf "$T/oci/blobs/sha256/$blob" | grep -qx 'etc/hosts'; then fail "etc/hosts in layer $blob"; fi
done

note "--label: on the image, steps still cached"
build label --label org.example.team=ml --label org.example.empty=
assert_eq ml "$(kiln inspect localhost/it/flags-label | jq -r '.config.config.Labels["org.example.team"]')" "label"
assert_eq "" "$(kiln inspect localhost/it/flags-label | jq -r '.config.config.Labels["org.example.empty"]')" "empty label"
assert_eq 2 "$(cached label)" "CACHED steps with --label"
assert_ne "$(kiln inspect localhost/it/flags-label | jq -r .digest)" \
  "$(kiln inspect localhost/it/flags-plain | jq -r .digest)" "image digest with a label"

note "--annotation: on the manifest; one for another platform is left out"
arch=$(kiln inspect localhost/busybox:latest | jq -r .config.architecture)
build annot --annotation org.example.a=1 --annotation manifest:org.example.b=x=y \
  --annotation "manifest[linux/$arch]:org.example.c=3" --annotation "manifest[linux/none]:org.example.d=4" \
  --annotation "org.example:e=5"
assert_eq '{"org.example.a":"1","org.example.b":"x=y","org.example.c":"3","org.example:e":"5"}' \
  "$(kiln inspect localhost/it/flags-annot | jq -cS .manifest.annotations)" "manifest annotations"
assert_eq 2 "$(cached annot)" "CACHED steps with --annotation"
expect_fail kiln build --annotation index:org.example.a=1 "$c"
assert_contains "$ERR" "index" "--annotation index:"
expect_fail kiln build --annotation manifest:=1 "$c"
assert_contains "$ERR" "manifest:=1" "--annotation without a key"

note "--ulimit and --shm-size: what RUN steps start with, keyed only when given"
c2=$T/ctx2
mkdir -p "$c2"
cat >"$c2/Dockerfile" <<'DF'
FROM localhost/busybox:latest
RUN echo "$(ulimit -Sn) $(ulimit -Hn) $(df -k /dev/shm | tail -1 | awk '{print $2}')" > /limits.txt
DF
lim() {   # NAME [FLAGS...]: /limits.txt of a build of ctx2
  local name=$1
  shift
  kiln build --progress=plain "$@" -o "type=local,dest=$T/$name" "$c2" >"$T/$name.log" 2>&1 \
    || fail "build $name $*: $(cat "$T/$name.log")"
  cat "$T/$name/limits.txt"
}
d=$(lim lim-default)
assert_match "$d" " 65536$" "default /dev/shm of 64 MiB"
assert_eq "1000 2000 262144" "$(lim lim-set --ulimit nofile=1000:2000 --shm-size 256m)" "limits with the flags"
assert_eq 0 "$(cached lim-set)" "CACHED steps with the flags"
assert_eq "4000 4000 65536" "$(lim lim-one --ulimit nofile=1000:2000 --ulimit nofile=4000)" "one value sets both; the last wins"
assert_eq "$d" "$(lim lim-again)" "limits without the flags again"
assert_eq 1 "$(cached lim-again)" "CACHED steps without the flags: the first build's key"
expect_fail kiln build --ulimit nofile=2:1 "$c2"
assert_contains "$ERR" "nofile=2:1" "soft above hard"
expect_fail kiln build --ulimit bogus=1 "$c2"
assert_contains "$ERR" "bogus=1" "unknown limit"
expect_fail kiln build --shm-size 10x "$c2"
assert_contains "$ERR" "10x" "bad size"

note "bad values"
expect_fail kiln build --add-host db.local "$c"
assert_contains "$ERR" "db.local" "--add-host without an address"
expect_fail kiln build --add-host db.local:10.1.2 "$c"
assert_contains "$ERR" "10.1.2" "--add-host with a bad address"
expect_fail kiln build --add-host "db local:10.1.2.3" "$c"
expect_fail kiln build --label =v "$c"
assert_contains "$ERR" "=v" "--label without a key"
expect_fail kiln build --network bridge "$c"
assert_contains "$ERR" "bridge" "--network bridge"
