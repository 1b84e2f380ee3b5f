# Two set-up commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test bench samples clean

$(BIN)/.installed-dev: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

demo: $(BIN)/.installed-dev
	$(BIN)/ingestflow init .  # the demo's home is ./.ingestflow, which `make clean` removes
	$(BIN)/ingestflow ingest samples
	$(BIN)/ingestflow search "what causes the aurora borealis" -k 3
	$(BIN)/ingestflow search "how long should the dough rest" -k 3
	$(BIN)/ingestflow status

test: $(BIN)/.installed-dev
	@{ command -v chromium && command -v qemu-x86_64; } >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium qemu-user; }
	$(BIN)/pytest -q

bench: $(BIN)/.installed-dev
	$(BIN)/python bench/ingest.py

samples: $(BIN)/.installed-dev
	$(BIN)/python scripts/make_samples.py

clean:
	rm -rf $(VENV) .ingestflow
