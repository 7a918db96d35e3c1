"""Runs the artifact's batched inference on the serving device; explanations included.

Everything here is synchronous and runs on the batcher's worker thread, never on the
event loop. Item-side state (the model's tables) is moved to the device once, at load.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from models.artifact import Artifact
from models.inference import History, pad_batch, predict


@dataclass(frozen=True)
class ScoreJob:
    """Score `targets` (dense item indices) for one history."""

    history: History
    targets: np.ndarray
    with_attention: bool = False


@dataclass(frozen=True)
class ScoreResult:
    ratings: np.ndarray  # (C,) predicted ratings
    attention: np.ndarray | None  # (C, L) over the job's history, when asked


@dataclass(frozen=True)
class LeaveOneOut:
    """prediction: with the whole history; attention (L,) of the target over the history;
    contribution (L,): prediction minus the prediction without that history item."""

    prediction: float
    attention: np.ndarray
    contribution: np.ndarray


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Scorer:
    def __init__(self, artifact: Artifact, device: torch.device):
        self.model = artifact.model.to(device)
        self.device = device
        self.max_context = artifact.max_context

    def run(self, jobs: list[ScoreJob]) -> list[ScoreResult]:
        """Scores a micro-batch. Jobs are grouped by target count (powers of two) so a
        10-item request does not pay for padding to a 1000-item neighbour."""
        results: list[ScoreResult | None] = [None] * len(jobs)
        groups: dict[int, list[int]] = {}
        for index, job in enumerate(jobs):
            groups.setdefault(max(1, len(job.targets)).bit_length(), []).append(index)
        for members in groups.values():
            histories = [jobs[i].history.newest(self.max_context) for i in members]
            batch = pad_batch(histories, [jobs[i].targets for i in members], self.device)
            out = predict(self.model, batch)
            ratings = out.rating.float().cpu().numpy()
            want_attention = any(jobs[i].with_attention for i in members)
            attention = out.attention.float().cpu().numpy() if want_attention else None
            for row, i in enumerate(members):
                c, n = len(jobs[i].targets), len(histories[row].items)
                att = attention[row, :c, :n] if jobs[i].with_attention else None
                results[i] = ScoreResult(ratings[row, :c], att)
        return results  # type: ignore[return-value]

    def leave_one_out(self, history: History, target: int) -> LeaveOneOut:
        """Exact contributions in one call: slot 0 sees the whole history, slot j + 1 the
        history without item j (H = 1, C = L + 1 slots of the same target)."""
        history = history.newest(self.max_context)
        n = len(history.items)
        context = np.ones((1, n + 1, max(1, n)), bool)
        context[0, 1:, :n] &= ~np.eye(n, dtype=bool)
        batch = pad_batch([history], [np.full(n + 1, target, np.int64)], self.device)
        batch = replace(batch, context_mask=torch.from_numpy(context).to(self.device))
        out = predict(self.model, batch)
        ratings = out.rating[0].float().cpu().numpy()
        attention = out.attention[0, 0, :n].float().cpu().numpy()
        return LeaveOneOut(float(ratings[0]), attention, ratings[0] - ratings[1:])
