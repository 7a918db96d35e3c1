"""Scoring and ranking for a stored user or an inline (what-if, nothing stored) history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from service import examples
from service.deps import KnownQuery, ReadAccess, RecommenderDep
from service.http_errors import ERROR_RESPONSES
from service.routes.render import new_ratings, ranked_items
from service.schemas import ItemScore, RankRequest, RankResponse, ScoreRequest, ScoreResponse

router = APIRouter(
    prefix="/v1", tags=["ranking"], dependencies=[KnownQuery, ReadAccess], responses=ERROR_RESPONSES
)


@router.post("/score", response_model=ScoreResponse)
async def score(
    body: Annotated[ScoreRequest, Body(openapi_examples=examples.SCORE)], rec: RecommenderDep
) -> ScoreResponse:
    """Predicted ratings of the given items for a stored user or an inline history."""
    inline = None if body.ratings is None else new_ratings(body.ratings)
    scored = await rec.score(body.user_id, inline, body.item_ids)
    return ScoreResponse(
        scores=[
            ItemScore(item_id=i, predicted_rating=float(p))
            for i, p in zip(body.item_ids, scored.predicted_ratings, strict=True)
        ],
        cold_start=scored.cold_start,
        model_version=scored.version,
    )


@router.post("/rank", response_model=RankResponse)
async def rank(
    body: Annotated[RankRequest, Body(openapi_examples=examples.RANK)], rec: RecommenderDep
) -> RankResponse:
    """Top k items. Without `candidates`, the whole catalogue (docs/architecture.md)."""
    inline = None if body.ratings is None else new_ratings(body.ratings)
    ranked = await rec.rank(
        body.user_id, inline, body.candidates, body.k, body.exclude_rated, body.explain,
        body.order,
    )
    return RankResponse(
        items=ranked_items(ranked.items),
        order=body.order,
        cold_start=ranked.cold_start,
        model_version=ranked.version,
    )
