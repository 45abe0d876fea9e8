# Week 2 · experiment tracking and model management with MLflow.
# `make` alone lists the targets. `make course` and `make test` set everything up on a fresh machine.

SHELL := /bin/bash
# The Python that creates .venv: PYTHON if given, else python3.11 or python3 when it is 3.11, else
# a uv-managed 3.11 (uv finds one or downloads it). PYTHON_311 prints the choice ("uv" for uv's).
PYTHON ?=
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTHON_311 = for p in $(or $(PYTHON),python3.11 python3); do \
	  command -v "$$p" >/dev/null && "$$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null \
	    && { echo "$$p"; exit 0; }; \
	done; [ -z "$(PYTHON)" ] && command -v uv >/dev/null && echo uv
NO_PYTHON_311 = error: $(if $(PYTHON),PYTHON=$(PYTHON) is not Python 3.11,no Python 3.11 found): install uv (pipx install uv, or see docs.astral.sh/uv) and run make again, which then gets one; or install Python 3.11 and run make PYTHON=/path/to/python3.11

.DEFAULT_GOAL := help
.PHONY: help venv course test test-fast ui lab data lint format clean distclean lock

help: ## list the targets
	@echo "Week 2 · experiment tracking and model management with MLflow"
	@echo
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'
	@test -d $(VENV) || [ -n "$$($(PYTHON_311))" ] || { echo; echo "$(NO_PYTHON_311)"; }

$(STAMP): requirements.txt pyproject.toml
	@if [ ! -d $(VENV) ]; then \
	  python=$$($(PYTHON_311)); \
	  case "$$python" in \
	    "") echo "$(NO_PYTHON_311)"; exit 1 ;; \
	    uv) echo "creating $(VENV) with uv's Python 3.11 (no python3.11 on PATH)"; \
	        uv venv --quiet --seed --python 3.11 $(VENV) ;; \
	    *) echo "creating $(VENV) with $$python"; "$$python" -m venv $(VENV) ;; \
	  esac; \
	fi
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@# week2 is put on the path without registering it as a distribution: MLflow would otherwise
	@# write `week2==…` into every logged model's requirements, which no index can install.
	$(PY) -c 'import site, pathlib; pathlib.Path(site.getsitepackages()[0], "week2-repo.pth").write_text("$(CURDIR)\n")'
	touch $(STAMP)

venv: $(STAMP) ## create .venv and install the pinned requirements

course: $(STAMP) ## run every notebook in order on the course data, then print a summary
	$(PY) -m week2 course

# Two worker processes, each given whole test files (a file's tests share its servers and stores;
# test_exercises runs the notebooks in teaching order): much of the suite waits on servers and
# subprocesses, so two workers use the two cores of a student's laptop or a CI machine. Files go out
# in collection order, where conftest puts the longest first, not reordered by their number of tests.
TEST_WORKERS ?= 2
test: $(STAMP) ## the whole test suite, as CI runs it
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# What needs servers, a browser, Spark, the real months or minutes is marked so in tests/ (pyproject
# registers the markers); the notebooks run only in `make test`.
FAST_TESTS := not servers and not browser and not spark and not real_data and not slow
test-fast: $(STAMP) ## the unit tests that need no server, browser, Spark or real data (under 3 minutes)
	$(PY) -m pytest tests -m "$(FAST_TESTS)" --durations=10

ui: $(STAMP) ## MLflow UI on the course's tracking store at http://127.0.0.1:5000
	$(PY) -m week2 ui

.PHONY: images
images: $(STAMP) ## redraw the diagrams and retake the MLflow UI screenshots in images/ (Chromium, ~3 min)
	$(PY) images/draw_diagrams.py
	$(PY) images/take_screenshots.py

# Jupyter refuses to start as root without --allow-root; in containers students often are root.
lab: $(STAMP) ## JupyterLab on notebooks/ (http://127.0.0.1:8888)
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks --ip=127.0.0.1 $$([ "$$(id -u)" -ne 0 ] || echo --allow-root)

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

.PHONY: class-server class-server-stop class-enroll
class-server: $(STAMP) ## the class tracking server: scenario 3 with a workspace per student, on http://127.0.0.1:5006 (WEEK2_CLASS_PORT); see INSTRUCTORS.md
	$(PY) -m week2 class-server

class-server-stop: $(STAMP) ## stop the class server; its runs, artifacts and secrets stay (DELETE=1 deletes them and the credentials)
	@case "$(DELETE)" in ""|0|1) ;; *) echo "error: DELETE=$(DELETE): write DELETE=1 to delete the class server's data and secrets, or leave DELETE out to keep them" >&2; exit 2;; esac
	$(PY) -m week2 class-server-stop $(if $(filter 1,$(DELETE)),--delete)

class-enroll: $(STAMP) ## an account and a workspace per student of ROSTER=roster.csv (a username column); writes build/class/credentials/
	@[ -n "$(ROSTER)" ] || { echo "error: no roster: make class-enroll ROSTER=roster.csv (a CSV file with a username column)" >&2; exit 2; }
	$(PY) -m week2 class-enroll "$(ROSTER)"

.PHONY: class-grade
class-grade: $(STAMP) ## grade every student's workspace on the class server into build/class/grades.csv and .png (DEADLINE=2026-12-20T23:59:00Z, MONTHS, TRIALS)
	$(PY) homework/grade_class.py $(if $(DEADLINE),--deadline "$(DEADLINE)") $(if $(MONTHS),--months "$(MONTHS)") $(if $(TRIALS),--trials "$(TRIALS)")

.PHONY: homework
homework: $(STAMP) ## run your homework scripts, grade each question from the store, write homework/submission.json (MONTHS="2023-01 2023-02 2023-03", TRIALS=15; SOLUTION=1: the reference solution; CLASS=alice.env: submit to the class server)
	$(PY) homework/run_homework.py $(if $(MONTHS),--months "$(MONTHS)") $(if $(TRIALS),--trials "$(TRIALS)") $(if $(SOLUTION),--solution "$(SOLUTION)") $(if $(CLASS),--class "$(CLASS)")

.PHONY: bench-sweep
bench-sweep: $(STAMP) ## original vs notebook 03's xgboost sweep on the real months (~20 min): speedup, tracking overhead
	$(PY) benchmarks/bench_sweep.py

.PHONY: bench
bench: $(STAMP) ## timings: every notebook and make course (real and sample), tracking throughput, start-up (~15 min)
	$(PY) benchmarks/bench.py

.PHONY: bench-class
bench-class: $(STAMP) ## a deadline hour on a class server of its own (STUDENTS=200): requests/s, latencies, failed calls, memory, connections, for 1 and 4 workers
	$(PY) benchmarks/bench_class.py $(if $(STUDENTS),--students "$(STUDENTS)")

.PHONY: bench-spark
bench-spark: $(STAMP) ## notebook 03's sweep with local trials and with Spark trials (WEEK2_SWEEP_PARALLELISM), side by side
	$(PY) benchmarks/bench_spark.py
