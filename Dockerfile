# syntax=docker/dockerfile:1
# The card onboarding BFF: `python -m service serve` as a non-root user on a read-only root filesystem.
#
# A release build pins the base by digest as well, e.g.
#   --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest from your registry mirror>
# `make image` passes a locally built stand-in when no container registry is reachable.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# checkov:skip=CKV_DOCKER_7: the base is a build argument whose default is a pinned tag
FROM ${PYTHON_IMAGE} AS builder
ARG UV_VERSION=0.13.9
ENV UV_PYTHON_DOWNLOADS=never \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    UV_NO_CACHE=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# Behind a TLS-inspecting proxy, pass its CA bundle as the build secret `ca-bundle` (`make image` passes the
# host's trust store): it is mounted for the download steps only and never stored in a layer.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# uv itself lives in a throw-away venv of this stage; only the app's venv reaches the runtime image.
RUN --mount=type=secret,id=ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi \
    && python -m venv /opt/uv \
    && /opt/uv/bin/pip install --no-cache-dir "uv==${UV_VERSION}"
WORKDIR /app
# Dependencies first: this layer is rebuilt only when the lock file changes, not on every code change.
# --no-dev and no --extra: no test tool and no fakeredis (the `memory` extra); tests/test_packaging.py checks this
# selection against the lock.
COPY pyproject.toml uv.lock ./
RUN --mount=type=secret,id=ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export SSL_CERT_FILE=/run/secrets/ca-bundle; fi \
    && /opt/uv/bin/uv sync --locked --no-dev --no-install-project --python "$(command -v python)"
COPY service/ ./service/
# Bytecode at build time: the root filesystem is read-only at run time, so nothing could be cached later.
RUN .venv/bin/python -m compileall -q --invalidation-mode unchecked-hash service

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LOG_FORMAT=json
RUN groupadd --gid 10001 app \
    && useradd --uid 10001 --gid app --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin app
WORKDIR /app
# Owned by root and not writable by the app user: the code cannot be changed by the process that runs it.
COPY --from=builder /app/.venv /app/.venv
COPY --from=builder /app/service /app/service
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/livez', timeout=2).status != 200)"]
ENTRYPOINT ["python", "-m", "service"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
