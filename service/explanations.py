"""Why: the history items behind a prediction, and the home page's "because you watched X"
rows. Every reason is an exact leave-one-out contribution from the predictor's one batched
call (`Predictor.contributions`), reported beside the model's attention on the item.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.history import History
from models.inference.contributions import Contributions
from models.inference.predictor import ExplainJob, ModelName, Predictor, ScoreJob, ScoreResult
from service.batcher import MicroBatcher
from service.catalogue import Item, ItemCatalogue


@dataclass(frozen=True)
class Reason:
    """One history item behind a prediction: the user's rating of it, the model's
    attention on it, and how much the prediction drops when it is removed."""

    item: Item
    rating: float
    attention: float
    contribution: float


@dataclass(frozen=True)
class CarouselRow:
    """A liked history item (at `position`) and the best-ranked items that owe most to it,
    as positions in the scored pool."""

    position: int
    pool_positions: np.ndarray


class Explainer:
    def __init__(
        self,
        predictor: Predictor,
        batcher: MicroBatcher[ScoreJob, ScoreResult],
        catalogue: ItemCatalogue,
    ):
        self._predictor = predictor
        self._batcher = batcher
        self._catalogue = catalogue

    async def contributions(
        self, history: History, targets: np.ndarray, model: ModelName
    ) -> Contributions:
        """Contributions to `model`'s prediction for each target: one batched call on
        the scoring thread."""
        [found] = await self._batcher.call(
            self._predictor.contributions, [ExplainJob(history, targets, model)]
        )
        return found

    def reasons(self, found: Contributions, k: int) -> list[list[Reason]]:
        """For each target, the k history items that raise its prediction most, most first."""
        order = np.argsort(-found.contribution, axis=1, kind="stable")[:, :k]  # (C, k)
        items = found.history.items[found.positions].tolist()
        ratings = found.history.ratings[found.positions].tolist()
        attention, contribution = found.attention.tolist(), found.contribution.tolist()
        return [
            [
                Reason(self._catalogue.item(items[j]), ratings[j], attention[row][j],
                       contribution[row][j])
                for j in order[row].tolist()
            ]
            for row in range(len(order))
        ]

    async def carousel_rows(
        self, history: History, anchors: list[int], pool: np.ndarray, top: np.ndarray, k: int
    ) -> list[CarouselRow]:
        """Each of `top` (positions in `pool`, best-ranked first) goes to the anchor whose
        removal lowers its ranking score most, if any does; each anchor keeps its best k.
        Exact removal, not attention: the ranker's recency offsets put most attention on
        the newest items, so the newest anchor would take nearly every item."""
        job = ExplainJob(history, pool[top], "ranking", np.array(anchors, np.int64))
        [found] = await self._batcher.call(self._predictor.contributions, [job])
        owner = found.contribution.argmax(axis=1)  # (top,)
        owes = found.contribution.max(axis=1) > 0
        return [
            CarouselRow(position, top[(owner == a) & owes][:k])
            for a, position in enumerate(anchors)
        ]
