# Two commands for a fresh machine: `make run` and `make test`. Both are idempotent.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum requirements.txt | cut -c1-12)
HS_PORT ?= 8501
# the app listens on this address only; set HS_ADDRESS=0.0.0.0 to serve a network (put TLS in front)
HS_ADDRESS ?= localhost

.PHONY: run test test-fast lint format bench venv browser clean-data

venv: $(STAMP)

$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

# Debian's chromium for the browser tests (never a downloaded browser).
browser:
	@test -x /usr/bin/chromium || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || { echo "could not install chromium: run 'apt-get install -y chromium' as root"; exit 1; }; }

run: venv
	$(PY) -m core first-run --url http://$(HS_ADDRESS):$(HS_PORT)
	$(PY) -m streamlit run app.py --server.address $(HS_ADDRESS) --server.port $(HS_PORT)

test: venv browser
	$(PY) -m ruff check .
	$(PY) -m pytest -q --timeout 900

test-fast: venv
	$(PY) -m pytest -q -m "not slow and not e2e"

lint: venv
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

format: venv
	$(PY) -m ruff check --fix . && $(PY) -m ruff format .

# every bench on the demo shop (built by first-run when missing); rewrites the generated part of docs/BENCHMARKS.md
bench: venv browser
	$(PY) -m core first-run --url http://$(HS_ADDRESS):$(HS_PORT)
	$(PY) bench/report.py
