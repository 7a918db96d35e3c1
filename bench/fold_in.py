"""Serving a new user from a model trained without them: the no-retraining peers.

Each peer keeps everything learned from the other users frozen (the global mean mu, item
biases b_i, item factors q_i, item-item similarities) and fits only what belongs to the new
user from the ratings they revealed:

    bias fold-in   b_u = sum(r - mu - b_i) / (reg + n): one ALS step of BaselineOnly
    item-kNN       mu + b_u + b_i + the similarity-weighted residuals of the k revealed
                   items most similar to the target (KNNBaseline's rule)
    SVD fold-in    (p_u, b_u) by ridge regression of r - mu - b_i on [q_i, 1]

Items the frozen model never saw are skipped in a history and predicted as mu + b_u.
Predictions are clipped to the rating scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.data.table import RatingScale, RatingTable


@dataclass(frozen=True)
class FrozenItems:
    """What a model fitted without the new users knows about items.

    index: raw item id -> row; item_bias: (n_items,); factors: (n_items, k) or None;
    similarity: (n_items, n_items) or None.
    """

    index: dict[str, int]
    mean: float
    item_bias: np.ndarray
    factors: np.ndarray | None = None
    similarity: np.ndarray | None = None

    def encode(self, items: np.ndarray) -> np.ndarray:
        """(n,) rows of the given raw ids, -1 where unknown."""
        return np.fromiter((self.index.get(i, -1) for i in items.tolist()), np.int64, len(items))


def fold_in_bias(residuals: np.ndarray, reg: float) -> float:
    """A user's bias from their residuals r - mu - b_i, shrunk towards 0 by reg."""
    return float(residuals.sum() / (reg + len(residuals)))


def ridge_user(factors: np.ndarray, residuals: np.ndarray, reg: float) -> tuple[np.ndarray, float]:
    """(p_u (k,), b_u) minimising sum (res - b_u - p_u.q_i)^2 + reg (|p_u|^2 + b_u^2).

    factors: (n, k) frozen q_i of the rated items; residuals: (n,) r - mu - b_i.
    """
    x = np.hstack([factors, np.ones((len(factors), 1))])  # (n, k + 1)
    solution = np.linalg.solve(x.T @ x + reg * np.eye(x.shape[1]), x.T @ residuals)
    return solution[:-1], float(solution[-1])


def knn_residual(similarity: np.ndarray, residuals: np.ndarray, k: int) -> float:
    """Weighted mean residual of the k most similar items, over those with similarity > 0.

    similarity: (n,) of the target to each rated item; residuals: (n,) r - baseline.
    """
    top = np.argsort(-similarity, kind="stable")[:k]
    positive = top[similarity[top] > 0]
    weight = similarity[positive].sum()
    return float(similarity[positive] @ residuals[positive] / weight) if weight > 0 else 0.0


def predict_bias_fold_in(
    frozen: FrozenItems, revealed: RatingTable, hidden: RatingTable, reg: float,
    scale: RatingScale,
) -> np.ndarray:
    """(len(hidden),) mu + b_u + b_i with b_u folded in from each user's revealed ratings."""
    out = np.empty(len(hidden))
    for rows, _items, residuals, targets in _per_user(frozen, revealed, hidden):
        b_u = fold_in_bias(residuals, reg)
        out[rows] = frozen.mean + b_u + np.where(targets >= 0, frozen.item_bias[targets], 0.0)
    return np.clip(out, scale.low, scale.high)


def predict_knn_fold_in(
    frozen: FrozenItems, revealed: RatingTable, hidden: RatingTable, reg: float, k: int,
    scale: RatingScale,
) -> np.ndarray:
    """(len(hidden),) KNNBaseline's prediction over each user's revealed items."""
    if frozen.similarity is None:
        raise ValueError("item-kNN fold-in needs the frozen item-item similarity")
    out = np.empty(len(hidden))
    for rows, items, residuals, targets in _per_user(frozen, revealed, hidden):
        b_u = fold_in_bias(residuals, reg)
        neighbour_residuals = residuals - b_u  # r_j - (mu + b_u + b_j)
        for row, target in zip(rows, targets, strict=True):
            if target < 0:
                out[row] = frozen.mean + b_u
                continue
            shift = knn_residual(frozen.similarity[target, items], neighbour_residuals, k)
            out[row] = frozen.mean + b_u + frozen.item_bias[target] + shift
    return np.clip(out, scale.low, scale.high)


def predict_svd_fold_in(
    frozen: FrozenItems, revealed: RatingTable, hidden: RatingTable, reg: float,
    scale: RatingScale,
) -> np.ndarray:
    """(len(hidden),) mu + b_u + b_i + p_u.q_i with (p_u, b_u) fitted by ridge regression."""
    if frozen.factors is None:
        raise ValueError("SVD fold-in needs the frozen item factors")
    out = np.empty(len(hidden))
    for rows, items, residuals, targets in _per_user(frozen, revealed, hidden):
        p_u, b_u = ridge_user(frozen.factors[items], residuals, reg)
        known = targets >= 0
        dot = np.zeros(len(targets))
        dot[known] = frozen.factors[targets[known]] @ p_u
        out[rows] = (frozen.mean + b_u + dot
                     + np.where(known, frozen.item_bias[np.maximum(targets, 0)], 0.0))
    return np.clip(out, scale.low, scale.high)


def _per_user(frozen: FrozenItems, revealed: RatingTable, hidden: RatingTable):
    """Per hidden user: (hidden rows, revealed known item rows, their residuals r - mu - b_i,
    hidden target item rows (-1 unknown))."""
    revealed_items = frozen.encode(revealed.items)
    hidden_items = frozen.encode(hidden.items)
    by_user: dict[str, list[int]] = {}
    for row, user in enumerate(revealed.users.tolist()):
        if revealed_items[row] >= 0:
            by_user.setdefault(user, []).append(row)
    hidden_rows: dict[str, list[int]] = {}
    for row, user in enumerate(hidden.users.tolist()):
        hidden_rows.setdefault(user, []).append(row)
    for user, rows in hidden_rows.items():
        seen = np.array(by_user.get(user, []), np.int64)
        items = revealed_items[seen]
        residuals = revealed.ratings[seen].astype(np.float64) - frozen.mean
        residuals -= frozen.item_bias[items]
        rows_arr = np.array(rows, np.int64)
        yield rows_arr, items, residuals, hidden_items[rows_arr]
