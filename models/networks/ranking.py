"""The ranking model: multi-hop attention over frozen item embeddings (Lake, Williamson,
Hawk, Johnson & Wing, "Large-scale Collaborative Filtering with Product Embeddings", 2019).

For a query item q and a user's history A_u, with frozen item embeddings x:
    z^0 = h(x_q)
    p^k = softmax_{i in A_u}(f^k(x_i) . z^(k-1))            k = 1..K
    z^k = z^(k-1) + sum_i p^k_i g^k(x_i)
    score(q, A_u) = phi . z^K + b_q
f, g and h are linear maps; b_q is a learned item bias (it measured better than none). The
score is a logit: training puts a softmax over the whole catalogue on it, so it only orders
items for one user. With `ratings`, each history item's value g^k(x_i) gets a learned
vector for its rating level, so a disliked item can push away instead of pulling.

Like the rating model, nothing per user is learned: a new user's first ratings already
shape their ranking.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.data.table import RatingScale


@dataclass(frozen=True)
class RankingModelConfig:
    """Architecture of the ranking model and its serving cap; saved once in the manifest,
    nested in the training config. Item count and embedding width come from the frozen
    embeddings, the rating levels from the data's rating scale."""

    width: int = 64  # d' of the paper
    hops: int = 2  # K of the paper
    ratings: bool = True
    # Measured on ML-100K (bench/RESULTS.md): the query output and recency each raised NDCG@10.
    output: Literal["shared", "query"] = "query"  # "shared" phi (the paper) or a map of the query
    recency: int = 50  # learned offsets for the newest positions (0: none, as in the paper)
    max_history: int = 200  # newest history items read, in training and serving

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RankingModelConfig:
        return cls(**data)


@dataclass(frozen=True)
class ItemSide:
    """Every item's query-side projections, (n_items, w) each: h(x) and, with the query
    output, the output map (None with the shared phi)."""

    queries: Tensor
    outputs: Tensor | None


@dataclass(frozen=True)
class RankingOutput:
    """score: (H, C) logits; attention: (H, C, L), the hops' attention averaged;
    last_hop: (H, C, L), the last hop's alone (the two candidate explanations)."""

    score: Tensor
    attention: Tensor
    last_hop: Tensor


class RankingModel(nn.Module):
    def __init__(self, config: RankingModelConfig, item_embeddings: Tensor, scale: RatingScale):
        """item_embeddings (n_items, d): frozen, rows in the artifact's item order."""
        super().__init__()
        self.config = config
        self.scale = scale
        n_items, d = item_embeddings.shape
        w = config.width
        # Frozen: a buffer is saved with the weights but never trained.
        self.register_buffer("item_embeddings", item_embeddings.detach().clone().float())
        self.query = nn.Linear(d, w)  # h
        self.keys = nn.ModuleList(nn.Linear(d, w) for _ in range(config.hops))  # f^k
        self.values = nn.ModuleList(nn.Linear(d, w) for _ in range(config.hops))  # g^k
        self.age_keys = nn.ModuleList(
            nn.Embedding(config.recency + 1, w) for _ in range(config.hops if config.recency else 0)
        )
        self.age_values = nn.ModuleList(
            nn.Embedding(config.recency + 1, w) for _ in range(config.hops if config.recency else 0)
        )
        for table in [*self.age_keys, *self.age_values]:
            nn.init.zeros_(table.weight)
        self.rating_values = (
            nn.Parameter(torch.zeros(config.hops, scale.levels, w))
            if config.ratings
            else None
        )
        # phi: one vector shared by all queries (the paper), or a linear map of the query
        # item, which lets history and candidate interact beyond the attention weights.
        query_output = config.output == "query"
        self.output = nn.Linear(d if query_output else w, w if query_output else 1, bias=False)
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        for layer in [self.query, *self.keys, *self.values]:
            nn.init.orthogonal_(layer.weight)  # as in the paper (Saxe et al., 2014)
            nn.init.zeros_(layer.bias)

    @property
    def n_items(self) -> int:
        return self.item_bias.shape[0]

    def forward(
        self,
        hist_items: Tensor,
        hist_ratings: Tensor,
        hist_mask: Tensor,
        targets: Tensor,
    ) -> RankingOutput:
        """hist_items (H, L) long, hist_ratings (H, L) float, hist_mask (H, L) bool,
        targets (H, C) long, or (C,) for one candidate list shared by every history (a
        whole-catalogue softmax). A target never attends to itself.

        Training and explanations call this, for its attention maps; serving calls
        `score`, the same scores without them."""
        z, outputs = self._query_side(targets, hist_items.shape[0], None)  # (H, C, w)
        targets = _per_history(targets, hist_items)
        context = hist_mask[:, None, :] & (hist_items[:, None, :] != targets[:, :, None])
        attention_sum = torch.zeros_like(context, dtype=z.dtype)
        for keys, values in self._history_side(hist_items, hist_ratings, hist_mask):
            logits = torch.bmm(z, keys.transpose(1, 2)).masked_fill(~context, float("-inf"))
            attention = torch.softmax(logits, dim=-1).nan_to_num(0.0)  # (H, C, L)
            z = z + torch.bmm(attention, values)
            attention_sum = attention_sum + attention
        return RankingOutput(
            score=self._output(z, outputs, targets),
            attention=attention_sum / self.config.hops,
            last_hop=attention,
        )

    def score(
        self,
        hist_items: Tensor,
        hist_ratings: Tensor,
        hist_mask: Tensor,
        targets: Tensor,
        item_side: ItemSide | None = None,
    ) -> Tensor:
        """(H, C) logits, equal to `forward(...).score`: what serving runs. Attention is
        fused (no (H, C, L) maps kept), masked by the history alone unless a target is in
        its own history, and the candidates' projections are read from `item_side` (every
        item's, computed once at load) when given. Arguments as `forward`."""
        history_side = self._history_side(hist_items, hist_ratings, hist_mask)
        return self._attend(hist_items, hist_mask, targets, history_side, item_side)

    def scores_without(
        self,
        hist_items: Tensor,
        hist_ratings: Tensor,
        targets: Tensor,
        positions: Tensor,
        item_side: ItemSide | None = None,
    ) -> Tensor:
        """(P, C) logits of `targets` (C,) for one history (L,) with the item at each of
        `positions` (P,) removed: exact leave-one-out, each row a real history of L - 1
        items with its own recency offsets. What the P variants share is computed once:
        every history item's keys and values (the linear maps over the embeddings), and
        the candidates' query side; only the position offsets and attention are per row."""
        length = hist_items.shape[0]
        width = max(1, length - 1)
        slots = torch.arange(width, device=hist_items.device)[None, :]  # (1, L - 1)
        kept = (slots + (slots >= positions[:, None])).clamp(max=max(0, length - 1))  # (P, L-1)
        mask = torch.full(kept.shape, length > 1, dtype=torch.bool, device=hist_items.device)
        shared = self._item_projections(hist_items[None], hist_ratings[None])  # (1, L, w) each
        history_side = self._with_age(
            [(keys[0][kept], values[0][kept]) for keys, values in shared], mask
        )
        return self._attend(hist_items[kept], mask, targets, history_side, item_side)

    def item_side(self) -> ItemSide:
        """Every item's query projection h(x) and, with the query output, its output map:
        what `score` needs per candidate, (n_items, w) each."""
        x = self.item_embeddings
        return ItemSide(self.query(x), self.output(x) if self.config.output == "query" else None)

    def _query_side(
        self, targets: Tensor, histories: int, item_side: ItemSide | None
    ) -> tuple[Tensor, Tensor | None]:
        """z^0 (H, C, w) and the query output map of the targets ((C, w) or (H, C, w)),
        or None for the shared output."""
        if item_side is None:
            x_query = self.item_embeddings[targets]  # (H, C, d) or (C, d)
            z = self.query(x_query)
            outputs = self.output(x_query) if self.config.output == "query" else None
        else:
            z = item_side.queries[targets]
            outputs = None if item_side.outputs is None else item_side.outputs[targets]
        if targets.dim() == 1:
            z = z.expand(histories, -1, -1)
        return z, outputs

    def _attend(
        self,
        hist_items: Tensor,
        hist_mask: Tensor,
        targets: Tensor,
        history_side: list[tuple[Tensor, Tensor]],
        item_side: ItemSide | None,
    ) -> Tensor:
        """The K hops with fused attention: (H, C) logits from each hop's keys and values."""
        z, outputs = self._query_side(targets, hist_items.shape[0], item_side)  # (H, C, w)
        targets = _per_history(targets, hist_items)
        mask = hist_mask[:, None, :]  # (H, 1, L), broadcast over the candidates
        rated = torch.zeros(self.n_items, dtype=torch.bool, device=targets.device)
        rated[hist_items[hist_mask]] = True
        if rated[targets].any():  # some target is in a history: the per-target mask
            mask = mask & (hist_items[:, None, :] != targets[:, :, None])  # (H, C, L)
        # One attention head: the 4-D form (H, 1, ...) is what the fused CPU kernel takes.
        z, mask = z[:, None], mask[:, None]
        for keys, values in history_side:
            # (H, 1, C, w) x (H, 1, L, w) -> (H, 1, C, w); a row with nothing to attend to
            # (an empty history) adds nothing, as in forward (some backends give NaN there).
            pooled = F.scaled_dot_product_attention(
                z, keys[:, None], values[:, None], attn_mask=mask, scale=1.0
            )
            z = z + pooled.nan_to_num(0.0)
        return self._output(z[:, 0], outputs, targets)

    def _history_side(
        self, hist_items: Tensor, hist_ratings: Tensor, hist_mask: Tensor
    ) -> list[tuple[Tensor, Tensor]]:
        """Each hop's keys f^k(x_i) and values g^k(x_i), (H, L, w) each, with the
        rating-level and recency offsets added."""
        return self._with_age(self._item_projections(hist_items, hist_ratings), hist_mask)

    def _item_projections(
        self, hist_items: Tensor, hist_ratings: Tensor
    ) -> list[tuple[Tensor, Tensor]]:
        """Each hop's keys and values (H, L, w) before the recency offsets: what depends
        on the item and its rating, not on its position."""
        x_hist = self.item_embeddings[hist_items]  # (H, L, d)
        levels = self._levels(hist_ratings)
        out = []
        for hop in range(self.config.hops):
            values = self.values[hop](x_hist)
            if self.rating_values is not None:
                values = values + self.rating_values[hop][levels]
            out.append((self.keys[hop](x_hist), values))
        return out

    def _with_age(
        self, projections: list[tuple[Tensor, Tensor]], hist_mask: Tensor
    ) -> list[tuple[Tensor, Tensor]]:
        """Adds each hop's learned offsets for the item's position from the newest."""
        if not self.config.recency:
            return projections
        age = self._age(hist_mask)
        return [
            (keys + self.age_keys[hop](age), values + self.age_values[hop](age))
            for hop, (keys, values) in enumerate(projections)
        ]

    def _output(self, z: Tensor, outputs: Tensor | None, targets: Tensor) -> Tensor:
        """phi . z^K + b_q: (H, C) logits."""
        if outputs is not None:
            score = (z * outputs).sum(-1)  # (C, w) broadcasts over H
        else:
            score = self.output(z).squeeze(-1)
        return score + self.item_bias[targets]

    def _levels(self, ratings: Tensor) -> Tensor:
        level = torch.round((ratings - self.scale.low) / self.scale.step).long()
        return level.clamp(0, self.scale.levels - 1)

    def _age(self, hist_mask: Tensor) -> Tensor:
        """(H, L) position from the newest item (0 = newest), capped at `recency`; the
        history is left-aligned, oldest first."""
        n = hist_mask.sum(dim=1, keepdim=True)
        position = torch.arange(hist_mask.shape[1], device=hist_mask.device)[None, :]
        return (n - 1 - position).clamp(0, self.config.recency)


def _per_history(targets: Tensor, hist_items: Tensor) -> Tensor:
    """(H, C) targets: a shared (C,) list repeated for each history (a view, no copy)."""
    return targets.expand(hist_items.shape[0], -1) if targets.dim() == 1 else targets
