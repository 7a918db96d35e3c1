"""The no-retraining peers of bench/new_users.py on planted data where the answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from bench.fold_in import (
    FrozenItems,
    fold_in_bias,
    knn_residual,
    predict_bias_fold_in,
    predict_svd_fold_in,
    ridge_user,
)
from models.data.table import RatingScale, RatingTable

WIDE = RatingScale(-100.0, 100.0)  # no clipping, so exact answers stay exact


def _table(user: str, items: list[str], ratings: np.ndarray) -> RatingTable:
    n = len(items)
    return RatingTable(np.array([user] * n), np.array(items), ratings.astype(np.float32),
                       np.arange(n, dtype=np.int64))


def test_ridge_recovers_planted_user_factors_and_bias() -> None:
    rng = np.random.default_rng(0)
    q = rng.normal(size=(50, 4))
    p, b = np.array([0.5, -1.0, 0.25, 2.0]), 0.7
    got_p, got_b = ridge_user(q, q @ p + b, reg=1e-8)
    assert np.allclose(got_p, p, atol=1e-6) and got_b == pytest.approx(b, abs=1e-6)
    shrunk_p, _ = ridge_user(q, q @ p + b, reg=1e3)
    assert np.linalg.norm(shrunk_p) < 0.5 * np.linalg.norm(p)


def test_bias_is_the_shrunk_mean_residual() -> None:
    assert fold_in_bias(np.array([1.0, 2.0, 3.0]), reg=3.0) == pytest.approx(1.0)


def test_knn_uses_the_k_most_similar_items_with_positive_similarity() -> None:
    similarity = np.array([0.9, -0.5, 0.1, 0.8])
    residuals = np.array([1.0, 10.0, 5.0, -1.0])
    assert knn_residual(similarity, residuals, k=2) == pytest.approx((0.9 - 0.8) / 1.7)
    assert knn_residual(similarity, residuals, k=4) == pytest.approx((0.9 - 0.8 + 0.5) / 1.8)
    assert knn_residual(np.array([-0.2, 0.0]), np.array([3.0, 4.0]), k=2) == 0.0


def test_a_user_planted_in_the_frozen_factor_space_is_predicted_exactly() -> None:
    rng = np.random.default_rng(1)
    n_items, k = 30, 3
    frozen = FrozenItems(
        index={f"i{j}": j for j in range(n_items)}, mean=3.5,
        item_bias=rng.normal(scale=0.3, size=n_items), factors=rng.normal(size=(n_items, k)),
    )
    p, b = np.array([0.4, -0.3, 0.2]), -0.2
    truth = frozen.mean + b + frozen.item_bias + frozen.factors @ p
    revealed = _table("new", [f"i{j}" for j in range(20)], truth[:20])
    hidden = _table("new", [f"i{j}" for j in range(20, 30)] + ["never-seen"],
                    np.r_[truth[20:], 0.0])

    svd = predict_svd_fold_in(frozen, revealed, hidden, reg=1e-8, scale=WIDE)
    assert np.allclose(svd[:-1], truth[20:], atol=1e-4)
    assert svd[-1] == pytest.approx(frozen.mean + b, abs=1e-4)  # unknown item: mu + b_u
    bias = predict_bias_fold_in(frozen, revealed, hidden, reg=0.0, scale=WIDE)
    user_bias = np.mean(truth[:20] - frozen.mean - frozen.item_bias[:20])
    assert np.allclose(bias[:-1], frozen.mean + user_bias + frozen.item_bias[20:])
