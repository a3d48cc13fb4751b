# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
CLI    := $(VENV)/bin/sectionrank
DEMO   := .demo

.PHONY: demo demo-models test lint bench wrk chromium clean live

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

# The comparison shares nothing with the rest of the demo (it simulates its own worlds) and the service does not
# need it, so the demo serves as soon as the models and the policy are ready and runs the comparison beside the
# service: its seeds in worker processes (`compare --jobs`), its output in $(DEMO)/compare.log, and one line
# among the service's when the report is written. It runs in its own process group (setsid), which stopping
# the service (Ctrl-C) stops whole, the comparison's worker processes with it.
# Fresh clone to the service answering /readyz, on an idle 2-core machine: 103 s, against 265 s when the
# comparison ran before serving (benchmarks/demo_time.sh; docs/performance.md, "make demo").
demo: $(VENV)/.installed
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	printf '[lightgbm]\nnum_leaves = [15]\n' > $(DEMO_RANKER)
	$(CLI) sections
	$(MAKE) --no-print-directory demo-models
	setsid sh -c '$(CLI) compare --world default --seeds 5 --out $(DEMO)/compare --quick > $(DEMO)/compare.log 2>&1 \
		&& echo "comparison done: $(DEMO)/compare/report.html (its verdict: tail $(DEMO)/compare.log)" \
		|| echo "comparison failed: see $(DEMO)/compare.log"' & comparison=$$!; \
	trap 'kill -TERM -- -$$comparison 2>/dev/null' EXIT INT TERM; \
	$(CLI) serve --store $(DEMO)/store.db --log $(DEMO)/served.db --models $(DEMO)/models \
		--policy $(DEMO)/policy --host 127.0.0.1 --port $(PORT) --workers 2 \
		--note "comparison report: $(DEMO)/compare/report.html once the comparison running beside the service is done (progress: $(DEMO)/compare.log)"

# The models' half of `make demo` (not meant to be run alone). The knob policy the demo serves is what the
# promotion gate ships: a candidate learned on the log's first 24 days, gated on the last 6 against the uniform
# fallback and the best logged fixed arm, then valued exactly on fresh requests of those 6 days beside the
# candidate itself. The default world runs 30 days from 2024-03-01; the gate's window starts on 2024-03-25 UTC.
DEMO_GATE_SINCE := 1711324800
demo-models:
	$(CLI) simulate --world default --requests 100000 --seed 0 --out $(DEMO)/sim
	$(CLI) train --design base --log $(DEMO)/sim/log.db --ranker-config $(DEMO_RANKER) --out $(DEMO)/models/base
	SECTIONRANK_COMPILED=0 $(CLI) train --design consolidated --log $(DEMO)/sim/log.db \
		--ranker-config $(DEMO_RANKER) --out $(DEMO)/models/consolidated
	$(CLI) train --design independent --log $(DEMO)/sim/log.db --ranker-config $(DEMO_RANKER) \
		--out $(DEMO)/models/independent
	$(CLI) evaluate $(DEMO)/models/base $(DEMO)/models/consolidated $(DEMO)/models/independent \
		--log $(DEMO)/sim/log.db --ranker-config $(DEMO_RANKER) --out $(DEMO)/models/comparison.json
	$(CLI) learn --log $(DEMO)/sim/log.db --out $(DEMO)/policy/candidates --until $(DEMO_GATE_SINCE)
	$(CLI) promote --log $(DEMO)/sim/log.db --policy-dir $(DEMO)/policy
	$(CLI) policy-value --world default --seed 0 --since $(DEMO_GATE_SINCE) --requests 10000 \
		--policy $(DEMO)/policy --policy $(DEMO)/policy/candidates
	$(CLI) load-catalog --store $(DEMO)/store.db $(DEMO)/sim/catalog.parquet
	$(CLI) load-users --store $(DEMO)/store.db $(DEMO)/sim/users.parquet

# `make live` (an extra, not a set-up command): the learning loop end to end over HTTP on context_flip, a world
# whose best knob arm depends on the user's segment. It serves with 2 workers from an empty policy directory
# (the fallback policy explores until the first version; policy_explore keeps 10% uniform exploration in
# whatever ships, so that the log keeps every arm for the gate), runs `sectionrank loop` beside the service and
# `sectionrank live` for a few minutes, and prints the exact value per section in the first quarter of the
# traffic (before learning) and the last (after). Everything is written to .live/ (docs/live.md).
LIVE          := .live
LIVE_PORT     ?= 8010
LIVE_REQUESTS ?= 20000
LIVE_RATE     ?= 100
LIVE_URL      := http://127.0.0.1:$(LIVE_PORT)

live: $(VENV)/.installed
	rm -rf $(LIVE) && mkdir -p $(LIVE)/policy
	printf '[lightgbm]\nnum_leaves = [15]\n' > $(LIVE)/ranker.toml
	$(CLI) simulate --world context_flip --requests 20000 --seed 0 --out $(LIVE)/sim
	$(CLI) train --design base --log $(LIVE)/sim/log.db --ranker-config $(LIVE)/ranker.toml --out $(LIVE)/models/base
	$(CLI) train --design independent --log $(LIVE)/sim/log.db --ranker-config $(LIVE)/ranker.toml \
		--out $(LIVE)/models/independent
	$(CLI) load-catalog --store $(LIVE)/store.db $(LIVE)/sim/catalog.parquet
	$(CLI) load-users --store $(LIVE)/store.db $(LIVE)/sim/users.parquet
	printf '%s\n' 'store = "store.db"' 'log = "served.db"' 'policy = "policy"' 'reward_wait_seconds = 10.0' \
		'policy_poll_seconds = 2.0' 'policy_explore = 0.1' \
		'[models]' 'base = "models/base"' 'independent = "models/independent"' > $(LIVE)/service.toml
	$(CLI) serve --config $(LIVE)/service.toml --host 127.0.0.1 --port $(LIVE_PORT) --workers 2 \
		> $(LIVE)/serve.log 2>&1 & serve=$$!; loop=; \
	trap 'kill $$serve $$loop 2>/dev/null; wait' EXIT; \
	for i in $$(seq 300); do \
		$(PY) -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
			$(LIVE_URL)/readyz 2>/dev/null && break; \
		kill -0 $$serve 2>/dev/null || { cat $(LIVE)/serve.log; exit 1; }; sleep 1; \
	done; \
	$(CLI) loop --config $(LIVE)/service.toml --every 5 --min-decisions 2000 > $(LIVE)/loop.log 2>&1 & loop=$$!; \
	$(CLI) live --world context_flip --world-seed 0 --url $(LIVE_URL) --requests $(LIVE_REQUESTS) \
		--rate $(LIVE_RATE) --feedback-delay 1 --out $(LIVE)/live; status=$$?; \
	echo "Policy versions published: $$(ls $(LIVE)/policy/versions 2>/dev/null | tr '\n' ' ')"; \
	echo "Loop log: $(LIVE)/loop.log; value over the run: $(LIVE)/live/value.png"; \
	exit $$status

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
	rm -rf $(VENV) $(DEMO) $(LIVE) .pytest_cache .ruff_cache
