"""The `because` command wires its flags through to what it runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import uvicorn

from because.cli import main


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


def test_scoring_threads_leave_the_event_loop_a_core(monkeypatch: pytest.MonkeyPatch) -> None:
    from service.settings import Settings

    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert Settings().scoring_threads == 7
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert Settings().scoring_threads == 1
    assert Settings(torch_threads=2).scoring_threads == 2


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
                 "--dim", "8", "--ranker-objective", "sampled", "--ranker-hops", "1",
                 "--ranker-epochs", "2",
                 "--no-progress"]) == 0
    assert (out / "manifest.json").is_file() and (out / "ranker.safetensors").is_file()
    ranker = json.loads((out / "manifest.json").read_text())["ranker_train_config"]
    assert ranker["objective"] == "sampled" and ranker["hops"] == 1
    assert ranker["max_epochs"] == 2
    capsys.readouterr()
    assert main(["evaluate", "--artifact", str(out), "--test", str(ratings), "--json"]) == 0
    report = capsys.readouterr().out
    assert '"rmse"' in report and '"n": ' in report
