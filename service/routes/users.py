"""User histories, explanations and home-page carousels."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from service.deps import ItemIdQuery, KnownQuery, ReadAccess, RecommenderDep, UserId, WriteAccess
from service.http_errors import ERROR_RESPONSES
from service.routes.render import ranked_items
from service.schemas import (
    Anchor,
    CarouselResponse,
    CarouselRow,
    ExplanationResponse,
    RatingOut,
    RatingsPost,
    RatingsStored,
    UserRatings,
)

router = APIRouter(
    prefix="/v1/users", tags=["users"], dependencies=[KnownQuery], responses=ERROR_RESPONSES
)


@router.post("/{user_id}/ratings", response_model=RatingsStored, dependencies=[WriteAccess])
async def post_ratings(user_id: UserId, body: RatingsPost, rec: RecommenderDep) -> RatingsStored:
    """Appends ratings; re-rating an item replaces it. All or nothing: one bad entry
    rejects the batch (422/413) and nothing is stored."""
    ratings = rec.validate_ratings(body.ratings)
    size = await rec.store.add(user_id, ratings)
    return RatingsStored(user_id=user_id, stored=len(ratings), history_size=size)


@router.get("/{user_id}/ratings", response_model=UserRatings, dependencies=[ReadAccess])
async def get_ratings(user_id: UserId, rec: RecommenderDep) -> UserRatings:
    """The history, newest first; a user never seen has an empty one."""
    history = await rec.store.read(user_id)
    ratings = [
        RatingOut(item_id=r.item_id, rating=r.rating, timestamp=r.timestamp)
        for r in reversed(history)
    ]
    return UserRatings(user_id=user_id, ratings=ratings, history_size=len(ratings))


@router.delete("/{user_id}", status_code=204, dependencies=[WriteAccess])
async def delete_user(user_id: UserId, rec: RecommenderDep) -> Response:
    await rec.store.delete(user_id)
    return Response(status_code=204)


@router.get(
    "/{user_id}/explanations", response_model=ExplanationResponse, dependencies=[ReadAccess]
)
async def explanation(
    user_id: UserId,
    rec: RecommenderDep,
    item_id: ItemIdQuery,
    k: Annotated[int, Query(ge=1)] = 5,
) -> ExplanationResponse:
    """Why this user gets this prediction: history items by how much each raises it."""
    history = await rec.store.read(user_id)
    explained = await rec.explain(history, item_id, k)
    cold = not explained.because
    return ExplanationResponse(
        user_id=user_id,
        item_id=item_id,
        predicted_rating=explained.predicted_rating,
        cold_start=cold,
        because=explained.because,
        model_version=rec.version,
        note=(
            "no rated items the model knows: this is the default-user prediction, "
            "the same for every new user"
        )
        if cold
        else None,
    )


@router.get(
    "/{user_id}/because-you-watched", response_model=CarouselResponse, dependencies=[ReadAccess]
)
async def because_you_watched(
    user_id: UserId,
    rec: RecommenderDep,
    rows: Annotated[int, Query(ge=1, le=20)] = 3,
    k: Annotated[int, Query(ge=1, le=50)] = 10,
) -> CarouselResponse:
    history = await rec.store.read(user_id)
    carousels = await rec.carousels(history, rows, k)
    return CarouselResponse(
        user_id=user_id,
        rows=[
            CarouselRow(
                anchor=Anchor(
                    item_id=a.item_id,
                    title=rec.artifact.catalogue.title(a.item_id),
                    rating=a.rating,
                ),
                items=ranked_items(rec, items),
            )
            for a, items in carousels
        ],
        model_version=rec.version,
    )
