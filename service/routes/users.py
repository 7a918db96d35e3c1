"""User histories, explanations and home-page carousels."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Response

from service import examples
from service.deps import ItemIdQuery, KnownQuery, ReadAccess, RecommenderDep, UserId, WriteAccess
from service.http_errors import ERROR_RESPONSES
from service.routes.render import because, new_ratings, ranked_items
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
async def post_ratings(
    user_id: UserId,
    body: Annotated[RatingsPost, Body(openapi_examples=examples.RATINGS_POST)],
    rec: RecommenderDep,
) -> RatingsStored:
    """Appends ratings; re-rating an item replaces it. All or nothing: one bad entry
    rejects the batch (422/413) and nothing is stored."""
    stored, size = await rec.add_ratings(user_id, new_ratings(body.ratings))
    return RatingsStored(user_id=user_id, stored=stored, history_size=size)


@router.get("/{user_id}/ratings", response_model=UserRatings, dependencies=[ReadAccess])
async def get_ratings(user_id: UserId, rec: RecommenderDep) -> UserRatings:
    """The history, newest first; a user never seen has an empty one."""
    history = await rec.ratings(user_id)
    ratings = [
        RatingOut(item_id=r.item_id, rating=r.rating, timestamp=r.timestamp)
        for r in reversed(history)
    ]
    return UserRatings(user_id=user_id, ratings=ratings, history_size=len(ratings))


@router.delete("/{user_id}", status_code=204, dependencies=[WriteAccess])
async def delete_user(user_id: UserId, rec: RecommenderDep) -> Response:
    await rec.delete_user(user_id)
    return Response(status_code=204)


@router.get(
    "/{user_id}/explanations", response_model=ExplanationResponse, dependencies=[ReadAccess]
)
async def explanation(
    user_id: UserId,
    rec: RecommenderDep,
    item_id: ItemIdQuery,
    k: Annotated[int, Query(ge=1, description="history items in `because` and in `despite` "
                            "each: 1 to BECAUSE_MAX_K (default 100)")] = 5,
) -> ExplanationResponse:
    """Why this user gets this prediction: history items by how much each raises it."""
    explained = await rec.explain(user_id, item_id, k)
    return ExplanationResponse(
        user_id=user_id,
        item_id=item_id,
        predicted_rating=explained.predicted_rating,
        cold_start=explained.cold_start,
        because=because(explained.reasons.because),
        despite=because(explained.reasons.despite),
        model_version=explained.version,
        note=(
            "no rated items the model knows: this is the default-user prediction, "
            "the same for every new user"
        )
        if explained.cold_start
        else None,
    )


@router.get(
    "/{user_id}/because-you-watched", response_model=CarouselResponse, dependencies=[ReadAccess]
)
async def because_you_watched(
    user_id: UserId,
    rec: RecommenderDep,
    rows: Annotated[int, Query(ge=1, le=20, description="rows, one per liked item")] = 3,
    k: Annotated[int, Query(ge=1, le=50, description="items per row")] = 10,
) -> CarouselResponse:
    """Home-page rows "because you watched X", newest X first: X an item the user liked
    (rated 4 or more on 1..5, three quarters up any scale), each row the recommendations X
    pushes up most, none repeated across rows. Fewer or shorter rows when the history
    allows no more."""
    carousels = await rec.carousels(user_id, rows, k)
    return CarouselResponse(
        user_id=user_id,
        rows=[
            CarouselRow(
                anchor=Anchor(
                    item_id=c.anchor.item_id, title=c.anchor.title, rating=c.anchor_rating
                ),
                items=ranked_items(c.items),
            )
            for c in carousels.rows
        ],
        model_version=carousels.version,
    )
