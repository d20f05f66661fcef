# translearn: the two set-up commands are `make train` and `make test`; each builds .venv on first use.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Re-installs whenever pyproject.toml changes.
STAMP := $(VENV)/.installed
ARGS ?=
# One pytest worker per core, one torch thread each: two threads per worker on two cores thrash.
TEST_WORKERS ?= 2
WANDB_SYNC_TIMEOUT ?= 300
RUNS ?= $(or $(TRANSLEARN_OUTPUTS),outputs)

.DEFAULT_GOAL := help
.PHONY: help venv train test test-fast wheel-check bench study study-shift lint format wandb-sync clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@# The filter hides pip's noise about file:// index locations that some mirrors configure.
	$(BIN)/pip install -q -e '.[dev]' 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
	touch $@

venv: $(STAMP) ## build .venv (python3 -m venv + pip install -e '.[dev]')

train: $(STAMP) ## run the embedded offline default (pass overrides as ARGS="strategy=freeze ...")
	$(BIN)/python -m translearn.train $(ARGS)

test: $(STAMP) ## every test, 2 workers of one torch thread each (~9-14 min on 2 cores, by the host's load; budget 15 with the venv)
	OMP_NUM_THREADS=1 WANDB_MODE=disabled $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist load --durations=15 $(ARGS)

test-fast: $(STAMP) ## the suite without the slow and subprocess tests (~2 min)
	WANDB_MODE=disabled $(BIN)/python -m pytest -q -m "not slow and not cli" $(ARGS)

# The wheel as a user installs it: core dependencies only, resolved by pip into a fresh venv outside the
# repository (torch from the configured index; WHEEL_PIP_ARGS adds e.g. a CPU-only torch index), then a
# debug=tiny run and its report from another folder, so only the installed package and its embedded
# configs can serve them.
WHEEL_PIP_ARGS ?=
wheel-check: $(STAMP) ## build the wheel, install it in a fresh venv outside the repo, train debug=tiny from there
	rm -rf build dist
	$(BIN)/pip wheel -q --no-deps -w dist . 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
	@wheel=$$(ls $(CURDIR)/dist/translearn-*.whl); tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	start=$$(date +%s); set -x; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/pip" install -q --no-compile $(WHEEL_PIP_ARGS) "$$wheel" 2>&1 \
		| { grep -v 'is ignored: it is neither a file nor a directory' || true; }; \
	installed=$$(date +%s); cd "$$tmp"; \
	env -u PYTHONPATH "$$tmp/venv/bin/python" -c \
		'import sys, translearn; print(translearn.__file__); sys.exit("$(CURDIR)" in translearn.__file__)'; \
	env -u PYTHONPATH TRANSLEARN_DATA="$$tmp/data" TRANSLEARN_CACHE="$$tmp/cache" TORCH_HOME="$$tmp/torch" \
		"$$tmp/venv/bin/translearn-train" debug=tiny hydra.run.dir="$$tmp/run"; \
	test -s "$$tmp/run/metrics.json"; \
	env -u PYTHONPATH "$$tmp/venv/bin/translearn-report" "$$tmp/run" --out "$$tmp/report" >/dev/null; \
	test -s "$$tmp/report/table.md"; \
	set +x; now=$$(date +%s); \
	echo "wheel-check: $$(basename $$wheel) installed in $$((installed - start)) s, trained and reported outside the repo in $$((now - installed)) s"

bench: $(STAMP) ## translearn vs a plain PyTorch loop, side by side; writes benchmarks/RESULTS.md
	$(BIN)/python benchmarks/bench.py $(ARGS)

# One folder per study; rerun an interrupted one with STUDY_DIR=<its folder> ARGS=sweep.resume=true.
ifndef STUDY_DIR
STUDY_DIR := outputs/study/$(shell date +%Y-%m-%d_%H-%M-%S)
endif
STUDY_SEEDS ?= 0,1,2
STUDY := $(BIN)/python -m translearn.train -m experiment=study dataset.color=rgb,gray seed=$(STUDY_SEEDS)

study: $(STAMP) ## the offline transfer study: scratch, freeze, first_k, finetune, gradual x rgb/gray x 3 seeds (48 cells)
	$(STUDY) strategy=finetune,freeze,gradual hydra.sweep.dir=$(STUDY_DIR)/transfer $(ARGS)
	$(STUDY) strategy=first_k strategy.k=1,2,3,4 hydra.sweep.dir=$(STUDY_DIR)/depth $(ARGS)
	$(STUDY) strategy=finetune model.weights=none hydra.sweep.dir=$(STUDY_DIR)/scratch $(ARGS)
	$(BIN)/python -m translearn.report $(STUDY_DIR)
	@echo "study: table and plots in $(STUDY_DIR)/report"

SHIFT := $(BIN)/python -m translearn.train -m experiment=study dataset.task=target,corrupted seed=$(STUDY_SEEDS)

study-shift: $(STAMP) ## surgical fine-tuning per stage on a label shift (target) and an input shift (corrupted), x 3 seeds
	$(SHIFT) strategy=surgical 'strategy.stages=[1],[2],[3],[4],[5]' hydra.sweep.dir=$(STUDY_DIR)/surgical $(ARGS)
	$(SHIFT) strategy=finetune,freeze hydra.sweep.dir=$(STUDY_DIR)/reference $(ARGS)
	$(BIN)/python -m translearn.report $(STUDY_DIR)
	@echo "study-shift: table and plots in $(STUDY_DIR)/report"

lint: $(STAMP) ## ruff check + ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## ruff format + autofixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

wandb-sync: $(STAMP) ## upload offline W&B runs under RUNS=DIR (default: TRANSLEARN_OUTPUTS, else outputs/)
	@dirs=$$(find "$(RUNS)" -type d -name 'offline-run-*' 2>/dev/null || true); \
	if [ -z "$$dirs" ]; then echo "no offline W&B runs under $(RUNS)/"; exit 0; fi; \
	timeout $(WANDB_SYNC_TIMEOUT) $(BIN)/wandb sync $$dirs || { echo "wandb sync failed or timed out after $(WANDB_SYNC_TIMEOUT)s"; exit 1; }

clean: ## remove the venv and caches (never outputs/ or data)
	rm -rf $(VENV) .pytest_cache .ruff_cache
