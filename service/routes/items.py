"""Item metadata and FAISS neighbours."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from service.deps import ItemIdPath, KnownQuery, ReadAccess, RecommenderDep
from service.http_errors import ERROR_RESPONSES
from service.schemas import Item, SimilarItem, SimilarResponse

router = APIRouter(
    prefix="/v1/items",
    tags=["items"],
    dependencies=[KnownQuery, ReadAccess],
    responses=ERROR_RESPONSES,
)


@router.get("/{item_id}", response_model=Item)
async def get_item(item_id: ItemIdPath, rec: RecommenderDep) -> Item:
    item = rec.item(item_id)
    return Item(item_id=item.item_id, title=item.title, genres=item.genres)


@router.get("/{item_id}/similar", response_model=SimilarResponse)
async def similar(
    item_id: ItemIdPath, rec: RecommenderDep, k: Annotated[int, Query(ge=1)] = 10
) -> SimilarResponse:
    """Nearest items by cosine similarity of the ranking model's item embeddings."""
    return SimilarResponse(
        item_id=item_id,
        items=[
            SimilarItem(item_id=i.item_id, title=i.title, genres=i.genres, similarity=s)
            for i, s in rec.similar(item_id, k)
        ],
        model_version=rec.version,
    )
