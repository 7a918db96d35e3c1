"""Fetches the MovieLens-100K demo data as RecBole atomic files.

The files ship inside the `recbole` wheel on PyPI, which pip can download through whatever
index and proxy the machine is set up for. Only the wheel is downloaded (never installed),
its sha256 is checked, and just the two data files are extracted:

    <dest>/movielens-100k/ml-100k.inter   user_id, item_id, rating, timestamp (100,000 rows)
    <dest>/movielens-100k/ml-100k.item    item_id, movie_title, release_year, class (1,682)

To work offline, pass `wheel=` or set BECAUSE_RECBOLE_WHEEL to a downloaded wheel.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from models.data.table import DataError

WHEEL_REQUIREMENT = "recbole==1.2.1"
WHEEL_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
WHEEL_ENV = "BECAUSE_RECBOLE_WHEEL"
MEMBERS = {
    "ml-100k.inter": "recbole/dataset_example/ml-100k/ml-100k.inter",
    "ml-100k.item": "recbole/dataset_example/ml-100k/ml-100k.item",
}
FOLDER = "movielens-100k"


class FetchError(DataError):
    """The demo data could not be downloaded, or the download is not the expected file."""


def fetch_movielens_100k(
    dest: str | Path, wheel: str | Path | None = None, expected_sha256: str = WHEEL_SHA256
) -> Path:
    """The folder holding ml-100k.inter and ml-100k.item, downloading them when absent.

    wheel: a local recbole wheel to use instead of downloading; default $BECAUSE_RECBOLE_WHEEL.
    expected_sha256: the wheel's checksum; only tests with a home-made wheel change it.
    """
    folder = Path(dest) / FOLDER
    if all((folder / name).is_file() for name in MEMBERS):
        return folder
    wheel = wheel or os.environ.get(WHEEL_ENV) or None
    if wheel is not None:
        _extract(Path(wheel), folder, expected_sha256)
        return folder
    with tempfile.TemporaryDirectory(prefix="because-fetch-") as tmp:
        _extract(_download(Path(tmp)), folder, expected_sha256)
    return folder


def _download(into: Path) -> Path:
    """The recbole wheel, via `pip download` (no dependencies, no install)."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--quiet", WHEEL_REQUIREMENT, "-d", str(into),
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise FetchError(f"could not run pip to download {WHEEL_REQUIREMENT}: {exc}") from exc
    wheels = sorted(into.glob("*.whl"))
    if done.returncode != 0 or len(wheels) != 1:
        detail = (done.stderr or done.stdout).strip()[-2000:]
        raise FetchError(
            f"`pip download {WHEEL_REQUIREMENT}` failed (exit {done.returncode}); check network "
            f"access to PyPI, or pass a downloaded wheel via {WHEEL_ENV}. pip said: {detail}"
        )
    return wheels[0]


def _extract(wheel: Path, folder: Path, expected_sha256: str) -> None:
    """Checks the wheel's sha256, then writes each data file atomically into `folder`."""
    if not wheel.is_file():
        raise FetchError("wheel file not found", str(wheel))
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != expected_sha256:
        raise FetchError(
            f"sha256 mismatch: expected {expected_sha256}, got {digest}; "
            f"this is not the {WHEEL_REQUIREMENT} wheel",
            str(wheel),
        )
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(wheel) as archive:
            present = set(archive.namelist())
            for name, member in MEMBERS.items():
                if member not in present:
                    raise FetchError(f"wheel lacks {member}", str(wheel))
                partial = folder / f".{name}.partial"
                partial.write_bytes(archive.read(member))
                partial.replace(folder / name)
    except zipfile.BadZipFile as exc:
        raise FetchError(f"not a zip archive: {exc}", str(wheel)) from exc
