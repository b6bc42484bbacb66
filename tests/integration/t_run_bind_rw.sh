#!/bin/bash
# RUN --mount=type=bind,rw: the step may write to the mount, the writes are
# thrown away, and the context never changes (BuildKit semantics).
source "$IT_DIR/lib.sh"

make_busybox_base
c=$T/ctx
put "$c/f.txt" content
mkdir -p "$c/d"
put "$c/d/g.txt" g
cat >"$c/Dockerfile" <<'DF'
FROM localhost/busybox:latest
RUN --mount=type=bind,source=d,target=/src,rw touch /src/new && echo x >> /src/g.txt && cat /src/g.txt && ls /src
RUN --mount=type=bind,source=f.txt,target=/f,rw echo y >> /f && cat /f
RUN --mount=type=bind,source=d,target=/ro ls /ro && if touch /ro/x 2>/dev/null; then echo writable; fi
DF
before=$(cd "$c" && find . -printf '%p %s %T@\n' | sort)
kiln build --progress=plain -t localhost/rw:1 "$c" >"$T/b.log" 2>&1 || { cat "$T/b.log"; fail "build failed"; }
log=$(cat "$T/b.log")
assert_match "$log" '\| new$' "the write is seen inside the step"
assert_match "$log" '\| y$' "a file bind is writable"
assert_not_contains "$log" "| writable" "a bind without rw"
after=$(cd "$c" && find . -printf '%p %s %T@\n' | sort)
assert_eq "$before" "$after" "the context after the build"
kiln run --rm localhost/rw:1 sh -c 'test ! -e /src/new && test ! -e /f' || fail "rw bind writes leaked into the image"
kiln store check
[ -z "$(ls -A "$KILN_ROOT/tmp")" ] || fail "scratch left in the store: $(ls "$KILN_ROOT/tmp")"
