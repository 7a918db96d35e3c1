"""Item attributes as the models read them: a catalogue's genres, and how much each item
was rated, one 0/1 column per tag of a fixed vocabulary (the sorted tags the trained items
carry)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def genre_vocabulary(genres: Iterable[Sequence[str]]) -> tuple[str, ...]:
    """The sorted genres that any item carries."""
    return tuple(sorted({g for item in genres for g in item}))


def one_hot(genres: Sequence[Sequence[str]], vocabulary: tuple[str, ...]) -> np.ndarray:
    """(n, len(vocabulary)) float64 indicators of each item's genres; a genre outside the
    vocabulary is ignored (an item folded in after training may bring one)."""
    column = {g: k for k, g in enumerate(vocabulary)}
    x = np.zeros((len(genres), len(vocabulary)))
    for row, item in enumerate(genres):
        for g in item:
            if g in column:
                x[row, column[g]] = 1.0
    return x


def popularity_tags(counts: np.ndarray, buckets: int) -> list[str]:
    """Each item's tag among `buckets` by the quantile of its rating count (`counts`, the
    training ratings of each item): "popularity 1/4" the least rated quarter. The rating
    model's history offset then fits, per request, how a user rates popular films against
    niche ones (bench/findings.md)."""
    edges = np.quantile(counts, np.arange(1, buckets) / buckets) if len(counts) else []
    return [f"popularity {b + 1}/{buckets}" for b in np.searchsorted(edges, counts)]
