"""Reads ratings and item catalogues in four layouts into `RatingTable` and `Catalogue`.

    layout     ratings                                      items
    grouplens  u.data, uN.base: user TAB item TAB rating    u.item: id|title|date|video date|url|
               TAB timestamp, no header                     19 genre flags (latin-1)
    recbole    .inter: TSV, typed header (user_id:token)    .item: TSV, typed header; title from
               timestamp optional                           the *title* column, genres from
                                                            class/genre(s), space-separated
    csv        header user_id,item_id,rating[,timestamp]    header item_id,title[,genres a|b]
    parquet    .parquet: columns named as for csv           .parquet: item_id, title, genres
                                                            (a list, or one string a|b)

Ratings are read a column at a time by pyarrow (`models.data.columnar`); a file the fast
path cannot vouch for is read line by line here, with the same result. A malformed line
stops the read with a DataError naming the file and line (for Parquet, the column and
row), because a half-read data set trains a model that is quietly wrong. The one repair
made is for duplicate (user, item) pairs: the latest rating wins (by timestamp, then by
line) and the number replaced is logged and reported.

Interactions (clicks, plays, purchases) have no rating column: with
`require_rating=False` such a file is read with every rating at the scale's top,
"interacted", and the report says the file was unrated.
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

LAYOUTS = ("grouplens", "recbole", "csv", "parquet")
PARQUET_SUFFIXES = (".parquet", ".pq")
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
class ParsedRatings:
    """A ratings file's columns before duplicates are resolved. users, items: (n,) str;
    ratings: (n,) float32, None when the file has no rating column (interactions);
    timestamps: (n,) int64 seconds, 0 where the file has none."""

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray | None
    timestamps: np.ndarray
    codes: tuple[np.ndarray, np.ndarray] | None = None  # (n,) int64 each, equal for equal ids

    def id_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """Dense codes of the user and item ids (the reader's, when it made them)."""
        if self.codes is not None:
            return self.codes
        return np.unique(self.users, return_inverse=True)[1], np.unique(
            self.items, return_inverse=True)[1]


@dataclass(frozen=True)
class ReadReport:
    """What `read_ratings` did: lines parsed, duplicates resolved to the latest rating, and
    whether the file rated its items (False: interactions, every rating the scale's top)."""

    rows_read: int
    duplicates_replaced: int
    path: str
    rated: bool = True


def read_ratings(
    path: str | Path,
    layout: str = "auto",
    scale: RatingScale = MOVIELENS_SCALE,
    require_rating: bool = True,
) -> tuple[RatingTable, ReadReport]:
    """One row per (user, item); ids are stripped strings, a missing timestamp is 0.
    Without `require_rating`, a file with no rating column is read as interactions."""
    from models.data import columnar  # pyarrow: loaded by what reads data, not by serving

    path = Path(path)
    where = str(path)
    if layout == "parquet" or (layout == "auto" and path.suffix in PARQUET_SUFFIXES):
        parsed = columnar.parquet_ratings(path, scale, require_rating)
    else:
        data = _read(path)
        first_line = _first_line(data, where)
        if layout == "auto":
            layout = _ratings_layout(path, first_line)
        if layout not in LAYOUTS:
            raise DataError(f"unknown layout {layout!r}; use 'auto' or one of {LAYOUTS}", where)
        header = None if layout == "grouplens" else _header(first_line, layout)
        parsed = columnar.delimited_ratings(data, layout, header, scale, require_rating)
        if parsed is None:
            parsed = _parse_ratings(_lines(data, where), layout, scale, require_rating, where)
    users, items, stamps = parsed.users, parsed.items, parsed.timestamps
    ratings = parsed.ratings
    if ratings is None:
        ratings = np.full(len(users), scale.high, np.float32)
    keep = _latest_per_pair(*parsed.id_codes(), stamps)
    duplicates = len(users) - len(keep)
    table = RatingTable(users, items, ratings, stamps)
    if duplicates:
        log.warning(
            "%s: %d duplicate (user, item) ratings replaced by the latest", where, duplicates
        )
        table = table.take(keep)
    report = ReadReport(len(users), duplicates, where, rated=parsed.ratings is not None)
    return table, report


def _parse_ratings(
    lines: list[str], layout: str, scale: RatingScale, require_rating: bool, where: str
) -> ParsedRatings:
    """The line-by-line reader: every fault named by its line."""
    rows, header = _rows(lines, layout, "\t", where)
    if header is None:
        columns = {name: k for k, name in enumerate(_GROUPLENS_RATINGS)}
        width = len(_GROUPLENS_RATINGS)
    else:
        required = ("user_id", "item_id", "rating") if require_rating else ("user_id", "item_id")
        columns = _find_columns(header, required, where)
        for optional in ("rating", "timestamp"):
            if optional in header and optional not in columns:
                columns[optional] = header.index(optional)
        width = len(header)
    first = 1 if header is None else 2  # file line of rows[0]
    _check_width(rows, width, first, where)

    users = _ids(rows, columns["user_id"], "user id", first, where)
    items = _ids(rows, columns["item_id"], "item id", first, where)
    ratings = None
    if "rating" in columns:
        ratings = _ratings(rows, columns["rating"], scale, first, where)
    if "timestamp" in columns:
        stamps = _timestamps(rows, columns["timestamp"], first, where)
    else:
        stamps = np.zeros(len(rows), np.int64)
    return ParsedRatings(np.array(users), np.array(items), ratings, stamps)


def read_items(path: str | Path, layout: str = "auto") -> Catalogue:
    """Titles and genre lists by item id; a repeated item id is an error."""
    where = str(path)
    if layout == "parquet" or (layout == "auto" and Path(path).suffix in PARQUET_SUFFIXES):
        from models.data.columnar import parquet_items

        return parquet_items(Path(path))
    lines = _lines(_read(Path(path)), where)
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


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror or exc}", str(path)) from None


def _lines(data: bytes, where: str) -> list[str]:
    """The file's lines, trailing blank ones dropped; utf-8, else latin-1 (GroupLens)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    # split on "\n" only: str.splitlines would also break on \x85 and friends in latin-1 text
    lines = [line.rstrip("\r") for line in text.split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DataError("empty file: no data rows", where, 1)
    return lines


def _first_line(data: bytes, where: str) -> str:
    """The first line as `_lines` decodes it, for the layout and the header (what decides
    either is ASCII); an empty file is refused as `_lines` refuses it."""
    if not data.strip():
        _lines(data, where)
    line = data.partition(b"\n")[0]
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = line.decode("latin-1")
    return text.rstrip("\r")


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
        header = _header(lines[0], layout)
        rows.pop(0)
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


def _header(line: str, layout: str) -> list[str]:
    """The column names of a RecBole (`name:type`, tab-separated) or CSV header line (a
    CSV header quoted across lines is read by `_rows` alone)."""
    if layout == "recbole":
        return [field.split(":", 1)[0].strip() for field in line.split("\t")]
    return [field.strip() for field in next(csv.reader([line]), [])]


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


def _latest_per_pair(users: np.ndarray, items: np.ndarray, stamps: np.ndarray) -> np.ndarray:
    """Row indices to keep, in file order: per (user, item) the latest, ties to the later
    line. users, items: (n,) dense integer codes of the ids."""
    pair = users.astype(np.int64) * (int(items.max(initial=0)) + 1) + items
    ordered = np.sort(pair)
    if not (ordered[1:] == ordered[:-1]).any():
        return np.arange(len(pair))
    order = np.lexsort((np.arange(len(pair)), stamps, pair))  # by pair, time, then line
    last = np.r_[pair[order][1:] != pair[order][:-1], True]  # each pair's latest, last line
    return np.sort(order[last])


def _grouplens_genres(genre_file: Path) -> tuple[str, ...]:
    """Genre names by flag position, from u.genre (`name|index`) when it is present."""
    if not genre_file.is_file():
        return GROUPLENS_GENRES
    where = str(genre_file)
    by_index: dict[int, str] = {}
    for number, line in enumerate(_lines(_read(genre_file), where), 1):
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
