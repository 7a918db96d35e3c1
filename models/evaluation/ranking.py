"""Top-N metrics over whole-catalogue rankings, and the protocol that produces them.

Protocol (Lake et al., 2019, and what `/v1/rank` faces): each user's last n ratings by time
are held out; every item the user has not rated in training is ranked; the held-out items (or
the held-out items rated at least `min_rating`) are the relevant ones. Binary relevance:
    NDCG@k    DCG of the top k over the DCG of an ideal top k (min(k, |relevant|) hits)
    Recall@k  hits in the top k over min(k, |relevant|)
    HitRate@k 1 when any relevant item is in the top k
    MRR@k     1 / rank of the first relevant item in the top k, else 0
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from models.data.table import IdMap, RatingTable


def metrics_at_k(ranked: np.ndarray, relevant: set[int], k: int = 10) -> dict[str, float]:
    """One user's metrics; ranked holds item indices best first (at least k when possible)."""
    if not relevant:
        raise ValueError("a user without relevant items has no ranking metrics")
    top = ranked[:k]
    hits = np.fromiter((int(i) in relevant for i in top), bool, len(top))
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = discounts[: min(k, len(relevant))].sum()
    first = int(np.argmax(hits)) if hits.any() else -1
    return {
        "ndcg": float(discounts[: len(top)][hits].sum() / ideal),
        "recall": float(hits.sum() / min(k, len(relevant))),
        "hit_rate": float(hits.any()),
        "mrr": 1.0 / (first + 1) if first >= 0 else 0.0,
    }


@dataclass(frozen=True)
class RankingTask:
    """Per user: the dense items seen in training (excluded from ranking) and the relevant
    held-out items. Users whose relevant set is empty are left out."""

    users: list[str]
    seen: list[np.ndarray]
    relevant: list[set[int]]


def ranking_task(
    train: RatingTable, test: RatingTable, item_ids: IdMap, min_rating: float | None = None
) -> RankingTask:
    """Relevant = test items the model knows (rated >= min_rating when given)."""
    keep = np.fromiter((i in item_ids for i in test.items.tolist()), bool, len(test))
    if min_rating is not None:
        keep &= test.ratings >= min_rating
    test = test.take(keep)
    relevant: dict[str, set[int]] = {}
    for user, item in zip(test.users.tolist(), item_ids.encode(test.items).tolist(), strict=True):
        relevant.setdefault(user, set()).add(item)
    known = np.fromiter((i in item_ids for i in train.items.tolist()), bool, len(train))
    train = train.take(known)
    seen: dict[str, list[int]] = {}
    encoded = item_ids.encode(train.items).tolist()
    for user, item in zip(train.users.tolist(), encoded, strict=True):
        seen.setdefault(user, []).append(item)
    users = sorted(relevant)
    return RankingTask(
        users=users,
        seen=[np.array(seen.get(u, []), np.int64) for u in users],
        relevant=[relevant[u] for u in users],
    )


ScoreUsers = Callable[[list[int]], np.ndarray]  # user positions -> (len, n_items) scores


def evaluate_ranking(
    task: RankingTask, score_users: ScoreUsers, k: int = 10, batch: int = 128
) -> dict[str, float]:
    """Mean metrics over the task's users; seen items are never ranked."""
    totals: dict[str, float] = {}
    for start in range(0, len(task.users), batch):
        positions = list(range(start, min(start + batch, len(task.users))))
        scores = np.array(score_users(positions), dtype=np.float64, copy=True)
        for row, position in enumerate(positions):
            scores[row, task.seen[position]] = -np.inf
            top = _top_k(scores[row], k)
            for name, value in metrics_at_k(top, task.relevant[position], k).items():
                totals[name] = totals.get(name, 0.0) + value
    return {name: value / len(task.users) for name, value in totals.items()}


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores, best first; ties go to the smaller index (NaN
    last). Sorts only the scores that can make the top k (every tie at the border
    included); with a NaN, whose place a partition does not keep, all of them."""
    if k < len(scores) and not np.isnan(scores).any():
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        contenders = np.flatnonzero(scores >= kth)
        return contenders[np.lexsort((contenders, -scores[contenders]))][:k]
    return np.lexsort((np.arange(len(scores)), -scores))[:k]
