# Every target uses the project's own virtualenv in .venv, created on demand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_SOURCE := fixtures/small/ai-desk
DEMO_TARGET := out/demo.db
LARGE := ../shared/livestore/fixtures/large/ai-desk

.PHONY: install consumer demo test lint golden bench verify-seed oracle-install oracle-deps oracle \
	corpus clean

# constraints.txt pins every package to the versions the suite was run with. The install
# itself compiles nothing: $(NATIVE) does, once mypyc is in the virtualenv.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	PROJECTOR_PURE_PYTHON=1 $(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# The replay's hot-path modules (COMPILED in events/_native.py) compiled by mypyc into C
# extensions beside their sources (setup.py), rebuilt when one of them changes. Where they
# cannot be built, the pure-Python modules run: the same results, slower. The stamp is
# dated when the build started (a source edited during it is built again next time), and
# is made even when the compile fails (it is not tried again until a source changes).
NATIVE := build/native.stamp
NATIVE_SOURCES := $(shell sed -n '/^COMPILED = (/,/^)/p' events/_native.py | \
	grep -o '"[a-z_.]*"' | tr -d '"' | sed 's|\.|/|g; s|$$|.py|')
$(NATIVE): $(STAMP) setup.py events/_native.py $(NATIVE_SOURCES) $(wildcard events/*.c)
	@mkdir -p build && touch $@.new
	$(BIN)/python setup.py --quiet build_ext --inplace 2>&1 | \
		grep -v -e 'Treating generator comprehension as list' -e '_BetaConfiguration' \
			-e '^$$' || true
	@$(BIN)/python -c "from events import _native; s = _native.state(); \
		s == 'compiled' or print(f'native: {s}: the pure-Python modules run (slower)')"
	@mv $@.new $@

# Bytecode of the project's own modules, written once: where PYTHONDONTWRITEBYTECODE is set
# (as on the development machine and in CI) every process would otherwise compile them
# again, about 0.1 s of every command's start (pip compiles the installed packages'). A
# .pyc older than its source is ignored, so an edit since costs time, never correctness.
PYC := build/pyc.stamp
$(PYC): $(STAMP) $(wildcard projector/*.py events/*.py)
	@mkdir -p build
	@$(BIN)/python -m compileall -q projector events > /dev/null
	@touch $@

install: $(STAMP) $(NATIVE) $(PYC) ## Create .venv, install the projector with its dev tools, compile its hot path

# The new app's side of the hand-off (tests/test_consumer.py): better-sqlite3, drizzle-orm
# and drizzle-kit at the exact versions of tests/consumer/package-lock.json.
CONSUMER := tests/consumer
CONSUMER_STAMP := $(CONSUMER)/node_modules/.installed
# better-sqlite3 is compiled here (no prebuilt binary is downloaded): node-gyp is pointed at
# the headers of the Node that runs it, so it never fetches them from the network.
NODE_PREFIX = $(shell node -p "require('path').resolve(process.execPath, '../..')" 2>/dev/null)
$(CONSUMER_STAMP): $(CONSUMER)/package.json $(CONSUMER)/package-lock.json
	cd $(CONSUMER) && \
		if [ -f "$(NODE_PREFIX)/include/node/node.h" ]; then export npm_config_nodedir="$(NODE_PREFIX)"; fi && \
		npm ci --no-audit --no-fund
	touch $@

consumer: ## npm ci the Node consumer test's packages (skipped, with a message, without Node)
	@if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory $(CONSUMER_STAMP); \
	else \
		echo "consumer: node/npm not found: tests/test_consumer.py (the app's side of the hand-off) will be skipped"; \
	fi

demo: $(STAMP) $(NATIVE) $(PYC) ## Migrate the bundled real LiveStore log and verify it against LiveStore's state
	@mkdir -p out
	@rm -f $(DEMO_TARGET) $(DEMO_TARGET)-wal $(DEMO_TARGET)-shm $(DEMO_TARGET).*.bak
	$(BIN)/projector inspect $(DEMO_SOURCE)
	$(BIN)/projector validate $(DEMO_SOURCE)
	$(BIN)/projector replay $(DEMO_SOURCE) $(DEMO_TARGET)
	$(BIN)/projector verify $(DEMO_TARGET) --against $(DEMO_SOURCE)/state-11367593325@6.db
	$(BIN)/projector digest $(DEMO_TARGET)

test: $(STAMP) $(NATIVE) $(PYC) consumer oracle-deps ## Run the test suite (what CI runs)
	$(BIN)/pytest -q

lint: $(STAMP) ## ruff, ruff format --check, mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

golden: $(STAMP) $(NATIVE) $(PYC) ## Regenerate fixtures/*/expected.json (review the diff before committing)
	$(BIN)/python -m tests.golden

bench: $(STAMP) $(NATIVE) $(PYC) ## Throughput and memory on large and on a 1,000,000-event log
	$(BIN)/python bench/bench.py --large $(LARGE)

SEED ?= 101
EVENTS ?= 2000
SYNC ?= none
verify-seed: $(STAMP) $(NATIVE) $(PYC) ## Make a new real log with LiveStore's generator (Node 20) and verify a migration of it
	@mkdir -p out
	rm -rf out/seed$(SEED) out/seed$(SEED).db out/seed$(SEED).db-wal out/seed$(SEED).db-shm \
		out/seed$(SEED).db.lock out/seed$(SEED).db.*.bak
	../shared/livestore/gen/run.sh gen.mjs --seed $(SEED) --events $(EVENTS) --sync $(SYNC) \
		$(if $(filter mock,$(SYNC)),--remote-rate 0.05) --out out/seed$(SEED) > out/seed$(SEED).gen.log 2>&1
	$(BIN)/projector validate out/seed$(SEED)/ai-desk
	$(BIN)/projector replay out/seed$(SEED)/ai-desk out/seed$(SEED).db
	$(BIN)/projector verify out/seed$(SEED).db --against $$(ls out/seed$(SEED)/ai-desk/state-*@6.db)

# The oracle: real LiveStore 0.4.0 (Node 20) rebuilding a state DB from an eventlog, with
# the packages pinned in oracle/package-lock.json (npm ci, on demand, into oracle/).
ORACLE_STAMP := oracle/node_modules/.installed
NODE_CHECK = @command -v node >/dev/null 2>&1 || { echo "the oracle needs Node 20 and npm (node is not on PATH): skipped" >&2; exit 1; }
$(ORACLE_STAMP): oracle/package.json oracle/package-lock.json
	$(NODE_CHECK)
	cd oracle && npm ci --no-audit --no-fund --loglevel=error
	touch $(ORACLE_STAMP)

oracle-install: $(ORACLE_STAMP) ## Install the oracle's pinned LiveStore packages (Node 20, npm)

oracle-deps: ## The oracle's packages for `make test` (skipped, with a message, without Node)
	@if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory $(ORACLE_STAMP); \
	else \
		echo "oracle: node/npm not found: the tests that run real LiveStore will be skipped"; \
	fi

STORE ?=
SCHEMA ?=
CATALOG ?=
OUT ?= out/oracle-state.db
# SCHEMA: the app's LiveStore schema module; CATALOG: a catalog whose [livestore]
# schema_module names it (default: the bundled catalog that knows STORE's events, as a
# first replay picks one; refused when none knows half of them).
oracle: $(STAMP) $(NATIVE) $(PYC) $(ORACLE_STAMP) ## make oracle STORE=DIR [CATALOG=name|SCHEMA=schema.mjs] [OUT=state.db]: LiveStore rebuilds DIR's state
	@test -n "$(STORE)" || { echo "usage: make oracle STORE=DIR [CATALOG=name|dir | SCHEMA=path/to/schema.mjs] [OUT=state.db]" >&2; exit 2; }
	@schema="$(SCHEMA)"; \
	if [ -z "$$schema" ]; then \
		schema=$$($(BIN)/python -m events.catalog schema-module $(if $(CATALOG),'$(CATALOG)',--store '$(STORE)')) || exit 1; \
	fi; \
	mkdir -p $(dir $(OUT)) && \
	echo "node oracle/rebuild.mjs $(STORE) $(OUT) --schema $$schema" && \
	node oracle/rebuild.mjs '$(STORE)' '$(OUT)' --schema "$$schema"

CORPUS_SEED ?= 1
CORPUS_COUNT ?= 240
corpus: $(STAMP) $(NATIVE) $(PYC) $(ORACLE_STAMP) ## Regenerate fixtures/differential/corpus.json with LiveStore (EXTEND=1 adds to it)
	$(BIN)/python -m tests.differential --seed $(CORPUS_SEED) --count $(CORPUS_COUNT) $(if $(EXTEND),--extend)

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache $(CONSUMER)/node_modules \
		oracle/node_modules build events/_native_build.json events/*.so projector/*.so \
		events/__pycache__ projector/__pycache__
