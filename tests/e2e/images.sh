# Build small OCI images locally (no registry on the internet is reachable): busybox from
# Debian's busybox-static, laid out with umoci. Source it after lib.sh.

# make_image DIR TAG [FILE-CONTENT]: an OCI layout at DIR with image TAG; busybox plus
# /etc/berth-tag holding FILE-CONTENT (so different tags have different digests).
make_image() {
  local dir="$1" tag="$2" content="${3:-$2}" bundle
  bundle="$(mktemp -d)"
  [ -d "$dir" ] || umoci init --layout "$dir" >/dev/null
  umoci new --image "$dir:$tag" >/dev/null
  umoci unpack --rootless --image "$dir:$tag" "$bundle/b" >/dev/null 2>&1
  mkdir -p "$bundle/b/rootfs/bin" "$bundle/b/rootfs/etc"
  cp "$(command -v busybox)" "$bundle/b/rootfs/bin/busybox"
  echo "$content" > "$bundle/b/rootfs/etc/berth-tag"
  umoci repack --image "$dir:$tag" "$bundle/b" >/dev/null
  umoci config --image "$dir:$tag" --config.cmd /bin/busybox --config.cmd echo --config.cmd hi >/dev/null
  rm -rf "$bundle"
}

# make_task_image DIR TAG: an image to run tasks from: busybox with its applets linked
# in /bin (so `sh`, `sleep`, `mount` ... exist), /etc/passwd with a `www` user, and
# /bin/probe, the static seccomp probe from crates/berth-runtime/data/probe.c.
make_task_image() {
  local dir="$1" tag="$2" bundle root
  bundle="$(mktemp -d)"; root="$bundle/b/rootfs"
  [ -d "$dir" ] || umoci init --layout "$dir" >/dev/null
  umoci new --image "$dir:$tag" >/dev/null
  umoci unpack --rootless --image "$dir:$tag" "$bundle/b" >/dev/null 2>&1
  mkdir -p "$root/bin" "$root/etc" "$root/tmp"
  cp "$(command -v busybox)" "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/tmp:/bin/sh\n' > "$root/etc/passwd"
  printf 'root:x:0:\nwww:x:33:\n' > "$root/etc/group"
  gcc -static -O2 -pthread -o "$root/bin/probe" "$ROOT/crates/berth-runtime/data/probe.c"
  umoci repack --image "$dir:$tag" "$bundle/b" >/dev/null
  umoci config --image "$dir:$tag" --config.cmd /bin/sh --config.cmd -c --config.cmd 'echo image default' >/dev/null
  rm -rf "$bundle"
}

# push_task_image: build the task image (make_task_image), push it to Berth's registry as
# box:v1 and set WORK, REG and IMAGE. Needs a running berth (start_berth).
push_task_image() {
  WORK="$(mktemp -d)"
  make_task_image "$WORK/layout" v1
  REG="localhost:$BERTH_PORT"
  awsb ecr create-repository --repository-name box >/dev/null
  skopeo --insecure-policy copy --dest-tls-verify=false "oci:$WORK/layout:v1" "docker://$REG/box:v1" >/dev/null
  IMAGE="$REG/box:v1"
}
