# Two commands on a fresh machine: `make demo` (ends in `workflowbot demo`) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo run test fuzz lint format bench bench-segments bench-pipeline bench-stats clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)  # a simulated month against local stand-ins, < 1 min; replaces the last demo
	$(BIN)/workflowbot demo --fresh

run: $(STAMP)
	$(BIN)/workflowbot run

test: $(STAMP)
	$(BIN)/pytest -q

fuzz: $(STAMP)  # the rule-language property tests with random seeds; a failure prints its blob
	FUZZ=1 $(BIN)/pytest -q tests/engine/test_rules_parser.py tests/engine/test_rules_sql.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python bench/ingest.py

bench-segments: $(STAMP)  # 1M accounts, 3M contacts, 10M events: generated once (~4 min), kept
	$(BIN)/python bench/segments.py

bench-pipeline: $(STAMP)  # events -> 20 workflows -> webhooks to a local sink, the scheduler (~4 min)
	$(BIN)/python bench/pipeline.py

bench-stats: $(STAMP)  # 1M enrollments, 5M step runs: generated (~70 s), rolled up, workflow_stats timed
	$(BIN)/python bench/stats.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
