"""Should the ranker learn what people will watch, or what they will watch and like?

The ranking model's softmax target weighs each next item the user went on to rate below
"liked" (4 stars on 1..5) by `unliked_weight`: 1 is today's "will watch", 0 learns only the
picks the user liked. Measured on a validation split only (the past's own last 10 ratings
per user held out from MovieLens-100K's temporal split, then again), one rating model shared
by every ranker; each ranker alone and in the recommended order (logit + w (rating - mid)
over the 100 best, predicted < mid last), by liked NDCG@10 (held-out items rated 4 or more)
and NDCG@10, beside EASE fitted on the same split:

    .venv/bin/python -m bench.liked_ranker --data ../shared/data/ml-100k
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench.blends import within
from bench.ranking_quality import PEER_GRIDS, peer_scores
from bench.record import append_result, provenance
from models.data.encoded import EncodedRatings
from models.data.readers import read_ratings
from models.data.splits import temporal_holdout
from models.data.table import IdMap, RatingScale
from models.evaluation.ranking import evaluate_ranking, ranking_task
from models.evaluation.ranking_baselines import interaction_matrix
from models.evaluation.rating import histories_by_user
from models.inference.scoring import catalogue_scores, predict_ratings
from models.training.item_embeddings import frozen_item_embeddings
from models.training.ranking import RankingTrainConfig, train_ranking_model
from models.training.rating import train_rating_model

UNLIKED_WEIGHTS = (1.0, 0.5, 0.25, 0.0)
LIKE_WEIGHTS = (0.0, 0.5, 1.0, 2.0)
DEPTH = 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k"))
    parser.add_argument("--unliked-weights", type=float, nargs="+", default=UNLIKED_WEIGHTS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    started = provenance()
    scale = RatingScale()

    table, _ = read_ratings(args.data / "u.data", layout="grouplens")
    past, _ = temporal_holdout(table, 10)
    fit, val = temporal_holdout(past, 10)
    data = EncodedRatings.encode(fit)
    rating_model = train_rating_model(data, scale, progress=False).model
    embeddings = frozen_item_embeddings(data, rating_model)
    histories = histories_by_user(fit, data.item_ids)
    users = sorted(histories)
    row = {user: r for r, user in enumerate(users)}
    every = np.arange(len(data.item_ids))
    ratings = np.concatenate([
        np.stack(predict_ratings(rating_model, [histories[u] for u in chunk],
                                 [every] * len(chunk)))
        for chunk in (users[s : s + 32] for s in range(0, len(users), 32))])
    tasks = {"liked_ndcg": ranking_task(fit, val, data.item_ids, min_rating=scale.liked),
             "ndcg": ranking_task(fit, val, data.item_ids)}

    def measured(scores: np.ndarray) -> dict[str, float]:
        return {name: evaluate_ranking(
            task, lambda rows, task=task: scores[[row[task.users[r]] for r in rows]])["ndcg"]
            for name, task in tasks.items()}

    found = [{"model": "EASE", **ease(fit, data.item_ids, tasks)}]
    for unliked in args.unliked_weights:
        for seed in args.seeds:
            config = RankingTrainConfig(unliked_weight=unliked, seed=seed)
            result = train_ranking_model(data, embeddings, scale, config, progress=False)
            logits = np.concatenate([
                catalogue_scores(result.model, [histories[u] for u in users[s : s + 64]])
                for s in range(0, len(users), 64)])
            for like in LIKE_WEIGHTS:
                blend = logits + like * (ratings - scale.mid)
                blend = np.where(ratings < scale.mid, blend - 1e6, blend)
                found.append({"model": "ranker", "unliked_weight": unliked, "seed": seed,
                              "like_weight": like, "best_epoch": result.best_epoch,
                              "seconds": round(result.seconds, 1),
                              **measured(within(logits, blend, DEPTH))})
                print(found[-1], flush=True)
    print("| model | unliked weight | like weight | seed | liked NDCG@10 | NDCG@10 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for f in found:
        print(f"| {f['model']} | {f.get('unliked_weight', '')} | {f.get('like_weight', '')} "
              f"| {f.get('seed', '')} | {f['liked_ndcg']:.4f} | {f['ndcg']:.4f} |")
    print(f"appended to {append_result('liked_ranker', {'found': found}, started)}")


def ease(fit, item_ids: IdMap, tasks: dict) -> dict[str, float]:
    """EASE at its best regulariser for NDCG@10 on this very split (generous to EASE)."""
    make, grid = PEER_GRIDS["ease"]
    user_ids = IdMap.from_values(fit.users)
    x = interaction_matrix(fit, user_ids, item_ids)
    fitted = [make(**params).fit(x) for params in grid]
    best = max(fitted, key=lambda m: evaluate_ranking(
        tasks["ndcg"], peer_scores(m, x, user_ids, tasks["ndcg"]))["ndcg"])
    return {name: evaluate_ranking(task, peer_scores(best, x, user_ids, task))["ndcg"]
            for name, task in tasks.items()}


if __name__ == "__main__":
    main()
