# Quick start: `make devnet` starts a local chain, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: devnet test lint bench install clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

devnet: $(STAMP)
	$(BIN)/cmt devnet

# JS client tests (tests/clients): ethers from the committed lock file.
CLIENTS_STAMP := tests/clients/node_modules/.installed

$(CLIENTS_STAMP): tests/clients/package.json tests/clients/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "error: npm not found; tests/clients needs Node.js 20+ and npm" >&2; exit 1; }
	cd tests/clients && npm ci --no-audit --no-fund
	touch $@

test: $(STAMP) $(CLIENTS_STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/pytest -n 2 -q

bench: $(STAMP)
	$(BIN)/cmt bench core

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info
