"""The artifact's items as the service speaks of them: the one place an item id becomes a
dense index and back, with its title and genres.

External ids are strings; the models see dense indices. Requests map ids to indices here
on the way in (one C-level dict lookup per id), results map indices to `Item`s on the way
out, and a user's stored ratings become the model's `History` here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.artifact import Artifact
from models.history import History
from service.errors import NotFound, UnknownItems
from service.rating_store import Rating


@dataclass(frozen=True)
class Item:
    item_id: str
    title: str
    genres: list[str]


class ItemCatalogue:
    def __init__(self, artifact: Artifact):
        self._ids = artifact.item_ids
        self._items = [
            Item(i, artifact.catalogue.title(i), artifact.catalogue.genres.get(i, []))
            for i in self._ids.ids
        ]
        self._version = artifact.version

    def __len__(self) -> int:
        return len(self._items)

    def item(self, index: int) -> Item:
        return self._items[index]

    def index(self, item_id: str) -> int:
        """The dense index of a known item; 404 otherwise."""
        index = self._ids.get(item_id)
        if index is None:
            raise NotFound(f"no item {item_id!r} in model {self._version}")
        return index

    def indices(self, item_ids: list[str]) -> np.ndarray:
        """(n,) int64 indices; every unknown id is named in one 422."""
        found = self._ids.lookup(item_ids)
        if None in found:
            raise UnknownItems([i for i, f in zip(item_ids, found, strict=True) if f is None])
        return np.array(found, np.int64)

    def history(self, ratings: list[Rating]) -> History:
        """The model's view of stored ratings, oldest first: items it was not trained on
        carry no signal and are left out. Empty means a cold start."""
        found = self._ids.lookup([r.item_id for r in ratings])
        values = [r.rating for r in ratings]
        if None in found:
            values = [v for v, f in zip(values, found, strict=True) if f is not None]
            found = [f for f in found if f is not None]
        return History(np.array(found, np.int64), np.array(values, np.float32))
