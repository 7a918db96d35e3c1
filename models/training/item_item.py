"""The ranker's item-to-item term, fitted once the ranker has trained
(`models/networks/item_item.py`): EASE's closed form (Steck, 2019) on the interactions;
its beta and gamma are chosen in `models/training/ranking.py`.

    B = I - P / diag(P),  P = (X^T X + reg I)^-1,  X binary users x items

so B[i, i] = 0. One dense (N, N) inverse: O(N^3) time and N^2 memory, which bounds the
catalogues it is fitted for (`ITEM_ITEM_MAX_ITEMS`).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor

# At this size the fit took 64 s on 2 cores beside a training run, peaking at 3.5 GB
# (float64 Gram matrix and inverse, 800 MB each, then B); larger catalogues go without.
ITEM_ITEM_MAX_ITEMS = 10_000
# Candidate betas, chosen by the ranker's validation liked NDCG@10 (NDCG@10 on
# interactions; 0, no term, competes too): on ML-100K the best was near 200 (a history's
# mean B[i, q] is of order 1e-3).
ITEM_ITEM_WEIGHTS = (12.5, 25.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1600.0)
# Candidate gammas, the weight in the history's mean of an item the user rated below
# `scale.liked` (a liked one weighs 1), chosen with beta. On ML-100K's validation split
# 0.5 matched 1 on NDCG@10, and 0.25 to 0.5 raised liked NDCG@10 (bench/findings.md).
ITEM_ITEM_UNLIKED = (1.0, 0.5, 0.25, 0.0)


def ease_weights(users: np.ndarray, items: np.ndarray, n_items: int, reg: float) -> Tensor:
    """B (n_items, n_items) float32 from interactions (user, item) pairs, repeats counted
    once."""
    pairs = torch.from_numpy(np.stack([users, items]).astype(np.int64))
    shape = (int(users.max()) + 1, n_items)
    x = torch.sparse_coo_tensor(pairs, torch.ones(pairs.shape[1], dtype=torch.float64), shape,
                                check_invariants=True).coalesce()
    x = torch.sparse_coo_tensor(x.indices(), x.values().clamp(max=1.0), shape,
                                is_coalesced=True, check_invariants=True)
    with warnings.catch_warnings():  # torch calls its sparse product's CSR form "beta"
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
        gram = torch.sparse.mm(x.t(), x).to_dense()  # (N, N): co-occurrence counts
    gram.diagonal().add_(reg)
    inverse = torch.linalg.inv(gram)
    weights = -inverse / inverse.diagonal()[None, :]
    weights.fill_diagonal_(0.0)
    return weights.float()
