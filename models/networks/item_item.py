"""The ranker's item-to-item term: EASE's item weights (Steck, "Embarrassingly Shallow
Autoencoders for Sparse Data", 2019) averaged over the history the ranker reads.

    term(q, A_u) = beta * mean_{i in A_u} B[i, q]

B is EASE's closed form on the training interactions (`models/training/item_item.py`), B
with a zero diagonal, so an item never scores itself; beta is chosen on the ranker's
validation split. Added to the attention logit it is an ensemble of two different models,
the multi-hop attention and a linear item-item model, and still a sum over history items:
removing one changes only the mean, so its exact leave-one-out is cheap. Nothing per user
is learned, as everywhere else. The weights are dense (N, N): the term is for catalogues
up to `models.training.item_item.ITEM_ITEM_MAX_ITEMS`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.networks.leave_one_out import sums_kept


class ItemItem(nn.Module):
    def __init__(self, n_items: int, weight: float):
        super().__init__()
        self.weight = weight  # beta
        self.register_buffer("weights", torch.zeros(n_items, n_items))  # B[i, q]

    def forward(self, hist_items: Tensor, hist_mask: Tensor, targets: Tensor) -> Tensor:
        """(H, C) terms for histories (H, L) with their mask and targets (H, C). Reads only
        the history's rows of B: one weighted bag of rows per history."""
        mask = hist_mask.to(self.weights.dtype)
        share = mask * (self.weight / mask.sum(1, keepdim=True).clamp(min=1))  # (H, L)
        every = F.embedding_bag(hist_items, self.weights, per_sample_weights=share,
                                mode="sum")  # (H, N)
        return every.gather(1, targets)

    def leave_one_out(
        self, hist_items: Tensor, targets: Tensor, positions: Tensor
    ) -> tuple[Tensor, Tensor]:
        """For one history (L,) and targets (C,): the terms with the whole history (C,)
        and with the item at each of `positions` (P,) removed (P, C), each a mean over the
        items it keeps (an empty history: 0)."""
        n_items = self.weights.shape[0]
        flat = (hist_items[:, None] * n_items + targets[None, :]).reshape(-1)
        pairs = self.weights.view(-1).index_select(0, flat).view(-1, targets.shape[0])  # (L, C)
        sums = sums_kept(pairs.T, positions)  # (1 + P, C)
        n = hist_items.shape[0]
        kept = sums.new_full((sums.shape[0], 1), max(n - 1, 1))
        kept[0] = max(n, 1)
        means = sums * (self.weight / kept)
        return means[0], means[1:]

    def grown(self, n_items: int) -> Tensor:
        """B padded with zeros to `n_items` items: an item folded in after training has no
        interactions in B, so it neither lends nor receives the term."""
        extra = n_items - self.weights.shape[0]
        return F.pad(self.weights, (0, extra, 0, extra))
