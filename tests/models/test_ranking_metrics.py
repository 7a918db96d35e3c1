"""Our top-N metric code against an independent implementation's figures.

The reference values below were computed once by the `ranx` package (0.3.21, its
`ranx.metrics` functions on the same seeded rankings, run-padded with id -1 after the unseen
items) and are kept here so the test suite does not install ranx and its 37 dependencies.
"""

from __future__ import annotations

import numpy as np
import pytest

from models.evaluation.ranking import RankingTask, _top_k, evaluate_ranking

RANX_FIGURES = {
    "ndcg": 0.11088163730383682,
    "recall": 0.12071428571428572,
    "hit_rate": 0.4666666666666667,
    "mrr": 0.2205092592592593,
}


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
    for name, theirs in RANX_FIGURES.items():
        assert ours[name] == pytest.approx(theirs, abs=1e-9), name


@pytest.mark.parametrize("k", [1, 10, 79, 80, 200])
def test_the_top_k_sorts_only_contenders_yet_equals_a_full_sort(k: int) -> None:
    rng = np.random.default_rng(k)
    for _ in range(50):
        scores = rng.integers(0, 6, 80).astype(np.float64)  # many ties, at the border too
        scores[rng.choice(80, 10, replace=False)] = -np.inf  # seen items
        if rng.random() < 0.3:
            scores[rng.choice(80, 3, replace=False)] = np.nan
        full = np.lexsort((np.arange(80), -scores))[:k]
        np.testing.assert_array_equal(_top_k(scores, k), full)
