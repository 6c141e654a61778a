# Set-up and the main jobs. `make demo` and `make test` each create .venv with python3.12 when it is
# missing and install the project into it; nothing needs to be installed by hand.
PYTHON312 := $(shell tools/find-python312)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo browser test test-slow bench figures analyses notebooks lint clean

$(PY):
	$(PYTHON312) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev,importers]'
	touch $(STAMP)

# the audit of the bundled data: report.html, report.md, CSV tables and figures in audit-out/
demo: $(STAMP)
	$(VENV)/bin/robustalign audit --example --out audit-out --force

# the report's browser test needs Chromium: install the Debian package when it is missing; if that is
# impossible (no root, no network) the test skips with a loud reason instead of failing the run
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || \
	  echo "WARNING: could not install chromium; tests/test_report_browser.py will be SKIPPED"

# --timeout: a test (with its fixtures) that runs past 15 minutes is stopped, every stack printed (by a
# thread, so that it works inside compiled code too) and reported by name as failed, so that a hang cannot
# use up CI's time and hide which tests failed
test: $(STAMP) browser
	$(PY) -m pytest -n 2 --dist loadfile -q --durations=15 --timeout=900 --timeout-method=thread

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow -p no:cacheprovider

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[jax]'
	$(PY) bench/run.py

figures: $(STAMP)
	$(PY) -m robustalign.figures figures/

analyses: $(STAMP)
	for f in analyses/*/run.py; do $(PY) $$f || exit 1; done

notebooks: $(STAMP)
	$(PY) tools/execute_notebooks.py

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy

clean:
	rm -rf $(VENV) build *.egg-info
