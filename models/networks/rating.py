"""The rating model: attentive neural collaborative filtering (Hutter et al., "Attentive
Neural Collaborative Filtering"): a user is the attention-weighted sum of their history.

There is no user parameter. For a target item i and a history C of rated items j,
    att(i, j) = softmax_j(s * m_i . m_j / sqrt(E) + kappa |d_j| + g d_j)
    u_i       = sum_j att(i, j) * w_j * t_j  (+ sum_j att(i, j) * y_j with `implicit`)
and a head turns (u_i, m_i) into a rating. With `attention_heads` K, each slice of E / K
dimensions of m attends on its own (over sqrt(E / K)) and pools its slice of t and y; the
user bias and the attention reported use the heads' mean. w_j is the signed rating
weight: (r - 3) / 2 on a 1..5 scale as in the paper, or, with `biases`, the rating's
residual after the global mean, the item bias and an ad hoc user bias computed from the
same history.
s is one learned sharpness, starting at 1 (the paper's fixed scale): at the fixed scale and
small initial embeddings the softmax stays nearly uniform and the model learns to average
its history instead of attending (measured on planted clusters: 31% of the attention on the
target's cluster against 90% with s learned, and a lower validation RMSE).
d_j = (r_j - mu - b_j) / half is how far the user's rating departs from what item j
usually gets, kappa a fixed lean toward such opinions (`opinion_attention`) and g a learned
slope. Left to itself the model attends to items rated as expected (kappa learned went to
-0.16), whose removal changes little: the item it attended most was the bigger lever than
a random other in about 84% of pairs. With kappa = 1 the item attended most is one whose
rating says something, and it is the bigger lever in about 92% (bench/findings.md).

At inference (`calibrated=True`) the prediction is shifted by the user's own systematic
error on their history: each history item predicted from the others, and the mean of the
residuals shrunk toward zero, (sum_j (r_j - r^_j)) / (n + lambda). It is a per-request
least-squares offset, fitted to the history and stored nowhere; lambda is chosen on the
validation split after training (None: off). u1 RMSE 0.9217 -> 0.9178 (bench/findings.md).
With item attributes (a catalogue's genres, `attributes`), the same ridge fit also weighs
each attribute, so the offset of target i is w_0 + a_i . w: a user who rates comedies
below what the model expects gets that, per request, from their own residuals (u1 RMSE
about 0.005 lower, bench/findings.md). Last, each item's own offset c_i: the shrunk mean
of its raters' residuals as serving predicts them, learned after training like any item
row (trained on sampled contexts, the model errs by item when it reads whole histories).
Then the prediction's departure from the item's baseline mu + b_i + c_i is scaled by
n / (n + k), n the history items it read: the model fitted its training ratings, and out
of sample it is too sure of what a short history says (fitted on validation, the departure
wanted a slope of 0.82-0.86 below 30 items and 0.96-0.99 above 100, two runs). k is
chosen on the validation split after training; new users, with short histories, gain
most (MovieLens-100K, bench/findings.md).
Last, the session offset: a user's errors on items rated minutes apart go together (the
mood of a sitting, the day-specific user bias of Koren, "Collaborative Filtering with
Temporal Dynamics", 2009). A prediction for time t adds the residuals, after the history
offset, of the items rated before t, each weighed exp(-(t - t_j) / tau), shrunk:
sum_j w_j e_j / (sum_j w_j + lambda). Serving predicts for now, so a history rated long ago
adds nothing; an item rated after t adds nothing either (serving never has one, though a
random test split does). tau and lambda are chosen on the validation split (u1, the fast
recipe: validation 0.8865 -> 0.8728, test 0.9051 -> 0.8971 at 60 s and 4, measured on a
dump of its predictions; bench/findings.md).

Shapes: H histories of length L (padded, `hist_mask`), each with C targets (padded,
`target_mask`). Training uses H = batch, C = 1; one user's ranking uses H = 1, C = candidates;
a micro-batch of requests uses H = requests.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from models.data.table import RatingScale
from models.networks.leave_one_out import row_sums_without
from models.networks.lookup import lookup

Head = Literal["dot", "mlp1", "mlp2"]


@dataclass(frozen=True)
class RatingModelConfig:
    """Architecture of the rating model and its serving cap; saved once in the manifest,
    nested in the training config. The item count and rating scale come from the data."""

    dim: int = 128
    head: Head = "dot"
    biases: bool = True
    implicit: bool = True
    hidden: tuple[int, ...] = (200, 100)
    dropout: float = 0.3
    user_bias_reg: float = 5.0
    # The user bias as the attention-weighted mean residual, not the plain mean: what the
    # attention shows is then what moves the prediction (u1 RMSE 0.9176 against 0.9185;
    # bench/findings.md). False: Hutter et al.'s plain shrunk mean.
    attentive_bias: bool = True
    # A learned attention offset per rating level: the model may attend more to what the
    # user loved or hated than to what they shrugged at.
    rating_keys: bool = False
    # kappa: the attention's lean toward items rated far from their usual rating, so that
    # the item attended most is one that moves the prediction (module docstring). 0: none,
    # as artifacts written before it. u1 RMSE, the fast recipe, mean of two seeds: 0.9194 at
    # 0, 0.9191 at 0.75, 0.9203 at 1; the lever 84% at 0, 92% at 1 (bench/findings.md).
    opinion_attention: float = 1.0
    # Attention heads: each slice of E / heads dimensions of M attends on its own and pools
    # its slice of T and Y (multi-head attention, Vaswani et al., 2017); the attention
    # reported, and the attentive user bias's, is their mean. u1, the fast recipe over four
    # seeds: 0.9084 with one head, 0.9069 with two, 0.9110 with four (bench/findings.md).
    attention_heads: int = 2
    # The shrinkage lambda of the per-request history offset; set by training from the
    # validation split (None: no offset, as artifacts trained before it).
    history_offset_shrink: float | None = None
    # The item attributes the offset may weigh (a catalogue's genres, in the order of the
    # `item_attributes` buffer's columns; () for none) and the ridge penalty on their
    # weights, set by training from the validation split (None: the offset is one number).
    attributes: tuple[str, ...] = ()
    attribute_ridge: float | None = None
    # Each item's own offset c_i, added at inference: its raters' residuals as serving
    # predicts them (each history item from the others, with the history offset), shrunk;
    # set by training (`item_offsets` buffer, zeros where validation prefers none). False:
    # none, as artifacts written before it.
    item_offsets: bool = True
    # k of the departure's shrinkage n / (n + k) toward the item's baseline, n the history
    # items read; set by training from the validation split (None: none, as artifacts
    # written before it).
    departure_shrink: float | None = None
    # tau (seconds) and lambda of the session offset, set by training from the validation
    # split (None: none, as artifacts written before it); it needs the history offset.
    session_seconds: float | None = None
    session_shrink: float | None = None
    max_context: int = 512  # newest history items used at inference (deterministic)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RatingModelConfig:
        """Manifests written before `opinion_attention`, `attributes`, `item_offsets` or
        `attention_heads` have none of them (one head)."""
        return cls(**{"opinion_attention": 0.0, "item_offsets": False, "attention_heads": 1,
                      **data,
                      "hidden": tuple(data.get("hidden", ())),
                      "attributes": tuple(data.get("attributes", ()))})


@dataclass(frozen=True)
class HistoryOffset:
    """What a history adds to its targets' predictions, fitted to it per request: the
    weights (..., W) of its ridge offset (`offset_weights`) and its session offset (..., C),
    or (..., 1) for targets predicted for one time (None: no session offset)."""

    weights: Tensor
    session: Tensor | None = None

    @classmethod
    def stack(cls, offsets: list[HistoryOffset]) -> HistoryOffset:
        """One offset per history, as a batch's (H, W) and (H, 1)."""
        sessions = [offset.session for offset in offsets]
        return cls(torch.stack([offset.weights for offset in offsets]),
                   None if any(s is None for s in sessions) else torch.stack(sessions))


# (hist_times (..., L), target_times (..., C)): when each history item was rated and when
# each target's rating is predicted for, int64 Unix seconds.
Times = tuple[Tensor, Tensor]


@dataclass(frozen=True)
class RatingOutput:
    """rating: (H, C) predicted ratings; attention: (H, C, L), rows sum to 1 over the
    history items that entered (0 elsewhere); logits: (H, C, levels) for the MLP2 head, or
    (H, C, 1) raw head output otherwise (what training losses need)."""

    rating: Tensor
    attention: Tensor
    logits: Tensor


class RatingModel(nn.Module):
    """Item tables M (structure, attention keys/queries) and T (taste, values) + a head."""

    def __init__(self, config: RatingModelConfig, n_items: int, scale: RatingScale):
        super().__init__()
        self.config = config
        self.scale = scale
        n, e = n_items, config.dim
        self.structure = nn.Embedding(n, e)  # M
        self.taste = nn.Embedding(n, e)  # T
        nn.init.normal_(self.structure.weight, std=0.1)
        nn.init.normal_(self.taste.weight, std=0.1)
        self.implicit = nn.Embedding(n, e) if config.implicit else None  # Y
        if self.implicit is not None:
            nn.init.normal_(self.implicit.weight, std=0.01)
        self.item_bias = nn.Embedding(n, 1) if config.biases else None
        if self.item_bias is not None:
            nn.init.zeros_(self.item_bias.weight)
        # Global mean rating; set from training data, a buffer so it travels with the weights.
        self.register_buffer("global_mean", torch.tensor(scale.mid))
        self.default_user = nn.Parameter(torch.zeros(e))
        # Learned sharpness of the attention, starting at the paper's 1/sqrt(E).
        self.attention_log_scale = nn.Parameter(torch.zeros(()))
        self.rating_key = nn.Embedding(scale.levels, 1) if config.rating_keys else None
        if self.rating_key is not None:
            nn.init.zeros_(self.rating_key.weight)
        # g: the attention's learned slope on the signed departure d_j.
        self.opinion_slope = nn.Parameter(torch.zeros(())) if config.opinion_attention else None
        features = 3 * e + (1 if config.biases else 0)
        out = scale.levels if config.head == "mlp2" else 1
        self.mlp = (
            None if config.head == "dot" else _mlp(features, config.hidden, out, config.dropout)
        )
        self.register_buffer(
            "levels", torch.arange(scale.levels, dtype=torch.float32) * scale.step + scale.low
        )
        # a_i: item i's attributes (0/1 per `config.attributes`), set by training; saved
        # where there are any (artifacts written before them have none).
        self.register_buffer("item_attributes", torch.zeros(n, len(config.attributes)),
                             persistent=bool(config.attributes))
        self.register_buffer("item_offsets", torch.zeros(n), persistent=config.item_offsets)

    @property
    def n_items(self) -> int:
        return self.structure.num_embeddings

    def forward(
        self,
        hist_items: Tensor,
        hist_ratings: Tensor,
        hist_mask: Tensor,
        targets: Tensor,
        target_mask: Tensor | None = None,
        context_mask: Tensor | None = None,
        calibrated: bool = False,
        offset: HistoryOffset | None = None,
        times: Times | None = None,
    ) -> RatingOutput:
        """hist_items (H, L) long, hist_ratings (H, L) float, hist_mask (H, L) bool,
        targets (H, C) long, target_mask (H, C) bool or None, context_mask (H, C, L) bool
        or None: which history items each target slot may use (exact leave-one-out: this
        model has no notion of position, so masking an item is removing it). A target
        never attends to itself: an item in its own history is masked out, as in training.
        calibrated: add the history offset (inference; needs no context_mask): `offset`
        where the caller already has it (`offsets_without`), else computed here, with the
        session offset where `times` are given."""
        out = self._attend(hist_items, hist_ratings, hist_mask, targets, target_mask,
                           context_mask)
        if not calibrated:
            return out
        if offset is None and self.config.history_offset_shrink is not None:
            offset = self.history_offset(hist_items, hist_ratings, hist_mask, times)
        read = None
        if self.config.departure_shrink is not None:
            read = _own_context(hist_items, hist_mask, targets).sum(-1)
        rating = self._calibrated(out.rating, offset, targets, read)
        return RatingOutput(rating=rating, attention=out.attention, logits=out.logits)

    def _calibrated(
        self, rating: Tensor, offset: HistoryOffset | None, targets: Tensor,
        read: Tensor | None,
    ) -> Tensor:
        """Ratings of `targets` shifted by the history offset (None for none) and each
        target's item offset, their departure from the item's baseline shrunk by how many
        history items each read (`read`, shaped like `rating`; needed with
        `departure_shrink`), then shifted by the session offset, within the scale."""
        if offset is not None:
            rating = rating + self.offset_of(offset.weights, targets)
        item_offset = lookup(self.item_offsets, targets) if self.config.item_offsets else None
        if item_offset is not None:
            rating = rating + item_offset
        shrink = self.config.departure_shrink
        if shrink is not None:
            baseline = self.global_mean.expand_as(targets)
            if self.item_bias is not None:
                baseline = baseline + lookup(self.item_bias.weight, targets).squeeze(-1)
            if item_offset is not None:
                baseline = baseline + item_offset
            read = read.to(rating.dtype)  # type: ignore[union-attr]
            rating = baseline + (rating - baseline) * read / (read + shrink)
        if offset is not None and offset.session is not None:
            rating = rating + offset.session
        return rating.clamp(self.scale.low, self.scale.high)

    def history_offset(self, hist_items: Tensor, hist_ratings: Tensor, hist_mask: Tensor,
                       times: Times | None = None) -> HistoryOffset:
        """Each history's offset (weights (H, W), `offset_weights`), fitted to the residuals
        of its items, each predicted from the others; with `times` and `session_seconds`,
        the session offset of each target (H, C) too."""
        residuals = self.history_residuals(hist_items, hist_ratings, hist_mask)
        weights = self.offset_weights(hist_items, residuals, hist_mask)
        return HistoryOffset(weights, self._session(hist_items, residuals, weights, hist_mask,
                                                    times))

    def _session(
        self, hist_items: Tensor, residuals: Tensor, weights: Tensor, keep: Tensor,
        times: Times | None,
    ) -> Tensor | None:
        """The session offset (..., C) of histories whose kept items' residuals (..., L)
        the offset `weights` (..., W) fits, or None (no times, or no session offset)."""
        if times is None or self.config.session_seconds is None:
            return None
        after_offset = residuals - self.offset_of(weights, hist_items)
        return self.session_offset(after_offset, keep, *times)

    def session_offset(
        self, residuals: Tensor, keep: Tensor, hist_times: Tensor, target_times: Tensor
    ) -> Tensor:
        """(..., C) sum_j w_j e_j / (sum_j w_j + lambda) over the kept history items (...,
        L), their residuals after the history offset `residuals`, w_j = exp(-(t - t_j) /
        tau) for each target's time t, 0 for an item rated after t (serving never has
        one; evaluation's random splits do). Sums over what `keep` keeps, never a
        difference."""
        since = target_times[..., :, None] - hist_times[..., None, :]  # (..., C, L)
        before = (since >= 0) & keep[..., None, :]
        weight = torch.exp(since.clamp_min(0).to(residuals.dtype)
                           / -float(self.config.session_seconds))
        weight = weight * before.to(residuals.dtype)
        shrink = float(self.config.session_shrink or 0.0)
        return (weight * residuals[..., None, :]).sum(-1) / (weight.sum(-1) + shrink).clamp_min(
            1e-9)

    def history_residuals(
        self, hist_items: Tensor, hist_ratings: Tensor, hist_mask: Tensor,
        rows_per_pass: int = 1 << 22,
    ) -> Tensor:
        """(H, L) r_j - r^_j of each history item, predicted from the others (0 where
        padded); batched so that one pass holds at most `rows_per_pass` (target, item)
        pairs (a 512-item history alone is 262k)."""
        length = max(hist_items.shape[1], 1)
        step = max(1, rows_per_pass // (length * length))
        residuals = []
        for start in range(0, hist_items.shape[0], step):
            part = slice(start, start + step)
            items, ratings, mask = hist_items[part], hist_ratings[part], hist_mask[part]
            own = self._attend(items, ratings, mask, items, mask, None).rating
            residuals.append((ratings - own) * mask)
        return torch.cat(residuals) if residuals else hist_ratings.new_zeros(hist_ratings.shape)

    def offset_weights(self, hist_items: Tensor, residuals: Tensor, keep: Tensor) -> Tensor:
        """(H, W) the ridge fit of the kept residuals (H, L) on [1, a_j]: W = 1 (the
        intercept alone, sum / (n + lambda)) without `attribute_ridge`, else 1 + the
        attribute count, the intercept shrunk by lambda and each attribute weight by the
        ridge. Sums over what `keep` keeps, never a difference."""
        keep = keep.to(residuals.dtype)
        shrink = self.config.history_offset_shrink or 0.0
        if self.config.attribute_ridge is None:
            total = (residuals * keep).sum(-1, keepdim=True)
            return total / (keep.sum(-1, keepdim=True) + shrink).clamp_min(1e-9)
        x = self._offset_features(hist_items)  # (H, L, W)
        gram = torch.einsum("hl,hlv,hlw->hvw", keep, x, x)
        gram = gram + torch.diag(self._offset_penalty(x.shape[-1], gram))
        moment = torch.einsum("hl,hlv->hv", keep * residuals, x)
        return torch.linalg.solve(gram, moment)

    def offset_of(self, weights: Tensor, targets: Tensor) -> Tensor:
        """The offset of targets (H, C) from each history's weights (H, W): (H, C), or
        (H, 1) to broadcast when the offset is one number (W = 1). Also for one history's
        targets (C,) and weights (W,) or (V, W) of its leave-one-out variants."""
        if weights.shape[-1] == 1:
            return weights[..., :1]
        features = self._offset_features(targets)
        if targets.dim() == 1 and weights.dim() == 2:  # the variants': one product, (V, C)
            return weights @ features.T
        return (features * weights[..., None, :]).sum(-1)

    def _offset_features(self, items: Tensor) -> Tensor:
        """[1, a_i] for each item (..., W)."""
        attributes = lookup(self.item_attributes, items)
        return torch.cat([torch.ones_like(attributes[..., :1]), attributes], dim=-1)

    def _offset_penalty(self, width: int, like: Tensor) -> Tensor:
        """(W,) the ridge's diagonal: lambda on the intercept, the attribute ridge on the rest."""
        penalty = like.new_full((width,), float(self.config.attribute_ridge or 0.0))
        penalty[0] = self.config.history_offset_shrink or 0.0
        return penalty

    def _attend(
        self,
        hist_items: Tensor,
        hist_ratings: Tensor,
        hist_mask: Tensor,
        targets: Tensor,
        target_mask: Tensor | None,
        context_mask: Tensor | None,
    ) -> RatingOutput:
        # context (H, C, L): which history items each target may use.
        context = _own_context(hist_items, hist_mask, targets)
        if target_mask is not None:
            context = context & target_mask[:, :, None]
        if context_mask is not None:
            context = context & context_mask
        n_context = context.sum(-1)  # (H, C)
        has_context = n_context > 0

        rows = _ItemRows(hist_items, targets, distinct=self.training and self.structure.sparse)
        m_hist, m_target = rows.both(self.structure)  # (H, L, E), (H, C, E)
        biases = None if self.item_bias is None else rows.both(self.item_bias)
        hist_bias = None if biases is None else biases[0].squeeze(-1)  # (H, L)
        # Each head's slice as one more batch row: (H K, C, E / K), K heads.
        heads = self.config.attention_heads
        scores = torch.bmm(_by_head(m_target, heads), _by_head(m_hist, heads).transpose(1, 2))
        scores = scores.view(m_target.shape[0], heads, *scores.shape[1:]) * self._attention_scale()
        scores = scores + self._key_offset(hist_ratings, hist_bias)[:, None, None, :]
        scores = scores.masked_fill(~context[:, None], float("-inf"))  # (H, K, C, L)
        by_head = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # all-masked rows -> 0
        attention = by_head.mean(1)  # (H, C, L)

        weight, base = self._rating_weights(hist_ratings, context, n_context, biases, attention)
        # (H K, C, L) x (H K, L, E / K) -> (H, C, E)
        pooled = (by_head * weight[:, None]).flatten(0, 1)
        user = _from_heads(torch.bmm(pooled, _by_head(rows.history(self.taste), heads)), heads)
        if self.implicit is not None:
            implicit = _by_head(rows.history(self.implicit), heads)
            user = user + _from_heads(torch.bmm(by_head.flatten(0, 1), implicit), heads)
        user = torch.where(has_context[..., None], user, self.default_user)

        return self._head(user, m_target, base, attention)

    def _attention_scale(self) -> Tensor:
        """The learned sharpness over sqrt of each head's width."""
        width = self.config.dim // self.config.attention_heads
        return self.attention_log_scale.exp() / math.sqrt(width)

    def leave_one_out(
        self, hist_items: Tensor, hist_ratings: Tensor, targets: Tensor, positions: Tensor,
        offsets: tuple[HistoryOffset, HistoryOffset] | None = None,
        times: Times | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Exact leave-one-out of the calibrated prediction: `_leave_one_out`'s, shifted
        by the history offset of each variant (from `offsets_without`, or `offsets` where
        the caller already has them for these `positions`) and shrunk by the items each
        variant reads. times: the history's (L,) and the one time (1,) every target is
        predicted for, for the session offset. With the inner-product head and no
        `offsets`, the history's items join the targets in one pass."""
        read = read_without = None
        if self.config.departure_shrink is not None:
            read, read_without = _read_without(hist_items, targets, positions)
        if self.config.history_offset_shrink is None:
            whole, attention, without = self._leave_one_out(hist_items, hist_ratings, targets,
                                                            positions)
            return (self._calibrated(whole, None, targets, read), attention,
                    self._calibrated(without, None, targets, read_without))
        if offsets is None and self._linear_in_attention:
            c = targets.shape[0]
            whole, attention, without = self._leave_one_out(
                hist_items, hist_ratings, torch.cat([targets, hist_items]), positions)
            offsets = self._offsets_from(hist_items, hist_ratings, positions, whole[c:],
                                         without[:, c:], times)
            whole, attention, without = whole[:c], attention[:c], without[:, :c]
        else:
            whole, attention, without = self._leave_one_out(hist_items, hist_ratings, targets,
                                                            positions)
            if offsets is None:
                offsets = self.offsets_without(hist_items, hist_ratings, positions, times)
        offset, offsets_without = offsets
        return (self._calibrated(whole, offset, targets, read), attention,
                self._calibrated(without, offsets_without, targets, read_without))

    def offsets_without(
        self, hist_items: Tensor, hist_ratings: Tensor, positions: Tensor,
        times: Times | None = None,
    ) -> tuple[HistoryOffset, HistoryOffset]:
        """The history offset of one history (L,), with the whole history (weights (W,),
        session (1,) for `times`' one time) and with the item at each of `positions` (P,)
        removed ((P, W), (P, 1)). Removing item p takes
        its own residual out of the offset and changes every other item's prediction, so
        they come from the uncalibrated leave-one-out of the history itself (targets = the
        history).
        They depend on the history alone: a request that ranks and explains computes them
        once, for its predicted ratings and for their leave-one-out."""
        if not self._linear_in_attention:
            return self._offsets_recomputed(hist_items, hist_ratings, positions, times)
        own, _, own_without = self._leave_one_out(hist_items, hist_ratings, hist_items,
                                                  positions)
        return self._offsets_from(hist_items, hist_ratings, positions, own, own_without, times)

    def _offsets_recomputed(
        self, hist_items: Tensor, hist_ratings: Tensor, positions: Tensor, times: Times | None,
    ) -> tuple[HistoryOffset, HistoryOffset]:
        """`offsets_without`, each variant's computed anew (heads other than the inner
        product)."""
        n = hist_items.shape[0]
        keep = torch.ones(positions.shape[0] + 1, n, dtype=torch.bool, device=hist_items.device)
        keep[torch.arange(1, keep.shape[0], device=keep.device), positions] = False
        v = keep.shape[0]
        if times is not None:
            times = (times[0].expand(v, n), times[1].expand(v, -1))
        found = self.history_offset(hist_items.expand(v, n), hist_ratings.expand(v, n), keep,
                                    times)
        session = found.session
        return (HistoryOffset(found.weights[0], None if session is None else session[0]),
                HistoryOffset(found.weights[1:], None if session is None else session[1:]))

    def _offsets_from(
        self, hist_items: Tensor, hist_ratings: Tensor, positions: Tensor, own: Tensor,
        own_without: Tensor, times: Times | None,
    ) -> tuple[HistoryOffset, HistoryOffset]:
        """`offsets_without` from the history's own leave-one-out: each item predicted from
        all the others `own` (L,), and from all the others but position p `own_without`
        (P, L)."""
        n = hist_ratings.shape[0]
        residual = hist_ratings[None, :] - own_without  # (P, L)
        others = positions[:, None] != torch.arange(n, device=positions.device)  # (P, L)
        whole, weights = self._offset_weights_from(hist_items, hist_ratings, positions, own,
                                                   residual, others)
        if times is None or self.config.session_seconds is None:
            return HistoryOffset(whole), HistoryOffset(weights)
        # The whole history as one more variant, keeping every item: one pass for all.
        keep = torch.cat([torch.ones_like(others[:1]), others])
        session = self._session(hist_items, torch.cat([(hist_ratings - own)[None], residual]),
                                torch.cat([whole[None], weights]), keep, times)  # (1 + P, 1)
        return HistoryOffset(whole, session[0]), HistoryOffset(weights, session[1:])

    def _offset_weights_from(
        self, hist_items: Tensor, hist_ratings: Tensor, positions: Tensor, own: Tensor,
        residual: Tensor, others: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """The history offset's weights (W,) and theirs with each of `positions` removed
        (P, W), from the history's own leave-one-out (`_offsets_from`): each variant's
        residuals `residual` over the items it keeps, `others` (P, L)."""
        n, p = hist_ratings.shape[0], positions.shape[0]
        if self.config.attribute_ridge is None:
            whole = self.offset_weights(hist_items[None], (hist_ratings - own)[None],
                                        torch.ones_like(hist_items[None], dtype=torch.bool))
            return whole[0], self.offset_weights(hist_items.expand(p, n), residual, others)
        # Variant p's ridge matrix is the whole history's less x_p x_p^T, so one inverse
        # serves every variant (Sherman-Morrison) where a solve each cost 0.37 ms for 128.
        # The ridge keeps its denominator 1 - x_p^T A^-1 x_p at least 1 / (1 + s), s =
        # x_p^T Lambda^-1 x_p: far from 0.
        x = self._offset_features(hist_items)  # (L, W)
        inverse = torch.linalg.inv(x.T @ x + torch.diag(self._offset_penalty(x.shape[1], x)))
        whole = ((hist_ratings - own) @ x) @ inverse  # (W,)
        moment = (residual * others) @ x  # (P, W): each variant's kept items
        removed = lookup(x, positions)  # (P, W): x_p
        u = removed @ inverse  # (P, W): A^-1 x_p (A is symmetric)
        scale = (u * moment).sum(-1, keepdim=True) / (1 - (u * removed).sum(-1, keepdim=True))
        return whole, moment @ inverse + u * scale

    @property
    def _linear_in_attention(self) -> bool:
        """The inner-product head with biases: a prediction linear in the attention
        weights, which `_leave_one_out` re-weighs per variant instead of recomputing."""
        return self.mlp is None and self.item_bias is not None

    def _leave_one_out(
        self, hist_items: Tensor, hist_ratings: Tensor, targets: Tensor, positions: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Exact leave-one-out for one history (L,) and targets (C,): the predicted ratings
        with the whole history (C,), its attention (C, L), and the ratings with the item at
        each of `positions` (P,) removed (P, C). This model has no notion of position, so
        removing an item is leaving it out of the context.

        With the inner-product head and biases the prediction is linear in the attention:
        rating = mu + b_i + b_u + sum_j att_ij ((r_j - mu - b_j - b_u) / half * t_j + y_j) . m_i,
        and removing item p only renormalises the others' attention. So every (target,
        item) product is computed once, (C, L), and every variant's attention-weighted sums
        come from prefix and suffix sums over them (each sums the items it keeps, never a
        difference of sums, so removing a dominant item loses no precision).
        Other heads run `_attend` once per variant slot, each with its own context mask."""
        n, v = hist_items.shape[0], positions.shape[0] + 1
        if not self._linear_in_attention:
            keep = torch.ones(v, n, dtype=torch.bool, device=hist_items.device)
            keep[torch.arange(1, v, device=keep.device), positions] = False  # (V, L)
            c = targets.shape[0]
            everything = torch.ones_like(hist_items[None], dtype=torch.bool)
            slots = targets.repeat_interleave(v)[None]  # (1, C V): each target V times
            out = self._attend(hist_items[None], hist_ratings[None], everything, slots, None,
                               keep.repeat(c, 1)[None])  # (1, C V, L)
            rating = out.rating[0].view(c, v)
            attention = out.attention[0].view(c, v, n)[:, 0]
            return rating[:, 0], attention, rating[:, 1:].T
        own = hist_items[None, :] != targets[:, None]  # (C, L)
        heads = self.config.attention_heads
        # Every (target, item) product of the three tables, per head: (K, C, 3 L).
        tables = [self.structure, self.taste]
        if self.implicit is not None:
            tables.append(self.implicit)
        m_target = lookup(self.structure.weight, targets)  # (C, E)
        history = torch.cat([lookup(t.weight, hist_items) for t in tables])  # (3 L, E)
        products = torch.bmm(_by_head(m_target[None], heads),
                             _by_head(history[None], heads).transpose(1, 2))
        hist_bias = lookup(self.item_bias.weight, hist_items).squeeze(-1)  # (L,)
        logits = (products[..., :n] * self._attention_scale()
                  + self._key_offset(hist_ratings, hist_bias))
        logits = logits.masked_fill(~own, float("-inf"))  # (K, C, L)
        peak = logits.amax(-1, keepdim=True) if n else logits.new_zeros(*logits.shape[:2], 1)
        weight = torch.exp(logits - peak.masked_fill(peak.isinf(), 0.0))  # 0 outside
        residual = hist_ratings - self.global_mean - hist_bias
        taste = products[..., n:2 * n] / self.scale.half  # (K, C, L): t_j . m_i per head
        pulled = residual * taste
        if self.implicit is not None:
            pulled = pulled + products[..., 2 * n:]
        in_context = own.to(weight.dtype)
        # Per head, target and item: weight, weight r, weight pulled, weight taste, and once
        # per target, for the plain user bias, r in context; summed per variant.
        rows = torch.stack([weight, weight * residual, weight * pulled, weight * taste])
        c = targets.shape[0]
        weighted = 4 * heads * c
        rows = rows.view(weighted, n)
        if not self.config.attentive_bias:
            rows = torch.cat([rows, in_context * residual])
        all_sums = row_sums_without(rows, positions)
        sums = all_sums[:weighted].view(4, heads, c, v)  # (4, K, C, V)
        # Each variant's context size: a count, so the difference is exact.
        removed = torch.cat([in_context.new_zeros(c, 1), in_context.index_select(1, positions)], 1)
        n_context = in_context.sum(-1, keepdim=True) - removed  # (C, V)
        mass = sums[0]  # (K, C, V)
        # No weight left leaves the weighted sums 0 too: divided by 1, the means are 0.
        mean_r, mean_pulled, mean_taste = sums[1:4] / torch.where(mass > 0, mass, 1.0)
        shrink = n_context + self.config.user_bias_reg
        if self.config.attentive_bias:  # the heads' mean attention weighs the residuals
            user_bias = mean_r.mean(0) * n_context / shrink
        else:
            user_bias = all_sums[weighted:] / shrink
        raw = (mean_pulled - user_bias * mean_taste).sum(0)  # (C, V): every head's slice
        default = m_target @ self.default_user  # (C,): an empty context
        raw = torch.where(n_context > 0, raw, default[:, None])
        rating = self.global_mean + lookup(self.item_bias.weight, targets) + user_bias + raw
        rating = rating.clamp(self.scale.low, self.scale.high)  # (C, V)
        total = mass[..., :1]  # (K, C, 1)
        attention = torch.where(total > 0, weight / total, 0.0).mean(0)  # (C, L)
        return rating[:, 0], attention, rating[:, 1:].T

    def _key_offset(self, hist_ratings: Tensor, hist_bias: Tensor | None) -> Tensor:
        """The attention logit's offset for each history item, from its rating alone: the
        rating level's (`rating_keys`) and the opinion's, kappa |d| + g d. d departs from
        mu + b_j, or from the scale's middle without biases. It depends on no other
        history item, so removing one leaves every other item's offset as it was."""
        offset = torch.zeros_like(hist_ratings)
        if self.rating_key is not None:
            level = ((hist_ratings - self.scale.low) / self.scale.step).round().long()
            offset = offset + self.rating_key(level.clamp(0, self.scale.levels - 1)).squeeze(-1)
        if self.opinion_slope is not None:
            expected = self.scale.mid if hist_bias is None else self.global_mean + hist_bias
            departure = (hist_ratings - expected) / self.scale.half
            offset = (offset + self.config.opinion_attention * departure.abs()
                      + self.opinion_slope * departure)
        return offset

    def _rating_weights(
        self,
        hist_ratings: Tensor,
        context: Tensor,
        n_context: Tensor,
        biases: tuple[Tensor, Tensor] | None,
        attention: Tensor,
    ) -> tuple[Tensor, Tensor | None]:
        """Signed per-item weights (H, C, L) and, with biases (the history's and the
        targets' item biases), the baseline (H, C)."""
        half = self.scale.half
        if biases is None:
            weight = ((hist_ratings - self.scale.mid) / half)[:, None, :].expand_as(context)
            return weight, None
        hist_bias, target_bias = biases
        residual = hist_ratings - self.global_mean - hist_bias.squeeze(-1)
        user_bias = self._user_bias(context, attention, residual[:, None, :], n_context)
        weight = (residual[:, None, :] - user_bias[..., None]) / half
        base = self.global_mean + target_bias.squeeze(-1) + user_bias
        return weight, base

    def _user_bias(
        self, context: Tensor, attention: Tensor, residual: Tensor, n_context: Tensor
    ) -> Tensor:
        """The ad hoc user bias: the shrunk mean residual of the target's context, or,
        with `attentive_bias`, its attention-weighted mean shrunk alike (equal when the
        attention is uniform), so an item the target does not attend to moves nothing."""
        shrink = n_context + self.config.user_bias_reg
        if self.config.attentive_bias:
            return (attention * residual).sum(-1) * n_context / shrink
        return (context * residual).sum(-1) / shrink

    def _head(
        self, user: Tensor, m_target: Tensor, base: Tensor | None, attention: Tensor
    ) -> RatingOutput:
        cfg, low, span = self.config, self.scale.low, self.scale.high - self.scale.low
        if self.mlp is None:
            raw = (user * m_target).sum(-1, keepdim=True)  # (H, C, 1)
        else:
            parts = [user, m_target, user * m_target]
            if base is not None:
                parts.append(((base - low) / span)[..., None])
            raw = self.mlp(torch.cat(parts, dim=-1))  # (H, C, out)
        if cfg.head == "mlp2":
            rating = (torch.softmax(raw, dim=-1) * self.levels).sum(-1)
        elif base is not None:
            rating = base + raw.squeeze(-1)
        else:
            rating = low + span * torch.sigmoid(raw.squeeze(-1))
        if not self.training:  # clamping in training would zero the gradient of overshoots
            rating = rating.clamp(self.scale.low, self.scale.high)
        return RatingOutput(rating=rating, attention=attention, logits=raw)


class _ItemRows:
    """A batch's history and target rows of the item tables. Training with sparse tables
    (`distinct`) looks each distinct item up once and spreads the rows by a dense gather:
    a batch repeats popular items (256 examples of 64 context items: 16k lookups of about
    5k items on a planted million-item catalogue), so each table's sparse gradient holds
    one row per item: the lazy Adam step there measured 27 -> 18 ms, a whole training
    step 45 -> 35 ms (bench/findings.md)."""

    def __init__(self, hist_items: Tensor, targets: Tensor, distinct: bool):
        self.hist_items, self.targets = hist_items, targets
        self.ids = self.inverse = None
        if distinct:
            both = torch.cat([hist_items.reshape(-1), targets.reshape(-1)])
            self.ids, self.inverse = torch.unique(both, return_inverse=True)

    def history(self, table: nn.Embedding) -> Tensor:
        """The history's rows, (H, L, E)."""
        if self.ids is None:
            return table(self.hist_items)
        n = self.hist_items.numel()
        return self._spread(table, self.inverse[:n]).view(*self.hist_items.shape, -1)

    def both(self, table: nn.Embedding) -> tuple[Tensor, Tensor]:
        """The history's rows (H, L, E) and the targets' (H, C, E)."""
        if self.ids is None:
            return table(self.hist_items), table(self.targets)
        n = self.hist_items.numel()
        found = self._spread(table, self.inverse)
        return found[:n].view(*self.hist_items.shape, -1), found[n:].view(*self.targets.shape, -1)

    def _spread(self, table: nn.Embedding, inverse: Tensor) -> Tensor:
        return table(self.ids).index_select(0, inverse)  # backward: a dense index_add


def _own_context(hist_items: Tensor, hist_mask: Tensor, targets: Tensor) -> Tensor:
    """(H, C, L): the history items each target may read, all but itself."""
    return hist_mask[:, None, :] & (hist_items[:, None, :] != targets[:, :, None])


def _read_without(hist_items: Tensor, targets: Tensor, positions: Tensor
                  ) -> tuple[Tensor, Tensor]:
    """For one history (L,): how many of its items each of `targets` (C,) reads (C,), and
    how many once the item at each of `positions` (P,) is removed (P, C)."""
    own = hist_items[None, :] != targets[:, None]  # (C, L)
    read = own.sum(-1)
    return read, read[None, :] - own.index_select(1, positions).T.long()


def _by_head(x: Tensor, heads: int) -> Tensor:
    """(B, N, E) -> (B K, N, E / K): each head's slice of the last axis as its own row."""
    b, n, e = x.shape
    return x.view(b, n, heads, e // heads).transpose(1, 2).reshape(b * heads, n, e // heads)


def _from_heads(x: Tensor, heads: int) -> Tensor:
    """(B K, N, E / K) -> (B, N, E): the heads' slices side by side again."""
    bk, n, w = x.shape
    return x.view(bk // heads, heads, n, w).transpose(1, 2).reshape(bk // heads, n, heads * w)


def _mlp(features: int, hidden: tuple[int, ...], out: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Dropout(dropout)] if dropout > 0 else []
    width = features
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    layers.append(nn.Linear(width, out))
    return nn.Sequential(*layers)
