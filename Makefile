# One command each: `make run` starts the dashboard, `make test` runs the test suite.
# Both create .venv and install the pinned requirements on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint browser

# A .venv made before requirements.txt named tensorflow-cpu holds tensorflow, whose files
# tensorflow-cpu shares: it is removed first, or the two packages would claim the same files.
$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	if $(BIN)/pip show --quiet tensorflow 2>/dev/null; then \
	  $(BIN)/pip uninstall --quiet --yes tensorflow; fi
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

run: $(BIN)/.installed
	$(BIN)/streamlit run app.py

# The browser tests need Debian's Chromium; install it when missing (root only).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	  else echo "Chromium is missing: run 'sudo apt-get install -y chromium'"; exit 1; fi; }

test: $(BIN)/.installed browser
	$(BIN)/python -m pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
