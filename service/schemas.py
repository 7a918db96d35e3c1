"""Request and response bodies of API v1. Ids are strings; ratings are finite numbers.
Every model carries examples (`service.examples`: MovieLens-100K ids and titles) for /docs.

The schemas check what never changes: types, id characters, fixed lengths and counts.
What depends on the settings or on the served model is checked by `service.validation`
and the recommender, whose 422 names the limit or the scale:

    limit                                      applies to
    BECAUSE_MAX_ID_LENGTH (default 128)        every user and item id
    BECAUSE_MAX_RATINGS_PER_REQUEST (500)      `ratings`, posted or inline
    BECAUSE_MAX_ITEMS_PER_REQUEST (1000)       score's `item_ids`
    BECAUSE_MAX_CANDIDATES (10000)             rank's `candidates`
    BECAUSE_MAX_K (100)                        rank's `k`, the `k` of explanations and
                                               similar items, the catalogue's `limit`
    BECAUSE_MAX_FUTURE_SKEW_S (86400)          a rating's `timestamp`: at most now + this
    the served model's rating scale            a rating: low..high (GET /v1/model)
    the catalogue and the served model         item ids rated, scored or ranked

The app writes the configured values of these settings, and the served model's scale,
into its OpenAPI schema (`service.openapi`), so /docs shows the limits of the deployment
it documents.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service import examples
from service.examples import values

ID_PATTERN = r"^[A-Za-z0-9_.:@\-]+$"
ID_RULE = "1 to BECAUSE_MAX_ID_LENGTH (default 128) characters of A-Z a-z 0-9 _ . : @ -"
# Characters are checked here; length against BECAUSE_MAX_ID_LENGTH in the recommender.
ItemId = Annotated[
    str, Field(min_length=1, pattern=ID_PATTERN, description=f"an item id: {ID_RULE}")
]
SCALE = ("on the served model's rating scale: `rating_scale.low` to `rating_scale.high` of "
         "GET /v1/model (1 to 5 for the MovieLens demo)")
VERSION = "the model version that answered: 12 hex digits of its weights' sha256"


def _examples(found: list) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": found})


class RatingIn(BaseModel):
    """One rating as posted: timestamp in Unix seconds, server time when absent."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": examples.RATING_IN})
    item_id: ItemId = Field(
        description=f"a catalogued item (GET /v1/items/{{item_id}}), {ID_RULE}; ids not in "
        "the catalogue: 422, each named"
    )
    rating: float = Field(
        allow_inf_nan=False,
        description=f"a finite number {SCALE}, which a running service's schema states as "
        "minimum and maximum; any value in between is taken, the model learnt steps of "
        "`rating_scale.step`; off the scale: 422",
    )
    timestamp: int | None = Field(
        default=None, ge=0,
        description="Unix seconds; absent: server time; later than server time + "
        "BECAUSE_MAX_FUTURE_SKEW_S (default 86400): 422",
    )


class RatingOut(BaseModel):
    model_config = _examples(examples.RATING_OUT)
    item_id: str
    rating: float = Field(description=f"as posted, {SCALE}")
    timestamp: int = Field(description="Unix seconds")


class RatingsPost(BaseModel):
    model_config = ConfigDict(extra="forbid",
                              json_schema_extra={"examples": values(examples.RATINGS_POST)})
    ratings: list[RatingIn] = Field(
        min_length=1,
        description="1 to BECAUSE_MAX_RATINGS_PER_REQUEST (default 500) ratings, stored all "
        "or none; a rated item rated again is replaced",
    )


class RatingsStored(BaseModel):
    model_config = _examples(examples.RATINGS_STORED)
    user_id: str
    stored: int = Field(description="ratings this request stored")
    history_size: int = Field(description="ratings the user's history holds now (at most "
                              "BECAUSE_HISTORY_CAP, the newest kept)")


class UserRatings(BaseModel):
    """A user's history, newest first."""

    model_config = _examples(examples.USER_RATINGS)
    user_id: str
    ratings: list[RatingOut]
    history_size: int


# "Exactly one of user_id and ratings", the model validator of `_ForUser`, as JSON Schema:
# a null counts as absent, as it does for the validator.
ONE_SOURCE = [
    {"required": ["user_id"],
     "properties": {"user_id": {"type": "string"}, "ratings": {"type": "null"}}},
    {"required": ["ratings"],
     "properties": {"ratings": {"type": "array"}, "user_id": {"type": "null"}}},
]


class _ForUser(BaseModel):
    """Either a stored user's history (`user_id`) or an inline, unstored one (`ratings`)."""

    model_config = ConfigDict(extra="forbid")
    user_id: str | None = Field(
        default=None, min_length=1, pattern=ID_PATTERN,
        description=f"a stored user's history (a user never seen has an empty one), {ID_RULE}",
    )
    ratings: list[RatingIn] | None = Field(
        default=None,
        description="instead of user_id: a history used for this request only, nothing "
        "stored (at most BECAUSE_MAX_RATINGS_PER_REQUEST, default 500)",
    )

    @model_validator(mode="after")
    def _one_source(self) -> _ForUser:
        if (self.user_id is None) == (self.ratings is None):
            raise ValueError("give exactly one of user_id (stored history) or ratings (inline)")
        return self


class ScoreRequest(_ForUser):
    model_config = ConfigDict(
        json_schema_extra={"anyOf": ONE_SOURCE, "examples": values(examples.SCORE)}
    )
    item_ids: list[ItemId] = Field(
        min_length=1,
        description="items to score, answered in this order: 1 to "
        "BECAUSE_MAX_ITEMS_PER_REQUEST (default 1000), each one the served model embeds "
        "(else 422)",
    )


class ItemScore(BaseModel):
    model_config = _examples(examples.ITEM_SCORE)
    item_id: str
    predicted_rating: float = Field(description=f"the rating model's prediction, {SCALE}")


class ScoreResponse(BaseModel):
    model_config = _examples(examples.SCORE_RESPONSE)
    scores: list[ItemScore]
    cold_start: bool = Field(description="no usable history: the default-user prediction")
    model_version: str = Field(description=VERSION)


class RankRequest(_ForUser):
    model_config = ConfigDict(
        json_schema_extra={"anyOf": ONE_SOURCE, "examples": values(examples.RANK)}
    )
    candidates: list[ItemId] | None = Field(
        default=None, min_length=1,
        description="rank only these (1 to BECAUSE_MAX_CANDIDATES, default 10000; each one "
        "the served model embeds, else 422); absent: the whole catalogue",
    )
    k: int = Field(default=10, ge=1, description="items answered: 1 to BECAUSE_MAX_K "
                   "(default 100)")
    exclude_rated: bool = Field(default=True, description="leave out items the history holds")
    explain: bool = Field(default=False, description="with each item, the history items "
                          "behind its score (`because`, `despite`)")
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

    model_config = _examples(examples.BECAUSE + examples.DESPITE)
    item_id: str
    title: str
    rating: float = Field(description=f"the user's rating of it, {SCALE}")
    attention: float = Field(description="the model's attention weight on it, 0 to 1")
    contribution: float = Field(description="how much the score drops without it")


class RankedItem(BaseModel):
    model_config = _examples(examples.RANKED_ITEM)
    item_id: str
    title: str
    score: float = Field(
        description="what the list is ordered by (comparable within one response only): "
        "the recommended score, the ranker's logit, or, with order=rating, the predicted "
        "rating"
    )
    predicted_rating: float | None = Field(
        description=f"the rating model's prediction, {SCALE}; null from a model without a "
        "rating head (GET /v1/model: `rating_head`)"
    )
    because: list[Because] | None = Field(
        default=None, description="with explain: the history items that raise `score` most"
    )
    despite: list[Because] | None = Field(
        default=None, description="with explain: the history items that lower `score` most"
    )


class RankResponse(BaseModel):
    model_config = _examples(examples.RANK_RESPONSE)
    items: list[RankedItem]
    order: Literal["recommended", "ranking", "rating"]
    cold_start: bool = Field(description="no usable history: the default user's list")
    model_version: str = Field(description=VERSION)


class ExplanationResponse(BaseModel):
    model_config = _examples(examples.EXPLANATION)
    user_id: str
    item_id: str
    predicted_rating: float = Field(description=f"the rating model's prediction, {SCALE}")
    cold_start: bool
    because: list[Because] = Field(description="history items that raise the prediction")
    despite: list[Because] = Field(description="history items that lower the prediction")
    note: str | None = None
    model_version: str = Field(description=VERSION)


class Anchor(BaseModel):
    model_config = _examples(examples.ANCHOR)
    item_id: str
    title: str
    rating: float = Field(description=f"the user's rating of it, {SCALE}")


class CarouselRow(BaseModel):
    model_config = _examples(examples.CAROUSEL_ROW)
    anchor: Anchor = Field(description="X of \"because you watched X\": an item the user liked")
    items: list[RankedItem] = Field(description="recommendations X pushes up, best first")


class CarouselResponse(BaseModel):
    model_config = _examples(examples.CAROUSELS)
    user_id: str
    rows: list[CarouselRow]
    model_version: str = Field(description=VERSION)


class Item(BaseModel):
    model_config = _examples(examples.ITEM)
    item_id: str
    title: str
    genres: list[str]


class SimilarItem(Item):
    model_config = _examples(examples.SIMILAR_ITEM)
    similarity: float = Field(description="cosine similarity of the ranker's item embeddings")


class ItemPut(BaseModel):
    """A catalogue entry as a frontend writes it (`PUT /v1/items/{item_id}`)."""

    model_config = ConfigDict(extra="forbid",
                              json_schema_extra={"examples": values(examples.ITEM_PUT)})
    title: str = Field(min_length=1, max_length=500)
    genres: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default=[], max_length=50,
        description="what places a new item before it has raters: genres the model was "
        "trained on count, others are kept but carry no signal",
    )
    attributes: dict[str, str | int | float | bool | None] = Field(
        default={}, max_length=50, description="stored and answered as given"
    )


class CatalogueItem(Item):
    """A catalogued item and how the served model knows it: trained in the artifact,
    folded in from its raters, placed from its genres alone, or not at all (yet)."""

    model_config = _examples(examples.CATALOGUE_ITEM)
    attributes: dict[str, str | int | float | bool | None]
    retired: bool
    embedded: Literal["trained", "folded", "attributes", "none"]
    model_version: str = Field(description=VERSION)


class CataloguePage(BaseModel):
    model_config = _examples(examples.CATALOGUE_PAGE)
    items: list[Item]
    next_cursor: str | None = Field(description="pass back as `cursor` for the next page; "
                                    "null at the end")


class RatingScaleInfo(BaseModel):
    """The served model's rating scale: what a posted rating must lie in."""

    model_config = _examples(examples.RATING_SCALE)
    low: float
    high: float
    step: float = Field(description="the steps the model was trained on (values between "
                        "are accepted)")


class ModelInfo(BaseModel):
    """The served model version (`because models activate` changes it on every process)."""

    model_config = _examples(examples.MODEL_INFO)
    version: str
    previous: str | None
    activated_at: float = Field(description="Unix seconds")
    items_trained: int
    items_folded: int
    last_error: str | None = Field(description="why the last activation was refused")
    rating_scale: RatingScaleInfo
    rating_head: bool = Field(
        description="whether the model predicts ratings; without a rating head "
        "`predicted_rating` is null and score and explanations are refused (409)"
    )


class SimilarResponse(BaseModel):
    model_config = _examples(examples.SIMILAR)
    item_id: str
    items: list[SimilarItem]
    model_version: str = Field(description=VERSION)


class FieldProblem(BaseModel):
    model_config = _examples(examples.FIELD_PROBLEM)
    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    """Every error answer: a message saying what was wrong and what is accepted, or, for a
    request that does not fit the schema, one entry per bad field."""

    model_config = _examples(examples.ERROR)
    detail: str | list[FieldProblem]


class Readiness(BaseModel):
    model_config = _examples(examples.READINESS)
    status: Literal["ready", "starting", "unavailable"]
    cause: str | None = Field(default=None, description="why not ready")
    model_version: str | None = None


class Liveness(BaseModel):
    model_config = _examples(examples.LIVENESS)
    status: Literal["ok"]
