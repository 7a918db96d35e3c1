"""The encoded table's timelines: ragged (memory grows with the ratings), oldest first."""

from __future__ import annotations

import numpy as np

from models.data.encoded import EncodedRatings
from models.data.table import RatingTable


def test_timelines_are_ragged_and_ordered_by_time() -> None:
    table = RatingTable(
        users=np.array(["b", "a", "b", "a", "b"]),
        items=np.array(["x", "y", "y", "z", "z"]),
        ratings=np.array([5, 4, 3, 2, 1], np.float32),
        timestamps=np.array([30, 20, 10, 10, 20], np.int64),
    )
    data = EncodedRatings.encode(table)
    timelines = data.timelines
    a, b = data.user_ids.index("a"), data.user_ids.index("b")
    x, y, z = (data.item_ids.index(i) for i in "xyz")
    assert timelines.items.shape == (5,)  # one flat row per rating: no padding
    assert timelines.history(a).items.tolist() == [z, y]
    assert timelines.history(b).items.tolist() == [y, z, x]
    assert timelines.history(b).ratings.tolist() == [3, 1, 5]
    items, ratings = timelines.padded(np.array([a, b]), 3)
    assert items.tolist() == [[z, y, 0], [y, z, x]] and ratings.tolist() == [[2, 4, 0], [3, 1, 5]]
    items, _ = timelines.at(np.array([b, a]), np.array([[2, 0], [1, 1]]))
    assert items.tolist() == [[x, y], [y, y]]
    first = timelines.first(np.where(np.arange(2) == b, 1, 2))
    assert sorted(timelines.items[first].tolist()) == sorted([z, y, y])
