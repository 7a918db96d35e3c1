"""In-memory rating tables and the one place external ids become dense indices.

External user and item ids are strings everywhere outside the model; the model only
sees dense integer indices. `IdMap` is that mapping, and it is saved with the artifact.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np


class DataError(ValueError):
    """Input data is malformed; the message names the file and line when known."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path = path
        self.line = line


@dataclass(frozen=True)
class RatingScale:
    """The allowed rating range; `mid` and `half` turn ratings into signed weights."""

    low: float = 1.0
    high: float = 5.0
    step: float = 1.0

    @property
    def mid(self) -> float:
        return (self.low + self.high) / 2

    @property
    def half(self) -> float:
        return (self.high - self.low) / 2

    @property
    def liked(self) -> float:
        """Ratings at or above this count as liked: 4 stars on 1..5, the same share of any
        other scale."""
        return self.low + 0.75 * (self.high - self.low)

    @property
    def levels(self) -> int:
        """Number of discrete rating values (classes of the MLP2 head)."""
        return int(round((self.high - self.low) / self.step)) + 1

    @classmethod
    def parse(cls, text: str) -> RatingScale:
        """`LOW:HIGH:STEP`: "1:5:1" is MovieLens's stars, "0.5:5:0.5" MovieLens-latest's
        half stars. ValueError, saying what is accepted, for anything else."""
        parts = text.split(":")
        try:
            low, high, step = (float(part) for part in parts)
        except ValueError:
            raise ValueError(
                f"rating scale {text!r}: expected LOW:HIGH:STEP, e.g. 1:5:1 or 0.5:5:0.5"
            ) from None
        levels = (high - low) / step if step > 0 else math.nan
        if not (math.isfinite(low) and math.isfinite(high) and low < high
                and math.isfinite(levels) and abs(levels - round(levels)) < 1e-6):
            raise ValueError(
                f"rating scale {text!r}: LOW must be below HIGH and STEP > 0 divide "
                "HIGH - LOW, e.g. 1:5:1 or 0.5:5:0.5"
            )
        return cls(low, high, step)

    def contains(self, rating: np.ndarray | float) -> np.ndarray | bool:
        r = np.asarray(rating, dtype=np.float64)
        return np.isfinite(r) & (r >= self.low) & (r <= self.high)


@dataclass(frozen=True)
class RatingTable:
    """Ratings keyed by external string ids, one row per (user, item), any order.

    users, items: (n,) arrays of str; ratings: (n,) float32; timestamps: (n,) int64 seconds.
    """

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.users)
        if not (len(self.items) == len(self.ratings) == len(self.timestamps) == n):
            raise ValueError("RatingTable columns must have equal length")

    def __len__(self) -> int:
        return len(self.users)

    def take(self, rows: np.ndarray) -> RatingTable:
        """The sub-table of the given row indices or boolean mask."""
        return RatingTable(
            self.users[rows], self.items[rows], self.ratings[rows], self.timestamps[rows]
        )

    @staticmethod
    def concat(tables: list[RatingTable]) -> RatingTable:
        return RatingTable(
            np.concatenate([t.users for t in tables]),
            np.concatenate([t.items for t in tables]),
            np.concatenate([t.ratings for t in tables]),
            np.concatenate([t.timestamps for t in tables]),
        )

    def fingerprint(self) -> str:
        """sha256 of the rows in a canonical order: the same data gives the same value."""
        order = np.lexsort((self.items, self.users))
        digest = hashlib.sha256()
        for column in (self.users, self.items):
            digest.update("\x1f".join(column[order].tolist()).encode())
        digest.update(np.ascontiguousarray(self.ratings[order], dtype=np.float32).tobytes())
        digest.update(np.ascontiguousarray(self.timestamps[order], dtype=np.int64).tobytes())
        return digest.hexdigest()


@dataclass
class IdMap:
    """Bijection between external string ids and dense indices 0..n-1."""

    ids: list[str]
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._index = {external: i for i, external in enumerate(self.ids)}
        if len(self._index) != len(self.ids):
            raise ValueError("IdMap ids must be unique")

    @classmethod
    def from_values(cls, values: np.ndarray) -> IdMap:
        """Ids in order of first appearance after a stable sort, so maps are reproducible."""
        return cls(sorted(set(values.tolist()), key=_natural_key))

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, external: str) -> bool:
        return external in self._index

    def index(self, external: str) -> int:
        return self._index[external]

    def get(self, external: str) -> int | None:
        return self._index.get(external)

    def lookup(self, external: Iterable[str]) -> list[int | None]:
        """The index of each id, None where the map has none: one dict lookup per id at C
        speed (the request path maps up to thousands of candidate ids per call)."""
        return list(map(self._index.get, external))

    def encode(self, values: np.ndarray) -> np.ndarray:
        """(n,) str -> (n,) int64; raises KeyError on an unknown id."""
        return np.fromiter((self._index[v] for v in values.tolist()), np.int64, len(values))

    def decode(self, indices: np.ndarray) -> list[str]:
        return [self.ids[i] for i in np.asarray(indices).tolist()]


def _natural_key(value: str) -> tuple[int, int | str]:
    """Numeric ids sort numerically ("2" < "10"), others lexically after them."""
    return (0, int(value)) if value.isdigit() else (1, value)


@dataclass(frozen=True)
class Catalogue:
    """Item metadata by external id. Items without metadata still have a row (empty title)."""

    titles: dict[str, str]
    genres: dict[str, list[str]]

    def title(self, item_id: str) -> str:
        return self.titles.get(item_id, "")

    def genres_of(self, item_ids: Iterable[str]) -> list[list[str]]:
        """Each item's genres, in the order of `item_ids` (none for an item without)."""
        return [self.genres.get(i, []) for i in item_ids]

    @classmethod
    def empty(cls) -> Catalogue:
        return cls({}, {})
