"""The one inference seam: an artifact's two models on one device, behind three calls.

    run(jobs)            score a micro-batch: predicted ratings, or a job's candidates in
                         one of three orders (its best `top` rated and, asked, explained)
    contributions(jobs)  exact leave-one-out contributions for many (history, targets) jobs
    item_vectors()       what retrieval indexes: the ranker's frozen item embeddings and
                         its learned item bias

The three orders:

    ranking       what the user will pick next: the ranking model's logit
    rating        what the user will rate highest: the rating model's prediction
    recommended   what the user will pick and like: the logit plus `like_weight` times the
                  predicted rating's distance from the scale's middle, over the `depth`
                  best by the logit, those predicted below the middle last (the weight
                  chosen on a validation split, bench/recommendations.py)

An artifact trained on interactions alone has no rating model (`rated` False): it predicts
no ratings (NaN), `recommended` is the ranking order and its contributions the ranking
model's, and a job that needs a predicted rating (no order, or `rating`) is refused with
`NoRatingModel`; the service checks `rated` first and answers 409.

The service touches only this and the artifact; nothing else reaches into a network.
Everything here is synchronous: the service runs it on its batcher's worker thread. Item-side
state (the models' tables, the ranker's candidate projections) is moved to the device and
computed once, at construction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch

from models.artifact import Artifact
from models.history import History, PaddedBatch, pad_batch
from models.inference.contributions import (
    Contributions,
    ranking_contributions,
    rating_contributions,
    times_of,
)
from models.inference.defaults import DEPTH, LIKE_WEIGHT
from models.inference.scoring import ranking_scores, rating_output
from models.networks.rating import HistoryOffset

Order = Literal["ranking", "rating", "recommended"]
# A history's offset: with the whole history, and without each item.
Offsets = tuple[HistoryOffset, HistoryOffset]
DISLIKED_LAST = 1e6  # larger than any spread of recommended scores


class NoRatingModel(ValueError):
    """A predicted rating was asked of an artifact trained on interactions alone."""


@dataclass(frozen=True)
class ScoreJob:
    """Score `targets` (dense item indices) for one history.

    order: None for the predicted rating of every target (no order); else `best` lists the
    best `top` targets in that order (all when None), each rated and, with `explain`,
    explained: the contributions of the history's items to the score that ordered them.
    The ranking model scores every target; the rating model only those it must (every
    target for the rating order, the `depth` shortlist for the recommended one, else the
    best `top`): it costs more per target.
    at: when the ratings are predicted for, Unix seconds (the service's now), for the rating
    model's session offset; None: no session offset."""

    history: History
    targets: np.ndarray
    order: Order | None = None
    top: int | None = None
    explain: bool = False
    at: int | None = None


@dataclass(frozen=True)
class ScoreResult:
    ratings: np.ndarray  # (C,) predicted ratings; NaN where not computed
    ranking: np.ndarray | None  # (C,) ranking logits, for the ranking orders
    score: np.ndarray | None = None  # (C,) what ordered `best`; NaN where not computed
    best: np.ndarray | None = None  # positions of the best `top`, best first
    contributions: Contributions | None = None  # to `score` of the `best`, when asked


@dataclass(frozen=True)
class ExplainJob:
    """Contributions of `history`'s items to the `order` score of each of `targets`.

    positions: history positions to measure (all the models read when None); a position
    no model reads (older than their caps) is refused. at: as `ScoreJob`'s."""

    history: History
    targets: np.ndarray
    order: Order
    positions: np.ndarray | None = None
    at: int | None = None


@dataclass(frozen=True)
class ItemVectors:
    embeddings: np.ndarray  # (n_items, d) float32: the ranker's frozen item embeddings
    bias: np.ndarray  # (n_items,) float32: the ranker's learned item bias


def best_first(targets: np.ndarray, scores: np.ndarray, k: int | None = None) -> np.ndarray:
    """Positions of the best k `targets` (all when None) by descending score, ties by item
    index: the one order used for every ranked list. Sorts only the scores that can make
    the top k, so a top 10 of 10,000 candidates sorts about 10. NaN scores come last."""
    if np.isnan(scores).any():  # converted only when needed: nan_to_num is slow on a few items
        scores = np.nan_to_num(scores, nan=-np.inf)
    if k is not None and k <= 0:
        return np.zeros(0, np.int64)
    if k is not None and k < len(scores):
        # Everything scoring at least the k-th best score, ties at the border included.
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        contenders = np.flatnonzero(scores >= kth)
        return contenders[np.lexsort((targets[contenders], -scores[contenders]))][:k]
    return np.lexsort((targets, -scores))


class Predictor:
    def __init__(
        self,
        artifact: Artifact,
        device: torch.device,
        like_weight: float = LIKE_WEIGHT,
        depth: int = DEPTH,
    ):
        rating_model = artifact.rating_model
        self.rating_model = None if rating_model is None else rating_model.to(device)
        self.ranking_model = artifact.ranking_model.to(device)
        with torch.inference_mode():
            self.item_side = self.ranking_model.item_side()
        self.device = device
        self.max_context = 0 if rating_model is None else rating_model.config.max_context
        self.max_history = self.ranking_model.config.max_history
        self.like_weight = like_weight
        self.depth = depth
        self.scale = artifact.scale

    @property
    def rated(self) -> bool:
        """Whether there is a rating model: False for an artifact trained on interactions."""
        return self.rating_model is not None

    def run(self, jobs: list[ScoreJob]) -> list[ScoreResult]:
        """Scores a micro-batch. Jobs are grouped by target count (powers of two) so a
        10-item request does not pay for padding to a 1000-item neighbour."""
        if not self.rated:
            self._check_unrated(job.order for job in jobs)
        results: list[ScoreResult | None] = [None] * len(jobs)
        groups: dict[tuple[int, bool], list[int]] = {}
        for index, job in enumerate(jobs):
            ranked = job.order in ("ranking", "recommended")
            groups.setdefault((max(1, len(job.targets)).bit_length(), ranked), []).append(index)
        for (_, ranked), members in groups.items():
            logits = self._ranking(jobs, members) if ranked else [None] * len(members)
            shortlists = [self._shortlist(jobs[i], r) for i, r in zip(members, logits, strict=True)]
            offsets = [self._offsets(jobs[i]) for i in members]
            ratings = self._ratings_at(jobs, members, shortlists, offsets)
            for i, ranking, rated, own in zip(members, logits, ratings, offsets, strict=True):
                results[i] = self._result(jobs[i], ranking, rated, own)
        return results  # type: ignore[return-value]

    def contributions(self, jobs: list[ExplainJob]) -> list[Contributions]:
        """Exact leave-one-out for every job, each in one batched pass per model it needs."""
        if not self.rated:
            self._check_unrated(job.order for job in jobs)
        return [self._contributions(job) for job in jobs]

    def item_vectors(self) -> ItemVectors:
        model = self.ranking_model
        return ItemVectors(
            model.item_embeddings.float().cpu().numpy(),
            model.item_bias.detach().float().cpu().numpy(),
        )

    def recommended(self, ranking: np.ndarray, ratings: np.ndarray) -> np.ndarray:
        """The recommended score from a ranking logit and a predicted rating."""
        return ranking + self.like_weight * (ratings - self.scale.mid)

    def _ranking(self, jobs: list[ScoreJob], members: list[int]) -> list[np.ndarray]:
        batch = self._batch(jobs, members, self.max_history)
        scores = ranking_scores(self.ranking_model, batch, self.item_side).float().cpu().numpy()
        return [scores[row, : len(jobs[i].targets)] for row, i in enumerate(members)]

    def _check_unrated(self, orders: Iterable[Order | None]) -> None:
        if any(order in (None, "rating") for order in orders):
            raise NoRatingModel(
                "the model was trained on interactions alone: it predicts no ratings"
            )

    def _shortlist(self, job: ScoreJob, ranking: np.ndarray | None) -> np.ndarray:
        """Positions of the targets the rating model must score for this job."""
        if not self.rated:
            return np.zeros(0, np.int64)
        if ranking is None:
            return np.arange(len(job.targets))
        wanted = job.top
        if job.order == "recommended":
            wanted = max(self.depth, job.top or 0)
        return best_first(job.targets, ranking, wanted)

    def _offsets(self, job: ScoreJob) -> Offsets | None:
        """The rating model's history offset of a job that explains predicted ratings, with
        its whole history and without each item: computed once, for the ratings and for
        their leave-one-out, which would each compute it (bench/findings.md). None for
        every other job, and where the explained window is not the rating model's."""
        model = self.rating_model
        if (not job.explain or model is None or job.order not in ("rating", "recommended")
                or model.config.history_offset_shrink is None):
            return None
        history = job.history.newest(self.max_context)
        if len(history) == 0 or len(job.history.newest(self._cap(job.order))) != len(history):
            return None
        with torch.inference_mode():
            items, ratings = (torch.from_numpy(a).to(self.device)
                              for a in (history.items, history.ratings))
            return model.offsets_without(items, ratings,
                                         torch.arange(len(history), device=self.device),
                                         times_of(history, job.at, self.device))

    def _cap(self, order: Order) -> int:
        """The newest history items an explanation in `order` measures: those its models read."""
        return {"rating": self.max_context, "ranking": self.max_history,
                "recommended": max(self.max_context, self.max_history)}[order]

    def _result(
        self, job: ScoreJob, ranking: np.ndarray | None, ratings: np.ndarray,
        offsets: Offsets | None = None,
    ) -> ScoreResult:
        if job.order is None:
            return ScoreResult(ratings, None)
        score = {"ranking": ranking, "rating": ratings}.get(job.order)
        order_by = score
        if job.order == "recommended" and not self.rated:
            score = order_by = ranking
        elif job.order == "recommended":
            score = self.recommended(ranking, ratings)
            # What the rating model expects the user to dislike comes after everything
            # else on the shortlist: it fills the list only when nothing else is left.
            order_by = np.where(  # float64: a float32 would round the shifted scores
                ratings < self.scale.mid, score.astype(np.float64) - DISLIKED_LAST, score
            )
        best = best_first(job.targets, order_by, job.top)
        explained = None
        if job.explain:
            explained = self._contributions(
                ExplainJob(job.history, job.targets[best], job.order, at=job.at), offsets)
        return ScoreResult(ratings, ranking, score, best, explained)

    def _contributions(self, job: ExplainJob, offsets: Offsets | None = None) -> Contributions:
        """The rating model reads the newest `max_context` items, the ranking model the
        newest `max_history`; positions are the history's own, shifted onto the window
        measured. An item a model does not read contributes exactly nothing to it.
        offsets: the rating model's (`_offsets`) for every position, when already known."""
        cap = self._cap(job.order)
        offset = max(0, len(job.history) - cap)
        history = job.history.newest(cap)
        if job.positions is None:
            positions = np.arange(len(history), dtype=np.int64)
        else:
            positions = np.asarray(job.positions, np.int64) - offset
            if len(positions) and (positions.min() < 0 or positions.max() >= len(history)):
                raise ValueError(f"positions outside the newest {cap} items the models read")
        targets = np.asarray(job.targets, np.int64)
        if job.order == "rating":
            return rating_contributions(self.rating_model, history, targets, positions,
                                        self.device, offsets, job.at)
        ranked = self._ranking_contributions(history, targets, positions)
        if job.order == "ranking" or not self.rated:
            return ranked
        rated = rating_contributions(self.rating_model, history, targets, positions, self.device,
                                     offsets, job.at)
        return Contributions(
            history,
            targets,
            self.recommended(ranked.prediction, rated.prediction),
            positions,
            rated.attention,  # the rating model's: what "because you watched" shows
            ranked.contribution + self.like_weight * rated.contribution,
        )

    def _ranking_contributions(
        self, history: History, targets: np.ndarray, positions: np.ndarray
    ) -> Contributions:
        """Ranking contributions over `history` even where it is longer than the ranking
        model reads: the older items, which it never sees, contribute 0."""
        offset = max(0, len(history) - self.max_history)
        read = positions >= offset
        found = ranking_contributions(
            self.ranking_model, history.newest(self.max_history), targets,
            positions[read] - offset, self.device, self.item_side,
        )
        if read.all():
            return replace(found, history=history, positions=positions)
        attention = np.zeros((len(targets), len(positions)), np.float32)
        contribution = np.zeros((len(targets), len(positions)), np.float32)
        attention[:, read], contribution[:, read] = found.attention, found.contribution
        return Contributions(history, targets, found.prediction, positions, attention,
                             contribution)

    def _ratings_at(
        self, jobs: list[ScoreJob], members: list[int], positions: list[np.ndarray],
        offsets: list[Offsets | None],
    ) -> list[np.ndarray]:
        """Predicted ratings of each job's targets at `positions`, NaN elsewhere. The
        history offsets come from `offsets` when every job has them, else are computed."""
        out = [np.full(len(jobs[i].targets), np.nan, np.float32) for i in members]
        if not any(len(p) for p in positions):
            return out
        histories = [jobs[i].history.newest(self.max_context) for i in members]
        wanted = [jobs[i].targets[p] for i, p in zip(members, positions, strict=True)]
        offset = None
        if all(own is not None for own in offsets):
            offset = HistoryOffset.stack([own[0] for own in offsets])  # type: ignore[index]
        batch = pad_batch(histories, wanted, self.device, [jobs[i].at for i in members])
        rated = rating_output(self.rating_model, batch, offset)
        ratings = rated.rating.float().cpu().numpy()
        for row, p in enumerate(positions):
            out[row][p] = ratings[row, : len(p)]
        return out

    def _batch(self, jobs: list[ScoreJob], members: list[int], cap: int) -> PaddedBatch:
        histories = [jobs[i].history.newest(cap) for i in members]
        return pad_batch(histories, [jobs[i].targets for i in members], self.device)
