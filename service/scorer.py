"""Runs the artifact's two scorers on the serving device; explanations included.

The rating scorer predicts ratings; the ranker orders items (seed 001). A job asks for
ratings, and for ranking scores too when it comes from a ranking call.

Everything here is synchronous and runs on the batcher's worker thread, never on the
event loop. Item-side state (the model's tables) is moved to the device once, at load.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from models.artifact import Artifact
from models.inference import History, PaddedBatch, pad_batch, predict
from models.ranking_inference import predict_ranking, ranking_scores


@dataclass(frozen=True)
class ScoreJob:
    """Score `targets` (dense item indices) for one history.

    ranking: add the ranker's scores; then `rate_top`, when set, limits predicted ratings
    to the best-ranked `rate_top` targets (a rank response shows only its top k, and the
    rating scorer costs more than the ranker)."""

    history: History
    targets: np.ndarray
    ranking: bool = False
    rate_top: int | None = None


@dataclass(frozen=True)
class ScoreResult:
    ratings: np.ndarray  # (C,) predicted ratings; NaN for targets outside `rate_top`
    ranking: np.ndarray | None  # (C,) ranking scores (logits), when asked
    best: np.ndarray | None = None  # positions of the best `rate_top` by ranking, best first


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


@dataclass(frozen=True)
class LeaveOneOut:
    """For one target over `history` (the newest items the model used): its score with the
    whole history, attention (L,), and contribution (L,): score minus score without that
    item. Rating scorer: scores are predicted ratings; ranker: ranking logits."""

    history: History
    prediction: float
    attention: np.ndarray
    contribution: np.ndarray


class Scorer:
    def __init__(self, artifact: Artifact, device: torch.device):
        self.model = artifact.model.to(device)
        self.ranker = artifact.ranker.to(device)
        with torch.inference_mode():
            self.item_side = self.ranker.item_side()
        self.device = device
        self.max_context = artifact.max_context
        self.max_history = artifact.max_history

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
            out = predict(self.model, self._batch(jobs, members, self.max_context))
            ratings = out.rating.float().cpu().numpy()
            for row, i in enumerate(members):
                results[i] = ScoreResult(ratings[row, : len(jobs[i].targets)], None)
        return results  # type: ignore[return-value]

    def _run_ranking(
        self, jobs: list[ScoreJob], members: list[int], results: list[ScoreResult | None]
    ) -> None:
        """The ranker over every target, then the rating scorer over each job's best
        `rate_top` (all targets when None)."""
        batch = self._batch(jobs, members, self.max_history)
        scores = ranking_scores(self.ranker, batch, self.item_side).float().cpu().numpy()
        best = [
            best_first(jobs[i].targets, scores[row, : len(jobs[i].targets)], jobs[i].rate_top)
            for row, i in enumerate(members)
        ]
        ratings = self._ratings_at(jobs, members, best)
        for row, i in enumerate(members):
            results[i] = ScoreResult(ratings[row], scores[row, : len(jobs[i].targets)], best[row])

    def _ratings_at(
        self, jobs: list[ScoreJob], members: list[int], positions: list[np.ndarray]
    ) -> list[np.ndarray]:
        """Predicted ratings of each job's targets at `positions`, NaN elsewhere."""
        out = [np.full(len(jobs[i].targets), np.nan, np.float32) for i in members]
        if not any(len(p) for p in positions):
            return out
        histories = [jobs[i].history.newest(self.max_context) for i in members]
        wanted = [jobs[i].targets[p] for i, p in zip(members, positions, strict=True)]
        rated = predict(self.model, pad_batch(histories, wanted, self.device))
        ratings = rated.rating.float().cpu().numpy()
        for row, p in enumerate(positions):
            out[row][p] = ratings[row, : len(p)]
        return out

    def leave_one_out(self, history: History, target: int, ranking: bool = False) -> LeaveOneOut:
        """Exact contributions in one batched call: the score with the whole history and
        with each item left out. The ranker depends on positions (recency), so it scores
        L + 1 real histories; the rating scorer does not, so one history with L + 1 context
        masks gives the same numbers at a fraction of the cost."""
        if ranking:
            history = history.newest(self.max_history)
            n = len(history.items)
            variants = [history] + [history.without(j) for j in range(n)]
            batch = pad_batch(variants, [np.array([target], np.int64)] * (n + 1), self.device)
            out = predict_ranking(self.ranker, batch)
            scores, attention = out.score[:, 0], out.attention[0, 0, :n]
        else:
            history = history.newest(self.max_context)
            n = len(history.items)
            context = np.ones((1, n + 1, max(1, n)), bool)
            context[0, 1:, :n] &= ~np.eye(n, dtype=bool)
            batch = pad_batch([history], [np.full(n + 1, target, np.int64)], self.device)
            batch = replace(batch, context_mask=torch.from_numpy(context).to(self.device))
            rated = predict(self.model, batch)
            scores, attention = rated.rating[0], rated.attention[0, 0, :n]
        scores = scores.float().cpu().numpy()
        return LeaveOneOut(
            history, float(scores[0]), attention.float().cpu().numpy(), scores[0] - scores[1:]
        )

    def anchor_contributions(
        self, history: History, anchors: list[int], targets: np.ndarray
    ) -> np.ndarray:
        """(C, A): how much each target's ranking score drops when the history item at each
        anchor position is left out; one batched call of 1 + A histories. Anchors must lie
        among the newest `max_history` items, the ones the ranker reads."""
        offset = max(0, len(history.items) - self.max_history)
        history = history.newest(self.max_history)
        variants = [history] + [history.without(p - offset) for p in anchors]
        batch = pad_batch(variants, [targets] * len(variants), self.device)
        scores = ranking_scores(self.ranker, batch, self.item_side).float().cpu().numpy()
        return (scores[0][None, :] - scores[1:]).T

    def _batch(self, jobs: list[ScoreJob], members: list[int], cap: int) -> PaddedBatch:
        histories = [jobs[i].history.newest(cap) for i in members]
        return pad_batch(histories, [jobs[i].targets for i in members], self.device)
