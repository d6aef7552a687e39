# Two commands: `make run` (gateway + example agents) and `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install frameworks image-tools image run test lint typecheck pytest proto proto-release clean config-reference image-lock bench bench-quick

$(STAMP): pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]' -e clients/python
	touch $(STAMP)

install: $(STAMP)

# The framework test servers' environments (.venvs/<framework>, pinned in tests/frameworks/*/requirements.txt,
# and the TypeScript servers' node_modules, `npm ci` from tests/frameworks/{mastra,mcp}/package-lock.json),
# built here so installing happens in the install step; unchanged ones are reused. Offline, their tests skip
# (under CI=true a failed build fails).
frameworks: install
	$(PY) -m tests.frameworks.envs || [ "$$CI" != "true" ]

# podman, debootstrap and runc, for the container image test (tests/deploy/test_image.py): installed
# with apt-get when missing and this is root. Otherwise that test skips (under CI=true it fails).
image-tools: install
	$(PY) scripts/build_image.py --tools || [ "$$CI" != "true" ]

# The image without Docker or registry access: podman on a debootstrapped Debian base
# (scripts/build_image.py). With Docker: docker build -f deploy/Dockerfile -t agent-gateway:0.1.0 .
image: image-tools
	$(PY) scripts/build_image.py --tag agent-gateway:0.1.0

run: install
	$(PY) -m examples.run

lint: install
	$(VENV)/bin/ruff check gateway clients examples tests scripts bench
	$(VENV)/bin/ruff format --check gateway clients bench
	$(VENV)/bin/lint-imports

typecheck: install
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --strict scripts/build_image.py scripts/image_lock.py

pytest: install frameworks image-tools
	$(PY) -m pytest

test: lint typecheck pytest

# The benchmark suite (bench/README.md): a few minutes on 2 cores; wrk, h2load and
# nginx are installed with apt-get when missing and allowed (skipped otherwise).
bench: install
	$(PY) -m bench.tools
	$(PY) -m bench

bench-quick: install
	$(PY) -m bench --quick

# Python stubs (grpcio-tools) and TypeScript stubs (protoc-gen-es, from the pinned npm project
# tests/frameworks/buf), both beside the .proto files; the tests fail when either is stale.
proto: frameworks
	$(PY) scripts/gen_proto.py
	tests/frameworks/buf/node_modules/.bin/buf generate

# After a release: the proto as released becomes the baseline `buf breaking` checks against.
proto-release: frameworks
	tests/frameworks/buf/node_modules/.bin/buf build -o proto/released/v$(VERSION).binpb

config-reference: install
	$(PY) scripts/config_reference.py > docs/config-reference.md

# The exact runtime dependency set baked into the image; run on Python 3.11 (the image's).
image-lock:
	$(PYTHON) scripts/image_lock.py

clean:
	rm -rf $(VENV) .venvs .mypy_cache .ruff_cache .pytest_cache tests/frameworks/mastra/node_modules tests/frameworks/buf/node_modules tests/frameworks/mcp/node_modules
