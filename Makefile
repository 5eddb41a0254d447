# Every target builds the environment first when it is missing or pyproject.toml changed.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	# The Ray engine is an optional extra; without it, its suite is skipped.
	$(PY) -m pip install --quiet -e '.[dev,ray]' || echo "Ray did not install: its tests will be skipped"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m cli.demo

test: $(STAMP)
	$(PY) -m pytest -q -m 'not ray'
	@if $(PY) -c 'import ray' 2>/dev/null; then \
		$(PY) -m pytest -q -m ray; \
	else echo "Ray is not installed: the Ray engine's suite is skipped"; fi

lint: $(STAMP)
	$(VENV)/bin/ruff check cli pipeline tests scripts
	$(VENV)/bin/ruff format --check cli pipeline tests scripts
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy scripts

bench: $(STAMP)
	$(PY) -m tests.bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache demo_output
