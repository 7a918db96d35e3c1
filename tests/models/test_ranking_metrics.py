"""Our top-N metric code against an independent implementation, the `ranx` package."""

from __future__ import annotations

import numpy as np
import pytest
from ranx.metrics import hit_rate, ndcg, recall, reciprocal_rank

from models.evaluation.ranking import RankingTask, evaluate_ranking


# ranx compiles with numba on first use (its low-level metrics only: the Qrels/Run layer
# would triple the compile time), and numba warns about one of its own casts.
@pytest.mark.filterwarnings("ignore:unsafe cast")
def test_metrics_agree_with_ranx_on_random_rankings() -> None:
    rng = np.random.default_rng(0)
    n_users, n_items, k = 60, 80, 10
    scores = rng.random((n_users, n_items))
    seen, relevant = [], []
    for _ in range(n_users):
        order = rng.permutation(n_items)
        n_seen, n_relevant = rng.integers(0, 20), rng.integers(1, k + 1)
        seen.append(order[:n_seen])
        relevant.append({int(i) for i in order[n_seen : n_seen + n_relevant]})
    task = RankingTask(users=[f"u{u}" for u in range(n_users)], seen=seen, relevant=relevant)

    ours = evaluate_ranking(task, lambda rows: scores[rows], k=k, batch=16)

    # ranx's arrays: per user, (id, relevance) rows padded with relevance 0 (ignored), and
    # the unseen items as (id, score) best first, padded after the top k with id -1.
    qrels = np.zeros((n_users, k, 2))
    run = np.full((n_users, n_items, 2), -1.0)
    for row in range(n_users):
        rel = sorted(relevant[row])
        qrels[row, : len(rel)] = [[i, 1.0] for i in rel]
        qrels[row, len(rel) :, 0] = -2.0
        unseen = np.setdiff1d(np.arange(n_items), seen[row])
        ranked = unseen[np.argsort(-scores[row, unseen])]
        run[row, : len(ranked)] = np.column_stack([ranked, scores[row, ranked]])
    theirs = {
        "ndcg": ndcg(qrels, run, k), "recall": recall(qrels, run, k),
        "hit_rate": hit_rate(qrels, run, k), "mrr": reciprocal_rank(qrels, run, k),
    }

    # Relevant sets hold at most k items, where ranx's Recall@k (hits / |relevant|) and ours
    # (hits / min(k, |relevant|)) are the same quantity.
    assert 0 < ours["ndcg"] < 1  # the random rankings hit some relevant items, not all
    for name, per_user in theirs.items():
        assert ours[name] == pytest.approx(float(np.mean(per_user)), abs=1e-9), name
