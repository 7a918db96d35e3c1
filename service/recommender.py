"""What the API does, free of HTTP: the routes' only door.

It reads and writes ratings and the catalogue, validates requests (`service.validation`),
maps ids (`service.catalogue`), ranks through the micro-batcher into the predictor,
retrieves candidates (`service.retrieval`) and asks `service.explanations` why. Routes
turn its results into JSON.

Every call reads the served version once (`Lifecycle.current`) and uses it to the end, so
a swap between two requests never mixes versions within one, and every result names the
version that produced it.

A version trained on interactions alone has no rating head: it ranks (the recommended order
is then the ranking order, carousels decompose the ranking score) and predicts no rating
(`predicted_rating` None); scoring, the rating order and explanations of a predicted
rating answer `NoRatingHead` (409).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from models.history import History
from models.inference.predictor import Order, Predictor, ScoreJob, ScoreResult
from service.batcher import MicroBatcher
from service.catalogue import Embedded
from service.errors import NoRatingHead, NotFound, UnknownItems
from service.explanations import Explainer, Reasons
from service.item_store import Item, ItemStore
from service.lifecycle import Lifecycle, ModelState
from service.rating_store import Rating, RatingStore
from service.served_model import ServedModel
from service.settings import Settings
from service.validation import Limits, NewRating


@dataclass(frozen=True)
class Ranked:
    item: Item
    score: float
    predicted_rating: float | None  # None: the model has no rating head
    reasons: Reasons | None = None


@dataclass(frozen=True)
class Scored:
    predicted_ratings: np.ndarray  # (n,) in the order asked
    cold_start: bool  # no rated item the model knows: the default user's prediction
    version: str


@dataclass(frozen=True)
class RankedList:
    items: list[Ranked]
    cold_start: bool
    version: str


@dataclass(frozen=True)
class Explained:
    predicted_rating: float
    reasons: Reasons
    cold_start: bool
    version: str


@dataclass(frozen=True)
class Similar:
    items: list[tuple[Item, float]]
    version: str


@dataclass(frozen=True)
class CatalogueEntry:
    item: Item
    embedded: Embedded


@dataclass(frozen=True)
class CataloguePage:
    items: list[Item]
    next_cursor: str | None


@dataclass(frozen=True)
class Carousel:
    anchor: Item
    anchor_rating: float
    items: list[Ranked]


@dataclass(frozen=True)
class Carousels:
    rows: list[Carousel]
    version: str


CAROUSEL_DEPTH = 10  # candidates per carousel slot: k = 10, 3 rows -> the best 300
CATALOGUE_SCAN = 10_000  # catalogue ids one `GET /v1/items?q=` call reads at most


class Recommender:
    def __init__(
        self,
        lifecycle: Lifecycle,
        store: RatingStore,
        items: ItemStore,
        batcher: MicroBatcher[tuple[Predictor, ScoreJob], ScoreResult],
        settings: Settings,
    ):
        self.limits = Limits(settings)
        self._lifecycle = lifecycle
        self._store = store
        self._items = items
        self._batcher = batcher
        self._settings = settings
        self._explainer = Explainer(batcher)

    @property
    def version(self) -> str:
        return self._lifecycle.current.version

    def model_state(self) -> ModelState:
        return self._lifecycle.state()

    # -- ratings -------------------------------------------------------------------------

    async def ratings(self, user_id: str) -> list[Rating]:
        """A user's stored ratings, oldest first; empty for a user never seen."""
        return await self._store.read(user_id)

    async def add_ratings(self, user_id: str, ratings: list[NewRating]) -> tuple[int, int]:
        """Validates the whole batch, then stores it: (ratings stored, history size). Any
        catalogued item is accepted, whether or not the served model embeds it yet: the
        history is the source of truth."""
        checked = await self._checked(ratings)
        size = await self._store.add(user_id, checked)
        await self._lifecycle.rated(user_id, checked)
        return len(checked), size

    async def delete_user(self, user_id: str) -> None:
        await self._store.delete(user_id)

    async def ping(self) -> None:
        await self._store.ping()

    # -- the catalogue -------------------------------------------------------------------

    async def put_item(self, item: Item) -> bool:
        """Creates, updates or revives an item; True when created."""
        self.limits.check_id(item.item_id, "item_id")
        created = await self._items.put(item)
        await self._lifecycle.catalogued(item.item_id)
        return created

    async def retire_item(self, item_id: str) -> None:
        if not await self._items.retire(item_id):
            raise NotFound(f"no item {item_id!r} in the catalogue")
        await self._lifecycle.catalogued(item_id)

    async def item(self, item_id: str) -> CatalogueEntry:
        """Any catalogued item, retired or not, and how the served model knows it."""
        item = self._lifecycle.mirror.get(item_id) or await self._items.get(item_id)
        if item is None:
            raise NotFound(f"no item {item_id!r} in the catalogue")
        return CatalogueEntry(item, self._lifecycle.current.catalogue.source(item_id))

    async def items(self, q: str | None, cursor: str | None, limit: int) -> CataloguePage:
        """A page of the catalogue in id order, `q` matching titles (case-insensitive).
        Reads at most `CATALOGUE_SCAN` ids per call, so a rare `q` over a huge catalogue
        answers a short page with a cursor rather than scanning everything at once."""
        self.limits.check_k(limit)
        needle = q.casefold() if q else None
        found: list[Item] = []
        chunk = max(limit, 500)
        for _ in range(max(1, CATALOGUE_SCAN // chunk)):
            ids = await self._items.ids_after(cursor, chunk)
            for item in await self._items.get_many(ids):
                cursor = item.item_id if item is not None else cursor
                if item is not None and (needle is None or needle in item.title.casefold()):
                    found.append(item)
                    if len(found) == limit:
                        return CataloguePage(found, cursor)
            if len(ids) < chunk:
                return CataloguePage(found, None)
            cursor = ids[-1]
        return CataloguePage(found, cursor)

    def similar(self, item_id: str, k: int) -> Similar:
        """Nearest items by cosine similarity of the ranker's frozen item embeddings; no
        retired item is ever returned."""
        served = self._lifecycle.current
        found, similarity = served.retrieval.similar(
            served.catalogue.index(item_id), self.limits.check_k(k), ~served.catalogue.retired
        )
        return Similar(
            [(served.catalogue.item(int(i)), float(s))
             for i, s in zip(found, similarity, strict=True)],
            served.version,
        )

    # -- scoring -------------------------------------------------------------------------

    async def score(
        self, user_id: str | None, inline: list[NewRating] | None, item_ids: list[str]
    ) -> Scored:
        served = self._lifecycle.current
        if not served.rating_head:
            raise NoRatingHead(served.version, "scoring (predicted ratings)")
        history = await self._history(served, user_id, inline)
        targets = served.catalogue.indices(
            self.limits.check_ids(item_ids, self._settings.max_items_per_request)
        )
        result = await self._batcher.submit(
            (served.predictor, ScoreJob(history, targets, at=_now())))
        return Scored(result.ratings, len(history) == 0, served.version)

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
        reasons come from the same call, decomposing the score that ordered them. Retired
        items are never ranked."""
        self.limits.check_k(k)
        served = self._lifecycle.current
        if order == "rating" and not served.rating_head:
            raise NoRatingHead(served.version, "order=rating")
        history = await self._history(served, user_id, inline)
        if candidates is not None:
            ids = self.limits.check_ids(candidates, self._settings.max_candidates)
            pool = np.unique(served.catalogue.indices(ids))
            pool = pool[~served.catalogue.retired[pool]]
        else:
            pool = self._whole_catalogue(served, history)
        if exclude_rated:
            pool = _unrated(pool, history)
        if len(pool) == 0:
            return RankedList([], len(history) == 0, served.version)
        result = await self._batcher.submit(
            (served.predictor, ScoreJob(history, pool, order, top=k, explain=explain,
                                        at=_now()))
        )
        reasons: list[Reasons | None] = [None] * len(result.best)
        if result.contributions is not None:
            reasons = self._explainer.reasons(
                served, result.contributions, self._settings.explain_items
            )
        items = [
            Ranked(served.catalogue.item(int(pool[i])), float(result.score[i]),
                   _predicted(result.ratings[i]), why)
            for i, why in zip(result.best, reasons, strict=True)
        ]
        return RankedList(items, len(history) == 0, served.version)

    # -- explanations --------------------------------------------------------------------

    async def explain(self, user_id: str, item_id: str, k: int) -> Explained:
        """Why this predicted rating: the rating model's exact leave-one-out."""
        self.limits.check_k(k)
        served = self._lifecycle.current
        if not served.rating_head:
            raise NoRatingHead(served.version, "explaining a predicted rating")
        target = served.catalogue.index(item_id)
        history = await self._history(served, user_id, None)
        found = await self._explainer.contributions(
            served, history, np.array([target], np.int64), "rating", at=_now()
        )
        [reasons] = self._explainer.reasons(served, found, k)
        return Explained(float(found.prediction[0]), reasons, len(history) == 0, served.version)

    async def carousels(self, user_id: str, rows: int, k: int) -> Carousels:
        """For each recent item X the user liked (and the ranker reads), up to k of the
        best recommendations that X truly pushes up ("because you watched X")."""
        served = self._lifecycle.current
        history = await self._history(served, user_id, None)
        newest_first = range(len(history) - 1, -1, -1)
        window = len(history) - served.predictor.max_history  # older items are not read
        liked = served.scale.liked
        anchors = [p for p in newest_first if history.ratings[p] >= liked and p >= window]
        anchors = anchors[:rows]
        pool = self._whole_catalogue(served, history)
        pool = _unrated(pool, history)
        if not anchors or len(pool) == 0:
            return Carousels([], served.version)
        # Deep enough that rows fill with items their anchor really pushes up.
        depth = max(k * len(anchors) * CAROUSEL_DEPTH, self._settings.recommend_depth)
        now = _now()
        result = await self._batcher.submit(
            (served.predictor, ScoreJob(history, pool, "recommended", top=depth, at=now))
        )
        candidates = pool[result.best]
        assigned = await self._explainer.carousel_rows(served, history, anchors, candidates, k,
                                                       now)
        catalogue = served.catalogue
        return Carousels([
            Carousel(
                catalogue.item(int(history.items[anchor])),
                float(history.ratings[anchor]),
                [
                    Ranked(catalogue.item(int(candidates[j])),
                           float(result.score[result.best[j]]),
                           _predicted(result.ratings[result.best[j]]))
                    for j in row
                ],
            )
            for anchor, row in zip(anchors, assigned, strict=True)
        ], served.version)

    # -- candidates ----------------------------------------------------------------------

    def _whole_catalogue(self, served: ServedModel, history: History) -> np.ndarray:
        """Candidates for a rank without `candidates`: every item not retired when the
        catalogue is small enough to score exhaustively (it is exact), else FAISS
        retrieval: neighbours of the newest history items, plus the items with the largest
        learned bias."""
        retired = served.catalogue.retired
        if len(served.catalogue) <= self._settings.exhaustive_max_items:
            return np.flatnonzero(~retired).astype(np.int64)
        return served.retrieval.candidates(
            history.items[::-1][: self._settings.retrieval_queries],
            self._settings.retrieval_per_query,
            self._settings.retrieval_popular,
            retired,
        )

    async def _checked(self, ratings: list[NewRating]) -> list[Rating]:
        """A batch of ratings: limits and values, then every id catalogued (one 422 names
        each that is not)."""
        checked = self.limits.check_ratings(ratings, self._lifecycle.current.scale)
        ids = [r.item_id for r in checked]
        mirror = self._lifecycle.mirror
        unseen = sorted({i for i in ids if i not in mirror})
        if unseen:  # perhaps catalogued by another process a moment ago
            known = await self._items.catalogued(unseen)
            missing = [i for i, k in zip(unseen, known, strict=True) if not k]
            if missing:
                raise UnknownItems(missing)
        return checked

    async def _history(
        self, served: ServedModel, user_id: str | None, inline: list[NewRating] | None
    ) -> History:
        """The model's view of a stored user's ratings, or of an inline (unstored) list."""
        if inline is not None:
            ratings = sorted(await self._checked(inline), key=lambda r: r.timestamp)
            return served.catalogue.history(ratings)
        assert user_id is not None
        stored = await self._store.read_coded(self.limits.check_id(user_id, "user_id"))
        return await served.catalogue.coded_history(stored, self._store.ids_of)


def _now() -> int:
    """What the service predicts ratings for: now, in Unix seconds (the rating model's
    session offset weighs the history items rated just before it)."""
    return int(time.time())


def _predicted(rating: float) -> float | None:
    """A predicted rating as results carry it: None where none was predicted (NaN: the
    model has no rating head)."""
    return None if np.isnan(rating) else float(rating)


def _unrated(pool: np.ndarray, history: History) -> np.ndarray:
    """The item indices of `pool` (sorted) the history does not hold: each history item
    looked up by bisection, O(L log C), where np.isin's sort or index-range table cost
    more for a few thousand candidates among a million items."""
    at = np.searchsorted(pool, history.items).clip(max=max(len(pool) - 1, 0))
    held = at[pool[at] == history.items] if len(pool) else at[:0]
    keep = np.ones(len(pool), bool)
    keep[held] = False
    return pool[keep]
