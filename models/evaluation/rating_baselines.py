"""Rating-prediction baselines, fitted in the same run as our model for a fair comparison.

    GlobalMean     the mean training rating
    BiasBaseline   mu + b_u + b_i by alternating least squares (Surprise's BaselineOnly)
    BiasedMF       mu + b_u + b_i + p_u.q_i by minibatch SGD (Surprise's SVD, batched)

Unknown users or items fall back to the parts that are known.
"""

from __future__ import annotations

from typing import Protocol, Self

import numpy as np
import torch

from models.data.table import IdMap, RatingScale, RatingTable


class RatingBaseline(Protocol):
    name: str

    def fit(self, train: RatingTable) -> Self: ...

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray: ...


class _Encoded:
    """Dense indices for known ids; -1 for unknown ones."""

    def __init__(self, train: RatingTable):
        self.users = IdMap.from_values(train.users)
        self.items = IdMap.from_values(train.items)

    def encode(self, users: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u = np.fromiter((self.users.get(x) if x in self.users else -1 for x in users.tolist()),
                        np.int64, len(users))
        i = np.fromiter((self.items.get(x) if x in self.items else -1 for x in items.tolist()),
                        np.int64, len(items))
        return u, i


class GlobalMean:
    name = "global_mean"

    def __init__(self, scale: RatingScale = RatingScale()):
        self.scale = scale
        self.mean = 0.0

    def fit(self, train: RatingTable) -> Self:
        self.mean = float(np.mean(train.ratings, dtype=np.float64))
        return self

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return np.full(len(users), self.mean)


class BiasBaseline:
    name = "user_item_biases"

    def __init__(self, reg_items: float = 10.0, reg_users: float = 15.0, n_epochs: int = 10,
                 scale: RatingScale = RatingScale()):
        self.reg_items, self.reg_users, self.n_epochs, self.scale = (
            reg_items, reg_users, n_epochs, scale)

    def fit(self, train: RatingTable) -> Self:
        self.ids = _Encoded(train)
        u, i = self.ids.encode(train.users, train.items)
        r = train.ratings.astype(np.float64)
        self.mean = float(r.mean())
        n_u, n_i = len(self.ids.users), len(self.ids.items)
        self.b_u, self.b_i = np.zeros(n_u), np.zeros(n_i)
        count_u = np.bincount(u, minlength=n_u)
        count_i = np.bincount(i, minlength=n_i)
        for _ in range(self.n_epochs):
            self.b_i = np.bincount(i, r - self.mean - self.b_u[u], n_i) / (self.reg_items + count_i)
            self.b_u = np.bincount(u, r - self.mean - self.b_i[i], n_u) / (self.reg_users + count_u)
        return self

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        u, i = self.ids.encode(users, items)
        pred = self.mean + np.where(u >= 0, self.b_u[u], 0) + np.where(i >= 0, self.b_i[i], 0)
        return np.clip(pred, self.scale.low, self.scale.high)


class BiasedMF:
    name = "biased_mf"

    def __init__(self, n_factors: int = 100, n_epochs: int = 20, lr: float = 0.005,
                 reg: float = 0.02, batch_size: int = 32, seed: int = 0,
                 scale: RatingScale = RatingScale()):
        self.n_factors, self.n_epochs, self.lr, self.reg = n_factors, n_epochs, lr, reg
        self.batch_size, self.seed, self.scale = batch_size, seed, scale

    def fit(self, train: RatingTable) -> Self:
        self.ids = _Encoded(train)
        u_np, i_np = self.ids.encode(train.users, train.items)
        gen = torch.Generator().manual_seed(self.seed)
        n_u, n_i, k = len(self.ids.users), len(self.ids.items), self.n_factors
        u, i = torch.from_numpy(u_np), torch.from_numpy(i_np)
        r = torch.from_numpy(train.ratings.astype(np.float32))
        self.mean = float(r.mean())
        p = torch.randn(n_u, k, generator=gen) * 0.1
        q = torch.randn(n_i, k, generator=gen) * 0.1
        b_u, b_i = torch.zeros(n_u), torch.zeros(n_i)
        for _ in range(self.n_epochs):
            order = torch.randperm(len(r), generator=gen)
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                bu, bi = u[rows], i[rows]
                pu, qi = p[bu], q[bi]
                err = r[rows] - (self.mean + b_u[bu] + b_i[bi] + (pu * qi).sum(1))
                # Surprise's SGD step, applied to a small batch at once (rare collisions
                # within a batch simply add up).
                b_u.index_add_(0, bu, self.lr * (err - self.reg * b_u[bu]))
                b_i.index_add_(0, bi, self.lr * (err - self.reg * b_i[bi]))
                p.index_add_(0, bu, self.lr * (err[:, None] * qi - self.reg * pu))
                q.index_add_(0, bi, self.lr * (err[:, None] * pu - self.reg * qi))
        self.p, self.q, self.b_u, self.b_i = p.numpy(), q.numpy(), b_u.numpy(), b_i.numpy()
        return self

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        u, i = self.ids.encode(users, items)
        known = (u >= 0) & (i >= 0)
        dot = np.zeros(len(u))
        dot[known] = (self.p[u[known]] * self.q[i[known]]).sum(1)
        pred = (self.mean + np.where(u >= 0, self.b_u[u], 0) + np.where(i >= 0, self.b_i[i], 0)
                + dot)
        return np.clip(pred, self.scale.low, self.scale.high)


def fit_baselines(train: RatingTable, scale: RatingScale) -> list[RatingBaseline]:
    return [GlobalMean(scale).fit(train), BiasBaseline(scale=scale).fit(train),
            BiasedMF(scale=scale).fit(train)]
