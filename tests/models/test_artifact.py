"""A damaged or mismatched artifact is refused with a clear message; an artifact of format 1
still loads. (Saved == loaded is in test_model_contract.py, for both models.)"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from models.artifact import ArtifactError, load_artifact, read_items, save_artifact
from models.data.encoded import EncodedRatings
from models.data.synthetic import PlantedData
from models.inference.item_index import build_index, neighbour_table, normalised
from models.networks.rating import RatingModel
from models.training.ranking import RankingTrainResult
from models.training.rating import RatingTrainResult
from tests.conftest import save_planted_artifact


@pytest.fixture
def copy(artifact_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(artifact_dir, tmp_path / "artifact"))


def test_the_manifest_holds_each_configuration_once(artifact_dir: Path) -> None:
    manifest = json.loads((artifact_dir / "manifest.json").read_text())
    assert manifest["rating"]["model"]["dim"] == 16  # the architecture, nested once
    assert "dim" not in manifest["rating"] and "width" not in manifest["ranking"]
    assert manifest["rating_scale"] == {"low": 1.0, "high": 5.0, "step": 1.0}
    loaded = load_artifact(artifact_dir)
    assert loaded.rating_model.config.max_context == 512  # serving caps: the model configs
    assert loaded.ranking_model.config.max_history == 64
    assert loaded.catalogue.title(loaded.item_ids.ids[0])


@pytest.fixture
def without_the_opinion_lean(
    tmp_path: Path, planted: PlantedData, encoded: EncodedRatings, trained: RatingTrainResult,
    ranked: RankingTrainResult,
) -> Path:
    """The fixture's models as format 1 could hold them: the rating model without its
    opinion lean (`opinion_attention`, which came later) and its slope, and without item
    offsets or item attributes, with one attention head and no departure shrinkage
    (later still)."""
    model = trained.model
    plain = RatingModel(replace(model.config, opinion_attention=0.0, item_offsets=False,
                                attributes=(), attribute_ridge=None, attention_heads=1,
                                departure_shrink=None),
                        model.n_items, model.scale)
    later = {"opinion_slope", "item_offsets", "item_attributes"}
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if k not in later})
    return save_planted_artifact(tmp_path / "current", plain.eval(), planted, encoded, trained,
                                 ranked)


def test_an_artifact_of_format_1_still_loads(without_the_opinion_lean: Path, tmp_path: Path
                                             ) -> None:
    """Format 1 stored each architecture twice (model and training config) with the rating
    scale in each; the same weights under such a manifest give the same model."""
    artifact_dir = without_the_opinion_lean
    copy = Path(shutil.copytree(artifact_dir, tmp_path / "artifact"))
    manifest = json.loads((copy / "manifest.json").read_text())
    rating, ranking, scale = manifest["rating"], manifest["ranking"], manifest["rating_scale"]
    old = {
        "format_version": 1,
        "model_config": {
            **{k: v for k, v in rating["model"].items() if k != "attention_heads"},
            "n_items": manifest["n_items"],
            "rating_low": scale["low"], "rating_high": scale["high"], "rating_step": scale["step"],
        },
        "train_config": {"max_context": rating["model"]["max_context"]},
        "ranker_config": {k: v for k, v in ranking["model"].items() if k != "max_history"},
        "ranker_train_config": {"max_history": ranking["model"]["max_history"]},
        "data_fingerprint": manifest["data"]["fingerprint"],
        "metrics": manifest["metrics"],
        "checksums": manifest["checksums"],
    }
    (copy / "manifest.json").write_text(json.dumps(old))
    loaded, current = load_artifact(copy), load_artifact(artifact_dir)
    assert loaded.rating_model.config == current.rating_model.config
    assert loaded.ranking_model.config == current.ranking_model.config
    assert loaded.scale == current.scale and loaded.version == current.version
    assert loaded.data_fingerprint == current.data_fingerprint


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
    with pytest.raises(ArtifactError, match="format_version 99.*retrain"):
        load_artifact(copy)


def test_shapes_that_disagree_with_the_config_are_refused(copy: Path) -> None:
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["rating"]["model"]["dim"] += 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="shape"):
        load_artifact(copy)


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no manifest"):
        load_artifact(tmp_path / "nowhere")


@pytest.mark.parametrize("damaged", ["items.faiss", "neighbours.safetensors"])
def test_the_retrieval_index_and_neighbours_travel_in_the_artifact_and_are_checked(
    artifact_dir: Path, tmp_path: Path, damaged: str
) -> None:
    artifact = load_artifact(artifact_dir)
    assert artifact.item_index is None  # written without one: the service builds it
    assert artifact.item_neighbours is None
    vectors = normalised(artifact.ranking_model.item_embeddings.numpy())
    index = build_index(vectors)
    folder = save_artifact(
        tmp_path / "indexed", artifact.rating_model, artifact.ranking_model, artifact.item_ids,
        artifact.catalogue, rating_train_config=artifact.manifest["rating"],
        ranking_train_config=artifact.manifest["ranking"], data=artifact.manifest["data"],
        metrics={}, item_index=index, item_neighbours=neighbour_table(index, vectors, k=7),
    )
    loaded = load_artifact(folder)
    assert loaded.item_index is not None and loaded.item_index.ntotal == len(artifact.item_ids)
    _, found = loaded.item_index.search(vectors[:5], 7)
    assert found[:, 0].tolist() == [0, 1, 2, 3, 4]
    assert loaded.item_neighbours is not None and loaded.item_neighbours.dtype == np.int32
    assert np.array_equal(loaded.item_neighbours[:5], found)
    with (folder / damaged).open("r+b") as f:
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([last[0] ^ 1]))
    with pytest.raises(ArtifactError, match=f"{damaged}: checksum mismatch"):
        load_artifact(folder)


@pytest.mark.parametrize("items", [
    [],
    [{"id": "1", "title": "Toy Story (1995)", "genres": ["Animation", "Children's"]}],
    [{"id": "a,b", "title": 'Say "], [{" twice', "genres": []},
     {"id": "ü", "title": "Amélie\n\t", "genres": ["Comedy"]}, {"id": "3", "title": None}],
])
def test_the_item_list_reads_as_json_loads_does(items: list, tmp_path: Path) -> None:
    for text in (json.dumps(items, ensure_ascii=False), json.dumps(items, indent=2)):
        (tmp_path / "items.json").write_text(text)
        assert read_items(tmp_path / "items.json") == json.loads(text) == items


@pytest.mark.parametrize("text", ['{"id": "1"}', '[{"id": "1"},]', '[{"id": "1"}', "",
                                  '[{"id": "1"} {"id": "2"}]', '[{"id": "1"}] []'])
def test_an_item_list_that_is_not_a_json_list_is_refused(text: str, tmp_path: Path) -> None:
    (tmp_path / "items.json").write_text(text)
    with pytest.raises(ArtifactError, match="not a JSON list of items"):
        read_items(tmp_path / "items.json")


def test_item_attributes_travel_in_the_artifact(
    tmp_path: Path, planted: PlantedData, encoded: EncodedRatings, trained: RatingTrainResult,
    ranked: RankingTrainResult,
) -> None:
    """The history offset's attribute weights need each item's attributes at serving: they
    are saved with the weights, and their vocabulary and ridge with the configuration."""
    model = trained.model
    config = replace(model.config, attributes=("comedy", "war"), attribute_ridge=30.0,
                     history_offset_shrink=3.0)
    attributed = RatingModel(config, model.n_items, model.scale)
    rng = np.random.default_rng(0)
    attributes = torch.from_numpy((rng.random((model.n_items, 2)) < 0.3).astype(np.float32))
    attributed.load_state_dict({**model.state_dict(), "item_attributes": attributes})
    folder = save_planted_artifact(tmp_path / "attributed", attributed.eval(), planted,
                                   encoded, trained, ranked)
    loaded = load_artifact(folder).rating_model
    assert loaded.config == config
    torch.testing.assert_close(loaded.item_attributes, attributes)
