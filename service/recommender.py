"""What the API does, free of HTTP: the routes' only door.

It reads and writes ratings, validates requests (`service.validation`), maps ids
(`service.catalogue`), ranks through the micro-batcher into the predictor, retrieves
candidates (`service.retrieval`) and asks `service.explanations` why. Routes turn its
results into JSON.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.artifact import Artifact
from models.history import History
from models.inference.predictor import Order, Predictor, ScoreJob, ScoreResult
from service.batcher import MicroBatcher
from service.catalogue import Item, ItemCatalogue
from service.explanations import Explainer, Reasons
from service.rating_store import Rating, RatingStore
from service.retrieval import ItemIndex
from service.settings import Settings
from service.validation import Limits, NewRating


@dataclass(frozen=True)
class Ranked:
    item: Item
    score: float
    predicted_rating: float
    reasons: Reasons | None = None


@dataclass(frozen=True)
class Scored:
    predicted_ratings: np.ndarray  # (n,) in the order asked
    cold_start: bool  # no rated item the model knows: the default user's prediction


@dataclass(frozen=True)
class RankedList:
    items: list[Ranked]
    cold_start: bool


@dataclass(frozen=True)
class Explained:
    predicted_rating: float
    reasons: Reasons
    cold_start: bool


@dataclass(frozen=True)
class Carousel:
    anchor: Item
    anchor_rating: float
    items: list[Ranked]


CAROUSEL_DEPTH = 10  # candidates per carousel slot: k = 10, 3 rows -> the best 300


class Recommender:
    def __init__(
        self,
        artifact: Artifact,
        store: RatingStore,
        predictor: Predictor,
        batcher: MicroBatcher[ScoreJob, ScoreResult],
        retrieval: ItemIndex,
        settings: Settings,
    ):
        self.version = artifact.version
        self.scale = artifact.scale
        self.liked = self.scale.liked
        self.limits = Limits(settings)
        self._store = store
        self._predictor = predictor
        self._batcher = batcher
        self._retrieval = retrieval
        self._settings = settings
        self._catalogue = ItemCatalogue(artifact)
        self._explainer = Explainer(predictor, batcher, self._catalogue)

    # -- ratings -------------------------------------------------------------------------

    async def ratings(self, user_id: str) -> list[Rating]:
        """A user's stored ratings, oldest first; empty for a user never seen."""
        return await self._store.read(user_id)

    async def add_ratings(self, user_id: str, ratings: list[NewRating]) -> tuple[int, int]:
        """Validates the whole batch, then stores it: (ratings stored, history size)."""
        checked = self.limits.check_ratings(ratings, self.scale, self._catalogue)
        return len(checked), await self._store.add(user_id, checked)

    async def delete_user(self, user_id: str) -> None:
        await self._store.delete(user_id)

    async def ping(self) -> None:
        await self._store.ping()

    # -- items ---------------------------------------------------------------------------

    def item(self, item_id: str) -> Item:
        return self._catalogue.item(self._catalogue.index(item_id))

    def similar(self, item_id: str, k: int) -> list[tuple[Item, float]]:
        """Nearest items by cosine similarity of the ranker's frozen item embeddings."""
        found, similarity = self._retrieval.similar(
            self._catalogue.index(item_id), self.limits.check_k(k)
        )
        return [
            (self._catalogue.item(int(i)), float(s))
            for i, s in zip(found, similarity, strict=True)
        ]

    # -- scoring -------------------------------------------------------------------------

    async def score(
        self, user_id: str | None, inline: list[NewRating] | None, item_ids: list[str]
    ) -> Scored:
        history = await self._history(user_id, inline)
        targets = self._catalogue.indices(
            self.limits.check_ids(item_ids, self._settings.max_items_per_request)
        )
        result = await self._batcher.submit(ScoreJob(history, targets))
        return Scored(result.ratings, len(history) == 0)

    async def rank(
        self,
        user_id: str | None,
        inline: list[NewRating] | None,
        candidates: list[str] | None,
        k: int,
        exclude_rated: bool,
        explain: bool,
        order: Order = "recommended",
    ) -> RankedList:
        """Top k in `order` (models/inference/predictor.py). With `explain`, the k items'
        reasons come from the same call, decomposing the score that ordered them."""
        self.limits.check_k(k)
        history = await self._history(user_id, inline)
        if candidates is not None:
            ids = self.limits.check_ids(candidates, self._settings.max_candidates)
            pool = np.unique(self._catalogue.indices(ids))
        else:
            pool = self._whole_catalogue(history)
        if exclude_rated:
            pool = pool[~np.isin(pool, history.items)]
        if len(pool) == 0:
            return RankedList([], len(history) == 0)
        result = await self._batcher.submit(
            ScoreJob(history, pool, order, top=k, explain=explain)
        )
        reasons: list[Reasons | None] = [None] * len(result.best)
        if result.contributions is not None:
            reasons = self._explainer.reasons(result.contributions, self._settings.explain_items)
        items = [
            Ranked(self._catalogue.item(int(pool[i])), float(result.score[i]),
                   float(result.ratings[i]), why)
            for i, why in zip(result.best, reasons, strict=True)
        ]
        return RankedList(items, len(history) == 0)

    # -- explanations --------------------------------------------------------------------

    async def explain(self, user_id: str, item_id: str, k: int) -> Explained:
        """Why this predicted rating: the rating model's exact leave-one-out."""
        self.limits.check_k(k)
        target = self._catalogue.index(item_id)
        history = await self._history(user_id, None)
        found = await self._explainer.contributions(
            history, np.array([target], np.int64), "rating"
        )
        [reasons] = self._explainer.reasons(found, k)
        return Explained(float(found.prediction[0]), reasons, len(history) == 0)

    async def carousels(self, user_id: str, rows: int, k: int) -> list[Carousel]:
        """For each recent item X the user liked (and the ranker reads), up to k of the
        best recommendations that X truly pushes up ("because you watched X")."""
        history = await self._history(user_id, None)
        newest_first = range(len(history) - 1, -1, -1)
        window = len(history) - self._predictor.max_history  # older items are not read
        anchors = [p for p in newest_first if history.ratings[p] >= self.liked and p >= window]
        anchors = anchors[:rows]
        pool = self._whole_catalogue(history)
        pool = pool[~np.isin(pool, history.items)]
        if not anchors or len(pool) == 0:
            return []
        # Deep enough that rows fill with items their anchor really pushes up.
        depth = max(k * len(anchors) * CAROUSEL_DEPTH, self._settings.recommend_depth)
        result = await self._batcher.submit(ScoreJob(history, pool, "recommended", top=depth))
        candidates = pool[result.best]
        assigned = await self._explainer.carousel_rows(history, anchors, candidates, k)
        return [
            Carousel(
                self._catalogue.item(int(history.items[anchor])),
                float(history.ratings[anchor]),
                [
                    Ranked(self._catalogue.item(int(candidates[j])),
                           float(result.score[result.best[j]]),
                           float(result.ratings[result.best[j]]))
                    for j in row
                ],
            )
            for anchor, row in zip(anchors, assigned, strict=True)
        ]

    # -- candidates ----------------------------------------------------------------------

    def _whole_catalogue(self, history: History) -> np.ndarray:
        """Candidates for a rank without `candidates`: every item when the catalogue is
        small enough to score exhaustively (it is exact), else FAISS retrieval: neighbours
        of the newest liked items, plus the items with the largest learned bias."""
        if len(self._catalogue) <= self._settings.exhaustive_max_items:
            return np.arange(len(self._catalogue), dtype=np.int64)
        liked = history.items[history.ratings >= self.liked][::-1]
        return self._retrieval.candidates(
            liked[: self._settings.retrieval_queries],
            self._settings.retrieval_per_query,
            self._settings.retrieval_popular,
        )

    async def _history(self, user_id: str | None, inline: list[NewRating] | None) -> History:
        """The model's view of a stored user's ratings, or of an inline (unstored) list."""
        if inline is not None:
            ratings = sorted(
                self.limits.check_ratings(inline, self.scale, self._catalogue),
                key=lambda r: r.timestamp,
            )
        else:
            assert user_id is not None
            ratings = await self._store.read(self.limits.check_id(user_id, "user_id"))
        return self._catalogue.history(ratings)
