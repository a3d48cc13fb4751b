# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
CLI    := $(VENV)/bin/sectionrank
DEMO   := .demo

.PHONY: demo test lint bench clean

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

demo: $(VENV)/.installed
	@mkdir -p $(DEMO)
	$(CLI) sections
	@for section in discover similar_items category_explore search; do \
		$(CLI) rerank --sample 40 --seed 7 --section $$section --arm 0 --k 8 || exit 1; \
		$(CLI) rerank --sample 40 --seed 7 --section $$section --arm -1 --k 8 || exit 1; \
	done

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(VENV)/bin/pytest -q

bench: $(VENV)/.installed-dev
	$(PY) -m benchmarks.run --out docs/BENCHMARKS.md

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .ruff_cache
