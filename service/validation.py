"""Checks a request must pass before anything is scored or stored, each message naming
the limit or the scale. The schemas check types and characters; these checks need the
settings or the loaded model."""

from __future__ import annotations

import time
from typing import NamedTuple

from models.data.table import RatingScale
from service.errors import InvalidInput, LimitExceeded
from service.rating_store import Rating
from service.settings import Settings


class NewRating(NamedTuple):
    """A rating as a client sent it: no timestamp means server time."""

    item_id: str
    rating: float
    timestamp: int | None


class Limits:
    """The configured request limits (BECAUSE_MAX_*)."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def check_id(self, value: str, name: str) -> str:
        if len(value) > self.settings.max_id_length:
            raise LimitExceeded(
                f"{name} is {len(value)} characters long; at most {self.settings.max_id_length}"
            )
        return value

    def check_ids(self, item_ids: list[str], limit: int | None = None) -> list[str]:
        """A list of item ids: its length against `limit`, each id's length."""
        if limit is not None and len(item_ids) > limit:
            raise LimitExceeded(f"{len(item_ids)} item ids in one request; at most {limit}")
        if max(map(len, item_ids), default=0) > self.settings.max_id_length:
            for item_id in item_ids:
                self.check_id(item_id, "item_id")
        return item_ids

    def check_k(self, k: int) -> int:
        """Results asked for by one rank, explanation or similar-items request."""
        if k > self.settings.max_k:
            raise LimitExceeded(f"k = {k}; at most {self.settings.max_k}")
        return k

    def check_ratings(self, ratings: list[NewRating], scale: RatingScale) -> list[Rating]:
        """A whole batch, before anything is stored: its size, its ids' lengths, then each
        rating's value and time (whether the ids are catalogued is the recommender's)."""
        if len(ratings) > self.settings.max_ratings_per_request:
            raise LimitExceeded(
                f"{len(ratings)} ratings in one request; at most "
                f"{self.settings.max_ratings_per_request}"
            )
        self.check_ids([r.item_id for r in ratings])
        now = int(time.time())
        latest = now + self.settings.max_future_skew_s
        out = []
        for position, r in enumerate(ratings):
            if not scale.low <= r.rating <= scale.high:
                raise InvalidInput(
                    f"ratings[{position}].rating = {r.rating} is outside the "
                    f"model's scale {scale.low:g}..{scale.high:g}"
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
