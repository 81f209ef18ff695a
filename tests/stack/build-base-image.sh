#!/usr/bin/env bash
# tests/stack/build-base-image.sh — make a local stand-in for python:3.12-slim-bookworm.
#
# No image registry is reachable on the development and CI machines, so the stack suite builds
# the server image FROM a Debian bookworm root filesystem made here with debootstrap
# (python3, python3-venv, ca-certificates) and loaded with `docker import`.
#
# The rootfs tarball is cached OUTSIDE the repository clone ($STACK_CACHE_DIR, default
# /var/cache/qdrant-mcp-stack), so only the first run on a machine pays for debootstrap.
# Idempotent. Prints the image reference on stdout (last line); progress goes to stderr.
#
# Env: STACK_CACHE_DIR, BASE_IMAGE (tag to create, default qdrant-mcp-stack/base:bookworm-py3),
#      DEBIAN_MIRROR (default: the first URIs: line of /etc/apt/sources.list.d/debian.sources,
#      else http://deb.debian.org/debian), REBUILD_BASE=1 to ignore the cache.
set -euo pipefail

CACHE_DIR=${STACK_CACHE_DIR:-/var/cache/qdrant-mcp-stack}
IMAGE=${BASE_IMAGE:-qdrant-mcp-stack/base:bookworm-py3}
TARBALL=$CACHE_DIR/base-bookworm-py3.tar.gz
PACKAGES=python3,python3-venv,ca-certificates

log() { echo "build-base-image: $*" >&2; }
# debootstrap (and the files it makes, owned by root) need root: use sudo when not root.
as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo -n "$@"; fi
}

if [[ -z ${DEBIAN_MIRROR:-} ]]; then
  DEBIAN_MIRROR=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
fi

if [[ ${REBUILD_BASE:-0} == 1 ]]; then
  rm -f "$TARBALL"
  docker image rm -f "$IMAGE" >/dev/null 2>&1 || true
fi

if docker image inspect "$IMAGE" >/dev/null 2>&1 && [[ -f $TARBALL ]]; then
  log "reusing image $IMAGE"
  echo "$IMAGE"
  exit 0
fi

as_root mkdir -p "$CACHE_DIR"
if [[ ! -s $TARBALL ]]; then
  command -v debootstrap >/dev/null 2>&1 || {
    log "ERROR: debootstrap missing (run scripts/docker-engine)"
    exit 1
  }
  root=$(as_root mktemp -d "$CACHE_DIR/rootfs.XXXXXX")
  trap 'as_root rm -rf "$root"' EXIT
  log "debootstrap bookworm from $DEBIAN_MIRROR (minbase + $PACKAGES) ..."
  start=$SECONDS
  as_root debootstrap --variant=minbase --include="$PACKAGES" bookworm "$root" "$DEBIAN_MIRROR" \
    2>&1 | as_root tee "$CACHE_DIR/debootstrap.log" >/dev/null || {
    tail -n 30 "$CACHE_DIR/debootstrap.log" >&2
    exit 1
  }
  # Slim it down like the official slim images: no apt lists, caches, docs or man pages.
  # shellcheck disable=SC2016 # $1 is the inner bash's argument, expanded there
  as_root bash -c 'shopt -s nullglob; cd "$1" && rm -rf var/lib/apt/lists/* var/cache/apt/*.bin \
    var/cache/apt/archives/*.deb usr/share/doc/* usr/share/man/* usr/share/info/* var/log/*.log debootstrap' _ "$root"
  as_root tar -C "$root" --numeric-owner -czf "$TARBALL.tmp" .
  as_root mv "$TARBALL.tmp" "$TARBALL"
  log "debootstrap + tar took $((SECONDS - start))s"
fi

log "docker import $TARBALL -> $IMAGE"
docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  "$TARBALL" "$IMAGE" >/dev/null
echo "$IMAGE"
