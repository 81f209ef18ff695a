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

mkdir -p "$CACHE_DIR"
if [[ ! -s $TARBALL ]]; then
  command -v debootstrap >/dev/null 2>&1 || {
    log "ERROR: debootstrap missing (run scripts/docker-engine)"
    exit 1
  }
  root=$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  log "debootstrap bookworm from $DEBIAN_MIRROR (minbase + $PACKAGES) ..."
  start=$SECONDS
  debootstrap --variant=minbase --include="$PACKAGES" bookworm "$root" "$DEBIAN_MIRROR" \
    >"$CACHE_DIR/debootstrap.log" 2>&1 || {
    tail -n 30 "$CACHE_DIR/debootstrap.log" >&2
    exit 1
  }
  # Slim it down like the official slim images: no apt lists, caches, docs or man pages.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/log/*.log \
    "$root"/debootstrap
  tar -C "$root" --numeric-owner -czf "$TARBALL.tmp" .
  mv "$TARBALL.tmp" "$TARBALL"
  log "debootstrap + tar took $((SECONDS - start))s"
fi

log "docker import $TARBALL -> $IMAGE"
docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  "$TARBALL" "$IMAGE" >/dev/null
echo "$IMAGE"
