# Two commands do everything on a fresh machine with only Python 3.11:
#   make demo   set up .venv and run the main job
#   make test   set up .venv and run lint, format check and the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Re-install whenever the dependencies change.
STAMP := $(VENV)/.installed
EXTRAS ?= dev,ray,tensorboard,lightning,mnist

.PHONY: setup browser test test-slow lint format demo study publish bench bench-engine clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[$(EXTRAS)]'
	touch $@

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The HTML report's browser test needs a real Chromium: Debian's package, installed here when this machine can
# (root with apt-get, as on CI); elsewhere the test skips and says why.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "note: Chromium is missing and cannot be installed here (needs root and apt-get); the browser test will skip"; fi

test: lint browser
	$(BIN)/python -m pytest

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

demo: $(STAMP)
	$(BIN)/rnnlab demo

# One bundled study run and published: make study S=adding-t100. Its store is committed beside its report
# (docs/studies/<study>/store.db, finished runs without checkpoints), so a study longer than one sitting runs
# in parts: stop it (Ctrl-C or a killed session), commit the folder, run the same command later, anywhere.
STUDY_STORE ?= docs/studies/$(S)/store.db
study: $(STAMP)
	@test -n "$(S)" || { echo "usage: make study S=<study> (see: .venv/bin/rnnlab studies)"; exit 2; }
	$(BIN)/rnnlab sweep $(S) --workers 2 --store $(STUDY_STORE); status=$$?; \
	$(MAKE) --no-print-directory publish S=$(S) && exit $$status

# The report and runs.csv of a study from its store as it stands (finished runs; unfinished ones keep their
# checkpoints so that the next sitting resumes them), and the README's findings and ladder tables from the runs.csv.
# PRUNE=--keep-completed keeps the completed runs' checkpoints, so that a larger budget continues them.
PRUNE ?=
publish: $(STAMP)
	@test -n "$(S)" || { echo "usage: make publish S=<study>"; exit 2; }
	$(BIN)/rnnlab runs prune --store $(STUDY_STORE) $(PRUNE)
	$(BIN)/rnnlab report $(S) --store $(STUDY_STORE) --out docs/studies/$(S)
	$(BIN)/rnnlab runs export docs/studies/$(S)/runs.csv --study $(S) --store $(STUDY_STORE)
	$(BIN)/rnnlab studies --findings --readme README.md
	$(BIN)/rnnlab studies --ladder --readme README.md

# Speed on a quiet machine (~22 min): the shape grid against torch.nn → benchmarks/results/grid.{json,md},
# docs/bench-grid.png. bench-engine: the two tuned shapes in depth (GEMM rate, peak memory, the cell loop).
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_grid.py

bench-engine: $(STAMP)
	$(BIN)/python benchmarks/bench_engine.py --memory

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
