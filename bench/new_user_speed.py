"""Serving a user the model has never seen, in process: our models against implicit ALS's
recalculate-user path, on the same MovieLens-100K histories, one user per call.

ALS (fitted on all of ML-100K) recomputes the user's factors from their items by one
least-squares solve, then scores every item: `recommend(..., recalculate_user=True)`. Ours
ranks every unrated item with the ranker and rates the top 10 (`Predictor.run`, what
`/v1/rank` runs), on the production architecture with random weights (cost does not depend
on weight values). The profile splits our time into the ranker's forward, the rating of the
top 10 and the rest (padding, copies).

    .venv/bin/python -m bench.new_user_speed --ratings ../shared/data/ml-100k/u.data
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy.sparse import csr_matrix

from bench.record import append_result
from bench.scaling import synthetic_predictor
from models.data.readers import read_ratings
from models.data.table import IdMap
from models.evaluation.ranking_baselines import interaction_matrix
from models.evaluation.rating import histories_by_user
from models.history import pad_batch
from models.inference.predictor import ScoreJob
from models.inference.scoring import ranking_scores, rating_output


def median_ms(calls: list[Callable[[], object]], rounds: int = 3) -> float:
    samples = []
    for round_ in range(rounds + 1):
        for call in calls:
            started = time.perf_counter()
            call()
            if round_:  # the first round warms up
                samples.append((time.perf_counter() - started) * 1000)
    return float(np.median(samples))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=Path, default=Path("../shared/data/ml-100k/u.data"),
                        help="ML-100K ratings in any layout (u.data, ml-100k.inter)")
    parser.add_argument("--users", type=int, default=200)
    args = parser.parse_args()
    from implicit.cpu.als import AlternatingLeastSquares

    torch.set_num_threads(1)  # ALS's recommend for one user runs on one thread too
    table, _ = read_ratings(args.ratings)
    item_ids = IdMap.from_values(table.items)
    user_ids = IdMap.from_values(table.users)
    x = csr_matrix(interaction_matrix(table, user_ids, item_ids))
    als = AlternatingLeastSquares(factors=64, regularization=0.1, alpha=10.0, iterations=15,
                                  random_state=0)
    als.fit(x, show_progress=False)
    histories = histories_by_user(table, item_ids)
    rng = np.random.default_rng(0)
    users = rng.choice(len(user_ids), size=min(args.users, len(user_ids)), replace=False)

    predictor, _ = synthetic_predictor(len(item_ids), torch.device("cpu"))
    every = np.arange(len(item_ids), dtype=np.int64)
    jobs, batches, top10 = [], [], []
    for u in users.tolist():
        h = histories[user_ids.ids[u]]
        jobs.append(ScoreJob(h, every[~np.isin(every, h.items)], "ranking", top=10))
        batches.append(pad_batch([h.newest(predictor.max_history)], [jobs[-1].targets]))
        top10.append(pad_batch([h.newest(predictor.max_context)], [jobs[-1].targets[:10]]))

    figures = {
        "als_recalculate_user_ms": median_ms([
            lambda u=u: als.recommend(u, x[u], N=10, recalculate_user=True,
                                      filter_already_liked_items=True)
            for u in users.tolist()
        ]),
        "ours_scorer_run_ms": median_ms([lambda j=j: predictor.run([j]) for j in jobs]),
        "ours_ranker_forward_ms": median_ms([
            lambda b=b: ranking_scores(predictor.ranking_model, b, predictor.item_side)
            for b in batches
        ]),
        "ours_rate_top10_ms": median_ms(
            [lambda b=b: rating_output(predictor.rating_model, b) for b in top10]),
        "users": len(users),
        "mean_history": float(np.mean([len(j.history.items) for j in jobs])),
        "catalogue": len(item_ids),
    }
    ratio = figures["ours_scorer_run_ms"] / figures["als_recalculate_user_ms"]
    rest = (figures["ours_scorer_run_ms"] - figures["ours_ranker_forward_ms"]
            - figures["ours_rate_top10_ms"])
    print(f"{figures['users']} ML-100K users (mean history {figures['mean_history']:.0f}), "
          f"whole catalogue of {figures['catalogue']} items, one user per call, one thread")
    print(f"implicit ALS recalculate_user + recommend: p50 "
          f"{figures['als_recalculate_user_ms']:.3f} ms")
    print(f"ours (Predictor.run): p50 {figures['ours_scorer_run_ms']:.3f} ms = x{ratio:.1f} ALS; "
          f"ranker forward {figures['ours_ranker_forward_ms']:.3f} ms, rating the top 10 "
          f"{figures['ours_rate_top10_ms']:.3f} ms, the rest {rest:.3f} ms")
    print(f"appended to {append_result('new_user_speed', {**figures, 'ratio': ratio})}")


if __name__ == "__main__":
    main()
