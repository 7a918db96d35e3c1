"""Reads ratings and item catalogues in three layouts into `RatingTable` and `Catalogue`.

    layout     ratings                                      items
    grouplens  u.data, uN.base: user TAB item TAB rating    u.item: id|title|date|video date|url|
               TAB timestamp, no header                     19 genre flags (latin-1)
    recbole    .inter: TSV, typed header (user_id:token)    .item: TSV, typed header; title from
               timestamp optional                           the *title* column, genres from
                                                            class/genre(s), space-separated
    csv        header user_id,item_id,rating[,timestamp]    header item_id,title[,genres a|b]

A malformed line stops the read with a DataError naming the file and line, because a
half-read data set trains a model that is quietly wrong. The one repair made is for
duplicate (user, item) pairs: the latest rating wins (by timestamp, then by line) and the
number replaced is logged and reported.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.data.table import Catalogue, DataError, RatingScale, RatingTable

log = logging.getLogger(__name__)

LAYOUTS = ("grouplens", "recbole", "csv")
MOVIELENS_SCALE = RatingScale()  # 1..5 stars in steps of 1

GROUPLENS_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
_GROUPLENS_RATINGS = ("user_id", "item_id", "rating", "timestamp")
_GROUPLENS_ITEM_FIELDS = 5  # id, title, release date, video release date, IMDb URL
_GENRE_COLUMNS = ("class", "genre", "genres")


@dataclass(frozen=True)
class ReadReport:
    """What `read_ratings` did: lines parsed, and duplicates resolved to the latest rating."""

    rows_read: int
    duplicates_replaced: int
    path: str


def read_ratings(
    path: str | Path, layout: str = "auto", scale: RatingScale = MOVIELENS_SCALE
) -> tuple[RatingTable, ReadReport]:
    """One row per (user, item); ids are stripped strings, a missing timestamp is 0."""
    where = str(path)
    lines = _lines(Path(path))
    if layout == "auto":
        layout = _ratings_layout(Path(path), lines[0])
    rows, header = _rows(lines, layout, "\t", where)
    if header is None:
        columns = {name: k for k, name in enumerate(_GROUPLENS_RATINGS)}
        width = len(_GROUPLENS_RATINGS)
    else:
        columns = _find_columns(header, ("user_id", "item_id", "rating"), where)
        if "timestamp" in header:
            columns["timestamp"] = header.index("timestamp")
        width = len(header)
    first = 1 if header is None else 2  # file line of rows[0]
    _check_width(rows, width, first, where)

    users = _ids(rows, columns["user_id"], "user id", first, where)
    items = _ids(rows, columns["item_id"], "item id", first, where)
    ratings = _ratings(rows, columns["rating"], scale, first, where)
    if "timestamp" in columns:
        stamps = _timestamps(rows, columns["timestamp"], first, where)
    else:
        stamps = np.zeros(len(rows), np.int64)
    keep = _latest_per_pair(users, items, stamps)
    duplicates = len(rows) - len(keep)
    table = RatingTable(np.array(users), np.array(items), ratings, stamps)
    if duplicates:
        log.warning(
            "%s: %d duplicate (user, item) ratings replaced by the latest", where, duplicates
        )
        table = table.take(keep)
    return table, ReadReport(rows_read=len(rows), duplicates_replaced=duplicates, path=where)


def read_items(path: str | Path, layout: str = "auto") -> Catalogue:
    """Titles and genre lists by item id; a repeated item id is an error."""
    where = str(path)
    lines = _lines(Path(path))
    if layout == "auto":
        layout = _items_layout(Path(path), lines[0])
    rows, header = _rows(lines, layout, "|", where)
    if header is None:
        genres = _grouplens_genres(Path(path).parent / "u.genre")
        parsed, first = _grouplens_items(rows, genres, where), 1
    else:
        parsed, first = _tabular_items(rows, header, layout, where), 2
    titles: dict[str, str] = {}
    genre_lists: dict[str, list[str]] = {}
    seen: dict[str, int] = {}
    for k, (item_id, title, tags) in enumerate(parsed):
        if item_id in seen:
            raise DataError(
                f"duplicate item id {item_id!r} (first on line {seen[item_id]})", where, first + k
            )
        seen[item_id] = first + k
        titles[item_id] = title
        genre_lists[item_id] = tags
    return Catalogue(titles, genre_lists)


def _lines(path: Path) -> list[str]:
    """The file's lines, trailing blank ones dropped; utf-8, else latin-1 (GroupLens)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror or exc}", str(path)) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    # split on "\n" only: str.splitlines would also break on \x85 and friends in latin-1 text
    lines = [line.rstrip("\r") for line in text.split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DataError("empty file: no data rows", str(path), 1)
    return lines


def _ratings_layout(path: Path, first_line: str) -> str:
    if path.suffix == ".inter" or _typed_header(first_line):
        return "recbole"
    if path.suffix == ".csv":
        return "csv"
    if len(first_line.split("\t")) == len(_GROUPLENS_RATINGS):
        return "grouplens"
    raise DataError(
        "cannot tell the layout: expected a .inter or .csv file, or 4 tab-separated columns "
        f"(user, item, rating, timestamp); pass one of {LAYOUTS}",
        str(path),
        1,
    )


def _items_layout(path: Path, first_line: str) -> str:
    """GroupLens's own file is named u.item too, so content decides before the suffix."""
    if _typed_header(first_line):
        return "recbole"
    if path.suffix == ".csv":
        return "csv"
    if "|" in first_line and "\t" not in first_line:
        return "grouplens"
    if path.suffix == ".item":
        return "recbole"
    raise DataError(
        "cannot tell the layout: expected a .item or .csv file, or pipe-separated u.item "
        f"lines; pass one of {LAYOUTS}",
        str(path),
        1,
    )


def _typed_header(line: str) -> bool:
    """RecBole headers type every column: `user_id:token<TAB>rating:float`."""
    fields = line.split("\t")
    return len(fields) > 1 and all(":" in f for f in fields)


def _rows(
    lines: list[str], layout: str, grouplens_sep: str, where: str
) -> tuple[list[list[str]], list[str] | None]:
    """Data rows split into fields, and the header's column names (None for GroupLens)."""
    if layout == "grouplens":
        rows = [line.split(grouplens_sep) for line in lines]
        header = None
    elif layout == "recbole":
        rows = [line.split("\t") for line in lines]
        header = [field.split(":", 1)[0].strip() for field in rows.pop(0)]
    elif layout == "csv":
        rows = list(csv.reader(lines))
        header = [field.strip() for field in rows.pop(0)]
    else:
        raise DataError(f"unknown layout {layout!r}; use 'auto' or one of {LAYOUTS}", where)
    if not rows:
        raise DataError("no data rows after the header", where, 2)
    first = 1 if header is None else 2
    for k, fields in enumerate(rows):
        if fields == [""] or fields == []:
            raise DataError("blank line inside the data", where, first + k)
    return rows, header


def _find_columns(header: list[str], required: tuple[str, ...], where: str) -> dict[str, int]:
    missing = [name for name in required if name not in header]
    if missing:
        raise DataError(
            f"header lacks column(s) {', '.join(missing)}; found {', '.join(header)}", where, 1
        )
    return {name: header.index(name) for name in required}


def _check_width(rows: list[list[str]], width: int, first: int, where: str) -> None:
    for k, fields in enumerate(rows):
        if len(fields) != width:
            raise DataError(f"expected {width} columns, got {len(fields)}", where, first + k)


def _ids(rows: list[list[str]], column: int, what: str, first: int, where: str) -> list[str]:
    ids = [fields[column].strip() for fields in rows]
    if not all(ids):
        raise DataError(f"empty {what}", where, first + ids.index(""))
    return ids


def _ratings(
    rows: list[list[str]], column: int, scale: RatingScale, first: int, where: str
) -> np.ndarray:
    """(n,) float32; NaN, inf and values outside the scale are errors."""
    raw = [fields[column] for fields in rows]
    try:
        values = np.array([float(v) for v in raw])
    except ValueError:
        k = next(k for k, v in enumerate(raw) if not _is_float(v))
        raise DataError(f"rating {raw[k].strip()!r} is not a number", where, first + k) from None
    outside = np.flatnonzero(~scale.contains(values))
    if len(outside):
        k = int(outside[0])
        raise DataError(
            f"rating {raw[k].strip()!r} is outside the scale {scale.low:g}..{scale.high:g}",
            where,
            first + k,
        )
    return values.astype(np.float32)


def _timestamps(rows: list[list[str]], column: int, first: int, where: str) -> np.ndarray:
    """(n,) int64 seconds; "881250949.0" is accepted (RecBole types timestamps as float)."""
    raw = [fields[column] for fields in rows]
    try:
        return np.array([int(v) for v in raw], np.int64)
    except (ValueError, OverflowError):
        return np.array([_timestamp(v, first + k, where) for k, v in enumerate(raw)], np.int64)


def _timestamp(text: str, line: int, where: str) -> int:
    try:
        value = int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            raise DataError(f"timestamp {text.strip()!r} is not a number", where, line) from None
        if not math.isfinite(number):
            raise DataError(f"timestamp {text.strip()!r} is not finite", where, line) from None
        value = int(number)
    if not -(2**63) <= value < 2**63:
        raise DataError(f"timestamp {text.strip()!r} is out of range", where, line)
    return value


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _latest_per_pair(users: list[str], items: list[str], stamps: np.ndarray) -> np.ndarray:
    """Row indices to keep, in file order: per (user, item) the latest, ties to the later line."""
    pairs = list(zip(users, items, strict=True))
    if len(set(pairs)) == len(pairs):
        return np.arange(len(pairs))
    best: dict[tuple[str, str], int] = {}
    times = stamps.tolist()
    for k, pair in enumerate(pairs):
        kept = best.get(pair)
        if kept is None or times[k] >= times[kept]:
            best[pair] = k
    return np.sort(np.fromiter(best.values(), np.int64, len(best)))


def _grouplens_genres(genre_file: Path) -> tuple[str, ...]:
    """Genre names by flag position, from u.genre (`name|index`) when it is present."""
    if not genre_file.is_file():
        return GROUPLENS_GENRES
    where = str(genre_file)
    by_index: dict[int, str] = {}
    for number, line in enumerate(_lines(genre_file), 1):
        name, _, index = line.partition("|")
        if not index.strip().isdigit():
            raise DataError(f"expected name|index, got {line!r}", where, number)
        by_index[int(index)] = name.strip()
    if sorted(by_index) != list(range(len(by_index))):
        raise DataError(f"genre indices must be 0..{len(by_index) - 1}", where)
    return tuple(by_index[k] for k in range(len(by_index)))


def _grouplens_items(
    rows: list[list[str]], genres: tuple[str, ...], where: str
) -> list[tuple[str, str, list[str]]]:
    _check_width(rows, _GROUPLENS_ITEM_FIELDS + len(genres), 1, where)
    ids = _ids(rows, 0, "item id", 1, where)
    parsed = []
    for k, (item_id, fields) in enumerate(zip(ids, rows, strict=True)):
        flags = [flag.strip() for flag in fields[_GROUPLENS_ITEM_FIELDS:]]
        if not set(flags) <= {"0", "1"}:
            raise DataError("genre flags must be 0 or 1", where, 1 + k)
        tags = [name for name, flag in zip(genres, flags, strict=True) if flag == "1"]
        parsed.append((item_id, fields[1].strip(), tags))
    return parsed


def _tabular_items(
    rows: list[list[str]], header: list[str], layout: str, where: str
) -> list[tuple[str, str, list[str]]]:
    """RecBole .item or CSV rows: id, title (column named *title*), genres (class/genre(s))."""
    id_col = _find_columns(header, ("item_id",), where)["item_id"]
    title_col = next((k for k, name in enumerate(header) if "title" in name), None)
    genre_col = next((k for k, name in enumerate(header) if name in _GENRE_COLUMNS), None)
    sep = " " if layout == "recbole" else "|"
    _check_width(rows, len(header), 2, where)
    ids = _ids(rows, id_col, "item id", 2, where)
    parsed = []
    for item_id, fields in zip(ids, rows, strict=True):
        title = fields[title_col].strip() if title_col is not None else ""
        tags = fields[genre_col].split(sep) if genre_col is not None else []
        parsed.append((item_id, title, [tag.strip() for tag in tags if tag.strip()]))
    return parsed
