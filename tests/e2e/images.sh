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
  # TASK_IMAGE_LAYOUT: one built already (the cgroup-v2 VM's is built outside it, faster).
  if [ -n "${TASK_IMAGE_LAYOUT:-}" ]; then cp -r "$TASK_IMAGE_LAYOUT" "$WORK/layout"; else make_task_image "$WORK/layout" v1; fi
  REG="localhost:$BERTH_PORT"
  awsb ecr create-repository --repository-name box >/dev/null
  skopeo --insecure-policy copy --dest-tls-verify=false "oci:$WORK/layout:v1" "docker://$REG/box:v1" >/dev/null
  IMAGE="$REG/box:v1"
}

# python_image: an OCI layout (image `py`) of a minimal Debian bookworm with python3 and,
# from PyPI, the aws CLI v1 and boto3 (new enough to honour AWS_ENDPOINT_URL; Debian's
# are not). Built once, by mmdebstrap from the Debian mirror apt uses here, and cached
# outside the repository in $BERTH_IMAGE_CACHE/python-<hash of the recipe>; sets PY_LAYOUT.
# A build goes to a temporary directory renamed into place, so a failed or interrupted one
# leaves no cache behind; a lock keeps concurrent scripts from building it twice.
BERTH_IMAGE_CACHE="${BERTH_IMAGE_CACHE:-/var/cache/berth-test-images}"
python_image() {
  local key lock
  key="$(declare -f _python_image_build | sha256sum | cut -c1-16)"
  PY_LAYOUT="$BERTH_IMAGE_CACHE/python-$key"
  [ -d "$PY_LAYOUT" ] && return 0
  mkdir -p "$BERTH_IMAGE_CACHE"
  exec {lock}>"$BERTH_IMAGE_CACHE/.python.lock"
  flock "$lock"
  if [ ! -d "$PY_LAYOUT" ]; then
    rm -rf "$BERTH_IMAGE_CACHE"/.python-*.tmp # left by a build that was killed
    local tmp="$BERTH_IMAGE_CACHE/.python-$key.tmp" start=$SECONDS
    echo "# building the python test image into $PY_LAYOUT (once; a minute or two)" >&2
    command -v mmdebstrap >/dev/null || { echo "python_image: needs mmdebstrap (scripts/setup installs it)" >&2; exec {lock}>&-; return 1; }
    mkdir "$tmp"
    # Its own shell: errexit holds inside (it would not in a function called under `if`).
    if bash -euo pipefail -c "$(declare -f _python_image_build); _python_image_build \"\$1\"" _ "$tmp" >"$tmp/build.log" 2>&1; then
      mv -T "$tmp/layout" "$PY_LAYOUT"
      rm -rf "$tmp"
      echo "# python test image built in $((SECONDS - start))s: $(du -sh "$PY_LAYOUT" | cut -f1)" >&2
    else
      tail -20 "$tmp/build.log" >&2; rm -rf "$tmp"
      exec {lock}>&-; return 1
    fi
  fi
  exec {lock}>&-
}

# _python_image_build DIR: the recipe (its text is the cache key); DIR/layout gets the
# OCI layout.
_python_image_build() {
  local out="$1" work="$1/work" sources
  mkdir -p "$work"
  # The Debian bookworm sources apt uses on this host (mirror, -updates, -security).
  mapfile -t sources < <(apt-get indextargets --format '$(TARGET_OF) $(REPO_URI) $(RELEASE) $(COMPONENT)' \
    'Created-By: Packages' 'Origin: Debian' | sort -u | grep -E '^deb [^ ]+ bookworm(-updates|-security)? main$' || true)
  [ ${#sources[@]} -gt 0 ] || sources=("deb http://deb.debian.org/debian bookworm main")
  # aws-cli 1.45 is the last v1 that shares botocore with boto3 (1.46 bundles its own copy,
  # with uncompressed models: 120 MB more).
  # The wheels come from PyPI through this host's pip (its index, proxy and CA settings),
  # for the image's Python (bookworm's 3.11) on this glibc; pip then installs them in the
  # chroot offline, running from its own wheel so it is not itself installed in the image.
  env -u PIP_FIND_LINKS python3 -m pip download -q --no-deps --only-binary=:all: -d "$work/wheels" pip==26.3
  env -u PIP_FIND_LINKS python3 -m pip download -q --only-binary=:all: --python-version 3.11 \
    --implementation cp --abi cp311 -d "$work/wheels" awscli==1.45.64 boto3==1.43.64
  # merged-usr: /usr merged by the hook, not by the usrmerge package (which pulls in perl).
  mmdebstrap --variant=minbase --mode=root --include=python3 --skip=output/dev \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --customize-hook="cp -r $work/wheels \"\$1/tmp/wheels\"" \
    --customize-hook='chroot "$1" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root python3 /tmp/wheels/pip-26.3-py3-none-any.whl/pip install -q --no-index --find-links /tmp/wheels --no-cache-dir --break-system-packages --root-user-action=ignore awscli==1.45.64 boto3==1.43.64' \
    --customize-hook='rm -rf "$1"/tmp/* "$1"/var/log/* "$1"/var/cache/debconf/*-old "$1"/var/lib/dpkg/*-old "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    bookworm "$work/rootfs.tar" "${sources[@]}" </dev/null
  umoci init --layout "$out/layout" >/dev/null
  umoci new --image "$out/layout:py" >/dev/null
  umoci raw add-layer --image "$out/layout:py" "$work/rootfs.tar" >/dev/null
  umoci config --image "$out/layout:py" --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --config.env LANG=C.UTF-8 --config.cmd python3 >/dev/null
  umoci gc --layout "$out/layout"
  rm -rf "$work"
}
