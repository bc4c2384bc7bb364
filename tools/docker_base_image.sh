#!/usr/bin/env bash
# A Docker base image for plugin images, made from Debian packages alone (for machines that reach no container
# registry): a minimal root filesystem of this machine's Debian release with python3 and python3-venv, made by
# debootstrap and put in with `docker import`. Usage: tools/docker_base_image.sh [TAG]; TAG defaults to
# pymemri-base:<release>, and the tag is printed last. Does nothing when the tag exists. Needs root, debootstrap
# and a Docker daemon; DEBIAN_MIRROR chooses the mirror.
set -euo pipefail
# shellcheck disable=SC1091
. /etc/os-release
[ "${ID:-}" = debian ] && [ -n "${VERSION_CODENAME:-}" ] || { echo "Error: this builds from Debian packages, but this machine runs ${PRETTY_NAME:-an unknown system}" >&2; exit 1; }
tag=${1:-pymemri-base:$VERSION_CODENAME}
if docker image inspect "$tag" >/dev/null 2>&1; then echo "$tag"; exit 0; fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
echo "Building the base image $tag from Debian $VERSION_CODENAME (debootstrap, a few minutes)" >&2
debootstrap --variant=minbase --include=python3,python3-venv "$VERSION_CODENAME" "$root" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >&2
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/*
tar -C "$root" --numeric-owner -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' --message "debootstrap --variant=minbase $VERSION_CODENAME with python3 and python3-venv" - "$tag" >&2
echo "$tag"
