"""A rating table encoded once per training run, and its users' timelines.

External ids become dense indices here, once: both trainers, the item embeddings and the
validation splits all read the same `EncodedRatings`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from models.data.table import IdMap, RatingTable
from models.history import History


@dataclass(frozen=True)
class EncodedRatings:
    """users, items: (n,) int64 indices into `user_ids` and `item_ids`; ratings (n,)
    float32; timestamps (n,) int64 seconds. Rows keep the table's order."""

    user_ids: IdMap
    item_ids: IdMap
    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray

    @classmethod
    def encode(cls, table: RatingTable, item_ids: IdMap | None = None) -> EncodedRatings:
        """Every rating, items numbered in natural id order; with `item_ids`, only the
        ratings of the items it knows, in its numbering."""
        if item_ids is None:
            item_ids = IdMap.from_values(table.items)
        else:
            table = table.take(np.array([i in item_ids for i in table.items.tolist()], bool))
        user_ids = IdMap.from_values(table.users)
        return cls(
            user_ids,
            item_ids,
            user_ids.encode(table.users),
            item_ids.encode(table.items),
            table.ratings.astype(np.float32),
            table.timestamps.astype(np.int64),
        )

    def __len__(self) -> int:
        return len(self.users)

    def take(self, rows: np.ndarray) -> EncodedRatings:
        """The rows given by index or boolean mask, with the same id maps."""
        return EncodedRatings(
            self.user_ids,
            self.item_ids,
            self.users[rows],
            self.items[rows],
            self.ratings[rows],
            self.timestamps[rows],
        )

    @cached_property
    def timelines(self) -> UserTimelines:
        """Built on first use and shared by whoever reads it (never modified)."""
        return UserTimelines(self)


class UserTimelines:
    """Every user's ratings, oldest first (ties in row order), ragged: user u's ratings are
    items[offsets[u] : offsets[u + 1]] (int64) and the same slice of ratings (float32), of
    length lengths[u]. Memory grows with the ratings, never with users x the longest
    history (padded, an ML-20M-sized set would need about 15 GB)."""

    def __init__(self, data: EncodedRatings):
        order = np.lexsort((np.arange(len(data)), data.timestamps, data.users))
        self.items = data.items[order]
        self.ratings = data.ratings[order]
        self.times = data.timestamps[order]
        self.lengths = np.bincount(data.users, minlength=len(data.user_ids))
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)])

    @property
    def longest(self) -> int:
        return int(self.lengths.max(initial=0))

    def history(self, user: int) -> History:
        start, end = self.offsets[user], self.offsets[user + 1]
        return History(self.items[start:end], self.ratings[start:end], self.times[start:end])

    def at(self, users: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Items and ratings at `positions` (B, W) of the timelines of `users` (B,); each
        position must lie inside its user's timeline (callers mask padding themselves)."""
        flat = self.offsets[users][:, None] + positions
        return self.items[flat], self.ratings[flat]

    def padded(self, users: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
        """The first `width` items and ratings of each of `users`, (B, width), 0 past the
        end of a timeline."""
        positions = np.arange(width)[None, :]
        inside = positions < self.lengths[users][:, None]
        items, ratings = self.at(users, np.where(inside, positions, 0))
        return np.where(inside, items, 0), np.where(inside, ratings, 0).astype(np.float32)

    def first(self, lengths: np.ndarray) -> np.ndarray:
        """(n_ratings,) bool: whether each rating is among its user's first `lengths[u]`."""
        position = np.arange(len(self.items)) - np.repeat(self.offsets[:-1], self.lengths)
        return position < np.repeat(lengths, self.lengths)
