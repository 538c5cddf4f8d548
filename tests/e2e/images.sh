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
