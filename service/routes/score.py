"""Scoring and ranking for a stored user or an inline (what-if, nothing stored) history."""

from __future__ import annotations

from fastapi import APIRouter

from service.deps import KnownQuery, ReadAccess, RecommenderDep
from service.http_errors import ERROR_RESPONSES
from service.routes.render import ranked_items
from service.schemas import ItemScore, RankRequest, RankResponse, ScoreRequest, ScoreResponse

router = APIRouter(
    prefix="/v1", tags=["ranking"], dependencies=[KnownQuery, ReadAccess], responses=ERROR_RESPONSES
)


@router.post("/score", response_model=ScoreResponse)
async def score(body: ScoreRequest, rec: RecommenderDep) -> ScoreResponse:
    ratings = await rec.ratings_for(body.user_id, body.ratings)
    predicted = await rec.score(ratings, body.item_ids)
    return ScoreResponse(
        scores=[
            ItemScore(item_id=i, predicted_rating=float(p))
            for i, p in zip(body.item_ids, predicted, strict=True)
        ],
        cold_start=rec.is_cold_start(ratings),
        model_version=rec.version,
    )


@router.post("/rank", response_model=RankResponse)
async def rank(body: RankRequest, rec: RecommenderDep) -> RankResponse:
    """Top k items. Without `candidates`, the whole catalogue (README, Retrieval)."""
    ratings = await rec.ratings_for(body.user_id, body.ratings)
    ranked = await rec.rank(
        ratings, body.candidates, body.k, body.exclude_rated, body.explain, body.order
    )
    return RankResponse(
        items=ranked_items(rec, ranked),
        order=body.order,
        cold_start=rec.is_cold_start(ratings),
        model_version=rec.version,
    )
