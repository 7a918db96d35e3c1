"""The container files, checked for what breaks `docker compose up` on a clean clone: our
machines have no container engine, so these are read, not run (README, "Deploying")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
ONE_SHOT = {"setup", "redis-cluster"}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_says_what_happens_when_it_stops(name: str) -> None:
    expected = "no" if name in ONE_SHOT else "unless-stopped"
    assert SERVICES[name].get("restart") == expected


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_mounts_are_named_volumes_or_files_of_the_repository(name: str) -> None:
    """A bind mount of something a clean clone lacks (var/artifacts, var/api-keys) fails."""
    for mount in SERVICES[name].get("volumes", []):
        source = mount.split(":")[0]
        if source.startswith("."):
            assert (ROOT / source).exists(), f"{name} mounts {source}, absent from a clone"
        else:
            assert source in COMPOSE["volumes"], f"{name} mounts an undeclared volume {source}"
    assert "secrets" not in COMPOSE or all(
        (ROOT / s["file"]).exists() for s in COMPOSE["secrets"].values() if "file" in s
    )


def test_replicas_wait_for_the_one_shot_setup_which_trains_keys_and_imports() -> None:
    assert SERVICES["because"]["depends_on"]["setup"]["condition"] == (
        "service_completed_successfully"
    )
    script = "\n".join(SERVICES["setup"]["command"])
    for step in ("because data fetch", "because train", "api-keys", "because import-ratings"):
        assert step in script or step in str(SERVICES["setup"]["environment"]), step
    # The model exists already: nothing is trained again.
    assert 'if [ ! -f "$$BECAUSE_ARTIFACT/manifest.json" ]' in script


def test_the_image_installs_locked_dependencies_before_copying_the_sources() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    first = {
        what: next(i for i, line in enumerate(lines) if line.startswith(f"COPY {what}"))
        for what in ("requirements.lock", "service")
    }
    install = next(i for i, line in enumerate(lines) if "pip install -r requirements.lock" in line)
    assert first["requirements.lock"] < install < first["service"]


def test_build_arguments_named_in_the_dockerfile_exist() -> None:
    text = (ROOT / "Dockerfile").read_text()
    declared = set(re.findall(r"^ARG (\w+)", text, re.MULTILINE))
    named = set(re.findall(r"--build-arg (\w+)=", text))
    assert named <= declared, named - declared


def test_the_build_context_leaves_out_the_hosts_state() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "var"} <= set(ignored)
