from __future__ import annotations

import asyncio
import uuid

import httpx
import redis

ITEMS = "/api/v1/items"


async def create(client: httpx.AsyncClient, name: str, **fields: object) -> dict[str, object]:
    response = await client.post(ITEMS, json={"name": name, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


async def test_create_returns_location(client: httpx.AsyncClient) -> None:
    response = await client.post(ITEMS, json={"name": "core-sw-01", "description": "spine"})

    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"{ITEMS}/{body['id']}"
    assert body["name"] == "core-sw-01"
    assert body["description"] == "spine"
    assert body["created_at"] == body["updated_at"]


async def test_create_writes_item_and_index(
    client: httpx.AsyncClient, redis_admin: redis.Redis
) -> None:
    body = await create(client, "edge-rtr-02")

    assert redis_admin.exists(f"item:{body['id']}") == 1
    assert redis_admin.zrange("item:index", 0, -1) == [body["id"]]


async def test_get_returns_created_item(client: httpx.AsyncClient) -> None:
    created = await create(client, "fw-01", description=None)

    response = await client.get(f"{ITEMS}/{created['id']}")

    assert response.status_code == 200
    assert response.json() == created


async def test_get_unknown_item_is_404(client: httpx.AsyncClient) -> None:
    item_id = uuid.uuid4()

    response = await client.get(f"{ITEMS}/{item_id}")

    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert str(item_id) in error["message"]
    assert error["request_id"] == response.headers["x-request-id"]


async def test_get_invalid_id_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{ITEMS}/not-a-uuid")

    assert response.status_code == 422
    details = response.json()["error"]["details"]
    assert [(d["location"], d["field"]) for d in details] == [("path", "item_id")]


async def test_create_validation_names_field(client: httpx.AsyncClient) -> None:
    response = await client.post(ITEMS, json={"name": "", "colour": "red"})

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    fields = {(d["location"], d["field"]): d["type"] for d in error["details"]}
    assert fields == {("body", "name"): "string_too_short", ("body", "colour"): "extra_forbidden"}
    assert "body.name" in error["message"]


async def test_create_rejects_non_json_body(client: httpx.AsyncClient) -> None:
    response = await client.post(
        ITEMS, content=b"name=x", headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_failed"


async def test_list_pages_in_creation_order(client: httpx.AsyncClient) -> None:
    names = [f"device-{index}" for index in range(5)]
    for name in names:
        await create(client, name)

    first = (await client.get(ITEMS, params={"limit": 2})).json()
    second = (await client.get(ITEMS, params={"limit": 2, "offset": 2})).json()
    last = (await client.get(ITEMS, params={"limit": 2, "offset": 4})).json()

    assert [item["name"] for item in first["items"]] == names[0:2]
    assert [item["name"] for item in second["items"]] == names[2:4]
    assert [item["name"] for item in last["items"]] == names[4:5]
    assert first["total"] == 5
    assert (last["limit"], last["offset"]) == (2, 4)


async def test_list_empty_store(client: httpx.AsyncClient) -> None:
    response = await client.get(ITEMS)

    assert response.status_code == 200
    assert response.json() == {"items": [], "total": 0, "limit": 20, "offset": 0}


async def test_list_rejects_bad_paging(client: httpx.AsyncClient) -> None:
    for params in ({"limit": 0}, {"limit": 101}, {"offset": -1}):
        response = await client.get(ITEMS, params=params)
        assert response.status_code == 422, params
        assert response.json()["error"]["details"][0]["field"] == next(iter(params))


async def test_list_skips_item_missing_from_store(
    client: httpx.AsyncClient, redis_admin: redis.Redis
) -> None:
    remaining = await create(client, "remaining")
    removed = await create(client, "removed")
    redis_admin.delete(f"item:{removed['id']}")

    page = (await client.get(ITEMS)).json()

    assert [item["id"] for item in page["items"]] == [remaining["id"]]


async def test_patch_changes_given_fields(client: httpx.AsyncClient) -> None:
    created = await create(client, "sw-01", description="old")

    response = await client.patch(f"{ITEMS}/{created['id']}", json={"description": "new"})

    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "sw-01"
    assert body["description"] == "new"
    assert body["created_at"] == created["created_at"]
    assert body["updated_at"] > created["updated_at"]
    assert (await client.get(f"{ITEMS}/{created['id']}")).json() == body


async def test_patch_null_description_clears_it(client: httpx.AsyncClient) -> None:
    created = await create(client, "sw-02", description="text")

    response = await client.patch(f"{ITEMS}/{created['id']}", json={"description": None})

    assert response.json()["description"] is None


async def test_patch_null_name_is_422(client: httpx.AsyncClient) -> None:
    created = await create(client, "sw-03")

    response = await client.patch(f"{ITEMS}/{created['id']}", json={"name": None})

    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "name"


async def test_patch_unknown_item_is_404(client: httpx.AsyncClient) -> None:
    response = await client.patch(f"{ITEMS}/{uuid.uuid4()}", json={"name": "x"})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_concurrent_patches_keep_item_valid(client: httpx.AsyncClient) -> None:
    created = await create(client, "contended")
    url = f"{ITEMS}/{created['id']}"

    responses = await asyncio.gather(
        *(client.patch(url, json={"description": f"writer {index}"}) for index in range(20))
    )

    statuses = {response.status_code for response in responses}
    assert statuses <= {200, 409}
    assert 200 in statuses
    final = (await client.get(url)).json()
    assert final["name"] == "contended"
    assert final["description"].startswith("writer ")


async def test_delete_removes_item_and_index(
    client: httpx.AsyncClient, redis_admin: redis.Redis
) -> None:
    created = await create(client, "to-delete")

    response = await client.delete(f"{ITEMS}/{created['id']}")

    assert response.status_code == 204
    assert response.content == b""
    assert redis_admin.exists(f"item:{created['id']}") == 0
    assert redis_admin.zcard("item:index") == 0
    assert (await client.get(f"{ITEMS}/{created['id']}")).status_code == 404


async def test_delete_unknown_item_is_404(client: httpx.AsyncClient) -> None:
    response = await client.delete(f"{ITEMS}/{uuid.uuid4()}")

    assert response.status_code == 404
