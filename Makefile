# A newcomer's two commands: `make run` and `make test`. Each sets up everything it needs first.
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(or $(shell command -v uv 2>/dev/null),.tools/bin/uv)
VENV := .venv
export UV_PYTHON := $(shell command -v $(PYTHON))
export UV_PYTHON_DOWNLOADS := never

.PHONY: setup run test lint format emulator openapi clean

setup: $(VENV)/.synced

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked
	@touch $@

run: setup
	$(VENV)/bin/python -m service dev

emulator: setup
	$(VENV)/bin/python -m service emulator --port 8090

test: setup lint
	$(VENV)/bin/python -m pytest

lint: setup
	$(VENV)/bin/ruff check service tests
	$(VENV)/bin/ruff format --check service tests

format: setup
	$(VENV)/bin/ruff format service tests
	$(VENV)/bin/ruff check --fix service tests

clean:
	rm -rf $(VENV) .tools .pytest_cache

# Regenerate the committed OpenAPI document after changing the API (a test fails while it drifts).
openapi: setup
	$(VENV)/bin/python -m service.openapi > openapi/openapi.json
