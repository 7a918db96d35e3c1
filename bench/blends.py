"""How far can combining "will watch" with "will like" go? Every blend of the two models'
scores, measured on the same validation split the like weight is chosen on.

The past's own last 10 ratings per user held out (MovieLens-100K's temporal split, then
again); one artifact trained on the rest; every item scored for every user by both models
once; then each blend ranked by liked NDCG@10 (held-out items rated 4 or more) and NDCG@10:

    linear   logit + w (rating - mid), over the `depth` best by logit, predicted < mid last
             (the service's recommended order)
    probit   logit + log P(rating >= t), the rating ~ Normal(prediction, s): the log of
             P(watch) P(like | watch), over the `depth` best by logit

    .venv/bin/python -m bench.blends --data ../shared/data/ml-100k
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from scipy.stats import norm

from bench.record import append_result, provenance
from models.artifact import load_artifact
from models.data.readers import read_items, read_ratings
from models.data.splits import temporal_holdout
from models.evaluation.ranking import evaluate_ranking, ranking_task
from models.evaluation.rating import histories_by_user
from models.inference.scoring import catalogue_scores, predict_ratings
from models.training.pipeline import build_artifact

LIKED = 4.0
DEPTHS = (50, 100, 200, None)
WEIGHTS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
SPREADS = (0.5, 0.75, 1.0)
THRESHOLDS = (3.5, 4.0)


def within(logits: np.ndarray, scores: np.ndarray, depth: int | None) -> np.ndarray:
    """`scores` where the logit is among the row's `depth` best, else -inf."""
    if depth is None:
        return scores
    kth = -np.partition(-logits, depth - 1, axis=1)[:, depth - 1 : depth]
    return np.where(logits >= kth, scores, -np.inf)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k"))
    args = parser.parse_args()
    started = provenance()

    table, _ = read_ratings(args.data / "u.data", layout="grouplens")
    past, _ = temporal_holdout(table, 10)
    fit, val = temporal_holdout(past, 10)
    with tempfile.TemporaryDirectory() as tmp:
        build_artifact(fit, read_items(args.data / "u.item"), Path(tmp), progress=False)
        artifact = load_artifact(Path(tmp))
    histories = histories_by_user(fit, artifact.item_ids)
    users = sorted(histories)
    every = np.arange(len(artifact.item_ids))
    logits = np.concatenate([
        catalogue_scores(artifact.ranking_model, [histories[u] for u in users[s : s + 64]])
        for s in range(0, len(users), 64)])
    ratings = np.concatenate([
        np.stack(predict_ratings(artifact.rating_model, [histories[u] for u in chunk],
                                 [every] * len(chunk)))
        for chunk in (users[s : s + 32] for s in range(0, len(users), 32))])
    row = {user: r for r, user in enumerate(users)}
    tasks = {"liked_ndcg": ranking_task(fit, val, artifact.item_ids, min_rating=LIKED),
             "ndcg": ranking_task(fit, val, artifact.item_ids)}

    def measured(scores: np.ndarray) -> dict[str, float]:
        return {name: evaluate_ranking(
            task, lambda rows, task=task: scores[[row[task.users[r]] for r in rows]])["ndcg"]
            for name, task in tasks.items()}

    mid = artifact.scale.mid
    found = []
    for depth in DEPTHS:
        for weight in WEIGHTS:
            blend = logits + weight * (ratings - mid)
            blend = np.where(ratings < mid, blend - 1e6, blend)
            found.append({"blend": "linear", "weight": weight, "depth": depth,
                          **measured(within(logits, blend, depth))})
        for spread in SPREADS:
            for threshold in THRESHOLDS:
                blend = logits + norm.logcdf((ratings - threshold) / spread)
                found.append({"blend": "probit", "spread": spread, "threshold": threshold,
                              "depth": depth, **measured(within(logits, blend, depth))})
    print("| blend | depth | liked NDCG@10 | NDCG@10 |\n| --- | --- | --- | --- |")
    for f in sorted(found, key=lambda f: -f["liked_ndcg"]):
        how = (f"linear w={f['weight']}" if f["blend"] == "linear"
               else f"probit s={f['spread']} t={f['threshold']}")
        print(f"| {how} | {f['depth']} | {f['liked_ndcg']:.4f} | {f['ndcg']:.4f} |")
    print(f"appended to {append_result('blends', {'blends': found}, started)}")


if __name__ == "__main__":
    main()
