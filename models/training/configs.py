"""Command-line overrides of the frozen training configs."""

from __future__ import annotations

from dataclasses import replace
from typing import TypeVar

Config = TypeVar("Config")


def given(config: Config, **overrides: object) -> Config:
    """A copy of `config` with the fields whose override is not None replaced."""
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})  # type: ignore[type-var]
