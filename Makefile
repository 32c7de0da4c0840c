# hint-lightning: `make demo` and `make test` each set everything up first on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_VERSION ?= 2.13.0

.PHONY: help install java demo test test-fast lint format bench gpu-check clean clean-logs

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-12s %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv with torch==$(TORCH_VERSION) first, then the package and dev tools

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory java
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==$(TORCH_VERSION)"
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

java: ## Install a Java runtime if missing (pycocoevalcap's tokenizer and METEOR need it)
	@if ! command -v java >/dev/null 2>&1; then \
		echo "Java not found: installing default-jre-headless"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends default-jre-headless; \
	fi

demo: install ## Run the easy-VQA-CP study (conf/study/easyvqa_cp.yaml, 2 jobs) and print its table
	$(PY) -m hint_lightning.demo --jobs 2

test: install ## Run the whole test suite (slow end-to-end tests included, as CI does)
	$(PY) -m pytest

test-fast: install ## Run the tests without the slow end-to-end ones
	$(PY) -m pytest -m "not slow"

lint: install ## ruff lint + format check, and no .cuda() anywhere
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	@! grep -rn --include=*.py '\.cuda()' src tests benchmarks || (echo "use Lightning's devices, not .cuda()"; exit 1)

format: install ## Format the code with ruff
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

bench: install ## Run the benchmarks and print one JSON object (also written to benchmarks/results/)
	$(PY) -m benchmarks.run

gpu-check: install ## Check the CUDA path in minutes (device tests, bf16 + DDP runs, batch-512 step, loader); JSON in benchmarks/results/gpu_check.json
	$(PY) -m benchmarks.gpu_check

clean: ## Remove caches (keeps .venv, data and logs)
	rm -rf .pytest_cache .ruff_cache build *.egg-info src/*.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

clean-logs: ## Remove training logs
	rm -rf logs/*
