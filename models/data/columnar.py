"""Rating files read a column at a time with pyarrow: the fast path for the delimited
layouts (CSV, GroupLens, RecBole) and the one path for Parquet.

The delimited fast path parses the whole file in C and converts each column in bulk; it
answers None whenever it cannot vouch for giving exactly the table the line-by-line
reader (`models.data.readers`) gives: a row of the wrong width, a value that is not a
number or is off the scale, an empty id, bytes that are not UTF-8, a bare carriage return.
The caller then reads line by line, which names the file and line of the first fault, so
a bad file is refused with the same message either way and only a good one is read fast.

Parquet carries types and no lines: a fault names the file, the column and the row index
(from 0, as pyarrow and pandas count).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from models.data.readers import ParsedRatings
from models.data.table import Catalogue, DataError, RatingScale

# Timestamps parsed as floats ("881250949.0") are exact integers below this.
_EXACT_FLOAT_INT = 2**53


def delimited_ratings(
    data: bytes, layout: str, header: list[str] | None, scale: RatingScale,
    require_rating: bool,
) -> ParsedRatings | None:
    """The file's columns, or None where the line-by-line reader must decide (see the
    module docstring). header: the column names of the first line (None for GroupLens,
    whose four columns are fixed), as the line-by-line reader reads them."""
    if b"\r" in data and data.count(b"\r") != data.count(b"\r\n"):
        return None  # pyarrow ends a line at a bare \r, the line reader does not
    names = header or ["user_id", "item_id", "rating", "timestamp"]
    wanted = ["user_id", "item_id"] + (["rating"] if require_rating else [])
    if any(name not in names for name in wanted):
        return None
    body = data if header is None else data.partition(b"\n")[2]
    body = _without_trailing_blank_lines(body)
    if not body.strip():
        return None
    positions = {name: names.index(name) for name in ("user_id", "item_id", "rating",
                                                      "timestamp") if name in names}
    try:
        table = pa_csv.read_csv(
            io.BytesIO(body),
            read_options=pa_csv.ReadOptions(column_names=[f"c{k}" for k in range(len(names))]),
            parse_options=pa_csv.ParseOptions(
                delimiter="," if layout == "csv" else "\t",
                quote_char='"' if layout == "csv" else False,
                ignore_empty_lines=False,
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types={f"c{k}": pa.string() for k in range(len(names))},
                strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    column = lambda name: table.column(positions[name])  # noqa: E731
    users = _stripped_ids(column("user_id"), layout)
    items = _stripped_ids(column("item_id"), layout)
    if users is None or items is None:
        return None
    (users, user_codes), (items, item_codes) = users, items
    ratings = None
    if "rating" in positions:
        ratings = _numbers(column("rating"))
        if ratings is None or not scale.contains(ratings).all():
            return None
        ratings = ratings.astype(np.float32)
    timestamps = np.zeros(len(users), np.int64)
    if "timestamp" in positions:
        timestamps = _seconds(column("timestamp"))
        if timestamps is None:
            return None
    return ParsedRatings(users, items, ratings, timestamps, (user_codes, item_codes))


def parquet_ratings(path: Path, scale: RatingScale, require_rating: bool) -> ParsedRatings:
    """Columns user_id, item_id (strings or integers), rating (any number; optional unless
    `require_rating`), timestamp (integer seconds, or a timestamp type; optional)."""
    where = str(path)
    table = _parquet(path)
    required = ("user_id", "item_id", "rating") if require_rating else ("user_id", "item_id")
    missing = [name for name in required if name not in table.column_names]
    if missing:
        raise DataError(
            f"lacks column(s) {', '.join(missing)}; found {', '.join(table.column_names)}",
            where,
        )
    if table.num_rows == 0:
        raise DataError("no rows", where)
    users, user_codes = _parquet_ids(table, "user_id", where)
    items, item_codes = _parquet_ids(table, "item_id", where)
    ratings = None
    if "rating" in table.column_names:
        ratings = _parquet_numbers(table, "rating", where)
        outside = np.flatnonzero(~scale.contains(ratings))
        if len(outside):
            k = int(outside[0])
            raise DataError(
                f"column rating, row {k}: {ratings[k]:g} is outside the scale "
                f"{scale.low:g}..{scale.high:g}",
                where,
            )
        ratings = ratings.astype(np.float32)
    timestamps = np.zeros(table.num_rows, np.int64)
    if "timestamp" in table.column_names:
        timestamps = _parquet_seconds(table, where)
    return ParsedRatings(users, items, ratings, timestamps, (user_codes, item_codes))


def parquet_items(path: Path) -> Catalogue:
    """Columns item_id, title (optional), genres (optional: a list of strings, or one
    string "a|b"); a repeated or missing item id names its row."""
    where = str(path)
    table = _parquet(path)
    if "item_id" not in table.column_names:
        raise DataError(f"lacks column item_id; found {', '.join(table.column_names)}", where)
    ids = _parquet_ids(table, "item_id", where)[0].tolist()
    titles = [""] * len(ids)
    if "title" in table.column_names:
        titles = [(t or "").strip() for t in table.column("title").cast(pa.string()).to_pylist()]
    genres: list[list[str]] = [[] for _ in ids]
    if "genres" in table.column_names:
        column = table.column("genres")
        if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
            raw = [tags or [] for tags in column.to_pylist()]
        else:
            raw = [(tags or "").split("|") for tags in column.cast(pa.string()).to_pylist()]
        genres = [[t.strip() for t in tags if t and t.strip()] for tags in raw]
    seen: dict[str, int] = {}
    for row, item_id in enumerate(ids):
        if item_id in seen:
            raise DataError(
                f"column item_id, row {row}: duplicate item id {item_id!r} (first at row "
                f"{seen[item_id]})",
                where,
            )
        seen[item_id] = row
    return Catalogue(dict(zip(ids, titles, strict=True)), dict(zip(ids, genres, strict=True)))


def _without_trailing_blank_lines(body: bytes) -> bytes:
    """`body` up to the end of its last line holding more than ASCII whitespace (the
    line reader drops trailing blank lines; any other whitespace it would keep sends the
    read back to it)."""
    content = len(body.rstrip())
    end = body.find(b"\n", content)
    return body if end < 0 else body[: end + 1]


def _stripped_ids(column: pa.ChunkedArray, layout: str) -> tuple[np.ndarray, np.ndarray] | None:
    """`_ids` of a delimited file's column; None for an empty id, or a CSV id holding a
    line break (a quoted field across lines, which the line reader numbers otherwise)."""
    if layout == "csv" and pc.any(pc.match_substring(column, "\n")).as_py():
        return None
    ids, codes = _ids(column)
    if len(ids) == 0 or ids[np.argmin(codes)] == "":  # the least id: "" sorts first
        return None
    return ids, codes


def _ids(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(n,) str ids of a string column stripped as `str.strip` does, in the dtype
    `np.array(list)` gives, and (n,) int64 codes, equal where the ids are. Only distinct
    values are converted to Python strings: pyarrow's dictionary encoding finds them."""
    encoded = pc.dictionary_encode(column.combine_chunks())
    distinct = np.char.strip(encoded.dictionary.to_numpy(zero_copy_only=False).astype(str))
    labels, merged = np.unique(distinct, return_inverse=True)  # " a" and "a" are one id
    codes = merged[encoded.indices.to_numpy()].astype(np.int64)
    width = max(int(np.char.str_len(labels).max(initial=0)), 1)
    return labels.astype(f"<U{width}")[codes], codes


def _numbers(column: pa.ChunkedArray) -> np.ndarray | None:
    """(n,) float64, None where a value is not a plain number (pyarrow's parser accepts a
    subset of Python's `float`: no spaces, no underscores)."""
    try:
        return pc.cast(column, pa.float64()).to_numpy()
    except pa.ArrowInvalid:
        return None


def _seconds(column: pa.ChunkedArray) -> np.ndarray | None:
    """(n,) int64 from integers, or from floats as `int(float(text))` (RecBole types
    timestamps as float); None where the line reader must judge a value."""
    try:
        return pc.cast(column, pa.int64()).to_numpy()
    except pa.ArrowInvalid:
        pass
    numbers = _numbers(column)
    if numbers is None or not (np.abs(numbers) < _EXACT_FLOAT_INT).all():
        return None  # also NaN and inf
    return numbers.astype(np.int64)


def _parquet(path: Path) -> pa.Table:
    try:
        return pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:  # unreadable, or not Parquet
        raise DataError(f"cannot read as Parquet: {exc}", str(path)) from None


def _first_null(column: pa.ChunkedArray) -> int | None:
    if column.null_count == 0:
        return None
    return int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])


def _parquet_ids(table: pa.Table, name: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    """`_ids` of a string or integer column."""
    column = table.column(name)
    kind = column.type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)
            or pa.types.is_integer(kind)):
        raise DataError(f"column {name} is {column.type}; ids must be strings or integers",
                        where)
    row = _first_null(column)
    if row is not None:
        raise DataError(f"column {name}, row {row}: null id", where)
    ids, codes = _ids(column.cast(pa.string()))
    first = int(np.argmin(codes))  # the first row of the least id: "" sorts first
    if ids[first] == "":
        raise DataError(f"column {name}, row {first}: empty id", where)
    return ids, codes


def _parquet_numbers(table: pa.Table, name: str, where: str) -> np.ndarray:
    column = table.column(name)
    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
            or pa.types.is_decimal(column.type)):
        raise DataError(f"column {name} is {column.type}; expected numbers", where)
    row = _first_null(column)
    if row is not None:
        raise DataError(f"column {name}, row {row}: null", where)
    return column.cast(pa.float64()).to_numpy()


def _parquet_seconds(table: pa.Table, where: str) -> np.ndarray:
    """(n,) int64 Unix seconds from integers, finite floats (truncated) or timestamps."""
    column = table.column("timestamp")
    row = _first_null(column)
    if row is not None:
        raise DataError(f"column timestamp, row {row}: null", where)
    if pa.types.is_timestamp(column.type):
        per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
        ticks = column.cast(pa.timestamp(column.type.unit)).cast(pa.int64()).to_numpy()
        return ticks // per_second[column.type.unit]
    if pa.types.is_integer(column.type):
        return column.cast(pa.int64()).to_numpy()
    if pa.types.is_floating(column.type):
        seconds = column.cast(pa.float64()).to_numpy()
        bad = np.flatnonzero(~np.isfinite(seconds) | (np.abs(seconds) >= 2.0**63))
        if len(bad):
            k = int(bad[0])
            raise DataError(f"column timestamp, row {k}: {seconds[k]!r} is not a time", where)
        return seconds.astype(np.int64)
    raise DataError(
        f"column timestamp is {column.type}; expected integer seconds or a timestamp", where
    )
