"""Model versions on disk, and which one is current, in Redis so every replica agrees.

    STORE/{version}/           a published artifact, copied whole (version = its model_version)
    STORE/{version}/published.json   {"version", "published_at", "created_at", "metrics"}

    {PREFIX}:model             hash: version, previous, activated_at (Unix seconds)

Publishing verifies the artifact (checksums, shapes) before anything is copied and lands
it with one rename, so a half-copied version is never listed. Activation checks that the
version loads, then sets the pointer and appends an `activate` event in one transaction:
every serving process loads it beside the one it serves and swaps. Activating the
previous version is the rollback.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from models.manifest import ArtifactError, read_manifest, version_of
from service.events import ACTIVATE, EventLog
from service.keys import Keys
from service.redis_client import Client

if TYPE_CHECKING:
    from models.artifact import Artifact

PUBLISHED = "published.json"


@dataclass(frozen=True)
class Published:
    version: str
    published_at: float
    created_at: str
    metrics: dict


@dataclass(frozen=True)
class Pointer:
    version: str | None
    previous: str | None
    activated_at: float | None


class ModelStore:
    """The folder of published versions."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def folder(self, version: str) -> Path:
        return self.root / version

    def publish(self, artifact_dir: Path) -> tuple[str, bool]:
        """Verifies and copies an artifact; (its version, False when already published)."""
        from models.artifact import load_artifact  # torch: only publishing loads the models

        artifact = load_artifact(artifact_dir)
        target = self.folder(artifact.version)
        if (target / PUBLISHED).exists():
            return artifact.version, False
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".publishing-", dir=self.root))
        try:
            for path in Path(artifact_dir).iterdir():
                if path.is_file():
                    shutil.copy2(path, staging / path.name)
            record = {
                "version": artifact.version,
                "published_at": time.time(),
                "created_at": artifact.manifest.get("created_at", ""),
                "metrics": artifact.manifest.get("metrics", {}),
            }
            (staging / PUBLISHED).write_text(json.dumps(record, indent=2))
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return artifact.version, True

    def verify(self, version: str) -> None:
        """Published, whole (format and checksums) and what its name says, without loading
        torch: what `because models activate` checks before it moves the pointer."""
        folder = self.folder(version)
        if not (folder / PUBLISHED).exists():
            raise ArtifactError(f"no version {version!r} published in {self.root}")
        found = version_of(read_manifest(folder))
        if found != version:
            raise ArtifactError(f"{folder} holds model {found}, not {version}")

    def load(self, version: str) -> Artifact:
        """The version's artifact, verified; ArtifactError when missing or damaged."""
        from models.artifact import load_artifact

        folder = self.folder(version)
        if not (folder / PUBLISHED).exists():
            raise ArtifactError(f"no version {version!r} published in {self.root}")
        artifact = load_artifact(folder)
        if artifact.version != version:
            raise ArtifactError(f"{folder} holds model {artifact.version}, not {version}")
        return artifact

    def versions(self) -> list[Published]:
        """Every published version, oldest first."""
        found = []
        for record in sorted(self.root.glob(f"*/{PUBLISHED}")):
            data = json.loads(record.read_text())
            found.append(Published(data["version"], data["published_at"],
                                   data.get("created_at", ""), data.get("metrics", {})))
        return sorted(found, key=lambda p: p.published_at)


class ModelPointer:
    """Which version is current, shared by every process through Redis."""

    def __init__(self, client: Client, keys: Keys, events: EventLog):
        self._client = client
        self._events = events
        self.key = keys.model

    async def read(self) -> Pointer:
        raw = {k.decode(): v.decode() for k, v in (await self._client.hgetall(self.key)).items()}
        activated = raw.get("activated_at")
        return Pointer(raw.get("version"), raw.get("previous") or None,
                       float(activated) if activated else None)

    async def activate(self, version: str) -> Pointer:
        """Makes `version` current and announces it; the old current becomes `previous`."""
        old = await self.read()
        previous = old.version if old.version != version else old.previous
        now = time.time()
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hset(self.key, mapping={"version": version, "previous": previous or "",
                                         "activated_at": str(now)})
            self._events.append_to(pipe, ACTIVATE, version=version)
            await pipe.execute()
        return Pointer(version, previous, now)
