"""Why: the history items behind a prediction, and the home page's "because you watched X"
rows. Every reason is an exact leave-one-out contribution from the predictor's one batched
call (`Predictor.contributions`), reported beside the model's attention on the item:
items that raise the score are reasons (`because`), items that lower it are named apart
(`despite`), never shown as reasons.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.history import History
from models.inference.contributions import Contributions
from models.inference.predictor import ExplainJob, Order, Predictor, ScoreJob, ScoreResult
from service.batcher import MicroBatcher
from service.item_store import Item
from service.served_model import ServedModel


@dataclass(frozen=True)
class Reason:
    """One history item behind a prediction: the user's rating of it, the model's
    attention on it, and how much the prediction drops when it is removed."""

    item: Item
    rating: float
    attention: float
    contribution: float


@dataclass(frozen=True)
class Reasons:
    because: list[Reason]  # contribution > 0, largest first
    despite: list[Reason]  # contribution < 0, most negative first


# A contribution smaller than this is float32 rounding, not a reason either way.
NEGLIGIBLE = 1e-6


class Explainer:
    def __init__(self, batcher: MicroBatcher[tuple[Predictor, ScoreJob], ScoreResult]):
        self._batcher = batcher

    async def contributions(
        self, served: ServedModel, history: History, targets: np.ndarray, order: Order,
        positions: np.ndarray | None = None, at: int | None = None,
    ) -> Contributions:
        """Contributions to each target's `order` score under `served`, predicted as of
        `at` (Unix seconds): one batched call on the scoring thread."""
        job = ExplainJob(history, targets, order, positions, at)
        [found] = await self._batcher.call(served.predictor.contributions, [job])
        return found

    def reasons(self, served: ServedModel, found: Contributions, k: int) -> list[Reasons]:
        """For each target, the k history items that raise its score most and the k that
        lower it most. Only those 2k columns leave numpy: it runs on the event loop."""
        order = np.argsort(-found.contribution, axis=1, kind="stable")  # (C, P)
        up = min(k, order.shape[1])
        # The k largest, then the k smallest, most negative first.
        picked = np.concatenate([order[:, :up], order[:, ::-1][:, :up]], axis=1)  # (C, 2k)
        contribution = np.take_along_axis(found.contribution, picked, axis=1)
        shown = np.concatenate(
            [contribution[:, :up] > NEGLIGIBLE, contribution[:, up:] < -NEGLIGIBLE], axis=1
        )
        positions = found.positions[picked]
        rows = zip(
            found.history.items[positions].tolist(),
            found.history.ratings[positions].tolist(),
            np.take_along_axis(found.attention, picked, axis=1).tolist(),
            contribution.tolist(),
            shown.tolist(),
            strict=True,
        )
        item = served.catalogue.item
        out = []
        for row in rows:
            reasons = [Reason(item(i), rating, attention, value) if show else None
                       for i, rating, attention, value, show in zip(*row, strict=True)]
            out.append(Reasons([r for r in reasons[:up] if r], [r for r in reasons[up:] if r]))
        return out

    async def carousel_rows(
        self, served: ServedModel, history: History, anchors: list[int],
        candidates: np.ndarray, k: int, at: int | None = None,
    ) -> list[list[int]]:
        """For each anchor (a history position), up to k of `candidates` (best first), each
        truly pushed up by its anchor: removing the anchor lowers the item's recommended
        score. An item goes to the row, not yet full, whose anchor it owes most; no item
        is shown twice. Rows are lists of positions in `candidates`."""
        found = await self.contributions(
            served, history, candidates, "recommended", np.array(anchors, np.int64), at
        )
        rows: list[list[int]] = [[] for _ in anchors]
        for position, owed in enumerate(found.contribution.tolist()):  # best first
            open_rows = [
                a for a in range(len(anchors)) if len(rows[a]) < k and owed[a] > NEGLIGIBLE
            ]
            if open_rows:
                rows[max(open_rows, key=lambda a: owed[a])].append(position)
            if all(len(row) == k for row in rows):
                break
        return rows
