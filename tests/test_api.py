"""The HTTP API: tokens, the error shape, validation, idempotency, paging, OpenAPI, health.

On a gateway whose only connector is the scripted fake type: the API is the core's.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from gateway.api import ROUTES
from tests.conftest import GatewayUnderTest, Tmpfs, fake_doc


@pytest.fixture
async def gw(start_fake, tmp_path: Path) -> GatewayUnderTest:
    return await start_fake(fake_doc(tmp_path / "gateway.sqlite3"))


async def test_every_api_route_needs_a_token(gw: GatewayUnderTest) -> None:
    for route in ROUTES:
        method, path = route.method, route.path
        if not path.startswith("/api/"):
            continue
        url = gw.url + path.replace("{id}", "x").replace("{name}", "fake").replace(
            "{kind}", "company")
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}):
            async with gw.session.request(method, url, headers=headers, json={}) as resp:
                assert resp.status == 401, (method, path, headers)
                assert resp.headers["WWW-Authenticate"].startswith("Bearer ")
                body = await resp.json()
                assert body["error"]["code"] == "unauthorized"


async def test_second_configured_token_works(gw: GatewayUnderTest) -> None:
    async with gw.session.get(f"{gw.url}/api/v1/fulfillment-orders",
                              headers={"Authorization": "Bearer other-token"}) as resp:
        assert resp.status == 200


async def test_openapi_is_valid_and_matches_the_routes(gw: GatewayUnderTest) -> None:
    document = await gw.call("GET", "/api/v1/openapi.json")
    validate(document)
    documented = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    served = {(r.method, r.resource.canonical) for r in gw.server.app.router.routes()
              if r.method not in ("HEAD", "*")}  # "*": the catch-all answering 404 / 405
    assert documented == served
    # Every event a subscriber can ask for is documented, with its data fields.
    from gateway.names import EVENT_TYPES

    assert sorted(document["webhooks"]) == sorted(EVENT_TYPES)
    status_changed = document["webhooks"]["fulfillment_order.status_changed"]["post"]
    schema = status_changed["requestBody"]["content"]["application/json"]["schema"]
    ref = schema["properties"]["data"]["$ref"].rsplit("/", 1)[1]
    data = document["components"]["schemas"][ref]
    assert set(data["required"]) == {"fulfillment_order_id", "old_status", "new_status", "lines"}
    # the webhook intake documents the token ShipStation-style connectors carry in its URL
    # (here: the fake type declares none), and no event data object is left untyped
    for name, hook in document["webhooks"].items():
        body = hook["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert "$ref" in body["properties"]["data"], name


async def test_create_is_validated(gw: GatewayUnderTest) -> None:
    bad = [
        ({}, "lines"), ({"lines": []}, "lines"),
        ({"lines": [{"sku": "", "quantity": 1}]}, r"lines\[0\]\.sku"),
        ({"lines": [{"sku": "A", "quantity": 0}]}, r"lines\[0\]\.quantity"),
        ({"lines": [{"sku": "A", "quantity": 1.5}]}, r"lines\[0\]\.quantity"),
        ({"lines": [{"sku": "A", "quantity": True}]}, r"lines\[0\]\.quantity"),
        ({"lines": [{"sku": "A", "quantity": 1}], "id": "has space"}, "id"),
        ({"lines": [{"sku": "A", "quantity": 1}], "colour": "red"}, "colour: not a field"),
        ({"lines": [{"sku": "A", "quantity": 1}], "ship_to": "x"}, "ship_to"),
        ({"lines": [{"sku": "A", "quantity": 1, "line_id": "1"},
                    {"sku": "B", "quantity": 1, "line_id": "1"}]}, r"lines\[1\]\.line_id"),
    ]
    for body, message in bad:
        answer = await gw.call("POST", "/api/v1/fulfillment-orders", body, expect=400)
        assert answer["error"]["code"] == "bad_request"
        assert re.search(message, answer["error"]["message"]), (body, answer)
    async with gw.session.post(f"{gw.url}/api/v1/fulfillment-orders", data=b"{oops",
                               headers=gw.headers) as resp:
        assert resp.status == 400
        [problem] = (await resp.json())["error"]["problems"]
        assert problem["code"] == "invalid_json"
    assert await gw.sql("SELECT COUNT(*) FROM fulfillment_orders") == [(0,)]


async def test_every_problem_is_reported_at_once_with_its_path_and_code(
        gw: GatewayUnderTest) -> None:
    answer = await gw.call("POST", "/api/v1/fulfillment-orders", {
        "lines": [{"sku": "A", "quantity": 10**9 + 1}, {"quantity": "2", "colour": "red"}],
        "ship_to": {"zip": "97201", "city": ""}, "order_number": 7}, expect=400)
    found = {(p["field"], p["code"]) for p in answer["error"]["problems"]}
    assert found == {
        ("lines[0].quantity", "invalid_value"),  # over 10^9
        ("lines[1].sku", "missing_field"),
        ("lines[1].quantity", "wrong_type"),  # text is not a number
        ("lines[1].colour", "unknown_field"),
        ("ship_to.zip", "unknown_field"),  # an address key no partner field maps
        ("ship_to.city", "invalid_value"),  # empty
        ("order_number", "wrong_type"),
    }, answer
    assert answer["error"]["message"].startswith("7 problem(s): ")


async def test_text_that_is_not_unicode_is_400_not_500(gw: GatewayUnderTest) -> None:
    """A lone UTF-16 surrogate escape parses into no Unicode text (it cannot be stored or
    sent on): refused as invalid JSON. A proper pair is an ordinary character."""
    for body, status in ((b'{"lines": [{"sku": "A\\ud8a7", "quantity": 1}]}', 400),
                         (b'{"lines": [{"sku": "A\\udc00", "quantity": 1}]}', 400),
                         (b'{"lines": [{"sku": "A\\ud83d\\ude0d", "quantity": 1}]}', 201)):
        async with gw.session.post(f"{gw.url}/api/v1/fulfillment-orders", data=body,
                                   headers=gw.headers) as resp:
            answer = await resp.json()
            assert resp.status == status, answer
    assert answer["lines"][0]["sku"] == "A\U0001f60d"
    async with gw.session.post(f"{gw.url}/api/v1/connectors/fake/records/company",
                               data=b'{"fields": {"name": "\\ud8a7"}}', headers=gw.headers) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["problems"][0]["code"] == "invalid_json"


@pytest.mark.parametrize(("query", "field", "code"), [
    ("updated_since=0001-01-01T00:00:00%2B01:00", "updated_since", "invalid_value"),
    ("updated_since=yesterday", "updated_since", "invalid_value"),
    ("limit=%C2%B2", "limit", "wrong_type"),  # "²" is a digit to str.isdigit, not a number
    ("limit=0", "limit", "invalid_value"),
    ("limit=201", "limit", "invalid_value"),
    ("limit=1&limit=2", "limit", "repeated"),
    ("order_number=P3", "order_number", "unknown_field"),  # silently ignored before
    ("status=", "status", "invalid_value"),  # an empty filter is not "no filter"
    ("cursor=", "cursor", "invalid_value"),
    ("cursor=W3t9LHt9XQ", "cursor", "invalid_value"),  # decodes to [{}, {}]
    ("cursor=e30", "cursor", "invalid_value"),  # decodes to {}
])
async def test_crafted_query_values_are_400_naming_the_parameter(
        gw: GatewayUnderTest, query: str, field: str, code: str) -> None:
    async with gw.session.get(f"{gw.url}/api/v1/fulfillment-orders?{query}",
                              headers=gw.headers) as resp:
        answer = await resp.json()
        assert resp.status == 400, answer
    assert answer["error"]["code"] == "bad_request"
    assert (field, code) in {(p["field"], p["code"]) for p in answer["error"]["problems"]}, answer


async def test_create_with_client_id_is_idempotent(gw: GatewayUnderTest) -> None:
    body = {"id": "order-42", "channel": "web", "order_number": "42",
            "lines": [{"sku": "A", "quantity": 2}], "custom_fields": {"gift": True}}
    first = await gw.call("POST", "/api/v1/fulfillment-orders", body, expect=201)
    again = await gw.call("POST", "/api/v1/fulfillment-orders", body, expect=200)
    assert first == again and first["id"] == "order-42"
    changed = await gw.call("POST", "/api/v1/fulfillment-orders",
                            {**body, "lines": [{"sku": "A", "quantity": 3}]}, expect=409)
    assert changed["error"]["code"] == "conflict"
    assert [t["kind"] for t in first["timeline"]] == ["created"]


async def test_get_unknown_is_404_in_the_error_shape(gw: GatewayUnderTest) -> None:
    for path in ("/api/v1/fulfillment-orders/nope", "/api/v1/shipments/nope",
                 "/api/v1/no-such-route"):
        answer = await gw.call("GET", path, expect=404)
        assert answer["error"]["code"] == "not_found"
    await gw.call("POST", "/api/v1/fulfillment-orders/nope/cancel", expect=404)
    answer = await gw.call("DELETE", "/api/v1/channels", expect=405)
    assert answer["error"]["code"] == "method_not_allowed" and "GET" in answer["error"]["message"]
    async with gw.session.get(f"{gw.url}/nothing/here") as resp:
        assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"
    async with gw.session.get(f"{gw.url}/api/v1/no-such-route") as resp:
        assert resp.status == 401  # without a token, nothing about what exists
    async with gw.session.get(f"{gw.url}/webhooks/fake") as resp:
        assert resp.status == 405 and resp.headers["Allow"] == "POST"
    async with gw.session.delete(f"{gw.url}/api/v1/channels", headers=gw.headers) as resp:
        assert resp.status == 405 and resp.headers["Allow"] == "GET"
    async with gw.session.put(f"{gw.url}/api/v1/fulfillment-orders", headers=gw.headers) as resp:
        assert resp.status == 405 and resp.headers["Allow"] == "GET, POST"
    for bad in ("fo-1\n", "fo-1%0A", "fo 1", "-fo"):  # a trailing newline is not an id
        answer = await gw.call("POST", "/api/v1/fulfillment-orders", expect=400, body={
            "id": bad.replace("%0A", "\n"), "lines": [{"sku": "A", "quantity": 1}]})
        assert answer["error"]["code"] == "bad_request"


async def test_list_filters_and_pages(gw: GatewayUnderTest) -> None:
    ids = [(await gw.create_fo([("A", 1)], order_number=f"L{i}"))["id"] for i in range(5)]
    cancelled = await gw.call("POST", f"/api/v1/fulfillment-orders/{ids[0]}/cancel")
    assert cancelled["status"] == "cancelled"
    again = await gw.call("POST", f"/api/v1/fulfillment-orders/{ids[0]}/cancel")
    assert [t["to_status"] for t in again["timeline"] if t["kind"] == "status_changed"] == [
        "cancelled"]

    seen, cursor = [], None
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = await gw.call("GET", f"/api/v1/fulfillment-orders{query}")
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    unfulfilled = await gw.call("GET", "/api/v1/fulfillment-orders?status=unfulfilled")
    assert sorted(i["id"] for i in unfulfilled["items"]) == sorted(ids[1:])
    since = cancelled["updated_at"]
    recent = await gw.call("GET", f"/api/v1/fulfillment-orders?updated_since={since}")
    assert ids[0] in [i["id"] for i in recent["items"]]
    for query in ("status=done", "limit=0", "limit=abc", "cursor=%%%", "updated_since=yesterday"):
        answer = await gw.call("GET", f"/api/v1/fulfillment-orders?{query}", expect=400)
        assert answer["error"]["code"] == "bad_request"


@pytest.mark.parametrize("start_fake", ["sqlite"], indirect=True)
async def test_readyz_fails_while_the_disk_is_full(start_fake, tmpfs: Tmpfs
                                                                  ) -> None:
    """A write probe, not a read: a full disk makes the gateway not ready (a load balancer
    stops sending it webhooks it could not store), and it is ready again once there is room.
    (A file system cannot be made read-only under an open database: the start-up test
    covers that one.)"""
    gw = await start_fake(fake_doc(tmpfs.path / "gateway.sqlite3"))

    async def ready() -> tuple[int, dict]:
        async with gw.session.get(f"{gw.url}/readyz") as resp:
            return resp.status, await resp.json()

    assert (await ready())[0] == 200
    filler = tmpfs.fill()
    status, body = await ready()
    assert status == 503 and body["checks"]["storage"] is False
    assert "is full" in body["storage_error"]
    filler.unlink()
    assert (await ready())[0] == 200


@pytest.mark.parametrize("start_fake", ["sqlite"], indirect=True)
async def test_readyz_fails_while_the_database_file_cannot_be_written(start_fake, tmp_path: Path
                                                                     ) -> None:
    """A database that can be read but no longer written (here its WAL made immutable, as a
    file system gone read-only under it would) is not ready; then ready again."""
    gw = await start_fake(fake_doc(tmp_path / "gateway.sqlite3"))
    wal = tmp_path / "gateway.sqlite3-wal"
    if (await _chattr("+i", wal)) != 0:
        pytest.skip("chattr +i needs root on a file system that supports it")
    try:
        async with gw.session.get(f"{gw.url}/readyz") as resp:
            body = await resp.json()
            assert resp.status == 503 and body["checks"]["storage"] is False
        assert body["storage_error"].startswith("storage.path: "), body
    finally:
        assert await _chattr("-i", wal) == 0
    async with gw.session.get(f"{gw.url}/readyz") as resp:
        assert resp.status == 200


async def _chattr(flag: str, path: Path) -> int:
    process = await asyncio.create_subprocess_exec(
        "chattr", flag, str(path), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)
    return await process.wait()


async def test_health_readiness_metrics(gw: GatewayUnderTest) -> None:
    assert (await gw.call("GET", "/healthz")) == {"status": "ok"}
    ready = await gw.call("GET", "/readyz")
    assert ready["status"] == "ready" and all(ready["checks"].values())
    async with gw.session.get(f"{gw.url}/metrics") as resp:
        text = await resp.text()
    for name in ("gateway_webhooks_received_total", "gateway_inbox_depth",
                 "gateway_inbox_oldest_age_seconds", "gateway_polls_total",
                 "gateway_partner_rate_limited_total", "gateway_reconcile_duration_seconds",
                 # the client library's process and platform collectors
                 "process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"):
        assert name in text
    # dead letters are one family, by source
    assert 'gateway_dead_letters{source="inbox"} 0.0' in text
    assert 'gateway_dead_letters{source="outbox"} 0.0' in text
    assert "gateway_outbox_dead_letters" not in text


async def test_feed_success_and_waiting_messages_show_in_metrics(start_fake, tmp_path: Path
                                                                 ) -> None:
    """The last successful poll of each feed (a stalled feed shows), and how long the oldest
    message to each destination has waited (a subscriber that stopped taking them shows)."""
    doc = fake_doc(tmp_path / "gateway.sqlite3")
    doc["subscribers"] = [{"name": "down", "url": "http://127.0.0.1:9/events",
                           "secret_env": "SUB_SECRET", "events": ["*"]}]
    doc["retry"] = {"attempts": 8, "schedule_seconds": [3600], "jitter": 0}
    gw = await start_fake(doc)
    await gw.call("POST", "/api/v1/connectors/fake/poll?feed=shipments")
    await gw.create_fo([("A", 1)])

    async def metrics() -> str:
        async with gw.session.get(f"{gw.url}/metrics") as resp:
            return await resp.text()

    async def waiting() -> float | None:
        found = re.search(r'gateway_outbox_oldest_pending_age_seconds\{destination='
                          r'"subscriber:down"\} ([0-9.e+]+)', await metrics())
        return float(found.group(1)) if found else None

    assert await gw.wait_for(waiting) is not None  # tried once, failed, waiting an hour
    text = await metrics()
    [stamp] = re.findall(r'gateway_feed_last_success_timestamp_seconds\{connector="fake",'
                         r'feed="shipments"\} ([0-9.e+]+)', text)
    assert abs(float(stamp) - time.time()) < 60
    assert 'feed="orders"' not in text.split("gateway_feed_last_success")[1].split("# HELP")[0]
