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

.PHONY: install test test-fast lint serve demo-artifact clean bench-install bench-quality bench-serve

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

# The fast lane while editing: everything but the tests marked slow (under a minute).
test-fast: install lint
	$(BIN)/pytest -q -m "not slow"

$(ARTIFACT)/manifest.json: | install
	$(BIN)/because data fetch movielens-100k --dest $(DATA_DIR)
	$(BIN)/because train --train $(DATA_DIR)/movielens-100k/ml-100k.inter \
		--items $(DATA_DIR)/movielens-100k/ml-100k.item --out $(ARTIFACT)

demo-artifact: $(ARTIFACT)/manifest.json

serve: demo-artifact
	$(BIN)/because serve --artifact $(ARTIFACT) --host $(HOST) --port $(PORT) \
		--import-ratings $(DATA_DIR)/movielens-100k/ml-100k.inter

# Quality on MovieLens-100K, every peer fitted in the same run (bench/RESULTS.md). Long: rating
# 50 min and new users 13 min on two shared cores, plus the ranking run. One thread each.
ML100K ?= ../shared/data/ml-100k
BENCH_ENV := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

bench-install: install
	$(BIN)/pip install -q -e ".[dev,bench]"

bench-quality: bench-install
	@test -f $(ML100K)/u1.base || { echo "needs GroupLens ml-100k (u.data, u1..u5.base/test):" \
		"ML100K=$(ML100K) has none; the RecBole copy of 'because data fetch' has no folds"; exit 2; }
	$(BENCH_ENV) $(BIN)/python -m bench.rating_quality --data $(ML100K) --folds 1 2 3 4 5 \
		--heads dot mlp1 mlp2 --fold-heads dot
	$(BENCH_ENV) $(BIN)/python -m bench.new_users --data $(ML100K)
	$(BENCH_ENV) $(BIN)/python -m bench.ranking_quality --data $(ML100K)
	$(BENCH_ENV) $(BIN)/python -m bench.recommendations --data $(ML100K)
	$(BIN)/python -m bench.report

# Load test (wrk, from Debian's packages) with its floors, new-user speed against implicit
# ALS, and cost growth; results in bench/results/.
bench-serve: demo-artifact bench-install
	$(BIN)/python -m bench.serve_load --artifact $(ARTIFACT) \
		--ratings $(DATA_DIR)/movielens-100k/ml-100k.inter
	$(BIN)/python -m bench.new_user_speed --ratings $(DATA_DIR)/movielens-100k/ml-100k.inter
	$(BIN)/python -m bench.scaling

clean:
	rm -rf $(VENV) var
