"""Splits partition the rows, respect their per-user and temporal promises, and are
deterministic for a seed."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from models.data.splits import (
    new_user_split,
    per_user_holdout,
    split_canonical,
    temporal_holdout,
)
from models.data.synthetic import planted_ratings
from models.data.table import RatingTable


@pytest.fixture(scope="module")
def table() -> RatingTable:
    """Planted ratings plus a one-rating user and a two-rating user (edge cases)."""
    planted = planted_ratings(n_users=80, n_items=60, ratings_per_user=(5, 45), seed=4).table
    extra = RatingTable(
        np.array(["solo", "pair", "pair"]),
        np.array(["i1", "i1", "i2"]),
        np.array([3, 4, 5], np.float32),
        np.array([5, 6, 7], np.int64),
    )
    return RatingTable.concat([planted, extra])


def pairs(table: RatingTable) -> set[tuple[str, str]]:
    return set(zip(table.users.tolist(), table.items.tolist(), strict=True))


def assert_partition(whole: RatingTable, *parts: RatingTable) -> None:
    assert sum(len(p) for p in parts) == len(whole)
    assert RatingTable.concat(list(parts)).fingerprint() == whole.fingerprint()
    seen: set[tuple[str, str]] = set()
    for part in parts:
        assert not pairs(part) & seen
        seen |= pairs(part)


@pytest.mark.parametrize("fraction", [0.2, 0.5])
def test_per_user_holdout_takes_a_fraction_of_every_user(
    table: RatingTable, fraction: float
) -> None:
    kept, held = per_user_holdout(table, fraction=fraction, seed=1)
    assert_partition(table, kept, held)
    total, out = Counter(table.users.tolist()), Counter(held.users.tolist())
    for user, n in total.items():
        assert out[user] == min(int(np.floor(fraction * n + 0.5)), n - 1), user
    assert set(kept.users) == set(table.users)  # every user keeps at least one rating
    assert out["solo"] == 0


def test_per_user_holdout_is_random_but_seeded(table: RatingTable) -> None:
    _, a = per_user_holdout(table, 0.3, seed=5)
    _, b = per_user_holdout(table, 0.3, seed=5)
    _, c = per_user_holdout(table, 0.3, seed=6)
    assert a.fingerprint() == b.fingerprint()
    assert pairs(a) != pairs(c)
    # held rows are not simply each user's first or last rows
    kept, _ = temporal_holdout(table, n_last=1)
    assert pairs(a) & pairs(kept)


def test_temporal_holdout_holds_each_users_last_ratings(table: RatingTable) -> None:
    past, future = temporal_holdout(table, n_last=10, min_remaining=5)
    assert_partition(table, past, future)
    counts = Counter(table.users.tolist())
    for user, n in counts.items():
        later = future.timestamps[future.users == user]
        earlier = past.timestamps[past.users == user]
        if n >= 15:
            assert len(later) == 10
            assert earlier.max() <= later.min()
        else:
            assert len(later) == 0 and len(earlier) == n
    assert len(future) > 0 and min(counts.values()) < 15  # both cases occur


def test_temporal_holdout_breaks_time_ties_by_row_order() -> None:
    tied = RatingTable(
        np.array(["u"] * 4),
        np.array(["a", "b", "c", "d"]),
        np.ones(4, np.float32),
        np.array([5, 9, 5, 5], np.int64),
    )
    past, future = temporal_holdout(tied, n_last=2)
    assert future.items.tolist() == ["b", "d"]  # 9 is latest; of the 5s, "d" is the last row
    assert past.items.tolist() == ["a", "c"]


def test_new_users_are_absent_from_train_and_revealed_before_hidden(table: RatingTable) -> None:
    split = new_user_split(table, fraction=0.25, min_ratings=20, seed=2)
    assert_partition(table, split.train, split.revealed, split.hidden)
    new = set(split.revealed.users)
    counts = Counter(table.users.tolist())
    eligible = [u for u, n in counts.items() if n >= 20]
    assert len(new) == round(0.25 * len(eligible)) > 0
    assert new <= set(eligible)
    assert not new & set(split.train.users)
    assert set(split.hidden.users) == new
    for user in new:
        revealed = split.revealed.timestamps[split.revealed.users == user]
        hidden = split.hidden.timestamps[split.hidden.users == user]
        assert len(revealed) == counts[user] // 2
        assert len(hidden) == counts[user] - counts[user] // 2
        assert revealed.max() <= hidden.min()


def test_new_user_split_is_seeded(table: RatingTable) -> None:
    a = new_user_split(table, seed=3)
    b = new_user_split(table, seed=3)
    c = new_user_split(table, seed=4)
    assert a.hidden.fingerprint() == b.hidden.fingerprint()
    assert a.train.fingerprint() == b.train.fingerprint()
    assert set(a.revealed.users) != set(c.revealed.users)


def test_splits_refuse_nonsense_arguments(table: RatingTable) -> None:
    with pytest.raises(ValueError, match="fraction"):
        per_user_holdout(table, fraction=1.0)
    with pytest.raises(ValueError, match="n_last"):
        temporal_holdout(table, n_last=0)
    with pytest.raises(ValueError, match="min_ratings"):
        new_user_split(table, min_ratings=1)


def test_split_canonical_reads_the_fold_files(tmp_path: Path) -> None:
    (tmp_path / "u2.base").write_text("1\t1\t5\t10\n1\t2\t3\t11\n2\t1\t4\t12\n")
    (tmp_path / "u2.test").write_text("2\t2\t1\t13\n")
    train, test = split_canonical(tmp_path, 2)
    assert pairs(train) == {("1", "1"), ("1", "2"), ("2", "1")}
    assert pairs(test) == {("2", "2")} and test.ratings.tolist() == [1.0]
