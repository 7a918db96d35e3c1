"""Top-N peers fitted on the same training data: popularity, item-kNN and EASE.

EASE (Steck, 2019) is a closed-form item-item model on the binary interaction matrix X:
B = argmin ||X - XB||^2 + lambda ||B||^2 with diag(B) = 0, solved through the inverse of
X^T X + lambda I. It is strong on MovieLens-sized catalogues and cheap to fit, which makes
it the bar a ranking model must clear.
"""

from __future__ import annotations

from typing import Self

import numpy as np

from models.data.table import IdMap, RatingTable


def interaction_matrix(table: RatingTable, user_ids: IdMap, item_ids: IdMap) -> np.ndarray:
    """Binary (users, items) float32 matrix of who rated what, items the map knows only."""
    known = np.fromiter((i in item_ids for i in table.items.tolist()), bool, len(table))
    table = table.take(known)
    x = np.zeros((len(user_ids), len(item_ids)), np.float32)
    x[user_ids.encode(table.users), item_ids.encode(table.items)] = 1.0
    return x


class Popularity:
    name = "popularity"

    def fit(self, x: np.ndarray) -> Self:
        self.counts = x.sum(axis=0)
        return self

    def score(self, x_rows: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.counts, x_rows.shape)


class Ease:
    name = "ease"

    def __init__(self, reg: float = 300.0):
        self.reg = reg

    def fit(self, x: np.ndarray) -> Self:
        gram = (x.T @ x).astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.reg
        inverse = np.linalg.inv(gram)
        self.weights = (-inverse / np.diag(inverse)).astype(np.float32)
        np.fill_diagonal(self.weights, 0.0)
        return self

    def score(self, x_rows: np.ndarray) -> np.ndarray:
        return x_rows @ self.weights


class ItemKnn:
    """Cosine item-item similarity on X, each item keeping its `neighbours` most similar;
    a user's score for j is the summed similarity of j to the items they rated."""

    name = "item_knn"

    def __init__(self, neighbours: int = 100):
        self.neighbours = neighbours

    def fit(self, x: np.ndarray) -> Self:
        norms = np.sqrt(x.sum(axis=0))
        similarity = (x.T @ x) / np.maximum(np.outer(norms, norms), 1e-12)
        np.fill_diagonal(similarity, 0.0)
        if self.neighbours < similarity.shape[0]:
            weakest = np.argpartition(-similarity, self.neighbours, axis=1)[:, self.neighbours :]
            np.put_along_axis(similarity, weakest, 0.0, axis=1)
        self.weights = similarity.T.astype(np.float32)  # weights[i, j]: i rated -> j scored
        return self

    def score(self, x_rows: np.ndarray) -> np.ndarray:
        return x_rows @ self.weights
