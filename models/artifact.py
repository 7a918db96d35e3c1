"""The artifact: what training hands to the service. safetensors + JSON, never pickle.

    DIR/model.safetensors   rating model weights, its item tables included (absent from an
                            artifact trained on interactions alone: "rating": null)
    DIR/ranker.safetensors  ranking model weights, its frozen item embeddings and, for
                            catalogues up to 10,000 items, its item-to-item weights B
    DIR/items.json          item catalogue in model order: [{"id", "title", "genres"}]
    DIR/items.faiss         the retrieval index over the ranker's item embeddings, FAISS's
                            own format (optional: built at load when absent)
    DIR/neighbours.safetensors  each trained item's nearest items as the index finds them
                            (optional, written with the index: retrieval by lookup)
    DIR/manifest.json       format version, item count, rating scale, each model's training
                            config (its architecture nested in it as "model"), training-data
                            fingerprint, validation metrics, checksums, created_at

Loading verifies the format version and every checksum (`models.manifest`, which needs no
torch) and every tensor's shape, and says which check failed; a service never starts on a
damaged or mismatched artifact. Format 1 (both architectures stored twice, in a model and
a training config) still loads. An artifact trained on interactions without ratings holds
the ranking model alone (`rating_model` None): format 2 still, since an artifact with both
models is written and loaded exactly as before.
This module imports no training code: serving loads artifacts through it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

# FAISS reads and writes the retrieval index. A machine that only scores (the GPU
# benchmark's image) has none and loads artifacts without their index. Imported here,
# before torch, as it always was: imported after it, FAISS's OpenMP thread count also set
# torch's (tests/test_cli.py failed).
try:
    import faiss
except ImportError:
    faiss = None
import numpy as np
import torch
from safetensors.numpy import load_file as load_arrays
from safetensors.numpy import save_file as save_arrays
from safetensors.torch import load_file, save_file

from models.data.table import Catalogue, IdMap, RatingScale
from models.manifest import (
    FORMAT_VERSION,
    ITEM_INDEX,
    ITEM_NEIGHBOURS,
    ITEMS,
    MANIFEST,
    RANKER_WEIGHTS,
    WEIGHTS,
    ArtifactError,
    has_rating_model,
    read_manifest,
    sha256,
    version_of,
)
from models.networks.ranking import RankingModel, RankingModelConfig
from models.networks.rating import RatingModel, RatingModelConfig


@dataclass(frozen=True)
class Artifact:
    """A loaded artifact: both models in eval mode (the rating model None when trained on
    interactions alone), the item ids, the catalogue, and the retrieval index and each
    item's nearest neighbours ((N, k) int32) when training stored them."""

    rating_model: RatingModel | None
    ranking_model: RankingModel
    item_ids: IdMap
    catalogue: Catalogue
    manifest: dict
    item_index: faiss.Index | None = None
    item_neighbours: np.ndarray | None = None

    @cached_property
    def version(self) -> str:
        """Short, stable model version: 12 hex digits of a sha256 over both weight files."""
        return version_of(self.manifest)

    @property
    def scale(self) -> RatingScale:
        """The training data's rating scale (both models are built on it)."""
        return self.ranking_model.scale

    @property
    def data_fingerprint(self) -> str:
        """sha256 of the training ratings (`RatingTable.fingerprint`)."""
        return self.manifest.get("data", {}).get("fingerprint") or self.manifest[
            "data_fingerprint"
        ]

    @property
    def train_path(self) -> Path | None:
        """The ratings file training read, when it was recorded."""
        recorded = self.manifest.get("data", {}).get("train_path") or self.manifest.get(
            "train_config", {}
        ).get("train_path")
        return Path(recorded) if recorded else None


def save_artifact(
    folder: Path,
    rating_model: RatingModel | None,
    ranking_model: RankingModel,
    item_ids: IdMap,
    catalogue: Catalogue,
    *,
    rating_train_config: dict | None,
    ranking_train_config: dict,
    data: dict,
    metrics: dict,
    item_index: faiss.Index | None = None,
    item_neighbours: np.ndarray | None = None,
) -> Path:
    """Writes the four files (five with `item_index`, six with `item_neighbours`). The
    training configs are the trainers' `to_dict()`, each with its model's architecture
    nested as "model"; `data` holds the training data's fingerprint (and its path, when
    known). Without a rating model (interactions alone) there is no model.safetensors and
    "rating" is null."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = [(ranking_model, RANKER_WEIGHTS)]
    if rating_model is not None:
        weights.insert(0, (rating_model, WEIGHTS))
    else:
        (folder / WEIGHTS).unlink(missing_ok=True)  # an earlier artifact's, in this folder
    for module, name in weights:
        state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
        save_file(state, str(folder / name))
    items = [
        {"id": i, "title": catalogue.title(i), "genres": catalogue.genres.get(i, [])}
        for i in item_ids.ids
    ]
    (folder / ITEMS).write_text(json.dumps(items, ensure_ascii=False))
    files = [name for _, name in weights] + [ITEMS]
    if item_index is not None:
        from models.inference.item_index import write_index

        write_index(item_index, folder / ITEM_INDEX)
        files.append(ITEM_INDEX)
    if item_neighbours is not None:
        save_arrays({"neighbours": np.ascontiguousarray(item_neighbours, np.int32)},
                    str(folder / ITEM_NEIGHBOURS))
        files.append(ITEM_NEIGHBOURS)
    scale = ranking_model.scale
    manifest = {
        "format_version": FORMAT_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "n_items": len(item_ids),
        "rating_scale": {"low": scale.low, "high": scale.high, "step": scale.step},
        # Each architecture as the saved model has it (training may have set parts of it).
        "rating": None if rating_model is None or rating_train_config is None
        else {**rating_train_config, "model": rating_model.config.to_dict()},
        "ranking": {**ranking_train_config, "model": ranking_model.config.to_dict()},
        "data": data,
        "metrics": metrics,
        "checksums": {name: sha256(folder / name) for name in files},
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return folder


def load_artifact(folder: Path, device: torch.device | str = "cpu") -> Artifact:
    folder = Path(folder)
    manifest = read_manifest(folder)
    n_items, scale, rating_config, ranking_config = _model_configs(manifest, folder / MANIFEST)
    items = read_items(folder / ITEMS)
    if len(items) != n_items:
        raise ArtifactError(f"{folder / ITEMS}: {len(items)} items, the models have {n_items}")
    rating_model = None
    if rating_config is not None:
        rating_model = RatingModel(rating_config, n_items, scale)
        _load_weights(rating_model, load_file(str(folder / WEIGHTS)), folder / WEIGHTS)
    ranker_state = load_file(str(folder / RANKER_WEIGHTS))
    embeddings = ranker_state.get("item_embeddings")
    if embeddings is None or embeddings.shape[0] != n_items:
        shape = None if embeddings is None else tuple(embeddings.shape)
        raise ArtifactError(
            f"{folder / RANKER_WEIGHTS}: item_embeddings {shape}, the manifest has {n_items} items"
        )
    ranking_model = RankingModel(ranking_config, embeddings, scale)
    _load_weights(ranking_model, ranker_state, folder / RANKER_WEIGHTS)
    for module in (m for m in (rating_model, ranking_model) if m is not None):
        module.to(device).eval()
        for p in module.parameters():  # frozen: nothing at serving time updates them
            p.requires_grad_(False)
    catalogue = Catalogue(
        titles={row["id"]: row["title"] for row in items},
        genres={row["id"]: row["genres"] for row in items},
    )
    item_index = None
    if ITEM_INDEX in manifest["checksums"] and faiss is not None:
        from models.inference.item_index import read_index

        item_index = read_index(folder / ITEM_INDEX)
        if item_index.ntotal != n_items:
            raise ArtifactError(
                f"{folder / ITEM_INDEX}: {item_index.ntotal} items, the models have {n_items}"
            )
    item_neighbours = None
    if ITEM_NEIGHBOURS in manifest["checksums"]:
        item_neighbours = load_arrays(str(folder / ITEM_NEIGHBOURS)).get("neighbours")
        if item_neighbours is None or item_neighbours.ndim != 2 or len(item_neighbours) != n_items:
            shape = None if item_neighbours is None else item_neighbours.shape
            raise ArtifactError(
                f"{folder / ITEM_NEIGHBOURS}: neighbours {shape}, the models have {n_items} items"
            )
    return Artifact(rating_model, ranking_model, IdMap([row["id"] for row in items]), catalogue,
                    manifest, item_index, item_neighbours)


_BLANK = re.compile(r"[ \t\n\r]*")  # JSON's whitespace


def read_items(path: Path) -> list[dict]:
    """items.json, decoded one entry at a time. One `json.loads` of a million-item list
    is a single C call that holds the interpreter for over a second, and a serving process
    loads a new version on a thread beside its event loop: every request would wait it out
    (bench/findings.md). Between entries the interpreter can switch to the loop."""
    text, decoder, items = path.read_text(), json.JSONDecoder(), []
    try:
        at = _BLANK.match(text).end()
        if text[at] != "[":
            raise ValueError(f"a list expected at character {at}")
        at = _BLANK.match(text, at + 1).end()
        empty = text[at] == "]"
        while not empty:
            item, at = decoder.raw_decode(text, at)
            items.append(item)
            at = _BLANK.match(text, at).end()
            if text[at] == "]":
                break
            if text[at] != ",":
                raise ValueError(f"',' or ']' expected at character {at}")
            at = _BLANK.match(text, at + 1).end()
        if text[_BLANK.match(text, at + 1).end():]:
            raise ValueError(f"text after the list at character {at + 1}")
    except (ValueError, IndexError) as error:  # JSONDecodeError is a ValueError
        raise ArtifactError(f"{path}: not a JSON list of items ({error})") from error
    return items


def _model_configs(
    manifest: dict, path: Path
) -> tuple[int, RatingScale, RatingModelConfig | None, RankingModelConfig]:
    """Item count, rating scale and both architectures (the rating model's None when there
    is none), from either format."""
    try:
        if manifest["format_version"] == 1:
            old, ranker = manifest["model_config"], manifest["ranker_config"]
            scale = RatingScale(old["rating_low"], old["rating_high"], old["rating_step"])
            rating = RatingModelConfig.from_dict(
                {name: old[name] for name in ("dim", "head", "biases", "implicit", "hidden",
                                              "dropout", "user_bias_reg")}
                | {"max_context": manifest["train_config"]["max_context"]}
            )
            ranking = RankingModelConfig.from_dict(
                {name: ranker[name] for name in ("width", "hops", "ratings", "output", "recency")}
                | {"max_history": manifest["ranker_train_config"]["max_history"]}
            )
            return int(old["n_items"]), scale, rating, ranking
        scale = RatingScale(**manifest["rating_scale"])
        rating = None
        if has_rating_model(manifest):
            rating = RatingModelConfig.from_dict(manifest["rating"]["model"])
        ranking = RankingModelConfig.from_dict(manifest["ranking"]["model"])
        return int(manifest["n_items"]), scale, rating, ranking
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(
            f"{path}: model configuration unreadable ({type(exc).__name__}: {exc});"
            " retrain with `because train`"
        ) from exc


def _load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
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


__all__ = ["FORMAT_VERSION", "Artifact", "ArtifactError", "load_artifact", "save_artifact"]
