"""Request and response bodies of API v1. Ids are strings; ratings are finite numbers.

Range checks that depend on the model (its rating scale, its items) or on settings (list
limits) happen in the recommender, so the messages can name the scale and the limit.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ID_PATTERN = r"^[A-Za-z0-9_.:@\-]+$"
# Characters are checked here; length against BECAUSE_MAX_ID_LENGTH in the recommender.
ItemId = Annotated[str, Field(min_length=1, pattern=ID_PATTERN)]


class RatingIn(BaseModel):
    """One rating as posted: timestamp in Unix seconds, server time when absent."""

    model_config = ConfigDict(extra="forbid")
    item_id: ItemId
    rating: float = Field(allow_inf_nan=False)
    timestamp: int | None = Field(default=None, ge=0)


class RatingOut(BaseModel):
    item_id: str
    rating: float
    timestamp: int


class RatingsPost(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ratings: list[RatingIn] = Field(min_length=1)


class RatingsStored(BaseModel):
    user_id: str
    stored: int
    history_size: int


class UserRatings(BaseModel):
    """A user's history, newest first."""

    user_id: str
    ratings: list[RatingOut]
    history_size: int


class _ForUser(BaseModel):
    """Either a stored user's history (`user_id`) or an inline, unstored one (`ratings`)."""

    model_config = ConfigDict(extra="forbid")
    user_id: str | None = Field(default=None, min_length=1, pattern=ID_PATTERN)
    ratings: list[RatingIn] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> _ForUser:
        if (self.user_id is None) == (self.ratings is None):
            raise ValueError("give exactly one of user_id (stored history) or ratings (inline)")
        return self


class ScoreRequest(_ForUser):
    item_ids: list[ItemId] = Field(min_length=1)


class ItemScore(BaseModel):
    item_id: str
    predicted_rating: float


class ScoreResponse(BaseModel):
    scores: list[ItemScore]
    cold_start: bool = Field(description="no usable history: the default-user prediction")
    model_version: str


class RankRequest(_ForUser):
    candidates: list[ItemId] | None = Field(default=None, min_length=1)
    k: int = Field(default=10, ge=1)
    exclude_rated: bool = True
    explain: bool = False
    order: Literal["recommended", "ranking", "rating"] = Field(
        default="recommended",
        description="recommended: what the user will pick and like (the ranker's logit "
        "plus the weighted predicted rating); ranking: what the user is likely to pick "
        "next (the ranker alone); rating: highest predicted rating first",
    )


class Because(BaseModel):
    """One history item behind a prediction: the user's rating of it, the model's attention
    weight on it, and how much the score drops when it is left out of the history (exact,
    not approximated): positive in `because`, negative in `despite`."""

    item_id: str
    title: str
    rating: float
    attention: float
    contribution: float


class RankedItem(BaseModel):
    item_id: str
    title: str
    score: float = Field(
        description="what the list is ordered by (comparable within one response only): "
        "the recommended score, the ranker's logit, or, with order=rating, the predicted "
        "rating"
    )
    predicted_rating: float
    because: list[Because] | None = Field(
        default=None, description="with explain: the history items that raise `score` most"
    )
    despite: list[Because] | None = Field(
        default=None, description="with explain: the history items that lower `score` most"
    )


class RankResponse(BaseModel):
    items: list[RankedItem]
    order: Literal["recommended", "ranking", "rating"]
    cold_start: bool
    model_version: str


class ExplanationResponse(BaseModel):
    user_id: str
    item_id: str
    predicted_rating: float
    cold_start: bool
    because: list[Because] = Field(description="history items that raise the prediction")
    despite: list[Because] = Field(description="history items that lower the prediction")
    note: str | None = None
    model_version: str


class Anchor(BaseModel):
    item_id: str
    title: str
    rating: float


class CarouselRow(BaseModel):
    anchor: Anchor
    items: list[RankedItem]


class CarouselResponse(BaseModel):
    user_id: str
    rows: list[CarouselRow]
    model_version: str


class Item(BaseModel):
    item_id: str
    title: str
    genres: list[str]


class SimilarItem(Item):
    similarity: float


class ItemPut(BaseModel):
    """A catalogue entry as a frontend writes it (`PUT /v1/items/{item_id}`)."""

    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=500)
    genres: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default=[], max_length=50
    )
    attributes: dict[str, str | int | float | bool | None] = Field(default={}, max_length=50)


class CatalogueItem(Item):
    """A catalogued item and how the served model knows it: trained in the artifact,
    folded in from its raters, placed from its genres alone, or not at all (yet)."""

    attributes: dict[str, str | int | float | bool | None]
    retired: bool
    embedded: Literal["trained", "folded", "attributes", "none"]
    model_version: str


class CataloguePage(BaseModel):
    items: list[Item]
    next_cursor: str | None


class ModelInfo(BaseModel):
    """The served model version (`because models activate` changes it on every process)."""

    version: str
    previous: str | None
    activated_at: float
    items_trained: int
    items_folded: int
    last_error: str | None


class SimilarResponse(BaseModel):
    item_id: str
    items: list[SimilarItem]
    model_version: str


class FieldProblem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    """Every error answer: a message saying what was wrong and what is accepted, or, for a
    request that does not fit the schema, one entry per bad field."""

    detail: str | list[FieldProblem]


class Readiness(BaseModel):
    status: Literal["ready", "starting", "unavailable"]
    cause: str | None = Field(default=None, description="why not ready")
    model_version: str | None = None
