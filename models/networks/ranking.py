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
Catalogues up to 10,000 items add an item-to-item term, EASE's weights averaged over the
history, liked items weighing more (`models/networks/item_item.py`): an ensemble that
measured better than either.

Like the rating model, nothing per user is learned: a new user's first ratings already
shape their ranking.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.data.table import RatingScale
from models.networks.item_item import ItemItem
from models.networks.leave_one_out import sums_without
from models.networks.lookup import lookup


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
    # beta of the item-to-item term (`models/networks/item_item.py`), set by training
    # from the validation split; None: no term (large catalogues, earlier artifacts).
    item_item_weight: float | None = None
    # gamma: the term's weight on a history item rated below `scale.liked` (a liked one
    # weighs 1), chosen with beta; 1 for interactions without ratings and earlier artifacts.
    item_item_unliked: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RankingModelConfig:
        return cls(**data)


@dataclass(frozen=True)
class ItemSide:
    """What serving reads per item instead of recomputing it, computed once at load:
    the query-side projections h(x) and, with the query output, the output map, (n_items, w)
    each; and, for catalogues up to `HISTORY_TABLE_MAX_FLOATS`, every hop's key and value
    maps f^k(x), g^k(x) side by side, (n_items, 2 K w) (None beyond: computed per request)."""

    queries: Tensor
    outputs: Tensor | None
    history: Tensor | None = None


# 64M floats (256 MB): ML-100K's table is 0.4M; a million items at K = 2, w = 64 would be
# 256M, so such a catalogue projects each request's history instead.
HISTORY_TABLE_MAX_FLOATS = 64_000_000


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
        self.item_item = None
        if config.item_item_weight is not None:
            self.item_item = ItemItem(n_items, config.item_item_weight, scale.liked,
                                      config.item_item_unliked)
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
            score=self._with_item_item(self._output(z, outputs, targets), hist_items,
                                       hist_ratings, hist_mask, targets),
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
        own_items_scored: bool = True,
    ) -> Tensor:
        """(H, C) logits, equal to `forward(...).score`: what serving runs. Attention is
        fused (no (H, C, L) maps kept), masked by the history alone unless a target is in
        its own history, and the candidates' projections are read from `item_side` (every
        item's, computed once at load) when given. Arguments as `forward`;
        `own_items_scored=False` for a caller that discards the scores of a history's own
        items (training's softmax): their attention is then left unmasked, which spares a
        per-target mask and changes no other score."""
        history_side = self._history_side(hist_items, hist_ratings, hist_mask, item_side)
        logits = self._attend(hist_items, hist_mask, targets, history_side, item_side,
                              own_items_scored)
        return self._with_item_item(logits, hist_items, hist_ratings, hist_mask, targets)

    def with_item_item(self, weights: Tensor, weight: float, unliked: float = 1.0) -> RankingModel:
        """Installs the item-to-item term (B (N, N), beta, gamma), recorded in the config."""
        self.config = replace(self.config, item_item_weight=weight, item_item_unliked=unliked)
        self.item_item = ItemItem(self.n_items, weight, self.scale.liked, unliked).to(
            self.item_bias.device)
        self.item_item.weights.copy_(weights)
        return self

    def without_item_item(self) -> RankingModel:
        """Removes the item-to-item term: the attention alone (what the benchmarks compare)."""
        self.config = replace(self.config, item_item_weight=None, item_item_unliked=1.0)
        self.item_item = None
        return self

    def _with_item_item(
        self, logits: Tensor, hist_items: Tensor, hist_ratings: Tensor, hist_mask: Tensor,
        targets: Tensor,
    ) -> Tensor:
        """The attention's logits (H, C) plus the item-to-item term, when there is one."""
        if self.item_item is None:
            return logits
        return logits + self.item_item(hist_items, hist_ratings, hist_mask,
                                       _per_history(targets, hist_items))

    def leave_one_out(
        self,
        hist_items: Tensor,
        hist_ratings: Tensor,
        targets: Tensor,
        positions: Tensor,
        item_side: ItemSide | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Exact leave-one-out for one history (L,) and targets (C,): the logits with the
        whole history (C,), its hop-averaged attention (C, L), and the logits with the item
        at each of `positions` (P,) really removed (P, C): the attention's (`_hops_without`)
        plus the item-to-item term's."""
        whole, attention, without = self._hops_without(
            hist_items, hist_ratings, targets, positions, item_side)
        if self.item_item is not None:
            term, term_without = self.item_item.leave_one_out(hist_items, hist_ratings,
                                                              targets, positions)
            whole, without = whole + term, without + term_without
        return whole, attention, without

    def _hops_without(
        self, hist_items: Tensor, hist_ratings: Tensor, targets: Tensor, positions: Tensor,
        item_side: ItemSide | None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The attention hops' part of `leave_one_out`.

        Removing item p changes no projection: the items older than p only move one step
        closer to the newest (their recency offset). So each hop's keys and values are
        computed once at two ages, and the V = P + 1 variants (the first removes nothing)
        differ only in which age each column takes and in one masked column:
        - the first hop's query is the same for every variant, so its softmax sums over
          "older than p" and "newer than p" are prefix and suffix sums over the history,
          O(C L w) for all variants together;
        - a middle hop attends per variant, (V, C, L);
        - the last hop needs only the output map of its values, (C, L), not the values."""
        n, hops = hist_items.shape[0], self.config.hops
        columns = torch.arange(n, device=hist_items.device)
        removed = torch.cat([positions.new_full((1,), -1), positions])  # (V,); -1: none
        older = (columns[None, :] < removed[:, None])[:, None, :]  # (V, 1, L)
        own = hist_items[None, :] != targets[:, None]  # (C, L): never attend to itself
        anyone_own = not bool(own.all())  # rare: a target in its own history
        variants = torch.arange(1, len(removed), device=hist_items.device)
        # Only the newest `recency` + 1 columns can change age, and only in the variants
        # that remove an item newer than the oldest of them.
        start = max(0, n - 1 - self.config.recency) if self.config.recency else n
        window = slice(start, n)
        moved = _as_slice(torch.nonzero(removed > start).squeeze(1), len(removed))  # M variants
        older_window = older[moved][..., window]  # (M, 1, W)
        z, outputs = self._query_side(targets, 1, item_side)  # (1, C, w)
        sides = self._two_ages(hist_items, hist_ratings, item_side)
        z, attention_sum = self._first_hop_without(z[0], sides[0], own, positions)  # (V, C, w)
        for hop in range(1, hops):
            keys_now, keys_before, values_now, values_before = sides[hop]
            flat = z.reshape(-1, z.shape[-1])  # (V C, w): one matrix product, not V small ones
            logits = (flat @ keys_now.T).view(*z.shape[:2], n)  # (V, C, L)
            if len(older_window):
                shifted = z[moved].reshape(-1, z.shape[-1]) @ keys_before[window].T
                logits[moved, :, start:] = torch.where(
                    older_window, shifted.view(len(older_window), z.shape[1], -1),
                    logits[moved, :, start:],
                )
            logits[variants, :, positions] = float("-inf")  # the removed item
            if anyone_own:
                logits.masked_fill_(~own, float("-inf"))
            attention = torch.softmax(logits, dim=-1)
            if n <= 2:  # a variant may be left with nothing to attend to: it adds nothing
                attention = attention.nan_to_num(0.0)
            attention_sum = attention_sum + attention[0]
            if hop < hops - 1:
                z = z + (attention * older) @ values_before + (attention * ~older) @ values_now
                continue
            # Last hop: the output map is linear, so phi . (z + sum_i a_i v_i) needs only
            # phi . v_i per column, (C, L), not the pooled values (V, C, w).
            mapped = self._mapped(values_now, outputs)
            shift = self._mapped(values_before[window], outputs) - mapped[..., window]
            scores = self._output(z, outputs, targets.expand(z.shape[0], -1))
            scores = scores + (attention * mapped).sum(-1)
            scores[moved] += (attention[moved, :, start:] * (older_window * shift)).sum(-1)
            return scores[0], attention_sum / hops, scores[1:]
        scores = self._output(z, outputs, targets.expand(z.shape[0], -1))  # (V, C)
        return scores[0], attention_sum / hops, scores[1:]

    def _two_ages(
        self, hist_items: Tensor, hist_ratings: Tensor, item_side: ItemSide | None
    ) -> list[tuple[Tensor, Tensor, Tensor, Tensor]]:
        """Each hop's (keys, keys a step newer, values, values a step newer), (L, w) each:
        an item older than a removed one takes the "a step newer" row."""
        projections = self._item_projections(hist_items[None], hist_ratings[None], item_side)
        if not self.config.recency:
            return [(keys[0], keys[0], values[0], values[0]) for keys, values in projections]
        # Every hop's keys, then values, side by side (L, 2 K w), as their age tables: each
        # age is one gather and one sum for all hops.
        stacked = torch.cat([keys[0] for keys, _ in projections]
                            + [values[0] for _, values in projections], dim=-1)
        ages = torch.cat([table.weight for table in (*self.age_keys, *self.age_values)], dim=-1)
        n = hist_items.shape[0]
        since_newest = n - 1 - torch.arange(n, device=hist_items.device)
        now = stacked + lookup(ages, since_newest.clamp(0, self.config.recency))
        before = stacked + lookup(ages, (since_newest - 1).clamp(0, self.config.recency))
        w, hops = self.config.width, self.config.hops
        now, before = now.split(w, dim=-1), before.split(w, dim=-1)
        return [(now[hop], before[hop], now[hops + hop], before[hops + hop])
                for hop in range(hops)]

    def _first_hop_without(
        self, z: Tensor, side: tuple[Tensor, Tensor, Tensor, Tensor], own: Tensor,
        positions: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """z^1 for every variant (V, C, w) and the whole history's attention (C, L), from
        one query z^0 (C, w). Variant p's softmax is over the items before p (a step newer)
        and after p (as they are): exclusive prefix and suffix sums, never a difference of
        sums, so removing a dominant item loses no precision."""
        keys_now, keys_before, values_now, values_before = side
        logits_now, logits_before = z @ keys_now.T, z @ keys_before.T  # (C, L)
        peak = torch.maximum(logits_now, logits_before).masked_fill(~own, float("-inf"))
        peak = torch.cat([peak, peak.new_full((peak.shape[0], 1), float("-inf"))], dim=1)
        peak = peak.amax(-1, keepdim=True)  # (C, 1): no exp overflows
        peak = peak.masked_fill(peak.isinf(), 0.0)  # nothing to attend to
        weight_now = torch.exp(logits_now - peak) * own  # (C, L)
        weight_before = torch.exp(logits_before - peak) * own
        # Weights and weighted values side by side, (L, C, 1 + w), summed in one pass.
        ones = values_now.new_ones(values_now.shape[0], 1)
        now = weight_now.T[..., None] * torch.cat([ones, values_now], dim=1)[:, None, :]
        before = weight_before.T[..., None] * torch.cat([ones, values_before], dim=1)[:, None, :]
        sums = sums_without(before, now, positions)
        mass, sums = sums[..., :1], sums[..., 1:]  # (V, C, 1), (V, C, w); variant 0: whole
        # Nothing to attend to (no mass) leaves the sums 0: dividing them by 1 pools nothing.
        pooled = sums / torch.where(mass > 0, mass, 1.0)
        total = mass[0]  # (C, 1)
        attention = torch.where(total > 0, weight_now / total, 0.0)
        return pooled.add_(z), attention

    def _mapped(self, values: Tensor, outputs: Tensor | None) -> Tensor:
        """phi . v for each value row: (L,) with the shared phi, (C, L) with the query's."""
        if outputs is None:
            return self.output(values).squeeze(-1)
        return outputs @ values.T

    def item_side(self) -> ItemSide:
        """What `score` and `leave_one_out` read per item instead of projecting it per
        request: see `ItemSide`."""
        x = self.item_embeddings
        outputs = self.output(x) if self.config.output == "query" else None
        width = 2 * self.config.hops * self.config.width
        history = None
        if self.n_items * width <= HISTORY_TABLE_MAX_FLOATS:
            history = self._stacked_maps(x)
        return ItemSide(self.query(x), outputs, history)

    def _query_side(
        self, targets: Tensor, histories: int, item_side: ItemSide | None
    ) -> tuple[Tensor, Tensor | None]:
        """z^0 (H, C, w) and the query output map of the targets ((C, w) or (H, C, w)),
        or None for the shared output."""
        if item_side is None:
            x_query = lookup(self.item_embeddings, targets)  # (H, C, d) or (C, d)
            z = self.query(x_query)
            outputs = self.output(x_query) if self.config.output == "query" else None
        else:
            z = lookup(item_side.queries, targets)
            outputs = None if item_side.outputs is None else lookup(item_side.outputs, targets)
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
        own_items_scored: bool = True,
    ) -> Tensor:
        """The K hops with fused attention: (H, C) logits from each hop's keys and values."""
        z, outputs = self._query_side(targets, hist_items.shape[0], item_side)  # (H, C, w)
        targets = _per_history(targets, hist_items)
        mask = hist_mask[:, None, :]  # (H, 1, L), broadcast over the candidates
        if own_items_scored and _in_own_history(hist_items, hist_mask, targets,
                                                self.n_items).any():
            # A target in its own history: the mask becomes per target.
            mask = mask & (hist_items[:, None, :] != targets[:, :, None])  # (H, C, L)
        # A row with nothing to attend to adds nothing, as in forward; some backends give
        # NaN there. Mending it is a pass over (H, C, w) per hop, forward and backward (a
        # tenth of a training step), so it runs only where such a row can exist.
        empty_rows = _fewer_than_two_items(hist_items, hist_mask)
        # One attention head: the 4-D form (H, 1, ...) is what the fused CPU kernel takes.
        z, mask = z[:, None], mask[:, None]
        for keys, values in history_side:
            # (H, 1, C, w) x (H, 1, L, w) -> (H, 1, C, w)
            pooled = F.scaled_dot_product_attention(
                z, keys[:, None], values[:, None], attn_mask=mask, scale=1.0
            )
            z = z + (pooled.nan_to_num(0.0) if empty_rows else pooled)
        return self._output(z[:, 0], outputs, targets)

    def _history_side(
        self, hist_items: Tensor, hist_ratings: Tensor, hist_mask: Tensor,
        item_side: ItemSide | None = None,
    ) -> list[tuple[Tensor, Tensor]]:
        """Each hop's keys f^k(x_i) and values g^k(x_i), (H, L, w) each, with the
        rating-level and recency offsets added."""
        projections = self._item_projections(hist_items, hist_ratings, item_side)
        return self._with_age(projections, hist_mask)

    def _stacked_maps(self, x: Tensor) -> Tensor:
        """Every hop's f^k and g^k side by side: (..., d) -> (..., 2 K w)."""
        return torch.cat([m(x) for m in (*self.keys, *self.values)], dim=-1)

    def _item_projections(
        self, hist_items: Tensor, hist_ratings: Tensor, item_side: ItemSide | None = None
    ) -> list[tuple[Tensor, Tensor]]:
        """Each hop's keys and values (H, L, w) before the recency offsets: what depends
        on the item and its rating, not on its position."""
        if item_side is not None and item_side.history is not None:
            stacked = lookup(item_side.history, hist_items)  # (H, L, 2 K w), read
        else:
            stacked = self._stacked_maps(lookup(self.item_embeddings, hist_items))
        projected = stacked.split(self.config.width, dim=-1)
        hops = self.config.hops
        keys, values = projected[:hops], list(projected[hops:])
        if self.rating_values is not None:
            levels = self._levels(hist_ratings)
            values = [v + lookup(self.rating_values[hop], levels) for hop, v in enumerate(values)]
        return list(zip(keys, values, strict=True))

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
        return score + lookup(self.item_bias, targets)

    def _levels(self, ratings: Tensor) -> Tensor:
        level = torch.round((ratings - self.scale.low) / self.scale.step).long()
        return level.clamp(0, self.scale.levels - 1)

    def _age(self, hist_mask: Tensor) -> Tensor:
        """(H, L) position from the newest item (0 = newest), capped at `recency`; the
        history is left-aligned, oldest first."""
        n = hist_mask.sum(dim=1, keepdim=True)
        position = torch.arange(hist_mask.shape[1], device=hist_mask.device)[None, :]
        return (n - 1 - position).clamp(0, self.config.recency)


def _as_slice(index: Tensor, length: int) -> Tensor | slice:
    """`index` (sorted) as the slice it equals when it is the last rows of `length`: a view
    where advanced indexing would gather and scatter (the usual explanation, every history
    position in order, moves the newest items' variants, the last rows)."""
    if len(index) and int(index[0]) == length - len(index):
        return slice(length - len(index), length)
    return index


def _in_own_history(
    hist_items: Tensor, hist_mask: Tensor, targets: Tensor, n_items: int
) -> Tensor:
    """(H, C) bool: whether each history's target is one of its own items. A target
    attends to everything but itself, so only then does the mask depend on the target.
    Compared as (history, item) pairs: another history's items do not count."""
    rows = torch.arange(hist_items.shape[0], device=hist_items.device)[:, None]
    return torch.isin(rows * n_items + targets, (rows * n_items + hist_items)[hist_mask])


def _fewer_than_two_items(hist_items: Tensor, hist_mask: Tensor) -> bool:
    """Whether some history holds fewer than two distinct items: only there can a target
    have nothing to attend to (an empty history, or one whose every item is the target)."""
    if hist_items.shape[-1] == 0:
        return True
    lowest = hist_items.masked_fill(~hist_mask, torch.iinfo(hist_items.dtype).max).amin(-1)
    highest = hist_items.masked_fill(~hist_mask, -1).amax(-1)
    return bool((lowest >= highest).any())


def _per_history(targets: Tensor, hist_items: Tensor) -> Tensor:
    """(H, C) targets: a shared (C,) list repeated for each history (a view, no copy)."""
    return targets.expand(hist_items.shape[0], -1) if targets.dim() == 1 else targets
