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
    """Every user's ratings, oldest first (ties in row order), as one padded (U, Lmax)
    table: items (U, Lmax) int64, ratings (U, Lmax) float32, lengths (U,)."""

    def __init__(self, data: EncodedRatings):
        n_users = len(data.user_ids)
        order = np.lexsort((np.arange(len(data)), data.timestamps, data.users))
        users, items, ratings = data.users[order], data.items[order], data.ratings[order]
        counts = np.bincount(users, minlength=n_users)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        position = np.arange(len(users)) - starts[users]
        width = max(1, int(counts.max(initial=0)))
        self.items = np.zeros((n_users, width), np.int64)
        self.ratings = np.zeros((n_users, width), np.float32)
        self.items[users, position] = items
        self.ratings[users, position] = ratings
        self.lengths = counts

    def history(self, user: int) -> History:
        n = self.lengths[user]
        return History(self.items[user, :n], self.ratings[user, :n])
