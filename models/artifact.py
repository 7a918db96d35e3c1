"""The artifact: what training hands to the service. safetensors + JSON, never pickle.

    DIR/model.safetensors   rating scorer weights, the frozen item tables included
    DIR/ranker.safetensors  ranking scorer weights and its frozen item embeddings
    DIR/items.json          item catalogue in model order: [{"id", "title", "genres"}]
    DIR/manifest.json       format version, model and training config, checksums,
                            training-data fingerprint, validation metrics, created_at

Loading verifies the format version, both checksums and every tensor's shape, and says
which check failed; a service never starts on a damaged or mismatched artifact.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from models.data.table import Catalogue, IdMap
from models.network import AttentiveScorer, ScorerConfig
from models.ranker import AttentionRanker, RankerConfig

FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
RANKER_WEIGHTS = "ranker.safetensors"
ITEMS = "items.json"
MANIFEST = "manifest.json"


class ArtifactError(RuntimeError):
    """The artifact folder is missing, damaged or of another format."""


@dataclass(frozen=True)
class Artifact:
    """A loaded artifact: both scorers in eval mode, the item ids and the catalogue."""

    model: AttentiveScorer
    ranker: AttentionRanker
    item_ids: IdMap
    catalogue: Catalogue
    manifest: dict

    @cached_property
    def version(self) -> str:
        """Short, stable model version: 12 hex digits of a sha256 over both weight files."""
        checksums = self.manifest["checksums"]
        joined = checksums[WEIGHTS] + checksums[RANKER_WEIGHTS]
        return hashlib.sha256(joined.encode()).hexdigest()[:12]

    @property
    def max_context(self) -> int:
        """Newest history items the rating scorer uses."""
        return int(self.manifest["train_config"]["max_context"])

    @property
    def max_history(self) -> int:
        """Newest history items the ranker uses."""
        return int(self.manifest["ranker_train_config"]["max_history"])


def save_artifact(
    folder: Path,
    model: AttentiveScorer,
    ranker: AttentionRanker,
    item_ids: IdMap,
    catalogue: Catalogue,
    *,
    train_config: dict,
    ranker_train_config: dict,
    data_fingerprint: str,
    metrics: dict,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for module, name in ((model, WEIGHTS), (ranker, RANKER_WEIGHTS)):
        state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
        save_file(state, str(folder / name))
    items = [
        {"id": i, "title": catalogue.title(i), "genres": catalogue.genres.get(i, [])}
        for i in item_ids.ids
    ]
    (folder / ITEMS).write_text(json.dumps(items, ensure_ascii=False))
    manifest = {
        "format_version": FORMAT_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_config": model.config.to_dict(),
        "train_config": train_config,
        "ranker_config": ranker.config.to_dict(),
        "ranker_train_config": ranker_train_config,
        "n_items": len(item_ids),
        "data_fingerprint": data_fingerprint,
        "metrics": metrics,
        "checksums": {name: _sha256(folder / name) for name in (WEIGHTS, RANKER_WEIGHTS, ITEMS)},
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return folder


def load_artifact(folder: Path, device: torch.device | str = "cpu") -> Artifact:
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise ArtifactError(f"{manifest_path}: no manifest; is {folder} an artifact folder?")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{manifest_path}: not valid JSON ({exc})") from exc
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ArtifactError(
            f"{manifest_path}: format_version {version!r}, this build reads {FORMAT_VERSION}"
        )
    missing = {WEIGHTS, RANKER_WEIGHTS, ITEMS} - set(manifest.get("checksums", {}))
    if missing:
        raise ArtifactError(f"{manifest_path}: no checksum for {sorted(missing)}")
    for name, expected in manifest["checksums"].items():
        path = folder / name
        if not path.is_file():
            raise ArtifactError(f"{path}: missing")
        actual = _sha256(path)
        if actual != expected:
            raise ArtifactError(
                f"{path}: checksum mismatch (manifest {expected[:12]}, file {actual[:12]});"
                " the file is damaged or from another artifact"
            )
    config = ScorerConfig.from_dict(manifest["model_config"])
    items = json.loads((folder / ITEMS).read_text())
    if len(items) != config.n_items:
        raise ArtifactError(f"{folder / ITEMS}: {len(items)} items, model has {config.n_items}")
    model = AttentiveScorer(config)
    _load_weights(model, folder / WEIGHTS)
    ranker_config = RankerConfig.from_dict(manifest["ranker_config"])
    if ranker_config.n_items != config.n_items:
        raise ArtifactError(
            f"{manifest_path}: ranker has {ranker_config.n_items} items, scorer {config.n_items}"
        )
    ranker = AttentionRanker(
        ranker_config, torch.zeros(ranker_config.n_items, ranker_config.embedding_dim)
    )
    _load_weights(ranker, folder / RANKER_WEIGHTS)
    for module in (model, ranker):
        module.to(device).eval()
        for p in module.parameters():  # frozen: nothing at serving time updates them
            p.requires_grad_(False)
    item_ids = IdMap([row["id"] for row in items])
    catalogue = Catalogue(
        titles={row["id"]: row["title"] for row in items},
        genres={row["id"]: row["genres"] for row in items},
    )
    return Artifact(model, ranker, item_ids, catalogue, manifest)


def _load_weights(model: torch.nn.Module, path: Path) -> None:
    state = load_file(str(path))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ArtifactError(f"{path}: tensors missing {missing}, unexpected {unexpected}")
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise ArtifactError(
                f"{path}: tensor {name} has shape {tuple(tensor.shape)},"
                f" config expects {tuple(expected[name].shape)}"
            )
    model.load_state_dict(state)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
