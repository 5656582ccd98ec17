# accessbot: `make demo` shows the whole loop locally; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo test test-fast bench bench-edge bench-decide bench-slack bench-hygiene lint lock migrate run clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

lock:  ## re-pin requirements.lock to the newest versions pyproject.toml's ranges allow
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet '.[dev,demo]'
	{ sed -n '1,3p' requirements.lock; .lock-venv/bin/pip freeze --exclude-editable \
	  | grep -v '^accessbot'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf .lock-venv

demo: $(STAMP)  ## the whole loop on SQLite, moto and a local stand-in for Slack
	$(BIN)/python scripts/demo.py

# The suite mostly waits (bots starting, timers firing, Slack and AWS fakes answering):
# three workers keep two cores busy. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 3

test: $(STAMP)  ## the full suite; Postgres tests run when a server answers
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

test-fast: $(STAMP)  ## everything but the end-to-end tests
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal -m "not e2e"

bench: $(STAMP)  ## acknowledgement latency, approve-to-grant time, revocation lag
	$(BIN)/python scripts/bench.py

bench-edge: $(STAMP)  ## the web process alone: acknowledgement bursts, and its server's floor
	$(BIN)/python scripts/bench_edge.py

bench-decide: $(STAMP)  ## the worker alone: deciding a batch of 100 Approve clicks, and sending what it owes
	$(BIN)/python scripts/bench_decide.py

bench-slack: $(STAMP)  ## a Slack Web API call over HTTPS: a new connection each against kept connections
	$(BIN)/python scripts/bench_slack_client.py

bench-hygiene: $(STAMP)  ## parse + findings for a 10,000-user credential report: time, memory, calls
	$(BIN)/python scripts/bench_hygiene.py

lint: $(STAMP)
	$(BIN)/ruff check .

migrate: $(STAMP)
	$(BIN)/python bot.py migrate

run: $(STAMP)
	$(BIN)/python bot.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info accessbot.db*
