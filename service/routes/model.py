"""The served model version."""

from __future__ import annotations

from fastapi import APIRouter

from service.deps import KnownQuery, ReadAccess, RecommenderDep
from service.http_errors import ERROR_RESPONSES
from service.schemas import ModelInfo, RatingScaleInfo

router = APIRouter(
    prefix="/v1", tags=["model"], dependencies=[KnownQuery, ReadAccess], responses=ERROR_RESPONSES
)


@router.get("/model", response_model=ModelInfo)
async def model(rec: RecommenderDep) -> ModelInfo:
    """Which version this process serves, the one it keeps for rollback, when it was
    activated, how many items it was trained on and has folded in, why the last
    activation was refused (null when it was not), the rating scale posted ratings must
    lie in, and whether the model predicts ratings."""
    state = rec.model_state()
    scale = state.scale
    return ModelInfo(
        version=state.version, previous=state.previous, activated_at=state.activated_at,
        items_trained=state.items_trained, items_folded=state.items_folded,
        last_error=state.last_error,
        rating_scale=RatingScaleInfo(low=scale.low, high=scale.high, step=scale.step),
        rating_head=state.rating_head,
    )
