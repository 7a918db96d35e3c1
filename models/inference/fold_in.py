"""New items scored without retraining: fold-in with every trained weight frozen.

A user in these models is built from their history, never learned; an item is learned.
Folding an item in is the item-side mirror of building a user: its rows (the rating
model's M, T, Y and bias, the ranking model's frozen embedding and bias) are fitted to the
ratings it received while everything trained stays fixed, as SVD fold-in fits a new user's
factors against frozen item factors (Sarwar, Karypis, Konstan & Riedl, 2002). Before anyone
rated it, the rows come from its genres (`AttributePrior`, a ridge map learned on the
trained items, as attribute-to-factor maps in Gantner, Drumond, Freudenthaler, Rendle &
Schmidt-Thieme, 2010); that prior is also what the fit is pulled toward.

`with_items` appends folded rows to new copies of both models; the originals keep serving.
An artifact trained on interactions alone has no rating model: its items are folded into
the ranking model only (the rating rows of a `FoldedItem` are then empty).
This module imports no training code: the service folds items in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from torch.func import functional_call

from models.data.attributes import genre_vocabulary, one_hot
from models.history import History, PaddedBatch, pad_batch
from models.inference.scoring import catalogue_scores
from models.networks.ranking import RankingModel
from models.networks.rating import RatingModel

Source = Literal["folded", "attributes"]

# Settings chosen on the even half of ML-100K's evaluated held-out items
# (bench/item_fold_in.py; bench/findings.md has the grids).
# L2 pull of the rating rows toward the prior, against the summed squared errors: held-out
# RMSE at n = 10 / 20 revealed ratings 0.9305 / 0.9454 at 1, 0.9244 / 0.9118 at 3,
# 0.9396 / 0.9194 at 10.
PULL = 3.0
# Weight of the history-side term (the raters' other ratings with the new item in their
# context): the only signal on T and Y. It cannot move the new item's own predictions
# (0.9245 without it at n = 10), so it is kept at the weight of the target-side term.
HISTORY_WEIGHT = 1.0
# Items each rater contributes to the history-side term: the ones nearest in time.
HISTORY_ITEMS = 10
# Pseudo-raters of the prior in the co-occurrence part of the ranking embedding.
COOCCURRENCE_PRIOR = 3.0
# The folded co-occurrence row's norm, relative to the trained rows' mean norm. It acts as
# a popularity knob: at n = 10, 1.0 put the item in 75% of its later raters' top 50 and in
# 58% of non-raters'; 0.5 in 22% and 14%; 0.25 in 1% and 1%. 0.5 separates raters from
# non-raters best at n = 20 (58% against 36%).
COOCCURRENCE_SCALE = 0.5
# L2 pull of the ranking bias toward the prior's: the raters-only likelihood always pushes
# the bias up (every rater is a positive, no one a negative); 1 put the item in 97% of
# non-raters' top 50 at n = 10, 30 in 58% (at scale 1.0), 300 in 54%.
RANKING_BIAS_PULL = 30.0
FIT_ITERATIONS = 60


@dataclass(frozen=True)
class FoldedItem:
    """A new item's rows for both models. ranking_embedding is (d,) = [co-occurrence part,
    M part], as the ranker's frozen embeddings are built. Without a rating model structure
    and taste are empty, implicit None and rating_bias 0."""

    structure: np.ndarray
    taste: np.ndarray
    implicit: np.ndarray | None
    rating_bias: float
    ranking_embedding: np.ndarray
    ranking_bias: float
    raters: int
    source: Source

    def to_json(self) -> dict:
        """Plain lists of floats: the service keeps folded items in Redis as JSON."""
        as_list = lambda a: None if a is None else [float(x) for x in a]  # noqa: E731
        return {
            "structure": as_list(self.structure),
            "taste": as_list(self.taste),
            "implicit": as_list(self.implicit),
            "rating_bias": float(self.rating_bias),
            "ranking_embedding": as_list(self.ranking_embedding),
            "ranking_bias": float(self.ranking_bias),
            "raters": int(self.raters),
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: dict) -> FoldedItem:
        as_array = lambda a: None if a is None else np.asarray(a, np.float32)  # noqa: E731
        return cls(
            structure=as_array(data["structure"]),
            taste=as_array(data["taste"]),
            implicit=as_array(data["implicit"]),
            rating_bias=float(data["rating_bias"]),
            ranking_embedding=as_array(data["ranking_embedding"]),
            ranking_bias=float(data["ranking_bias"]),
            raters=int(data["raters"]),
            source=data["source"],
        )


@dataclass(frozen=True)
class Rater:
    """One rating of the new item. before: the rater's history (items the models know) as
    of just before they rated it, oldest first; after: their items rated after it (the
    history-side term reads them; may be empty)."""

    before: History
    rating: float
    after: History = History.empty()


def with_items(
    rating_model: RatingModel | None, ranking_model: RankingModel, folded: Sequence[FoldedItem],
    genres: Sequence[Sequence[str]] | None = None,
) -> tuple[RatingModel | None, RankingModel]:
    """New models (eval mode) whose item tables end with the folded rows, at n_items,
    n_items + 1, ...; the originals are untouched, so they keep serving meanwhile.
    genres: each folded item's, for the rating model's attributes (none when None)."""
    rows = lambda get: torch.tensor(np.stack([get(f) for f in folded]), dtype=torch.float32)  # noqa: E731
    rating = None
    if rating_model is not None:
        rating = _rating_with(rating_model, folded, rows, genres or [[]] * len(folded))

    state = {k: v.detach().clone() for k, v in ranking_model.state_dict().items()}
    embeddings = torch.cat([state.pop("item_embeddings"),
                            rows(lambda f: f.ranking_embedding).to(state["item_bias"].device)])
    state["item_bias"] = torch.cat([
        state["item_bias"],
        torch.tensor([f.ranking_bias for f in folded], device=state["item_bias"].device),
    ])
    if ranking_model.item_item is not None:
        state["item_item.weights"] = ranking_model.item_item.grown(len(embeddings))
    ranking = RankingModel(ranking_model.config, embeddings, ranking_model.scale)
    ranking.load_state_dict({**state, "item_embeddings": embeddings})
    return rating, ranking.to(embeddings.device).eval()


def _rating_with(
    rating_model: RatingModel, folded: Sequence[FoldedItem], rows: Callable,
    genres: Sequence[Sequence[str]],
) -> RatingModel:
    state = {k: v.detach().clone() for k, v in rating_model.state_dict().items()}
    appended = {
        "structure.weight": rows(lambda f: f.structure),
        "taste.weight": rows(lambda f: f.taste),
    }
    if rating_model.implicit is not None:
        appended["implicit.weight"] = rows(lambda f: f.implicit)
    if rating_model.item_bias is not None:
        appended["item_bias.weight"] = rows(lambda f: np.array([f.rating_bias]))
    if rating_model.config.attributes:  # genres the training vocabulary lacks weigh nothing
        appended["item_attributes"] = torch.from_numpy(
            one_hot(genres, rating_model.config.attributes)).float()
    if rating_model.config.item_offsets:
        appended["item_offsets"] = torch.zeros(len(folded))  # no raters' residuals yet
    for key, extra in appended.items():
        state[key] = torch.cat([state[key], extra.to(state[key].device)])
    n = rating_model.n_items + len(folded)
    rating = RatingModel(rating_model.config, n, rating_model.scale).to(state["global_mean"].device)
    rating.load_state_dict(state)
    return rating.eval()


def mean_item(rating_model: RatingModel | None, ranking_model: RankingModel | None
              ) -> FoldedItem:
    """The average trained item: the prior when neither genres nor a prior are given
    (without a ranking model, its ranking rows are empty)."""
    tables = _item_tables(rating_model, ranking_model)
    n = len(tables[0])
    return _from_vector(_times_rows(np.ones((n, 1)), tables)[0] / n, rating_model, 0)


@dataclass(frozen=True)
class AttributePrior:
    """A ridge map from an item's genre one-hot (and an intercept) to all its rows."""

    genres: tuple[str, ...]
    weights: np.ndarray  # (len(genres) + 1, row width)
    rating_model: RatingModel | None
    ranking_model: RankingModel

    def item(self, genres: Sequence[str]) -> FoldedItem:
        """The n = 0 item: its rows predicted from its genres (unknown genres ignored)."""
        row = _one_hot([list(genres)], self.genres)[0] @ self.weights
        return _from_vector(row, self.rating_model, 0)


def attribute_prior(
    rating_model: RatingModel | None,
    ranking_model: RankingModel,
    genres: Sequence[Sequence[str]],
    ridge: float = 10.0,
) -> AttributePrior:
    """Fits the genre-to-rows ridge map on the trained items; genres[i] is item i's list.
    The intercept is not penalised, so an item without genres gets the mean rows."""
    vocabulary = genre_vocabulary(genres)
    x = _one_hot(genres, vocabulary)  # (n, g + 1), intercept last
    penalty = ridge * np.eye(x.shape[1])
    penalty[-1, -1] = 0.0
    weights = np.linalg.solve(x.T @ x + penalty,
                              _times_rows(x, _item_tables(rating_model, ranking_model)))
    return AttributePrior(vocabulary, weights, rating_model, ranking_model)


def bias_only_fold_in(
    rating_model: RatingModel, raters: Sequence[Rater], shrink: float = 10.0,
    prior: FoldedItem | None = None,
) -> float:
    """The peer: only the rating bias is fitted, the other rows stay at the prior (the
    mean trained item by default). With p_r the frozen model's prediction of rater r at the
    prior's bias, b = b_prior + sum_r (rating_r - p_r) / (n + shrink): one ALS step of a
    baseline predictor (Koren, 2010), its shrink as Surprise's BaselineOnly reg_i."""
    prior = prior or mean_item(rating_model, None)
    if not raters:
        return prior.rating_bias
    with torch.no_grad():
        predicted = _predict_new(rating_model, _as_tensors(prior, rating_model), raters)
    ratings = torch.tensor([r.rating for r in raters])
    return prior.rating_bias + float((ratings - predicted).sum()) / (len(raters) + shrink)


def fold_in_item(
    rating_model: RatingModel | None,
    ranking_model: RankingModel,
    raters: Sequence[Rater],
    prior: FoldedItem | None = None,
    pull: float = PULL,
    history_weight: float = HISTORY_WEIGHT,
    ranking_bias_pull: float = RANKING_BIAS_PULL,
) -> FoldedItem:
    """The new item's rows fitted to its raters with both models frozen (deterministic:
    L-BFGS from the prior, no sampling). Rating side: squared error of each rater's rating
    predicted from `before`, plus `history_weight` times the raters' other ratings predicted
    with the new item in their context (the only place T and Y act), plus `pull` |rows -
    prior|^2. Ranking side: see `_ranking_rows`. Without a rating model, the ranking side
    alone. Models must be in eval mode."""
    prior = prior or mean_item(rating_model, ranking_model)
    if not raters:
        return prior
    if rating_model is None:
        structure = taste = np.zeros(0, np.float32)
        implicit, bias = None, 0.0
    else:
        fitted = _fit_rating_rows(rating_model, raters, prior, pull, history_weight)
        structure, taste, implicit = (
            None if t is None else t.detach().cpu().numpy() for t in fitted[:3])
        bias = float(fitted[3].detach())
    embedding, ranking_bias = _ranking_rows(
        ranking_model, raters, prior, structure, ranking_bias_pull
    )
    return FoldedItem(
        structure=structure,
        taste=taste,
        implicit=implicit,
        rating_bias=float(bias),
        ranking_embedding=embedding,
        ranking_bias=ranking_bias,
        raters=len(raters),
        source="folded",
    )


def _fit_rating_rows(
    model: RatingModel, raters: Sequence[Rater], prior: FoldedItem, pull: float,
    history_weight: float,
) -> list[Tensor | None]:
    """(M, T, Y or None, bias) rows minimising the fold-in objective by L-BFGS."""
    start = _as_tensors(prior, model)
    anchors = [t for t in start if t is not None]
    params = [t.clone().requires_grad_(True) for t in anchors]
    ratings = torch.tensor([r.rating for r in raters], device=params[0].device)
    history_side = _history_side_batch(model, raters)
    optimizer = torch.optim.LBFGS(
        params, max_iter=FIT_ITERATIONS, line_search_fn="strong_wolfe", tolerance_change=1e-7
    )

    def rows() -> list[Tensor | None]:
        it = iter(params)
        return [None if t is None else next(it) for t in start]

    def objective() -> Tensor:
        optimizer.zero_grad()
        current = rows()
        loss = ((_predict_new(model, current, raters) - ratings) ** 2).sum()
        if history_side is not None and history_weight > 0:
            loss = loss + history_weight * _history_side_error(model, current, history_side)
        distance = sum(((p - s) ** 2).sum() for p, s in zip(params, anchors, strict=True))
        loss = loss + pull * distance
        loss.backward()
        return loss

    optimizer.step(objective)
    return rows()


def _as_tensors(item: FoldedItem, model: RatingModel) -> list[Tensor | None]:
    """(M, T, Y or None, bias (1,)) of an item as float32 tensors on the model's device."""
    device = model.structure.weight.device
    tensor = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32, device=device)  # noqa: E731
    implicit = None if model.implicit is None else tensor(item.implicit)
    return [tensor(item.structure), tensor(item.taste), implicit, tensor([item.rating_bias])]


def _extended(model: RatingModel, rows: list[Tensor | None]) -> dict[str, Tensor]:
    """The model's item tables with the new item's rows appended at index n_items, for
    `functional_call`: gradients reach the new rows only."""
    structure, taste, implicit, bias = rows
    tables = {
        "structure.weight": torch.cat([model.structure.weight.detach(), structure[None]]),
        "taste.weight": torch.cat([model.taste.weight.detach(), taste[None]]),
    }
    if model.implicit is not None:
        tables["implicit.weight"] = torch.cat([model.implicit.weight.detach(), implicit[None]])
    if model.item_bias is not None:
        tables["item_bias.weight"] = torch.cat([model.item_bias.weight.detach(), bias[None]])
    return tables


def _predict_new(model: RatingModel, rows: list[Tensor | None], raters: Sequence[Rater]) -> Tensor:
    """(R,) predicted ratings of the new item, each rater from their `before` history."""
    histories = [r.before.newest(model.config.max_context) for r in raters]
    new = np.array([model.n_items], np.int64)
    batch = pad_batch(histories, [new] * len(raters), model.structure.weight.device)
    out = functional_call(model, _extended(model, rows), (
        batch.hist_items, batch.hist_ratings, batch.hist_mask, batch.targets, batch.target_mask,
    ))
    return out.rating[:, 0]


def _history_side_batch(
    model: RatingModel, raters: Sequence[Rater]
) -> tuple[PaddedBatch, Tensor] | None:
    """Per rater, the items they rated nearest in time to the new item (the newest of
    `before`, the oldest of `after`) as targets, with those items and the new item (at the
    rater's rating) as history; None when no rater has any."""
    histories, targets, truths = [], [], []
    half = HISTORY_ITEMS // 2
    for rater in raters:
        items = np.concatenate([rater.before.items[-half:], rater.after.items[:half]])
        ratings = np.concatenate([rater.before.ratings[-half:], rater.after.ratings[:half]])
        if len(items) == 0:
            continue
        histories.append(History(np.append(items, model.n_items).astype(np.int64),
                                 np.append(ratings, rater.rating).astype(np.float32)))
        targets.append(items.astype(np.int64))
        truths.append(ratings.astype(np.float32))
    if not histories:
        return None
    batch = pad_batch(histories, targets, model.structure.weight.device)
    truth = torch.zeros(batch.targets.shape, device=batch.targets.device)
    for row, values in enumerate(truths):
        truth[row, : len(values)] = torch.from_numpy(values)
    return batch, truth


def _history_side_error(
    model: RatingModel, rows: list[Tensor | None], side: tuple[PaddedBatch, Tensor]
) -> Tensor:
    """Sum over raters of their mean squared error on the history-side targets."""
    batch, truth = side
    out = functional_call(model, _extended(model, rows), (
        batch.hist_items, batch.hist_ratings, batch.hist_mask, batch.targets, batch.target_mask,
    ))
    mask = batch.target_mask.float()
    per_rater = (((out.rating - truth) ** 2) * mask).sum(1) / mask.sum(1)
    return per_rater.sum()


def _ranking_rows(
    model: RankingModel, raters: Sequence[Rater], prior: FoldedItem, structure: np.ndarray,
    bias_pull: float,
) -> tuple[np.ndarray, float]:
    """The ranker's embedding row and bias. The co-occurrence part is the SVD fold-in of
    the raters' items (`_cooccurrence_row`), shrunk toward the prior's by
    COOCCURRENCE_PRIOR pseudo-raters; the M part is the fitted
    M, as training builds the frozen embeddings. The bias maximises the ranker's
    whole-catalogue softmax likelihood of the new item for its raters (each from `before`),
    pulled toward the prior's bias: a one-dimensional convex problem, solved by Newton."""
    e = structure.shape[0]
    table = model.item_embeddings.detach().cpu().numpy().astype(np.float64)
    cooc = _cooccurrence_row(table[:, : table.shape[1] - e], raters)
    if cooc is not None:
        prior_part = prior.ranking_embedding[: len(cooc)]
        cooc = (COOCCURRENCE_PRIOR * prior_part + len(raters) * cooc) / (
            COOCCURRENCE_PRIOR + len(raters))
    else:
        cooc = prior.ranking_embedding[: table.shape[1] - e]
    embedding = np.concatenate([cooc, structure]).astype(np.float32)
    ranker = _ranker_with(model, embedding, prior.ranking_bias)
    scores = torch.from_numpy(catalogue_scores(ranker, [r.before for r in raters])).double()
    others = scores[:, :-1]
    own = scores[:, -1] - prior.ranking_bias
    bias = torch.tensor(prior.ranking_bias, dtype=torch.float64)
    for _ in range(20):
        p = torch.sigmoid(own + bias - torch.logsumexp(others, dim=1))
        gradient = (p - 1).sum() + 2 * bias_pull * (bias - prior.ranking_bias)
        bias = bias - gradient / ((p * (1 - p)).sum() + 2 * bias_pull)
    return embedding, float(bias)


def _cooccurrence_row(table: np.ndarray, raters: Sequence[Rater]) -> np.ndarray | None:
    """The SVD fold-in of the new item's co-occurrence row (Sarwar et al., 2002): with
    the trained rows E = U sqrt(S), a new row a of the factorised matrix maps to
    a U S^-1/2 = a E S^-1, S being E's column norms squared. a is approximated by how many
    raters rated each item, then the row is scaled to the trained rows' mean norm (PPMI's
    marginals are not kept at serving, so the raw scale is unknown). None without items."""
    items = np.concatenate([np.concatenate([r.before.items, r.after.items]) for r in raters])
    if len(items) == 0:
        return None
    counts = np.bincount(items, minlength=len(table)).astype(np.float64)
    power = (table**2).sum(0)
    row = (counts @ table) / np.where(power > 0, power, 1.0)
    norm = np.linalg.norm(row)
    target = COOCCURRENCE_SCALE * np.linalg.norm(table, axis=1).mean()
    return row * (target / norm) if norm > 0 else None


def _ranker_with(model: RankingModel, embedding: np.ndarray, bias: float) -> RankingModel:
    """A ranker with one extra item, its rating-side rows not yet known."""
    embeddings = torch.cat([
        model.item_embeddings,
        torch.tensor(embedding, device=model.item_embeddings.device)[None],
    ])
    ranker = RankingModel(model.config, embeddings, model.scale)
    state = {**model.state_dict(), "item_embeddings": embeddings}
    state["item_bias"] = torch.cat([
        model.item_bias.detach(), torch.tensor([bias], device=embeddings.device)
    ])
    if model.item_item is not None:
        state["item_item.weights"] = model.item_item.grown(len(embeddings))
    ranker.load_state_dict(state)
    return ranker.to(embeddings.device).eval()


def _item_tables(rating_model: RatingModel | None, ranking_model: RankingModel | None
                 ) -> list[torch.Tensor]:
    """Every trained item's rows, (n_items, width) a table, in `_from_vector`'s layout:
    M, T, Y (if any), rating bias (these with a rating model), ranking embedding, ranking
    bias (these with a ranking model)."""
    parts = []
    if rating_model is not None:
        parts += [rating_model.structure.weight, rating_model.taste.weight]
        if rating_model.implicit is not None:
            parts.append(rating_model.implicit.weight)
        n = rating_model.n_items
        bias = rating_model.item_bias
        parts.append(bias.weight if bias is not None else torch.zeros(n, 1))
    if ranking_model is not None:
        parts += [ranking_model.item_embeddings, ranking_model.item_bias[:, None]]
    return [p.detach().cpu().float() for p in parts]


def _times_rows(x: np.ndarray, tables: list[torch.Tensor], chunk: int = 65_536) -> np.ndarray:
    """x.T @ (the tables side by side), in float64 a chunk of items at a time: the rows of
    a million items side by side in float64 are 5 GB (39 s of a profiled start-up, 4 s
    this way, and the peak of a swap's memory)."""
    out = []
    for table in tables:
        total = np.zeros((x.shape[1], table.shape[1]))
        for start in range(0, len(x), chunk):
            rows = table[start : start + chunk].numpy().astype(np.float64)
            total += x[start : start + chunk].T @ rows
        out.append(total)
    return np.concatenate(out, axis=1)


def _from_vector(row: np.ndarray, rating_model: RatingModel | None, raters: int) -> FoldedItem:
    """A FoldedItem from one row of the `_item_tables` side by side (ranking parts empty
    when it has none, rating parts when there is no rating model)."""
    row = row.astype(np.float32)
    if rating_model is None:
        empty = np.zeros(0, np.float32)
        return FoldedItem(structure=empty, taste=empty, implicit=None, rating_bias=0.0,
                          ranking_embedding=row[:-1], ranking_bias=float(row[-1]),
                          raters=raters, source="attributes")
    e = rating_model.config.dim
    structure, taste, rest = row[:e], row[e : 2 * e], row[2 * e :]
    implicit = None
    if rating_model.implicit is not None:
        implicit, rest = rest[:e], rest[e:]
    return FoldedItem(
        structure=structure,
        taste=taste,
        implicit=implicit,
        rating_bias=float(rest[0]),
        ranking_embedding=rest[1:-1],
        ranking_bias=float(rest[-1]) if len(rest) > 1 else 0.0,
        raters=raters,
        source="attributes",
    )


def _one_hot(genres: Sequence[Sequence[str]], vocabulary: tuple[str, ...]) -> np.ndarray:
    """(n, len(vocabulary) + 1) genre indicators with an intercept column last."""
    return np.hstack([one_hot(genres, vocabulary), np.ones((len(genres), 1))])
