"""Items as the service speaks of them: every catalogued item (`CatalogueMirror`, this
process's copy of the Redis catalogue) and the items one served model can score
(`ItemCatalogue`), the one place an item id becomes a dense index and back.

External ids are strings; the models see dense indices: first the items the artifact was
trained on, then the items folded in since, in the order they were folded. Requests map
ids to indices here on the way in (one C-level dict lookup per id), results map indices to
`Item`s on the way out, and a user's stored ratings become the model's `History` here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

import numpy as np

from models.data.table import IdMap
from models.history import History
from service.errors import InvalidInput, NotFound, UnknownItems
from service.item_store import Item
from service.rating_store import CodedRatings, Rating

Embedded = Literal["trained", "folded", "attributes", "none"]
NOT_SCORED, UNSEEN = -1, -2  # an item code's index: none in this model, not looked up yet


class CatalogueMirror:
    """Every catalogued item, retired ones included, kept current by the event stream."""

    def __init__(self, items: list[Item]):
        self._items = {item.item_id: item for item in items}

    def __contains__(self, item_id: str) -> bool:
        return item_id in self._items

    def get(self, item_id: str) -> Item | None:
        return self._items.get(item_id)

    def put(self, item: Item) -> None:
        self._items[item.item_id] = item

    def ids(self) -> list[str]:
        return list(self._items)

    def retired_ids(self) -> set[str]:
        return {i for i, item in self._items.items() if item.retired}


class ItemCatalogue:
    """The items one served model scores: the artifact's, then the folded ones.

    sources: per index, "trained", "folded" (from its raters) or "attributes" (from its
    genres alone). `retired` masks what is never recommended or retrieved again."""

    def __init__(self, ids: IdMap, sources: list[Embedded], mirror: CatalogueMirror,
                 version: str):
        self._ids = ids
        self._sources = sources
        self._mirror = mirror
        self._version = version
        self.retired = np.zeros(len(ids), bool)
        self.n_trained = sources.count("trained")
        # Item code -> this model's index (NOT_SCORED, or UNSEEN until first looked up).
        # A code names one item for ever and this model's ids never change, so an entry
        # never goes stale; a folded item comes with a new ItemCatalogue.
        self._index_of_code = np.zeros(0, np.int32)
        self.refresh_retired()

    def __len__(self) -> int:
        return len(self._ids)

    def refresh_retired(self) -> None:
        retired = self._mirror.retired_ids()
        found = self._ids.lookup(sorted(retired))
        mask = np.zeros(len(self._ids), bool)
        mask[[i for i in found if i is not None]] = True
        self.retired = mask

    def item(self, index: int) -> Item:
        item_id = self._ids.ids[index]
        return self._mirror.get(item_id) or Item(item_id, item_id)

    def source(self, item_id: str) -> Embedded:
        index = self._ids.get(item_id)
        return "none" if index is None else self._sources[index]

    def index(self, item_id: str) -> int:
        """The dense index of an item this model scores; 404 otherwise."""
        index = self._ids.get(item_id)
        if index is None:
            known = item_id in self._mirror
            raise NotFound(
                f"item {item_id!r} is catalogued but not yet embedded in model {self._version}"
                if known else f"no item {item_id!r} in the catalogue"
            )
        return index

    def indices(self, item_ids: list[str]) -> np.ndarray:
        """(n,) int64 indices; every id this model cannot score is named in one 422: those
        in no catalogue, else those catalogued but not embedded yet."""
        found = self._ids.lookup(item_ids)
        if None in found:
            missing = [i for i, f in zip(item_ids, found, strict=True) if f is None]
            unknown = [i for i in missing if i not in self._mirror]
            if unknown:
                raise UnknownItems(unknown)
            raise InvalidInput(
                f"items {missing[:20]} are catalogued but not embedded in model "
                f"{self._version} yet: fold-in places an item from its genres, or from its "
                "first raters (GET /v1/items/{item_id} says how it is known)"
            )
        return np.array(found, np.int64)

    async def coded_history(
        self, stored: CodedRatings, ids_of: Callable[[list[int]], Awaitable[list[str]]]
    ) -> History:
        """`history` of a history as stored: codes mapped by one array lookup (a million
        items' dicts cost a cache miss or more per id); codes met for the first time are
        looked up once through `ids_of` (code -> item id) and remembered."""
        codes = stored.codes
        if len(codes) and int(codes.max()) >= len(self._index_of_code):
            grown = np.full(max(int(codes.max()) + 1, 2 * len(self._index_of_code)), UNSEEN,
                            np.int32)
            grown[: len(self._index_of_code)] = self._index_of_code
            self._index_of_code = grown
        table = self._index_of_code
        index = table[codes]
        unseen = np.unique(codes[index == UNSEEN])
        if len(unseen):
            found = self._ids.lookup(await ids_of(unseen.tolist()))
            table[unseen] = [NOT_SCORED if f is None else f for f in found]
            index = table[codes]
        kept = index >= 0
        return History(index[kept].astype(np.int64), stored.ratings[kept], stored.times[kept])

    def history(self, ratings: list[Rating]) -> History:
        """The model's view of stored ratings, oldest first: items it does not embed (yet)
        carry no signal and are left out. Empty means a cold start."""
        found = self._ids.lookup([r.item_id for r in ratings])
        kept = [(f, r.rating, r.timestamp) for f, r in zip(found, ratings, strict=True)
                if f is not None]
        items, values, times = zip(*kept, strict=True) if kept else ((), (), ())
        return History(np.array(items, np.int64), np.array(values, np.float32),
                       np.array(times, np.int64))
