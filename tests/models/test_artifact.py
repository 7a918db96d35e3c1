"""Saved == loaded, and a damaged or mismatched artifact is refused with a clear message."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from models.artifact import ArtifactError, load_artifact
from models.inference import History, predict_ratings
from models.train import TrainResult


@pytest.fixture
def copy(artifact_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(artifact_dir, tmp_path / "artifact"))


def test_round_trip_gives_identical_predictions(artifact_dir: Path, trained: TrainResult) -> None:
    loaded = load_artifact(artifact_dir)
    history = History(np.array([0, 3, 5, 9]), np.array([5, 1, 4, 2], np.float32))
    targets = [np.arange(len(trained.item_ids))]
    [before] = predict_ratings(trained.model, [history], targets, 512)
    [after] = predict_ratings(loaded.model, [history], targets, 512)
    np.testing.assert_array_equal(before, after)
    assert loaded.item_ids.ids == trained.item_ids.ids
    assert loaded.catalogue.title(loaded.item_ids.ids[0])
    assert not any(p.requires_grad for p in loaded.model.parameters())


def test_a_flipped_byte_is_refused(copy: Path) -> None:
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="model.safetensors: checksum mismatch"):
        load_artifact(copy)


def test_another_format_version_is_refused(copy: Path) -> None:
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["format_version"] = 99
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="format_version 99"):
        load_artifact(copy)


def test_shapes_that_disagree_with_the_config_are_refused(copy: Path) -> None:
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["model_config"]["dim"] += 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="shape"):
        load_artifact(copy)


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no manifest"):
        load_artifact(tmp_path / "nowhere")
