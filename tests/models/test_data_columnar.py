"""Reading a column at a time (pyarrow): the fast path gives exactly the line reader's
table or steps aside for it, Parquet round-trips, a rating scale of half stars is read and
one off it is refused at its line or row, and interactions need no rating column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from models.data import columnar
from models.data.readers import read_items, read_ratings
from models.data.table import DataError, RatingScale, RatingTable

HALF_STARS = RatingScale(0.5, 5.0, 0.5)


def write(folder: Path, name: str, data: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def assert_same(a: RatingTable, b: RatingTable) -> None:
    for x, y in ((a.users, b.users), (a.items, b.items), (a.ratings, b.ratings),
                 (a.timestamps, b.timestamps)):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


@pytest.fixture
def fast_path_taken(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each read's fast path answered (True) or stepped aside (False)."""
    taken: list[bool] = []
    original = columnar.delimited_ratings

    def spy(*args: object) -> object:
        found = original(*args)
        taken.append(found is not None)
        return found

    monkeypatch.setattr(columnar, "delimited_ratings", spy)
    return taken


def line_by_line(path: Path, monkeypatch: pytest.MonkeyPatch, **options: object
                 ) -> RatingTable:
    """The table the line reader alone gives."""
    with monkeypatch.context() as patched:
        patched.setattr(columnar, "delimited_ratings", lambda *args: None)
        return read_ratings(path, **options)[0]


FILES = [  # (name, content, whether the fast path reads it)
    ("u.data", "196\t242\t3\t881250949\n186\t302\t4\t891717742\n", True),
    ("u.data", "\ufeff1\t2\t3\t4\r\n5\t6\t1\t7\r\n\r\n \n", True),  # BOM, CRLF, blank tail
    ("u.data", "u1\ti1\t3\t100\nu1\ti2\t1\t100\nu1\ti1\t5\t50\nu2\ti1\t2\t7\nu1\ti1\t4\t100\n",
     True),  # duplicates: the latest wins, ties to the later line
    ("u.data", "a\t\"b\t3\t1\n\"a\t b \t2\t2\n", True),  # quotes are plain text here
    ("r.inter", "item_id:token\tuser_id:token\trating:float\ttimestamp:float\n"
     "10\t 7 \t4.5\t881250949.0\n11\t7\t1\t881250950\n", True),  # spaces, float times
    ("r.inter", "user_id:token\titem_id:token\trating:float\nu\ti\t2\n", True),
    ("r.csv", 'rating,user_id,item_id\n5,"a b",x\n1,c ,"y,z"\n', True),
    ("r.csv", "user_id,item_id,rating,timestamp\nu,i,3,9\nu,j,2,-4\n", True),
    ("r.csv", "user_id,item_id,rating\nu,i, 4\n", False),  # float(" 4") only
    ("r.csv", "user_id,item_id,rating\nu,\xe9,4\n".encode("latin-1"), False),  # not UTF-8
    ("u.data", "1\t2\t3\t4\r5\t6\t1\t7\n", False),  # a bare CR: one line to the line reader
]


@pytest.mark.parametrize(("name", "content", "fast"), FILES)
def test_the_fast_path_gives_the_line_readers_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast_path_taken: list[bool],
    name: str, content: str | bytes, fast: bool,
) -> None:
    path = write(tmp_path, name, content)
    try:
        expected = line_by_line(path, monkeypatch)
    except DataError as refused:
        with pytest.raises(DataError) as caught:
            read_ratings(path)
        assert str(caught.value) == str(refused)
        return
    table, _ = read_ratings(path)
    assert fast_path_taken == [fast]
    assert_same(table, expected)


def test_a_large_file_is_read_fast_and_equal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast_path_taken: list[bool]
) -> None:
    rng = np.random.default_rng(0)
    n = 20_000
    users, items = rng.integers(0, 500, n), rng.integers(0, 800, n)  # duplicates included
    stars = rng.integers(1, 11, n) / 2
    lines = [f"{u},item-{i},{r:g},{t}" for u, i, r, t in
             zip(users, items, stars, rng.integers(0, 10**9, n), strict=True)]
    path = write(tmp_path, "r.csv", "user_id,item_id,rating,timestamp\n" + "\n".join(lines))
    table, report = read_ratings(path, scale=HALF_STARS)
    assert fast_path_taken == [True] and report.duplicates_replaced > 0
    assert_same(table, line_by_line(path, monkeypatch, scale=HALF_STARS))


def test_half_stars_need_their_scale_and_a_value_off_it_names_its_line(tmp_path: Path) -> None:
    rows = "".join(f"u{k},i{k},{k % 10 / 2 + 0.5:g}\n" for k in range(200))
    path = write(tmp_path, "half.csv", "user_id,item_id,rating\n" + rows)
    table, _ = read_ratings(path, scale=HALF_STARS)
    assert sorted(set(table.ratings.tolist())) == [0.5 * k for k in range(1, 11)]
    with pytest.raises(DataError, match=r"half.csv:2: rating '0.5' is outside the scale 1..5"):
        read_ratings(path)
    bad = write(tmp_path, "bad.csv", "user_id,item_id,rating\n" + rows + "u,x,5.5\n")
    with pytest.raises(DataError) as caught:
        read_ratings(bad, scale=HALF_STARS)
    assert (caught.value.line, caught.value.path) == (202, str(bad))
    assert "rating '5.5' is outside the scale 0.5..5" in str(caught.value)


def test_interactions_are_read_without_a_rating_column(tmp_path: Path) -> None:
    path = write(tmp_path, "clicks.csv", "user_id,item_id,timestamp\nu,a,5\nu,b,6\nv,a,7\nu,a,8\n")
    table, report = read_ratings(path, require_rating=False)
    assert not report.rated and report.duplicates_replaced == 1  # u clicked a twice
    assert table.ratings.tolist() == [5.0, 5.0, 5.0]  # the scale's top: "interacted"
    assert table.timestamps.tolist() == [6, 7, 8]
    table, _ = read_ratings(path, scale=HALF_STARS, require_rating=False)
    assert set(table.ratings.tolist()) == {5.0}
    with pytest.raises(DataError, match="clicks.csv:1: header lacks column.s. rating"):
        read_ratings(path)
    rated, report = read_ratings(
        write(tmp_path, "r.csv", "user_id,item_id,rating\nu,a,2\n"), require_rating=False
    )
    assert report.rated and rated.ratings.tolist() == [2.0]


def test_parquet_round_trip(tmp_path: Path) -> None:
    csv = write(tmp_path, "r.csv", "user_id,item_id,rating,timestamp\n"
                "196,242,3.5,881250949\n186, 302,4,891717742\n196,242,1,881250950\n")
    path = tmp_path / "r.parquet"
    pq.write_table(pa.table({
        "user_id": pa.array([196, 186, 196], pa.int64()),  # integer ids become strings
        "item_id": ["242", " 302", "242"],
        "rating": pa.array([3.5, 4, 1], pa.float32()),
        "timestamp": pa.array([881250949, 891717742, 881250950], pa.int64()),
    }), path)
    table, report = read_ratings(path, scale=HALF_STARS)
    assert_same(table, read_ratings(csv, scale=HALF_STARS)[0])
    assert report.duplicates_replaced == 1 and report.rated
    assert table.users.tolist() == ["186", "196"] and table.ratings.tolist() == [4.0, 1.0]


def test_parquet_times_and_interactions(tmp_path: Path) -> None:
    path = tmp_path / "clicks.parquet"
    pq.write_table(pa.table({
        "user_id": ["a", "b"], "item_id": ["x", "x"],
        "timestamp": pa.array([1_700_000_000_123, 1_700_000_001_999], pa.timestamp("ms")),
    }), path)
    table, report = read_ratings(path, require_rating=False)
    assert not report.rated and table.ratings.tolist() == [5.0, 5.0]
    assert table.timestamps.tolist() == [1_700_000_000, 1_700_000_001]
    with pytest.raises(DataError, match="lacks column.s. rating; found user_id, item_id"):
        read_ratings(path)


@pytest.mark.parametrize(("columns", "message"), [
    ({"user_id": ["a", None], "item_id": ["x", "y"], "rating": [1, 2]},
     "column user_id, row 1: null id"),
    ({"user_id": ["a", "b", "c"], "item_id": ["x", "y", "z"], "rating": [1.0, 3.0, 6.0]},
     "column rating, row 2: 6 is outside the scale 1..5"),
    ({"user_id": ["a"], "item_id": [" "], "rating": [1]}, "column item_id, row 0: empty id"),
    ({"user_id": [1.5], "item_id": ["x"], "rating": [1]},
     "column user_id is double; ids must be strings or integers"),
    ({"user_id": ["a"], "item_id": ["x"], "rating": ["good"]},
     "column rating is string; expected numbers"),
])
def test_parquet_faults_name_file_column_and_row(tmp_path: Path, columns: dict, message: str
                                                 ) -> None:
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table(columns), path)
    with pytest.raises(DataError) as caught:
        read_ratings(path)
    assert str(caught.value) == f"{path}: {message}"


def test_a_file_that_is_not_parquet_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "r.parquet", "user_id,item_id,rating\n")
    with pytest.raises(DataError, match="r.parquet: cannot read as Parquet"):
        read_ratings(path)


def test_parquet_items(tmp_path: Path) -> None:
    path = tmp_path / "items.parquet"
    pq.write_table(pa.table({
        "item_id": [1, 2, 3], "title": ["Toy Story", None, "Heat"],
        "genres": ["Animation|Comedy", "", None],
    }), path)
    catalogue = read_items(path)
    assert catalogue.titles == {"1": "Toy Story", "2": "", "3": "Heat"}
    assert catalogue.genres == {"1": ["Animation", "Comedy"], "2": [], "3": []}
    listed = tmp_path / "listed.parquet"
    pq.write_table(pa.table({"item_id": ["a", "a"], "genres": [["x"], ["y"]]}), listed)
    with pytest.raises(DataError, match="row 1: duplicate item id 'a' .first at row 0."):
        read_items(listed)


@pytest.mark.parametrize(("text", "scale"), [
    ("1:5:1", RatingScale()), ("0.5:5:0.5", HALF_STARS), ("0:10:1", RatingScale(0, 10, 1)),
])
def test_rating_scales_parse(text: str, scale: RatingScale) -> None:
    assert RatingScale.parse(text) == scale


@pytest.mark.parametrize("text", ["1:5", "a:b:c", "5:1:1", "1:5:0", "1:5:0.3", "1:inf:1"])
def test_a_bad_rating_scale_says_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match=r"rating scale .*e\.g\. 1:5:1 or 0\.5:5:0\.5"):
        RatingScale.parse(text)
