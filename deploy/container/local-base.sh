#!/usr/bin/env bash
# Builds a stand-in for the python:3.11-slim base from Debian packages, for machines that reach Debian's archive
# but no container registry. The Dockerfile only needs `python` (3.11) with venv and pip on PATH, and useradd.
set -euo pipefail
tag=${1:?usage: local-base.sh TAG}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
  bookworm "$root" "$mirror" >&2
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
tar -C "$root" -c . | podman import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  - "$tag" >&2
echo "$tag"
