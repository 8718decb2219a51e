# The quick-start commands (README): `make demo`, `make test` and `make lint`. Each sets up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench schema clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,line,odx,lint]'
	touch $(STAMP)

demo: $(STAMP)  ## run the smoke plan against the simulator, with the live step table and verdict
	$(BIN)/station run test_plans/smoke.yaml --sim --serial SN0001 --report out/smoke.html

test: $(STAMP)  ## the whole test suite (the reliability suite in a process of its own: it times reactions)
	@# Both suites run and report even when the first fails; the exit code is the first non-zero one.
	@# --durations: the slowest tests close the main suite's output, where CI time goes.
	@status=0; \
	$(BIN)/pytest --ignore=tests/reliability --durations=25 || status=$$?; \
	$(BIN)/pytest tests/reliability || { s=$$?; [ $$status -ne 0 ] || status=$$s; }; \
	exit $$status

lint: $(STAMP)  ## ruff, the layer contracts, import cycles and mypy (configs in pyproject.toml); what CI runs
	@# Every check runs and reports even when an earlier one fails; the exit code is the first non-zero one.
	@status=0; \
	for check in "$(BIN)/ruff check ." "$(BIN)/lint-imports" "$(BIN)/python .ci/import_cycles.py" "$(BIN)/mypy"; do \
	  echo "== $$check"; \
	  $$check || { s=$$?; [ $$status -ne 0 ] || status=$$s; }; \
	done; \
	exit $$status

bench: $(STAMP)  ## benchmarks (not part of the test run); prints a table and writes out/bench.json
	$(BIN)/python bench/run_all.py

schema: $(STAMP)
	$(BIN)/station schema > test_plans/schema/plan.schema.json

clean:
	rm -rf $(VENV) out results
