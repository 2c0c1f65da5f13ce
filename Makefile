# Every target uses the project's own virtualenv in .venv, created on demand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_SOURCE := fixtures/small/ai-desk
DEMO_TARGET := out/demo.db
LARGE := ../shared/livestore/fixtures/large/ai-desk

.PHONY: install consumer demo test lint golden bench verify-seed clean

# constraints.txt pins every package to the versions the suite was run with.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the projector with its dev tools

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

demo: $(STAMP) ## Migrate the bundled real LiveStore log and verify it against LiveStore's state
	@mkdir -p out
	@rm -f $(DEMO_TARGET) $(DEMO_TARGET)-wal $(DEMO_TARGET)-shm $(DEMO_TARGET).*.bak
	$(BIN)/projector inspect $(DEMO_SOURCE)
	$(BIN)/projector validate $(DEMO_SOURCE)
	$(BIN)/projector replay $(DEMO_SOURCE) $(DEMO_TARGET)
	$(BIN)/projector verify $(DEMO_TARGET) --against $(DEMO_SOURCE)/state-11367593325@6.db
	$(BIN)/projector digest $(DEMO_TARGET)

test: $(STAMP) consumer ## Run the test suite (what CI runs)
	$(BIN)/pytest -q

lint: $(STAMP) ## ruff, ruff format --check, mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

golden: $(STAMP) ## Regenerate fixtures/*/expected.json (review the diff before committing)
	$(BIN)/python -m tests.golden

bench: $(STAMP) ## Throughput and memory on large and on a 1,000,000-event log
	$(BIN)/python bench/bench.py --large $(LARGE)

SEED ?= 101
EVENTS ?= 2000
SYNC ?= none
verify-seed: $(STAMP) ## Make a new real log with LiveStore's generator (Node 20) and verify a migration of it
	@mkdir -p out
	rm -rf out/seed$(SEED) out/seed$(SEED).db out/seed$(SEED).db-wal out/seed$(SEED).db-shm \
		out/seed$(SEED).db.lock out/seed$(SEED).db.*.bak
	../shared/livestore/gen/run.sh gen.mjs --seed $(SEED) --events $(EVENTS) --sync $(SYNC) \
		$(if $(filter mock,$(SYNC)),--remote-rate 0.05) --out out/seed$(SEED) > out/seed$(SEED).gen.log 2>&1
	$(BIN)/projector validate out/seed$(SEED)/ai-desk
	$(BIN)/projector replay out/seed$(SEED)/ai-desk out/seed$(SEED).db
	$(BIN)/projector verify out/seed$(SEED).db --against $$(ls out/seed$(SEED)/ai-desk/state-*@6.db)

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache $(CONSUMER)/node_modules
