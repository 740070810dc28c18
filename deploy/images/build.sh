#!/usr/bin/env bash
# Build the flock-manager and flock-agent images without a registry or a Dockerfile:
#   1. a Debian root filesystem from Debian packages (debootstrap --variant=minbase with
#      python3, python3-venv, ca-certificates), cached by this script's hash;
#   2. Flock's wheel and the wheels of its dependencies, fetched on this host for the
#      root filesystem's Python, then installed into /opt/flock/venv inside it offline
#      (pip --no-index in a chroot);
#   3. `docker import` of that tree twice, with the ENTRYPOINT/CMD/ENV of each program.
# The engine to import into is the docker CLI's: DOCKER_HOST (and DOCKER_TLS_VERIFY...).
#
# Usage: deploy/images/build.sh [--tag TAG] [--wheel FILE]
#   --tag TAG     image tag (default: Flock's version, e.g. 0.1.0)
#   --wheel FILE  install this Flock wheel (default: build one from this checkout)
# Environment:
#   FLOCK_BUILD_CACHE  cache folder (default /var/tmp/flock-build-cache)
#   DEBIAN_MIRROR      (default http://deb.debian.org/debian)
#   PYTHON             host Python with pip (default: the checkout's .venv, else python3)
# Needs root (debootstrap, chroot), debootstrap, docker (the CLI), and pip on the host.
set -euo pipefail

SUITE=bookworm
INCLUDE=python3,python3-venv,ca-certificates
SELF="$(readlink -f "$0")"
HERE="$(dirname "$SELF")"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE="${FLOCK_BUILD_CACHE:-/var/tmp/flock-build-cache}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

die() { echo "build.sh: error: $*" >&2; exit 1; }
say() { echo "== $*" >&2; }

TAG=""
WHEEL=""
while (($#)); do
  case "$1" in
    --tag) (($# >= 2)) || die "--tag needs a value, e.g. --tag 0.1.0"; TAG="$2"; shift 2 ;;
    --tag=*) TAG="${1#--tag=}"; shift ;;
    --wheel) (($# >= 2)) || die "--wheel needs a file"; WHEEL="$2"; shift 2 ;;
    --wheel=*) WHEEL="${1#--wheel=}"; shift ;;
    -h|--help) sed -n '2,18p' "$SELF" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1': usage: build.sh [--tag TAG] [--wheel FILE]" ;;
  esac
done
if [[ -n "$TAG" && ! "$TAG" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]]; then
  die "invalid --tag '$TAG': letters, digits, '_', '.' and '-' (not first), at most 128"
fi
if [[ -n "$WHEEL" ]]; then
  [[ -f "$WHEEL" && "$(basename "$WHEEL")" == flock-*.whl ]] \
    || die "--wheel '$WHEEL' is not a flock-*.whl file: build one with 'python -m build'"
  WHEEL="$(readlink -f "$WHEEL")"
fi
[[ $EUID -eq 0 ]] || die "run as root: debootstrap and chroot need it"
for tool in debootstrap docker chroot tar sha256sum flock; do
  command -v "$tool" >/dev/null || die "'$tool' not found: apt-get install debootstrap docker.io"
done
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$REPO/.venv/bin/python" ]]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python3; fi
fi
"$PYTHON" -m pip --version >/dev/null 2>&1 \
  || die "'$PYTHON -m pip' does not work: install python3-pip or set PYTHON"
docker version >/dev/null 2>&1 \
  || die "no Docker Engine answers at ${DOCKER_HOST:-the default socket}: set DOCKER_HOST"

# Our corner of the cache: the root filesystem tar, the .debs it was made from (so that
# a change to this script does not download them again) and the work folders.
STORE="$CACHE/images"
mkdir -p "$STORE/debs"
WORK="$(mktemp -d "$STORE/work.XXXXXX")"
cleanup() {
  # debootstrap mounts /proc and /sys in the target; never delete through a mount.
  local mounts
  mounts="$(awk -v w="$WORK" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r)"
  for m in $mounts; do umount -l "$m" 2>/dev/null || true; done
  rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# --- 1. the root filesystem, cached by this script's hash ---------------------------
KEY="$(sha256sum "$SELF" | cut -c1-16)"
ROOTFS="$STORE/rootfs-$SUITE-$(uname -m)-$KEY.tar"
# One debootstrap at a time per cache: a second build waits, then finds the tar.
exec 9>"$STORE/rootfs.lock"
flock 9
if [[ -f "$ROOTFS" ]]; then
  say "root filesystem: cached $ROOTFS"
else
  say "root filesystem: debootstrap --variant=minbase $SUITE from $MIRROR (once per script change)"
  base="$WORK/base"
  debootstrap --variant=minbase --include="$INCLUDE" --cache-dir="$STORE/debs" \
    "$SUITE" "$base" "$MIRROR" \
    >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
  # No docs, man pages, translations or package lists: the image only runs Flock.
  rm -rf "$base"/usr/share/{doc,man,info,locale,lintian}/* "$base"/var/lib/apt/lists/* \
    "$base"/var/cache/apt/* "$base"/var/cache/debconf/*-old "$base"/var/log/*.log
  cat >"$base/etc/dpkg/dpkg.cfg.d/01-flock-nodoc" <<'EOF'
path-exclude=/usr/share/doc/*
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
EOF
  tar --numeric-owner -C "$base" -cf "$ROOTFS.$$" .
  mv -f "$ROOTFS.$$" "$ROOTFS"
  rm -rf --one-file-system "$base"
  find "$STORE" -maxdepth 1 -name "rootfs-$SUITE-$(uname -m)-*.tar" ! -name "$(basename "$ROOTFS")" \
    -delete
fi
root="$WORK/root"
mkdir -p "$root"
tar --numeric-owner -C "$root" -xf "$ROOTFS"
exec 9>&-   # unlocked once extracted: another script version may now replace the tar
in_root() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 chroot "$root" "$@"; }
PYVER="$(in_root python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
GLIBC="$(in_root getconf GNU_LIBC_VERSION | awk '{ print $2 }')"   # e.g. 2.36

# --- 2. the wheels, fetched here for the root filesystem's Python and glibc -----------
wheels="$WORK/wheels"
mkdir -p "$wheels"
if [[ -n "$WHEEL" ]]; then
  cp "$WHEEL" "$wheels/"
else
  say "building Flock's wheel from $REPO"
  # From a copy: an in-tree build leaves build/lib behind, whose stale files would end up
  # in later wheels. The copy keeps .git, for the revision the wheel records.
  src="$WORK/src"
  mkdir -p "$src"
  # (tar's status 1, "file changed as we read it", is git at work meanwhile: fine.)
  { tar -C "$REPO" --exclude=./.venv --exclude=./build --exclude=./dist \
      --exclude='*.egg-info' --exclude=__pycache__ --exclude=.pytest_cache \
      --exclude=.hypothesis --exclude=.ruff_cache --warning=no-file-changed -cf - . \
      || (($? == 1)); } | tar -C "$src" -xf -
  "$PYTHON" -m pip wheel -q --no-deps -w "$wheels" "$src" >"$WORK/wheel.log" 2>&1 \
    || { tail -n 20 "$WORK/wheel.log" >&2; die "building the wheel failed (log above)"; }
fi
flock_wheel="$(ls "$wheels"/flock-*.whl)"
VERSION="$(basename "$flock_wheel" | cut -d- -f2)"
TAG="${TAG:-$VERSION}"
platforms=()
arch="$(uname -m)"
for ((minor = ${GLIBC#*.}; minor >= 17; minor--)); do
  platforms+=(--platform "manylinux_2_${minor}_$arch")
done
platforms+=(--platform "manylinux2014_$arch" --platform "manylinux2010_$arch"
            --platform "manylinux1_$arch")
say "dependencies: binary wheels for CPython $PYVER, glibc $GLIBC, $arch"
"$PYTHON" -m pip download -q -d "$wheels" --only-binary=:all: --implementation cp \
  --python-version "$PYVER" --abi "cp${PYVER/./}" "${platforms[@]}" "$flock_wheel" \
  >"$WORK/download.log" 2>&1 \
  || { tail -n 20 "$WORK/download.log" >&2; die "fetching the dependencies' wheels failed"; }

# --- 3. Flock into /opt/flock/venv, offline, inside the root filesystem ---------------
say "installing Flock $VERSION into /opt/flock/venv (offline, in a chroot)"
mkdir -p "$root/tmp/wheels"
cp "$wheels"/*.whl "$root/tmp/wheels/"
in_root python3 -m venv /opt/flock/venv
in_root /opt/flock/venv/bin/pip install -q --no-index --no-cache-dir --disable-pip-version-check \
  --find-links /tmp/wheels "/tmp/wheels/$(basename "$flock_wheel")"
rm -rf "$root/tmp/wheels" "$root/root/.cache"
LINE="$(in_root /opt/flock/venv/bin/flock --version)"   # e.g. flock 0.1.0 (git 1a2b3c4)
REVISION="$(sed -n 's/.*(git \(.*\))$/\1/p' <<<"$LINE")"
mkdir -p "$root/etc/flock/certs"

# --- 4. two images from the same tree (one layer, stored once) ------------------------
image="$WORK/image.tar"
tar --numeric-owner -C "$root" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
  -cf "$image" .
common=(
  -c "ENV PATH=/opt/flock/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
  -c "ENV LANG=C.UTF-8"
  -c "ENV PYTHONUNBUFFERED=1"
  # --tlsverify without file flags reads ca.pem, cert.pem and key.pem from here.
  -c "ENV DOCKER_CERT_PATH=/etc/flock/certs"
  -c "LABEL org.opencontainers.image.version=$VERSION"
  -c "LABEL org.opencontainers.image.revision=$REVISION"
  -c "WORKDIR /"
)
say "docker import flock-manager:$TAG"
docker import -m "$LINE" "${common[@]}" \
  -c "LABEL org.opencontainers.image.title=flock-manager" -c "EXPOSE 3376" \
  -c 'ENTRYPOINT ["/opt/flock/venv/bin/flock", "manage"]' -c 'CMD ["--help"]' \
  "$image" "flock-manager:$TAG" >/dev/null
say "docker import flock-agent:$TAG"
docker import -m "$LINE" "${common[@]}" \
  -c "LABEL org.opencontainers.image.title=flock-agent" -c "EXPOSE 4000 4001" \
  -c 'ENTRYPOINT ["/opt/flock/venv/bin/flock", "join"]' -c 'CMD ["--help"]' \
  "$image" "flock-agent:$TAG" >/dev/null
echo "flock-manager:$TAG"
echo "flock-agent:$TAG"
