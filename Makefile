# The two set-up commands of the README: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch; set TORCH_SPEC="torch" (or a CUDA index) for a GPU machine.
TORCH_SPEC ?= torch==2.13.0
DATA_DIR ?= var/data
ARTIFACT ?= var/artifacts/ml-100k
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install test lint serve demo-artifact bench-install bench-serve clean

$(BIN)/because: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

install: $(BIN)/because

lint: install
	$(BIN)/ruff check .

test: install lint
	$(BIN)/pytest -q

$(ARTIFACT)/manifest.json: | install
	$(BIN)/because data fetch movielens-100k --dest $(DATA_DIR)
	$(BIN)/because train --train $(DATA_DIR)/movielens-100k/ml-100k.inter \
		--items $(DATA_DIR)/movielens-100k/ml-100k.item --out $(ARTIFACT)

demo-artifact: $(ARTIFACT)/manifest.json

serve: demo-artifact
	$(BIN)/because serve --artifact $(ARTIFACT) --host $(HOST) --port $(PORT) \
		--import-ratings $(DATA_DIR)/movielens-100k/ml-100k.inter

bench-install: install
	$(BIN)/pip install -q -e ".[dev,bench]"

# Load test (wrk, from Debian's packages) with its floors, new-user speed against implicit
# ALS, and cost growth; results in bench/results/.
bench-serve: demo-artifact bench-install
	$(BIN)/python -m bench.serve_load --artifact $(ARTIFACT) \
		--ratings $(DATA_DIR)/movielens-100k/ml-100k.inter
	$(BIN)/python -m bench.new_user_speed --ratings $(DATA_DIR)/movielens-100k/ml-100k.inter
	$(BIN)/python -m bench.scaling

clean:
	rm -rf $(VENV) var
