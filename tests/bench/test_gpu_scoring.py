"""The GPU benchmark is run only where a GPU is lent, seldom: here it runs on the CPU, so
that it still works when one is (every figure produced, the scores it compares equal)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from bench.gpu_scoring import BATCHES, largest_gap, measure, random_artifact, rank_jobs
from models.inference.predictor import Predictor

pytestmark = pytest.mark.slow
CPU = torch.device("cpu")


def test_every_figure_is_produced_on_the_cpu() -> None:
    figures = measure(random_artifact(1200), seconds=0.01)
    cpu = figures["devices"]["cpu"]
    assert set(cpu["candidate_scores_per_s"]) == set(BATCHES)
    assert all(rate > 0 for rate in cpu["candidate_scores_per_s"].values())
    assert figures["micro_batcher"]["requests_per_s_batched"] > 0
    assert figures["micro_batcher"]["requests_per_s_off"] > 0


def test_the_agreement_check_finds_two_copies_equal_and_a_changed_one_not() -> None:
    artifact = random_artifact(1200)
    jobs = rank_jobs(1200, 4)
    first, second = Predictor(artifact, CPU), Predictor(artifact, CPU)
    assert max(largest_gap(first, second, jobs).values()) == 0.0
    other = Predictor(random_artifact(1200, seed=1), CPU)
    assert largest_gap(first, other, jobs)["ranking"] > 1e-3


def test_it_runs_with_only_what_a_gpu_machines_image_holds() -> None:
    """The GPU machines' image has torch, numpy and safetensors, but no FAISS, FastAPI,
    Redis client or pyarrow: with those unimportable, the benchmark still scores."""
    script = textwrap.dedent("""
        import importlib.abc, sys
        class Absent(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in {"faiss", "fastapi", "redis", "pyarrow", "uvicorn"}:
                    raise ImportError(f"{name} is not on a GPU machine")
        sys.meta_path.insert(0, Absent())
        import torch
        from bench.gpu_scoring import random_artifact, rank_jobs
        from models.inference.predictor import Predictor
        [result] = Predictor(random_artifact(1200), torch.device("cpu")).run(rank_jobs(1200, 1))
        print(len(result.best))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "10"
