"""How the scoring cost grows: history length, candidates, catalogue size, batch size.

In process, on models with the production architecture and random weights (cost does not
depend on the weights' values), so it needs no trained artifact and runs the same on a GPU:
- history length 10..1000 (1000 candidates): the models read at most their caps;
- candidates 10..10,000 (128-item history);
- catalogue size 10k..1M items: FAISS retrieval (exact below 50k items, IVF above) of
  candidates for the newest history items (the service's settings), then scoring them;
  beside scoring every item;
- jobs per micro-batch 1..128 (1000 candidates each): candidates scored per second.
Each figure is the median of repeated Predictor.run calls (the service's scoring call).
Writes bench/results/scaling.jsonl and a chart per axis (`bench.charts.scaling_charts`,
which `bench.report` draws again from the record).

    .venv/bin/python -m bench.scaling --device auto
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

from bench.charts import scaling_charts
from bench.record import RESULTS_DIR, append_result
from models.artifact import Artifact
from models.data.table import Catalogue, IdMap, RatingScale
from models.history import History
from models.inference.device import resolve_device
from models.inference.predictor import Predictor, ScoreJob
from models.networks.ranking import RankingModel
from models.networks.rating import RatingModel
from models.training.ranking import RankingTrainConfig
from models.training.rating import RatingTrainConfig
from service.retrieval import ItemIndex
from service.settings import Settings

EMBEDDING_DIM = 256  # co-occurrence (128) beside the rating model's M (128), as trained


def synthetic_artifact(n_items: int, seed: int = 0) -> Artifact:
    """An artifact over `n_items` with default architectures and random weights, its frozen
    item embeddings clustered (so FAISS neighbourhoods look like real ones)."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    centres = rng.standard_normal((max(1, n_items // 100), EMBEDDING_DIM)).astype(np.float32)
    noise = 0.5 * rng.standard_normal((n_items, EMBEDDING_DIM)).astype(np.float32)
    embeddings = centres[rng.integers(len(centres), size=n_items)] + noise
    scale = RatingScale()
    rating_train, ranking_train = RatingTrainConfig(), RankingTrainConfig()
    rating = RatingModel(rating_train.model, n_items, scale)
    ranking = RankingModel(ranking_train.model, torch.from_numpy(embeddings), scale)
    return Artifact(
        rating_model=rating.eval(),
        ranking_model=ranking.eval(),
        item_ids=IdMap([str(i) for i in range(n_items)]),
        catalogue=Catalogue.empty(),
        manifest={"rating": rating_train.to_dict(), "ranking": ranking_train.to_dict()},
    )


def synthetic_predictor(n_items: int, device: torch.device) -> tuple[Predictor, np.ndarray]:
    """A Predictor over `synthetic_artifact(n_items)`, and its item embeddings."""
    artifact = synthetic_artifact(n_items)
    return Predictor(artifact, device), artifact.ranking_model.item_embeddings.numpy()


def median_ms(call: Callable[[], object], device: torch.device, repeats: int) -> float:
    for _ in range(3):
        call()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        samples.append((time.perf_counter() - started) * 1000)
    return float(np.median(samples))


def history(n_items: int, length: int, rng: np.random.Generator) -> History:
    items = rng.choice(n_items, size=length, replace=length > n_items)
    return History(items.astype(np.int64), rng.integers(1, 6, size=length).astype(np.float32))


def rank_job(h: History, targets: np.ndarray) -> ScoreJob:
    return ScoreJob(h, targets, "ranking", top=10)


def by_history_candidates_batch(
    predictor: Predictor, n_items: int, device: torch.device, repeats: int,
    rng: np.random.Generator,
) -> dict[str, dict]:
    targets = rng.choice(n_items, size=1000, replace=False)
    h128 = history(n_items, 128, rng)
    out: dict[str, dict] = {"history_length": {}, "candidates": {}, "candidates_per_second": {}}
    for length in (10, 30, 100, 300, 1000):
        job = rank_job(history(n_items, length, rng), targets)
        out["history_length"][length] = median_ms(
            lambda j=job: predictor.run([j]), device, repeats)
    for count in (10, 100, 1000, 10_000):
        job = rank_job(h128, rng.choice(n_items, size=count, replace=False))
        out["candidates"][count] = median_ms(lambda j=job: predictor.run([j]), device, repeats)
    for jobs in (1, 8, 32, 128):
        batch = [rank_job(history(n_items, 128, rng), targets) for _ in range(jobs)]
        ms = median_ms(lambda b=batch: predictor.run(b), device, max(5, repeats // 3))
        out["candidates_per_second"][jobs] = jobs * 1000 / (ms / 1000)
    return out


def by_catalogue(
    n_items: int, device: torch.device, repeats: int, rng: np.random.Generator
) -> dict[str, float]:
    """FAISS retrieval for a 128-item history, scoring what it returns, and scoring every
    item instead, on a catalogue of `n_items`."""
    settings = Settings()
    predictor, embeddings = synthetic_predictor(n_items, device)
    started = time.perf_counter()
    index = ItemIndex(embeddings, rng.standard_normal(n_items).astype(np.float32),
                      nprobe=settings.retrieval_probes)
    build_s = time.perf_counter() - started
    h = history(n_items, 128, rng)
    newest = h.items[::-1][: settings.retrieval_queries]

    def retrieve() -> np.ndarray:
        return index.candidates(newest, settings.retrieval_per_query, settings.retrieval_popular)

    every = np.arange(n_items, dtype=np.int64)
    return {
        "index_build_s": build_s,
        "candidates": len(retrieve()),
        "retrieval_ms": median_ms(retrieve, device, repeats),
        "retrieve_and_score_ms": median_ms(
            lambda: predictor.run([rank_job(h, retrieve())]), device, repeats),
        "score_every_item_ms": median_ms(
            lambda: predictor.run([rank_job(h, every)]), device, max(3, repeats // 5)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--max-catalogue", type=int, default=1_000_000)
    args = parser.parse_args()
    device = resolve_device(args.device)
    rng = np.random.default_rng(0)

    predictor, _ = synthetic_predictor(100_000, device)
    figures = by_history_candidates_batch(predictor, 100_000, device, args.repeats, rng)
    del predictor
    figures["catalogue"] = {}
    for n_items in (10_000, 100_000, 1_000_000):
        if n_items <= args.max_catalogue:
            figures["catalogue"][n_items] = by_catalogue(n_items, device, args.repeats, rng)
            print(n_items, figures["catalogue"][n_items], flush=True)

    print(f"device {device}; median ms of Predictor.run (rank job, top 10 rated), 100k items")
    for axis in ("history_length", "candidates"):
        print(f"{axis}: " + ", ".join(f"{k}: {v:.2f}" for k, v in figures[axis].items()))
    print("candidates scored per second by jobs per batch: " + ", ".join(
        f"{k}: {v:,.0f}" for k, v in figures["candidates_per_second"].items()))
    for n_items, f in figures["catalogue"].items():
        print(f"catalogue {n_items:>9,}: retrieval {f['retrieval_ms']:.2f} ms "
              f"({f['candidates']} candidates), retrieve + score {f['retrieve_and_score_ms']:.2f}"
              f" ms, score every item {f['score_every_item_ms']:.1f} ms, index build "
              f"{f['index_build_s']:.1f} s")
    record = {"device": str(device), **figures}
    scaling_charts(record, RESULTS_DIR)
    print(f"appended to {append_result('scaling', record)}")


if __name__ == "__main__":
    main()
