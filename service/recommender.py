"""What the API does, independent of HTTP: validate, read history, score, rank, explain.

Routes translate JSON to these calls and back. Every prediction goes through the
micro-batcher into the artifact's one batched inference function.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import numpy as np

from models.artifact import Artifact
from models.inference import History
from service.batcher import MicroBatcher
from service.errors import InvalidInput, LimitExceeded, NotFound, UnknownItems
from service.history import HistoryStore, Rating
from service.retrieval import ItemIndex
from service.schemas import Because, RatingIn
from service.scorer import LeaveOneOut, ScoreJob, Scorer, ScoreResult, best_first
from service.settings import Settings

Order = Literal["ranking", "rating"]
LIKED = 4.0  # ratings at or above this (on a 1..5 scale; scaled otherwise) count as liked


@dataclass(frozen=True)
class Ranked:
    item: int
    score: float
    predicted_rating: float
    because: list[Because] | None = None


@dataclass(frozen=True)
class Explained:
    predicted_rating: float
    because: list[Because]


class Recommender:
    def __init__(
        self,
        artifact: Artifact,
        store: HistoryStore,
        scorer: Scorer,
        batcher: MicroBatcher[ScoreJob, ScoreResult],
        items: ItemIndex,
        settings: Settings,
    ):
        self.artifact = artifact
        self.store = store
        self.scorer = scorer
        self.batcher = batcher
        self.items = items
        self.settings = settings
        config = artifact.model.config
        self.low, self.high = config.rating_low, config.rating_high
        self.liked = self.low + (LIKED - 1.0) / 4.0 * (self.high - self.low)

    @property
    def version(self) -> str:
        return self.artifact.version

    # -- input -----------------------------------------------------------------------------

    def validate_ratings(self, ratings: list[RatingIn]) -> list[Rating]:
        """Checks a whole batch before anything is stored; raises naming every problem."""
        if len(ratings) > self.settings.max_ratings_per_request:
            raise LimitExceeded(
                f"{len(ratings)} ratings in one request; at most "
                f"{self.settings.max_ratings_per_request}"
            )
        self.indices([r.item_id for r in ratings])
        now = int(time.time())
        latest = now + self.settings.max_future_skew_s
        out = []
        for position, r in enumerate(ratings):
            if not self.low <= r.rating <= self.high:
                raise InvalidInput(
                    f"ratings[{position}].rating = {r.rating} is outside the "
                    f"model's scale {self.low:g}..{self.high:g}"
                )
            if r.timestamp is not None and r.timestamp > latest:
                raise InvalidInput(
                    f"ratings[{position}].timestamp = {r.timestamp} is in the "
                    f"future (server time {now})"
                )
            out.append(
                Rating(r.item_id, float(r.rating), now if r.timestamp is None else r.timestamp)
            )
        return out

    def check_id(self, value: str, name: str) -> str:
        """Ids are checked for their characters by the schema, for length here (the
        limit is a setting)."""
        if len(value) > self.settings.max_id_length:
            raise LimitExceeded(
                f"{name} is {len(value)} characters long; at most "
                f"{self.settings.max_id_length}"
            )
        return value

    def check_k(self, k: int) -> int:
        """Results asked for by one rank, explanation or similar-items request."""
        if k > self.settings.max_k:
            raise LimitExceeded(f"k = {k}; at most {self.settings.max_k}")
        return k

    def indices(self, item_ids: list[str], limit: int | None = None) -> np.ndarray:
        if limit is not None and len(item_ids) > limit:
            raise LimitExceeded(f"{len(item_ids)} item ids in one request; at most {limit}")
        if max(map(len, item_ids), default=0) > self.settings.max_id_length:
            for item_id in item_ids:
                self.check_id(item_id, "item_id")
        found = self.artifact.item_ids.lookup(item_ids)
        if None in found:
            raise UnknownItems([i for i, f in zip(item_ids, found, strict=True) if f is None])
        return np.array(found, np.int64)

    def item_index(self, item_id: str) -> int:
        index = self.artifact.item_ids.get(item_id)
        if index is None:
            raise NotFound(f"no item {item_id!r} in model {self.version}")
        return index

    def history(self, ratings: list[Rating]) -> History:
        """Dense history of the items the model knows, oldest first."""
        found = self.artifact.item_ids.lookup([r.item_id for r in ratings])
        values = [r.rating for r in ratings]
        if None in found:  # items the model was not trained on carry no signal
            values = [v for v, f in zip(values, found, strict=True) if f is not None]
            found = [f for f in found if f is not None]
        return History(np.array(found, np.int64), np.array(values, np.float32))

    def is_cold_start(self, ratings: list[Rating]) -> bool:
        """No rated item the model knows: stops at the first known one, unlike `history`."""
        ids = self.artifact.item_ids
        return not any(r.item_id in ids for r in ratings)

    async def ratings_for(self, user_id: str | None, inline: list[RatingIn] | None) -> list[Rating]:
        if inline is not None:
            return sorted(self.validate_ratings(inline), key=lambda r: r.timestamp)
        assert user_id is not None
        return await self.store.read(self.check_id(user_id, "user_id"))

    # -- scoring ---------------------------------------------------------------------------

    async def score(self, ratings: list[Rating], item_ids: list[str]) -> np.ndarray:
        targets = self.indices(item_ids, self.settings.max_items_per_request)
        result = await self.batcher.submit(ScoreJob(self.history(ratings), targets))
        return result.ratings

    async def rank(
        self,
        ratings: list[Rating],
        candidates: list[str] | None,
        k: int,
        exclude_rated: bool,
        explain: bool,
        order: Order = "ranking",
    ) -> list[Ranked]:
        """Top k by the ranker's score (`order="ranking"`) or by predicted rating."""
        self.check_k(k)
        history = self.history(ratings)
        if candidates is not None:
            pool = np.unique(self.indices(candidates, self.settings.max_candidates))
        else:
            pool = self.whole_catalogue(history)
        if exclude_rated:
            pool = pool[~np.isin(pool, history.items)]
        if len(pool) == 0:
            return []
        by_ranking = order == "ranking"
        job = ScoreJob(history, pool, ranking=by_ranking, rate_top=k)
        result = await self.batcher.submit(job)
        score = result.ranking if by_ranking else result.ratings
        top = result.best[:k] if by_ranking else best_first(pool, score, k)
        ranked = []
        for i in top:
            because = None
            if explain:
                loo = await self._leave_one_out(history, int(pool[i]), by_ranking)
                because = self._because(loo, self.settings.explain_items)
            ranked.append(
                Ranked(int(pool[i]), float(score[i]), float(result.ratings[i]), because)
            )
        return ranked

    def whole_catalogue(self, history: History) -> np.ndarray:
        """Candidates for a rank without `candidates`: every item when the catalogue is
        small enough to score exhaustively (it is exact), else FAISS retrieval."""
        if len(self.artifact.item_ids) <= self.settings.exhaustive_max_items:
            return np.arange(len(self.artifact.item_ids), dtype=np.int64)
        return self.retrieve(history)

    def retrieve(self, history: History) -> np.ndarray:
        """Candidates for a whole-catalogue rank: FAISS neighbours of the newest liked
        items, plus the items with the largest learned bias (see README, Retrieval)."""
        liked = history.items[history.ratings >= self.liked][::-1]
        queries = liked[: self.settings.retrieval_queries]
        return self.items.candidates(
            queries, self.settings.retrieval_per_query, self.settings.retrieval_popular
        )

    # -- explanations ----------------------------------------------------------------------

    async def explain(self, ratings: list[Rating], item_id: str, k: int) -> Explained:
        """Why this predicted rating: the rating scorer's exact leave-one-out."""
        self.check_k(k)
        target = self.item_index(item_id)
        loo = await self._leave_one_out(self.history(ratings), target, ranking=False)
        return Explained(loo.prediction, self._because(loo, k))

    async def carousels(
        self, ratings: list[Rating], rows: int, k: int
    ) -> list[tuple[Rating, list[Ranked]]]:
        """For each recent highly rated item X, the best-ranked recommendations that owe
        most to X: each top item goes to the anchor whose removal lowers its ranking score
        most (exact, like the rank explanations). Attention would not do: the ranker's
        recency offsets put most of it on the newest items, so the newest anchor took
        nearly every item."""
        history = self.history(ratings)
        newest_first = range(len(history.items) - 1, -1, -1)
        window = len(history.items) - self.scorer.max_history  # older items are not read
        positions = [p for p in newest_first if history.ratings[p] >= self.liked and p >= window]
        positions = positions[:rows]
        if not positions:
            return []
        pool = self.whole_catalogue(history)
        pool = pool[~np.isin(pool, history.items)]
        if len(pool) == 0:
            return []
        shown = max(k * rows * 4, 50)
        job = ScoreJob(history, pool, ranking=True, rate_top=shown)
        result = await self.batcher.submit(job)
        top = result.best
        contribution = await self.batcher.call(
            self.scorer.anchor_contributions, history, positions, pool[top]
        )  # (top, anchors)
        owner = contribution.argmax(axis=1)
        owes = contribution.max(axis=1) > 0
        by_item = {r.item_id: r for r in ratings}
        out = []
        for a, position in enumerate(positions):
            mine = top[(owner == a) & owes][:k]
            items = [
                Ranked(int(pool[i]), float(result.ranking[i]), float(result.ratings[i]))
                for i in mine
            ]
            anchor_id = self.artifact.item_ids.ids[int(history.items[position])]
            out.append((by_item[anchor_id], items))
        return out

    async def _leave_one_out(self, history: History, target: int, ranking: bool) -> LeaveOneOut:
        return await self.batcher.call(self.scorer.leave_one_out, history, target, ranking)

    def _because(self, loo: LeaveOneOut, k: int) -> list[Because]:
        """The k history items that raise this score most, with their attention."""
        history = loo.history
        ids = self.artifact.item_ids
        order = np.argsort(-loo.contribution, kind="stable")[:k]
        out = []
        for position in order:
            item_id = ids.ids[int(history.items[position])]
            out.append(
                Because(
                    item_id=item_id,
                    title=self.artifact.catalogue.title(item_id),
                    rating=float(history.ratings[position]),
                    attention=float(loo.attention[position]),
                    contribution=float(loo.contribution[position]),
                )
            )
        return out
