"""Typed access to the lifespan's resources and to validated path parameters."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from service.recommender import Recommender
from service.schemas import ID_PATTERN


def _recommender(request: Request) -> Recommender:
    return request.app.state.services.recommender


RecommenderDep = Annotated[Recommender, Depends(_recommender)]
UserId = Annotated[str, Path(min_length=1, max_length=128, pattern=ID_PATTERN)]
ItemIdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=ID_PATTERN)]
