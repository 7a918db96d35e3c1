"""An artifact's manifest and checksums, without torch: what a command that only needs to
know whether a version is whole (`because models activate`) reads, in a fraction of a
second. `models.artifact` loads the models on top of this.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
WEIGHTS = "model.safetensors"
RANKER_WEIGHTS = "ranker.safetensors"
ITEMS = "items.json"
ITEM_INDEX = "items.faiss"  # optional: FAISS's index of the trained items
ITEM_NEIGHBOURS = "neighbours.safetensors"  # optional, with the index: each item's nearest
MANIFEST = "manifest.json"


class ArtifactError(RuntimeError):
    """The artifact folder is missing, damaged or of another format."""


def read_manifest(folder: Path) -> dict:
    """The manifest, once its format is one this build reads and every checksum matches."""
    path = folder / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{path}: no manifest; is {folder} an artifact folder?")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path}: not valid JSON ({exc})") from exc
    version = manifest.get("format_version")
    if version not in READABLE_FORMATS:
        raise ArtifactError(
            f"{path}: format_version {version!r}; this build reads {list(READABLE_FORMATS)}:"
            " retrain with `because train` to get a current artifact"
        )
    expected = {WEIGHTS, RANKER_WEIGHTS, ITEMS} if has_rating_model(manifest) else {
        RANKER_WEIGHTS, ITEMS}
    missing = expected - set(manifest.get("checksums", {}))
    if missing:
        raise ArtifactError(f"{path}: no checksum for {sorted(missing)}")
    for name, expected in manifest["checksums"].items():
        file = folder / name
        if not file.is_file():
            raise ArtifactError(f"{file}: missing")
        actual = sha256(file)
        if actual != expected:
            raise ArtifactError(
                f"{file}: checksum mismatch (manifest {expected[:12]}, file {actual[:12]});"
                " the file is damaged or from another artifact"
            )
    return manifest


def has_rating_model(manifest: dict) -> bool:
    """False for an artifact trained on interactions alone (no rating column): it holds
    the ranking model and no `model.safetensors`, and its manifest says `"rating": null`.
    Every format-1 artifact has both models."""
    return manifest.get("format_version") == 1 or manifest.get("rating") is not None


def version_of(manifest: dict) -> str:
    """Short, stable model version: 12 hex digits of a sha256 over both weight files'
    checksums (the ranker's alone when there is no rating model)."""
    checksums = manifest["checksums"]
    joined = checksums.get(WEIGHTS, "") + checksums[RANKER_WEIGHTS]
    return hashlib.sha256(joined.encode()).hexdigest()[:12]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
