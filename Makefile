# Week 2 · experiment tracking and model management with MLflow.
# `make` alone lists the targets. `make course` and `make test` set everything up on a fresh machine.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help venv course test ui lab data lint format clean distclean lock

help: ## list the targets
	@echo "Week 2 · experiment tracking and model management with MLflow"
	@echo
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found: install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { echo "error: $(PYTHON) is not Python 3.11: run make PYTHON=/path/to/python3.11"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@# week2 is put on the path without registering it as a distribution: MLflow would otherwise
	@# write `week2==…` into every logged model's requirements, which no index can install.
	$(PY) -c 'import site, pathlib; pathlib.Path(site.getsitepackages()[0], "week2-repo.pth").write_text("$(CURDIR)\n")'
	touch $(STAMP)

venv: $(STAMP) ## create .venv and install the pinned requirements

course: $(STAMP) ## run every notebook in order on the course data, then print a summary
	$(PY) -m week2 course

test: $(STAMP) ## the whole test suite, as CI runs it
	$(PY) -m pytest

ui: $(STAMP) ## MLflow UI on the course's tracking store at http://127.0.0.1:5000
	$(PY) -m week2 ui

.PHONY: images
images: $(STAMP) ## redraw the diagrams and retake the MLflow UI screenshots in images/ (Chromium, ~3 min)
	$(PY) images/draw_diagrams.py
	$(PY) images/take_screenshots.py

lab: $(STAMP) ## JupyterLab on notebooks/
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks --ip=127.0.0.1

data: $(STAMP) ## get the course months (cache, mirror, public address) or the sample
	$(PY) -m week2 data $(MONTHS)

lint: $(STAMP) ## ruff over .py and .ipynb alike
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP) ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean: ## remove the tracking store, artifacts and executed notebooks (keeps downloads and .venv)
	rm -rf mlflow.db mlartifacts build .pytest_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean ## also remove .venv and the data cache
	rm -rf $(VENV)
	find data -mindepth 1 -not -name README.md -delete

lock: ## recompile requirements.txt from requirements.in (needs network)
	$(PY) -m pip install --quiet uv
	$(VENV)/bin/uv pip compile --python-version 3.11 --python-platform linux requirements.in -o requirements.txt

.PHONY: score serve
score: $(STAMP) ## batch-score a month with the champion into parquet (MONTH=YYYY-MM, default the test month)
	$(PY) -m week2 score $(MONTH)

serve: $(STAMP) ## serve the champion on http://127.0.0.1:5004/invocations (WEEK2_SERVE_PORT)
	$(PY) -m week2 serve

.PHONY: server server-stop scenario3 scenario3-stop
server: $(STAMP) ## scenario 2: team tracking server (SQLite + artifacts) on http://127.0.0.1:5001 (WEEK2_SERVER_PORT)
	$(PY) -m week2 server

server-stop: $(STAMP) ## stop the scenario-2 server (its runs stay in build/servers/scenario2)
	$(PY) -m week2 server-stop

scenario3: $(STAMP) ## scenario 3: PostgreSQL + S3 (rclone) + MLflow with basic auth on http://127.0.0.1:5002; prints the secrets file
	$(PY) -m week2 scenario3

scenario3-stop: $(STAMP) ## stop scenario 3's three servers; its runs, artifacts and secrets stay (DELETE=1 deletes them)
	@case "$(DELETE)" in ""|0|1) ;; *) echo "error: DELETE=$(DELETE): write DELETE=1 to delete scenario 3's data and secrets, or leave DELETE out to keep them" >&2; exit 2;; esac
	$(PY) -m week2 scenario3-stop $(if $(filter 1,$(DELETE)),--delete)

.PHONY: homework
homework: $(STAMP) ## run your homework scripts, grade each question from the store, write homework/submission.json (MONTHS="2023-01 2023-02 2023-03", TRIALS=15; SOLUTION=1: the reference solution)
	$(PY) homework/run_homework.py $(if $(MONTHS),--months "$(MONTHS)") $(if $(TRIALS),--trials "$(TRIALS)") $(if $(SOLUTION),--solution "$(SOLUTION)")

.PHONY: bench-sweep
bench-sweep: $(STAMP) ## original vs notebook 03's xgboost sweep on the real months (~20 min): speedup, tracking overhead
	$(PY) benchmarks/bench_sweep.py

.PHONY: bench
bench: $(STAMP) ## timings: every notebook and make course (real and sample), tracking throughput, start-up (~15 min)
	$(PY) benchmarks/bench.py

.PHONY: bench-spark
bench-spark: $(STAMP) ## notebook 03's sweep with local trials and with Spark trials (WEEK2_SWEEP_PARALLELISM), side by side
	$(PY) benchmarks/bench_spark.py
