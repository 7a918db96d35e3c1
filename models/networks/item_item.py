"""The ranker's item-to-item term: EASE's item weights (Steck, "Embarrassingly Shallow
Autoencoders for Sparse Data", 2019) averaged over the history the ranker reads.

    term(q, A_u) = beta * sum_{i in A_u} c_i B[i, q] / sum_{i in A_u} c_i

B is EASE's closed form on the training interactions (`models/training/item_item.py`), B
with a zero diagonal, so an item never scores itself. c_i is 1 for a history item the user
liked (rated at least `scale.liked`) and gamma for one they did not: a film watched and
disliked says less about what the user will go on to watch (and like) than one they loved.
beta and gamma are chosen together on the ranker's validation split, by liked NDCG@10 where
there are ratings. Added to the attention logit it is an ensemble of two different models,
the multi-hop attention and a linear item-item model, and still a weighted mean over
history items: removing one changes only the two sums, so its exact leave-one-out is cheap.
Nothing per user is learned, as everywhere else. The weights are dense (N, N): the term is
for catalogues up to `models.training.item_item.ITEM_ITEM_MAX_ITEMS`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.networks.leave_one_out import row_sums_without


class ItemItem(nn.Module):
    def __init__(self, n_items: int, weight: float, liked: float, unliked: float = 1.0):
        """weight: beta; liked: the rating scale's `liked`; unliked: gamma, the weight in
        the mean of a history item rated below `liked` (1: every item alike, as for
        interactions without ratings)."""
        super().__init__()
        self.weight = weight
        self.unliked = unliked
        self.liked = liked
        self.register_buffer("weights", torch.zeros(n_items, n_items))  # B[i, q]

    def forward(
        self, hist_items: Tensor, hist_ratings: Tensor, hist_mask: Tensor, targets: Tensor
    ) -> Tensor:
        """(H, C) terms for histories (H, L) with their ratings and mask, and targets (H, C)."""
        counts = item_counts(hist_ratings, self.liked, self.unliked).to(self.weights.dtype)
        means = weighted_means(self.weights, hist_items, counts * hist_mask)  # (H, N)
        return self.weight * means.gather(1, targets)

    def leave_one_out(
        self, hist_items: Tensor, hist_ratings: Tensor, targets: Tensor, positions: Tensor
    ) -> tuple[Tensor, Tensor]:
        """For one history (L,) and targets (C,): the terms with the whole history (C,)
        and with the item at each of `positions` (P,) removed (P, C), each a weighted mean
        over the items it keeps (nothing of weight left: 0)."""
        n_items = self.weights.shape[0]
        flat = (hist_items[:, None] * n_items + targets[None, :]).reshape(-1)
        pairs = self.weights.view(-1).index_select(0, flat).view(-1, targets.shape[0])  # (L, C)
        counts = item_counts(hist_ratings, self.liked, self.unliked).to(pairs.dtype)  # (L,)
        sums = row_sums_without(torch.cat([counts[None, :], (pairs * counts[:, None]).T]),
                                positions)
        kept, sums = sums[:1], sums[1:]  # (1, 1 + P), (C, 1 + P)
        means = torch.where(kept > 0, sums / kept.clamp(min=1e-12), 0.0) * self.weight
        return means[:, 0], means[:, 1:].T

    def grown(self, n_items: int) -> Tensor:
        """B padded with zeros to `n_items` items: an item folded in after training has no
        interactions in B, so it neither lends nor receives the term."""
        extra = n_items - self.weights.shape[0]
        return F.pad(self.weights, (0, extra, 0, extra))


def item_counts(hist_ratings: Tensor, liked: float, unliked: float) -> Tensor:
    """c_i per history item: 1 if rated at least `liked`, `unliked` (gamma) if not."""
    return torch.where(hist_ratings >= liked, 1.0, unliked)


def weighted_means(weights: Tensor, hist_items: Tensor, counts: Tensor) -> Tensor:
    """(H, N): for histories (H, L) with their c_i (H, L) (0 where padded), the c-weighted
    mean of their rows of `weights` (0 where nothing has weight). Reads only the history's
    rows: one weighted bag of rows per history."""
    share = counts / counts.sum(1, keepdim=True).clamp(min=1e-12)
    return F.embedding_bag(hist_items, weights, per_sample_weights=share, mode="sum")
