# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
CLI    := $(VENV)/bin/sectionrank
DEMO   := .demo

.PHONY: demo test lint bench wrk chromium clean

$(VENV)/.created:
	$(PYTHON) -c 'import sys; sys.exit("Python >= 3.11 is required, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	touch $@

$(VENV)/.installed: $(VENV)/.created pyproject.toml
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.created pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

# The demo trains with one tree size (15 leaves) instead of the shipped search over 7, 15 and 31: on this
# world the three sizes' validation NDCG@10 differ by at most 0.0015 for every model, and the search is two
# thirds of the training time. The consolidated model is compared, not served: it is not compiled.
DEMO_RANKER := $(DEMO)/ranker.toml
# The port the demo serves on: `make demo PORT=8080`.
PORT ?= 8000

demo: $(VENV)/.installed
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	printf '[lightgbm]\nnum_leaves = [15]\n' > $(DEMO_RANKER)
	$(CLI) sections
	$(CLI) simulate --world default --requests 100000 --seed 0 --out $(DEMO)/sim
	$(CLI) train --design base --log $(DEMO)/sim/log.db --ranker-config $(DEMO_RANKER) --out $(DEMO)/models/base
	SECTIONRANK_COMPILED=0 $(CLI) train --design consolidated --log $(DEMO)/sim/log.db \
		--ranker-config $(DEMO_RANKER) --out $(DEMO)/models/consolidated
	$(CLI) train --design independent --log $(DEMO)/sim/log.db --ranker-config $(DEMO_RANKER) \
		--out $(DEMO)/models/independent
	$(CLI) evaluate $(DEMO)/models/base $(DEMO)/models/consolidated $(DEMO)/models/independent \
		--log $(DEMO)/sim/log.db --ranker-config $(DEMO_RANKER) --out $(DEMO)/models/comparison.json
	$(CLI) learn --log $(DEMO)/sim/log.db --out $(DEMO)/policy
	$(CLI) policy-value --world default --seed 0 --policy $(DEMO)/policy --requests 10000
	$(CLI) compare --world default --seeds 5 --out $(DEMO)/compare --quick
	$(CLI) load-catalog --store $(DEMO)/store.db $(DEMO)/sim/catalog.parquet
	$(CLI) load-users --store $(DEMO)/store.db $(DEMO)/sim/users.parquet
	$(CLI) serve --store $(DEMO)/store.db --log $(DEMO)/served.db --models $(DEMO)/models \
		--policy $(DEMO)/policy --host 127.0.0.1 --port $(PORT) --workers 2 \
		--note "comparison report: $(DEMO)/compare/report.html (and report.md, results.json beside it)"

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint chromium
	$(VENV)/bin/pytest -q

# The service benchmark drives the HTTP API with wrk (Debian package), installed here when missing.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

wrk:
	@command -v wrk >/dev/null || { echo "installing wrk (Debian package) for the service benchmark"; \
		$(SUDO) apt-get install -y -qq wrk >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk >/dev/null; }; }

# The browser check of the comparison report (tests/simulator/test_report_browser.py) drives headless
# Chromium through its driver (Debian packages chromium and chromium-driver), installed here when missing.
chromium:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		echo "installing chromium and chromium-driver (Debian packages) for the report's browser check"; \
		$(SUDO) apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium chromium-driver >/dev/null; }; }

bench: $(VENV)/.installed-dev wrk
	$(PY) -m benchmarks.run --out docs/BENCHMARKS.md

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .ruff_cache
