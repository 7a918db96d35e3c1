"""Our top-N metric code against an independent implementation, the `ranx` package."""

from __future__ import annotations

import numpy as np
import pytest
from ranx import Qrels, Run, evaluate

from models.ranking_metrics import RankingTask, evaluate_ranking


# ranx compiles with numba on first use, and numba warns about one of its own casts.
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

    # Relevant sets hold at most k items, where ranx's Recall@k (hits / |relevant|) and ours
    # (hits / min(k, |relevant|)) are the same quantity.
    qrels = Qrels({u: {str(i): 1 for i in relevant[row]} for row, u in enumerate(task.users)})
    run = Run({
        u: {str(i): float(scores[row, i]) for i in np.setdiff1d(np.arange(n_items), seen[row])}
        for row, u in enumerate(task.users)
    })
    theirs = evaluate(qrels, run, [f"ndcg@{k}", f"recall@{k}", f"hit_rate@{k}", f"mrr@{k}"])

    assert 0 < ours["ndcg"] < 1  # the random rankings hit some relevant items, not all
    for name in ("ndcg", "recall", "hit_rate", "mrr"):
        assert ours[name] == pytest.approx(theirs[f"{name}@{k}"], abs=1e-9), name
