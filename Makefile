# sevrouter: `make run` to try it, `make test` to check it. Both install what is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DATA := .sevrouter
TOKEN_FILE := $(DATA)/webhook-token
APT_GET := DEBIAN_FRONTEND=noninteractive apt-get -y -q

.PHONY: run test lint pytest bench check install system-deps clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# Debian packages: redis-server (always); prometheus-alertmanager and redis-sentinel for the
# end-to-end tests and the benchmark.
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	if [ "$(WITH_ALERTMANAGER)" = 1 ]; then \
	  command -v prometheus-alertmanager >/dev/null || missing="$$missing prometheus-alertmanager"; \
	  command -v redis-sentinel >/dev/null || missing="$$missing redis-sentinel"; fi; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing"; $(APT_GET) update >/dev/null && $(APT_GET) install$$missing >/dev/null; \
	  else \
	    echo "missing:$$missing. Install them (Debian/Ubuntu: sudo apt-get install$$missing)," \
	         "or set REDIS_URL to an existing Redis for 'make run'."; exit 1; \
	  fi; \
	fi

$(TOKEN_FILE):
	@mkdir -p $(DATA)
	@umask 077; $(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(32))' > $@
	@echo "generated a webhook token in $@"

# Starts Redis (unless REDIS_URL is set), the receiver, a worker and rq's scheduler.
run: install $(TOKEN_FILE)
	@if [ -z "$$REDIS_URL" ]; then $(MAKE) --no-print-directory system-deps; fi
	SEVROUTER_WEBHOOK_TOKEN="$${SEVROUTER_WEBHOOK_TOKEN:-$$(cat $(TOKEN_FILE))}" \
	SEVROUTER_TOKEN_FILE="$(abspath $(TOKEN_FILE))" \
	SEVROUTER_LOG_FORMAT="$${SEVROUTER_LOG_FORMAT:-console}" \
	$(BIN)/sevrouter run --rules rules --host "$${HOST:-127.0.0.1}" --port "$${PORT:-9095}"

test: install
	@$(MAKE) --no-print-directory system-deps WITH_ALERTMANAGER=1
	$(MAKE) --no-print-directory lint
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check router tests bench
	$(BIN)/ruff format --check router tests bench
	$(BIN)/mypy

check: install
	$(BIN)/sevrouter check rules

bench: install
	@$(MAKE) --no-print-directory system-deps WITH_ALERTMANAGER=1
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) $(DATA) .pytest_cache .mypy_cache .ruff_cache

# --- Deployment: the container image and the Helm chart (docs/deploy.md) ----------------------
.PHONY: deploy-check chart-rules image
IMAGE ?= sevrouter
IMAGE_VERSION = $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

# hadolint, the image's install script in a temp virtualenv, helm lint and every rendered
# manifest validated against Kubernetes 1.30 (also part of `make test`).
deploy-check: install
	$(BIN)/pytest -q tests/deploy

# The chart ships a copy of rules/ as its default rules (helm cannot read outside the chart).
chart-rules:
	rm -f helm/sevrouter/files/rules/*.yaml
	cp rules/*.yaml helm/sevrouter/files/rules/

# Needs a Docker engine (BuildKit).
image:
	docker build -t $(IMAGE):$(IMAGE_VERSION) --build-arg VERSION=$(IMAGE_VERSION) \
	  --build-arg REVISION="$$(git rev-parse HEAD)" \
	  --build-arg CREATED="$$(date -u +%Y-%m-%dT%H:%M:%SZ)" .
