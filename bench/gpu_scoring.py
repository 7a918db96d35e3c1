"""The scoring path on the GPU beside the CPU, in process, in one run of about five minutes:
candidate scores per second for micro-batches of 1 to 128 requests x 1000 candidates on
each device, the largest gap between CPU and GPU scores (goal: within 1e-4), and the
micro-batcher's gain through the service's own `MicroBatcher` (goal: at least 3x the
throughput of batching off, which a CPU cannot show).

It needs only torch, numpy and safetensors, what a GPU machine's image holds: no Redis,
FastAPI or FAISS. Without `--artifact` it scores a model of the default architecture with
random weights over `--items` items: speed and CPU/GPU agreement do not depend on training.
Each request is what `POST /v1/rank` sends the scorer: a 128-item history and 1000
candidates, ranked by the ranking model, its best 10 rated by the rating model.

    python3 -m bench.gpu_scoring [--artifact A] [--items 1682] [--seconds 2] [--out F]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch

from bench.record import RESULTS_DIR, provenance
from models.artifact import Artifact, load_artifact
from models.data.readers import MOVIELENS_SCALE
from models.data.table import Catalogue, IdMap
from models.history import History
from models.inference.predictor import Predictor, ScoreJob
from models.networks.ranking import RankingModel, RankingModelConfig
from models.networks.rating import RatingModel, RatingModelConfig
from models.training.item_item import ITEM_ITEM_MAX_ITEMS
from service.batcher import MicroBatcher

BATCHES = (1, 2, 4, 8, 16, 32, 64, 128)
CANDIDATES = 1000
HISTORY = 128
TOP = 10
AGREEMENT_GOAL = 1e-4
BATCHING_GOAL = 3.0


def random_artifact(n_items: int, seed: int = 0) -> Artifact:
    """The default architecture over `n_items` items, randomly initialised, with the
    ranker's item-to-item term where training would fit one."""
    torch.manual_seed(seed)
    rating = RatingModel(RatingModelConfig(), n_items, MOVIELENS_SCALE).eval()
    config = RankingModelConfig()
    embeddings = torch.randn(n_items, rating.config.dim) / rating.config.dim ** 0.5
    ranking = RankingModel(config, embeddings, MOVIELENS_SCALE).eval()
    if n_items <= ITEM_ITEM_MAX_ITEMS:  # what training adds to a catalogue this small
        weights = torch.randn(n_items, n_items) * 1e-3
        ranking.with_item_item(weights.fill_diagonal_(0.0), 200.0)
    ids = [str(i) for i in range(n_items)]
    return Artifact(rating, ranking, IdMap(ids), Catalogue({}, {}), {})


def rank_jobs(n_items: int, count: int, seed: int = 0) -> list[ScoreJob]:
    rng = np.random.default_rng(seed)
    jobs = []
    for _ in range(count):
        items = rng.choice(n_items, HISTORY + CANDIDATES, replace=False).astype(np.int64)
        history = History(items[:HISTORY], rng.integers(1, 6, HISTORY).astype(np.float32))
        jobs.append(ScoreJob(history, items[HISTORY:], "ranking", top=TOP))
    return jobs


def scores_per_second(predictor: Predictor, jobs: list[ScoreJob], seconds: float) -> float:
    """Candidates scored per second by `Predictor.run` on `jobs` as one micro-batch."""
    for _ in range(3):  # warm-up: kernels, allocator, lazy initialisation
        predictor.run(jobs)
    calls, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        predictor.run(jobs)  # returns numpy arrays: the device has finished
        calls += 1
    return calls * len(jobs) * CANDIDATES / elapsed


def largest_gap(cpu: Predictor, other: Predictor, jobs: list[ScoreJob]) -> dict[str, float]:
    """The largest absolute difference of the ranking logits and of the predicted ratings
    both devices computed, over `jobs`."""
    gaps = {"ranking": 0.0, "rating": 0.0}
    for a, b in zip(cpu.run(jobs), other.run(jobs), strict=True):
        gaps["ranking"] = max(gaps["ranking"], float(np.abs(a.ranking - b.ranking).max()))
        both = ~np.isnan(a.ratings) & ~np.isnan(b.ratings)  # each rated its own best 10
        if both.any():
            gaps["rating"] = max(gaps["rating"],
                                 float(np.abs(a.ratings[both] - b.ratings[both]).max()))
    return gaps


async def through_batcher(predictor: Predictor, jobs: list[ScoreJob], max_size: int,
                          seconds: float, clients: int = 128) -> float:
    """Requests per second with `clients` concurrent submitters through a MicroBatcher of
    `max_size` (1: batching off), as the service drives it."""
    batcher = MicroBatcher(predictor.run, max_size, 0.002)
    await batcher.start()
    done = 0
    deadline = time.perf_counter() + seconds

    async def client(n: int) -> None:
        nonlocal done
        while True:  # one request at least: on a busy machine the deadline may pass first
            await batcher.submit(jobs[n % len(jobs)])
            done += 1
            if time.perf_counter() >= deadline:
                return

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    elapsed = time.perf_counter() - started
    await batcher.stop()
    return done / elapsed


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {torch.get_num_threads()} torch threads"


def measure(artifact: Artifact, seconds: float) -> dict:
    n_items = len(artifact.item_ids)
    jobs = rank_jobs(n_items, max(BATCHES))
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    # A copy each: Predictor moves the models to its device in place.
    predictors = {d.type: Predictor(copy.deepcopy(artifact), d) for d in devices}
    figures: dict = {"items": n_items, "devices": {}}
    for device in devices:
        predictor = predictors[device.type]
        rates = {b: scores_per_second(predictor, jobs[:b], seconds) for b in BATCHES}
        figures["devices"][device.type] = {
            "name": device_name(device),
            "candidate_scores_per_s": rates,
            "batching_gain_in_scorer": max(rates.values()) / rates[1],
        }
        print(device.type, device_name(device), {b: f"{r:,.0f}" for b, r in rates.items()},
              flush=True)
    fastest = devices[-1].type
    if "cuda" in predictors:
        figures["largest_gap"] = largest_gap(predictors["cpu"], predictors["cuda"], jobs[:32])
    batched = asyncio.run(through_batcher(predictors[fastest], jobs, 32, seconds * 3))
    alone = asyncio.run(through_batcher(predictors[fastest], jobs, 1, seconds * 3))
    figures["micro_batcher"] = {"device": fastest, "requests_per_s_batched": batched,
                                "requests_per_s_off": alone, "gain": batched / alone}
    return figures


def report(figures: dict) -> None:
    print(f"\n{figures['items']} items, {CANDIDATES} candidates per request, "
          f"{HISTORY}-item histories; candidate scores per second:")
    header = " | ".join(f"{b:>9}" for b in BATCHES)
    print(f"{'device':<28} | {header}")
    for row in figures["devices"].values():
        cells = " | ".join(f"{row['candidate_scores_per_s'][b]:>9,.0f}" for b in BATCHES)
        print(f"{row['name'][:28]:<28} | {cells}")
    if "largest_gap" in figures:
        gap = max(figures["largest_gap"].values())
        verdict = "met" if gap <= AGREEMENT_GOAL else "missed"
        print(f"CPU vs GPU, largest gap: {figures['largest_gap']} (goal <= {AGREEMENT_GOAL}: "
              f"{verdict})")
    else:
        print("no GPU here: CPU only; the GPU figures need a machine with one")
    batcher = figures["micro_batcher"]
    verdict = "met" if batcher["gain"] >= BATCHING_GOAL else "missed"
    print(f"micro-batcher on {batcher['device']}: {batcher['requests_per_s_batched']:.0f} "
          f"req/s batched (32) against {batcher['requests_per_s_off']:.0f} off: "
          f"x{batcher['gain']:.2f} (goal >= {BATCHING_GOAL:g}x on a GPU: {verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", type=Path, help="a trained artifact (default: random)")
    parser.add_argument("--items", type=int, default=1682, help="items of the random model")
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "gpu_scoring.jsonl",
                        help="the JSON lines file the run is appended to")
    args = parser.parse_args()
    started = provenance()
    artifact = (load_artifact(args.artifact) if args.artifact is not None
                else random_artifact(args.items))
    figures = measure(artifact, args.seconds)
    report(figures)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as out:
        out.write(json.dumps({**started, "artifact": str(args.artifact or "random"),
                              **figures}) + "\n")
    print(f"appended to {args.out}")


if __name__ == "__main__":
    main()
