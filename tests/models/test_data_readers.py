"""Readers: every layout parses, every malformed line is refused with its file and line,
duplicates resolve to the latest rating, and the demo fetch works offline from a wheel."""

from __future__ import annotations

import hashlib
import logging
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from models.data import fetch
from models.data.fetch import FetchError, fetch_movielens_100k
from models.data.readers import GROUPLENS_GENRES, read_items, read_ratings
from models.data.table import DataError, RatingScale, RatingTable


def write(folder: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = folder / name
    path.write_bytes(text.encode(encoding))
    return path


def as_rows(table: RatingTable) -> list[tuple[str, str, float, int]]:
    columns = (table.users, table.items, table.ratings, table.timestamps)
    return list(zip(*(column.tolist() for column in columns), strict=True))


def test_grouplens_ratings(tmp_path: Path) -> None:
    path = write(tmp_path, "u1.base", "196\t242\t3\t881250949\n186\t302\t4\t891717742\n")
    table, report = read_ratings(path)
    assert table.users.tolist() == ["196", "186"]
    assert table.items.tolist() == ["242", "302"]
    assert table.ratings.tolist() == [3.0, 4.0] and table.ratings.dtype == np.float32
    assert table.timestamps.tolist() == [881250949, 891717742]
    assert table.timestamps.dtype == np.int64
    assert (report.rows_read, report.duplicates_replaced, report.path) == (2, 0, str(path))


def test_recbole_ratings_find_columns_by_name(tmp_path: Path) -> None:
    text = (
        "item_id:token\textra:token\tuser_id:token\trating:float\ttimestamp:float\n"
        "10\tx\t 7 \t4.5\t881250949.0\n"
        "11\ty\t7\t1\t881250950\n"
    )
    table, _ = read_ratings(write(tmp_path, "ml.inter", text))
    assert table.users.tolist() == ["7", "7"]
    assert table.items.tolist() == ["10", "11"]
    assert table.ratings.tolist() == [4.5, 1.0]
    assert table.timestamps.tolist() == [881250949, 881250950]


def test_missing_timestamp_column_gives_zero(tmp_path: Path) -> None:
    text = "user_id:token\titem_id:token\trating:float\nu\ti\t2\n"
    table, _ = read_ratings(write(tmp_path, "r.inter", text))
    assert table.timestamps.tolist() == [0]


def test_csv_ratings(tmp_path: Path) -> None:
    text = 'rating,user_id,item_id\n5,"a b",x\n1,c ,"y,z"\n'
    table, report = read_ratings(write(tmp_path, "r.csv", text))
    assert table.users.tolist() == ["a b", "c"]
    assert table.items.tolist() == ["x", "y,z"]
    assert table.ratings.tolist() == [5.0, 1.0]
    assert table.timestamps.tolist() == [0, 0]
    assert report.rows_read == 2


def test_explicit_layout_overrides_the_extension(tmp_path: Path) -> None:
    path = write(tmp_path, "ratings.txt", "user_id,item_id,rating,timestamp\nu,i,3,9\n")
    table, _ = read_ratings(path, layout="csv")
    assert (table.users[0], table.timestamps[0]) == ("u", 9)


def test_custom_scale_accepts_half_stars(tmp_path: Path) -> None:
    path = write(tmp_path, "u.data", "1\t2\t0.5\t0\n")
    table, _ = read_ratings(path, scale=RatingScale(0.5, 5.0, 0.5))
    assert table.ratings.tolist() == [0.5]
    with pytest.raises(DataError, match="outside the scale 1..5"):
        read_ratings(path)


def test_unrecognised_layout_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "ratings.txt", "1 2 3 4\n")
    with pytest.raises(DataError, match="cannot tell the layout") as caught:
        read_ratings(path)
    assert (caught.value.path, caught.value.line) == (str(path), 1)
    with pytest.raises(DataError, match="unknown layout 'tsv'"):
        read_ratings(path, layout="tsv")


GROUPLENS_OK = "1\t1\t3\t10\n"
RATING_ERRORS = [
    ("u.data", GROUPLENS_OK + "1\t2\t3\n", 2, "expected 4 columns, got 3"),
    ("u.data", GROUPLENS_OK + "1\t2\t3\t4\t5\n", 2, "expected 4 columns, got 5"),
    ("u.data", GROUPLENS_OK * 2 + "1\t2\tgood\t4\n", 3, "rating 'good' is not a number"),
    ("u.data", GROUPLENS_OK + "1\t2\t\t4\n", 2, "rating '' is not a number"),
    ("u.data", GROUPLENS_OK + "1\t2\t3\tyesterday\n", 2, "timestamp 'yesterday' is not a number"),
    ("u.data", GROUPLENS_OK + "1\t2\t3\tinf\n", 2, "timestamp 'inf' is not finite"),
    ("u.data", GROUPLENS_OK + "1\t2\t6\t4\n", 2, "rating '6' is outside the scale 1..5"),
    ("u.data", GROUPLENS_OK + "1\t2\t0\t4\n", 2, "rating '0' is outside the scale 1..5"),
    ("u.data", GROUPLENS_OK + "1\t2\tnan\t4\n", 2, "rating 'nan' is outside the scale 1..5"),
    ("u.data", GROUPLENS_OK + "1\t2\tinf\t4\n", 2, "rating 'inf' is outside the scale 1..5"),
    ("u.data", GROUPLENS_OK + " \t2\t3\t4\n", 2, "empty user id"),
    ("u.data", GROUPLENS_OK + "\n" + GROUPLENS_OK, 2, "blank line inside the data"),
    ("u.data", "", 1, "empty file: no data rows"),
    ("u.data", "\n\n", 1, "empty file: no data rows"),
    ("r.csv", "user_id,item_id,rating\n", 2, "no data rows after the header"),
    ("r.csv", "user_id,item_id,rating\nu,i,3,7\n", 2, "expected 3 columns, got 4"),
    ("r.csv", "user_id,item,rating\nu,i,3\n", 1, "header lacks column(s) item_id"),
    ("r.inter", "user_id:token\titem_id:token\nu\ti\n", 1, "header lacks column(s) rating"),
    ("r.inter", "user_id:token\titem_id:token\trating:float\nu\ti\t5\nu\tj\n", 3, "expected 3"),
]


@pytest.mark.parametrize(("name", "text", "line", "message"), RATING_ERRORS)
def test_rating_errors_name_file_and_line(
    tmp_path: Path, name: str, text: str, line: int, message: str
) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(DataError) as caught:
        read_ratings(path)
    assert str(caught.value).startswith(f"{path}:{line}: ")
    assert message in str(caught.value)
    assert (caught.value.path, caught.value.line) == (str(path), line)


def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read"):
        read_ratings(tmp_path / "absent.data")


def test_duplicates_keep_the_latest_and_are_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = (
        "u1\ti1\t3\t100\n"
        "u1\ti2\t1\t100\n"
        "u1\ti1\t5\t50\n"  # older: replaced by line 1
        "u2\ti1\t2\t7\n"
        "u1\ti1\t4\t100\n"  # same time as line 1, later line: wins
    )
    with caplog.at_level(logging.WARNING, logger="models.data.readers"):
        table, report = read_ratings(write(tmp_path, "u.data", text))
    assert report.rows_read == 5
    assert report.duplicates_replaced == 2
    assert len(table) == 3
    # survivors keep file order
    assert as_rows(table) == [("u1", "i2", 1.0, 100), ("u2", "i1", 2.0, 7), ("u1", "i1", 4.0, 100)]
    assert "2 duplicate" in caplog.text and "u.data" in caplog.text


def grouplens_item(item_id: str, title: str, flags: list[int], n: int = 19) -> str:
    bits = ["0"] * n
    for k in flags:
        bits[k] = "1"
    return "|".join([item_id, title, "01-Jan-1995", "", "http://imdb/x", *bits])


def test_grouplens_items_latin1_with_standard_genres(tmp_path: Path) -> None:
    text = "\n".join(
        [grouplens_item("1", "Toy Story (1995)", [3, 4, 5]), grouplens_item("2", "Misérables", [])]
    )
    catalogue = read_items(write(tmp_path, "u.item", text + "\n", encoding="latin-1"))
    assert catalogue.titles == {"1": "Toy Story (1995)", "2": "Misérables"}
    assert catalogue.genres["1"] == ["Animation", "Children's", "Comedy"]
    assert catalogue.genres["2"] == []
    assert GROUPLENS_GENRES[0] == "unknown" and len(GROUPLENS_GENRES) == 19


def test_grouplens_items_take_genre_names_from_u_genre(tmp_path: Path) -> None:
    write(tmp_path, "u.genre", "Drama|1\nComedy|0\nHorror|2\n\n")
    text = grouplens_item("7", "A", [0, 2], n=3)
    catalogue = read_items(write(tmp_path, "u.item", text))
    assert catalogue.genres == {"7": ["Comedy", "Horror"]}


def test_recbole_items(tmp_path: Path) -> None:
    text = (
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "1\tToy Story\t1995\tAnimation Children's Comedy\n"
        "2\tVéronique\t1991\t\n"
    )
    catalogue = read_items(write(tmp_path, "ml-100k.item", text))
    assert catalogue.titles == {"1": "Toy Story", "2": "Véronique"}
    assert catalogue.genres == {"1": ["Animation", "Children's", "Comedy"], "2": []}


def test_recbole_items_fall_back_to_latin1(tmp_path: Path) -> None:
    text = "item_id:token\ttitle:token_seq\n9\tCaf\xe9\n"
    catalogue = read_items(write(tmp_path, "x.item", text, encoding="latin-1"))
    assert catalogue.titles == {"9": "Café"}


def test_csv_items(tmp_path: Path) -> None:
    text = 'item_id,title,genres\n1,"Good, Bad and Ugly",Western|Action\n2,Solo,\n'
    catalogue = read_items(write(tmp_path, "items.csv", text))
    assert catalogue.titles == {"1": "Good, Bad and Ugly", "2": "Solo"}
    assert catalogue.genres == {"1": ["Western", "Action"], "2": []}


ITEM_ERRORS = [
    ("items.csv", "item_id,title\n1,A\n2,B\n1,C\n", 4, "duplicate item id '1' (first on line 2)"),
    ("items.csv", "item_id,title\n1,A\n2\n", 3, "expected 2 columns, got 1"),
    ("items.csv", "title\nA\n", 1, "header lacks column(s) item_id"),
    ("items.csv", "item_id,title\n", 2, "no data rows after the header"),
    ("u.item", "", 1, "empty file"),
    ("u.item", grouplens_item("1", "A", []) + "\n1|B|x\n", 2, "expected 24 columns, got 3"),
    ("u.item", "\n".join([grouplens_item("5", "A", [])] * 2), 2, "duplicate item id '5'"),
    ("u.item", grouplens_item("1", "A", []).replace("|0|", "|2|", 1), 1, "must be 0 or 1"),
    ("a.item", "item_id:token\ttitle:token_seq\n1\tA\textra\n", 2, "expected 2 columns, got 3"),
]


@pytest.mark.parametrize(("name", "text", "line", "message"), ITEM_ERRORS)
def test_item_errors_name_file_and_line(
    tmp_path: Path, name: str, text: str, line: int, message: str
) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(DataError) as caught:
        read_items(path)
    assert str(caught.value).startswith(f"{path}:{line}: ")
    assert message in str(caught.value)


INTER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t2\t3\t4\n5\t6\t5\t7\n"
ITEM = "item_id:token\tmovie_title:token_seq\tclass:token_seq\n2\tA\tDrama\n6\tB\tWar Crime\n"


def fake_wheel(folder: Path, members: dict[str, str] | None = None) -> tuple[Path, str]:
    """A zip laid out like the recbole wheel, and its sha256."""
    members = members or {
        "recbole/dataset_example/ml-100k/ml-100k.inter": INTER,
        "recbole/dataset_example/ml-100k/ml-100k.item": ITEM,
        "recbole/__init__.py": "",
    }
    wheel = folder / "recbole-1.2.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return wheel, hashlib.sha256(wheel.read_bytes()).hexdigest()


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("fetch tried to download")

    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.delenv(fetch.WHEEL_ENV, raising=False)


@pytest.mark.usefixtures("no_network")
def test_fetch_extracts_only_the_data_files_and_is_idempotent(tmp_path: Path) -> None:
    wheel, digest = fake_wheel(tmp_path)
    folder = fetch_movielens_100k(tmp_path / "data", wheel=wheel, expected_sha256=digest)
    assert folder == tmp_path / "data" / "movielens-100k"
    assert sorted(p.name for p in folder.iterdir()) == ["ml-100k.inter", "ml-100k.item"]
    table, _ = read_ratings(folder / "ml-100k.inter")
    assert table.users.tolist() == ["1", "5"] and table.timestamps.tolist() == [4, 7]
    assert read_items(folder / "ml-100k.item").genres == {"2": ["Drama"], "6": ["War", "Crime"]}

    wheel.unlink()  # present files are enough: no wheel, no download
    assert fetch_movielens_100k(tmp_path / "data") == folder


@pytest.mark.usefixtures("no_network")
def test_fetch_takes_the_wheel_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel, digest = fake_wheel(tmp_path)
    monkeypatch.setenv(fetch.WHEEL_ENV, str(wheel))
    folder = fetch_movielens_100k(tmp_path / "data", expected_sha256=digest)
    assert (folder / "ml-100k.inter").read_text() == INTER


@pytest.mark.usefixtures("no_network")
def test_fetch_refuses_a_checksum_mismatch(tmp_path: Path) -> None:
    wheel, _ = fake_wheel(tmp_path)
    with pytest.raises(FetchError, match="sha256 mismatch") as caught:
        fetch_movielens_100k(tmp_path / "data", wheel=wheel)  # the real wheel's checksum
    assert str(wheel) in str(caught.value)
    assert not (tmp_path / "data" / "movielens-100k" / "ml-100k.inter").exists()
    assert isinstance(caught.value, DataError)


@pytest.mark.usefixtures("no_network")
def test_fetch_refuses_a_wheel_without_the_data(tmp_path: Path) -> None:
    wheel, digest = fake_wheel(tmp_path, {"recbole/__init__.py": ""})
    with pytest.raises(FetchError, match="wheel lacks recbole/dataset_example/ml-100k"):
        fetch_movielens_100k(tmp_path / "data", wheel=wheel, expected_sha256=digest)


def test_fetch_reports_a_failed_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_pip(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        assert command[1:4] == ["-m", "pip", "download"] and "install" not in command
        return subprocess.CompletedProcess(command, 1, "", "No matching distribution found")

    monkeypatch.setattr(subprocess, "run", failing_pip)
    monkeypatch.delenv(fetch.WHEEL_ENV, raising=False)
    with pytest.raises(FetchError, match="failed .exit 1.*No matching distribution"):
        fetch_movielens_100k(tmp_path / "data")
