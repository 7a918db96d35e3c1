"""The `because` command wires its flags through to what it runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import uvicorn

from because.cli import build_parser, main
from tests.helpers import RedisTarget


def test_serve_passes_host_port_and_artifact_to_uvicorn(
    monkeypatch: pytest.MonkeyPatch, artifact_dir: Path
) -> None:
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    monkeypatch.setenv("BECAUSE_TORCH_THREADS", "3")
    threads = torch.get_num_threads()
    try:
        assert main(["serve", "--artifact", str(artifact_dir), "--port", "8123"]) == 0
        assert torch.get_num_threads() == 3  # the serving process's scoring threads
    finally:
        torch.set_num_threads(threads)
    [(app, options)] = calls
    assert options["host"] == "127.0.0.1" and options["port"] == 8123
    assert app.title and app.state is not None


@pytest.mark.slow
def test_serving_imports_no_training_code(artifact_dir: Path, tmp_path: Path) -> None:
    """`because serve` builds the app in a fresh interpreter without loading any module of
    models.training (nor the evaluation code and its baselines)."""
    script = (
        "import sys, uvicorn\n"
        "uvicorn.run = lambda app, **kw: None\n"
        "from because.cli import main\n"
        f"main(['serve', '--artifact', {str(artifact_dir)!r}])\n"
        "loaded = [m for m in sys.modules if m.startswith(('models.training', "
        "'models.evaluation'))]\n"
        "assert 'service.app' in sys.modules, 'serve did not build the app'\n"
        "print('training modules:', loaded)\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "training modules: []" in done.stdout


def test_scoring_threads_leave_the_event_loop_a_core(monkeypatch: pytest.MonkeyPatch) -> None:
    from service.settings import Settings

    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert Settings().scoring_threads == 7
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert Settings().scoring_threads == 1
    assert Settings(torch_threads=2).scoring_threads == 2


@pytest.mark.parametrize(("cores", "workers", "threads"),
                         [(8, 2, 3), (8, 3, 1), (8, 4, 1), (16, 4, 3), (2, 2, 1), (2, 3, 1)])
def test_workers_share_the_cores(monkeypatch: pytest.MonkeyPatch, cores: int, workers: int,
                                 threads: int) -> None:
    """Each worker keeps a core for its event loop and scores on the rest of its share, one
    thread at least: N x (threads + 1) stays within the cores wherever N <= cores / 2."""
    from service.settings import Settings

    monkeypatch.setattr("os.cpu_count", lambda: cores)
    assert Settings(workers=workers).scoring_threads == threads
    assert Settings(workers=workers, torch_threads=5).scoring_threads == 5


def test_serve_flags_reach_every_worker_through_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A spawned worker builds its settings from the environment: `worker_environment` of
    what the command line set gives back the same settings there."""
    from service import cli as service_cli
    from service.serving import worker_environment
    from service.settings import Settings

    for name in ("BECAUSE_WORKERS", "BECAUSE_ARTIFACT", "BECAUSE_STORE", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    args = build_parser().parse_args(
        ["serve", "--workers", "3", "--artifact", str(tmp_path / "a"), "--store",
         str(tmp_path / "s")])
    settings = service_cli._settings(args).model_copy(update={"redis_url": "redis://r:1/0"})
    for name, value in worker_environment(settings).items():
        monkeypatch.setenv(name, value)
    in_worker = Settings()
    assert in_worker == settings
    assert (in_worker.workers, in_worker.store) == (3, tmp_path / "s")


@pytest.mark.slow
def test_train_then_evaluate_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`because train` on a small CSV writes an artifact `because evaluate` can read."""
    ratings = tmp_path / "ratings.csv"
    rows = ["user_id,item_id,rating,timestamp"]
    for u in range(40):
        for i in range(12):
            if (u + i) % 3:
                rows.append(f"u{u},i{i},{1 + (u * i) % 5},{1000 + i}")
    ratings.write_text("\n".join(rows) + "\n")
    out = tmp_path / "artifact"
    assert main(["train", "--train", str(ratings), "--out", str(out), "--epochs", "2",
                 "--dim", "8", "--opinion-attention", "0.5", "--ranker-objective", "sampled",
                 "--ranker-hops", "1", "--ranker-epochs", "2",
                 "--no-progress"]) == 0
    assert (out / "manifest.json").is_file() and (out / "ranker.safetensors").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    ranker = manifest["ranking"]
    assert ranker["objective"] == "sampled" and ranker["model"]["hops"] == 1
    assert ranker["max_epochs"] == 2 and manifest["rating"]["model"]["dim"] == 8
    assert manifest["rating"]["model"]["opinion_attention"] == 0.5
    capsys.readouterr()
    assert main(["evaluate", "--artifact", str(out), "--test", str(ratings), "--json"]) == 0
    report = capsys.readouterr().out
    assert '"rmse"' in report and '"n": ' in report


def test_train_refuses_data_off_the_scale_and_a_bad_scale_saying_why(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    half = tmp_path / "half.csv"
    half.write_text("user_id,item_id,rating\nu,i,4.5\nu,j,0.5\n")
    assert main(["train", "--train", str(half), "--out", str(tmp_path / "a")]) == 2
    assert f"error: {half}:3: rating '0.5' is outside the scale 1..5" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--train", str(half), "--out", str(tmp_path / "a"),
              "--rating-scale", "0.5:5"])
    assert "expected LOW:HIGH:STEP, e.g. 1:5:1 or 0.5:5:0.5" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()


@pytest.mark.slow
def test_train_on_interactions_writes_the_ranking_model_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A file without a rating column trains the ranker alone; `evaluate` (RMSE) says it
    cannot measure such an artifact."""
    clicks = tmp_path / "clicks.csv"
    rows = ["user_id,item_id,timestamp"]
    rows += [f"u{u},i{i},{1000 + i}" for u in range(40) for i in range(12) if (u + i) % 3]
    clicks.write_text("\n".join(rows) + "\n")
    out = tmp_path / "artifact"
    assert main(["train", "--train", str(clicks), "--out", str(out), "--rating-scale",
                 "0.5:5:0.5", "--ranker-objective", "sampled", "--ranker-hops", "1",
                 "--ranker-epochs", "2", "--no-progress"]) == 0
    printed = capsys.readouterr()
    assert "no rating column: interactions" in printed.err
    assert "no rating model (interactions)" in printed.out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rating"] is None and not (out / "model.safetensors").exists()
    assert manifest["rating_scale"] == {"low": 0.5, "high": 5.0, "step": 0.5}
    assert main(["evaluate", "--artifact", str(out), "--test", str(clicks)]) == 2
    assert "trained on interactions" in capsys.readouterr().err


def test_activating_a_version_loads_no_torch(artifact_dir: Path, tmp_path: Path,
                                             redis_target: RedisTarget, key_prefix: str
                                             ) -> None:
    """`because models activate` checks the version whole (manifest, checksums) and moves
    the pointer without importing torch: on a busy serving host it costs a fraction of a
    second, not a model load (bench/swap_load.py)."""
    from service.model_store import ModelStore

    version, _ = ModelStore(tmp_path / "store").publish(artifact_dir)
    script = (
        "import os, sys\n"
        f"os.environ.update(REDIS_URL={redis_target.url!r}, BECAUSE_KEY_PREFIX={key_prefix!r},"
        f" BECAUSE_REDIS_CLUSTER={str(redis_target.cluster).lower()!r})\n"
        "from because.cli import main\n"
        f"main(['models', 'activate', {version!r}, '--store', {str(tmp_path / 'store')!r}])\n"
        "print('torch loaded:', 'torch' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert f"current: {version}" in done.stdout and "torch loaded: False" in done.stdout


class _Captured(Exception):
    pass


@pytest.mark.parametrize("preset", [None, "fast", "quality"])
def test_train_takes_the_recipe_of_its_preset_then_the_flags(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, preset: str | None
) -> None:
    from models.training import pipeline
    from models.training.configs import PRESETS
    from models.training.ranking import RankingTrainConfig
    from models.training.rating import RatingTrainConfig

    def capture(table, catalogue, folder, scale, rating, ranking, **kw):  # noqa: ANN001, ANN202
        raise _Captured(rating, ranking)

    monkeypatch.setattr(pipeline, "build_artifact", capture)
    ratings = tmp_path / "r.csv"
    ratings.write_text("user_id,item_id,rating\nu,a,5\nu,b,3\nv,a,4\n")
    args = ["train", "--train", str(ratings), "--out", str(tmp_path / "a"), "--seed", "7"]
    with pytest.raises(_Captured) as captured:
        main(args + ([] if preset is None else ["--preset", preset]))
    rating, ranking = captured.value.args
    expected = PRESETS[preset or "fast"]
    assert (rating.lr, rating.batch_size, ranking.lr) == (
        expected[0].lr, expected[0].batch_size, expected[1].lr)
    assert rating.seed == ranking.seed == 7  # a flag wins over the recipe
    if preset == "quality":
        assert (rating.lr, ranking.patience) == (RatingTrainConfig().lr,
                                                 RankingTrainConfig().patience)
    else:
        assert rating.lr > RatingTrainConfig().lr and ranking.patience == 2
