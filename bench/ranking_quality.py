"""Top-N ranking on MovieLens-100K: our ranker through the service's scoring path, beside
popularity, item-kNN, EASE, ALS and BPR fitted on the same data in the same run; and FAISS
retrieval recall.

Protocol: each user's last 10 ratings by time held out (`u.data`); every item the user has
not rated is ranked. Ours: `build_artifact` on the past, then, per user, exactly what
`/v1/rank` without candidates runs: `Predictor.run` on a ranking job over every unrated item.
Each peer's settings are tuned on a validation split of the past (each user's last 10 of
it), never on the test. Needs the bench extra: `pip install -e .[bench]`. Retrieval
recall: the share of the ranker's exhaustive top 10 that FAISS candidates (service
settings) contain, for several candidate counts.

    .venv/bin/python -m bench.ranking_quality --data ../shared/data/ml-100k
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from bench.implicit_peers import ImplicitPeer
from bench.record import append_result
from models.artifact import load_artifact
from models.data.readers import read_items, read_ratings
from models.data.splits import temporal_holdout
from models.data.table import IdMap, RatingTable
from models.evaluation.ranking import RankingTask, ScoreUsers, evaluate_ranking, ranking_task
from models.evaluation.ranking_baselines import Ease, ItemKnn, Popularity, interaction_matrix
from models.evaluation.rating import histories_by_user
from models.history import History
from models.inference.predictor import Predictor, ScoreJob
from models.training.pipeline import build_artifact
from service.retrieval import ItemIndex

Peer = Popularity | ItemKnn | Ease | ImplicitPeer
PEER_GRIDS: dict[str, tuple[Callable[..., Peer], list[dict]]] = {
    "item_knn": (ItemKnn, [{"neighbours": k} for k in (50, 100, 200, 400)]),
    "ease": (Ease, [{"reg": r} for r in (50.0, 100.0, 200.0, 400.0, 800.0)]),
    "als": (
        lambda **p: ImplicitPeer("als", **p),
        [{"factors": f, "regularization": r, "alpha": a, "iterations": 15}
         for f in (32, 64, 128) for r in (0.01, 0.1) for a in (1.0, 10.0)],
    ),
    "bpr": (
        lambda **p: ImplicitPeer("bpr", **p),
        [{"factors": f, "learning_rate": lr, "regularization": 0.01, "iterations": 100}
         for f in (32, 64, 128) for lr in (0.01, 0.05)],
    ),
}
RETRIEVAL_PER_QUERY = (10, 25, 50, 100, 200)


def peer_scores(model: Peer, x: np.ndarray, user_ids: IdMap, task: RankingTask):
    def score(rows: list[int]) -> np.ndarray:
        users = [user_ids.index(task.users[r]) for r in rows]
        if isinstance(model, ImplicitPeer):
            return model.score_users(users)
        return model.score(x[users])

    return score


def ranker_scores(
    predictor: Predictor, histories: dict[str, History], task: RankingTask
) -> ScoreUsers:
    """What `/v1/rank` without candidates runs: every item the user has not rated, scored
    in the ranking order (`Predictor.run` on a ranking job)."""
    every_item = np.arange(predictor.ranking_model.n_items)

    def score(rows: list[int]) -> np.ndarray:
        jobs = []
        for r in rows:
            history = histories[task.users[r]]
            pool = every_item[~np.isin(every_item, history.items)]
            jobs.append(ScoreJob(history, pool, "ranking", top=0))
        out = np.full((len(rows), len(every_item)), -np.inf)
        for row, (job, result) in enumerate(zip(jobs, predictor.run(jobs), strict=True)):
            out[row, job.targets] = result.ranking
        return out

    return score


def tuned(
    make: Callable[..., Peer], grid: list[dict], past: RatingTable, item_ids: IdMap
) -> tuple[dict, dict[str, float]]:
    """The grid point with the best NDCG@10 on the past's own last 10 (never the test)."""
    fit, val = temporal_holdout(past, 10)
    user_ids = IdMap.from_values(fit.users)
    x = interaction_matrix(fit, user_ids, item_ids)
    task = ranking_task(fit, val, item_ids)
    found = {
        json.dumps(params): evaluate_ranking(
            task, peer_scores(make(**params).fit(x), x, user_ids, task)
        )["ndcg"]
        for params in grid
    }
    return json.loads(max(found, key=found.get)), found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k"))
    args = parser.parse_args()

    table, _ = read_ratings(args.data / "u.data", layout="grouplens")
    catalogue = read_items(args.data / "u.item")
    past, future = temporal_holdout(table, 10)
    results: dict[str, dict] = {}

    with tempfile.TemporaryDirectory() as tmp:
        built = build_artifact(past, catalogue, Path(tmp), progress=False)
        artifact = load_artifact(Path(tmp))
    item_ids = artifact.item_ids
    predictor = Predictor(artifact, torch.device("cpu"))
    task = ranking_task(past, future, item_ids)
    user_histories = histories_by_user(past, item_ids)
    every_item = np.arange(len(item_ids))

    ours = ranker_scores(predictor, user_histories, task)

    started = time.perf_counter()
    results["attentive_ranker"] = evaluate_ranking(task, ours)
    results["attentive_ranker"]["seconds_per_user"] = (time.perf_counter() - started) / len(
        task.users
    )

    def by_rating(rows: list[int]) -> np.ndarray:
        jobs = [ScoreJob(user_histories[task.users[r]], every_item) for r in rows]
        return np.stack([result.ratings for result in predictor.run(jobs)])

    results["attentive_rating_order"] = evaluate_ranking(task, by_rating)

    user_ids = IdMap.from_values(past.users)
    x = interaction_matrix(past, user_ids, item_ids)
    results["popularity"] = evaluate_ranking(
        task, peer_scores(Popularity().fit(x), x, user_ids, task)
    )
    grids = {}
    for name, (make, grid) in PEER_GRIDS.items():
        params, grids[name] = tuned(make, grid, past, item_ids)
        results[name] = evaluate_ranking(
            task, peer_scores(make(**params).fit(x), x, user_ids, task)
        )
        results[name]["params"] = params

    vectors = predictor.item_vectors()
    index = ItemIndex(vectors.embeddings, vectors.bias)
    exhaustive = ours(list(range(len(task.users))))
    recall = {}
    for per_query in RETRIEVAL_PER_QUERY:
        found, sizes = [], []
        for row, user in enumerate(task.users):
            history = user_histories[user]
            top10 = set(np.argsort(-exhaustive[row])[:10].tolist())
            liked = history.items[history.ratings >= 4][::-1][:32]
            pool = set(index.candidates(liked, per_query, 100).tolist()) - set(history.items)
            found.append(len(top10 & pool) / 10)
            sizes.append(len(pool))
        recall[per_query] = {"recall_of_top10": float(np.mean(found)),
                             "mean_candidates": float(np.mean(sizes))}

    print(f"{len(task.users)} users, last 10 held out, every unrated item ranked")
    print("| model | NDCG@10 | Recall@10 | HitRate@10 | MRR@10 |")
    print("| --- | --- | --- | --- | --- |")
    for name, m in results.items():
        print(f"| {name} | {m['ndcg']:.4f} | {m['recall']:.4f} | {m['hit_rate']:.4f} "
              f"| {m['mrr']:.4f} |")
    for name, found in grids.items():
        print(f"{name} validation NDCG@10 by setting: {found}")
    print("FAISS retrieval recall of the exhaustive top 10:")
    for per_query, r in recall.items():
        print(f"  {per_query:4d} per query: recall {r['recall_of_top10']:.3f}, "
              f"{r['mean_candidates']:.0f} candidates")
    ranker = built.ranking
    print(f"ranker: best epoch {ranker.best_epoch}, validation NDCG@10 "
          f"{ranker.validation_ndcg:.4f}, {ranker.seconds:.0f} s; rating model "
          f"{built.rating.seconds:.0f} s")
    path = append_result("ranking", {
        "results": results, "validation_grids": grids, "retrieval_recall": recall,
        "ranker_train_seconds": ranker.seconds, "ranker_best_epoch": ranker.best_epoch,
        "ranker_config": artifact.manifest["ranking"],
    })
    print(f"appended to {path}")


if __name__ == "__main__":
    main()
