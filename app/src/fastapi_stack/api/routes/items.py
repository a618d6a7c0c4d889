"""CRUD endpoints for items."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status

from fastapi_stack.api import API_V1_PREFIX
from fastapi_stack.deps import ItemStoreDep
from fastapi_stack.models import ErrorResponse, Item, ItemCreate, ItemPage, ItemUpdate

MAX_PAGE_SIZE = 100

router = APIRouter(prefix=f"{API_V1_PREFIX}/items", tags=["items"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No item has this id."}
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorResponse, "description": "Too many concurrent updates of the item."}
}


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_item(
    body: ItemCreate, store: ItemStoreDep, request: Request, response: Response
) -> Item:
    """Create an item. The ``Location`` header contains the path of the new item."""
    item = await store.create(body)
    response.headers["Location"] = str(request.app.url_path_for("get_item", item_id=item.id))
    return item


@router.get("")
async def list_items(
    store: ItemStoreDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size.")] = 20,
    offset: Annotated[int, Query(ge=0, description="Items to skip, oldest first.")] = 0,
) -> ItemPage:
    """List items in creation order, oldest first.

    Page with ``limit`` and ``offset``: the next page starts at ``offset + limit`` and the last
    page is reached when ``offset + limit >= total``. Items created while paging appear at the
    end, so they never shift the pages already read; a deleted item shifts later pages by one.
    """
    return await store.list(limit=limit, offset=offset)


@router.get("/{item_id}", response_model=Item, responses=NOT_FOUND)
async def get_item(item_id: uuid.UUID, store: ItemStoreDep) -> Response:
    # The stored JSON is already an Item, so it goes out as it is.
    return Response(await store.get_json(item_id), media_type="application/json")


@router.patch("/{item_id}", responses=NOT_FOUND | CONFLICT)
async def update_item(item_id: uuid.UUID, body: ItemUpdate, store: ItemStoreDep) -> Item:
    """Change the fields present in the body. ``description: null`` clears the description."""
    return await store.update(item_id, body)


@router.delete("/{item_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
async def delete_item(item_id: uuid.UUID, store: ItemStoreDep) -> None:
    await store.delete(item_id)
