#!/usr/bin/env bash
# Runs the built image the way the cluster does (uid 10001, entry point `python -m service serve`), checks the
# probes and the image's HEALTHCHECK command, and fails if the process wrote anything to the container's root.
# Uses buildah's chroot isolation, so it needs no container daemon and no runtime privileges beyond root.
set -euo pipefail
image=${1:?usage: smoke.sh IMAGE}
port=${SMOKE_PORT:-18000}
ctr=$(buildah from --pull-never "$image")
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  buildah rm "$ctr" >/dev/null
}
trap cleanup EXIT

# The image has no in-process store (fakeredis is a test and local-stack extra): point it at an address where no Redis
# answers; the service still serves and /readyz says 200 with "redis": "unavailable".
buildah run --isolation chroot --network host --user 10001:10001 \
  --env REDIS_URL=redis://127.0.0.1:1/0 --env AUTH_JWT_SECRET=smoke-test-secret-0123456789abcdef --env LOG_FORMAT=console \
  "$ctr" -- python -m service serve --host 127.0.0.1 --port "$port" >/dev/null 2>&1 &
server=$!

probe() { python3 -c "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())" "$1"; }
for _ in $(seq 50); do probe "http://127.0.0.1:$port/livez" >/dev/null 2>&1 && break; sleep 0.2; done
echo "livez:  $(probe "http://127.0.0.1:$port/livez")"
echo "readyz: $(probe "http://127.0.0.1:$port/readyz")"
# The HEALTHCHECK's own command, run inside the image as the app user.
buildah run --isolation chroot --network host --user 10001:10001 "$ctr" -- \
  python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:$port/livez', timeout=2).status != 200)"
echo "healthcheck command: ok"
kill "$server" && wait "$server" 2>/dev/null || true
server=

changes=$(podman diff "$ctr")
if [ -n "$changes" ]; then
  echo "the service wrote to its root filesystem (it must run read-only):" >&2
  echo "$changes" >&2
  exit 1
fi
echo "root filesystem untouched: ok"
