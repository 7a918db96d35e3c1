"""The one inference seam: an artifact's two models on one device, behind three calls.

    run(jobs)            score a micro-batch: predicted ratings, and ranking scores for a
                         ranking job (its best `rate_top` rated and, asked, explained)
    contributions(jobs)  exact leave-one-out contributions for many (history, targets) jobs
    item_vectors()       what retrieval indexes: the ranker's frozen item embeddings and
                         its learned item bias

The service touches only this and the artifact; nothing else reaches into a network.
Everything here is synchronous: the service runs it on its batcher's worker thread. Item-side
state (the models' tables, the ranker's candidate projections) is moved to the device and
computed once, at construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from models.artifact import Artifact
from models.history import History, PaddedBatch, pad_batch
from models.inference.contributions import (
    Contributions,
    ranking_contributions,
    rating_contributions,
)
from models.inference.scoring import ranking_scores, rating_output

ModelName = Literal["rating", "ranking"]


@dataclass(frozen=True)
class ScoreJob:
    """Score `targets` (dense item indices) for one history.

    ranking: add the ranking model's scores; then `rate_top`, when set, limits predicted
    ratings to the best-ranked `rate_top` targets (a rank response shows only its top k,
    and the rating model costs more than the ranking model). Without ranking, `rate_top`
    names how many of the best-rated targets `best` lists.
    explain: also the contributions of the history's items to the best `rate_top`, by
    the model that ordered them (the ranking model for a ranking job, else the rating
    model), computed in the same call, on the scores it already has."""

    history: History
    targets: np.ndarray
    ranking: bool = False
    rate_top: int | None = None
    explain: bool = False


@dataclass(frozen=True)
class ScoreResult:
    ratings: np.ndarray  # (C,) predicted ratings; NaN for targets outside `rate_top`
    ranking: np.ndarray | None  # (C,) ranking scores (logits), when asked
    best: np.ndarray | None = None  # positions of the best `rate_top`, best first
    contributions: Contributions | None = None  # of the `best` targets, when asked


@dataclass(frozen=True)
class ExplainJob:
    """Contributions of `history`'s items to `model`'s prediction for each of `targets`.

    positions: history positions to measure (all the model reads when None); a position
    the model does not read (older than its cap) is refused."""

    history: History
    targets: np.ndarray
    model: ModelName
    positions: np.ndarray | None = None


@dataclass(frozen=True)
class ItemVectors:
    embeddings: np.ndarray  # (n_items, d) float32: the ranker's frozen item embeddings
    bias: np.ndarray  # (n_items,) float32: the ranker's learned item bias


def best_first(targets: np.ndarray, scores: np.ndarray, k: int | None = None) -> np.ndarray:
    """Positions of the best k `targets` (all when None) by descending score, ties by item
    index: the one order used for every ranked list. Sorts only the scores that can make
    the top k, so a top 10 of 10,000 candidates sorts about 10."""
    if k is not None and k <= 0:
        return np.zeros(0, np.int64)
    if k is not None and k < len(scores):
        # Everything scoring at least the k-th best score, ties at the border included.
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        contenders = np.flatnonzero(scores >= kth)
        return contenders[np.lexsort((targets[contenders], -scores[contenders]))][:k]
    return np.lexsort((targets, -scores))


class Predictor:
    def __init__(self, artifact: Artifact, device: torch.device):
        self.rating_model = artifact.rating_model.to(device)
        self.ranking_model = artifact.ranking_model.to(device)
        with torch.inference_mode():
            self.item_side = self.ranking_model.item_side()
        self.device = device
        self.max_context = self.rating_model.config.max_context
        self.max_history = self.ranking_model.config.max_history

    def run(self, jobs: list[ScoreJob]) -> list[ScoreResult]:
        """Scores a micro-batch. Jobs are grouped by target count (powers of two) so a
        10-item request does not pay for padding to a 1000-item neighbour."""
        results: list[ScoreResult | None] = [None] * len(jobs)
        groups: dict[tuple[int, bool], list[int]] = {}
        for index, job in enumerate(jobs):
            key = (max(1, len(job.targets)).bit_length(), job.ranking)
            groups.setdefault(key, []).append(index)
        for (_, ranking), members in groups.items():
            if ranking:
                self._run_ranking(jobs, members, results)
                continue
            out = rating_output(self.rating_model, self._batch(jobs, members, self.max_context))
            ratings = out.rating.float().cpu().numpy()
            for row, i in enumerate(members):
                job, rated = jobs[i], ratings[row, : len(jobs[i].targets)]
                best = None
                if job.rate_top is not None:
                    best = best_first(job.targets, rated, job.rate_top)
                results[i] = ScoreResult(rated, None, best, self._explained(job, best, "rating"))
        return results  # type: ignore[return-value]

    def contributions(self, jobs: list[ExplainJob]) -> list[Contributions]:
        """Exact leave-one-out for every job, each in one batched pass of its model."""
        return [self._contributions(job) for job in jobs]

    def item_vectors(self) -> ItemVectors:
        model = self.ranking_model
        return ItemVectors(
            model.item_embeddings.float().cpu().numpy(),
            model.item_bias.detach().float().cpu().numpy(),
        )

    def _contributions(self, job: ExplainJob) -> Contributions:
        cap = self.max_history if job.model == "ranking" else self.max_context
        offset = max(0, len(job.history) - cap)
        history = job.history.newest(cap)
        if job.positions is None:
            positions = np.arange(len(history), dtype=np.int64)
        else:
            positions = np.asarray(job.positions, np.int64) - offset
            if len(positions) and (positions.min() < 0 or positions.max() >= len(history)):
                raise ValueError(f"positions outside the newest {cap} items the model reads")
        targets = np.asarray(job.targets, np.int64)
        if job.model == "ranking":
            return ranking_contributions(
                self.ranking_model, history, targets, positions, self.device, self.item_side
            )
        return rating_contributions(self.rating_model, history, targets, positions, self.device)

    def _run_ranking(
        self, jobs: list[ScoreJob], members: list[int], results: list[ScoreResult | None]
    ) -> None:
        """The ranking model over every target, then the rating model over each job's
        best `rate_top` (all targets when None)."""
        batch = self._batch(jobs, members, self.max_history)
        scores = ranking_scores(self.ranking_model, batch, self.item_side).float().cpu().numpy()
        best = [
            best_first(jobs[i].targets, scores[row, : len(jobs[i].targets)], jobs[i].rate_top)
            for row, i in enumerate(members)
        ]
        ratings = self._ratings_at(jobs, members, best)
        for row, i in enumerate(members):
            explained = self._explained(jobs[i], best[row], "ranking")
            results[i] = ScoreResult(
                ratings[row], scores[row, : len(jobs[i].targets)], best[row], explained
            )

    def _explained(
        self, job: ScoreJob, best: np.ndarray | None, model: ModelName
    ) -> Contributions | None:
        if not job.explain or best is None:
            return None
        return self._contributions(ExplainJob(job.history, job.targets[best], model))

    def _ratings_at(
        self, jobs: list[ScoreJob], members: list[int], positions: list[np.ndarray]
    ) -> list[np.ndarray]:
        """Predicted ratings of each job's targets at `positions`, NaN elsewhere."""
        out = [np.full(len(jobs[i].targets), np.nan, np.float32) for i in members]
        if not any(len(p) for p in positions):
            return out
        histories = [jobs[i].history.newest(self.max_context) for i in members]
        wanted = [jobs[i].targets[p] for i, p in zip(members, positions, strict=True)]
        rated = rating_output(self.rating_model, pad_batch(histories, wanted, self.device))
        ratings = rated.rating.float().cpu().numpy()
        for row, p in enumerate(positions):
            out[row][p] = ratings[row, : len(p)]
        return out

    def _batch(self, jobs: list[ScoreJob], members: list[int], cap: int) -> PaddedBatch:
        histories = [jobs[i].history.newest(cap) for i in members]
        return pad_batch(histories, [jobs[i].targets for i in members], self.device)
