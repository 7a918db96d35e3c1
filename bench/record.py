"""Where and when a benchmark ran: every results line carries date, machine, commit and the
versions of the packages that produced it."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

RESULTS_DIR = Path(__file__).parent / "results"
# The packages whose versions can move a figure: ours and the peers' libraries.
PACKAGES = ("torch", "numpy", "scipy", "scikit-surprise", "implicit", "faiss-cpu")


def provenance() -> dict[str, str]:
    import torch

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {len(os.sched_getaffinity(0))} cpus",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "commit": _commit(),
        "packages": _versions(),
    }


def append_result(name: str, record: dict, started: dict[str, str] | None = None) -> Path:
    """Appends {provenance, record} as one JSON line to bench/results/<name>.jsonl.

    started: provenance() taken when the run began; a long run should pass it, so the
    line names the commit that ran rather than whatever HEAD is when it ends.
    """
    path = RESULTS_DIR / f"{name}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(json.dumps({**(started or provenance()), **record}) + "\n")
    return path


def _versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")
