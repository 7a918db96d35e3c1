"""Train/validation/test splits; each is deterministic for its inputs and seed.

    per_user_holdout   ~fraction of each user's ratings, at random: Hutter et al.'s "fair"
                       validation split, where every validation user also has training rows
    temporal_holdout   each user's last n ratings by time: predicting the future from the past
    new_user_split     whole users left out of training; the first half of each one's ratings
                       by time is revealed as history, the rest is to predict (cold start
                       without retraining)
    split_canonical    GroupLens's own uN.base / uN.test files, for comparable numbers

Every split returns sub-tables that keep the input's row order, so they partition its rows.
Ties in time are broken by row order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from models.data.encoded import EncodedRatings
from models.data.readers import read_ratings
from models.data.table import RatingTable

Rows = TypeVar("Rows", RatingTable, EncodedRatings)  # anything with users, take() and len()


@dataclass(frozen=True)
class NewUserSplit:
    """train has none of the new users; revealed (their history) is older than hidden."""

    train: RatingTable
    revealed: RatingTable
    hidden: RatingTable


def per_user_holdout(
    table: Rows, fraction: float = 0.1, seed: int = 0
) -> tuple[Rows, Rows]:
    """(kept, held out): round(fraction * n) of each user's n ratings held, at most n - 1."""
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    rows, rank, size = _rank_within_user(table, rng.random(len(table)))
    n_out = np.minimum(np.floor(fraction * size + 0.5), size - 1)
    held = np.zeros(len(table), bool)
    held[rows] = rank < n_out
    return table.take(~held), table.take(held)


def temporal_holdout(
    table: RatingTable, n_last: int = 10, min_remaining: int = 1
) -> tuple[RatingTable, RatingTable]:
    """(past, future): users with fewer than n_last + min_remaining ratings stay in the past."""
    if n_last < 1 or min_remaining < 0:
        raise ValueError(f"need n_last >= 1 and min_remaining >= 0, got {n_last}, {min_remaining}")
    rows, rank, size = _rank_within_user(table, table.timestamps)
    held = np.zeros(len(table), bool)
    held[rows] = (size >= n_last + min_remaining) & (rank >= size - n_last)
    return table.take(~held), table.take(held)


def new_user_split(
    table: RatingTable, fraction: float = 0.2, min_ratings: int = 20, seed: int = 0
) -> NewUserSplit:
    """round(fraction * eligible) users with >= min_ratings become new users.

    Each new user's first n // 2 ratings by time are revealed, the other n - n // 2 hidden.
    """
    if not 0 <= fraction <= 1 or min_ratings < 2:
        raise ValueError(
            f"need 0 <= fraction <= 1 and min_ratings >= 2, got {fraction}, {min_ratings}"
        )
    names, codes, counts = np.unique(table.users, return_inverse=True, return_counts=True)
    eligible = np.flatnonzero(counts >= min_ratings)
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(eligible)[: int(np.floor(fraction * len(eligible) + 0.5))]
    is_new = np.zeros(len(names), bool)
    is_new[chosen] = True
    rows, rank, size = _rank_within_user(table, table.timestamps)
    new_row = is_new[codes[rows]]
    revealed = np.zeros(len(table), bool)
    hidden = np.zeros(len(table), bool)
    revealed[rows] = new_row & (rank < size // 2)
    hidden[rows] = new_row & (rank >= size // 2)
    return NewUserSplit(
        train=table.take(~(revealed | hidden)),
        revealed=table.take(revealed),
        hidden=table.take(hidden),
    )


def split_canonical(folder: str | Path, fold: int) -> tuple[RatingTable, RatingTable]:
    """(train, test) from GroupLens's u{fold}.base and u{fold}.test (folds 1..5)."""
    folder = Path(folder)
    train, _ = read_ratings(folder / f"u{fold}.base", layout="grouplens")
    test, _ = read_ratings(folder / f"u{fold}.test", layout="grouplens")
    return train, test


def _rank_within_user(
    table: Rows, key: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows grouped by user and ordered by (key, row); each row's 0-based rank in its group.

    Returns (rows, rank, size), all (n,): rows[j] is the row at sorted position j, rank[j]
    its position within its user, size[j] that user's number of ratings.
    """
    _, codes = np.unique(table.users, return_inverse=True)
    rows = np.lexsort((np.arange(len(table)), key, codes))
    sorted_codes = codes[rows]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    sizes = np.diff(np.r_[starts, len(table)])
    start_of = np.repeat(starts, sizes)
    return rows, np.arange(len(table)) - start_of, np.repeat(sizes, sizes)
